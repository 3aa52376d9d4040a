/*
 * pcpmapd configuration parser (daemon/config.c, doc/pcpmapd.conf.md): every key, comments, and an error
 * naming the line for every kind of bad input; the shipped example parses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "daemon/config.h"

#ifndef PCPMAP_VECTOR_DIR
#error "PCPMAP_VECTOR_DIR must be defined"
#endif

static struct pmd_cfg cfg;
static char err[512];

static int parse(const char *text)
{
	pmd_cfg_defaults(&cfg);
	err[0] = '\0';
	return pmd_cfg_parse(text, strlen(text), &cfg, err, sizeof(err));
}

static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(parse(""), 0);
	assert_string_equal(cfg.server, "");
	assert_int_equal(cfg.protocols, 0);
	assert_int_equal(cfg.max_mappings, 256);
	assert_int_equal(cfg.max_mappings_per_uid, 32);
	assert_int_equal(cfg.default_lifetime, 7200);
	assert_int_equal(cfg.log_level, 6);
	assert_int_equal(cfg.user_min_port, 1024);
	assert_true(cfg.announce_listener && cfg.netlink_monitor && cfg.user_persistent &&
		    cfg.user_third_party);
	assert_int_equal(parse("# only a comment\n\n   \t\n"), 0);
}

static void test_every_key(void **state)
{
	(void)state;
	const char *text = "server = [fe80::1%eth0]:5351\n"
			   "transport_family = ipv6\n"
			   "protocols = upnp , pcp\n"
			   "remap_interval_ms = 200\n"
			   "port_reservation_code = 200\n"
			   "max_mappings = 100 # trailing comment\n"
			   "max_mappings_per_uid = 10\n"
			   "max_connections = 50\n"
			   "max_connections_per_uid = 5\r\n"
			   "default_lifetime = 600\n"
			   "max_lifetime = 3600\n"
			   "log_level = debug\n"
			   "socket = /tmp/x#y.sock\n"
			   "state_dir = /var/lib/other\n"
			   "announce_listener = no\n"
			   "netlink_monitor = off\n"
			   "user_min_port = 0\n"
			   "user_persistent = false\n"
			   "user_third_party = 0";
	assert_int_equal(parse(text), 0);
	assert_string_equal(cfg.server, "[fe80::1%eth0]:5351");
	assert_int_equal(cfg.server_line, 1);
	assert_int_equal(cfg.transport_family, AF_INET6);
	assert_int_equal(cfg.protocols,
			 PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) | PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP));
	assert_int_equal(cfg.n_protocol_order, 2);
	assert_int_equal(cfg.protocol_order[0], PCPMAP_PROTO_UPNP);
	assert_int_equal(cfg.remap_interval_ms, 200);
	assert_int_equal(cfg.port_reservation_code, 200);
	assert_int_equal(cfg.max_mappings, 100);
	assert_int_equal(cfg.max_mappings_per_uid, 10);
	assert_int_equal(cfg.max_connections, 50);
	assert_int_equal(cfg.max_connections_per_uid, 5);
	assert_int_equal(cfg.default_lifetime, 600);
	assert_int_equal(cfg.max_lifetime, 3600);
	assert_int_equal(cfg.log_level, 7);
	/* '#' inside a value is not a comment. */
	assert_string_equal(cfg.socket_path, "/tmp/x#y.sock");
	assert_string_equal(cfg.state_dir, "/var/lib/other");
	assert_false(cfg.announce_listener || cfg.netlink_monitor || cfg.user_persistent ||
		     cfg.user_third_party);
	assert_int_equal(cfg.user_min_port, 0);
}

static void expect_error(const char *text, const char *needle)
{
	int r = parse(text);
	if (r != -EINVAL)
		fail_msg("accepted: %s", text);
	if (!strstr(err, needle))
		fail_msg("error '%s' lacks '%s' (input: %s)", err, needle, text);
}

static void test_errors_name_the_line(void **state)
{
	(void)state;
	expect_error("log_level = info\n\nbogus = 1\n", "line 3: unknown key 'bogus'");
	expect_error("# c\nserver 192.168.1.1\n", "line 2: expected 'key = value'");
	expect_error("max_mappings = 10\nmax_mappings = 20\n", "line 2: 'max_mappings' set twice");
	expect_error("server =\n", "line 1: 'server' has no value");
	expect_error(" = 5\n", "line 1: missing key");
	expect_error("server = gateway.lan\n", "line 1: server wants a numeric address");
	expect_error("server = 192.168.1.1:0\n", "line 1: server");
	expect_error("server = 192.168.1.1:70000\n", "line 1: server");
	expect_error("server = [192.168.1.1]:5351\n", "line 1: server");
	expect_error("server = fe80::1%\n", "line 1: server");
	expect_error("server = 1.2.3.4%eth0\n", "line 1: server");
	expect_error("\n\n\nprotocols = pcp,ftp\n", "line 4: protocols wants");
	expect_error("protocols = pcp,pcp\n", "line 1: protocols");
	expect_error("protocols = pcp,\n", "line 1: protocols");
	expect_error("transport_family = ipx\n", "line 1: transport_family");
	expect_error("remap_interval_ms = 0\n", "line 1: remap_interval_ms wants 1-60000");
	expect_error("port_reservation_code = 100\n", "line 1: port_reservation_code");
	expect_error("max_mappings = -1\n", "line 1: max_mappings wants");
	expect_error("max_mappings = 10x\n", "line 1: max_mappings wants");
	expect_error("max_mappings = 99999999999999999999\n", "line 1: max_mappings wants");
	expect_error("max_connections = 0\n", "line 1: max_connections wants");
	expect_error("default_lifetime = 0\n", "line 1: default_lifetime wants");
	expect_error("max_lifetime = 86401\n", "line 1: max_lifetime wants");
	expect_error("log_level = loud\n", "line 1: log_level wants");
	expect_error("socket = relative.sock\n", "line 1: socket wants an absolute path");
	expect_error("state_dir = var/lib\n", "line 1: state_dir wants");
	expect_error("announce_listener = maybe\n", "line 1: announce_listener wants yes or no");
	expect_error("user_min_port = 65536\n", "line 1: user_min_port");
	/* Cross-field rules, after every line. */
	expect_error("max_mappings = 10\nmax_mappings_per_uid = 11\n", "max_mappings_per_uid (11) exceeds");
	expect_error("max_connections = 2\n", "max_connections_per_uid (16) exceeds");
	expect_error("max_lifetime = 60\n", "default_lifetime (7200) exceeds");
	/* Binary junk. */
	const char nul[] = "log_level = info\nx\0y = 1\n";
	pmd_cfg_defaults(&cfg);
	assert_int_equal(pmd_cfg_parse(nul, sizeof(nul) - 1, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 2: NUL"));
	char longline[1200];
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	expect_error(longline, "line 1: longer than");
}

static void test_values(void **state)
{
	(void)state;
	int lvl;
	assert_int_equal(pmd_cfg_parse_log_level("warning", &lvl), 0);
	assert_int_equal(lvl, 4);
	assert_int_equal(pmd_cfg_parse_log_level("3", &lvl), 0);
	assert_int_equal(lvl, 3);
	assert_int_equal(pmd_cfg_parse_log_level("8", &lvl), -EINVAL);
	assert_int_equal(pmd_cfg_parse_log_level("", &lvl), -EINVAL);
	assert_int_equal(parse("server = 192.168.1.1\n"), 0);
	assert_int_equal(parse("server = 192.168.1.1:5351\n"), 0);
	assert_int_equal(parse("server = fd00::1\n"), 0);
	assert_int_equal(parse("server = [fd00::1]\n"), 0);
	assert_int_equal(parse("protocols = NAT-PMP\n"), 0);
	assert_int_equal(cfg.protocols, PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP));
}

/* user_port_grants: UID:PORT[-PORT][/PROTO], comma-separated; user_sctp. */
static void test_port_grants(void **state)
{
	(void)state;
	assert_int_equal(parse("user_port_grants = 1000:8000-8099/tcp, *:5004 , 65534:7000-7999/UDP\n"
			       "user_sctp = yes\n"),
			 0);
	assert_true(cfg.user_sctp);
	assert_int_equal(cfg.n_port_grants, 3);
	assert_false(cfg.port_grants[0].any_uid);
	assert_int_equal(cfg.port_grants[0].uid, 1000);
	assert_int_equal(cfg.port_grants[0].ip_proto, 6);
	assert_int_equal(cfg.port_grants[0].low, 8000);
	assert_int_equal(cfg.port_grants[0].high, 8099);
	assert_true(cfg.port_grants[1].any_uid);
	assert_int_equal(cfg.port_grants[1].ip_proto, 0);
	assert_int_equal(cfg.port_grants[1].low, 5004);
	assert_int_equal(cfg.port_grants[1].high, 5004);
	assert_int_equal(cfg.port_grants[2].uid, 65534);
	assert_int_equal(cfg.port_grants[2].ip_proto, 17);
	assert_int_equal(parse("log_level = info\n"), 0);
	assert_int_equal(cfg.n_port_grants, 0);
	assert_false(cfg.user_sctp);
	expect_error("\nuser_port_grants = 1000\n", "line 2: user_port_grants entry '1000' wants UID:PORT");
	expect_error("user_port_grants = 1000:0\n", "entry '1000:0'");
	expect_error("user_port_grants = 1000:9000-8000\n", "entry '1000:9000-8000'");
	expect_error("user_port_grants = bob:80\n", "entry 'bob:80'");
	expect_error("user_port_grants = 1000:80/icmp\n", "entry '1000:80/icmp'");
	expect_error("user_port_grants = 1000:80,\n", "user_port_grants wants");
	expect_error("user_sctp = perhaps\n", "user_sctp wants yes or no");
}

static void test_load_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpmapd-cfg-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("log_level = err\nmax_mappings = nope\n", f);
	fclose(f);
	pmd_cfg_defaults(&cfg);
	assert_int_equal(pmd_cfg_load(path, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "c.conf: line 2: max_mappings wants"));
	/* A failed load leaves the configuration as it was. */
	assert_int_equal(cfg.log_level, 6);
	f = fopen(path, "w");
	fputs("log_level = err\n", f);
	fclose(f);
	assert_int_equal(pmd_cfg_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.log_level, 3);
	unlink(path);
	assert_int_equal(pmd_cfg_load(path, &cfg, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(pmd_cfg_load(dir, &cfg, err, sizeof(err)), -EINVAL);
	rmdir(dir);
	/* The shipped example is valid. */
	snprintf(path, sizeof(path), "%s/../../packaging/pcpmapd.conf", PCPMAP_VECTOR_DIR);
	pmd_cfg_defaults(&cfg);
	if (pmd_cfg_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("packaging/pcpmapd.conf: %s", err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_port_grants),
		cmocka_unit_test(test_load_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
