/*
 * Fuzz target for the sock_diag reply parser of cli/sockdiag.c. libmnl is not instrumented, so besides
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
#include <sys/socket.h>

#include "guarded.h"
#include "sockdiag.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	guarded_run(data, size, parse_all);
	return 0;
}
