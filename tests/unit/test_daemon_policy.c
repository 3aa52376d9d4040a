/*
 * pcpmapd policy (daemon/policy.c): who may map which port, one owner per port, protocols, quotas, and the
 * restore plan that keeps the limits at start. The socket lookup is a table of fake bound sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "daemon/config.h"
#include "daemon/policy.h"

struct fake_sock {
	uint32_t uid;
	uint8_t proto;
	uint16_t port;
	bool established; /* a TCP connection, not a listener */
};

struct fake_host {
	const struct fake_sock *socks;
	size_t n;
	int fail; /* < 0: the lookup fails with it */
	unsigned calls;
};

static int fake_lookup(void *ud, uint32_t uid, uint8_t ip_proto, uint16_t port, bool connected)
{
	struct fake_host *h = ud;
	h->calls++;
	if (h->fail < 0)
		return h->fail;
	for (size_t i = 0; i < h->n; i++)
		if (h->socks[i].uid == uid && h->socks[i].proto == ip_proto && h->socks[i].port == port &&
		    (connected || !h->socks[i].established))
			return 1;
	return 0;
}

/* uid 70 (postgres) listens on tcp 5432, uid 1000 on tcp 8080, udp 5004 and sctp 7000 and has a TCP
 * connection from port 41000, uid 1001 listens on tcp 9000. */
static const struct fake_sock host_socks[] = {
	{ 70, IPPROTO_TCP, 5432, false },    { 1000, IPPROTO_TCP, 8080, false },
	{ 1000, IPPROTO_UDP, 5004, false },  { 1001, IPPROTO_TCP, 9000, false },
	{ 1000, IPPROTO_SCTP, 7000, false }, { 1000, IPPROTO_TCP, 41000, true },
};

static struct fake_host host(void)
{
	struct fake_host h = { host_socks, sizeof(host_socks) / sizeof(host_socks[0]), 0, 0 };
	return h;
}

static struct pmd_policy_req req(uint32_t uid, uint8_t proto, uint16_t port)
{
	struct pmd_policy_req q = {
		.uid = uid, .ip_proto = proto, .internal_port = port, .internal_addr = ""
	};
	return q;
}

static int decide(const struct pmd_cfg *cfg, const struct pmd_policy_req *q, const struct pmd_owner *o,
		  size_t n, struct fake_host *h, char *why)
{
	return pmd_policy_create(cfg, q, o, n, fake_lookup, h, why, 400);
}

static void test_foreign_port_refused(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_TCP, 5432);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	assert_non_null(strstr(why, "uid 1000 holds no tcp socket bound to port 5432"));
	assert_int_equal(h.calls, 1);
	/* Another user's port, and a port nobody listens on, alike. */
	q = req(1000, IPPROTO_TCP, 9000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	q = req(1000, IPPROTO_TCP, 12345);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	/* A UDP socket does not make the TCP port of the same number its own. */
	q = req(1000, IPPROTO_TCP, 5004);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
}

static void test_own_bound_port_allowed(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_TCP, 8080);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(1000, IPPROTO_UDP, 5004);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(70, IPPROTO_TCP, 5432);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	/* Its own address given as THIRD_PARTY is still its own port. */
	q = req(1000, IPPROTO_TCP, 8080);
	q.third_party = q.third_party_local = true;
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
}

/* A connection's port is its own for a PEER mapping (RFC 6887 section 12), not for a MAP. */
static void test_peer_connection_port(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_TCP, 41000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	q.peer = true;
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(1001, IPPROTO_TCP, 41000);
	q.peer = true;
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
}

static void test_lookup_failure_refuses(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	h.fail = -ENOENT;
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_TCP, 8080);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -ENOENT);
	assert_non_null(strstr(why, "cannot tell whether uid 1000"));
	/* No lookup at all counts as no socket. */
	assert_int_equal(pmd_policy_create(&cfg, &q, NULL, 0, NULL, NULL, why, sizeof(why)), -EPERM);
}

static void test_config_grant(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	char err[200];
	pmd_cfg_defaults(&cfg);
	const char *text = "user_port_grants = 1000:20000-20009/udp, 1001:30000, *:40000-40099\n";
	assert_int_equal(pmd_cfg_parse(text, strlen(text), &cfg, err, sizeof(err)), 0);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_UDP, 20005);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	assert_int_equal(h.calls, 0); /* granted: no socket needed */
	q = req(1000, IPPROTO_TCP, 20005);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM); /* the grant is udp only */
	q = req(1000, IPPROTO_UDP, 20010);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM); /* past the range */
	q = req(1001, IPPROTO_UDP, 20005);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM); /* another uid's grant */
	q = req(1001, IPPROTO_TCP, 30000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(4242, IPPROTO_TCP, 40099);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0); /* `*` grants every uid */
	/* A grant does not lift user_min_port nor the protocol rule. */
	text = "user_port_grants = *:1-65535\n";
	pmd_cfg_defaults(&cfg);
	assert_int_equal(pmd_cfg_parse(text, strlen(text), &cfg, err, sizeof(err)), 0);
	q = req(1000, IPPROTO_TCP, 80);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	q = req(1000, 33, 5000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPROTONOSUPPORT);
}

static void test_one_owner_per_port(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	const struct pmd_owner owners[] = {
		{ .id = 4, .uid = 1000, .ip_proto = IPPROTO_TCP, .internal_port = 8080, .internal_addr = "" },
		{ .id = 5, .uid = 0, .ip_proto = IPPROTO_UDP, .internal_port = 5353, .internal_addr = "" },
		{ .id = 6,
		  .uid = 1001,
		  .ip_proto = IPPROTO_TCP,
		  .internal_port = 9000,
		  .internal_addr = "",
		  .leftover = true },
	};
	/* uid 1001 also listens on 8080 (SO_REUSEPORT, another address): still the port has an owner. */
	static const struct fake_sock both[] = { { 1000, IPPROTO_TCP, 8080, false },
						 { 1001, IPPROTO_TCP, 8080, false } };
	struct fake_host hb = { both, 2, 0, 0 };
	struct pmd_policy_req q = req(1001, IPPROTO_TCP, 8080);
	assert_int_equal(decide(&cfg, &q, owners, 3, &hb, why), -EADDRINUSE);
	assert_non_null(strstr(why, "tcp port 8080 is mapped by uid 1000 (mapping 4)"));
	/* The owner may map it again (IPv6 as well as IPv4, a reconnecting client). */
	q = req(1000, IPPROTO_TCP, 8080);
	assert_int_equal(decide(&cfg, &q, owners, 3, &h, why), 0);
	/* Root is bound by it too: the gateway cannot tell two owners apart over NAT-PMP or UPnP. */
	q = req(0, IPPROTO_TCP, 8080);
	assert_int_equal(decide(&cfg, &q, owners, 3, &h, why), -EADDRINUSE);
	/* ... and so is protocol 0, which covers every port. */
	q = req(0, 0, 0);
	assert_int_equal(decide(&cfg, &q, owners, 3, &h, why), -EADDRINUSE);
	/* A leftover being deleted still owns its port. */
	q = req(1000, IPPROTO_TCP, 9000);
	static const struct fake_sock s9000[] = { { 1000, IPPROTO_TCP, 9000, false } };
	struct fake_host h9 = { s9000, 1, 0, 0 };
	assert_int_equal(decide(&cfg, &q, owners, 3, &h9, why), -EADDRINUSE);
	/* Same number, other protocol: free. Another internal address (root's THIRD_PARTY): free. */
	q = req(1000, IPPROTO_UDP, 5004);
	const struct pmd_owner udp8080[] = {
		{ .id = 7, .uid = 70, .ip_proto = IPPROTO_TCP, .internal_port = 5004, .internal_addr = "" },
	};
	assert_int_equal(decide(&cfg, &q, udp8080, 1, &h, why), 0);
	q = req(0, IPPROTO_TCP, 8080);
	q.internal_addr = "192.168.1.20";
	q.third_party = true;
	assert_int_equal(decide(&cfg, &q, owners, 3, &h, why), 0);
}

static void test_protocol_restriction(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_SCTP, 7000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPROTONOSUPPORT);
	assert_non_null(strstr(why, "user_sctp"));
	q = req(1000, 0, 0);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	q = req(1000, 33 /* DCCP */, 7000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPROTONOSUPPORT);
	assert_int_equal(h.calls, 0);
	cfg.user_sctp = true;
	q = req(1000, IPPROTO_SCTP, 7000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0); /* configured, and its listener */
	q = req(1000, IPPROTO_SCTP, 7001);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM); /* configured, not its port */
}

static void test_root_allowed(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(0, IPPROTO_TCP, 5432);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(0, IPPROTO_TCP, 80);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(0, 0, 0);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(0, 33, 7000);
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	q = req(0, IPPROTO_TCP, 7000);
	q.internal_addr = "192.168.1.20";
	q.third_party = true;
	q.persistent = true;
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), 0);
	assert_int_equal(h.calls, 0); /* root needs no socket */
}

static void test_other_user_rules(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	struct fake_host h = host();
	char why[400];
	struct pmd_policy_req q = req(1000, IPPROTO_TCP, 8080);
	q.third_party = true;
	q.internal_addr = "192.168.1.99";
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	assert_non_null(strstr(why, "not an address of this host"));
	cfg.user_third_party = false;
	q.third_party_local = true;
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	q = req(1000, IPPROTO_TCP, 8080);
	q.persistent = true;
	cfg.user_persistent = false;
	assert_int_equal(decide(&cfg, &q, NULL, 0, &h, why), -EPERM);
	assert_non_null(strstr(why, "user_persistent"));
}

static void test_quotas(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	cfg.max_mappings = 3;
	cfg.max_mappings_per_uid = 2;
	struct fake_host h = host();
	char why[400];
	const struct pmd_owner owners[] = {
		{ .id = 1, .uid = 1000, .ip_proto = IPPROTO_TCP, .internal_port = 8080 },
		{ .id = 2, .uid = 1000, .ip_proto = IPPROTO_UDP, .internal_port = 5004 },
		{ .id = 3, .uid = 1001, .ip_proto = IPPROTO_TCP, .internal_port = 9000, .leftover = true },
	};
	struct pmd_policy_req q = req(1000, IPPROTO_TCP, 8080);
	assert_int_equal(decide(&cfg, &q, owners, 3, &h, why), -EDQUOT);
	assert_non_null(strstr(why, "max_mappings_per_uid"));
	/* Root is bound by the total only; the leftover does not count. */
	q = req(0, IPPROTO_TCP, 7777);
	assert_int_equal(decide(&cfg, &q, owners, 3, &h, why), 0);
	const struct pmd_owner full[] = {
		owners[0],
		owners[1],
		{ .id = 4, .uid = 0, .ip_proto = IPPROTO_TCP, .internal_port = 7777 },
	};
	assert_int_equal(decide(&cfg, &q, full, 3, &h, why), -ENOSPC);
	assert_non_null(strstr(why, "max_mappings"));
}

static struct pmd_state_rec rec(uint32_t id, uint32_t uid, bool persistent, uint8_t proto, uint16_t port)
{
	struct pmd_state_rec r;
	memset(&r, 0, sizeof(r));
	r.id = id;
	r.uid = uid;
	r.persistent = persistent;
	r.req.kind = 1;
	r.req.ip_proto = proto;
	r.req.internal_port = port;
	r.req.family = 4;
	r.req.lifetime = 600;
	return r;
}

static void test_restore_keeps_limits(void **state)
{
	(void)state;
	struct pmd_cfg cfg;
	pmd_cfg_defaults(&cfg);
	cfg.max_mappings = 4;
	cfg.max_mappings_per_uid = 2;
	/* A leftover first in the file; persistent ones are planned before it all the same. */
	const struct pmd_state_rec recs[] = {
		rec(1, 1000, false, IPPROTO_TCP, 7001), /* leftover: passes the limits */
		rec(2, 1000, true, IPPROTO_TCP, 7002),  rec(3, 1000, true, IPPROTO_TCP, 7003),
		rec(4, 1000, true, IPPROTO_TCP, 7004), /* third of uid 1000: over the per-uid limit */
		rec(5, 1001, true, IPPROTO_TCP, 7002), /* uid 1000 holds tcp 7002 */
		rec(6, 0, true, IPPROTO_UDP, 7006),     rec(7, 0, true, IPPROTO_UDP, 7007),
		rec(8, 0, true, IPPROTO_UDP, 7008), /* fifth: over max_mappings */
	};
	enum pmd_restore_verdict v[8];
	assert_int_equal(pmd_policy_restore(&cfg, recs, 8, 100, v), 3);
	assert_int_equal(v[0], PMD_RESTORE_OK);
	assert_int_equal(v[1], PMD_RESTORE_OK);
	assert_int_equal(v[2], PMD_RESTORE_OK);
	assert_int_equal(v[3], PMD_RESTORE_OVER_UID);
	assert_int_equal(v[4], PMD_RESTORE_PORT_TAKEN);
	assert_int_equal(v[5], PMD_RESTORE_OK);
	assert_int_equal(v[6], PMD_RESTORE_OK);
	assert_int_equal(v[7], PMD_RESTORE_OVER_TOTAL);
	assert_string_equal(pmd_restore_verdict_str(v[7]), "max_mappings reached");
	/* The engine's table: 4 slots hold the 4 persistent ones, not the leftover behind them. */
	assert_int_equal(pmd_policy_restore(&cfg, recs, 8, 4, v), 4);
	assert_int_equal(v[0], PMD_RESTORE_ENGINE_FULL);
	assert_int_equal(v[6], PMD_RESTORE_OK);
	/* A port pair takes two. */
	struct pmd_state_rec pair[2] = { rec(1, 0, true, IPPROTO_UDP, 5004),
					 rec(2, 0, true, IPPROTO_UDP, 6004) };
	pair[0].req.port_pair = true;
	assert_int_equal(pmd_policy_restore(&cfg, pair, 2, 2, v), 1);
	assert_int_equal(v[0], PMD_RESTORE_OK);
	assert_int_equal(v[1], PMD_RESTORE_ENGINE_FULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_foreign_port_refused),   cmocka_unit_test(test_own_bound_port_allowed),
		cmocka_unit_test(test_lookup_failure_refuses), cmocka_unit_test(test_peer_connection_port),
		cmocka_unit_test(test_config_grant),           cmocka_unit_test(test_one_owner_per_port),
		cmocka_unit_test(test_protocol_restriction),   cmocka_unit_test(test_root_allowed),
		cmocka_unit_test(test_other_user_rules),       cmocka_unit_test(test_quotas),
		cmocka_unit_test(test_restore_keeps_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
