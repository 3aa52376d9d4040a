/* SPDX-License-Identifier: MIT */
/*
 * The compat libraries' pure parts: pcpmap errors and PCP / NAT-PMP / UPnP result codes as libnatpmp and
 * miniupnpc return codes, the derived nonce, and the small parsers. The sources are compiled in here (the
 * unit-test build links pcpmap_internal, not the compat libraries).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "natpmp/errmap.c"
#include "miniupnpc/errmap.c"
#include "common/compat_common.c"

/* libnatpmp's codes, from its header (compat/natpmp/include/natpmp.h holds the same values). */
#define INVALIDARGS        (-1)
#define SOCKETERROR        (-2)
#define RECVFROM           (-5)
#define NOGATEWAYSUPPORT   (-7)
#define SENDERR            (-10)
#define UNSUPPORTEDVERSION (-14)
#define UNSUPPORTEDOPCODE  (-15)
#define UNDEFINEDERROR     (-49)
#define NOTAUTHORIZED      (-51)
#define NETWORKFAILURE     (-52)
#define OUTOFRESOURCES     (-53)

static void test_natpmp_server_codes(void **state)
{
	(void)state;
	/* NAT-PMP's own codes, RFC 6886 3.5, as libnatpmp reports them. */
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_NATPMP, 1), UNSUPPORTEDVERSION);
	assert_int_equal(pmc_natpmp_error(-EACCES, PCPMAP_PROTO_NATPMP, 2), NOTAUTHORIZED);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_NATPMP, 3), NETWORKFAILURE);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_NATPMP, 4), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EOPNOTSUPP, PCPMAP_PROTO_NATPMP, 5), UNSUPPORTEDOPCODE);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_NATPMP, 9), UNDEFINEDERROR);
	/* PCP's codes, RFC 6887 7.4, to the NAT-PMP code of the same meaning. */
	assert_int_equal(pmc_natpmp_error(-EPROTONOSUPPORT, PCPMAP_PROTO_PCP, 1), UNSUPPORTEDVERSION);
	assert_int_equal(pmc_natpmp_error(-EACCES, PCPMAP_PROTO_PCP, 2), NOTAUTHORIZED);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_PCP, 3), UNDEFINEDERROR);
	assert_int_equal(pmc_natpmp_error(-EOPNOTSUPP, PCPMAP_PROTO_PCP, 4), UNSUPPORTEDOPCODE);
	assert_int_equal(pmc_natpmp_error(-EOPNOTSUPP, PCPMAP_PROTO_PCP, 5), UNDEFINEDERROR);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_PCP, 6), UNDEFINEDERROR);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_PCP, 7), NETWORKFAILURE);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_PCP, 8), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EOPNOTSUPP, PCPMAP_PROTO_PCP, 9), UNSUPPORTEDOPCODE);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_PCP, 10), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EADDRINUSE, PCPMAP_PROTO_PCP, 11), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EADDRNOTAVAIL, PCPMAP_PROTO_PCP, 12), UNDEFINEDERROR);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_PCP, 13), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_PCP, 99), UNDEFINEDERROR);
	/* UPnP, when a session is allowed to fall back that far. */
	assert_int_equal(pmc_natpmp_error(-EACCES, PCPMAP_PROTO_UPNP, 606), NOTAUTHORIZED);
	assert_int_equal(pmc_natpmp_error(-EADDRINUSE, PCPMAP_PROTO_UPNP, 718), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_UPNP, 728), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_UPNP, 501), NETWORKFAILURE);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_UPNP, 402), UNDEFINEDERROR);
}

static void test_natpmp_errno(void **state)
{
	(void)state;
	assert_int_equal(pmc_natpmp_error(0, PCPMAP_PROTO_PCP, 0), 0);
	assert_int_equal(pmc_natpmp_error(0, PCPMAP_PROTO_NONE, 0), 0);
	/* No answer, or ICMP port unreachable: "the gateway does not support NAT-PMP" as libnatpmp says. */
	assert_int_equal(pmc_natpmp_error(-ETIMEDOUT, PCPMAP_PROTO_NONE, 0), NOGATEWAYSUPPORT);
	assert_int_equal(pmc_natpmp_error(-ECONNREFUSED, PCPMAP_PROTO_PCP, 0), NOGATEWAYSUPPORT);
	assert_int_equal(pmc_natpmp_error(-EPROTONOSUPPORT, PCPMAP_PROTO_NONE, 0), NOGATEWAYSUPPORT);
	assert_int_equal(pmc_natpmp_error(-EOPNOTSUPP, PCPMAP_PROTO_NONE, 0), NOGATEWAYSUPPORT);
	assert_int_equal(pmc_natpmp_error(-EACCES, PCPMAP_PROTO_NONE, 0), NOTAUTHORIZED);
	assert_int_equal(pmc_natpmp_error(-EAGAIN, PCPMAP_PROTO_NONE, 0), NETWORKFAILURE);
	assert_int_equal(pmc_natpmp_error(-EADDRINUSE, PCPMAP_PROTO_PCP, 0), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-ENOSPC, PCPMAP_PROTO_NONE, 0), OUTOFRESOURCES);
	assert_int_equal(pmc_natpmp_error(-EINVAL, PCPMAP_PROTO_NONE, 0), INVALIDARGS);
	assert_int_equal(pmc_natpmp_error(-ENOMEM, PCPMAP_PROTO_NONE, 0), SOCKETERROR);
	assert_int_equal(pmc_natpmp_error(-ENETUNREACH, PCPMAP_PROTO_NONE, 0), SENDERR);
	assert_int_equal(pmc_natpmp_error(-EHOSTUNREACH, PCPMAP_PROTO_NONE, 0), SENDERR);
	assert_int_equal(pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_NONE, 0), UNDEFINEDERROR);
	assert_int_equal(pmc_natpmp_error(-EBADF, PCPMAP_PROTO_NONE, 0), RECVFROM);
	/* A result code with no protocol is still a refusal, never success. */
	assert_int_equal(pmc_natpmp_error(0, PCPMAP_PROTO_NONE, 3), UNDEFINEDERROR);
}

static void test_natpmp_resultcode(void **state)
{
	(void)state;
	assert_int_equal(pmc_natpmp_resultcode(NOTAUTHORIZED, PCPMAP_PROTO_NATPMP, 2), 2);
	assert_int_equal(pmc_natpmp_resultcode(NETWORKFAILURE, PCPMAP_PROTO_NATPMP, 3), 3);
	/* PCP answers are reported with the NAT-PMP code of the same meaning. */
	assert_int_equal(pmc_natpmp_resultcode(NOTAUTHORIZED, PCPMAP_PROTO_PCP, 2), 2);
	assert_int_equal(pmc_natpmp_resultcode(NETWORKFAILURE, PCPMAP_PROTO_PCP, 7), 3);
	assert_int_equal(pmc_natpmp_resultcode(OUTOFRESOURCES, PCPMAP_PROTO_PCP, 8), 4);
	assert_int_equal(pmc_natpmp_resultcode(UNSUPPORTEDOPCODE, PCPMAP_PROTO_PCP, 4), 5);
	assert_int_equal(pmc_natpmp_resultcode(UNSUPPORTEDVERSION, PCPMAP_PROTO_PCP, 1), 1);
	/* No NAT-PMP equivalent: the server's own code. */
	assert_int_equal(pmc_natpmp_resultcode(UNDEFINEDERROR, PCPMAP_PROTO_PCP, 12), 12);
	/* No server answer: 0. */
	assert_int_equal(pmc_natpmp_resultcode(NOGATEWAYSUPPORT, PCPMAP_PROTO_NONE, 0), 0);
	assert_int_equal(pmc_natpmp_resultcode(0, PCPMAP_PROTO_PCP, 0), 0);
}

static void test_upnp_codes(void **state)
{
	(void)state;
	assert_int_equal(pmc_upnp_error(0, PCPMAP_PROTO_PCP, 0, false), 0);
	/* The exact port was not available (PREFER_FAILURE verified by pcpmap): UPnP's conflict. */
	assert_int_equal(pmc_upnp_error(-EADDRINUSE, PCPMAP_PROTO_PCP, 0, false), 718);
	assert_int_equal(pmc_upnp_error(-EADDRINUSE, PCPMAP_PROTO_NATPMP, 0, false), 718);
	assert_int_equal(pmc_upnp_error(-EADDRINUSE, PCPMAP_PROTO_PCP, 11, false), 718);
	assert_int_equal(pmc_upnp_error(-EPROTO, PCPMAP_PROTO_PCP, 11, false), 718);
	/* Refusals. */
	assert_int_equal(pmc_upnp_error(-EACCES, PCPMAP_PROTO_PCP, 2, false), 606);
	assert_int_equal(pmc_upnp_error(-EACCES, PCPMAP_PROTO_NATPMP, 2, false), 606);
	assert_int_equal(pmc_upnp_error(-EACCES, PCPMAP_PROTO_NONE, 0, false), 606);
	assert_int_equal(pmc_upnp_error(-EAGAIN, PCPMAP_PROTO_PCP, 8, false), 728);
	assert_int_equal(pmc_upnp_error(-EAGAIN, PCPMAP_PROTO_PCP, 10, false), 728);
	assert_int_equal(pmc_upnp_error(-EAGAIN, PCPMAP_PROTO_NATPMP, 4, false), 728);
	assert_int_equal(pmc_upnp_error(-ENOSPC, PCPMAP_PROTO_NONE, 0, false), 728);
	assert_int_equal(pmc_upnp_error(-EAGAIN, PCPMAP_PROTO_PCP, 7, false), 501);
	assert_int_equal(pmc_upnp_error(-EAGAIN, PCPMAP_PROTO_NATPMP, 3, false), 501);
	assert_int_equal(pmc_upnp_error(-EOPNOTSUPP, PCPMAP_PROTO_PCP, 9, false), 402);
	assert_int_equal(pmc_upnp_error(-EPROTO, PCPMAP_PROTO_PCP, 3, false), 501);
	/* THIRD_PARTY refused: miniupnpd says UNSUPP_OPTION; for another host that is "not authorized". */
	assert_int_equal(pmc_upnp_error(-EOPNOTSUPP, PCPMAP_PROTO_PCP, 5, true), 606);
	assert_int_equal(pmc_upnp_error(-EOPNOTSUPP, PCPMAP_PROTO_PCP, 5, false), 501);
	assert_int_equal(pmc_upnp_error(-EOPNOTSUPP, PCPMAP_PROTO_NATPMP, 0, true), 606);
	/* A real IGD's own code passes through; nonsense does not. */
	assert_int_equal(pmc_upnp_error(-EACCES, PCPMAP_PROTO_UPNP, 718, false), 718);
	assert_int_equal(pmc_upnp_error(-EACCES, PCPMAP_PROTO_UPNP, 606, false), 606);
	assert_int_equal(pmc_upnp_error(-EPROTO, PCPMAP_PROTO_UPNP, 725, false), 725);
	assert_int_equal(pmc_upnp_error(-EPROTO, PCPMAP_PROTO_UPNP, 3, false), 501);
}

static void test_upnp_local_errors(void **state)
{
	(void)state;
	/* Silence is what miniupnpc reports as an HTTP error. */
	assert_int_equal(pmc_upnp_error(-ETIMEDOUT, PCPMAP_PROTO_NONE, 0, false), -3);
	assert_int_equal(pmc_upnp_error(-ECONNREFUSED, PCPMAP_PROTO_PCP, 0, false), -3);
	assert_int_equal(pmc_upnp_error(-ENETUNREACH, PCPMAP_PROTO_NONE, 0, false), -3);
	assert_int_equal(pmc_upnp_error(-EPROTONOSUPPORT, PCPMAP_PROTO_NONE, 0, false), -3);
	assert_int_equal(pmc_upnp_error(-EINVAL, PCPMAP_PROTO_NONE, 0, false), -2);
	assert_int_equal(pmc_upnp_error(-ENOMEM, PCPMAP_PROTO_NONE, 0, false), -5);
	assert_int_equal(pmc_upnp_error(-EPROTO, PCPMAP_PROTO_NONE, 0, false), -4);
	assert_int_equal(pmc_upnp_error(-EBADF, PCPMAP_PROTO_NONE, 0, false), -1);
	assert_int_equal(pmc_upnp_error(0, PCPMAP_PROTO_NONE, 5, false), -1);
}

static void test_nonce_derivation(void **state)
{
	uint8_t a[12], b[12], c[12], d[12], e[12], f[12];
	(void)state;
	pmc_nonce(a, 6, 7000, NULL);
	pmc_nonce(b, 6, 7000, NULL);
	pmc_nonce(c, 17, 7000, NULL);
	pmc_nonce(d, 6, 7001, NULL);
	pmc_nonce(e, 6, 7000, "192.168.77.3");
	pmc_nonce(f, 6, 7000, "fd77:77::2");
	/* Stable across calls (and so across processes of this user on this machine) ... */
	assert_memory_equal(a, b, sizeof(a));
	/* ... and different for each protocol, port and internal client. */
	assert_memory_not_equal(a, c, sizeof(a));
	assert_memory_not_equal(a, d, sizeof(a));
	assert_memory_not_equal(a, e, sizeof(a));
	assert_memory_not_equal(e, f, sizeof(a));
	static const uint8_t zero[12];
	assert_memory_not_equal(a, zero, sizeof(a));
}

static void test_siphash_vector(void **state)
{
	/* The reference test vector of SipHash-2-4: key 00..0f, message 00..0e (15 bytes). */
	uint8_t key[16], msg[15];
	(void)state;
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	assert_true(siphash24(key, msg, sizeof(msg)) == 0xa129ca6149be45e5ull);
	assert_true(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
}

static void test_parsers(void **state)
{
	uint16_t p;
	uint32_t v, mask;
	char host[64];
	(void)state;
	assert_int_equal(pmc_parse_port("7000", false, &p), 0);
	assert_int_equal(p, 7000);
	assert_int_equal(pmc_parse_port("65535", false, &p), 0);
	assert_int_equal(pmc_parse_port("65536", false, &p), -EINVAL);
	assert_int_equal(pmc_parse_port("0", false, &p), -EINVAL);
	assert_int_equal(pmc_parse_port("0", true, &p), 0);
	assert_int_equal(pmc_parse_port("", true, &p), -EINVAL);
	assert_int_equal(pmc_parse_port("12a", true, &p), -EINVAL);
	assert_int_equal(pmc_parse_port("-1", true, &p), -EINVAL);
	assert_int_equal(pmc_parse_u32("4294967295", &v), 0);
	assert_true(v == 4294967295u);
	assert_int_equal(pmc_parse_u32("4294967296", &v), -EINVAL);
	assert_int_equal(pmc_parse_u32(NULL, &v), -EINVAL);

	assert_int_equal(pmc_parse_protocols("pcp,natpmp", &mask), 0);
	assert_int_equal(mask, PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) | PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP));
	assert_int_equal(pmc_parse_protocols("UPnP", &mask), 0);
	assert_int_equal(mask, PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP));
	assert_int_equal(pmc_parse_protocols("pcp+nat-pmp+upnp", &mask), 0);
	assert_int_equal(mask, PCPMAP_PROTOS_ALL);
	assert_int_equal(pmc_parse_protocols("pcp,ftp", &mask), -EINVAL);
	assert_int_equal(pmc_parse_protocols(",", &mask), -EINVAL);

	assert_int_equal(pmc_split_server("192.168.77.1:5351", host, sizeof(host), &p), 0);
	assert_string_equal(host, "192.168.77.1");
	assert_int_equal(p, 5351);
	assert_int_equal(pmc_split_server("192.168.77.1", host, sizeof(host), &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(pmc_split_server("[fe80::1%eth0]:5351", host, sizeof(host), &p), 0);
	assert_string_equal(host, "fe80::1%eth0");
	assert_int_equal(p, 5351);
	assert_int_equal(pmc_split_server("fd77:77::1", host, sizeof(host), &p), 0);
	assert_string_equal(host, "fd77:77::1");
	assert_int_equal(pmc_split_server("[fd77::1", host, sizeof(host), &p), -EINVAL);
	assert_int_equal(pmc_split_server("1.2.3.4:0", host, sizeof(host), &p), -EINVAL);
	assert_int_equal(pmc_split_server("", host, sizeof(host), &p), -EINVAL);
	assert_int_equal(pmc_split_server("1.2.3.4", host, 4, &p), -EINVAL);
}

static void test_env(void **state)
{
	struct pmc_env env;
	(void)state;
	unsetenv("PCPMAP_DEBUG");
	unsetenv("PCPMAP_GATEWAY");
	unsetenv("PCPMAP_COMPAT_TIMEOUT_MS");
	unsetenv("PCPMAP_COMPAT_PROTOCOLS");
	pmc_env_read(&env, PCPMAP_PROTOS_ALL, 8000);
	assert_int_equal(env.debug, 0);
	assert_int_equal(env.protocols, PCPMAP_PROTOS_ALL);
	assert_string_equal(env.gateway, "");
	assert_int_equal(env.timeout_ms, 8000);

	setenv("PCPMAP_DEBUG", "1", 1);
	setenv("PCPMAP_COMPAT_PROTOCOLS", "natpmp", 1);
	setenv("PCPMAP_GATEWAY", "10.0.0.1:15351", 1);
	setenv("PCPMAP_COMPAT_TIMEOUT_MS", "2500", 1);
	pmc_env_read(&env, PCPMAP_PROTOS_ALL, 8000);
	assert_int_equal(env.debug, 1);
	assert_int_equal(env.protocols, PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP));
	assert_string_equal(env.gateway, "10.0.0.1:15351");
	assert_int_equal(env.timeout_ms, 2500);

	/* Bad values keep the defaults. */
	setenv("PCPMAP_DEBUG", "yes", 1);
	setenv("PCPMAP_COMPAT_PROTOCOLS", "smtp", 1);
	setenv("PCPMAP_COMPAT_TIMEOUT_MS", "0", 1);
	pmc_env_read(&env, PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP), 3000);
	assert_int_equal(env.debug, 1);
	assert_int_equal(env.protocols, PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP));
	assert_int_equal(env.timeout_ms, 3000);

	struct pcpmap_client_config cfg;
	setenv("PCPMAP_DEBUG", "3", 1);
	pmc_env_read(&env, PCPMAP_PROTOS_ALL, 8000);
	pmc_client_config(&cfg, &env, "tag");
	assert_string_equal(cfg.server, "10.0.0.1:15351");
	assert_non_null(cfg.log);
	assert_non_null(cfg.trace);
	assert_int_equal(cfg.protocols, PCPMAP_PROTOS_ALL);
	unsetenv("PCPMAP_DEBUG");
	unsetenv("PCPMAP_GATEWAY");
	unsetenv("PCPMAP_COMPAT_TIMEOUT_MS");
	unsetenv("PCPMAP_COMPAT_PROTOCOLS");
	pmc_env_read(&env, PCPMAP_PROTOS_ALL, 8000);
	pmc_client_config(&cfg, &env, "tag");
	assert_null(cfg.server);
	assert_null(cfg.log);
	assert_null(cfg.trace);
}

static void test_local_addr(void **state)
{
	char buf[64];
	(void)state;
	assert_int_equal(pmc_local_addr_for("127.0.0.1", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "127.0.0.1");
	assert_int_equal(pmc_local_addr_for("not-an-address", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(pmc_seconds_until(0), 0);
	assert_int_equal(pmc_seconds_until(UINT64_MAX), 0);
	assert_int_equal(pmc_seconds_until(pcpmap_now_usec() + 2500000u), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_natpmp_server_codes),
		cmocka_unit_test(test_natpmp_errno),
		cmocka_unit_test(test_natpmp_resultcode),
		cmocka_unit_test(test_upnp_codes),
		cmocka_unit_test(test_upnp_local_errors),
		cmocka_unit_test(test_nonce_derivation),
		cmocka_unit_test(test_siphash_vector),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_local_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
