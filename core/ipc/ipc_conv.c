/* SPDX-License-Identifier: MIT */
/* Public structs <-> control-protocol messages, for every side that speaks the protocol (ipc_conv.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ipc/ipc_conv.h"

uint32_t pmd_conv_secs_until(uint64_t when_us, uint64_t now_us)
{
	if (when_us <= now_us)
		return 0;
	uint64_t s = (when_us - now_us + 999999u) / 1000000u;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* A field of the caller's struct, which may be older (smaller) than ours. */
#define REQ_HAS(req, field) ((req)->size >= offsetof(struct pcpmap_request, field) + sizeof((req)->field))

/* Copies a string the decoder will accept (at most cap - 1 bytes of clean UTF-8); NULL is "". */
static int put_str(char *dst, size_t cap, const char *src)
{
	if (!src) {
		dst[0] = '\0';
		return 0;
	}
	size_t n = strlen(src);
	if (n >= cap || !pmd_ipc_str_valid(src, n))
		return -EINVAL;
	memcpy(dst, src, n + 1);
	return 0;
}

static int fail(const char **ret_what, const char *what)
{
	if (ret_what)
		*ret_what = what;
	return -EINVAL;
}

int pmd_conv_create_from_request(const struct pcpmap_request *req, struct pmd_ipc_msg *ret,
				 const char **ret_what)
{
	struct pmd_ipc_msg *m = ret;
	struct pmd_ipc_req *q = &m->req;
	pmd_ipc_init(m, PMD_MSG_CREATE, 0);
	q->kind = (uint8_t)req->kind;
	q->ip_proto = req->ip_proto;
	q->internal_port = req->internal_port;
	q->family = pmd_ipc_family_to_wire(req->external_family ? req->external_family : AF_INET);
	if (!q->family)
		return fail(ret_what, "external family");
	q->suggested_port = req->suggested_port;
	q->lifetime = req->lifetime;
	q->prefer_failure = req->prefer_failure;
	q->port_pair = req->port_pair;
	q->protocols = req->protocols;
	q->deadline_ms = req->deadline_ms;
	if (put_str(q->suggested_addr, sizeof(q->suggested_addr), req->suggested_addr) < 0)
		return fail(ret_what, "suggested address");
	if (put_str(q->third_party, sizeof(q->third_party), req->third_party) < 0)
		return fail(ret_what, "THIRD_PARTY");
	if (put_str(q->description, sizeof(q->description), req->description) < 0)
		return fail(ret_what, "description");
	if (req->kind == PCPMAP_KIND_PEER) {
		if (put_str(q->peer_addr, sizeof(q->peer_addr), req->peer_addr) < 0)
			return fail(ret_what, "peer address");
		q->peer_port = req->peer_port;
	}
	if (req->n_filters > PMD_IPC_MAX_FILTERS || (req->n_filters && !req->filters))
		return fail(ret_what, "filters");
	for (size_t i = 0; i < req->n_filters; i++) {
		const struct pcpmap_filter *f = &req->filters[i];
		if (!f->peer_addr ||
		    put_str(q->filters[i].addr, sizeof(q->filters[i].addr), f->peer_addr) < 0)
			return fail(ret_what, "filter address");
		q->filters[i].prefix_len = f->prefix_len;
		q->filters[i].port = f->peer_port;
	}
	q->n_filters = req->n_filters;
	if (REQ_HAS(req, allow_degrade))
		q->allow_degrade = req->allow_degrade;
	pmd_conv_set_req_bits(m);
	if (REQ_HAS(req, nonce) && req->nonce) {
		memcpy(q->nonce, req->nonce, PMD_IPC_NONCE_LEN);
		pmd_ipc_set(m, PMD_A_NONCE);
	}
	if (REQ_HAS(req, nonce2) && req->nonce2 && req->port_pair) {
		memcpy(m->nonce2, req->nonce2, PMD_IPC_NONCE_LEN);
		pmd_ipc_set(m, PMD_A_NONCE2);
	}
	if (REQ_HAS(req, persistent))
		m->persistent = req->persistent;
	return 0;
}

void pmd_conv_set_req_bits(struct pmd_ipc_msg *m)
{
	const struct pmd_ipc_req *q = &m->req;
	pmd_ipc_set(m, PMD_A_KIND);
	pmd_ipc_set(m, PMD_A_IP_PROTO);
	pmd_ipc_set(m, PMD_A_INTERNAL_PORT);
	pmd_ipc_set(m, PMD_A_FAMILY);
	if (q->suggested_port)
		pmd_ipc_set(m, PMD_A_SUGGESTED_PORT);
	if (q->suggested_addr[0])
		pmd_ipc_set(m, PMD_A_SUGGESTED_ADDR);
	if (q->lifetime)
		pmd_ipc_set(m, PMD_A_LIFETIME);
	if (q->third_party[0])
		pmd_ipc_set(m, PMD_A_THIRD_PARTY);
	if (q->description[0])
		pmd_ipc_set(m, PMD_A_DESCRIPTION);
	if (q->peer_addr[0])
		pmd_ipc_set(m, PMD_A_PEER_ADDR);
	if (q->peer_port)
		pmd_ipc_set(m, PMD_A_PEER_PORT);
	if (q->protocols)
		pmd_ipc_set(m, PMD_A_PROTOCOLS);
	if (q->deadline_ms)
		pmd_ipc_set(m, PMD_A_DEADLINE_MS);
	/* Flags and filters are carried when set; nothing to mark. */
}

void pmd_conv_request_from_req(const struct pmd_ipc_req *q, const uint8_t *nonce, const uint8_t *nonce2,
			       struct pcpmap_request *r, struct pcpmap_filter *filters)
{
	memset(r, 0, sizeof(*r));
	r->size = sizeof(*r);
	r->kind = q->kind == PCPMAP_KIND_PEER ? PCPMAP_KIND_PEER : PCPMAP_KIND_MAP;
	r->ip_proto = q->ip_proto;
	r->internal_port = q->internal_port;
	r->external_family = q->family == 6 ? AF_INET6 : AF_INET;
	r->suggested_port = q->suggested_port;
	r->suggested_addr = q->suggested_addr[0] ? q->suggested_addr : NULL;
	r->lifetime = q->lifetime;
	r->prefer_failure = q->prefer_failure;
	r->third_party = q->third_party[0] ? q->third_party : NULL;
	for (size_t i = 0; i < q->n_filters; i++) {
		filters[i].peer_addr = q->filters[i].addr;
		filters[i].prefix_len = q->filters[i].prefix_len;
		filters[i].peer_port = q->filters[i].port;
	}
	r->filters = q->n_filters ? filters : NULL;
	r->n_filters = q->n_filters;
	r->description = q->description[0] ? q->description : NULL;
	r->port_pair = q->port_pair;
	r->peer_addr = q->peer_addr[0] ? q->peer_addr : NULL;
	r->peer_port = q->peer_port;
	r->protocols = q->protocols;
	r->deadline_ms = q->deadline_ms;
	r->allow_degrade = q->allow_degrade;
	r->nonce = nonce;
	r->nonce2 = q->port_pair ? nonce2 : NULL;
}

void pmd_conv_msg_from_info(const struct pcpmap_mapping_info *info, uint64_t now_us, struct pmd_ipc_msg *m)
{
	/* The granted lifetime once there is one; the caller's (the requested one) before. */
	if (info->lifetime)
		m->req.lifetime = info->lifetime;
	pmd_ipc_set(m, PMD_A_LIFETIME);
	m->state = (uint8_t)info->state;
	pmd_ipc_set(m, PMD_A_STATE);
	m->proto = (uint8_t)info->proto;
	pmd_ipc_set(m, PMD_A_PROTO);
	pmd_ipc_copy_str(m->server, sizeof(m->server), info->server);
	pmd_ipc_set(m, PMD_A_SERVER);
	pmd_ipc_copy_str(m->internal_addr, sizeof(m->internal_addr), info->internal_addr);
	pmd_ipc_set(m, PMD_A_INTERNAL_ADDR);
	pmd_ipc_copy_str(m->external_addr, sizeof(m->external_addr), info->external_addr);
	pmd_ipc_set(m, PMD_A_EXTERNAL_ADDR);
	m->external_port = info->external_port;
	pmd_ipc_set(m, PMD_A_EXTERNAL_PORT);
	if (info->external_port2) {
		m->external_port2 = info->external_port2;
		pmd_ipc_set(m, PMD_A_EXTERNAL_PORT2);
	}
	if (info->pair_method) {
		m->pair_method = (uint8_t)info->pair_method;
		pmd_ipc_set(m, PMD_A_PAIR_METHOD);
	}
	if (info->expires_usec) {
		m->expires_in = pmd_conv_secs_until(info->expires_usec, now_us);
		pmd_ipc_set(m, PMD_A_EXPIRES_IN);
	}
	if (info->refresh_usec) {
		m->refresh_in = pmd_conv_secs_until(info->refresh_usec, now_us);
		pmd_ipc_set(m, PMD_A_REFRESH_IN);
	}
	if (info->retry_usec && info->state == PCPMAP_STATE_ERROR_WAIT_RESEND) {
		m->retry_in = pmd_conv_secs_until(info->retry_usec, now_us);
		pmd_ipc_set(m, PMD_A_RETRY_IN);
	}
	m->epoch = info->epoch;
	pmd_ipc_set(m, PMD_A_EPOCH);
	if (info->error) {
		m->error = (uint32_t)(info->error < 0 ? -info->error : info->error);
		pmd_ipc_set(m, PMD_A_ERRNO);
	}
	if (info->result_code) {
		m->result_code = (uint16_t)info->result_code;
		pmd_ipc_set(m, PMD_A_RESULT_CODE);
	}
	m->external_private = info->external_is_private;
}

void pmd_conv_info_from_msg(const struct pmd_ipc_msg *msg, uint64_t now_us, struct pcpmap_mapping_info *ret)
{
	struct pcpmap_mapping_info *i = ret;
	memset(i, 0, sizeof(*i));
	i->state = (enum pcpmap_state)msg->state;
	i->proto = (enum pcpmap_proto)msg->proto;
	i->kind = msg->req.kind == PCPMAP_KIND_PEER ? PCPMAP_KIND_PEER : PCPMAP_KIND_MAP;
	i->ip_proto = msg->req.ip_proto;
	snprintf(i->server, sizeof(i->server), "%s", msg->server);
	snprintf(i->internal_addr, sizeof(i->internal_addr), "%s", msg->internal_addr);
	i->internal_port = msg->req.internal_port;
	snprintf(i->external_addr, sizeof(i->external_addr), "%s", msg->external_addr);
	i->external_port = msg->external_port;
	i->external_port2 = msg->external_port2;
	i->pair_method = (enum pcpmap_pair_method)msg->pair_method;
	snprintf(i->peer_addr, sizeof(i->peer_addr), "%s", msg->req.peer_addr);
	i->peer_port = msg->req.peer_port;
	i->lifetime = msg->req.lifetime;
	if (pmd_ipc_has(msg, PMD_A_EXPIRES_IN))
		i->expires_usec = now_us + (uint64_t)msg->expires_in * 1000000u;
	if (pmd_ipc_has(msg, PMD_A_REFRESH_IN))
		i->refresh_usec = now_us + (uint64_t)msg->refresh_in * 1000000u;
	if (pmd_ipc_has(msg, PMD_A_RETRY_IN))
		i->retry_usec = now_us + (uint64_t)msg->retry_in * 1000000u;
	i->epoch = msg->epoch;
	i->error = msg->error ? -(int)msg->error : 0;
	i->result_code = msg->result_code;
	if (pmd_ipc_has(msg, PMD_A_NONCE))
		memcpy(i->nonce, msg->req.nonce, sizeof(i->nonce));
	if (pmd_ipc_has(msg, PMD_A_NONCE2))
		memcpy(i->nonce2, msg->nonce2, sizeof(i->nonce2));
	i->external_is_private = msg->external_private;
}

void pmd_conv_server_to_msg(const struct pcpmap_server_info *s, struct pmd_ipc_server *ret)
{
	struct pmd_ipc_server *o = ret;
	memset(o, 0, sizeof(*o));
	o->proto = (uint8_t)s->proto;
	o->version = s->version < 0 || s->version > 254 ? 0xff : (uint8_t)s->version;
	o->result_code = (uint16_t)s->result_code;
	o->epoch = s->epoch;
	o->rtt_usec = s->rtt_usec;
	o->error = (uint32_t)(s->error < 0 ? -s->error : s->error);
	pmd_ipc_copy_str(o->server, sizeof(o->server), s->server);
	pmd_ipc_copy_str(o->client_addr, sizeof(o->client_addr), s->client_addr);
	pmd_ipc_copy_str(o->external_addr, sizeof(o->external_addr), s->external_addr);
	pmd_ipc_copy_str(o->detail, sizeof(o->detail), s->detail);
}

void pmd_conv_server_from_msg(const struct pmd_ipc_server *s, struct pcpmap_server_info *ret)
{
	struct pcpmap_server_info *i = ret;
	memset(i, 0, sizeof(*i));
	i->proto = (enum pcpmap_proto)s->proto;
	snprintf(i->server, sizeof(i->server), "%s", s->server);
	snprintf(i->client_addr, sizeof(i->client_addr), "%s", s->client_addr);
	i->version = s->version == 0xff ? -1 : s->version;
	i->epoch = s->epoch;
	i->rtt_usec = s->rtt_usec;
	i->error = s->error ? -(int)s->error : 0;
	i->result_code = s->result_code;
	snprintf(i->external_addr, sizeof(i->external_addr), "%s", s->external_addr);
	snprintf(i->detail, sizeof(i->detail), "%s", s->detail);
}

void pmd_conv_probe_to_msg(const struct pcpmap_probe_result *r, struct pmd_ipc_msg *m)
{
	pmd_ipc_copy_str(m->gateway, sizeof(m->gateway), r->gateway);
	pmd_ipc_set(m, PMD_A_GATEWAY);
	m->proto = (uint8_t)r->chosen;
	pmd_ipc_set(m, PMD_A_PROTO);
	pmd_ipc_copy_str(m->external_addr, sizeof(m->external_addr), r->external_addr);
	pmd_ipc_set(m, PMD_A_EXTERNAL_ADDR);
	m->external_private = r->external_is_private;
	const struct pcpmap_server_info *s[3] = { &r->pcp, &r->natpmp, &r->upnp };
	m->n_servers = 0;
	for (size_t i = 0; i < 3; i++)
		if (s[i]->proto != PCPMAP_PROTO_NONE)
			pmd_conv_server_to_msg(s[i], &m->servers[m->n_servers++]);
}

void pmd_conv_probe_from_msg(const struct pmd_ipc_msg *msg, struct pcpmap_probe_result *ret)
{
	struct pcpmap_probe_result *r = ret;
	memset(r, 0, sizeof(*r));
	snprintf(r->gateway, sizeof(r->gateway), "%s", msg->gateway);
	r->chosen = (enum pcpmap_proto)msg->proto;
	snprintf(r->external_addr, sizeof(r->external_addr), "%s", msg->external_addr);
	r->external_is_private = msg->external_private;
	for (size_t i = 0; i < msg->n_servers; i++) {
		const struct pmd_ipc_server *s = &msg->servers[i];
		struct pcpmap_server_info *si = s->proto == PCPMAP_PROTO_PCP      ? &r->pcp
						: s->proto == PCPMAP_PROTO_NATPMP ? &r->natpmp
						: s->proto == PCPMAP_PROTO_UPNP   ? &r->upnp
										  : NULL;
		if (si)
			pmd_conv_server_from_msg(s, si);
	}
}
