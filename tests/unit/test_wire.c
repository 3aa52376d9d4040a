/*
 * PCP wire codec tests: encoding against hand-built vectors (tests/vectors, RFC 6887 layouts), round trips of
 * every option, every malformed-input rule, every response verdict, and the result-code table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wire/pcp_wire.h"

#ifndef PCPMAP_VECTOR_DIR
#error "PCPMAP_VECTOR_DIR must be defined (absolute path of tests/vectors)"
#endif

/* ---- vector loader: '#' comments, hex bytes with arbitrary whitespace, one message per file ---- */

struct vec {
	uint8_t b[4096];
	size_t len;
	char expect[32]; /* value of a "# expect: X" comment line, "" if none */
};

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int vec_parse(const char *text, struct vec *v)
{
	const char *p = text;
	int hi = -1;

	v->len = 0;
	v->expect[0] = '\0';
	while (*p) {
		if (*p == '#') {
			const char *eol = strchr(p, '\n');
			size_t n = eol ? (size_t)(eol - p) : strlen(p);
			if (n > 9 && strncmp(p, "# expect:", 9) == 0) {
				const char *s = p + 9;
				while (*s == ' ' || *s == '\t')
					s++;
				size_t k = 0;
				while (s < p + n && *s != ' ' && *s != '\t' && *s != '\r' &&
				       k + 1 < sizeof(v->expect))
					v->expect[k++] = *s++;
				v->expect[k] = '\0';
			}
			p += n;
			continue;
		}
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			p++;
			continue;
		}
		int x = hexval((unsigned char)*p);
		if (x < 0)
			return -EINVAL;
		if (hi < 0) {
			hi = x;
		} else {
			if (v->len >= sizeof(v->b))
				return -ENOSPC;
			v->b[v->len++] = (uint8_t)(hi << 4 | x);
			hi = -1;
		}
		p++;
	}
	return hi < 0 ? 0 : -EINVAL; /* an odd number of hex digits is a broken file */
}

static int vec_load_path(const char *path, struct vec *v)
{
	static char text[65536];
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return vec_parse(text, v);
}

static void vec_load(const char *name, struct vec *v)
{
	char path[1024];
	int k = snprintf(path, sizeof(path), "%s/%s.hex", PCPMAP_VECTOR_DIR, name);
	if (k < 0 || (size_t)k >= sizeof(path))
		fail_msg("vector path too long: %s", name);
	int r = vec_load_path(path, v);
	if (r < 0)
		fail_msg("cannot load vector %s: %s", path, strerror(-r));
}

/* ---- message builders matching the vectors ---- */

static struct pcp_addr addr(const char *s)
{
	struct pcp_addr a;
	assert_int_equal(pcp_addr_from_string(s, &a), 0);
	return a;
}

static void set_nonce(struct pcp_msg *m)
{
	for (int i = 0; i < PCP_NONCE_LEN; i++)
		m->nonce[i] = (uint8_t)(i + 1);
}

static void announce_req(struct pcp_msg *m, const char *client)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_ANNOUNCE;
	m->client_addr = addr(client);
}

static void map_req_v4(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_MAP;
	m->lifetime = 7200;
	m->client_addr = addr("192.168.77.2");
	set_nonce(m);
	m->protocol = 6;
	m->internal_port = 8080;
	m->ext_port = 8080;
	pcp_addr_any(&m->ext_addr, AF_INET);
}

static void map_req_v6(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_MAP;
	m->lifetime = 3600;
	m->client_addr = addr("fd77:77::2");
	set_nonce(m);
	m->protocol = 17;
	m->internal_port = 5000;
	m->ext_port = 0;
	pcp_addr_any(&m->ext_addr, AF_INET6);
}

static void map_resp_v4(struct pcp_msg *m)
{
	map_req_v4(m);
	memset(&m->client_addr, 0, sizeof(m->client_addr));
	m->response = true;
	m->result = PCP_RES_SUCCESS;
	m->epoch = 1000;
	m->ext_addr = addr("203.0.113.1");
}

static void peer_req_v4(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_PEER;
	m->lifetime = 7200;
	m->client_addr = addr("192.168.77.2");
	set_nonce(m);
	m->protocol = 6;
	m->internal_port = 50000;
	m->ext_port = 50000;
	pcp_addr_any(&m->ext_addr, AF_INET);
	m->peer_port = 443;
	m->peer_addr = addr("198.51.100.7");
}

static void peer_req_v6(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_PEER;
	m->lifetime = 600;
	m->client_addr = addr("fd77:77::2");
	set_nonce(m);
	m->protocol = 17;
	m->internal_port = 40000;
	m->ext_port = 0;
	pcp_addr_any(&m->ext_addr, AF_INET6);
	m->peer_port = 3478;
	m->peer_addr = addr("2001:db8::7");
}

static void set_description(struct pcp_options *o, const char *s)
{
	o->has_description = true;
	o->description_len = strlen(s);
	memcpy(o->description, s, o->description_len + 1);
}

static void add_all_map_options(struct pcp_msg *m)
{
	struct pcp_options *o = &m->opts;
	o->has_third_party = true;
	o->third_party = addr("192.168.77.3");
	o->prefer_failure = true;
	o->n_filters = 2;
	o->filters[0].prefix_len = 120;
	o->filters[0].peer_port = 443;
	o->filters[0].peer_addr = addr("198.51.100.0");
	o->filters[1].prefix_len = 128;
	o->filters[1].peer_port = 0;
	o->filters[1].peer_addr = addr("2001:db8::7");
	set_description(o, "hello");
	o->n_prefix64 = 1;
	o->prefix64[0].prefix_len = 12;
	memcpy(o->prefix64[0].prefix, "\x00\x64\xff\x9b\0\0\0\0\0\0\0\0", 12);
	o->has_port_set = true;
	o->port_set.size = 2;
	o->port_set.first_port = 8080;
	o->port_set.parity = true;
	o->port_reservation = true;
}

/* Encodes m, compares with the vector byte for byte, and decodes the vector back to m. */
static void assert_encodes_to(const struct pcp_msg *m, const char *name)
{
	static struct vec v;
	static struct pcp_msg d;
	uint8_t buf[PCP_MAX_MSG];
	size_t len = 0;

	vec_load(name, &v);
	assert_int_equal(pcp_encode(m, NULL, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, v.len);
	assert_memory_equal(buf, v.b, len);
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_true(pcp_msg_equal(m, &d));
}

/* encode -> decode -> equal, and the second encoding is byte-identical. */
static size_t roundtrip(const struct pcp_msg *m, const struct pcp_codec_cfg *cfg)
{
	static struct pcp_msg d;
	uint8_t b1[PCP_MAX_MSG], b2[PCP_MAX_MSG];
	size_t l1 = 0, l2 = 0;

	assert_int_equal(pcp_encode(m, cfg, b1, sizeof(b1), &l1), 0);
	assert_true(l1 % 4 == 0 && l1 <= PCP_MAX_MSG);
	assert_int_equal(pcp_decode(b1, l1, cfg, &d), 0);
	assert_true(pcp_msg_equal(m, &d));
	assert_int_equal(d.opts.n_unknown_optional, 0);
	assert_int_equal(pcp_encode(&d, cfg, b2, sizeof(b2), &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	return l1;
}

static int encode_err(const struct pcp_msg *m)
{
	uint8_t buf[PCP_MAX_MSG + 64];
	size_t len = 12345;
	int r = pcp_encode(m, NULL, buf, sizeof(buf), &len);
	if (r < 0)
		assert_int_equal(len, 12345); /* untouched on failure */
	return r;
}

static int decode_bytes(const uint8_t *b, size_t len)
{
	static struct pcp_msg d;
	memset(&d, 0xa5, sizeof(d));
	int r = pcp_decode(b, len, NULL, &d);
	if (r < 0) {
		/* ret untouched on failure */
		for (size_t i = 0; i < sizeof(d); i++)
			if (((const uint8_t *)&d)[i] != 0xa5)
				fail_msg("pcp_decode wrote its output on failure");
	}
	return r;
}

static enum pcp_verdict validate(const struct pcp_msg *req, const uint8_t *b, size_t len,
				 struct pcp_validate_out *out)
{
	return pcp_validate_response(req, b, len, NULL, out);
}

static enum pcp_verdict validate_msg(const struct pcp_msg *req, const struct pcp_msg *resp)
{
	uint8_t b[PCP_MAX_MSG];
	size_t len = 0;
	assert_int_equal(pcp_encode(resp, NULL, b, sizeof(b), &len), 0);
	return validate(req, b, len, NULL);
}

/* ---- every PCP vector file in the directory (other modules keep their own vectors there too) ---- */

static bool is_pcp_vector(const char *name)
{
	static const char *const prefixes[] = { "announce-", "map-", "peer-", "bad-", "miniupnpd-" };
	size_t nl = strlen(name);

	if (nl < 5 || strcmp(name + nl - 4, ".hex") != 0)
		return false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static void test_vector_directory(void **state)
{
	(void)state;
	static char names[512][256];
	static struct vec v;
	static struct pcp_msg d, d2;
	uint8_t buf[PCP_MAX_MSG];
	size_t n = 0, n_ok = 0, n_bad = 0, n_other = 0;

	/* Collect the names first so a failing assertion cannot leak the DIR. */
	DIR *dir = opendir(PCPMAP_VECTOR_DIR);
	assert_non_null(dir);
	struct dirent *e;
	while ((e = readdir(dir)) && n < sizeof(names) / sizeof(names[0])) {
		if (is_pcp_vector(e->d_name) && strlen(e->d_name) < sizeof(names[0]))
			strcpy(names[n++], e->d_name);
	}
	closedir(dir);

	for (size_t i = 0; i < n; i++) {
		const char *name = names[i];
		char path[1024];
		int k = snprintf(path, sizeof(path), "%s/%s", PCPMAP_VECTOR_DIR, name);
		if (k < 0 || (size_t)k >= sizeof(path))
			fail_msg("vector path too long: %s", name);
		int r = vec_load_path(path, &v);
		if (r < 0)
			fail_msg("%s: unreadable vector (%d)", name, r);
		if (v.len == 0 || v.len > PCP_MAX_MSG)
			fail_msg("%s: %zu bytes is no PCP message", name, v.len);
		if (strcmp(v.expect, "ok") == 0) {
			r = pcp_decode(v.b, v.len, NULL, &d);
			if (r != 0)
				fail_msg("%s: decode returned %d", name, r);
			size_t len = 0;
			assert_int_equal(pcp_encode(&d, NULL, buf, sizeof(buf), &len), 0);
			assert_int_equal(pcp_decode(buf, len, NULL, &d2), 0);
			assert_true(pcp_msg_equal(&d, &d2));
			/* Hand-built vectors are canonical unless they carry options we skip. */
			if (d.opts.n_unknown_optional == 0 && strncmp(name, "miniupnpd-", 10) != 0) {
				assert_int_equal(len, v.len);
				assert_memory_equal(buf, v.b, len);
			}
			n_ok++;
		} else if (strcmp(v.expect, "EBADMSG") == 0 || strcmp(v.expect, "EPROTONOSUPPORT") == 0) {
			int want = strcmp(v.expect, "EBADMSG") == 0 ? -EBADMSG : -EPROTONOSUPPORT;
			r = decode_bytes(v.b, v.len);
			if (r != want)
				fail_msg("%s: decode returned %d, want %d", name, r, want);
			n_bad++;
		} else if (v.expect[0]) {
			fail_msg("%s: unknown expectation '%s'", name, v.expect);
		} else {
			n_other++; /* e.g. captured vectors without an expectation: loading is all we check */
		}
	}
	assert_true(n_ok >= 17);
	assert_true(n_bad >= 30);
	print_message("vectors: %zu ok, %zu malformed, %zu without expectation\n", n_ok, n_bad, n_other);
}

/*
 * Captured miniupnpd exchanges (miniupnpd-NAME-req.hex / miniupnpd-NAME-resp.hex, recorded in the interop lab).
 * Rules that hold for any capture: a reply to a request we can decode validates as ACCEPT and carries the
 * result code of byte 3; a long version-0 reply is not NAT-PMP support; an unsolicited ANNOUNCE validates.
 */
static void test_miniupnpd_captures(void **state)
{
	(void)state;
	static char names[256][256];
	static struct vec rq, rs;
	static struct pcp_msg req, any_map, announce;
	static struct pcp_validate_out out;
	size_t n = 0, n_pairs = 0, n_v0 = 0, n_announce = 0;

	DIR *dir = opendir(PCPMAP_VECTOR_DIR);
	assert_non_null(dir);
	struct dirent *e;
	while ((e = readdir(dir)) && n < sizeof(names) / sizeof(names[0])) {
		size_t nl = strlen(e->d_name);
		if (strncmp(e->d_name, "miniupnpd-", 10) == 0 && nl > 19 && nl < sizeof(names[0]) &&
		    strcmp(e->d_name + nl - 9, "-resp.hex") == 0) {
			memcpy(names[n], e->d_name, nl - 9); /* the stem: miniupnpd-NAME */
			names[n++][nl - 9] = '\0';
		}
	}
	closedir(dir);
	if (n == 0)
		skip(); /* no captures recorded yet */

	map_req_v4(&any_map);
	announce_req(&announce, "192.168.77.2");
	for (size_t i = 0; i < n; i++) {
		char stem[300];
		int k = snprintf(stem, sizeof(stem), "%s-resp", names[i]);
		if (k < 0 || (size_t)k >= sizeof(stem))
			fail_msg("vector name too long: %s", names[i]);
		vec_load(stem, &rs);
		/* Longer than any NAT-PMP reply: miniupnpd's "00 80 00 03" answer to a malformed request. */
		if (rs.b[0] == 0 && rs.len > 16 && rs.len % 4 == 0) {
			if (validate(&any_map, rs.b, rs.len, NULL) != PCP_V_DROP_VERSION)
				fail_msg("%s: a long version-0 reply must be DROP_VERSION", stem);
			n_v0++;
		}
		char path[1024];
		k = snprintf(path, sizeof(path), "%s/%s-req.hex", PCPMAP_VECTOR_DIR, names[i]);
		if (k < 0 || (size_t)k >= sizeof(path))
			fail_msg("vector path too long: %s", names[i]);
		if (vec_load_path(path, &rq) < 0) {
			/* Unsolicited: a PCP ANNOUNCE must pass as a reply to an ANNOUNCE probe. */
			if (rs.len >= PCP_HDR_LEN && rs.b[0] == PCP_VERSION &&
			    rs.b[1] == (PCP_R_BIT | PCP_OP_ANNOUNCE)) {
				if (validate(&announce, rs.b, rs.len, NULL) != PCP_V_ACCEPT)
					fail_msg("%s: unsolicited ANNOUNCE not accepted", stem);
				n_announce++;
			}
			continue;
		}
		if (pcp_decode(rq.b, rq.len, NULL, &req) != 0 || req.response)
			continue; /* not a request we could have sent (NAT-PMP, garbage, unknown options) */
		enum pcp_verdict v = validate(&req, rs.b, rs.len, &out);
		if (v != PCP_V_ACCEPT)
			fail_msg("%s: verdict %s", stem, pcp_verdict_name(v));
		assert_int_equal(out.msg.result, rs.b[3]);
		n_pairs++;
	}
	print_message(
	    "miniupnpd captures: %zu accepted pairs, %zu version-0 replies, %zu unsolicited ANNOUNCE\n",
	    n_pairs, n_v0, n_announce);
}

static void test_loader(void **state)
{
	(void)state;
	static struct vec v;
	assert_int_equal(vec_parse("# c\n0A bc\n# expect: ok\n\tDe\n", &v), 0);
	assert_int_equal(v.len, 3);
	assert_int_equal(v.b[0], 0x0a);
	assert_int_equal(v.b[1], 0xbc);
	assert_int_equal(v.b[2], 0xde);
	assert_string_equal(v.expect, "ok");
	assert_int_equal(vec_parse("0a b", &v), -EINVAL);
	assert_int_equal(vec_parse("0g", &v), -EINVAL);
	assert_int_equal(vec_parse("a\nb", &v), 0); /* whitespace may split a byte's digits */
	assert_int_equal(v.len, 1);
	assert_int_equal(v.b[0], 0xab);
}

/* ---- encoding every message type against the hand-built vectors ---- */

static void test_encode_announce(void **state)
{
	(void)state;
	static struct pcp_msg m;
	announce_req(&m, "192.168.77.2");
	assert_encodes_to(&m, "announce-req-v4");
	announce_req(&m, "fd77:77::2");
	assert_encodes_to(&m, "announce-req-v6");

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_ANNOUNCE;
	m.epoch = 1234;
	assert_encodes_to(&m, "announce-resp");
}

static void test_encode_map(void **state)
{
	(void)state;
	static struct pcp_msg m;
	map_req_v4(&m);
	assert_encodes_to(&m, "map-req-v4");
	map_req_v6(&m);
	assert_encodes_to(&m, "map-req-v6");
	map_resp_v4(&m);
	assert_encodes_to(&m, "map-resp-v4");

	map_req_v6(&m);
	memset(&m.client_addr, 0, sizeof(m.client_addr));
	m.response = true;
	m.epoch = 42;
	m.ext_port = 5000;
	m.ext_addr = addr("fd77:77::2");
	assert_encodes_to(&m, "map-resp-v6");

	map_req_v4(&m);
	memset(&m.client_addr, 0, sizeof(m.client_addr));
	m.response = true;
	m.result = PCP_RES_NO_RESOURCES;
	m.lifetime = 30;
	m.epoch = 1000;
	assert_encodes_to(&m, "map-resp-error");

	map_req_v4(&m);
	m.lifetime = 0;
	m.protocol = 0;
	m.internal_port = 0;
	m.ext_port = 0;
	assert_encodes_to(&m, "map-req-delete-all");
}

static void test_encode_peer(void **state)
{
	(void)state;
	static struct pcp_msg m;
	peer_req_v4(&m);
	assert_encodes_to(&m, "peer-req-v4");
	peer_req_v6(&m);
	assert_encodes_to(&m, "peer-req-v6");

	peer_req_v4(&m);
	memset(&m.client_addr, 0, sizeof(m.client_addr));
	m.response = true;
	m.epoch = 1000;
	m.ext_port = 50001;
	m.ext_addr = addr("203.0.113.1");
	assert_encodes_to(&m, "peer-resp-v4");

	peer_req_v6(&m);
	memset(&m.client_addr, 0, sizeof(m.client_addr));
	m.response = true;
	m.epoch = 77;
	m.ext_port = 40000;
	m.ext_addr = addr("fd77:77::2");
	assert_encodes_to(&m, "peer-resp-v6");
}

static void test_encode_options(void **state)
{
	(void)state;
	static struct pcp_msg m;
	map_req_v4(&m);
	add_all_map_options(&m);
	assert_encodes_to(&m, "map-req-all-options");

	peer_req_v4(&m);
	m.opts.has_third_party = true;
	m.opts.third_party = addr("192.168.77.3");
	set_description(&m.opts, "pcpmap/1");
	assert_encodes_to(&m, "peer-req-options");

	map_resp_v4(&m);
	struct pcp_prefix64 *p = &m.opts.prefix64[0];
	m.opts.n_prefix64 = 1;
	p->prefix_len = 4;
	memcpy(p->prefix, "\x20\x01\x0d\xb8", 4);
	p->n_v4 = 1;
	p->v4[0].len = 24;
	memcpy(p->v4[0].prefix, "\x0a\0\0\0", 4);
	assert_encodes_to(&m, "map-resp-prefix64");
}

/* Decoding the vectors yields the field values written in their comments. */
static void test_decode_fields(void **state)
{
	(void)state;
	static struct vec v;
	static struct pcp_msg d;
	char s[PCP_ADDR_STRLEN];

	vec_load("map-resp-v4", &v);
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_true(d.response);
	assert_int_equal(d.version, 2);
	assert_int_equal(d.opcode, PCP_OP_MAP);
	assert_int_equal(d.result, 0);
	assert_int_equal(d.lifetime, 7200);
	assert_int_equal(d.epoch, 1000);
	assert_int_equal(d.protocol, 6);
	assert_int_equal(d.internal_port, 8080);
	assert_int_equal(d.ext_port, 8080);
	assert_true(pcp_addr_to_string(&d.ext_addr, s, sizeof(s)) > 0);
	assert_string_equal(s, "203.0.113.1");

	vec_load("peer-req-v6", &v);
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_false(d.response);
	assert_int_equal(d.opcode, PCP_OP_PEER);
	assert_int_equal(d.lifetime, 600);
	assert_int_equal(d.peer_port, 3478);
	assert_true(pcp_addr_to_string(&d.peer_addr, s, sizeof(s)) > 0);
	assert_string_equal(s, "2001:db8::7");
	assert_true(pcp_addr_to_string(&d.client_addr, s, sizeof(s)) > 0);
	assert_string_equal(s, "fd77:77::2");

	vec_load("map-req-all-options", &v);
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_true(d.opts.has_third_party);
	assert_true(d.opts.prefer_failure);
	assert_int_equal(d.opts.n_filters, 2);
	assert_int_equal(d.opts.filters[0].prefix_len, 120);
	assert_int_equal(d.opts.filters[0].peer_port, 443);
	assert_int_equal(d.opts.description_len, 5);
	assert_string_equal(d.opts.description, "hello");
	assert_int_equal(d.opts.n_prefix64, 1);
	assert_int_equal(d.opts.prefix64[0].prefix_len, 12);
	assert_true(d.opts.has_port_set);
	assert_int_equal(d.opts.port_set.size, 2);
	assert_int_equal(d.opts.port_set.first_port, 8080);
	assert_true(d.opts.port_set.parity);
	assert_true(d.opts.port_reservation);
	assert_int_equal(d.opts.n_unknown_optional, 0);

	vec_load("map-resp-prefix64", &v);
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_int_equal(d.opts.n_prefix64, 1);
	assert_int_equal(d.opts.prefix64[0].prefix_len, 4);
	assert_memory_equal(d.opts.prefix64[0].prefix, "\x20\x01\x0d\xb8", 4);
	assert_int_equal(d.opts.prefix64[0].n_v4, 1);
	assert_int_equal(d.opts.prefix64[0].v4[0].len, 24);
	assert_memory_equal(d.opts.prefix64[0].v4[0].prefix, "\x0a\0\0\0", 4);

	/* Unknown optional options are counted and skipped; the rest of the message is kept. */
	vec_load("map-req-unknown-optional", &v);
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_int_equal(d.opts.n_unknown_optional, 1);
	assert_int_equal(d.internal_port, 8080);

	/* Response reserved bytes (which may echo the client address, RFC 6887 7.2) are ignored. */
	vec_load("map-resp-v4", &v);
	memset(v.b + 12, 0x77, 12);
	v.b[2] = 0x55;
	assert_int_equal(pcp_decode(v.b, v.len, NULL, &d), 0);
	assert_int_equal(d.epoch, 1000);
	assert_int_equal(d.result, 0);
}

/* ---- round trips: every option alone, then all together ---- */

static void test_roundtrip_each_option(void **state)
{
	(void)state;
	static struct pcp_msg m;

	map_req_v4(&m);
	assert_int_equal(roundtrip(&m, NULL), 60);

	map_req_v4(&m);
	m.opts.has_third_party = true;
	m.opts.third_party = addr("fd77:77::3");
	assert_int_equal(roundtrip(&m, NULL), 80);

	map_req_v4(&m);
	m.opts.prefer_failure = true;
	assert_int_equal(roundtrip(&m, NULL), 64);

	map_req_v4(&m);
	m.opts.n_filters = 1;
	m.opts.filters[0].prefix_len = 0; /* "remove all filters" is valid for an IPv4 peer too */
	m.opts.filters[0].peer_addr = addr("198.51.100.7");
	assert_int_equal(roundtrip(&m, NULL), 84);

	for (size_t len = 0; len <= 9; len++) {
		char text[16] = "abcdefghi";
		text[len] = '\0';
		map_req_v4(&m);
		set_description(&m.opts, text);
		assert_int_equal(roundtrip(&m, NULL), 64 + ((len + 3) & ~(size_t)3));
	}
	map_req_v4(&m);
	/* Multi-byte UTF-8: 2, 3 and 4-byte sequences. */
	set_description(&m.opts, "port \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	roundtrip(&m, NULL);

	static const uint16_t p64_lens[] = { 4, 5, 6, 7, 8, 12 };
	for (size_t i = 0; i < sizeof(p64_lens) / sizeof(p64_lens[0]); i++) {
		map_resp_v4(&m);
		struct pcp_prefix64 *p = &m.opts.prefix64[0];
		m.opts.n_prefix64 = 1;
		p->prefix_len = p64_lens[i];
		for (size_t j = 0; j < p->prefix_len; j++)
			p->prefix[j] = (uint8_t)(0x10 + j);
		for (size_t j = 0; j < 12u - p->prefix_len; j++)
			p->suffix[j] = (uint8_t)(0x80 + j);
		assert_int_equal(roundtrip(&m, NULL), 80);
		p->n_v4 = PCP_MAX_PREFIX64_V4;
		for (size_t j = 0; j < p->n_v4; j++) {
			p->v4[j].len = (uint16_t)(j * 4);
			memcpy(p->v4[j].prefix, "\x0a\x01\x02\x03", 4);
		}
		assert_int_equal(roundtrip(&m, NULL), 60 + 4 + 64);
	}

	map_req_v4(&m);
	m.opts.has_port_set = true;
	m.opts.port_set.size = 16;
	m.opts.port_set.first_port = 40000;
	m.opts.port_set.parity = false;
	assert_int_equal(roundtrip(&m, NULL), 72);

	map_req_v4(&m);
	m.opts.port_reservation = true;
	assert_int_equal(roundtrip(&m, NULL), 64);

	/* PEER options alone. */
	peer_req_v6(&m);
	m.opts.has_third_party = true;
	m.opts.third_party = addr("fd77:77::3");
	assert_int_equal(roundtrip(&m, NULL), 100);
	peer_req_v6(&m);
	set_description(&m.opts, "x");
	assert_int_equal(roundtrip(&m, NULL), 88);
	peer_req_v6(&m);
	m.opts.n_prefix64 = 1;
	m.opts.prefix64[0].prefix_len = 8;
	assert_int_equal(roundtrip(&m, NULL), 100);
}

static void test_roundtrip_all_options(void **state)
{
	(void)state;
	static struct pcp_msg m;

	map_req_v4(&m);
	add_all_map_options(&m);
	assert_int_equal(roundtrip(&m, NULL), 180);

	/* As a response, with every repeatable option at its limit that still fits in 1100 bytes. */
	map_resp_v4(&m);
	add_all_map_options(&m);
	m.opts.n_filters = 30;
	for (size_t i = 0; i < m.opts.n_filters; i++) {
		m.opts.filters[i].prefix_len = (uint8_t)(96 + i);
		m.opts.filters[i].peer_port = (uint16_t)i;
		m.opts.filters[i].peer_addr = addr("198.51.100.0");
	}
	m.opts.n_prefix64 = PCP_MAX_PREFIX64;
	for (size_t i = 0; i < PCP_MAX_PREFIX64; i++) {
		m.opts.prefix64[i].prefix_len = 6;
		m.opts.prefix64[i].n_v4 = (uint16_t)i;
	}
	roundtrip(&m, NULL);

	/* PEER with everything PEER may carry. */
	peer_req_v4(&m);
	m.opts.has_third_party = true;
	m.opts.third_party = addr("192.168.77.3");
	set_description(&m.opts, "game");
	m.opts.n_prefix64 = 2;
	m.opts.prefix64[0].prefix_len = 12;
	m.opts.prefix64[1].prefix_len = 4;
	roundtrip(&m, NULL);

	/* Largest message: 40 filters and a 76-byte description make exactly 1100 bytes. */
	map_req_v4(&m);
	m.opts.n_filters = PCP_MAX_FILTERS;
	for (size_t i = 0; i < PCP_MAX_FILTERS; i++) {
		m.opts.filters[i].prefix_len = 128;
		m.opts.filters[i].peer_addr = addr("2001:db8::1");
	}
	char text[PCP_MAX_DESCRIPTION + 2];
	memset(text, 'd', 76);
	text[76] = '\0';
	set_description(&m.opts, text);
	assert_int_equal(roundtrip(&m, NULL), PCP_MAX_MSG);
	text[76] = 'd';
	text[77] = '\0';
	set_description(&m.opts, text);
	assert_int_equal(encode_err(&m), -EINVAL); /* 1104 bytes */

	/* The longest description. */
	map_req_v4(&m);
	memset(text, 'z', PCP_MAX_DESCRIPTION);
	text[PCP_MAX_DESCRIPTION] = '\0';
	set_description(&m.opts, text);
	assert_int_equal(roundtrip(&m, NULL), 60 + 4 + PCP_MAX_DESCRIPTION);
}

static void test_port_reservation_code(void **state)
{
	(void)state;
	static struct pcp_msg m, d;
	uint8_t buf[PCP_MAX_MSG];
	size_t len = 0;
	struct pcp_codec_cfg cfg = { .port_reservation_code = 200 };

	map_req_v4(&m);
	m.opts.port_reservation = true;
	assert_int_equal(roundtrip(&m, &cfg), 64);
	assert_int_equal(pcp_encode(&m, &cfg, buf, sizeof(buf), &len), 0);
	assert_int_equal(buf[60], 200);
	assert_int_equal(buf[61], 0);
	assert_int_equal(buf[62], 0);
	assert_int_equal(buf[63], 0);
	/* Decoded with the default code (132), option 200 is just an unknown optional option. */
	assert_int_equal(pcp_decode(buf, len, NULL, &d), 0);
	assert_false(d.opts.port_reservation);
	assert_int_equal(d.opts.n_unknown_optional, 1);

	/* A mandatory-range code works as well. */
	cfg.port_reservation_code = 99;
	assert_int_equal(roundtrip(&m, &cfg), 64);
	assert_int_equal(pcp_encode(&m, &cfg, buf, sizeof(buf), &len), 0);
	assert_int_equal(pcp_decode(buf, len, NULL, &d), -EPROTONOSUPPORT);

	/* cfg code 0 means the default. */
	cfg.port_reservation_code = 0;
	assert_int_equal(pcp_encode(&m, &cfg, buf, sizeof(buf), &len), 0);
	assert_int_equal(buf[60], PCP_PORT_RESERVATION_DEFAULT);

	/* A code that collides with a known option is a bad argument for both directions. */
	static const uint8_t clash[] = { 1, 2, 3, 128, 129, 130 };
	for (size_t i = 0; i < sizeof(clash); i++) {
		cfg.port_reservation_code = clash[i];
		len = 777;
		assert_int_equal(pcp_encode(&m, &cfg, buf, sizeof(buf), &len), -EINVAL);
		assert_int_equal(len, 777);
		assert_int_equal(pcp_decode(buf, 64, &cfg, &d), -EINVAL);
	}
}

/* ---- encode rule violations ---- */

static void test_encode_errors(void **state)
{
	(void)state;
	static struct pcp_msg m;
	uint8_t buf[PCP_MAX_MSG];
	size_t len = 99;

	map_req_v4(&m);
	m.version = 1;
	assert_int_equal(encode_err(&m), -EINVAL);
	map_req_v4(&m);
	m.opcode = 3;
	assert_int_equal(encode_err(&m), -EINVAL);
	map_req_v4(&m);
	m.opcode = 0x81;
	assert_int_equal(encode_err(&m), -EINVAL);

	/* ANNOUNCE carries no options at all. */
	for (int which = 0; which < 7; which++) {
		announce_req(&m, "192.168.77.2");
		struct pcp_options *o = &m.opts;
		switch (which) {
		case 0:
			o->has_third_party = true;
			break;
		case 1:
			o->prefer_failure = true;
			break;
		case 2:
			o->n_filters = 1;
			break;
		case 3:
			set_description(o, "a");
			break;
		case 4:
			o->n_prefix64 = 1;
			o->prefix64[0].prefix_len = 12;
			break;
		case 5:
			o->has_port_set = true;
			break;
		default:
			o->port_reservation = true;
			break;
		}
		assert_int_equal(encode_err(&m), -EINVAL);
		m.response = true;
		assert_int_equal(encode_err(&m), -EINVAL);
	}

	/* MAP-only options in a PEER. */
	for (int which = 0; which < 4; which++) {
		peer_req_v4(&m);
		struct pcp_options *o = &m.opts;
		if (which == 0)
			o->prefer_failure = true;
		else if (which == 1)
			o->n_filters = 1, o->filters[0].prefix_len = 128;
		else if (which == 2)
			o->has_port_set = true;
		else
			o->port_reservation = true;
		assert_int_equal(encode_err(&m), -EINVAL);
	}

	/* RFC 6887 11.1: protocol 0 needs internal port 0 (requests). */
	map_req_v4(&m);
	m.protocol = 0;
	assert_int_equal(encode_err(&m), -EINVAL);
	m.internal_port = 0;
	assert_int_equal(encode_err(&m), 0);

	/* RFC 6887 12.1: PEER needs protocol, internal port and remote peer port. */
	peer_req_v4(&m);
	m.peer_port = 0;
	assert_int_equal(encode_err(&m), -EINVAL);
	peer_req_v4(&m);
	m.protocol = 0;
	assert_int_equal(encode_err(&m), -EINVAL);
	peer_req_v4(&m);
	m.internal_port = 0;
	assert_int_equal(encode_err(&m), -EINVAL);
	peer_req_v4(&m);
	m.response = true;
	m.peer_port = 0;
	assert_int_equal(encode_err(&m), -EINVAL); /* a successful PEER response too */
	m.result = PCP_RES_MALFORMED_REQUEST;
	assert_int_equal(encode_err(&m), 0); /* an error response copies the bad request back */

	/* Option limits and contents. */
	map_req_v4(&m);
	m.opts.n_filters = PCP_MAX_FILTERS + 1;
	assert_int_equal(encode_err(&m), -EINVAL);
	map_req_v4(&m);
	m.opts.n_filters = 1;
	m.opts.filters[0].prefix_len = 129;
	m.opts.filters[0].peer_addr = addr("2001:db8::1");
	assert_int_equal(encode_err(&m), -EINVAL);
	m.opts.filters[0].prefix_len = 1;
	assert_int_equal(encode_err(&m), 0); /* any 0..128 for IPv6 peers */
	m.opts.filters[0].peer_addr = addr("198.51.100.1");
	assert_int_equal(encode_err(&m), -EINVAL); /* IPv4 peers: 0 or 96..128 */
	m.opts.filters[0].prefix_len = 95;
	assert_int_equal(encode_err(&m), -EINVAL);
	m.opts.filters[0].prefix_len = 96;
	assert_int_equal(encode_err(&m), 0);
	m.opts.filters[0].prefix_len = 128;
	assert_int_equal(encode_err(&m), 0);

	map_req_v4(&m);
	m.opts.n_prefix64 = PCP_MAX_PREFIX64 + 1;
	for (size_t i = 0; i < PCP_MAX_PREFIX64; i++)
		m.opts.prefix64[i].prefix_len = 12;
	assert_int_equal(encode_err(&m), -EINVAL);
	static const uint16_t bad_p64[] = { 0, 1, 3, 9, 10, 11, 13, 16, 0xffff };
	for (size_t i = 0; i < sizeof(bad_p64) / sizeof(bad_p64[0]); i++) {
		map_req_v4(&m);
		m.opts.n_prefix64 = 1;
		m.opts.prefix64[0].prefix_len = bad_p64[i];
		assert_int_equal(encode_err(&m), -EINVAL);
	}
	map_req_v4(&m);
	m.opts.n_prefix64 = 1;
	m.opts.prefix64[0].prefix_len = 8;
	m.opts.prefix64[0].n_v4 = PCP_MAX_PREFIX64_V4 + 1;
	assert_int_equal(encode_err(&m), -EINVAL);
	m.opts.prefix64[0].n_v4 = 1;
	m.opts.prefix64[0].v4[0].len = 33;
	assert_int_equal(encode_err(&m), -EINVAL);
	m.opts.prefix64[0].v4[0].len = 32;
	assert_int_equal(encode_err(&m), 0);

	map_req_v4(&m);
	m.opts.has_description = true;
	m.opts.description_len = PCP_MAX_DESCRIPTION + 1;
	assert_int_equal(encode_err(&m), -EINVAL);
	set_description(&m.opts, "abcd");
	m.opts.description[1] = '\0'; /* NUL inside the counted text */
	assert_int_equal(encode_err(&m), -EINVAL);
	static const char *const bad_utf8[] = {
		"\xc3\x28",         /* bad continuation */
		"\xc0\xaf",         /* overlong '/' */
		"\xe0\x80\xaf",     /* overlong */
		"\xed\xa0\x80",     /* surrogate U+D800 */
		"\xf4\x90\x80\x80", /* above U+10FFFF */
		"\xff",             /* never valid */
		"ab\xe2\x82",       /* truncated sequence */
	};
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		set_description(&m.opts, bad_utf8[i]);
		assert_int_equal(encode_err(&m), -EINVAL);
	}

	/* Output buffer. */
	map_req_v4(&m);
	assert_int_equal(pcp_encode(&m, NULL, buf, 59, &len), -ENOSPC);
	assert_int_equal(len, 99);
	assert_int_equal(pcp_encode(&m, NULL, buf, 60, &len), 0);
	assert_int_equal(len, 60);
	assert_int_equal(pcp_encode(&m, NULL, NULL, 0, &len), -ENOSPC);
	assert_int_equal(pcp_encode(NULL, NULL, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(pcp_encode(&m, NULL, buf, sizeof(buf), NULL), -EINVAL);
	assert_int_equal(pcp_encode(&m, NULL, NULL, 100, &len), -EINVAL);
}

/* ---- decode rule violations that need a generated buffer ---- */

static size_t put_map_req(uint8_t *b)
{
	static struct pcp_msg m;
	size_t len = 0;
	map_req_v4(&m);
	assert_int_equal(pcp_encode(&m, NULL, b, PCP_MAX_MSG, &len), 0);
	return len;
}

static void test_decode_errors(void **state)
{
	(void)state;
	static uint8_t b[2048];
	static struct vec v;
	static struct pcp_msg d;
	size_t len;

	/* Lengths: below 24, not a multiple of 4, above 1100. */
	memset(b, 0, sizeof(b));
	vec_load("announce-req-v4", &v);
	for (len = 0; len < PCP_HDR_LEN; len++)
		assert_int_equal(decode_bytes(v.b, len), -EBADMSG);
	memcpy(b, v.b, v.len);
	for (len = 25; len < 28; len++)
		assert_int_equal(decode_bytes(b, len), -EBADMSG);
	assert_int_equal(decode_bytes(b, 24), 0);
	/* Trailing zeros read as the reserved (mandatory-range) option 0. */
	assert_int_equal(decode_bytes(b, 28), -EPROTONOSUPPORT);

	len = put_map_req(b);
	b[len] = 0xc8; /* one unknown optional option filling the message up to 1104 bytes */
	b[len + 1] = 0;
	b[len + 2] = (uint8_t)((PCP_MAX_MSG + 4 - len - 4) >> 8);
	b[len + 3] = (uint8_t)(PCP_MAX_MSG + 4 - len - 4);
	memset(b + len + 4, 'x', PCP_MAX_MSG + 4 - len - 4);
	assert_int_equal(decode_bytes(b, PCP_MAX_MSG + 4), -EBADMSG);
	b[len + 2] = (uint8_t)((PCP_MAX_MSG - len - 4) >> 8); /* the same at exactly 1100 is fine */
	b[len + 3] = (uint8_t)(PCP_MAX_MSG - len - 4);
	assert_int_equal(pcp_decode(b, PCP_MAX_MSG, NULL, &d), 0);
	assert_int_equal(d.opts.n_unknown_optional, 1);

	/* Description longer than PCP_MAX_DESCRIPTION. */
	len = put_map_req(b);
	b[len] = PCP_OPT_DESCRIPTION;
	b[len + 1] = 0;
	b[len + 2] = (PCP_MAX_DESCRIPTION + 1) >> 8;
	b[len + 3] = (PCP_MAX_DESCRIPTION + 1) & 0xff;
	memset(b + len + 4, 'a', PCP_MAX_DESCRIPTION + 4);
	size_t total = len + 4 + ((PCP_MAX_DESCRIPTION + 1 + 3) & ~3u);
	memset(b + len + 4 + PCP_MAX_DESCRIPTION + 1, 0, 3);
	assert_int_equal(decode_bytes(b, total), -EBADMSG);
	b[len + 3] = PCP_MAX_DESCRIPTION & 0xff; /* 512 exactly is fine */
	b[len + 2] = PCP_MAX_DESCRIPTION >> 8;
	assert_int_equal(pcp_decode(b, len + 4 + PCP_MAX_DESCRIPTION, NULL, &d), 0);
	assert_int_equal(d.opts.description_len, PCP_MAX_DESCRIPTION);
	assert_int_equal(strlen(d.opts.description), PCP_MAX_DESCRIPTION);

	/* More FILTERs than PCP_MAX_FILTERS. */
	len = put_map_req(b);
	for (int i = 0; i <= PCP_MAX_FILTERS; i++) {
		uint8_t *f = b + len + 24 * (size_t)i;
		memset(f, 0, 24);
		f[0] = PCP_OPT_FILTER;
		f[3] = 20;
		f[5] = 128;
		f[8] = 0x20;
	}
	assert_int_equal(pcp_decode(b, len + 24 * PCP_MAX_FILTERS, NULL, &d), 0);
	assert_int_equal(d.opts.n_filters, PCP_MAX_FILTERS);
	assert_int_equal(decode_bytes(b, len + 24 * (PCP_MAX_FILTERS + 1)), -EBADMSG);

	/* More PREFIX64 options than PCP_MAX_PREFIX64. */
	len = put_map_req(b);
	for (int i = 0; i <= PCP_MAX_PREFIX64; i++) {
		uint8_t *p = b + len + 20 * (size_t)i;
		memset(p, 0, 20);
		p[0] = PCP_OPT_PREFIX64;
		p[3] = 14;
		p[5] = 12;
	}
	assert_int_equal(pcp_decode(b, len + 20 * PCP_MAX_PREFIX64, NULL, &d), 0);
	assert_int_equal(d.opts.n_prefix64, PCP_MAX_PREFIX64);
	assert_int_equal(decode_bytes(b, len + 20 * (PCP_MAX_PREFIX64 + 1)), -EBADMSG);

	/* A PREFIX64 IPv4 list longer than PCP_MAX_PREFIX64_V4. */
	len = put_map_req(b);
	size_t olen = 14 + 2 + 6 * (PCP_MAX_PREFIX64_V4 + 1);
	memset(b + len, 0, 4 + olen + 4);
	b[len] = PCP_OPT_PREFIX64;
	b[len + 3] = (uint8_t)olen;
	b[len + 5] = 12;
	b[len + 4 + 15] = PCP_MAX_PREFIX64_V4 + 1;
	assert_int_equal(decode_bytes(b, len + 4 + ((olen + 3) & ~(size_t)3)), -EBADMSG);

	/* A request option code 0 (reserved, mandatory range). */
	len = put_map_req(b);
	memset(b + len, 0, 4);
	assert_int_equal(decode_bytes(b, len + 4), -EPROTONOSUPPORT);

	/* Every single-bit flip of the version byte away from 2 is rejected. */
	vec_load("map-req-v4", &v);
	for (int bit = 0; bit < 8; bit++) {
		memcpy(b, v.b, v.len);
		b[0] ^= (uint8_t)(1u << bit);
		assert_int_equal(decode_bytes(b, v.len), -EBADMSG);
	}
	/* Opcodes 3..127 are not decoded. */
	for (int op = 3; op < 128; op++) {
		memcpy(b, v.b, v.len);
		b[1] = (uint8_t)op;
		assert_int_equal(decode_bytes(b, v.len), -EBADMSG);
	}

	/* Arguments. */
	assert_int_equal(pcp_decode(v.b, v.len, NULL, NULL), -EINVAL);
	assert_int_equal(pcp_decode(NULL, 60, NULL, &d), -EINVAL);
	assert_int_equal(pcp_decode(NULL, 0, NULL, &d), -EBADMSG);
}

/* ---- addresses ---- */

static void test_addresses(void **state)
{
	(void)state;
	struct pcp_addr a;
	struct in_addr v4;
	struct in6_addr v6;
	char s[PCP_ADDR_STRLEN];

	assert_int_equal(inet_pton(AF_INET, "203.0.113.1", &v4), 1);
	pcp_addr_from_v4(&a, &v4);
	assert_memory_equal(a.b, "\0\0\0\0\0\0\0\0\0\0\xff\xff\xcb\x00\x71\x01", 16);
	assert_true(pcp_addr_is_v4(&a));
	assert_int_equal(pcp_addr_to_string(&a, s, sizeof(s)), 11);
	assert_string_equal(s, "203.0.113.1");
	assert_int_equal(pcp_addr_to_string(&a, s, 12), 11);
	assert_int_equal(pcp_addr_to_string(&a, s, 11), -ENOSPC);
	struct in_addr back;
	assert_int_equal(pcp_addr_to_v4(&a, &back), 0);
	assert_int_equal(back.s_addr, v4.s_addr);

	assert_int_equal(inet_pton(AF_INET6, "2001:db8::7", &v6), 1);
	pcp_addr_from_v6(&a, &v6);
	assert_false(pcp_addr_is_v4(&a));
	assert_int_equal(pcp_addr_to_v4(&a, &back), -EINVAL);
	assert_int_equal(pcp_addr_to_string(&a, s, sizeof(s)), 11);
	assert_string_equal(s, "2001:db8::7");

	/* RFC 6887 5: all of the first 96 bits decide, not just bytes 10-11. */
	memcpy(a.b, "\x01\0\0\0\0\0\0\0\0\0\xff\xff\x01\x02\x03\x04", 16);
	assert_false(pcp_addr_is_v4(&a));
	memcpy(a.b, "\0\0\0\0\0\0\0\0\0\0\xff\xfe\x01\x02\x03\x04", 16);
	assert_false(pcp_addr_is_v4(&a));

	pcp_addr_any(&a, AF_INET);
	assert_memory_equal(a.b, "\0\0\0\0\0\0\0\0\0\0\xff\xff\0\0\0\0", 16);
	assert_true(pcp_addr_is_v4(&a));
	assert_int_equal(pcp_addr_to_string(&a, s, sizeof(s)), 7);
	assert_string_equal(s, "0.0.0.0");
	pcp_addr_any(&a, AF_INET6);
	assert_memory_equal(a.b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_false(pcp_addr_is_v4(&a));
	assert_int_equal(pcp_addr_to_string(&a, s, sizeof(s)), 2);
	assert_string_equal(s, "::");

	assert_int_equal(pcp_addr_from_string("192.168.77.2", &a), 0);
	assert_true(pcp_addr_is_v4(&a));
	assert_int_equal(a.b[15], 2);
	assert_int_equal(pcp_addr_from_string("::ffff:192.168.77.2", &a), 0);
	assert_true(pcp_addr_is_v4(&a));
	assert_int_equal(pcp_addr_to_string(&a, s, sizeof(s)), 12);
	assert_string_equal(s, "192.168.77.2");
	assert_int_equal(pcp_addr_from_string("fd77:77::2", &a), 0);
	assert_int_equal(a.b[0], 0xfd);

	struct pcp_addr keep;
	memset(&keep, 0x42, sizeof(keep));
	static const char *const bad[] = { "",    "1.2.3",    "1.2.3.256", "example.org",
					   "::g", "1.2.3.4 ", "fd77::1/64" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a = keep;
		assert_int_equal(pcp_addr_from_string(bad[i], &a), -EINVAL);
		assert_memory_equal(&a, &keep, sizeof(a));
	}
	assert_int_equal(pcp_addr_from_string(NULL, &a), -EINVAL);
}

/* ---- pcp_validate_response: every verdict ---- */

static void test_validate_accept(void **state)
{
	(void)state;
	static struct pcp_msg req, resp;
	static struct pcp_validate_out out;
	static struct vec v;

	map_req_v4(&req);
	vec_load("map-resp-v4", &v);
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_ACCEPT);
	assert_int_equal(out.server_version, 2);
	assert_int_equal(out.msg.ext_port, 8080);
	assert_int_equal(out.msg.epoch, 1000);
	assert_int_equal(validate(&req, v.b, v.len, NULL), PCP_V_ACCEPT);

	/* A matching error response is accepted: the caller acts on its result code. */
	vec_load("map-resp-error", &v);
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_ACCEPT);
	assert_int_equal(out.msg.result, PCP_RES_NO_RESOURCES);
	assert_int_equal(out.msg.lifetime, 30);

	map_req_v6(&req);
	vec_load("map-resp-v6", &v);
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_ACCEPT);

	peer_req_v4(&req);
	vec_load("peer-resp-v4", &v);
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_ACCEPT);
	assert_int_equal(out.msg.ext_port, 50001);
	peer_req_v6(&req);
	vec_load("peer-resp-v6", &v);
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_ACCEPT);

	/* ANNOUNCE request, ANNOUNCE response (also how an unsolicited ANNOUNCE is checked). */
	announce_req(&req, "192.168.77.2");
	vec_load("announce-resp", &v);
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_ACCEPT);
	assert_int_equal(out.msg.epoch, 1234);

	/* The server echoes our options (LAB table): still accepted, options decoded. */
	map_req_v4(&req);
	add_all_map_options(&req);
	map_resp_v4(&resp);
	add_all_map_options(&resp);
	assert_int_equal(validate_msg(&req, &resp), PCP_V_ACCEPT);
}

static void test_validate_natpmp(void **state)
{
	(void)state;
	static struct pcp_msg req;
	static struct pcp_validate_out out;
	map_req_v4(&req);

	/* miniupnpd's NAT-PMP "unsupported version" answer: 00 81 00 01 + SSSoE. */
	static const uint8_t natpmp8[] = { 0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x30, 0x39 };
	assert_int_equal(validate(&req, natpmp8, sizeof(natpmp8), &out), PCP_V_NATPMP_SERVER);
	assert_int_equal(out.server_version, 0);
	assert_int_equal(out.msg.version, 0);
	assert_int_equal(out.msg.result, 1);
	assert_int_equal(out.msg.epoch, 12345);
	/* RFC 6886 text (opcode 0) and erratum 3618 (128) variants. */
	static const uint8_t natpmp8_rfc[] = { 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01 };
	assert_int_equal(validate(&req, natpmp8_rfc, 8, NULL), PCP_V_NATPMP_SERVER);
	static const uint8_t natpmp8_errata[] = { 0x00, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01 };
	assert_int_equal(validate(&req, natpmp8_errata, 8, NULL), PCP_V_NATPMP_SERVER);
	/* 12- and 16-byte NAT-PMP replies with result 1. */
	uint8_t b[16] = { 0x00, 0x80, 0x00, 0x01, 0, 0, 0, 9 };
	assert_int_equal(validate(&req, b, 12, NULL), PCP_V_NATPMP_SERVER);
	b[1] = 0x82;
	assert_int_equal(validate(&req, b, 16, NULL), PCP_V_NATPMP_SERVER);
	/* Version 0 with any other result, or another length, is dropped as a wrong version. */
	b[3] = 0;
	assert_int_equal(validate(&req, b, 16, NULL), PCP_V_DROP_VERSION);
	b[3] = 1;
	b[2] = 1; /* result 257 */
	assert_int_equal(validate(&req, b, 8, NULL), PCP_V_DROP_VERSION);
	b[2] = 0;
	assert_int_equal(validate(&req, b, 4, NULL), PCP_V_DROP_VERSION);

	/* LAB: the 24-byte "00 80 00 03" answer to a short request is not NAT-PMP support. */
	static struct vec v;
	vec_load("bad-version-0", &v);
	memset(&out, 0x5a, sizeof(out));
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_DROP_VERSION);
	assert_int_equal(((const uint8_t *)&out)[0], 0x5a); /* untouched */
	/* Even with result 1 a 24-byte version-0 reply is not the NAT-PMP form. */
	v.b[3] = 1;
	assert_int_equal(validate(&req, v.b, v.len, NULL), PCP_V_DROP_VERSION);
}

static void test_validate_version(void **state)
{
	(void)state;
	static struct pcp_msg req;
	static struct pcp_validate_out out;
	static struct vec v;

	map_req_v4(&req);
	vec_load("map-resp-error", &v);
	/* A v3 server: UNSUPP_VERSION with its version in byte 0. */
	v.b[0] = 3;
	v.b[3] = PCP_RES_UNSUPP_VERSION;
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_UNSUPP_VERSION);
	assert_int_equal(out.server_version, 3);
	assert_int_equal(out.msg.version, 3);
	assert_int_equal(out.msg.result, PCP_RES_UNSUPP_VERSION);
	assert_int_equal(out.msg.epoch, 1000);
	/* ... even as a bare header. */
	assert_int_equal(validate(&req, v.b, 24, &out), PCP_V_UNSUPP_VERSION);
	/* A draft-era v1 server. */
	v.b[0] = 1;
	assert_int_equal(validate(&req, v.b, v.len, &out), PCP_V_UNSUPP_VERSION);
	assert_int_equal(out.server_version, 1);
	/* Another version with any other result is dropped. */
	v.b[0] = 3;
	v.b[3] = PCP_RES_SUCCESS;
	assert_int_equal(validate(&req, v.b, v.len, NULL), PCP_V_DROP_VERSION);
	v.b[3] = PCP_RES_NO_RESOURCES;
	assert_int_equal(validate(&req, v.b, v.len, NULL), PCP_V_DROP_VERSION);
	/* ... and so is a v3 UNSUPP_VERSION without the R bit (the R check comes first). */
	v.b[3] = PCP_RES_UNSUPP_VERSION;
	v.b[1] = PCP_OP_MAP;
	assert_int_equal(validate(&req, v.b, v.len, NULL), PCP_V_DROP_NOT_RESPONSE);
}

static void test_validate_drops(void **state)
{
	(void)state;
	static struct pcp_msg req, resp;
	static struct pcp_validate_out out;
	static struct vec v;
	static uint8_t b[PCP_MAX_MSG + 8];

	map_req_v4(&req);
	vec_load("map-resp-v4", &v);

	/* Lengths. */
	for (size_t len = 0; len < 4; len++)
		assert_int_equal(validate(&req, v.b, len, NULL), PCP_V_DROP_SHORT);
	assert_int_equal(validate(&req, NULL, 60, NULL), PCP_V_DROP_SHORT);
	memset(b, 0, sizeof(b));
	memcpy(b, v.b, v.len);
	assert_int_equal(validate(&req, b, PCP_MAX_MSG + 4, NULL), PCP_V_DROP_LONG);
	assert_int_equal(validate(&req, b, PCP_MAX_MSG + 1, NULL), PCP_V_DROP_LONG);
	for (size_t len = 5; len < 8; len++)
		assert_int_equal(validate(&req, b, len, NULL), PCP_V_DROP_ALIGN);
	assert_int_equal(validate(&req, b, 62, NULL), PCP_V_DROP_ALIGN);
	/* 4..20 bytes of a PCP reply: aligned, not NAT-PMP, but too short to decode. */
	assert_int_equal(validate(&req, b, 20, NULL), PCP_V_DROP_MALFORMED);
	assert_int_equal(validate(&req, b, 4, NULL), PCP_V_DROP_MALFORMED);

	/* Our own request reflected back (R bit clear). */
	static struct vec rq;
	vec_load("map-req-v4", &rq);
	assert_int_equal(validate(&req, rq.b, rq.len, NULL), PCP_V_DROP_NOT_RESPONSE);

	/* Wrong version without UNSUPP_VERSION. */
	memcpy(b, v.b, v.len);
	b[0] = 1;
	assert_int_equal(validate(&req, b, v.len, NULL), PCP_V_DROP_VERSION);

	/* Opcode not the outstanding one. */
	static struct vec pv;
	vec_load("peer-resp-v4", &pv);
	assert_int_equal(validate(&req, pv.b, pv.len, NULL), PCP_V_DROP_OPCODE);
	vec_load("announce-resp", &pv);
	assert_int_equal(validate(&req, pv.b, pv.len, NULL), PCP_V_DROP_OPCODE);

	/* Malformed: truncated MAP, bad option, unknown mandatory option. */
	assert_int_equal(validate(&req, v.b, 56, NULL), PCP_V_DROP_MALFORMED);
	memcpy(b, v.b, v.len);
	memcpy(b + v.len, "\x02\x00\x00\x04\x00\x00\x00\x00", 8); /* PREFER_FAILURE of length 4 */
	assert_int_equal(validate(&req, b, v.len + 8, NULL), PCP_V_DROP_MALFORMED);
	memcpy(b + v.len, "\x07\x00\x00\x00", 4);
	assert_int_equal(validate(&req, b, v.len + 4, NULL), PCP_V_DROP_MALFORMED);

	/* Nonce. */
	memcpy(b, v.b, v.len);
	b[24 + 11] ^= 1;
	memset(&out, 0x5a, sizeof(out));
	assert_int_equal(validate(&req, b, v.len, &out), PCP_V_DROP_NONCE);
	assert_int_equal(((const uint8_t *)&out)[0], 0x5a);

	/* Protocol and internal port. */
	map_resp_v4(&resp);
	resp.protocol = 17;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_DROP_MISMATCH);
	map_resp_v4(&resp);
	resp.internal_port = 8081;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_DROP_MISMATCH);
	/* PEER remote peer port and address. */
	peer_req_v4(&req);
	peer_req_v4(&resp);
	resp.response = true;
	resp.ext_port = 50001;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_ACCEPT);
	resp.peer_port = 444;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_DROP_MISMATCH);
	resp.peer_port = 443;
	resp.peer_addr = addr("198.51.100.8");
	assert_int_equal(validate_msg(&req, &resp), PCP_V_DROP_MISMATCH);

	/* SUCCESS with a lifetime but no external port. */
	map_req_v4(&req);
	map_resp_v4(&resp);
	resp.ext_port = 0;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_DROP_BAD_PORT);
	peer_req_v4(&req);
	peer_req_v4(&resp);
	resp.response = true;
	resp.ext_port = 0;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_DROP_BAD_PORT);
	/* ... fine for a delete (lifetime 0), an error, or a request for all ports. */
	map_req_v4(&req);
	map_resp_v4(&resp);
	resp.ext_port = 0;
	resp.lifetime = 0;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_ACCEPT);
	resp.lifetime = 7200;
	resp.result = PCP_RES_NOT_AUTHORIZED;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_ACCEPT);
	req.protocol = 0;
	req.internal_port = 0;
	map_resp_v4(&resp);
	resp.protocol = 0;
	resp.internal_port = 0;
	resp.ext_port = 0;
	assert_int_equal(validate_msg(&req, &resp), PCP_V_ACCEPT);
}

static void test_verdict_names(void **state)
{
	(void)state;
	static const char *const want[PCP_V__MAX] = {
		"ACCEPT",     "NATPMP_SERVER",     "UNSUPP_VERSION", "DROP_SHORT",  "DROP_LONG",
		"DROP_ALIGN", "DROP_NOT_RESPONSE", "DROP_VERSION",   "DROP_OPCODE", "DROP_MALFORMED",
		"DROP_NONCE", "DROP_MISMATCH",     "DROP_BAD_PORT",
	};
	for (int i = 0; i < PCP_V__MAX; i++)
		assert_string_equal(pcp_verdict_name((enum pcp_verdict)i), want[i]);
	assert_string_equal(pcp_verdict_name(PCP_V__MAX), "UNKNOWN");
	assert_string_equal(pcp_verdict_name((enum pcp_verdict)(PCP_V__MAX + 7)), "UNKNOWN");
}

/* ---- result codes ---- */

static void test_result_codes(void **state)
{
	(void)state;
	static const struct {
		uint8_t code;
		const char *name;
		enum pcp_err_class cls;
		enum pcp_client_action action;
		uint32_t hold;
	} want[] = {
		{ 0, "SUCCESS", PCP_ERR_NONE, PCP_ACT_USE, 0 },
		{ 1, "UNSUPP_VERSION", PCP_ERR_LONG, PCP_ACT_NEGOTIATE_VERSION, 1800 },
		{ 2, "NOT_AUTHORIZED", PCP_ERR_LONG, PCP_ACT_FALLBACK, 1800 },
		{ 3, "MALFORMED_REQUEST", PCP_ERR_LONG, PCP_ACT_FAIL, 1800 },
		{ 4, "UNSUPP_OPCODE", PCP_ERR_LONG, PCP_ACT_DROP_OPCODE, 1800 },
		{ 5, "UNSUPP_OPTION", PCP_ERR_LONG, PCP_ACT_RETRY_WITHOUT_OPTION, 1800 },
		{ 6, "MALFORMED_OPTION", PCP_ERR_LONG, PCP_ACT_FAIL, 1800 },
		{ 7, "NETWORK_FAILURE", PCP_ERR_SHORT, PCP_ACT_RETRY_LATER, 30 },
		{ 8, "NO_RESOURCES", PCP_ERR_SHORT, PCP_ACT_RETRY_LATER, 30 },
		{ 9, "UNSUPP_PROTOCOL", PCP_ERR_LONG, PCP_ACT_FAIL, 1800 },
		{ 10, "USER_EX_QUOTA", PCP_ERR_SHORT, PCP_ACT_RETRY_LATER, 30 },
		{ 11, "CANNOT_PROVIDE_EXTERNAL", PCP_ERR_SHORT, PCP_ACT_RETRY_OTHER_SUGGESTION, 30 },
		{ 12, "ADDRESS_MISMATCH", PCP_ERR_LONG, PCP_ACT_FIX_CLIENT_ADDR, 1800 },
		{ 13, "EXCESSIVE_REMOTE_PEERS", PCP_ERR_LONG, PCP_ACT_FEWER_FILTERS, 1800 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct pcp_result_info ri = pcp_result_info(want[i].code);
		assert_int_equal(ri.code, want[i].code);
		assert_string_equal(ri.name, want[i].name);
		assert_string_equal(pcp_result_name(want[i].code), want[i].name);
		assert_int_equal(ri.cls, want[i].cls);
		assert_int_equal(ri.action, want[i].action);
		assert_int_equal(ri.default_hold_s, want[i].hold);
		assert_non_null(ri.advice);
		assert_true(strlen(ri.advice) > 0);
	}
	/* The enum matches the RFC numbering. */
	assert_int_equal(PCP_RES_EXCESSIVE_REMOTE_PEERS, 13);
	assert_int_equal(PCP_RES_CANNOT_PROVIDE_EXTERNAL, 11);

	for (unsigned c = 14; c < 256; c++) {
		const struct pcp_result_info ri = pcp_result_info((uint8_t)c);
		assert_int_equal(ri.code, c);
		assert_string_equal(ri.name, "UNKNOWN");
		assert_string_equal(pcp_result_name((uint8_t)c), "UNKNOWN");
		assert_int_equal(ri.cls, PCP_ERR_LONG);
		assert_int_equal(ri.action, PCP_ACT_FAIL);
		assert_int_equal(ri.default_hold_s, 1800);
	}
}

static void test_error_hold(void **state)
{
	(void)state;
	/* The server's lifetime wins, capped at 24 h (RFC 6887 15). */
	assert_int_equal(pcp_error_hold(PCP_RES_NO_RESOURCES, 30), 30);
	assert_int_equal(pcp_error_hold(PCP_RES_NOT_AUTHORIZED, 5), 5);
	assert_int_equal(pcp_error_hold(PCP_RES_NOT_AUTHORIZED, 86400), 86400);
	assert_int_equal(pcp_error_hold(PCP_RES_NOT_AUTHORIZED, 86401), 86400);
	assert_int_equal(pcp_error_hold(PCP_RES_NETWORK_FAILURE, UINT32_MAX), 86400);
	/* 0 (miniupnpd's long errors): the class default. */
	assert_int_equal(pcp_error_hold(PCP_RES_NETWORK_FAILURE, 0), 30);
	assert_int_equal(pcp_error_hold(PCP_RES_USER_EX_QUOTA, 0), 30);
	assert_int_equal(pcp_error_hold(PCP_RES_NOT_AUTHORIZED, 0), 1800);
	assert_int_equal(pcp_error_hold(PCP_RES_ADDRESS_MISMATCH, 0), 1800);
	assert_int_equal(pcp_error_hold(200, 0), 1800);
	assert_int_equal(pcp_error_hold(PCP_RES_SUCCESS, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loader),
		cmocka_unit_test(test_vector_directory),
		cmocka_unit_test(test_miniupnpd_captures),
		cmocka_unit_test(test_encode_announce),
		cmocka_unit_test(test_encode_map),
		cmocka_unit_test(test_encode_peer),
		cmocka_unit_test(test_encode_options),
		cmocka_unit_test(test_decode_fields),
		cmocka_unit_test(test_roundtrip_each_option),
		cmocka_unit_test(test_roundtrip_all_options),
		cmocka_unit_test(test_port_reservation_code),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_validate_accept),
		cmocka_unit_test(test_validate_natpmp),
		cmocka_unit_test(test_validate_version),
		cmocka_unit_test(test_validate_drops),
		cmocka_unit_test(test_verdict_names),
		cmocka_unit_test(test_result_codes),
		cmocka_unit_test(test_error_hold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
