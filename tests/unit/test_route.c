/*
 * core/net: default-route selection and event classification on rtnetlink bytes captured from a real kernel
 * (tests/vectors/netlink-*.hex, veth pmv0 = ifindex 3 in a throwaway namespace), malformed input, UDP endpoint
 * helpers on loopback, and live checks in a network namespace this test creates itself (skipped when that is
 * not permitted). RFC 6887 §8.1: the default router of each family is the PCP server when none is configured.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "vectors.h"
#include "net/net.h"

#define VETH_IFINDEX 3 /* pmv0 in the capture namespace */
#define SKIP_CODE    77

/* ---------------------------------------------------------------------------------------------------------- */
/* Vector helpers */

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Offsets of message starts (and the end) in a well-formed vector. */
static size_t msg_offsets(const struct vec *v, size_t *offs, size_t max)
{
	size_t off = 0, n = 0;

	while (off < v->len) {
		uint32_t l = rd32(v->b + off);

		assert_true(l >= 16 && off + l <= v->len);
		assert_true(n < max);
		offs[n++] = off;
		off += (l + 3) & ~3u;
	}
	assert_int_equal(off, v->len);
	offs[n] = off;
	return n;
}

static uint16_t msg_type(const struct vec *v, size_t off)
{
	return rd16(v->b + off + 4);
}

/* Offset of the first message of this type. */
static size_t find_msg(const struct vec *v, uint16_t type)
{
	size_t offs[64], n = msg_offsets(v, offs, 63), i;

	for (i = 0; i < n; i++)
		if (msg_type(v, offs[i]) == type)
			return offs[i];
	fail_msg("no message of type %u", type);
	return 0;
}

/* Attribute `type` of the route/addr/link message at off (fixed header hdrlen); NULL if absent. */
static uint8_t *find_attr(const struct vec *v, size_t off, size_t hdrlen, uint16_t type)
{
	uint32_t l = rd32(v->b + off);
	size_t a = off + 16 + hdrlen;

	while (a + 4 <= off + l) {
		uint16_t al = rd16(v->b + a), at = rd16(v->b + a + 2);

		assert_true(al >= 4);
		if ((at & NLA_TYPE_MASK) == type)
			return v->b + a;
		a += (al + 3u) & ~3u;
	}
	return NULL;
}

/* The main-table default route messages of a dump vector. */
static size_t default_routes(const struct vec *v, size_t *out, size_t max)
{
	size_t offs[64], n = msg_offsets(v, offs, 63), i, k = 0;

	for (i = 0; i < n; i++) {
		const uint8_t *r = v->b + offs[i] + 16;

		if (msg_type(v, offs[i]) == RTM_NEWROUTE && r[1] == 0 && r[4] == RT_TABLE_MAIN &&
		    r[7] == RTN_UNICAST) {
			assert_true(k < max);
			out[k++] = offs[i];
		}
	}
	return k;
}

static void assert_gw4(const struct pm_gateway *gw, const char *addr, int ifindex, uint32_t metric)
{
	char s[INET_ADDRSTRLEN];

	assert_int_equal(gw->family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &gw->addr.v4, s, sizeof(s)));
	assert_string_equal(s, addr);
	assert_int_equal(gw->ifindex, ifindex);
	assert_int_equal(gw->metric, metric);
	assert_string_equal(gw->ifname, "");
}

static void assert_gw6(const struct pm_gateway *gw, const char *addr, int ifindex, uint32_t metric)
{
	char s[INET6_ADDRSTRLEN];

	assert_int_equal(gw->family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &gw->addr.v6, s, sizeof(s)));
	assert_string_equal(s, addr);
	assert_int_equal(gw->ifindex, ifindex);
	assert_int_equal(gw->metric, metric);
	assert_string_equal(gw->ifname, "");
}

static int parse_route(const struct vec *v, int family, struct pm_gateway *gw)
{
	memset(gw, 0xa5, sizeof(*gw));
	return pm_net_parse_default_route(v->b, v->len, family, gw);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Default route from captured dumps */

static void test_dump_v4_none(void **state)
{
	struct vec v = load("netlink-dump-v4-none.hex");
	struct pm_gateway gw, untouched;

	(void)state;
	memset(&untouched, 0xa5, sizeof(untouched));
	/* Only a table-100 default and non-default routes: nothing, and ret untouched. */
	assert_int_equal(parse_route(&v, AF_INET, &gw), 0);
	assert_memory_equal(&gw, &untouched, sizeof(gw));
	free(v.b);
}

static void test_dump_v4_one(void **state)
{
	struct vec v = load("netlink-dump-v4-one.hex");
	struct pm_gateway gw;

	(void)state;
	assert_int_equal(parse_route(&v, AF_INET, &gw), 1);
	assert_gw4(&gw, "10.99.0.1", VETH_IFINDEX, 0); /* no RTA_PRIORITY: metric 0 */
	/* An IPv4 dump has nothing for AF_INET6. */
	assert_int_equal(parse_route(&v, AF_INET6, &gw), 0);
	free(v.b);
}

static void test_dump_v4_two_metrics(void **state)
{
	struct vec v = load("netlink-dump-v4-two-metrics.hex");
	struct pm_gateway gw;
	size_t d[4];

	(void)state;
	assert_int_equal(default_routes(&v, d, 4), 2);
	assert_int_equal(parse_route(&v, AF_INET, &gw), 1);
	assert_gw4(&gw, "10.99.0.254", VETH_IFINDEX, 100);
	free(v.b);
}

/* Swap the two default routes so the lower metric comes last: the pick must not depend on dump order. */
static void swap_defaults(struct vec *v)
{
	size_t d[4], l0, l1;
	uint8_t *tmp;

	assert_int_equal(default_routes(v, d, 4), 2);
	l0 = rd32(v->b + d[0]);
	l1 = rd32(v->b + d[1]);
	/* adjacent messages of aligned lengths */
	assert_int_equal(d[0] + ((l0 + 3) & ~3u), d[1]);
	tmp = malloc(l0 + l1);
	assert_non_null(tmp);
	memcpy(tmp, v->b + d[1], l1);
	memcpy(tmp + l1, v->b + d[0], l0);
	memcpy(v->b + d[0], tmp, l0 + l1);
	free(tmp);
}

static void test_dump_lowest_metric_any_order(void **state)
{
	struct vec v4 = load("netlink-dump-v4-two-metrics.hex");
	struct vec v6 = load("netlink-dump-v6-two-metrics.hex");
	struct pm_gateway gw;
	size_t d[4];

	(void)state;
	swap_defaults(&v4);
	assert_int_equal(default_routes(&v4, d, 4), 2);
	assert_int_equal(rd32(find_attr(&v4, d[1], sizeof(struct rtmsg), RTA_PRIORITY) + 4), 100);
	assert_int_equal(parse_route(&v4, AF_INET, &gw), 1);
	assert_gw4(&gw, "10.99.0.254", VETH_IFINDEX, 100);

	swap_defaults(&v6);
	assert_int_equal(parse_route(&v6, AF_INET6, &gw), 1);
	assert_gw6(&gw, "2001:db8:99::fe", VETH_IFINDEX, 200);

	/* Only the first default route in the buffer (cut after it): that one, whatever its metric. */
	assert_int_equal(default_routes(&v4, d, 4), 2);
	assert_int_equal(pm_net_parse_default_route(v4.b, d[1], AF_INET, &gw), 1);
	assert_gw4(&gw, "10.99.0.1", VETH_IFINDEX, 200);
	free(v4.b);
	free(v6.b);
}

static void test_dump_v4_multipath(void **state)
{
	struct vec v = load("netlink-dump-v4-multipath.hex");
	struct pm_gateway gw;
	size_t d[4];

	(void)state;
	assert_int_equal(default_routes(&v, d, 4), 1);
	assert_null(find_attr(&v, d[0], sizeof(struct rtmsg), RTA_GATEWAY));
	assert_non_null(find_attr(&v, d[0], sizeof(struct rtmsg), RTA_MULTIPATH));
	assert_int_equal(parse_route(&v, AF_INET, &gw), 1);
	assert_gw4(&gw, "10.99.0.1", VETH_IFINDEX, 0); /* first nexthop */
	free(v.b);
}

static void test_dump_v6_none(void **state)
{
	struct vec v = load("netlink-dump-v6-none.hex");
	struct pm_gateway gw;

	(void)state;
	assert_int_equal(parse_route(&v, AF_INET6, &gw), 0);
	assert_int_equal(parse_route(&v, AF_INET, &gw), 0);
	free(v.b);
}

static void test_dump_v6_one(void **state)
{
	struct vec v = load("netlink-dump-v6-one.hex");
	struct pm_gateway gw;

	(void)state;
	assert_int_equal(parse_route(&v, AF_INET6, &gw), 1);
	assert_gw6(&gw, "2001:db8:99::1", VETH_IFINDEX, 1024);
	assert_int_equal(parse_route(&v, AF_INET, &gw), 0);
	free(v.b);
}

static void test_dump_v6_two_metrics(void **state)
{
	struct vec v = load("netlink-dump-v6-two-metrics.hex");
	struct pm_gateway gw;

	(void)state;
	assert_int_equal(parse_route(&v, AF_INET6, &gw), 1);
	assert_gw6(&gw, "2001:db8:99::fe", VETH_IFINDEX, 200);
	free(v.b);
}

static void test_dump_v6_linklocal(void **state)
{
	struct vec v = load("netlink-dump-v6-linklocal.hex");
	struct pm_gateway gw;
	struct pm_sockaddr sa;

	(void)state;
	assert_int_equal(parse_route(&v, AF_INET6, &gw), 1);
	assert_gw6(&gw, "fe80::1", VETH_IFINDEX, 1024);
	/* The interface is the scope of a link-local server address. */
	assert_int_equal(pm_sockaddr_from_gateway(&sa, &gw, 5351), 0);
	assert_int_equal(sa.u.in6.sin6_scope_id, VETH_IFINDEX);
	assert_int_equal(ntohs(sa.u.in6.sin6_port), 5351);
	free(v.b);
}

static void test_dump_v6_multipath(void **state)
{
	struct vec v = load("netlink-dump-v6-multipath.hex");
	struct pm_gateway gw;
	size_t d[4];

	(void)state;
	assert_int_equal(default_routes(&v, d, 4), 1);
	assert_non_null(find_attr(&v, d[0], sizeof(struct rtmsg), RTA_MULTIPATH));
	assert_int_equal(parse_route(&v, AF_INET6, &gw), 1);
	assert_gw6(&gw, "2001:db8:99::1", VETH_IFINDEX, 1024);
	free(v.b);
}

/* A dead nexthop (RTNH_F_DEAD) is skipped: single-path in rtm_flags, multipath per rtnexthop. */
static void test_dump_dead_nexthops(void **state)
{
	struct vec one = load("netlink-dump-v4-one.hex");
	struct vec mp = load("netlink-dump-v6-multipath.hex");
	struct pm_gateway gw;
	size_t d[4];
	uint8_t *a;

	(void)state;
	assert_int_equal(default_routes(&one, d, 4), 1);
	one.b[d[0] + 16 + 8] |= RTNH_F_DEAD; /* rtm_flags, low byte */
	assert_int_equal(parse_route(&one, AF_INET, &gw), 0);

	assert_int_equal(default_routes(&mp, d, 4), 1);
	a = find_attr(&mp, d[0], sizeof(struct rtmsg), RTA_MULTIPATH);
	assert_non_null(a);
	a[4 + 2] |= RTNH_F_DEAD; /* first rtnexthop's rtnh_flags */
	assert_int_equal(parse_route(&mp, AF_INET6, &gw), 1);
	assert_gw6(&gw, "2001:db8:99::fe", VETH_IFINDEX, 1024);
	free(one.b);
	free(mp.b);
}

static void test_dump_bad_args(void **state)
{
	struct vec v = load("netlink-dump-v4-one.hex");
	struct pm_gateway gw;

	(void)state;
	assert_int_equal(pm_net_parse_default_route(v.b, v.len, AF_UNSPEC, &gw), -EINVAL);
	assert_int_equal(pm_net_parse_default_route(v.b, v.len, AF_INET, NULL), -EINVAL);
	assert_int_equal(pm_net_parse_default_route(NULL, 4, AF_INET, &gw), -EINVAL);
	assert_int_equal(pm_net_parse_default_route(NULL, 0, AF_INET, &gw), 0);
	free(v.b);
}

/* Every cut that is not on a message boundary is a truncated header or attribute. */
static void check_prefixes_route(const char *name, int family)
{
	struct vec v = load(name);
	size_t offs[64], n = msg_offsets(&v, offs, 63), cut, k = 0;
	struct pm_gateway gw;

	for (cut = 1; cut < v.len; cut++) {
		int r = pm_net_parse_default_route(v.b, cut, family, &gw);

		while (k <= n && offs[k] < cut)
			k++;
		if (offs[k] == cut)
			assert_true(r == 0 || r == 1);
		else if (r != -EBADMSG)
			fail_msg("%s cut at %zu: %d", name, cut, r);
	}
	free(v.b);
}

static void test_dump_truncated(void **state)
{
	(void)state;
	check_prefixes_route("netlink-dump-v4-two-metrics.hex", AF_INET);
	check_prefixes_route("netlink-dump-v4-multipath.hex", AF_INET);
	check_prefixes_route("netlink-dump-v6-linklocal.hex", AF_INET6);
	check_prefixes_route("netlink-dump-v6-multipath.hex", AF_INET6);
}

static void test_dump_corrupt_attributes(void **state)
{
	struct pm_gateway gw;
	size_t d[4];
	uint8_t *a;
	struct vec v;

	(void)state;
	/* RTA_GATEWAY of 3 bytes for AF_INET */
	v = load("netlink-dump-v4-one.hex");
	assert_int_equal(default_routes(&v, d, 4), 1);
	a = find_attr(&v, d[0], sizeof(struct rtmsg), RTA_GATEWAY);
	assert_non_null(a);
	wr16(a, 7);
	assert_int_equal(parse_route(&v, AF_INET, &gw), -EBADMSG);
	/* attribute longer than its message */
	wr16(a, 200);
	assert_int_equal(parse_route(&v, AF_INET, &gw), -EBADMSG);
	/* nla_len below the attribute header */
	wr16(a, 2);
	assert_int_equal(parse_route(&v, AF_INET, &gw), -EBADMSG);
	free(v.b);

	/* RTA_PRIORITY of 2 bytes (u32 expected) */
	v = load("netlink-dump-v6-one.hex");
	assert_int_equal(default_routes(&v, d, 4), 1);
	a = find_attr(&v, d[0], sizeof(struct rtmsg), RTA_PRIORITY);
	assert_non_null(a);
	wr16(a, 6);
	assert_int_equal(parse_route(&v, AF_INET6, &gw), -EBADMSG);
	free(v.b);

	/* message too short for its rtmsg */
	v = load("netlink-dump-v4-one.hex");
	wr32(v.b, 20);
	assert_int_equal(parse_route(&v, AF_INET, &gw), -EBADMSG);
	/* message length beyond the buffer */
	wr32(v.b, 0xffffffffu);
	assert_int_equal(parse_route(&v, AF_INET, &gw), -EBADMSG);
	/* message length below nlmsghdr */
	wr32(v.b, 8);
	assert_int_equal(parse_route(&v, AF_INET, &gw), -EBADMSG);
	free(v.b);

	/* rtnexthop longer than RTA_MULTIPATH */
	v = load("netlink-dump-v6-multipath.hex");
	assert_int_equal(default_routes(&v, d, 4), 1);
	a = find_attr(&v, d[0], sizeof(struct rtmsg), RTA_MULTIPATH);
	assert_non_null(a);
	wr16(a + 4, (uint16_t)(rd16(a) + 4));
	assert_int_equal(parse_route(&v, AF_INET6, &gw), -EBADMSG);
	wr16(a + 4, 4); /* shorter than struct rtnexthop */
	assert_int_equal(parse_route(&v, AF_INET6, &gw), -EBADMSG);
	free(v.b);
}

static void test_dump_garbage(void **state)
{
	static const uint8_t hello[] = "hello";
	uint8_t ff[64], big[4096];
	struct pm_gateway gw;
	uint32_t x = 12345;
	size_t i;
	int round;

	(void)state;
	memset(ff, 0xff, sizeof(ff));
	assert_int_equal(pm_net_parse_default_route(hello, 5, AF_INET, &gw), -EBADMSG);
	assert_int_equal(pm_net_parse_default_route(ff, sizeof(ff), AF_INET, &gw), -EBADMSG);
	memset(ff, 0, sizeof(ff));
	assert_int_equal(pm_net_parse_default_route(ff, sizeof(ff), AF_INET6, &gw), -EBADMSG);
	/* Random bytes: a well-formed rtnetlink buffer by chance is practically impossible. */
	for (round = 0; round < 2000; round++) {
		size_t len = 1 + (size_t)(round % 700);

		for (i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			big[i] = (uint8_t)(x >> 16);
		}
		assert_int_equal(pm_net_parse_default_route(big, len, AF_INET, &gw), -EBADMSG);
	}
}

/* Copy behind one byte: libmnl needs aligned headers; the parser must cope (and not trip UBSan). */
static void test_dump_misaligned(void **state)
{
	struct vec v = load("netlink-dump-v6-two-metrics.hex");
	uint8_t *m = malloc(v.len + 1);
	struct pm_gateway gw;

	(void)state;
	assert_non_null(m);
	memcpy(m + 1, v.b, v.len);
	assert_int_equal(pm_net_parse_default_route(m + 1, v.len, AF_INET6, &gw), 1);
	assert_gw6(&gw, "2001:db8:99::fe", VETH_IFINDEX, 200);
	free(m);
	free(v.b);
}

static size_t put_error(uint8_t *p, int32_t err)
{
	struct nlmsghdr h = { .nlmsg_len = 36, .nlmsg_type = NLMSG_ERROR };
	struct nlmsghdr orig = { .nlmsg_len = 16, .nlmsg_type = RTM_GETROUTE };

	memcpy(p, &h, sizeof(h));
	memcpy(p + 16, &err, sizeof(err));
	memcpy(p + 20, &orig, sizeof(orig));
	return 36;
}

static void test_dump_kernel_errors(void **state)
{
	struct vec one = load("netlink-dump-v4-one.hex");
	struct vec none = load("netlink-dump-v4-none.hex");
	uint8_t *b = malloc(one.len + none.len + 64);
	struct pm_gateway gw;
	size_t n;

	(void)state;
	assert_non_null(b);
	n = put_error(b, -EPERM);
	assert_int_equal(pm_net_parse_default_route(b, n, AF_INET, &gw), -EPERM);
	n = put_error(b, 5);
	assert_int_equal(pm_net_parse_default_route(b, n, AF_INET, &gw), -EBADMSG);
	/* An ACK (error 0) is not an error. */
	n = put_error(b, 0);
	memcpy(b + n, one.b, one.len);
	assert_int_equal(pm_net_parse_default_route(b, n + one.len, AF_INET, &gw), 1);
	assert_gw4(&gw, "10.99.0.1", VETH_IFINDEX, 0);
	/* NLMSG_DONE ends the dump: what follows it is not looked at. */
	memcpy(b, none.b, none.len);
	memcpy(b + none.len, one.b, one.len);
	assert_int_equal(pm_net_parse_default_route(b, none.len + one.len, AF_INET, &gw), 0);
	/* NLMSG_DONE carrying a failure status */
	memcpy(b, none.b, none.len);
	wr32(b + none.len - 4, (uint32_t)-EINTR);
	assert_int_equal(pm_net_parse_default_route(b, none.len, AF_INET, &gw), -EINTR);
	/* Trailing bytes after a message that are no message */
	memcpy(b, one.b, one.len - 20); /* without NLMSG_DONE */
	memset(b + one.len - 20, 0, 3);
	assert_int_equal(pm_net_parse_default_route(b, one.len - 20 + 3, AF_INET, &gw), -EBADMSG);
	assert_int_equal(pm_net_parse_default_route(b, one.len - 20, AF_INET, &gw), 1);
	free(b);
	free(one.b);
	free(none.b);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Events from captured notifications */

static unsigned events(const char *name)
{
	struct vec v = load(name);
	unsigned m = 0xdead;
	int r = pm_net_parse_events(v.b, v.len, &m);

	if (r != 0)
		fail_msg("%s: %d", name, r);
	free(v.b);
	return m;
}

static void test_events_route(void **state)
{
	(void)state;
	assert_int_equal(events("netlink-ev-v4-route-add.hex"), PM_NET_EV_ROUTE);
	assert_int_equal(events("netlink-ev-v4-route-del.hex"), PM_NET_EV_ROUTE);
	assert_int_equal(events("netlink-ev-v6-route-add.hex"), PM_NET_EV_ROUTE);
	assert_int_equal(events("netlink-ev-v6-route-del.hex"), PM_NET_EV_ROUTE);
}

static void test_events_addr(void **state)
{
	(void)state;
	/* The kernel's prefix and local routes that come with an address are not default routes. */
	assert_int_equal(events("netlink-ev-v4-addr-add.hex"), PM_NET_EV_ADDR);
	assert_int_equal(events("netlink-ev-v4-addr-del.hex"), PM_NET_EV_ADDR);
	assert_int_equal(events("netlink-ev-v6-addr-add.hex"), PM_NET_EV_ADDR);
	assert_int_equal(events("netlink-ev-v6-addr-del.hex"), PM_NET_EV_ADDR);
	/* A tentative (DAD pending) address is not usable yet. */
	assert_int_equal(events("netlink-ev-v6-addr-tentative.hex"), 0);
	assert_int_equal(events("netlink-ev-v6-addr-del-after-dad.hex"), PM_NET_EV_ADDR);
}

static void test_events_link(void **state)
{
	(void)state;
	/* peer down: pmv1 IFF_UP change, then pmv0 carrier loss (ifi_change 0) */
	assert_int_equal(events("netlink-ev-link-down.hex"), PM_NET_EV_LINK);
	assert_int_equal(events("netlink-ev-link-up.hex"), PM_NET_EV_LINK);
	/* Known over-report: an MTU change carries ifi_change 0 like a carrier change. */
	assert_int_equal(events("netlink-ev-mtu.hex"), PM_NET_EV_LINK);
}

static void test_events_irrelevant(void **state)
{
	(void)state;
	/* non-default routes, default in table 101, host- and link-scope addresses, promisc flag */
	assert_int_equal(events("netlink-ev-irrelevant.hex"), 0);
}

static void test_events_concat_and_dumps(void **state)
{
	struct vec a = load("netlink-ev-v4-route-add.hex");
	struct vec b = load("netlink-ev-v6-addr-add.hex");
	struct vec c = load("netlink-ev-irrelevant.hex");
	struct vec d1 = load("netlink-dump-v4-one.hex");
	struct vec d0 = load("netlink-dump-v4-none.hex");
	uint8_t *all = malloc(a.len + b.len + c.len);
	unsigned m;

	(void)state;
	assert_non_null(all);
	memcpy(all, c.b, c.len);
	memcpy(all + c.len, a.b, a.len);
	memcpy(all + c.len + a.len, b.b, b.len);
	assert_int_equal(pm_net_parse_events(all, a.len + b.len + c.len, &m), 0);
	assert_int_equal(m, PM_NET_EV_ROUTE | PM_NET_EV_ADDR);
	/* Dump replies are RTM_NEWROUTE too: the main default route counts, the table-100 one does not. */
	assert_int_equal(pm_net_parse_events(d1.b, d1.len, &m), 0);
	assert_int_equal(m, PM_NET_EV_ROUTE);
	assert_int_equal(pm_net_parse_events(d0.b, d0.len, &m), 0);
	assert_int_equal(m, 0);
	free(all);
	free(a.b);
	free(b.b);
	free(c.b);
	free(d1.b);
	free(d0.b);
}

static void check_prefixes_events(const char *name)
{
	struct vec v = load(name);
	size_t offs[64], n = msg_offsets(&v, offs, 63), cut, k = 0;

	for (cut = 1; cut < v.len; cut++) {
		unsigned m = 0xdead;
		int r = pm_net_parse_events(v.b, cut, &m);

		while (k <= n && offs[k] < cut)
			k++;
		if (offs[k] == cut) {
			assert_int_equal(r, 0);
		} else {
			if (r != -EBADMSG)
				fail_msg("%s cut at %zu: %d", name, cut, r);
			assert_int_equal(m, 0xdead); /* untouched on failure */
		}
	}
	free(v.b);
}

static void test_events_malformed(void **state)
{
	struct vec v;
	unsigned m;
	uint8_t *a;

	(void)state;
	check_prefixes_events("netlink-ev-link-up.hex");
	check_prefixes_events("netlink-ev-v6-addr-add.hex");
	check_prefixes_events("netlink-ev-v4-route-add.hex");

	/* IFA_FLAGS of 2 bytes */
	v = load("netlink-ev-v6-addr-add.hex");
	a = find_attr(&v, find_msg(&v, RTM_NEWADDR), sizeof(struct ifaddrmsg), IFA_FLAGS);
	assert_non_null(a);
	wr16(a, 6);
	assert_int_equal(pm_net_parse_events(v.b, v.len, &m), -EBADMSG);
	free(v.b);

	/* an ifinfomsg attribute running past its message */
	v = load("netlink-ev-link-down.hex");
	a = find_attr(&v, find_msg(&v, RTM_NEWLINK), sizeof(struct ifinfomsg), IFLA_IFNAME);
	assert_non_null(a);
	wr16(a, 0xfff0);
	assert_int_equal(pm_net_parse_events(v.b, v.len, &m), -EBADMSG);
	free(v.b);

	assert_int_equal(pm_net_parse_events("xyz", 3, &m), -EBADMSG);
	assert_int_equal(pm_net_parse_events(NULL, 0, &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(pm_net_parse_events(NULL, 3, &m), -EINVAL);
	assert_int_equal(pm_net_parse_events("xyz", 3, NULL), -EINVAL);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Socket addresses */

static void roundtrip(const char *host, uint16_t port, const char *want)
{
	struct pm_sockaddr sa;
	char s[PM_SOCKADDR_STRLEN];

	assert_int_equal(pm_sockaddr_set(&sa, host, port), 0);
	assert_int_equal(pm_sockaddr_to_string(&sa, s, sizeof(s)), (int)strlen(want));
	assert_string_equal(s, want);
}

static void test_sockaddr_roundtrip(void **state)
{
	char lo[IF_NAMESIZE], want[64];
	struct pm_sockaddr sa;
	unsigned lo_idx = if_nametoindex("lo");

	(void)state;
	assert_true(lo_idx > 0);
	assert_non_null(if_indextoname(lo_idx, lo));

	roundtrip("192.0.2.1", 5351, "192.0.2.1:5351");
	roundtrip("0.0.0.0", 0, "0.0.0.0:0");
	roundtrip("255.255.255.255", 65535, "255.255.255.255:65535");
	roundtrip("2001:db8::1", 5351, "[2001:db8::1]:5351");
	roundtrip("2001:DB8:0:0::1", 5351, "[2001:db8::1]:5351");
	roundtrip("::ffff:192.0.2.1", 5351, "[::ffff:192.0.2.1]:5351");
	roundtrip("fe80::1", 5351, "[fe80::1]:5351");
	roundtrip("fe80::1%lo", 5351, "[fe80::1%lo]:5351");
	roundtrip("ff02::1%lo", 5350, "[ff02::1%lo]:5350");
	snprintf(want, sizeof(want), "fe80::1%%%u", lo_idx);
	roundtrip(want, 5351, "[fe80::1%lo]:5351");

	assert_int_equal(pm_sockaddr_set(&sa, "192.0.2.7", 1234), 0);
	assert_int_equal(sa.len, sizeof(struct sockaddr_in));
	assert_int_equal(sa.u.in.sin_family, AF_INET);
	assert_int_equal(ntohs(sa.u.in.sin_port), 1234);
	assert_int_equal(ntohl(sa.u.in.sin_addr.s_addr), 0xc0000207u);
	assert_int_equal(pm_sockaddr_set(&sa, "fe80::1%lo", 1), 0);
	assert_int_equal(sa.len, sizeof(struct sockaddr_in6));
	assert_int_equal(sa.u.in6.sin6_scope_id, lo_idx);
	/* an index with no interface prints numerically */
	assert_int_equal(pm_sockaddr_set(&sa, "fe80::2%99999", 7), 0);
	assert_int_equal(sa.u.in6.sin6_scope_id, 99999);
	{
		char s[PM_SOCKADDR_STRLEN];

		assert_int_equal(pm_sockaddr_to_string(&sa, s, sizeof(s)), 17);
		assert_string_equal(s, "[fe80::2%99999]:7");
	}
}

static void test_sockaddr_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"1.2.3",
		"1.2.3.4.5",
		"256.1.1.1",
		" 1.2.3.4",
		"1.2.3.4 ",
		"host.example",
		"[::1]",
		"::1]",
		"1.2.3.4%lo",
		"2001:db8::1%lo",
		"fe80::1%",
		"fe80::1%lo%lo",
		"fe80::1%a/b",
		"fe80::1%0",
		"fe80::1%0123456789abcdef",
		"%lo",
		"::1::",
		"fe80::1%4294967296",
		"1.2.3.4:5351",
	};
	struct pm_sockaddr sa, keep;
	char s[PM_SOCKADDR_STRLEN];
	size_t i;

	(void)state;
	memset(&sa, 0x5a, sizeof(sa));
	keep = sa;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = pm_sockaddr_set(&sa, bad[i], 1);

		if (r != -EINVAL)
			fail_msg("\"%s\": %d", bad[i], r);
		assert_memory_equal(&sa, &keep, sizeof(sa));
	}
	assert_int_equal(pm_sockaddr_set(&sa, "fe80::1%pmnosuchif9", 1), -ENODEV);
	assert_int_equal(pm_sockaddr_set(&sa, NULL, 1), -EINVAL);
	assert_int_equal(pm_sockaddr_set(NULL, "1.2.3.4", 1), -EINVAL);
	assert_memory_equal(&sa, &keep, sizeof(sa));

	/* to_string: buffer sizes and bad addresses */
	assert_int_equal(pm_sockaddr_set(&sa, "192.0.2.1", 5351), 0);
	memset(s, 'x', sizeof(s));
	assert_int_equal(pm_sockaddr_to_string(&sa, s, 14), -ENOSPC);
	assert_int_equal(s[0], 'x');
	assert_int_equal(pm_sockaddr_to_string(&sa, s, 15), 14);
	assert_string_equal(s, "192.0.2.1:5351");
	assert_int_equal(pm_sockaddr_to_string(&sa, NULL, 0), -ENOSPC);
	sa.len = 4;
	assert_int_equal(pm_sockaddr_to_string(&sa, s, sizeof(s)), -EINVAL);
	sa.len = sizeof(sa.u.in);
	sa.u.sa.sa_family = AF_UNIX;
	assert_int_equal(pm_sockaddr_to_string(&sa, s, sizeof(s)), -EINVAL);
	assert_int_equal(pm_sockaddr_to_string(NULL, s, sizeof(s)), -EINVAL);
}

static void test_sockaddr_from_gateway(void **state)
{
	struct pm_gateway gw;
	struct pm_sockaddr sa;
	char s[PM_SOCKADDR_STRLEN];

	(void)state;
	memset(&gw, 0, sizeof(gw));
	gw.family = AF_INET;
	inet_pton(AF_INET, "10.0.0.1", &gw.addr.v4);
	gw.ifindex = 7;
	assert_int_equal(pm_sockaddr_from_gateway(&sa, &gw, 5351), 0);
	assert_int_equal(pm_sockaddr_to_string(&sa, s, sizeof(s)), 13);
	assert_string_equal(s, "10.0.0.1:5351");

	gw.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &gw.addr.v6);
	assert_int_equal(pm_sockaddr_from_gateway(&sa, &gw, 5351), 0);
	assert_int_equal(sa.u.in6.sin6_scope_id, 0); /* global: no scope */
	assert_int_equal(sa.len, sizeof(struct sockaddr_in6));

	inet_pton(AF_INET6, "fe80::1", &gw.addr.v6);
	gw.ifindex = (int)if_nametoindex("lo");
	assert_int_equal(pm_sockaddr_from_gateway(&sa, &gw, 5351), 0);
	assert_int_equal(sa.u.in6.sin6_scope_id, (uint32_t)gw.ifindex);
	assert_int_equal(pm_sockaddr_to_string(&sa, s, sizeof(s)), 17);
	assert_string_equal(s, "[fe80::1%lo]:5351");

	gw.ifindex = 0;
	memset(&sa, 0x11, sizeof(sa));
	assert_int_equal(pm_sockaddr_from_gateway(&sa, &gw, 5351), -EINVAL);
	assert_int_equal(sa.u.sa.sa_family, 0x1111);
	gw.family = AF_UNSPEC;
	assert_int_equal(pm_sockaddr_from_gateway(&sa, &gw, 5351), -EINVAL);
	assert_int_equal(pm_sockaddr_from_gateway(&sa, NULL, 5351), -EINVAL);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* UDP on loopback */

static void assert_nonblock_cloexec(int fd)
{
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* A plain UDP socket bound to addr:0; fills its address. */
static int bound_udp(const char *addr, struct pm_sockaddr *ret)
{
	struct pm_sockaddr sa;
	int fd;

	assert_int_equal(pm_sockaddr_set(&sa, addr, 0), 0);
	fd = socket(sa.u.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (bind(fd, &sa.u.sa, sa.len) < 0) {
		close(fd);
		return -errno;
	}
	ret->len = sizeof(ret->u);
	assert_int_equal(getsockname(fd, &ret->u.sa, &ret->len), 0);
	return fd;
}

static void wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 2000), 1);
}

static void udp_exchange(const char *loop)
{
	struct pm_sockaddr srv, local, from;
	char buf[256], big[100];
	int s, c, other;
	ssize_t n;

	s = bound_udp(loop, &srv);
	if (s < 0) {
		print_message("no %s here (%d), skipping that family\n", loop, s);
		return;
	}
	assert_int_equal(pm_udp_connect(&srv, &c, &local), 0);
	assert_nonblock_cloexec(c);
	assert_int_equal(local.u.sa.sa_family, srv.u.sa.sa_family);
	if (local.u.sa.sa_family == AF_INET) {
		assert_int_equal(local.u.in.sin_addr.s_addr, srv.u.in.sin_addr.s_addr);
		assert_int_not_equal(local.u.in.sin_port, 0);
	} else {
		assert_memory_equal(&local.u.in6.sin6_addr, &srv.u.in6.sin6_addr, 16);
		assert_int_not_equal(local.u.in6.sin6_port, 0);
	}
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), -EAGAIN);

	assert_int_equal(pm_udp_send(c, "ping", 4), 0);
	from.len = sizeof(from.u);
	n = recvfrom(s, buf, sizeof(buf), 0, &from.u.sa, &from.len);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(from.len, local.len);
	assert_memory_equal(&from.u, &local.u, local.len); /* getsockname told the truth */

	assert_int_equal(sendto(s, "pong!", 5, 0, &local.u.sa, local.len), 5);
	wait_readable(c);
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "pong!", 5);

	/* Truncated: -EMSGSIZE, and the datagram is gone. */
	memset(big, 7, sizeof(big));
	assert_int_equal(sendto(s, big, sizeof(big), 0, &local.u.sa, local.len), (ssize_t)sizeof(big));
	wait_readable(c);
	assert_int_equal(pm_udp_recv(c, buf, 10), -EMSGSIZE);
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), -EAGAIN);
	/* Exactly fitting is not truncation; an empty datagram is length 0. */
	assert_int_equal(sendto(s, big, 10, 0, &local.u.sa, local.len), 10);
	wait_readable(c);
	assert_int_equal(pm_udp_recv(c, buf, 10), 10);
	assert_int_equal(sendto(s, "", 0, 0, &local.u.sa, local.len), 0);
	wait_readable(c);
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), 0);

	/* The connected socket only hears its server. */
	other = bound_udp(loop, &from);
	assert_true(other >= 0);
	assert_int_equal(sendto(other, "spoof", 5, 0, &local.u.sa, local.len), 5);
	assert_int_equal(sendto(s, "real", 4, 0, &local.u.sa, local.len), 4);
	wait_readable(c);
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "real", 4);
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), -EAGAIN);

	/* pm_udp_recvfrom reports the sender */
	assert_int_equal(pm_udp_send(c, "hi", 2), 0);
	wait_readable(s);
	memset(&from, 0, sizeof(from));
	assert_int_equal(pm_udp_recvfrom(s, buf, sizeof(buf), &from), 2);
	assert_int_equal(from.len, local.len);
	assert_memory_equal(&from.u, &local.u, local.len);
	assert_int_equal(pm_udp_send(c, "0123456789", 10), 0);
	wait_readable(s);
	assert_int_equal(pm_udp_recvfrom(s, buf, 4, NULL), -EMSGSIZE);
	assert_int_equal(pm_udp_recvfrom(s, buf, sizeof(buf), &from), -EAGAIN);

	close(other);
	close(c);
	close(s);
}

static void test_udp_loopback(void **state)
{
	(void)state;
	udp_exchange("127.0.0.1");
	udp_exchange("::1");
}

static void refused(const char *loop)
{
	struct pm_sockaddr dead, local;
	struct pollfd p;
	char buf[16];
	int s, c, r;

	s = bound_udp(loop, &dead);
	if (s < 0)
		return;
	close(s); /* nobody listens there now */
	assert_int_equal(pm_udp_connect(&dead, &c, &local), 0);
	assert_int_equal(pm_udp_send(c, "probe", 5), 0);
	/* The ICMP port unreachable comes back as a socket error. */
	p.fd = c;
	p.events = POLLIN;
	p.revents = 0;
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_true(p.revents & POLLERR);
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), -ECONNREFUSED);
	/* Reported once; the socket stays usable. */
	assert_int_equal(pm_udp_recv(c, buf, sizeof(buf)), -EAGAIN);
	/* And a second probe surfaces on send or recv. */
	r = pm_udp_send(c, "probe", 5);
	if (r == 0) {
		assert_int_equal(poll(&p, 1, 2000), 1);
		r = (int)pm_udp_recv(c, buf, sizeof(buf));
	}
	assert_int_equal(r, -ECONNREFUSED);
	close(c);
}

static void test_udp_refused(void **state)
{
	(void)state;
	refused("127.0.0.1");
	refused("::1");
}

static void test_udp_bad_args(void **state)
{
	struct pm_sockaddr sa;
	char buf[4];
	int fd;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	assert_int_equal(pm_udp_connect(&sa, &fd, NULL), -EINVAL);
	assert_int_equal(pm_udp_connect(NULL, &fd, NULL), -EINVAL);
	assert_int_equal(pm_sockaddr_set(&sa, "127.0.0.1", 9), 0);
	assert_int_equal(pm_udp_connect(&sa, NULL, NULL), -EINVAL);
	assert_int_equal(pm_udp_send(-1, "x", 1), -EINVAL);
	assert_int_equal(pm_udp_recv(-1, buf, sizeof(buf)), -EINVAL);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pm_udp_send(fd, "x", 1), -ENOTSOCK);
	close(fd);
	assert_int_equal(pm_udp_multicast_listener(AF_UNSPEC, 5350, 0, &fd), -EINVAL);
	assert_int_equal(pm_udp_multicast_listener(AF_INET, 5350, -1, &fd), -EINVAL);
	assert_int_equal(pm_udp_multicast_listener(AF_INET, 5350, 0, NULL), -EINVAL);
}

/* A free UDP port number (bound and released). */
static uint16_t free_port(void)
{
	struct pm_sockaddr sa;
	int s = bound_udp("127.0.0.1", &sa);

	assert_true(s >= 0);
	close(s);
	return ntohs(sa.u.in.sin_port);
}

static void test_multicast_coexist(void **state)
{
	int lo = (int)if_nametoindex("lo"), a, b, c, d, r;
	uint16_t port = free_port();
	struct pm_sockaddr sa;

	(void)state;
	assert_true(lo > 0);
	/* Two clients on one host, same port: both binds must succeed (nothing is sent). */
	assert_int_equal(pm_udp_multicast_listener(AF_INET, port, lo, &a), 0);
	assert_int_equal(pm_udp_multicast_listener(AF_INET, port, lo, &b), 0);
	assert_nonblock_cloexec(a);
	assert_nonblock_cloexec(b);
	sa.len = sizeof(sa.u);
	assert_int_equal(getsockname(b, &sa.u.sa, &sa.len), 0);
	assert_int_equal(ntohs(sa.u.in.sin_port), port);
	assert_int_equal(ntohl(sa.u.in.sin_addr.s_addr), 0xe0000001u); /* 224.0.0.1 */
	r = pm_udp_multicast_listener(AF_INET6, port, lo, &c);
	if (r == -EAFNOSUPPORT || r == -ENODEV || r == -EADDRNOTAVAIL) {
		print_message("no IPv6 on lo (%d), skipping the AF_INET6 listeners\n", r);
	} else {
		assert_int_equal(r, 0);
		assert_int_equal(pm_udp_multicast_listener(AF_INET6, port, lo, &d), 0);
		assert_nonblock_cloexec(d);
		assert_int_equal(pm_udp_recvfrom(d, NULL, 0, NULL), -EAGAIN);
		close(c);
		close(d);
	}
	assert_int_equal(pm_udp_recvfrom(a, NULL, 0, NULL), -EAGAIN);
	close(a);
	close(b);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Live checks in a private network namespace (child process; the host's network is never touched) */

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			return __LINE__ % 200 + 1;                                               \
		}                                                                                \
	} while (0)

static int sh(const char *cmd)
{
	int r = system(cmd);

	if (r != 0)
		fprintf(stderr, "command failed (%d): %s\n", r, cmd);
	return r;
}

static int run_in_netns(int (*fn)(void))
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0) {
			fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
			_exit(SKIP_CODE);
		}
		if (system("ip -V >/dev/null 2>&1") != 0)
			_exit(SKIP_CODE);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int ns_setup(void)
{
	if (sh("ip link set lo up && ip link add pmv0 type veth peer name pmv1 && "
	       "sysctl -qw net.ipv6.conf.pmv0.accept_dad=0 net.ipv6.conf.pmv1.accept_dad=0 && "
	       "ip link set pmv0 up && ip link set pmv1 up && ip addr add 10.99.0.2/24 dev pmv0 && "
	       "ip addr add 2001:db8:99::2/64 dev pmv0 nodad") != 0)
		return 1;
	/* The veth carrier comes up through the kernel's link watch (deferred up to a second), and only then
	 * the IPv6 link-local addresses and routes: wait for them, or their events land in the middle of a
	 * test's assertions on a loaded machine. Bounded: 100 x 20 ms. */
	for (int i = 0; i < 100; i++) {
		if (system(
			"ip -6 addr show dev pmv0 scope link | grep -q fe80:: && "
			"ip -6 addr show dev pmv1 scope link | grep -q fe80:: && "
			"ip link show pmv0 | grep -q 'state UP' && ip link show pmv1 | grep -q 'state UP'") ==
		    0)
			return 0;
		usleep(20000);
	}
	return 1;
}

static int ns_gateway(void)
{
	struct pm_gateway gw;
	char s[INET6_ADDRSTRLEN];
	int idx;

	CHECK(ns_setup() == 0);
	idx = (int)if_nametoindex("pmv0");
	CHECK(idx > 0);
	CHECK(pm_net_default_gateway(AF_INET, &gw) == -ENOENT);
	CHECK(pm_net_default_gateway(AF_INET6, &gw) == -ENOENT);
	CHECK(pm_net_default_gateway(AF_UNSPEC, &gw) == -EINVAL);
	CHECK(sh("ip route add default via 10.99.0.1 metric 200 && ip route add default via 10.99.0.254 "
		 "metric 100 "
		 "&& ip route add default via 10.99.0.9 table 100 && "
		 "ip -6 route add default via fe80::1 dev pmv0 metric 50 && "
		 "ip -6 route add default via 2001:db8:99::1 metric 60") == 0);
	memset(&gw, 0, sizeof(gw));
	CHECK(pm_net_default_gateway(AF_INET, &gw) == 0);
	CHECK(gw.family == AF_INET && gw.ifindex == idx && gw.metric == 100);
	CHECK(strcmp(gw.ifname, "pmv0") == 0);
	CHECK(inet_ntop(AF_INET, &gw.addr.v4, s, sizeof(s)) && strcmp(s, "10.99.0.254") == 0);
	memset(&gw, 0, sizeof(gw));
	CHECK(pm_net_default_gateway(AF_INET6, &gw) == 0);
	CHECK(gw.family == AF_INET6 && gw.ifindex == idx && gw.metric == 50);
	CHECK(strcmp(gw.ifname, "pmv0") == 0);
	CHECK(inet_ntop(AF_INET6, &gw.addr.v6, s, sizeof(s)) && strcmp(s, "fe80::1") == 0);
	return 0;
}

static void test_live_default_gateway(void **state)
{
	int r = run_in_netns(ns_gateway);

	(void)state;
	if (r == SKIP_CODE)
		skip();
	assert_int_equal(r, 0);
}

static int monitor_mask(int fd, unsigned *mask)
{
	return pm_net_monitor_read(fd, mask);
}

static int ns_monitor(void)
{
	unsigned m = 99;
	int fd;

	CHECK(ns_setup() == 0);
	CHECK(pm_net_monitor_open(&fd) == 0);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	CHECK(monitor_mask(fd, &m) == 0 && m == 0);
	CHECK(sh("ip route add default via 10.99.0.1") == 0);
	CHECK(monitor_mask(fd, &m) == 0 && m == PM_NET_EV_ROUTE);
	CHECK(monitor_mask(fd, &m) == 0 && m == 0); /* drained */
	CHECK(sh("ip addr add 10.99.1.2/24 dev pmv0 && ip -6 route add default via 2001:db8:99::1") == 0);
	CHECK(monitor_mask(fd, &m) == 0 && m == (PM_NET_EV_ROUTE | PM_NET_EV_ADDR));
	CHECK(sh("ip route add 198.51.100.0/24 via 10.99.0.1 && ip addr add fe80::99/64 dev pmv0 nodad") ==
	      0);
	CHECK(monitor_mask(fd, &m) == 0 && m == 0);
	CHECK(sh("ip link set pmv1 down") == 0);
	CHECK(monitor_mask(fd, &m) == 0 && (m & PM_NET_EV_LINK));
	close(fd);
	CHECK(pm_net_monitor_read(fd, &m) == -EBADF);
	return 0;
}

static void test_live_monitor(void **state)
{
	int r = run_in_netns(ns_monitor);

	(void)state;
	if (r == SKIP_CODE)
		skip();
	assert_int_equal(r, 0);
}

static int ns_multicast_all(void)
{
	int a, b, c, d;

	/* Nothing up and multicast-capable (lo has no IFF_MULTICAST): no interface to join on. */
	CHECK(sh("ip link set lo up") == 0);
	CHECK(pm_udp_multicast_listener(AF_INET, 5350, 0, &a) == -ENODEV);
	CHECK(sh("ip link add pmv0 type veth peer name pmv1 && ip link set pmv0 up && ip link set pmv1 up") ==
	      0);
	CHECK(pm_udp_multicast_listener(AF_INET, 5350, 0, &a) == 0);
	CHECK(pm_udp_multicast_listener(AF_INET, 5350, 0, &b) == 0);
	CHECK(pm_udp_multicast_listener(AF_INET6, 5350, 0, &c) == 0);
	CHECK(pm_udp_multicast_listener(AF_INET6, 5350, 0, &d) == 0);
	close(a);
	close(b);
	close(c);
	close(d);
	return 0;
}

static void test_live_multicast_all_interfaces(void **state)
{
	int r = run_in_netns(ns_multicast_all);

	(void)state;
	if (r == SKIP_CODE)
		skip();
	assert_int_equal(r, 0);
}

struct links_seen {
	unsigned idx[256];
	unsigned flags[256];
	size_t n;
};

static int links_cb(int ifindex, unsigned flags, void *arg)
{
	struct links_seen *s = arg;
	if (s->n < 256) {
		s->idx[s->n] = (unsigned)ifindex;
		s->flags[s->n++] = flags;
	}
	return 0;
}

static int links_stop(int ifindex, unsigned flags, void *arg)
{
	(void)ifindex;
	(void)flags;
	(void)arg;
	return -ECANCELED;
}

/* pm_net_links and pm_net_ifname (rtnetlink and SIOCGIFNAME) agree with libc's if_nameindex on this host. */
static void test_live_links_and_names(void **state)
{
	(void)state;
	struct links_seen s = { .n = 0 };
	assert_int_equal(pm_net_links(links_cb, &s), 0);
	struct if_nameindex *ifs = if_nameindex();
	assert_non_null(ifs);
	size_t n = 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++, n++) {
		size_t k = 0;
		while (k < s.n && s.idx[k] != i->if_index)
			k++;
		assert_true(k < s.n); /* every interface libc lists, the dump lists */
		char name[IF_NAMESIZE];
		assert_int_equal(pm_net_ifname((int)i->if_index, name), 0);
		assert_string_equal(name, i->if_name);
		if (!strcmp(i->if_name, "lo"))
			assert_true(s.flags[k] & IFF_LOOPBACK);
	}
	assert_int_equal(s.n, n);
	if_freenameindex(ifs);
	char name[IF_NAMESIZE];
	assert_int_equal(pm_net_ifname(0, name), -ENODEV);
	assert_int_equal(pm_net_ifname(0x7ffffff0, name), -ENXIO);
	assert_int_equal(pm_net_links(links_stop, NULL), -ECANCELED);
	assert_int_equal(pm_net_links(NULL, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dump_v4_none),
		cmocka_unit_test(test_dump_v4_one),
		cmocka_unit_test(test_dump_v4_two_metrics),
		cmocka_unit_test(test_dump_lowest_metric_any_order),
		cmocka_unit_test(test_dump_v4_multipath),
		cmocka_unit_test(test_dump_v6_none),
		cmocka_unit_test(test_dump_v6_one),
		cmocka_unit_test(test_dump_v6_two_metrics),
		cmocka_unit_test(test_dump_v6_linklocal),
		cmocka_unit_test(test_dump_v6_multipath),
		cmocka_unit_test(test_dump_dead_nexthops),
		cmocka_unit_test(test_dump_bad_args),
		cmocka_unit_test(test_dump_truncated),
		cmocka_unit_test(test_dump_corrupt_attributes),
		cmocka_unit_test(test_dump_garbage),
		cmocka_unit_test(test_dump_misaligned),
		cmocka_unit_test(test_dump_kernel_errors),
		cmocka_unit_test(test_events_route),
		cmocka_unit_test(test_events_addr),
		cmocka_unit_test(test_events_link),
		cmocka_unit_test(test_events_irrelevant),
		cmocka_unit_test(test_events_concat_and_dumps),
		cmocka_unit_test(test_events_malformed),
		cmocka_unit_test(test_sockaddr_roundtrip),
		cmocka_unit_test(test_sockaddr_bad),
		cmocka_unit_test(test_sockaddr_from_gateway),
		cmocka_unit_test(test_udp_loopback),
		cmocka_unit_test(test_udp_refused),
		cmocka_unit_test(test_udp_bad_args),
		cmocka_unit_test(test_multicast_coexist),
		cmocka_unit_test(test_live_default_gateway),
		cmocka_unit_test(test_live_monitor),
		cmocka_unit_test(test_live_multicast_all_interfaces),
		cmocka_unit_test(test_live_links_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
