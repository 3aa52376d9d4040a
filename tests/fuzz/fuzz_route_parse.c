/*
 * Fuzz target for the rtnetlink parsers of core/net (route dump selection and event classification).
 * libmnl is not instrumented, so besides libFuzzer's exact-size heap copy the input is also placed flush
 * against a PROT_NONE page: a read past the end inside libmnl then faults instead of going unnoticed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

#define GUARDED_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_all(const uint8_t *p, size_t size)
{
	struct pm_gateway gw;
	unsigned mask;
	int r;

	r = pm_net_parse_default_route(p, size, AF_INET, &gw);
	if (r == 1 && gw.family != AF_INET)
		abort();
	r = pm_net_parse_default_route(p, size, AF_INET6, &gw);
	if (r == 1 && gw.family != AF_INET6)
		abort();
	if (r > 1)
		abort();
	mask = 0;
	r = pm_net_parse_events(p, size, &mask);
	if (r == 0 && (mask & ~(unsigned)PM_NET_EV_ALL))
		abort();
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
