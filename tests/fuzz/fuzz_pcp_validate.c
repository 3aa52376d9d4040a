/*
 * Fuzz target for pcp_validate_response. The input is a datagram "from the server"; it is checked against a
 * few fixed requests and against a request mirrored from the datagram itself (which must then match). Every
 * verdict is cross-checked with the bytes and with pcp_decode; the output is untouched on drops.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/pcp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool is_drop(enum pcp_verdict v)
{
	return v != PCP_V_ACCEPT && v != PCP_V_NATPMP_SERVER && v != PCP_V_UNSUPP_VERSION;
}

static enum pcp_verdict check(const struct pcp_msg *req, const uint8_t *data, size_t size)
{
	static struct pcp_validate_out out;
	static struct pcp_msg d;

	memset(&out, 0x5a, sizeof(out));
	enum pcp_verdict v = pcp_validate_response(req, data, size, NULL, &out);
	if ((unsigned)v >= PCP_V__MAX || strcmp(pcp_verdict_name(v), "UNKNOWN") == 0)
		abort();
	if (is_drop(v) && ((const uint8_t *)&out)[0] != 0x5a)
		abort();
	/* Same verdict without an output. */
	if (pcp_validate_response(req, data, size, NULL, NULL) != v)
		abort();

	switch (v) {
	case PCP_V_DROP_SHORT:
		if (size >= 4)
			abort();
		return v;
	case PCP_V_DROP_LONG:
		if (size <= PCP_MAX_MSG)
			abort();
		return v;
	case PCP_V_DROP_ALIGN:
		if (size % 4 == 0 || size < 4 || size > PCP_MAX_MSG)
			abort();
		return v;
	default:
		if (size < 4 || size > PCP_MAX_MSG || size % 4)
			abort();
		break;
	}

	bool natpmp_form = data[0] == 0 && (size == 8 || size == 12 || size == 16) && be16(data + 2) == 1;
	int dr = pcp_decode(data, size, NULL, &d);

	switch (v) {
	case PCP_V_NATPMP_SERVER:
		if (!natpmp_form || out.server_version != 0 || out.msg.epoch != be32(data + 4))
			abort();
		break;
	case PCP_V_DROP_VERSION:
		if (natpmp_form || (data[0] != 0 && data[0] != PCP_VERSION &&
				    data[3] == PCP_RES_UNSUPP_VERSION && (data[1] & PCP_R_BIT)))
			abort();
		if (data[0] == PCP_VERSION)
			abort();
		break;
	case PCP_V_UNSUPP_VERSION:
		if (data[0] == 0 || data[0] == PCP_VERSION || !(data[1] & PCP_R_BIT) ||
		    data[3] != PCP_RES_UNSUPP_VERSION || out.server_version != data[0] ||
		    out.msg.result != PCP_RES_UNSUPP_VERSION)
			abort();
		break;
	case PCP_V_DROP_NOT_RESPONSE:
		if (data[0] == 0 || (data[1] & PCP_R_BIT))
			abort();
		break;
	case PCP_V_DROP_OPCODE:
		if (data[0] != PCP_VERSION || !(data[1] & PCP_R_BIT) || (data[1] & 0x7f) == req->opcode)
			abort();
		break;
	case PCP_V_DROP_MALFORMED:
		if (data[0] != PCP_VERSION || !(data[1] & PCP_R_BIT) || dr == 0)
			abort();
		break;
	case PCP_V_DROP_NONCE:
		if (dr != 0 || !memcmp(d.nonce, req->nonce, PCP_NONCE_LEN))
			abort();
		break;
	case PCP_V_DROP_MISMATCH:
		if (dr != 0 || memcmp(d.nonce, req->nonce, PCP_NONCE_LEN))
			abort();
		break;
	case PCP_V_DROP_BAD_PORT:
		if (dr != 0 || d.result != PCP_RES_SUCCESS || d.lifetime == 0 || d.ext_port != 0 ||
		    req->internal_port == 0)
			abort();
		break;
	case PCP_V_ACCEPT:
		if (dr != 0 || !d.response || d.opcode != req->opcode || !pcp_msg_equal(&d, &out.msg) ||
		    out.server_version != PCP_VERSION)
			abort();
		if (d.opcode != PCP_OP_ANNOUNCE &&
		    (memcmp(d.nonce, req->nonce, PCP_NONCE_LEN) || d.protocol != req->protocol ||
		     d.internal_port != req->internal_port))
			abort();
		break;
	default:
		abort();
	}
	return v;
}

static void make_reqs(struct pcp_msg *r)
{
	memset(r, 0, 4 * sizeof(*r));
	for (int i = 0; i < 4; i++) {
		r[i].version = PCP_VERSION;
		for (int j = 0; j < PCP_NONCE_LEN; j++)
			r[i].nonce[j] = (uint8_t)(j + 1);
		pcp_addr_any(&r[i].ext_addr, AF_INET);
	}
	r[0].opcode = PCP_OP_ANNOUNCE;
	r[1].opcode = PCP_OP_MAP;
	r[1].protocol = 6;
	r[1].internal_port = 8080;
	r[2].opcode = PCP_OP_PEER;
	r[2].protocol = 6;
	r[2].internal_port = 50000;
	r[2].peer_port = 443;
	pcp_addr_from_string("198.51.100.7", &r[2].peer_addr);
	r[3].opcode = PCP_OP_MAP; /* delete all */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pcp_msg reqs[4], mirror, d;
	static bool init;

	if (!init) {
		make_reqs(reqs);
		init = true;
	}
	for (int i = 0; i < 4; i++)
		check(&reqs[i], data, size);

	/* A request that this datagram answers: it must be accepted (or refused only for its port). */
	if (pcp_decode(data, size, NULL, &d) == 0 && d.response) {
		memset(&mirror, 0, sizeof(mirror));
		mirror.version = PCP_VERSION;
		mirror.opcode = d.opcode;
		memcpy(mirror.nonce, d.nonce, PCP_NONCE_LEN);
		mirror.protocol = d.protocol;
		mirror.internal_port = d.internal_port;
		mirror.peer_port = d.peer_port;
		mirror.peer_addr = d.peer_addr;
		enum pcp_verdict v = check(&mirror, data, size);
		if (v != PCP_V_ACCEPT && v != PCP_V_DROP_BAD_PORT)
			abort();
	}
	return 0;
}
