/*
 * Fuzz target for the sock_diag reply parser of core/net/sockdiag.c. libmnl is not instrumented, so besides
 * libFuzzer's exact-size heap copy the input is also placed flush against a PROT_NONE page: a read past the end
 * inside libmnl then faults instead of going unnoticed. Every record that comes out is checked for the
 * parser's promises (family, protocol, numeric addresses, connected only).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/sockdiag.h"

#define GUARDED_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const struct pm_net_conn *c, uint8_t proto)
{
	unsigned char a[16];

	if (c->proto != proto || (c->family != AF_INET && c->family != AF_INET6))
		abort();
	if (memchr(c->local, '\0', sizeof(c->local)) == NULL ||
	    memchr(c->remote, '\0', sizeof(c->remote)) == NULL)
		abort();
	if (inet_pton(c->family, c->local, a) != 1 || inet_pton(c->family, c->remote, a) != 1)
		abort();
	if (proto == IPPROTO_UDP && (c->rport == 0 || strcmp(c->state, "connected") != 0))
		abort();
	if (proto == IPPROTO_TCP && strcmp(c->state, "established") != 0)
		abort();
}

static void parse_one(const uint8_t *p, size_t size, uint8_t proto)
{
	struct pm_net_conn *arr = NULL;
	size_t n = 0, cap = 0, n1;
	int r;

	r = pm_net_sockdiag_parse(p, size, proto, &arr, &n, &cap);
	if (r > 1 || (r < 0 && n != 0) || n > cap)
		abort();
	for (size_t i = 0; i < n; i++)
		check_record(&arr[i], proto);
	/* Again on top of what is there: appends the same records, or fails leaving the count alone. */
	n1 = n;
	r = pm_net_sockdiag_parse(p, size, proto, &arr, &n, &cap);
	if ((r >= 0 && n != 2 * n1) || (r < 0 && n != n1) || n > cap)
		abort();
	for (size_t i = 0; i < n1 && r >= 0; i++)
		if (memcmp(&arr[i], &arr[n1 + i], sizeof(arr[i])) != 0)
			abort();
	free(arr);
}

static void parse_all(const uint8_t *p, size_t size)
{
	parse_one(p, size, IPPROTO_TCP);
	parse_one(p, size, IPPROTO_UDP);
}

/* GUARDED_MAX usable bytes followed by an inaccessible page; NULL if mmap is not available. */
static uint8_t *guarded_area(void)
{
	static uint8_t *area;
	static int tried;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *m;

	if (tried)
		return area;
	tried = 1;
	m = mmap(NULL, GUARDED_MAX + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mprotect((uint8_t *)m + GUARDED_MAX, page, PROT_NONE) < 0) {
		munmap(m, GUARDED_MAX + page);
		return NULL;
	}
	area = m;
	return area;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *g = guarded_area();

	parse_all(data, size);
	if (g && size > 0 && size <= GUARDED_MAX - 4) {
		/* 4-byte aligned start (the parser reads in place), at most 3 slack bytes before the guard. */
		size_t start = (GUARDED_MAX - size) & ~(size_t)3;

		memset(g + start + size, 0xa5, GUARDED_MAX - start - size);
		memcpy(g + start, data, size);
		parse_all(g + start, size);
		/* Unaligned start: exercises the parser's aligned copy. */
		memcpy(g + GUARDED_MAX - size, data, size);
		parse_all(g + GUARDED_MAX - size, size);
	}
	return 0;
}
