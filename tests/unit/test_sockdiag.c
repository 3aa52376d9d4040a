/*
 * cli/sockdiag: the SOCK_DIAG_BY_FAMILY request, the reply parser on dumps captured from a real kernel
 * (tests/vectors/sockdiag-*.hex, a throwaway namespace with TCP and UDP sockets on loopback), malformed input,
 * the stable sort, and a live dump in a network namespace this test creates itself (skipped when that is not
 * permitted). The connection list feeds PEER mappings (RFC 6887 §12).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "vectors.h"
#include "sockdiag.h"

#define SKIP_CODE 77
#define MSG_LEN   124 /* nlmsghdr + inet_diag_msg + 4 attributes, as the kernel sent them with idiag_ext 0 */
#define DONE_LEN  20

/* ---------------------------------------------------------------------------------------------------------- */
/* Vector helpers */

static void wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* A parse into a fresh array. */
struct list {
	struct pm_net_conn *a;
	size_t n, cap;
};

static int parse(const void *buf, size_t len, uint8_t proto, struct list *l)
{
	return pm_net_sockdiag_parse(buf, len, proto, &l->a, &l->n, &l->cap);
}

static void expect_conn(const struct pm_net_conn *c, int family, uint8_t proto, const char *local,
			uint16_t lport, const char *remote, uint16_t rport, uint32_t uid, uint32_t inode)
{
	assert_int_equal(c->family, family);
	assert_int_equal(c->proto, proto);
	assert_string_equal(c->local, local);
	assert_int_equal(c->lport, lport);
	assert_string_equal(c->remote, remote);
	assert_int_equal(c->rport, rport);
	assert_int_equal(c->uid, uid);
	assert_int_equal(c->inode, inode);
	assert_int_equal(c->ifindex, 0);
	assert_string_equal(c->state, proto == IPPROTO_TCP ? "established" : "connected");
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Request */

static void test_request_matches_capture(void **state)
{
	struct vec v = load("sockdiag-req-tcp4-est.hex");
	uint8_t buf[PM_NET_SOCKDIAG_REQ_LEN + 8];

	(void)state;
	assert_int_equal(v.len, PM_NET_SOCKDIAG_REQ_LEN);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(pm_net_sockdiag_request(buf, sizeof(buf), AF_INET, IPPROTO_TCP,
						 1u << PM_NET_SOCKDIAG_ESTABLISHED, 1),
			 PM_NET_SOCKDIAG_REQ_LEN);
	assert_memory_equal(buf, v.b, v.len);
	assert_int_equal(buf[PM_NET_SOCKDIAG_REQ_LEN], 0xee); /* nothing past the request */
	/* Unaligned output buffer, other family, protocol, states and sequence. */
	assert_int_equal(pm_net_sockdiag_request(buf + 1, PM_NET_SOCKDIAG_REQ_LEN, AF_INET6, IPPROTO_UDP,
						 0xffffffffu, 0x01020304),
			 PM_NET_SOCKDIAG_REQ_LEN);
	assert_int_equal(buf[1 + 4], SOCK_DIAG_BY_FAMILY);
	assert_int_equal(buf[1 + 8], 0x04);
	assert_int_equal(buf[1 + 16], AF_INET6);
	assert_int_equal(buf[1 + 17], IPPROTO_UDP);
	assert_int_equal(buf[1 + 20], 0xff);
	free(v.b);
}

static void test_request_bad_args(void **state)
{
	uint8_t buf[PM_NET_SOCKDIAG_REQ_LEN];

	(void)state;
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(pm_net_sockdiag_request(buf, sizeof(buf) - 1, AF_INET, IPPROTO_TCP, 2, 1), -ENOSPC);
	assert_int_equal(buf[0], 0x5a); /* untouched */
	assert_int_equal(pm_net_sockdiag_request(NULL, sizeof(buf), AF_INET, IPPROTO_TCP, 2, 1), -EINVAL);
	assert_int_equal(pm_net_sockdiag_request(buf, sizeof(buf), AF_UNIX, IPPROTO_TCP, 2, 1), -EINVAL);
	assert_int_equal(pm_net_sockdiag_request(buf, sizeof(buf), AF_INET, 132, 2, 1), -EINVAL);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Captured dumps */

static void test_parse_tcp4(void **state)
{
	struct vec v = load("sockdiag-tcp4-all.hex");
	struct list l = { 0 };

	(void)state;
	/* The listener on 40001 is left out; the two ends of 41001<->40001 and the client of 41003 stay. */
	assert_int_equal(parse(v.b, v.len, IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 3);
	expect_conn(&l.a[0], AF_INET, IPPROTO_TCP, "127.0.0.1", 41001, "127.0.0.1", 40001, 0, 1182536);
	expect_conn(&l.a[1], AF_INET, IPPROTO_TCP, "127.0.0.1", 40001, "127.0.0.1", 41001, 0, 1182537);
	expect_conn(&l.a[2], AF_INET, IPPROTO_TCP, "127.0.0.1", 41003, "127.0.0.1", 40003, 0, 1182542);
	assert_true(l.cap >= l.n);
	free(l.a);
	free(v.b);
}

static void test_parse_tcp6_v4_mapped(void **state)
{
	struct vec v = load("sockdiag-tcp6-all.hex");
	struct list l = { 0 };

	(void)state;
	/* Two listeners left out; the accepted side of the dual-stack listener is reported as IPv4. */
	assert_int_equal(parse(v.b, v.len, IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 3);
	expect_conn(&l.a[0], AF_INET6, IPPROTO_TCP, "::1", 40002, "::1", 41002, 0, 1182540);
	expect_conn(&l.a[1], AF_INET, IPPROTO_TCP, "127.0.0.1", 40003, "127.0.0.1", 41003, 0, 1182543);
	expect_conn(&l.a[2], AF_INET6, IPPROTO_TCP, "::1", 41002, "::1", 40002, 0, 1182539);
	free(l.a);
	free(v.b);
}

static void test_parse_udp4_connected_only(void **state)
{
	struct vec v = load("sockdiag-udp4-all.hex");
	struct list l = { 0 };

	(void)state;
	assert_int_equal(parse(v.b, v.len, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 2); /* 127.0.0.1:40010 is unconnected (state CLOSE, remote port 0) */
	expect_conn(&l.a[0], AF_INET, IPPROTO_UDP, "127.0.0.1", 40011, "127.0.0.1", 40010, 0, 1182545);
	expect_conn(&l.a[1], AF_INET, IPPROTO_UDP, "127.0.0.1", 40015, "127.0.0.1", 40010, 65534, 1182549);
	free(l.a);
	free(v.b);
}

static void test_parse_udp6(void **state)
{
	struct vec v = load("sockdiag-udp6-all.hex");
	struct list l = { 0 };

	(void)state;
	assert_int_equal(parse(v.b, v.len, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 2);
	expect_conn(&l.a[0], AF_INET6, IPPROTO_UDP, "::1", 40012, "::1", 40013, 0, 1182546);
	expect_conn(&l.a[1], AF_INET, IPPROTO_UDP, "127.0.0.1", 40014, "127.0.0.1", 40010, 0, 1182548);
	free(l.a);
	free(v.b);
}

static void test_parse_many_attributes(void **state)
{
	struct vec v = load("sockdiag-tcp4-est-ext.hex");
	struct vec plain = load("sockdiag-tcp4-all.hex");
	struct list l = { 0 }, p = { 0 };

	(void)state;
	/* idiag_ext 0xff: MEMINFO, INFO (tcp_info), CONG, TOS, SKMEMINFO, ... do not change the records. */
	assert_int_equal(parse(v.b, v.len, IPPROTO_TCP, &l), 1);
	assert_int_equal(parse(plain.b, plain.len, IPPROTO_TCP, &p), 1);
	assert_int_equal(l.n, 3);
	assert_int_equal(p.n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(l.a[i].local, p.a[i].local);
		assert_int_equal(l.a[i].lport, p.a[i].lport);
		assert_string_equal(l.a[i].remote, p.a[i].remote);
		assert_int_equal(l.a[i].rport, p.a[i].rport);
		assert_int_equal(l.a[i].inode, p.a[i].inode);
	}
	free(l.a);
	free(p.a);
	free(v.b);
	free(plain.b);
}

static void test_parse_appends_and_grows(void **state)
{
	struct vec t4 = load("sockdiag-tcp4-all.hex");
	struct vec t6 = load("sockdiag-tcp6-all.hex");
	struct list l = { 0 };

	(void)state;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(parse(t4.b, t4.len, IPPROTO_TCP, &l), 1);
		assert_int_equal(parse(t6.b, t6.len, IPPROTO_TCP, &l), 1);
	}
	assert_int_equal(l.n, 60);
	assert_true(l.cap >= 60);
	assert_int_equal(l.a[0].lport, 41001);
	assert_int_equal(l.a[3].lport, 40002);
	assert_int_equal(l.a[57].lport, 40002);
	assert_int_equal(l.a[59].lport, 41002);
	free(l.a);
	free(t4.b);
	free(t6.b);
}

static void test_parse_split_datagrams(void **state)
{
	struct vec v = load("sockdiag-udp4-all.hex");
	struct list l = { 0 };

	(void)state;
	/* The kernel sent the records and NLMSG_DONE in two datagrams: the first alone is "more to come". */
	assert_int_equal(parse(v.b, v.len - DONE_LEN, IPPROTO_UDP, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(parse(v.b + v.len - DONE_LEN, DONE_LEN, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 2);
	/* One message at a time. */
	free(l.a);
	memset(&l, 0, sizeof(l));
	for (size_t off = 0; off + MSG_LEN <= v.len - DONE_LEN; off += MSG_LEN)
		assert_int_equal(parse(v.b + off, MSG_LEN, IPPROTO_UDP, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.a[1].uid, 65534);
	free(l.a);
	free(v.b);
}

static void test_parse_kernel_errors(void **state)
{
	struct vec sctp = load("sockdiag-error-sctp.hex");
	struct vec fam = load("sockdiag-error-family.hex");
	struct vec udp = load("sockdiag-udp4-all.hex");
	struct list l = { 0 };
	uint8_t *cat;

	(void)state;
	assert_int_equal(parse(sctp.b, sctp.len, IPPROTO_TCP, &l), -ENOENT);
	assert_int_equal(parse(fam.b, fam.len, IPPROTO_TCP, &l), -EINVAL);
	assert_int_equal(l.n, 0);
	/* Records followed by an error: the error wins and the records appended by this call are dropped. */
	assert_int_equal(parse(udp.b, udp.len, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 2);
	cat = malloc(udp.len - DONE_LEN + fam.len);
	assert_non_null(cat);
	memcpy(cat, udp.b, udp.len - DONE_LEN);
	memcpy(cat + udp.len - DONE_LEN, fam.b, fam.len);
	assert_int_equal(parse(cat, udp.len - DONE_LEN + fam.len, IPPROTO_UDP, &l), -EINVAL);
	assert_int_equal(l.n, 2);
	/* An acknowledgement (NLMSG_ERROR 0) is not an error. */
	memcpy(cat + udp.len - DONE_LEN, fam.b, fam.len);
	wr32(cat + udp.len - DONE_LEN + 16, 0);
	assert_int_equal(parse(cat, udp.len - DONE_LEN + fam.len, IPPROTO_UDP, &l), 0);
	assert_int_equal(l.n, 4);
	/* Positive or absurd error codes are malformed. */
	wr32(cat + udp.len - DONE_LEN + 16, 5);
	assert_int_equal(parse(cat, udp.len - DONE_LEN + fam.len, IPPROTO_UDP, &l), -EBADMSG);
	wr32(cat + udp.len - DONE_LEN + 16, (uint32_t)-100000);
	assert_int_equal(parse(cat, udp.len - DONE_LEN + fam.len, IPPROTO_UDP, &l), -EBADMSG);
	memcpy(cat, sctp.b, sctp.len);
	wr32(cat + 16, 7);
	assert_int_equal(parse(cat, sctp.len, IPPROTO_TCP, &l), -EBADMSG);
	assert_int_equal(l.n, 4);
	free(cat);
	free(l.a);
	free(sctp.b);
	free(fam.b);
	free(udp.b);
}

static void test_parse_stops_at_done(void **state)
{
	struct vec v = load("sockdiag-udp4-all.hex");
	struct list l = { 0 };
	uint8_t *b = malloc(v.len + v.len);

	(void)state;
	assert_non_null(b);
	/* Whatever follows NLMSG_DONE, even garbage, is not read. */
	memcpy(b, v.b, v.len);
	memset(b + v.len, 0xff, v.len);
	assert_int_equal(parse(b, v.len + v.len, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 2);
	/* A DONE without a status (older kernels) ends the dump too. */
	memcpy(b, v.b + v.len - DONE_LEN, DONE_LEN);
	wr32(b, 16);
	assert_int_equal(parse(b, 16, IPPROTO_UDP, &l), 1);
	free(b);
	free(l.a);
	free(v.b);
}

static void test_parse_truncated(void **state)
{
	struct vec v = load("sockdiag-tcp6-all.hex");
	struct list l = { 0 };
	/* Message boundaries of this capture: 132, 132, 124, 124, 124, then DONE (20). */
	static const size_t ends[] = { 132, 264, 388, 512, 636, 656 };

	(void)state;
	for (size_t cut = 1; cut < v.len; cut++) {
		bool boundary = false;
		int r;

		for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
			boundary |= cut == ends[i];
		l.n = 0;
		r = parse(v.b, cut, IPPROTO_TCP, &l);
		if (boundary) {
			assert_int_equal(r, 0);
		} else {
			if (r != -EBADMSG)
				fail_msg("cut at %zu: %d", cut, r);
			assert_int_equal(l.n, 0); /* nothing kept from a failed parse */
		}
	}
	free(l.a);
	free(v.b);
}

static void test_parse_corrupt(void **state)
{
	struct vec v = load("sockdiag-tcp4-all.hex");
	struct list l = { 0 };
	uint8_t m[MSG_LEN + DONE_LEN];
	/* Message 2 of the capture (41001 -> 40001), then DONE. */
	const uint8_t *orig = v.b + MSG_LEN;
	const size_t a0 = 16 + 72; /* first attribute: INET_DIAG_SHUTDOWN, len 5 */

	(void)state;
	memcpy(m, orig, MSG_LEN);
	memcpy(m + MSG_LEN, v.b + v.len - DONE_LEN, DONE_LEN);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 1);

	/* nlmsg_len shorter than nlmsghdr + inet_diag_msg */
	wr32(m, 16 + 71);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), -EBADMSG);
	/* nlmsg_len beyond the buffer */
	wr32(m, MSG_LEN + DONE_LEN + 4);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), -EBADMSG);
	/* nlmsg_len that cuts the last attribute (INET_DIAG_SOCKOPT, 6 bytes) in half */
	wr32(m, MSG_LEN - 6);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), -EBADMSG);
	/* an attribute longer than the message */
	memcpy(m, orig, MSG_LEN);
	wr16(m + a0, 200);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), -EBADMSG);
	/* an attribute shorter than its header */
	wr16(m + a0, 2);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), -EBADMSG);
	assert_int_equal(l.n, 1);

	/* INET_DIAG_PROTOCOL naming another protocol: skipped; naming ours: kept. */
	memcpy(m, orig, MSG_LEN);
	wr16(m + a0 + 2, INET_DIAG_PROTOCOL);
	m[a0 + 4] = IPPROTO_UDP;
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 1);
	m[a0 + 4] = IPPROTO_TCP;
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 2);
	/* INET_DIAG_PROTOCOL without a payload is malformed. */
	wr16(m + a0, 4);
	wr16(m + a0 + 4, 4);     /* a 4-byte padding attribute fills the freed room */
	wr16(m + a0 + 4 + 2, 0); /* type INET_DIAG_NONE */
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), -EBADMSG);
	assert_int_equal(l.n, 2);

	/* A family other than AF_INET/AF_INET6 is skipped; so are TCP states other than ESTABLISHED. */
	memcpy(m, orig, MSG_LEN);
	m[16] = AF_UNIX;
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), 1);
	m[16] = AF_INET;
	m[17] = 8; /* CLOSE_WAIT */
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 2);
	/* Other message types are ignored. */
	m[17] = PM_NET_SOCKDIAG_ESTABLISHED;
	wr16(m + 4, NLMSG_NOOP);
	assert_int_equal(parse(m, sizeof(m), IPPROTO_TCP, &l), 1);
	assert_int_equal(l.n, 2);
	/* Trailing bytes that do not form a message */
	assert_int_equal(parse(v.b, 3, IPPROTO_TCP, &l), -EBADMSG);
	assert_int_equal(parse(v.b, 15, IPPROTO_TCP, &l), -EBADMSG);
	assert_int_equal(l.n, 2);
	free(l.a);
	free(v.b);
}

static void test_parse_misaligned(void **state)
{
	struct vec v = load("sockdiag-udp6-all.hex");
	struct list l = { 0 };
	uint8_t *b = malloc(v.len + 1);

	(void)state;
	assert_non_null(b);
	memcpy(b + 1, v.b, v.len);
	assert_int_equal(parse(b + 1, v.len, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.a[0].inode, 1182546);
	free(b);
	free(l.a);
	free(v.b);
}

static void test_parse_bad_args(void **state)
{
	struct vec v = load("sockdiag-udp4-all.hex");
	struct list l = { 0 };
	struct pm_net_conn one;

	(void)state;
	assert_int_equal(parse(NULL, 4, IPPROTO_UDP, &l), -EINVAL);
	assert_int_equal(parse(v.b, v.len, 132, &l), -EINVAL);
	assert_int_equal(parse(v.b, v.len, 0, &l), -EINVAL);
	assert_int_equal(pm_net_sockdiag_parse(v.b, v.len, IPPROTO_UDP, NULL, &l.n, &l.cap), -EINVAL);
	assert_int_equal(pm_net_sockdiag_parse(v.b, v.len, IPPROTO_UDP, &l.a, NULL, &l.cap), -EINVAL);
	assert_int_equal(pm_net_sockdiag_parse(v.b, v.len, IPPROTO_UDP, &l.a, &l.n, NULL), -EINVAL);
	l.n = 2; /* more used than allocated */
	assert_int_equal(parse(v.b, v.len, IPPROTO_UDP, &l), -EINVAL);
	l.n = 0;
	l.cap = 4; /* capacity without an array */
	assert_int_equal(parse(v.b, v.len, IPPROTO_UDP, &l), -EINVAL);
	l.cap = 0;
	assert_int_equal(parse(NULL, 0, IPPROTO_UDP, &l), 0); /* nothing to read */
	/* A caller's existing array (cap 1, full) grows. */
	l.a = malloc(sizeof(one));
	assert_non_null(l.a);
	memset(l.a, 0, sizeof(one));
	l.a[0].lport = 7;
	l.n = l.cap = 1;
	assert_int_equal(parse(v.b, v.len, IPPROTO_UDP, &l), 1);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.a[0].lport, 7);
	assert_int_equal(l.a[1].lport, 40011);
	free(l.a);
	free(v.b);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Order */

static struct pm_net_conn mk(uint8_t proto, int family, const char *local, uint16_t lport, const char *remote,
			     uint16_t rport)
{
	struct pm_net_conn c;

	memset(&c, 0, sizeof(c));
	c.proto = proto;
	c.family = family;
	snprintf(c.local, sizeof(c.local), "%s", local);
	c.lport = lport;
	snprintf(c.remote, sizeof(c.remote), "%s", remote);
	c.rport = rport;
	return c;
}

static void test_sort(void **state)
{
	struct pm_net_conn a[7];

	(void)state;
	a[0] = mk(IPPROTO_UDP, AF_INET, "10.0.0.2", 5000, "192.0.2.1", 53);
	a[1] = mk(IPPROTO_TCP, AF_INET6, "2001:db8::2", 40000, "2001:db8::1", 443);
	a[2] = mk(IPPROTO_TCP, AF_INET, "10.0.0.10", 40000, "192.0.2.1", 443);
	a[3] = mk(IPPROTO_TCP, AF_INET, "10.0.0.9", 40000, "192.0.2.1", 443);
	a[4] = mk(IPPROTO_TCP, AF_INET, "10.0.0.9", 40000, "192.0.2.1", 80);
	a[5] = mk(IPPROTO_TCP, AF_INET, "10.0.0.9", 39999, "198.51.100.1", 22);
	a[6] = mk(IPPROTO_TCP, AF_INET6, "2001:db8::10", 1, "2001:db8::1", 1);
	pm_net_connections_sort(a, 7);
	/* TCP before UDP, IPv4 before IPv6, addresses numerically (10.0.0.9 < 10.0.0.10), then ports. */
	assert_int_equal(a[0].lport, 39999);
	assert_int_equal(a[1].rport, 80);
	assert_int_equal(a[2].rport, 443);
	assert_string_equal(a[2].local, "10.0.0.9");
	assert_string_equal(a[3].local, "10.0.0.10");
	assert_string_equal(a[4].local, "2001:db8::2");
	assert_string_equal(a[5].local, "2001:db8::10");
	assert_int_equal(a[6].proto, IPPROTO_UDP);
	pm_net_connections_sort(NULL, 0); /* harmless */
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Live, in a network namespace of our own */

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			return __LINE__ % 200 + 1;                                               \
		}                                                                                \
	} while (0)

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
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return r;
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, &ss, sizeof(sin));
		return ntohs(sin.sin_port);
	}
	struct sockaddr_in6 sin6;

	memcpy(&sin6, &ss, sizeof(sin6));
	return ntohs(sin6.sin6_port);
}

static uint32_t inode_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint32_t)st.st_ino : 0;
}

/* A TCP connection over loopback: *ret_c is the client, *ret_a the accepted end; the listener stays open. */
static int tcp_pair(int family, int *ret_l, int *ret_c, int *ret_a)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int l, c, a;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		memcpy(&ss, &sin, sizeof(sin));
		len = sizeof(sin);
	} else {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };

		memcpy(&ss, &sin6, sizeof(sin6));
		len = sizeof(sin6);
	}
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len) < 0)
		return -1;
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		return -1;
	*ret_l = l;
	*ret_c = c;
	*ret_a = a;
	return 0;
}

static const struct pm_net_conn *find(const struct pm_net_conn *arr, size_t n, uint32_t inode)
{
	for (size_t i = 0; i < n; i++)
		if (arr[i].inode == inode)
			return &arr[i];
	return NULL;
}

static int ns_connections(void)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct pm_net_conn *arr = (struct pm_net_conn *)(uintptr_t)1, *d = NULL;
	size_t n = 99, dn = 0, dcap = 0;
	const struct pm_net_conn *c;
	int l4, c4, a4, l6, c6, a6, us, uc;

	CHECK(lo_up() == 0);
	/* A fresh namespace has no sockets: an empty list. */
	CHECK(pm_net_connections(&arr, &n) == 0);
	CHECK(n == 0 && arr == NULL);

	CHECK(tcp_pair(AF_INET, &l4, &c4, &a4) == 0);
	CHECK(tcp_pair(AF_INET6, &l6, &c6, &a6) == 0);
	us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(us >= 0 && bind(us, (struct sockaddr *)&to, sizeof(to)) == 0);
	to.sin_port = htons(port_of(us));
	uc = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(uc >= 0 && connect(uc, (struct sockaddr *)&to, sizeof(to)) == 0);

	CHECK(pm_net_connections(&arr, &n) == 0);
	/* 2 TCP/IPv4 + 2 TCP/IPv6 + 1 connected UDP; listeners and the unconnected UDP socket are left out. */
	CHECK(n == 5);
	CHECK(arr[0].proto == IPPROTO_TCP && arr[0].family == AF_INET);
	CHECK(arr[1].proto == IPPROTO_TCP && arr[1].family == AF_INET);
	CHECK(arr[2].proto == IPPROTO_TCP && arr[2].family == AF_INET6);
	CHECK(arr[3].proto == IPPROTO_TCP && arr[3].family == AF_INET6);
	CHECK(arr[4].proto == IPPROTO_UDP && arr[4].family == AF_INET);
	CHECK(arr[0].lport < arr[1].lport && arr[2].lport < arr[3].lport); /* sorted */

	c = find(arr, n, inode_of(c4));
	CHECK(c && !strcmp(c->local, "127.0.0.1") && c->lport == port_of(c4));
	CHECK(!strcmp(c->remote, "127.0.0.1") && c->rport == port_of(l4));
	CHECK(c->uid == geteuid() && !strcmp(c->state, "established"));
	c = find(arr, n, inode_of(a4));
	CHECK(c && c->lport == port_of(l4) && c->rport == port_of(c4));
	c = find(arr, n, inode_of(c6));
	CHECK(c && c->family == AF_INET6 && !strcmp(c->local, "::1") && !strcmp(c->remote, "::1"));
	CHECK(c->rport == port_of(l6));
	CHECK(find(arr, n, inode_of(a6)));
	c = find(arr, n, inode_of(uc));
	CHECK(c && c->proto == IPPROTO_UDP && c->lport == port_of(uc) && c->rport == port_of(us));
	CHECK(!strcmp(c->state, "connected"));
	CHECK(!find(arr, n, inode_of(us)) && !find(arr, n, inode_of(l4)) && !find(arr, n, inode_of(l6)));

	/* One dump appends to what the caller holds. */
	CHECK(pm_net_sockdiag_dump(AF_INET6, IPPROTO_TCP, &d, &dn, &dcap) == 0 && dn == 2);
	CHECK(pm_net_sockdiag_dump(AF_INET, IPPROTO_UDP, &d, &dn, &dcap) == 0 && dn == 3);
	CHECK(d[2].inode == inode_of(uc));
	CHECK(pm_net_sockdiag_dump(AF_UNIX, IPPROTO_UDP, &d, &dn, &dcap) == -EINVAL && dn == 3);

	/* A closed connection leaves the list. */
	close(c4);
	close(a4);
	free(arr);
	CHECK(pm_net_connections(&arr, &n) == 0);
	CHECK(n == 3 && find(arr, n, inode_of(c6)) && find(arr, n, inode_of(uc)));
	free(arr);
	free(d);
	return 0;
}

static void test_live_connections(void **state)
{
	int r = run_in_netns(ns_connections);

	(void)state;
	if (r == SKIP_CODE)
		skip();
	assert_int_equal(r, 0);
}

static void test_connections_bad_args(void **state)
{
	struct pm_net_conn *arr = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(pm_net_connections(NULL, &n), -EINVAL);
	assert_int_equal(pm_net_connections(&arr, NULL), -EINVAL);
	assert_int_equal(pm_net_sockdiag_dump(AF_INET, IPPROTO_TCP, NULL, &n, &n), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_matches_capture),
		cmocka_unit_test(test_request_bad_args),
		cmocka_unit_test(test_parse_tcp4),
		cmocka_unit_test(test_parse_tcp6_v4_mapped),
		cmocka_unit_test(test_parse_udp4_connected_only),
		cmocka_unit_test(test_parse_udp6),
		cmocka_unit_test(test_parse_many_attributes),
		cmocka_unit_test(test_parse_appends_and_grows),
		cmocka_unit_test(test_parse_split_datagrams),
		cmocka_unit_test(test_parse_kernel_errors),
		cmocka_unit_test(test_parse_stops_at_done),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_corrupt),
		cmocka_unit_test(test_parse_misaligned),
		cmocka_unit_test(test_parse_bad_args),
		cmocka_unit_test(test_sort),
		cmocka_unit_test(test_live_connections),
		cmocka_unit_test(test_connections_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
