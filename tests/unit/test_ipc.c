/*
 * pcpmapd control-protocol codec (core/ipc/ipc.c, doc/IPC.md): byte vectors for each layout, round trips,
 * every malformed-input rule, encoder refusals, string sanitising and the size bound of the largest reply.
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

/* The codec is not part of the library that tests link: compile it in. */
#include "ipc/ipc.h"

static struct pmd_ipc_msg msg, out;
static uint8_t buf[PMD_IPC_MAX_MSG + 64], buf2[PMD_IPC_MAX_MSG + 64];

static size_t hex(const char *s, uint8_t *b)
{
	size_t n = 0;
	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		unsigned v;
		assert_int_equal(sscanf(s, "%2x", &v), 1);
		b[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static void test_delete_vector(void **state)
{
	(void)state;
	size_t len;
	uint8_t want[64];
	pmd_ipc_init(&msg, PMD_MSG_DELETE, 7);
	msg.id = 42;
	pmd_ipc_set(&msg, PMD_A_ID);
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), 0);
	size_t wl = hex("01 02 0000 00000007 00000008  0001 0004 0000002a", want);
	assert_int_equal(len, wl);
	assert_memory_equal(buf, want, wl);
	assert_int_equal(pmd_ipc_decode(want, wl, &out), 0);
	assert_int_equal(out.type, PMD_MSG_DELETE);
	assert_int_equal(out.seq, 7);
	assert_int_equal(out.id, 42);
	assert_true(pmd_ipc_has(&out, PMD_A_ID));
	assert_false(pmd_ipc_has(&out, PMD_A_KIND));
}

static void test_create_vector(void **state)
{
	(void)state;
	uint8_t b[256];
	/* CREATE seq 1: KIND 1, IP_PROTO 6, INTERNAL_PORT 8080, PREFER_FAILURE, FILTER 10.0.0.0/8 port 443,
	 * DESCRIPTION "web", NONCE 00..0b, PERSISTENT. */
	size_t n = hex("01 01 0000 00000001 0000003f"
		       "0002 0001 01"
		       "0003 0001 06"
		       "0004 0002 1f90"
		       "0009 0000"
		       "000b 000c 08 00 01bb 31302e302e302e30"
		       "000c 0003 776562"
		       "0012 000c 000102030405060708090a0b"
		       "0013 0000",
		       b);
	assert_int_equal(pmd_ipc_decode(b, n, &out), 0);
	assert_int_equal(out.req.kind, 1);
	assert_int_equal(out.req.ip_proto, 6);
	assert_int_equal(out.req.internal_port, 8080);
	assert_true(out.req.prefer_failure);
	assert_int_equal(out.req.n_filters, 1);
	assert_string_equal(out.req.filters[0].addr, "10.0.0.0");
	assert_int_equal(out.req.filters[0].prefix_len, 8);
	assert_int_equal(out.req.filters[0].port, 443);
	assert_string_equal(out.req.description, "web");
	assert_int_equal(out.req.nonce[11], 11);
	assert_true(out.persistent);
	assert_false(out.req.port_pair);
	/* Canonical: re-encoding gives the same bytes (attributes in type order). */
	size_t len;
	assert_int_equal(pmd_ipc_encode(&out, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(buf, b, n);
}

static void fill_all(struct pmd_ipc_msg *m, size_t addr_len)
{
	char a[PMD_IPC_ADDR_MAX + 1];
	memset(a, '1', addr_len);
	a[addr_len] = '\0';
	pmd_ipc_init(m, PMD_MSG_MAPPING, 0xfffffffe);
	for (unsigned t = 1; t < PMD_A_MAX_; t++)
		pmd_ipc_set(m, (enum pmd_ipc_attr)t);
	m->id = 1;
	m->req.kind = 2;
	m->req.ip_proto = 17;
	m->req.internal_port = 65535;
	m->req.family = 6;
	m->req.suggested_port = 1;
	strcpy(m->req.suggested_addr, a);
	m->req.lifetime = UINT32_MAX;
	m->req.prefer_failure = true;
	strcpy(m->req.third_party, a);
	for (size_t i = 0; i < PMD_IPC_MAX_FILTERS; i++) {
		strcpy(m->req.filters[i].addr, a);
		m->req.filters[i].prefix_len = (uint8_t)i;
		m->req.filters[i].port = (uint16_t)i;
	}
	m->req.n_filters = PMD_IPC_MAX_FILTERS;
	memset(m->req.description, 'd', PMD_IPC_DESC_MAX);
	m->req.description[PMD_IPC_DESC_MAX] = '\0';
	m->req.port_pair = true;
	strcpy(m->req.peer_addr, a);
	m->req.peer_port = 2;
	m->req.protocols = 0xe;
	m->req.deadline_ms = 5;
	memset(m->req.nonce, 0xab, sizeof(m->req.nonce));
	m->req.allow_degrade = true;
	memset(m->nonce2, 0xcd, sizeof(m->nonce2));
	m->persistent = true;
	m->wait_ms = 3;
	m->timeout_ms = 4;
	m->unsubscribe = true;
	m->state = 2;
	m->proto = 1;
	memset(m->server, 's', PMD_IPC_SERVER_MAX);
	strcpy(m->internal_addr, a);
	strcpy(m->external_addr, a);
	m->external_port = 3;
	m->external_port2 = 4;
	m->pair_method = 3;
	m->expires_in = 5;
	m->refresh_in = 6;
	m->retry_in = 7;
	m->epoch = 8;
	m->error = 110;
	m->result_code = 718;
	m->owner_uid = 65534;
	m->external_private = true;
	m->event = 5;
	m->count = 9;
	memset(m->message, 'm', 100);
	memset(m->gateway, 'g', PMD_IPC_SERVER_MAX);
	m->n_servers = 1;
	m->servers[0].proto = 3;
	m->servers[0].version = 2;
	strcpy(m->servers[0].server, "192.168.77.1:5000");
	strcpy(m->servers[0].detail, "http://192.168.77.1:5000/ctl/IPConn");
	m->stat_wakeups = UINT64_MAX;
	m->stat_timer = 1;
	m->stat_engine = 2;
	m->stat_uptime = 3;
	m->connections = 4;
	m->mappings = 5;
}

static void test_round_trip_everything(void **state)
{
	(void)state;
	size_t len, len2;
	fill_all(&msg, 15);
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), 0);
	assert_int_equal(pmd_ipc_decode(buf, len, &out), 0);
	assert_int_equal(out.present, msg.present);
	assert_int_equal(out.req.n_filters, PMD_IPC_MAX_FILTERS);
	assert_int_equal(out.req.filters[39].prefix_len, 39);
	assert_string_equal(out.req.description, msg.req.description);
	assert_int_equal(out.result_code, 718);
	assert_int_equal(out.stat_wakeups, UINT64_MAX);
	assert_int_equal(out.n_servers, 1);
	assert_string_equal(out.servers[0].detail, msg.servers[0].detail);
	assert_true(out.unsubscribe && out.persistent && out.external_private && out.req.port_pair);
	assert_int_equal(pmd_ipc_encode(&out, buf2, sizeof(buf2), &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(buf, buf2, len);
}

/* The daemon's largest reply (a MAPPING with every request field at its longest) fits one message. */
static void test_largest_mapping_fits(void **state)
{
	(void)state;
	size_t len;
	fill_all(&msg, PMD_IPC_ADDR_MAX);
	/* Fields a MAPPING never carries. */
	msg.present &= ~(((uint64_t)1 << PMD_A_MESSAGE) | ((uint64_t)1 << PMD_A_GATEWAY) |
			 ((uint64_t)1 << PMD_A_WAIT_MS) | ((uint64_t)1 << PMD_A_TIMEOUT_MS) |
			 ((uint64_t)1 << PMD_A_COUNT) | ((uint64_t)1 << PMD_A_STAT_WAKEUPS) |
			 ((uint64_t)1 << PMD_A_STAT_TIMER) | ((uint64_t)1 << PMD_A_STAT_ENGINE) |
			 ((uint64_t)1 << PMD_A_STAT_UPTIME) | ((uint64_t)1 << PMD_A_CONNECTIONS) |
			 ((uint64_t)1 << PMD_A_MAPPINGS));
	msg.n_servers = 0;
	msg.unsubscribe = false;
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), 0);
	assert_true(len <= PMD_IPC_MAX_MSG);
	print_message("largest MAPPING: %zu bytes of %d\n", len, PMD_IPC_MAX_MSG);
	/* A PROBE_RESULT with three servers at their longest fits too. */
	pmd_ipc_init(&msg, PMD_MSG_PROBE_RESULT, 1);
	msg.n_servers = 3;
	for (int i = 0; i < 3; i++) {
		memset(msg.servers[i].server, 's', PMD_IPC_SERVER_MAX);
		memset(msg.servers[i].client_addr, 'c', PMD_IPC_ADDR_MAX);
		memset(msg.servers[i].external_addr, 'e', PMD_IPC_ADDR_MAX);
		memset(msg.servers[i].detail, 'd', PMD_IPC_TEXT_MAX);
	}
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), 0);
	assert_int_equal(pmd_ipc_decode(buf, len, &out), 0);
	assert_int_equal(out.n_servers, 3);
	assert_int_equal(strlen(out.servers[2].detail), PMD_IPC_TEXT_MAX);
}

static void test_peek(void **state)
{
	(void)state;
	uint8_t t = 0;
	uint32_t s = 0;
	uint8_t b[32];
	size_t n = hex("02 05 0000 01020304 00000000", b);
	assert_int_equal(pmd_ipc_peek(b, n, &t, &s), -EPROTONOSUPPORT);
	assert_int_equal(t, 5);
	assert_int_equal(s, 0x01020304);
	assert_int_equal(pmd_ipc_decode(b, n, &out), -EPROTONOSUPPORT);
	assert_int_equal(pmd_ipc_peek(b, 11, &t, &s), -EBADMSG);
	b[0] = 1;
	assert_int_equal(pmd_ipc_peek(b, n, &t, &s), 0);
	assert_int_equal(pmd_ipc_peek(b, n + 1, &t, &s), -EBADMSG); /* body length disagrees */
	assert_int_equal(pmd_ipc_peek(NULL, 0, &t, &s), -EBADMSG);
}

/* Each vector must be refused with -EBADMSG, and ret left untouched. */
static void expect_bad(const char *h)
{
	uint8_t b[PMD_IPC_MAX_MSG + 16];
	size_t n = hex(h, b);
	memset(&out, 0x5a, sizeof(out));
	int r = pmd_ipc_decode(b, n, &out);
	if (r != -EBADMSG)
		fail_msg("accepted or wrong error %d: %s", r, h);
	assert_int_equal(((uint8_t *)&out)[0], 0x5a);
	assert_int_equal(((uint8_t *)&out)[sizeof(out) - 1], 0x5a);
}

static void test_malformed(void **state)
{
	(void)state;
	expect_bad("");
	expect_bad("01");
	expect_bad("01 03 0000 00000001 000000");                    /* 11 bytes */
	expect_bad("01 03 0000 00000001 00000001");                  /* body length 1, none there */
	expect_bad("01 03 0000 00000001 00000000 00");               /* body longer than said */
	expect_bad("01 03 0001 00000001 00000000");                  /* reserved flags */
	expect_bad("01 00 0000 00000001 00000000");                  /* type 0 */
	expect_bad("01 08 0000 00000001 00000000");                  /* type 8 */
	expect_bad("01 ff 0000 00000001 00000000");                  /* type 255 */
	expect_bad("01 03 0000 00000001 00000003 000100");           /* truncated attribute header */
	expect_bad("01 03 0000 00000001 00000006 0001 0004 0000");   /* value past the end */
	expect_bad("01 03 0000 00000001 00000004 0000 0000");        /* attribute 0 */
	expect_bad("01 03 0000 00000001 00000004 0034 0000");        /* attribute 52 (mandatory, unknown) */
	expect_bad("01 03 0000 00000001 00000004 7fff 0000");        /* unknown mandatory */
	expect_bad("01 02 0000 00000001 00000007 0001 0003 000001"); /* u32 of 3 bytes */
	expect_bad("01 02 0000 00000001 00000009 0001 0005 0000000001");             /* u32 of 5 bytes */
	expect_bad("01 01 0000 00000001 00000006 0002 0002 0001");                   /* u8 of 2 bytes */
	expect_bad("01 01 0000 00000001 00000005 0004 0001 01");                     /* u16 of 1 byte */
	expect_bad("01 01 0000 00000001 00000005 0009 0001 01");                     /* flag with a value */
	expect_bad("01 07 0000 00000001 00000009 002c 0005 0000000000");             /* u64 of 5 bytes */
	expect_bad("01 01 0000 00000001 0000000f 0012 000b 000102030405060708090a"); /* nonce of 11 */
	expect_bad("01 02 0000 00000001 00000010 0001 0004 00000001 0001 0004 00000002"); /* repeat */
	expect_bad("01 01 0000 00000001 00000008 0009 0000 0009 0000");                   /* repeated flag */
	expect_bad("01 01 0000 00000001 00000006 000c 0002 6100");        /* NUL in a string */
	expect_bad("01 01 0000 00000001 00000006 000c 0002 610a");        /* newline */
	expect_bad("01 01 0000 00000001 00000005 000c 0001 7f");          /* DEL */
	expect_bad("01 01 0000 00000001 00000006 000c 0002 c0af");        /* overlong '/' */
	expect_bad("01 01 0000 00000001 00000007 000c 0003 eda080");      /* surrogate */
	expect_bad("01 01 0000 00000001 00000008 000c 0004 f4908080");    /* above U+10FFFF */
	expect_bad("01 01 0000 00000001 00000006 000c 0002 c285");        /* C1 control (NEL) */
	expect_bad("01 01 0000 00000001 00000005 000c 0001 e2");          /* truncated sequence */
	expect_bad("01 01 0000 00000001 00000007 000b 0003 080001");      /* filter shorter than 4 */
	expect_bad("01 01 0000 00000001 00000009 000b 0005 81000000 31"); /* prefix 129 */
	expect_bad("01 01 0000 00000001 00000009 000b 0005 08010000 31"); /* reserved byte */
	expect_bad(
	    "01 84 0000 00000001 00000013 0029 000f 01020000 00000000 00000000 000000"); /* server < 16 */
	expect_bad("01 84 0000 00000001 00000015 0029 0011 01020000 00000000 00000000 00000000 05"); /* str */
	expect_bad("01 84 0000 00000001 00000019 0029 0015 01020000 00000000 00000000 00000000 00000000 ff");
	/* Strings longer than their bound: a 48-byte address. */
	char h[512];
	int o = snprintf(h, sizeof(h), "01 01 0000 00000001 00000034 0007 0030 ");
	for (int i = 0; i < 48; i++)
		o += snprintf(h + o, sizeof(h) - (size_t)o, "31");
	expect_bad(h);
}

static void test_repeat_bounds(void **state)
{
	(void)state;
	/* 41 FILTERs are one too many; 40 are fine. */
	static char h[8192];
	int o = snprintf(h, sizeof(h), "01 01 0000 00000001 %08x", 41 * 9);
	for (int i = 0; i < 41; i++)
		o += snprintf(h + o, sizeof(h) - (size_t)o, " 000b 0005 20000000 31");
	expect_bad(h);
	uint8_t b[1024];
	size_t n = hex(h, b);
	b[11] = (uint8_t)(40 * 9);
	assert_int_equal(pmd_ipc_decode(b, 12 + 40 * 9, &out), 0);
	assert_int_equal(out.req.n_filters, 40);
	/* Four SERVER_INFO: one too many. */
	o = snprintf(h, sizeof(h), "01 84 0000 00000001 %08x", 4 * 24);
	for (int i = 0; i < 4; i++)
		o += snprintf(h + o, sizeof(h) - (size_t)o,
			      " 0029 0014 01020000 00000000 00000000 00000000 00000000");
	expect_bad(h);
	(void)n;
	/* Too long for one message. */
	uint8_t *big = calloc(1, PMD_IPC_MAX_MSG + 1);
	assert_non_null(big);
	big[0] = 1;
	big[1] = PMD_MSG_LIST;
	uint32_t body = PMD_IPC_MAX_MSG + 1 - PMD_IPC_HDR_LEN;
	big[8] = (uint8_t)(body >> 24);
	big[9] = (uint8_t)(body >> 16);
	big[10] = (uint8_t)(body >> 8);
	big[11] = (uint8_t)body;
	for (size_t i = 12; i + 4 <= PMD_IPC_MAX_MSG + 1; i += 4) {
		big[i] = 0x80; /* optional unknown attributes, empty */
		big[i + 1] = 0x01;
	}
	assert_int_equal(pmd_ipc_decode(big, PMD_IPC_MAX_MSG + 1, &out), -EBADMSG);
	free(big);
}

static void test_optional_unknown_skipped(void **state)
{
	(void)state;
	uint8_t b[64];
	size_t n = hex("01 02 0000 00000009 00000012 8123 0002 abcd 0001 0004 00000005 fffe 0000", b);
	assert_int_equal(pmd_ipc_decode(b, n, &out), 0);
	assert_int_equal(out.id, 5);
	/* Re-encoded without what it did not understand. */
	size_t len;
	assert_int_equal(pmd_ipc_encode(&out, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 12 + 8);
}

static void test_encode_refusals(void **state)
{
	(void)state;
	size_t len = 12345;
	pmd_ipc_init(&msg, PMD_MSG_ERROR, 1);
	strcpy(msg.message, "bad\nline");
	pmd_ipc_set(&msg, PMD_A_MESSAGE);
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(len, 12345);
	strcpy(msg.message, "fine");
	assert_int_equal(pmd_ipc_encode(&msg, buf, 12, &len), -ENOSPC);
	assert_int_equal(pmd_ipc_encode(&msg, buf, 12 + 4 + 3, &len), -ENOSPC);
	assert_int_equal(pmd_ipc_encode(&msg, buf, 12 + 4 + 4, &len), 0);
	assert_int_equal(len, 20);
	msg.type = 99;
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), -EINVAL);
	pmd_ipc_init(&msg, PMD_MSG_CREATE, 1);
	msg.req.n_filters = 41;
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), -EINVAL);
	msg.req.n_filters = 1;
	strcpy(msg.req.filters[0].addr, "10.0.0.0");
	msg.req.filters[0].prefix_len = 129;
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), -EINVAL);
	/* An unterminated string field is refused, not read past. */
	pmd_ipc_init(&msg, PMD_MSG_MAPPING, 1);
	memset(msg.server, 'x', sizeof(msg.server));
	pmd_ipc_set(&msg, PMD_A_SERVER);
	assert_int_equal(pmd_ipc_encode(&msg, buf, sizeof(buf), &len), -EINVAL);
}

static void test_strings(void **state)
{
	(void)state;
	char d[8];
	assert_true(pmd_ipc_str_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_false(pmd_ipc_str_valid("a\tb", 3));
	assert_false(pmd_ipc_str_valid("\xff", 1));
	pmd_ipc_copy_str(d, sizeof(d), "a\nb\xff");
	assert_string_equal(d, "a?b?");
	/* Truncation never splits a character: "ab€" needs 5 bytes + NUL. */
	pmd_ipc_copy_str(d, 5, "ab\xe2\x82\xac");
	assert_string_equal(d, "ab");
	pmd_ipc_copy_str(d, 6, "ab\xe2\x82\xac");
	assert_string_equal(d, "ab\xe2\x82\xac");
	pmd_ipc_copy_str(d, sizeof(d), NULL);
	assert_string_equal(d, "");
	assert_int_equal(pmd_ipc_family_to_wire(AF_INET6), 6);
	assert_int_equal(pmd_ipc_family_from_wire(4), AF_INET);
	assert_int_equal(pmd_ipc_family_from_wire(5), 0);
	assert_string_equal(pmd_ipc_type_name(PMD_MSG_PROBE_RESULT), "PROBE_RESULT");
	assert_string_equal(pmd_ipc_type_name(200), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delete_vector),
		cmocka_unit_test(test_create_vector),
		cmocka_unit_test(test_round_trip_everything),
		cmocka_unit_test(test_largest_mapping_fits),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_repeat_bounds),
		cmocka_unit_test(test_optional_unknown_skipped),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
