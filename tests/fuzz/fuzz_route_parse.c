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
#include <sys/socket.h>

#include "guarded.h"
#include "net/net.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	guarded_run(data, size, parse_all);
	return 0;
}
