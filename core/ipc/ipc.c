/* SPDX-License-Identifier: MIT */
/* pcpmapd control protocol codec: one table of attributes drives both directions (doc/IPC.md). */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "ipc/ipc.h"

enum akind {
	K_NONE = 0,
	K_FLAG, /* bool; empty value */
	K_U8,
	K_U16,
	K_U32,
	K_U64,
	K_STR,    /* char[max + 1] */
	K_NONCE,  /* uint8_t[12] */
	K_FILTER, /* repeated struct pmd_ipc_filter */
	K_SERVER, /* repeated struct pmd_ipc_server */
};

struct adef {
	uint8_t kind;
	uint16_t max; /* K_STR: longest value */
	size_t off;   /* field in struct pmd_ipc_msg */
};

#define A(t, k, field, mx) [t] = { .kind = (k), .max = (mx), .off = offsetof(struct pmd_ipc_msg, field) }

static const struct adef attrs[PMD_A_MAX_] = {
	A(PMD_A_ID, K_U32, id, 0),
	A(PMD_A_KIND, K_U8, req.kind, 0),
	A(PMD_A_IP_PROTO, K_U8, req.ip_proto, 0),
	A(PMD_A_INTERNAL_PORT, K_U16, req.internal_port, 0),
	A(PMD_A_FAMILY, K_U8, req.family, 0),
	A(PMD_A_SUGGESTED_PORT, K_U16, req.suggested_port, 0),
	A(PMD_A_SUGGESTED_ADDR, K_STR, req.suggested_addr, PMD_IPC_ADDR_MAX),
	A(PMD_A_LIFETIME, K_U32, req.lifetime, 0),
	A(PMD_A_PREFER_FAILURE, K_FLAG, req.prefer_failure, 0),
	A(PMD_A_THIRD_PARTY, K_STR, req.third_party, PMD_IPC_ADDR_MAX),
	A(PMD_A_FILTER, K_FILTER, req.filters, 0),
	A(PMD_A_DESCRIPTION, K_STR, req.description, PMD_IPC_DESC_MAX),
	A(PMD_A_PORT_PAIR, K_FLAG, req.port_pair, 0),
	A(PMD_A_PEER_ADDR, K_STR, req.peer_addr, PMD_IPC_ADDR_MAX),
	A(PMD_A_PEER_PORT, K_U16, req.peer_port, 0),
	A(PMD_A_PROTOCOLS, K_U32, req.protocols, 0),
	A(PMD_A_DEADLINE_MS, K_U32, req.deadline_ms, 0),
	A(PMD_A_NONCE, K_NONCE, req.nonce, 0),
	A(PMD_A_PERSISTENT, K_FLAG, persistent, 0),
	A(PMD_A_WAIT_MS, K_U32, wait_ms, 0),
	A(PMD_A_STATE, K_U8, state, 0),
	A(PMD_A_PROTO, K_U8, proto, 0),
	A(PMD_A_SERVER, K_STR, server, PMD_IPC_SERVER_MAX),
	A(PMD_A_INTERNAL_ADDR, K_STR, internal_addr, PMD_IPC_ADDR_MAX),
	A(PMD_A_EXTERNAL_ADDR, K_STR, external_addr, PMD_IPC_ADDR_MAX),
	A(PMD_A_EXTERNAL_PORT, K_U16, external_port, 0),
	A(PMD_A_EXTERNAL_PORT2, K_U16, external_port2, 0),
	A(PMD_A_PAIR_METHOD, K_U8, pair_method, 0),
	A(PMD_A_EXPIRES_IN, K_U32, expires_in, 0),
	A(PMD_A_REFRESH_IN, K_U32, refresh_in, 0),
	A(PMD_A_RETRY_IN, K_U32, retry_in, 0),
	A(PMD_A_EPOCH, K_U32, epoch, 0),
	A(PMD_A_ERRNO, K_U32, error, 0),
	A(PMD_A_RESULT_CODE, K_U16, result_code, 0),
	A(PMD_A_OWNER_UID, K_U32, owner_uid, 0),
	A(PMD_A_EXTERNAL_PRIVATE, K_FLAG, external_private, 0),
	A(PMD_A_EVENT, K_U8, event, 0),
	A(PMD_A_COUNT, K_U32, count, 0),
	A(PMD_A_MESSAGE, K_STR, message, PMD_IPC_TEXT_MAX),
	A(PMD_A_GATEWAY, K_STR, gateway, PMD_IPC_SERVER_MAX),
	A(PMD_A_SERVER_INFO, K_SERVER, servers, 0),
	A(PMD_A_TIMEOUT_MS, K_U32, timeout_ms, 0),
	A(PMD_A_UNSUBSCRIBE, K_FLAG, unsubscribe, 0),
	A(PMD_A_STAT_WAKEUPS, K_U64, stat_wakeups, 0),
	A(PMD_A_STAT_TIMER, K_U64, stat_timer, 0),
	A(PMD_A_STAT_ENGINE, K_U64, stat_engine, 0),
	A(PMD_A_STAT_UPTIME, K_U64, stat_uptime, 0),
	A(PMD_A_CONNECTIONS, K_U32, connections, 0),
	A(PMD_A_MAPPINGS, K_U32, mappings, 0),
	A(PMD_A_ALLOW_DEGRADE, K_FLAG, req.allow_degrade, 0),
	A(PMD_A_NONCE2, K_NONCE, nonce2, 0),
};

static const char *const type_names[] = {
	[PMD_MSG_CREATE] = "CREATE",
	[PMD_MSG_DELETE] = "DELETE",
	[PMD_MSG_LIST] = "LIST",
	[PMD_MSG_PROBE] = "PROBE",
	[PMD_MSG_GET_EXTERNAL] = "GET_EXTERNAL",
	[PMD_MSG_SUBSCRIBE] = "SUBSCRIBE",
	[PMD_MSG_STATS] = "STATS",
	[PMD_MSG_ERROR] = "ERROR",
	[PMD_MSG_OK] = "OK",
	[PMD_MSG_MAPPING] = "MAPPING",
	[PMD_MSG_EVENT] = "EVENT",
	[PMD_MSG_PROBE_RESULT] = "PROBE_RESULT",
	[PMD_MSG_EXTERNAL] = "EXTERNAL",
	[PMD_MSG_STATS_RESULT] = "STATS_RESULT",
};

bool pmd_ipc_type_known(unsigned t)
{
	return t < sizeof(type_names) / sizeof(type_names[0]) && type_names[t];
}

const char *pmd_ipc_type_name(unsigned t)
{
	return pmd_ipc_type_known(t) ? type_names[t] : "?";
}

void pmd_ipc_init(struct pmd_ipc_msg *m, uint8_t type, uint32_t seq)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->seq = seq;
}

uint8_t pmd_ipc_family_to_wire(int af)
{
	return af == AF_INET ? 4 : af == AF_INET6 ? 6 : 0;
}

int pmd_ipc_family_from_wire(uint8_t f)
{
	return f == 4 ? AF_INET : f == 6 ? AF_INET6 : 0;
}

/* ---- strings ---- */

/* Length of the UTF-8 sequence at s (at most left bytes), 0 when invalid (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or a control character. */
static size_t utf8_char(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned min, cp;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		min = 0x80;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		min = 0x800;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls (U+0080-U+009F) are as unwelcome in logs as C0 ones. */
	if (cp < 0xa0)
		return 0;
	return n;
}

bool pmd_ipc_str_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_char(u + i, len - i);
		if (!n)
			return false;
		i += n;
	}
	return true;
}

void pmd_ipc_copy_str(char *dst, size_t cap, const char *src)
{
	const unsigned char *u = (const unsigned char *)(src ? src : "");
	size_t len = strlen((const char *)u), i = 0, o = 0;
	if (!cap)
		return;
	while (i < len) {
		size_t n = utf8_char(u + i, len - i);
		if (!n) {
			if (o + 1 >= cap)
				break;
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + n >= cap)
			break;
		memcpy(dst + o, u + i, n);
		o += n;
		i += n;
	}
	dst[o] = '\0';
}

/* ---- byte-wise big-endian buffers ---- */

struct rbuf {
	const uint8_t *p;
	size_t len, off;
};

static bool rb_need(const struct rbuf *r, size_t n)
{
	return r->len - r->off >= n;
}

static uint8_t rb_u8(struct rbuf *r)
{
	return r->p[r->off++];
}

static uint16_t rb_u16(struct rbuf *r)
{
	uint16_t v = (uint16_t)((unsigned)r->p[r->off] << 8 | r->p[r->off + 1]);
	r->off += 2;
	return v;
}

static uint32_t rb_u32(struct rbuf *r)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | r->p[r->off++];
	return v;
}

static uint64_t rb_u64(struct rbuf *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | r->p[r->off++];
	return v;
}

struct wbuf {
	uint8_t *p;
	size_t cap, off;
	bool err;
};

static bool wb_need(struct wbuf *w, size_t n)
{
	if (w->err || w->cap - w->off < n) {
		w->err = true;
		return false;
	}
	return true;
}

static void wb_u8(struct wbuf *w, uint8_t v)
{
	if (wb_need(w, 1))
		w->p[w->off++] = v;
}

static void wb_u16(struct wbuf *w, uint16_t v)
{
	if (!wb_need(w, 2))
		return;
	w->p[w->off++] = (uint8_t)(v >> 8);
	w->p[w->off++] = (uint8_t)v;
}

static void wb_u32(struct wbuf *w, uint32_t v)
{
	if (!wb_need(w, 4))
		return;
	for (int i = 3; i >= 0; i--)
		w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

static void wb_u64(struct wbuf *w, uint64_t v)
{
	if (!wb_need(w, 8))
		return;
	for (int i = 7; i >= 0; i--)
		w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

static void wb_bytes(struct wbuf *w, const void *p, size_t n)
{
	if (n && wb_need(w, n)) {
		memcpy(w->p + w->off, p, n);
		w->off += n;
	}
}

/* ---- header ---- */

int pmd_ipc_peek(const uint8_t *buf, size_t len, uint8_t *ret_type, uint32_t *ret_seq)
{
	if (!buf || len < PMD_IPC_HDR_LEN)
		return -EBADMSG;
	struct rbuf r = { .p = buf, .len = len };
	uint8_t version = rb_u8(&r);
	uint8_t type = rb_u8(&r);
	(void)rb_u16(&r);
	uint32_t seq = rb_u32(&r);
	uint32_t body = rb_u32(&r);
	*ret_type = type;
	*ret_seq = seq;
	if (version != PMD_IPC_VERSION)
		return -EPROTONOSUPPORT;
	if (body != len - PMD_IPC_HDR_LEN)
		return -EBADMSG;
	return 0;
}

/* ---- decoding ---- */

static int read_str(struct rbuf *r, size_t n, size_t max, char *dst)
{
	if (n > max || !rb_need(r, n) || !pmd_ipc_str_valid((const char *)r->p + r->off, n))
		return -EBADMSG;
	memcpy(dst, r->p + r->off, n);
	dst[n] = '\0';
	r->off += n;
	return 0;
}

static int read_short_str(struct rbuf *r, size_t max, char *dst)
{
	if (!rb_need(r, 1))
		return -EBADMSG;
	return read_str(r, rb_u8(r), max, dst);
}

static int decode_filter(struct rbuf *r, size_t n, struct pmd_ipc_msg *m)
{
	if (n < 4 || m->req.n_filters >= PMD_IPC_MAX_FILTERS)
		return -EBADMSG;
	struct pmd_ipc_filter *f = &m->req.filters[m->req.n_filters];
	f->prefix_len = rb_u8(r);
	uint8_t reserved = rb_u8(r);
	f->port = rb_u16(r);
	if (f->prefix_len > 128 || reserved != 0)
		return -EBADMSG;
	if (read_str(r, n - 4, PMD_IPC_ADDR_MAX, f->addr) < 0)
		return -EBADMSG;
	m->req.n_filters++;
	return 0;
}

static int decode_server(struct rbuf *r, size_t n, struct pmd_ipc_msg *m)
{
	if (n < 16 || m->n_servers >= PMD_IPC_MAX_SERVERS)
		return -EBADMSG;
	size_t end = r->off + n;
	struct rbuf sub = { .p = r->p, .len = end, .off = r->off };
	struct pmd_ipc_server *s = &m->servers[m->n_servers];
	s->proto = rb_u8(&sub);
	s->version = rb_u8(&sub);
	s->result_code = rb_u16(&sub);
	s->epoch = rb_u32(&sub);
	s->rtt_usec = rb_u32(&sub);
	s->error = rb_u32(&sub);
	if (read_short_str(&sub, PMD_IPC_SERVER_MAX, s->server) < 0 ||
	    read_short_str(&sub, PMD_IPC_ADDR_MAX, s->client_addr) < 0 ||
	    read_short_str(&sub, PMD_IPC_ADDR_MAX, s->external_addr) < 0 ||
	    read_short_str(&sub, PMD_IPC_TEXT_MAX, s->detail) < 0 || sub.off != end)
		return -EBADMSG;
	r->off = end;
	m->n_servers++;
	return 0;
}

static int decode_attr(struct rbuf *r, uint16_t type, size_t n, struct pmd_ipc_msg *m)
{
	const struct adef *d = &attrs[type];
	uint8_t *field = (uint8_t *)m + d->off;
	bool seen = pmd_ipc_has(m, (enum pmd_ipc_attr)type);
	if (seen && d->kind != K_FILTER && d->kind != K_SERVER)
		return -EBADMSG;
	switch (d->kind) {
	case K_FLAG: {
		if (n != 0)
			return -EBADMSG;
		bool t = true;
		memcpy(field, &t, sizeof(t));
		break;
	}
	case K_U8:
		if (n != 1)
			return -EBADMSG;
		*field = rb_u8(r);
		break;
	case K_U16: {
		if (n != 2)
			return -EBADMSG;
		uint16_t v = rb_u16(r);
		memcpy(field, &v, sizeof(v));
		break;
	}
	case K_U32: {
		if (n != 4)
			return -EBADMSG;
		uint32_t v = rb_u32(r);
		memcpy(field, &v, sizeof(v));
		break;
	}
	case K_U64: {
		if (n != 8)
			return -EBADMSG;
		uint64_t v = rb_u64(r);
		memcpy(field, &v, sizeof(v));
		break;
	}
	case K_STR:
		if (read_str(r, n, d->max, (char *)field) < 0)
			return -EBADMSG;
		break;
	case K_NONCE:
		if (n != PMD_IPC_NONCE_LEN)
			return -EBADMSG;
		memcpy(field, r->p + r->off, n);
		r->off += n;
		break;
	case K_FILTER:
		if (decode_filter(r, n, m) < 0)
			return -EBADMSG;
		break;
	case K_SERVER:
		if (decode_server(r, n, m) < 0)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	pmd_ipc_set(m, (enum pmd_ipc_attr)type);
	return 0;
}

int pmd_ipc_decode(const uint8_t *buf, size_t len, struct pmd_ipc_msg *ret)
{
	struct pmd_ipc_msg m;
	memset(&m, 0, sizeof(m)); /* not a copy of a static zero: that was 4.7 KiB of .rodata */
	uint8_t type;
	uint32_t seq;
	if (!ret || len > PMD_IPC_MAX_MSG)
		return -EBADMSG;
	int err = pmd_ipc_peek(buf, len, &type, &seq);
	if (err < 0)
		return err;
	if (!pmd_ipc_type_known(type) || buf[2] != 0 || buf[3] != 0)
		return -EBADMSG;
	m.type = type;
	m.seq = seq;
	struct rbuf r = { .p = buf, .len = len, .off = PMD_IPC_HDR_LEN };
	while (r.off < r.len) {
		if (!rb_need(&r, 4))
			return -EBADMSG;
		uint16_t t = rb_u16(&r);
		uint16_t n = rb_u16(&r);
		if (!rb_need(&r, n))
			return -EBADMSG;
		if (t >= PMD_A_MAX_ || attrs[t].kind == K_NONE) {
			if (!(t & PMD_IPC_ATTR_OPTIONAL))
				return -EBADMSG;
			r.off += n;
			continue;
		}
		size_t start = r.off;
		if (decode_attr(&r, t, n, &m) < 0 || r.off != start + n)
			return -EBADMSG;
	}
	*ret = m;
	return 0;
}

/* ---- encoding ---- */

static int str_field(const char *s, size_t max, size_t *ret_len)
{
	size_t n = strnlen(s, max + 1);
	if (n > max || !pmd_ipc_str_valid(s, n))
		return -EINVAL;
	*ret_len = n;
	return 0;
}

static void attr_hdr(struct wbuf *w, unsigned type, size_t n)
{
	wb_u16(w, (uint16_t)type);
	wb_u16(w, (uint16_t)n);
}

static int encode_short_str(struct wbuf *w, const char *s, size_t max)
{
	size_t n;
	if (str_field(s, max, &n) < 0)
		return -EINVAL;
	wb_u8(w, (uint8_t)n);
	wb_bytes(w, s, n);
	return 0;
}

static int encode_server(struct wbuf *w, const struct pmd_ipc_server *s)
{
	size_t l[4];
	if (str_field(s->server, PMD_IPC_SERVER_MAX, &l[0]) < 0 ||
	    str_field(s->client_addr, PMD_IPC_ADDR_MAX, &l[1]) < 0 ||
	    str_field(s->external_addr, PMD_IPC_ADDR_MAX, &l[2]) < 0 ||
	    str_field(s->detail, PMD_IPC_TEXT_MAX, &l[3]) < 0)
		return -EINVAL;
	attr_hdr(w, PMD_A_SERVER_INFO, 16 + 4 + l[0] + l[1] + l[2] + l[3]);
	wb_u8(w, s->proto);
	wb_u8(w, s->version);
	wb_u16(w, s->result_code);
	wb_u32(w, s->epoch);
	wb_u32(w, s->rtt_usec);
	wb_u32(w, s->error);
	encode_short_str(w, s->server, PMD_IPC_SERVER_MAX);
	encode_short_str(w, s->client_addr, PMD_IPC_ADDR_MAX);
	encode_short_str(w, s->external_addr, PMD_IPC_ADDR_MAX);
	encode_short_str(w, s->detail, PMD_IPC_TEXT_MAX);
	return 0;
}

static int encode_attr(struct wbuf *w, unsigned type, const struct pmd_ipc_msg *m)
{
	const struct adef *d = &attrs[type];
	const uint8_t *field = (const uint8_t *)m + d->off;
	switch (d->kind) {
	case K_FLAG: {
		bool v;
		memcpy(&v, field, sizeof(v));
		if (v)
			attr_hdr(w, type, 0);
		return 0;
	}
	case K_FILTER:
		if (m->req.n_filters > PMD_IPC_MAX_FILTERS)
			return -EINVAL;
		for (size_t i = 0; i < m->req.n_filters; i++) {
			const struct pmd_ipc_filter *f = &m->req.filters[i];
			size_t n;
			if (str_field(f->addr, PMD_IPC_ADDR_MAX, &n) < 0 || f->prefix_len > 128)
				return -EINVAL;
			attr_hdr(w, type, 4 + n);
			wb_u8(w, f->prefix_len);
			wb_u8(w, 0);
			wb_u16(w, f->port);
			wb_bytes(w, f->addr, n);
		}
		return 0;
	case K_SERVER:
		if (m->n_servers > PMD_IPC_MAX_SERVERS)
			return -EINVAL;
		for (size_t i = 0; i < m->n_servers; i++)
			if (encode_server(w, &m->servers[i]) < 0)
				return -EINVAL;
		return 0;
	default:
		break;
	}
	if (!pmd_ipc_has(m, (enum pmd_ipc_attr)type))
		return 0;
	switch (d->kind) {
	case K_U8:
		attr_hdr(w, type, 1);
		wb_u8(w, *field);
		break;
	case K_U16: {
		uint16_t v;
		memcpy(&v, field, sizeof(v));
		attr_hdr(w, type, 2);
		wb_u16(w, v);
		break;
	}
	case K_U32: {
		uint32_t v;
		memcpy(&v, field, sizeof(v));
		attr_hdr(w, type, 4);
		wb_u32(w, v);
		break;
	}
	case K_U64: {
		uint64_t v;
		memcpy(&v, field, sizeof(v));
		attr_hdr(w, type, 8);
		wb_u64(w, v);
		break;
	}
	case K_STR: {
		size_t n;
		if (str_field((const char *)field, d->max, &n) < 0)
			return -EINVAL;
		attr_hdr(w, type, n);
		wb_bytes(w, field, n);
		break;
	}
	case K_NONCE:
		attr_hdr(w, type, PMD_IPC_NONCE_LEN);
		wb_bytes(w, field, PMD_IPC_NONCE_LEN);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

int pmd_ipc_encode(const struct pmd_ipc_msg *m, uint8_t *buf, size_t cap, size_t *ret_len)
{
	if (!m || !buf || !ret_len || !pmd_ipc_type_known(m->type))
		return -EINVAL;
	struct wbuf w = { .p = buf, .cap = cap < PMD_IPC_MAX_MSG ? cap : PMD_IPC_MAX_MSG };
	wb_u8(&w, PMD_IPC_VERSION);
	wb_u8(&w, m->type);
	wb_u16(&w, 0);
	wb_u32(&w, m->seq);
	wb_u32(&w, 0); /* body length, patched below */
	for (unsigned t = 1; t < PMD_A_MAX_; t++) {
		if (attrs[t].kind == K_NONE)
			continue;
		int r = encode_attr(&w, t, m);
		if (r < 0)
			return r;
	}
	if (w.err)
		return -ENOSPC;
	size_t body = w.off - PMD_IPC_HDR_LEN;
	for (int i = 0; i < 4; i++)
		buf[8 + i] = (uint8_t)(body >> (8 * (3 - i)));
	*ret_len = w.off;
	return 0;
}
