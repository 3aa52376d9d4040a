/*
 * PCP wire codec (RFC 6887 7, 11, 12, 13; RFC 7220, 7225, 7753). One rule set, check_msg(), decides what a
 * valid message is: encode applies it to its input, decode applies it to what it parsed. That keeps the two
 * directions symmetric: anything decode accepts re-encodes.
 */
#include "wire/pcp_wire.h"
#include "wire/pcp_buf.h"
#include "text/text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Opcodes an option may appear with (RFC 6887 13.1-13.3, RFC 7220 3, RFC 7225 4, RFC 7753 4). */
#define OPC_MAP  (1u << PCP_OP_MAP)
#define OPC_PEER (1u << PCP_OP_PEER)

/* Option data lengths. */
#define THIRD_PARTY_LEN 16
#define FILTER_LEN      20
#define PORT_SET_LEN    5
#define PREFIX64_MIN    14 /* Prefix64 Length(2) + prefix + suffix, always 12 octets together */

void pcp_addr_from_v4(struct pcp_addr *a, const struct in_addr *v4)
{
	memcpy(a->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
	memcpy(a->b + 12, &v4->s_addr, 4); /* s_addr is already in network order */
}

void pcp_addr_from_v6(struct pcp_addr *a, const struct in6_addr *v6)
{
	memcpy(a->b, v6->s6_addr, 16);
}

bool pcp_addr_is_v4(const struct pcp_addr *a)
{
	return memcmp(a->b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

void pcp_addr_any(struct pcp_addr *a, int family)
{
	memset(a->b, 0, sizeof(a->b));
	if (family == AF_INET)
		memcpy(a->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
}

int pcp_addr_to_v4(const struct pcp_addr *a, struct in_addr *ret)
{
	if (!a || !ret || !pcp_addr_is_v4(a))
		return -EINVAL;
	memcpy(&ret->s_addr, a->b + 12, 4);
	return 0;
}

int pcp_addr_to_string(const struct pcp_addr *a, char *buf, size_t len)
{
	char tmp[PCP_ADDR_STRLEN];
	int r;

	if (!a || !buf)
		return -EINVAL;
	if (pcp_addr_is_v4(a))
		r = pm_text_ntop(AF_INET, a->b + 12, tmp, sizeof(tmp));
	else
		r = pm_text_ntop(AF_INET6, a->b, tmp, sizeof(tmp));
	if (r < 0)
		return -EINVAL;
	size_t n = strlen(tmp);
	if (n >= len)
		return -ENOSPC;
	memcpy(buf, tmp, n + 1);
	return (int)n;
}

int pcp_addr_from_string(const char *s, struct pcp_addr *ret)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (!s || !ret)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &v4) == 1) {
		pcp_addr_from_v4(ret, &v4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &v6) == 1) {
		pcp_addr_from_v6(ret, &v6);
		return 0;
	}
	return -EINVAL;
}

static int resv_code(const struct pcp_codec_cfg *cfg)
{
	uint8_t c =
	    cfg && cfg->port_reservation_code ? cfg->port_reservation_code : PCP_PORT_RESERVATION_DEFAULT;

	switch (c) {
	case PCP_OPT_THIRD_PARTY:
	case PCP_OPT_PREFER_FAILURE:
	case PCP_OPT_FILTER:
	case PCP_OPT_DESCRIPTION:
	case PCP_OPT_PREFIX64:
	case PCP_OPT_PORT_SET:
		return -EINVAL; /* would make the option stream ambiguous */
	default:
		return c;
	}
}

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static size_t payload_len(uint8_t opcode)
{
	switch (opcode) {
	case PCP_OP_MAP:
		return PCP_MAP_LEN;
	case PCP_OP_PEER:
		return PCP_PEER_LEN;
	default:
		return PCP_HDR_LEN;
	}
}

static size_t prefix64_data_len(const struct pcp_prefix64 *p)
{
	/* RFC 7225 4: the IPv4 prefix list (count + entries) is present only when non-empty. */
	return PREFIX64_MIN + (p->n_v4 ? 2 + 6 * (size_t)p->n_v4 : 0);
}

static bool prefix64_len_ok(uint16_t len)
{
	return (len >= 4 && len <= 8) || len == 12; /* RFC 6052 prefix lengths 32..64 and 96 bits */
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF; NUL is rejected too. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

static bool opt_allowed(unsigned mask, uint8_t opcode)
{
	return opcode <= PCP_OP_PEER && (mask & (1u << opcode));
}

/*
 * The rule set shared by encode and decode. On success *ret_len is the encoded size (<= PCP_MAX_MSG).
 * Returns -EINVAL on any violation.
 */
static int check_msg(const struct pcp_msg *m, size_t *ret_len)
{
	const struct pcp_options *o = &m->opts;
	size_t len;

	if (m->version != PCP_VERSION || m->opcode > PCP_OP_PEER)
		return -EINVAL;
	len = payload_len(m->opcode);

	/* Per-opcode validity; ANNOUNCE carries no options at all (RFC 6887 14.1). */
	if (o->has_third_party) {
		if (!opt_allowed(OPC_MAP | OPC_PEER, m->opcode))
			return -EINVAL;
		len += PCP_OPT_HDR_LEN + THIRD_PARTY_LEN;
	}
	if (o->prefer_failure) {
		if (!opt_allowed(OPC_MAP, m->opcode))
			return -EINVAL;
		len += PCP_OPT_HDR_LEN;
	}
	if (o->n_filters) {
		if (!opt_allowed(OPC_MAP, m->opcode) || o->n_filters > PCP_MAX_FILTERS)
			return -EINVAL;
		for (size_t i = 0; i < o->n_filters; i++) {
			const struct pcp_filter *f = &o->filters[i];

			/* RFC 6887 13.3: 0 = remove all filters; IPv4 peers use 96 + IPv4 prefix length. */
			if (f->prefix_len > 128)
				return -EINVAL;
			if (f->prefix_len != 0 && f->prefix_len < 96 && pcp_addr_is_v4(&f->peer_addr))
				return -EINVAL;
		}
		len += o->n_filters * (PCP_OPT_HDR_LEN + FILTER_LEN);
	}
	if (o->has_description) {
		if (!opt_allowed(OPC_MAP | OPC_PEER, m->opcode) || o->description_len > PCP_MAX_DESCRIPTION)
			return -EINVAL;
		if (!utf8_ok((const uint8_t *)o->description, o->description_len))
			return -EINVAL;
		len += PCP_OPT_HDR_LEN + pad4(o->description_len);
	}
	if (o->n_prefix64) {
		if (!opt_allowed(OPC_MAP | OPC_PEER, m->opcode) || o->n_prefix64 > PCP_MAX_PREFIX64)
			return -EINVAL;
		for (size_t i = 0; i < o->n_prefix64; i++) {
			const struct pcp_prefix64 *p = &o->prefix64[i];

			if (!prefix64_len_ok(p->prefix_len) || p->n_v4 > PCP_MAX_PREFIX64_V4)
				return -EINVAL;
			for (size_t j = 0; j < p->n_v4; j++)
				if (p->v4[j].len > 32)
					return -EINVAL;
			len += PCP_OPT_HDR_LEN + pad4(prefix64_data_len(p));
		}
	}
	if (o->has_port_set) {
		if (!opt_allowed(OPC_MAP, m->opcode))
			return -EINVAL;
		len += PCP_OPT_HDR_LEN + pad4(PORT_SET_LEN);
	}
	if (o->port_reservation) {
		if (!opt_allowed(OPC_MAP, m->opcode))
			return -EINVAL;
		len += PCP_OPT_HDR_LEN;
	}

	/* RFC 6887 11.1: protocol 0 means all protocols, then the internal port MUST be 0. */
	if (m->opcode == PCP_OP_MAP && !m->response && m->protocol == 0 && m->internal_port != 0)
		return -EINVAL;
	/*
	 * RFC 6887 12.1: PEER needs a protocol, an internal port and a remote peer port. Error responses copy
	 * whatever the request held, so only requests and successes are held to it.
	 */
	if (m->opcode == PCP_OP_PEER && (!m->response || m->result == PCP_RES_SUCCESS) &&
	    (m->protocol == 0 || m->internal_port == 0 || m->peer_port == 0))
		return -EINVAL;

	if (len > PCP_MAX_MSG)
		return -EINVAL;
	*ret_len = len;
	return 0;
}

static void put_opt_hdr(struct pcp_wbuf *w, uint8_t code, uint16_t len)
{
	pcp_wbuf_u8(w, code);
	pcp_wbuf_u8(w, 0);
	pcp_wbuf_u16(w, len);
}

static void put_options(struct pcp_wbuf *w, const struct pcp_options *o, uint8_t rcode)
{
	if (o->has_third_party) {
		put_opt_hdr(w, PCP_OPT_THIRD_PARTY, THIRD_PARTY_LEN);
		pcp_wbuf_bytes(w, o->third_party.b, 16);
	}
	if (o->prefer_failure)
		put_opt_hdr(w, PCP_OPT_PREFER_FAILURE, 0);
	for (size_t i = 0; i < o->n_filters; i++) {
		const struct pcp_filter *f = &o->filters[i];

		put_opt_hdr(w, PCP_OPT_FILTER, FILTER_LEN);
		pcp_wbuf_u8(w, 0);
		pcp_wbuf_u8(w, f->prefix_len);
		pcp_wbuf_u16(w, f->peer_port);
		pcp_wbuf_bytes(w, f->peer_addr.b, 16);
	}
	if (o->has_description) {
		put_opt_hdr(w, PCP_OPT_DESCRIPTION, (uint16_t)o->description_len);
		pcp_wbuf_bytes(w, o->description, o->description_len);
		pcp_wbuf_pad4(w);
	}
	for (size_t i = 0; i < o->n_prefix64; i++) {
		const struct pcp_prefix64 *p = &o->prefix64[i];

		put_opt_hdr(w, PCP_OPT_PREFIX64, (uint16_t)prefix64_data_len(p));
		pcp_wbuf_u16(w, p->prefix_len);
		pcp_wbuf_bytes(w, p->prefix, p->prefix_len);
		pcp_wbuf_bytes(w, p->suffix, 12u - p->prefix_len);
		if (p->n_v4) {
			pcp_wbuf_u16(w, p->n_v4);
			for (size_t j = 0; j < p->n_v4; j++) {
				pcp_wbuf_u16(w, p->v4[j].len);
				pcp_wbuf_bytes(w, p->v4[j].prefix, 4);
			}
		}
		pcp_wbuf_pad4(w);
	}
	if (o->has_port_set) {
		/* RFC 7753 4: size(2) first port(2) reserved(7 bits) P(1 bit, LSB). */
		put_opt_hdr(w, PCP_OPT_PORT_SET, PORT_SET_LEN);
		pcp_wbuf_u16(w, o->port_set.size);
		pcp_wbuf_u16(w, o->port_set.first_port);
		pcp_wbuf_u8(w, o->port_set.parity ? 1 : 0);
		pcp_wbuf_pad4(w);
	}
	if (o->port_reservation)
		put_opt_hdr(w, rcode, 0);
}

int pcp_encode(const struct pcp_msg *m, const struct pcp_codec_cfg *cfg, uint8_t *buf, size_t cap,
	       size_t *ret_len)
{
	struct pcp_wbuf w;
	size_t len;
	int rcode, r;

	if (!m || !ret_len || (!buf && cap))
		return -EINVAL;
	rcode = resv_code(cfg);
	if (rcode < 0)
		return rcode;
	r = check_msg(m, &len);
	if (r < 0)
		return r;
	if (cap < len)
		return -ENOSPC;

	pcp_wbuf_init(&w, buf, cap);
	pcp_wbuf_u8(&w, m->version);
	pcp_wbuf_u8(&w, (uint8_t)(m->opcode | (m->response ? PCP_R_BIT : 0)));
	if (m->response) {
		/* RFC 6887 7.2: reserved(1) result(1) lifetime(4) epoch(4) reserved(12). */
		pcp_wbuf_u8(&w, 0);
		pcp_wbuf_u8(&w, m->result);
		pcp_wbuf_u32(&w, m->lifetime);
		pcp_wbuf_u32(&w, m->epoch);
		pcp_wbuf_zeros(&w, 12);
	} else {
		/* RFC 6887 7.1: reserved(2) lifetime(4) client address(16). */
		pcp_wbuf_u16(&w, 0);
		pcp_wbuf_u32(&w, m->lifetime);
		pcp_wbuf_bytes(&w, m->client_addr.b, 16);
	}
	if (m->opcode == PCP_OP_MAP || m->opcode == PCP_OP_PEER) {
		/* RFC 6887 11.1 / 12.1: the MAP part is shared by PEER. */
		pcp_wbuf_bytes(&w, m->nonce, PCP_NONCE_LEN);
		pcp_wbuf_u8(&w, m->protocol);
		pcp_wbuf_zeros(&w, 3);
		pcp_wbuf_u16(&w, m->internal_port);
		pcp_wbuf_u16(&w, m->ext_port);
		pcp_wbuf_bytes(&w, m->ext_addr.b, 16);
	}
	if (m->opcode == PCP_OP_PEER) {
		pcp_wbuf_u16(&w, m->peer_port);
		pcp_wbuf_u16(&w, 0);
		pcp_wbuf_bytes(&w, m->peer_addr.b, 16);
	}
	put_options(&w, &m->opts, (uint8_t)rcode);
	if (w.err || w.off != len)
		return -EINVAL; /* cannot happen: check_msg computed len from the same fields */
	*ret_len = len;
	return 0;
}

static int parse_prefix64(const uint8_t *d, size_t n, struct pcp_prefix64 *p)
{
	struct pcp_rbuf r;

	if (n < PREFIX64_MIN)
		return -EBADMSG;
	pcp_rbuf_init(&r, d, n);
	p->prefix_len = pcp_rbuf_u16(&r);
	if (!prefix64_len_ok(p->prefix_len))
		return -EBADMSG;
	pcp_rbuf_bytes(&r, p->prefix, p->prefix_len);
	pcp_rbuf_bytes(&r, p->suffix, 12u - p->prefix_len);
	if (n == PREFIX64_MIN)
		return r.err ? -EBADMSG : 0;
	/* The IPv4 prefix list must fill the rest of the option exactly. */
	uint16_t count = pcp_rbuf_u16(&r);
	if (r.err || count > PCP_MAX_PREFIX64_V4 || n != PREFIX64_MIN + 2 + 6 * (size_t)count)
		return -EBADMSG;
	p->n_v4 = count;
	for (size_t j = 0; j < count; j++) {
		p->v4[j].len = pcp_rbuf_u16(&r);
		pcp_rbuf_bytes(&r, p->v4[j].prefix, 4);
	}
	return r.err ? -EBADMSG : 0;
}

/*
 * Parses one option's data into o. Returns 0, -EBADMSG, or 1 for an unknown mandatory option (reported only
 * once the whole message proved well-formed).
 */
static int parse_option(uint8_t code, const uint8_t *d, size_t n, uint8_t rcode, struct pcp_options *o)
{
	struct pcp_rbuf r;

	pcp_rbuf_init(&r, d, n);
	switch (code) {
	case PCP_OPT_THIRD_PARTY:
		if (n != THIRD_PARTY_LEN || o->has_third_party)
			return -EBADMSG;
		o->has_third_party = true;
		memcpy(o->third_party.b, d, 16);
		return 0;
	case PCP_OPT_PREFER_FAILURE:
		if (n != 0 || o->prefer_failure)
			return -EBADMSG;
		o->prefer_failure = true;
		return 0;
	case PCP_OPT_FILTER: {
		if (n != FILTER_LEN || o->n_filters >= PCP_MAX_FILTERS)
			return -EBADMSG;
		struct pcp_filter *f = &o->filters[o->n_filters++];
		pcp_rbuf_skip(&r, 1);
		f->prefix_len = pcp_rbuf_u8(&r);
		f->peer_port = pcp_rbuf_u16(&r);
		pcp_rbuf_bytes(&r, f->peer_addr.b, 16);
		return r.err ? -EBADMSG : 0;
	}
	case PCP_OPT_DESCRIPTION:
		if (n > PCP_MAX_DESCRIPTION || o->has_description)
			return -EBADMSG;
		o->has_description = true;
		o->description_len = n;
		if (n)
			memcpy(o->description, d, n);
		o->description[n] = '\0';
		return 0;
	case PCP_OPT_PREFIX64:
		if (o->n_prefix64 >= PCP_MAX_PREFIX64)
			return -EBADMSG;
		if (parse_prefix64(d, n, &o->prefix64[o->n_prefix64]) < 0)
			return -EBADMSG;
		o->n_prefix64++;
		return 0;
	case PCP_OPT_PORT_SET:
		if (n != PORT_SET_LEN || o->has_port_set)
			return -EBADMSG;
		o->has_port_set = true;
		o->port_set.size = pcp_rbuf_u16(&r);
		o->port_set.first_port = pcp_rbuf_u16(&r);
		o->port_set.parity = (pcp_rbuf_u8(&r) & 1) != 0; /* the 7 reserved bits are ignored */
		return r.err ? -EBADMSG : 0;
	default:
		break;
	}
	if (code == rcode) {
		if (n != 0 || o->port_reservation)
			return -EBADMSG;
		o->port_reservation = true;
		return 0;
	}
	/* RFC 6887 7.3: the top bit of the code marks options that may be ignored. */
	if (code & 0x80) {
		o->n_unknown_optional++;
		return 0;
	}
	return 1;
}

int pcp_decode(const uint8_t *buf, size_t len, const struct pcp_codec_cfg *cfg, struct pcp_msg *ret)
{
	struct pcp_msg m;
	struct pcp_rbuf r;
	bool unknown_mandatory = false;
	size_t enc_len;
	int rcode;

	if (!ret || (!buf && len))
		return -EINVAL;
	rcode = resv_code(cfg);
	if (rcode < 0)
		return rcode;
	if (len < PCP_HDR_LEN || len > PCP_MAX_MSG || len % 4)
		return -EBADMSG;

	memset(&m, 0, sizeof(m));
	pcp_rbuf_init(&r, buf, len);
	m.version = pcp_rbuf_u8(&r);
	uint8_t op = pcp_rbuf_u8(&r);
	m.response = (op & PCP_R_BIT) != 0;
	m.opcode = op & 0x7f;
	if (m.version != PCP_VERSION || m.opcode > PCP_OP_PEER)
		return -EBADMSG;
	if (len < payload_len(m.opcode))
		return -EBADMSG;
	if (m.response) {
		pcp_rbuf_skip(&r, 1);
		m.result = pcp_rbuf_u8(&r);
		m.lifetime = pcp_rbuf_u32(&r);
		m.epoch = pcp_rbuf_u32(&r);
		pcp_rbuf_skip(&r, 12); /* reserved; may echo the request's client address (RFC 6887 7.2) */
	} else {
		pcp_rbuf_skip(&r, 2);
		m.lifetime = pcp_rbuf_u32(&r);
		pcp_rbuf_bytes(&r, m.client_addr.b, 16);
	}
	if (m.opcode == PCP_OP_MAP || m.opcode == PCP_OP_PEER) {
		pcp_rbuf_bytes(&r, m.nonce, PCP_NONCE_LEN);
		m.protocol = pcp_rbuf_u8(&r);
		pcp_rbuf_skip(&r, 3);
		m.internal_port = pcp_rbuf_u16(&r);
		m.ext_port = pcp_rbuf_u16(&r);
		pcp_rbuf_bytes(&r, m.ext_addr.b, 16);
	}
	if (m.opcode == PCP_OP_PEER) {
		m.peer_port = pcp_rbuf_u16(&r);
		pcp_rbuf_skip(&r, 2);
		pcp_rbuf_bytes(&r, m.peer_addr.b, 16);
	}
	if (r.err)
		return -EBADMSG;

	/* Options (RFC 6887 7.3): header, data, then padding to the next multiple of 4. */
	while (pcp_rbuf_left(&r) > 0) {
		uint8_t code = pcp_rbuf_u8(&r);
		pcp_rbuf_skip(&r, 1);
		uint16_t olen = pcp_rbuf_u16(&r);
		const uint8_t *d = pcp_rbuf_peek(&r, olen);
		if (r.err)
			return -EBADMSG;
		int pr = parse_option(code, d, olen, (uint8_t)rcode, &m.opts);
		if (pr < 0)
			return pr;
		if (pr > 0)
			unknown_mandatory = true;
		pcp_rbuf_skip(&r, pad4(olen));
		if (r.err)
			return -EBADMSG;
	}

	if (check_msg(&m, &enc_len) < 0)
		return -EBADMSG;
	if (unknown_mandatory)
		return -EPROTONOSUPPORT;
	*ret = m;
	return 0;
}

static bool addr_eq(const struct pcp_addr *a, const struct pcp_addr *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

static bool prefix64_eq(const struct pcp_prefix64 *a, const struct pcp_prefix64 *b)
{
	if (a->prefix_len != b->prefix_len || a->n_v4 != b->n_v4)
		return false;
	size_t pl = a->prefix_len <= 12 ? a->prefix_len : 12;
	if (memcmp(a->prefix, b->prefix, pl) || memcmp(a->suffix, b->suffix, 12 - pl))
		return false;
	for (size_t j = 0; j < a->n_v4 && j < PCP_MAX_PREFIX64_V4; j++)
		if (a->v4[j].len != b->v4[j].len || memcmp(a->v4[j].prefix, b->v4[j].prefix, 4))
			return false;
	return true;
}

static bool options_eq(const struct pcp_options *a, const struct pcp_options *b)
{
	if (a->has_third_party != b->has_third_party ||
	    (a->has_third_party && !addr_eq(&a->third_party, &b->third_party)))
		return false;
	if (a->prefer_failure != b->prefer_failure || a->port_reservation != b->port_reservation)
		return false;
	if (a->n_filters != b->n_filters || a->n_filters > PCP_MAX_FILTERS)
		return false;
	for (size_t i = 0; i < a->n_filters; i++) {
		const struct pcp_filter *fa = &a->filters[i], *fb = &b->filters[i];
		if (fa->prefix_len != fb->prefix_len || fa->peer_port != fb->peer_port ||
		    !addr_eq(&fa->peer_addr, &fb->peer_addr))
			return false;
	}
	if (a->has_description != b->has_description)
		return false;
	if (a->has_description &&
	    (a->description_len != b->description_len || a->description_len > PCP_MAX_DESCRIPTION ||
	     memcmp(a->description, b->description, a->description_len)))
		return false;
	if (a->has_port_set != b->has_port_set)
		return false;
	if (a->has_port_set &&
	    (a->port_set.size != b->port_set.size || a->port_set.first_port != b->port_set.first_port ||
	     a->port_set.parity != b->port_set.parity))
		return false;
	if (a->n_prefix64 != b->n_prefix64 || a->n_prefix64 > PCP_MAX_PREFIX64)
		return false;
	for (size_t i = 0; i < a->n_prefix64; i++)
		if (!prefix64_eq(&a->prefix64[i], &b->prefix64[i]))
			return false;
	return true;
}

bool pcp_msg_equal(const struct pcp_msg *a, const struct pcp_msg *b)
{
	if (!a || !b)
		return a == b;
	if (a->version != b->version || a->response != b->response || a->opcode != b->opcode ||
	    a->lifetime != b->lifetime)
		return false;
	if (a->response) {
		if (a->result != b->result || a->epoch != b->epoch)
			return false;
	} else if (!addr_eq(&a->client_addr, &b->client_addr)) {
		return false;
	}
	if (a->opcode == PCP_OP_MAP || a->opcode == PCP_OP_PEER) {
		if (memcmp(a->nonce, b->nonce, PCP_NONCE_LEN) || a->protocol != b->protocol ||
		    a->internal_port != b->internal_port || a->ext_port != b->ext_port ||
		    !addr_eq(&a->ext_addr, &b->ext_addr))
			return false;
	}
	if (a->opcode == PCP_OP_PEER &&
	    (a->peer_port != b->peer_port || !addr_eq(&a->peer_addr, &b->peer_addr)))
		return false;
	return options_eq(&a->opts, &b->opts);
}

static const char *const verdict_names[PCP_V__MAX] = {
	[PCP_V_ACCEPT] = "ACCEPT",
	[PCP_V_NATPMP_SERVER] = "NATPMP_SERVER",
	[PCP_V_UNSUPP_VERSION] = "UNSUPP_VERSION",
	[PCP_V_DROP_SHORT] = "DROP_SHORT",
	[PCP_V_DROP_LONG] = "DROP_LONG",
	[PCP_V_DROP_ALIGN] = "DROP_ALIGN",
	[PCP_V_DROP_NOT_RESPONSE] = "DROP_NOT_RESPONSE",
	[PCP_V_DROP_VERSION] = "DROP_VERSION",
	[PCP_V_DROP_OPCODE] = "DROP_OPCODE",
	[PCP_V_DROP_MALFORMED] = "DROP_MALFORMED",
	[PCP_V_DROP_NONCE] = "DROP_NONCE",
	[PCP_V_DROP_MISMATCH] = "DROP_MISMATCH",
	[PCP_V_DROP_BAD_PORT] = "DROP_BAD_PORT",
};

const char *pcp_verdict_name(enum pcp_verdict v)
{
	if ((unsigned)v >= PCP_V__MAX)
		return "UNKNOWN";
	return verdict_names[v];
}

enum pcp_verdict pcp_validate_response(const struct pcp_msg *req, const uint8_t *buf, size_t len,
				       const struct pcp_codec_cfg *cfg, struct pcp_validate_out *ret)
{
	struct pcp_msg m;

	if (!buf)
		len = 0;
	/* doc/PROTOCOLS.md 1.2 step 2: do not demand 24 bytes yet, a NAT-PMP reply is 8. */
	if (len < 4)
		return PCP_V_DROP_SHORT;
	if (len > PCP_MAX_MSG)
		return PCP_V_DROP_LONG;
	if (len % 4)
		return PCP_V_DROP_ALIGN;
	/*
	 * Step 3: version 0 is NAT-PMP. Only its short replies with result 1 (unsupported version, RFC 6886 3.5)
	 * prove a NAT-PMP-only server; miniupnpd's 24-byte "00 80 00 03" answer to a malformed request does not.
	 */
	if (buf[0] == 0) {
		if ((len == 8 || len == 12 || len == 16) && pcp_get_u16(buf + 2) == 1) {
			if (ret) {
				memset(ret, 0, sizeof(*ret));
				ret->msg.version = 0;
				ret->msg.response = true;
				ret->msg.opcode = buf[1] & 0x7f;
				ret->msg.result = PCP_RES_UNSUPP_VERSION;
				ret->msg.epoch = pcp_get_u32(buf + 4);
				ret->server_version = 0;
			}
			return PCP_V_NATPMP_SERVER;
		}
		return PCP_V_DROP_VERSION;
	}
	/* Step 4. */
	if (!(buf[1] & PCP_R_BIT))
		return PCP_V_DROP_NOT_RESPONSE;
	if (buf[0] != PCP_VERSION) {
		if (buf[3] != PCP_RES_UNSUPP_VERSION)
			return PCP_V_DROP_VERSION;
		if (ret) {
			memset(ret, 0, sizeof(*ret));
			ret->msg.version = buf[0];
			ret->msg.response = true;
			ret->msg.opcode = buf[1] & 0x7f;
			ret->msg.result = buf[3];
			if (len >= 8)
				ret->msg.lifetime = pcp_get_u32(buf + 4);
			if (len >= 12)
				ret->msg.epoch = pcp_get_u32(buf + 8);
			ret->server_version = buf[0];
		}
		return PCP_V_UNSUPP_VERSION;
	}
	/* Step 5. */
	if (!req || (buf[1] & 0x7f) != req->opcode)
		return PCP_V_DROP_OPCODE;
	if (pcp_decode(buf, len, cfg, &m) < 0)
		return PCP_V_DROP_MALFORMED;
	/* Step 6 (RFC 6887 11.4 / 12.3): the reply must be about this very request. */
	if (m.opcode == PCP_OP_MAP || m.opcode == PCP_OP_PEER) {
		if (memcmp(m.nonce, req->nonce, PCP_NONCE_LEN))
			return PCP_V_DROP_NONCE;
		if (m.protocol != req->protocol || m.internal_port != req->internal_port)
			return PCP_V_DROP_MISMATCH;
		if (m.opcode == PCP_OP_PEER &&
		    (m.peer_port != req->peer_port || !addr_eq(&m.peer_addr, &req->peer_addr)))
			return PCP_V_DROP_MISMATCH;
		/* Step 8: a live mapping needs an external port (unless the request covered all ports). */
		if (m.result == PCP_RES_SUCCESS && m.lifetime != 0 && m.ext_port == 0 &&
		    req->internal_port != 0)
			return PCP_V_DROP_BAD_PORT;
	}
	if (ret) {
		memset(ret, 0, sizeof(*ret));
		ret->msg = m;
		ret->server_version = m.version;
	}
	return PCP_V_ACCEPT;
}
