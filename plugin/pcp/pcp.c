/* The native PCP backend (RFC 6887): one connected UDP socket per server, requests built from the mapping,
 * answers validated in the RFC's order before they reach the state machine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "plugins.h"
#include "text/text.h"

/* A nonce a mapping used here before it moved to another protocol with a request still unanswered. A late
 * SUCCESS for it is a grant on the gateway that nobody tracks: it is deleted with that nonce. */
#define PCP_RETIRED_MAX 32
#define PCP_RETIRED_US  (120ull * 1000000u)
struct pcp_retired {
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t ip_proto;
	uint16_t internal_port;
	int family;
	bool has_third_party;
	struct pcp_addr third_party;
	uint64_t until;
};

struct pcp_server_priv {
	int fd;
	struct pcp_retired retired[PCP_RETIRED_MAX];
	unsigned n_retired;
	/* miniupnpd 2.3.1 answers MALFORMED_OPTION to any option whose length is not a multiple of 4, so
	 * PORT_SET (5 bytes) always fails there: learned per server, then left out. */
	bool no_port_set;
};

static int pcp_server_open(struct pm_server *s)
{
	struct pcp_server_priv *p = calloc(1, sizeof(*p));
	int r;
	if (!p)
		return -ENOMEM;
	/* A connected socket: the kernel filters foreign sources, surfaces ICMP errors, and getsockname()
	 * gives the Client IP field (RFC 6887 8.1, 16.4). */
	struct pm_sockaddr local;
	r = pm_udp_connect(pm_server_addr(s), &p->fd, &local);
	if (r < 0) {
		free(p);
		return r;
	}
	pm_server_set_local(s, &local);
	r = pm_server_watch_fd(s, p->fd);
	if (r < 0) {
		close(p->fd);
		free(p);
		return r;
	}
	pm_server_set_priv(s, p);
	return 0;
}

static void pcp_server_close(struct pm_server *s)
{
	struct pcp_server_priv *p = pm_server_priv(s);
	if (!p)
		return;
	pm_server_unwatch_fd(s, p->fd);
	close(p->fd);
	free(p);
	pm_server_set_priv(s, NULL);
}

static void local_addr(const struct pm_server *s, struct pcp_addr *a)
{
	const struct pm_sockaddr *local = pm_server_local(s);
	if (local->u.sa.sa_family == AF_INET6)
		pcp_addr_from_v6(a, &local->u.in6.sin6_addr);
	else
		pcp_addr_from_v4(a, &local->u.in.sin_addr);
}

/* The request a mapping sends now. Renewals and re-creations suggest what was granted so a gateway that
 * rebooted can hand the same mapping back (RFC 6887 11.2.1; miniupnpd duplicates the mapping otherwise). */
void pm_pcp_build_request(const struct pm_server *s, const struct pm_mapping *mapping, bool del,
			  struct pcp_msg *msg)
{
	struct pm_req v;
	const struct pm_req *m = &v;
	pm_mapping_req(mapping, &v);
	memset(msg, 0, sizeof(*msg));
	msg->version = PCP_VERSION;
	msg->opcode = m->kind == PCPMAP_KIND_PEER ? PCP_OP_PEER : PCP_OP_MAP;
	msg->lifetime = del ? 0 : m->req_lifetime;
	local_addr(s, &msg->client_addr);
	memcpy(msg->nonce, m->nonce, PCP_NONCE_LEN);
	msg->protocol = m->ip_proto;
	msg->internal_port = m->internal_port;
	if (del) {
		/* Zero suggestion on delete, as both RFCs' implementations do (doc/PROTOCOLS.md 1.6). */
		pcp_addr_any(&msg->ext_addr, m->family);
	} else if (m->have_grant) {
		msg->ext_port = m->ext_port;
		msg->ext_addr = m->ext_addr;
	} else {
		msg->ext_port = m->suggested_port;
		msg->ext_addr = m->suggested_addr;
	}
	if (m->kind == PCPMAP_KIND_PEER) {
		msg->peer_port = m->peer_port;
		msg->peer_addr = m->peer_addr;
	}
	if (m->has_third_party) {
		msg->opts.has_third_party = true;
		msg->opts.third_party = m->third_party;
	}
	if (del)
		return;
	if (m->prefer_failure && msg->opcode == PCP_OP_MAP)
		msg->opts.prefer_failure = true;
	for (size_t i = 0; i < m->n_filters && i < PCP_MAX_FILTERS; i++)
		msg->opts.filters[msg->opts.n_filters++] = m->filters[i];
	if (m->description) {
		size_t len = strlen(m->description);
		msg->opts.has_description = true;
		memcpy(msg->opts.description, m->description, len + 1);
		/* Spaces up to a multiple of 4: miniupnpd 2.3.1 refuses other lengths (it counts the padding),
		 * and trailing spaces change nothing a person reads. */
		while (len % 4 && len < PCP_MAX_DESCRIPTION)
			msg->opts.description[len++] = ' ';
		msg->opts.description[len] = '\0';
		msg->opts.description_len = len;
	}
	if (m->port_reservation && msg->opcode == PCP_OP_MAP)
		msg->opts.port_reservation = true;
	if (m->port_set && msg->opcode == PCP_OP_MAP &&
	    !(pm_server_priv(s) && ((const struct pcp_server_priv *)pm_server_priv(s))->no_port_set)) {
		msg->opts.has_port_set = true;
		msg->opts.port_set.size = 2;
		msg->opts.port_set.first_port = m->internal_port;
		msg->opts.port_set.parity = true;
	}
}

static void describe(const struct pcp_msg *m, char *buf, size_t len)
{
	char ext[48] = "", peer[48] = "";
	int n;
	pcp_addr_to_string(&m->ext_addr, ext, sizeof(ext));
	if (m->opcode == PCP_OP_ANNOUNCE) {
		if (m->response)
			snprintf(buf, len, "ANNOUNCE response result=%s epoch=%u", pcp_result_name(m->result),
				 m->epoch);
		else
			snprintf(buf, len, "ANNOUNCE request");
		return;
	}
	const char *op = m->opcode == PCP_OP_PEER ? "PEER" : "MAP";
	const char *proto = m->protocol == 6    ? "tcp"
			    : m->protocol == 17 ? "udp"
			    : m->protocol == 0  ? "all"
						: "?";
	if (m->response)
		n = snprintf(buf, len,
			     "%s response result=%s lifetime=%u epoch=%u %s internal=%u external=%s:%u", op,
			     pcp_result_name(m->result), m->lifetime, m->epoch, proto, m->internal_port, ext,
			     m->ext_port);
	else
		n = snprintf(buf, len, "%s request lifetime=%u %s internal=%u suggest=%s:%u", op, m->lifetime,
			     proto, m->internal_port, ext, m->ext_port);
	if (n < 0 || (size_t)n >= len)
		return;
	if (m->opcode == PCP_OP_PEER) {
		pcp_addr_to_string(&m->peer_addr, peer, sizeof(peer));
		n += snprintf(buf + n, len - (size_t)n, " peer=%s:%u", peer, m->peer_port);
	}
	if (n < 0 || (size_t)n >= len)
		return;
	const struct pcp_options *o = &m->opts;
	snprintf(buf + n, len - (size_t)n, "%s%s%s%s%s", o->has_third_party ? " THIRD_PARTY" : "",
		 o->prefer_failure ? " PREFER_FAILURE" : "", o->n_filters ? " FILTER" : "",
		 o->has_description ? " DESCRIPTION" : "", o->port_reservation ? " PORT_RESERVATION" : "");
}

static int pcp_transmit(struct pm_server *s, const struct pcp_msg *msg)
{
	struct pcp_server_priv *p = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	uint8_t buf[PCP_MAX_MSG];
	size_t len;
	int r = pcp_encode(msg, pm_client_codec(c), buf, sizeof(buf), &len);
	if (r < 0) {
		pm_log(c, PCPMAP_LOG_ERR, "PCP: cannot encode request: %s", pcpmap_strerror(r));
		return r;
	}
	if (pm_client_tracing(c)) {
		char d[256];
		describe(msg, d, sizeof(d));
		pm_trace(c, true, PCPMAP_PROTO_PCP, pm_server_name(s), buf, len, d);
	}
	pm_client_count(c, PM_STAT_SENT);
	return pm_udp_send(p->fd, buf, len);
}

static int pcp_send(struct pm_server *s, struct pm_mapping *m, bool del)
{
	struct pcp_msg msg;
	pm_pcp_build_request(s, m, del, &msg);
	return pcp_transmit(s, &msg);
}

static int pcp_announce(struct pm_server *s)
{
	struct pcp_msg msg;
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_ANNOUNCE;
	local_addr(s, &msg.client_addr);
	return pcp_transmit(s, &msg);
}

static int result_errno(uint8_t code)
{
	switch (code) {
	case PCP_RES_SUCCESS:
		return 0;
	case PCP_RES_UNSUPP_VERSION:
	case PCP_RES_UNSUPP_PROTOCOL:
		return -EPROTONOSUPPORT;
	case PCP_RES_NOT_AUTHORIZED:
		return -EACCES;
	case PCP_RES_MALFORMED_REQUEST:
	case PCP_RES_MALFORMED_OPTION:
		return -EPROTO;
	case PCP_RES_UNSUPP_OPCODE:
	case PCP_RES_UNSUPP_OPTION:
		return -EOPNOTSUPP;
	case PCP_RES_NETWORK_FAILURE:
	case PCP_RES_NO_RESOURCES:
	case PCP_RES_USER_EX_QUOTA:
		return -EAGAIN;
	case PCP_RES_CANNOT_PROVIDE_EXTERNAL:
		return -EADDRINUSE;
	case PCP_RES_ADDRESS_MISMATCH:
		return -EADDRNOTAVAIL;
	case PCP_RES_EXCESSIVE_REMOTE_PEERS:
		return -E2BIG;
	}
	return -EPROTO;
}

/* Turns a validated answer into the engine's protocol-neutral reply. */
void pm_pcp_reply_from_msg(const struct pcp_msg *resp, const struct pm_mapping *mapping, struct pm_reply *r)
{
	struct pm_req v;
	const struct pm_req *m = &v;
	pm_mapping_req(mapping, &v);
	memset(r, 0, sizeof(*r));
	r->result_code = resp->result;
	r->has_epoch = true;
	r->epoch = resp->epoch;
	r->lifetime = resp->lifetime;
	r->ext_addr = resp->ext_addr;
	r->ext_port = resp->ext_port;
	r->echoed_port_reservation = resp->opts.port_reservation;
	r->echoed_port_set = resp->opts.has_port_set;
	r->error = result_errno(resp->result);
	if (resp->result == PCP_RES_SUCCESS) {
		r->kind = PM_REPLY_SUCCESS;
		return;
	}
	const struct pcp_result_info ri = pcp_result_info(resp->result);
	r->hold_s = pcp_error_hold(resp->result, resp->lifetime);
	/* Short-lifetime errors are transient: retry after the hold. CANNOT_PROVIDE_EXTERNAL is final only
	 * when we pinned the port; otherwise the gateway may free one later. Everything else is our bug or a
	 * refusal that retrying the same request cannot fix. */
	if (resp->result == PCP_RES_CANNOT_PROVIDE_EXTERNAL)
		r->kind = m->prefer_failure || m->kind == PCPMAP_KIND_PEER ? PM_REPLY_FATAL : PM_REPLY_RETRY;
	else if (ri.cls == PCP_ERR_SHORT)
		r->kind = PM_REPLY_RETRY;
	else
		r->kind = PM_REPLY_FATAL;
}

/* A nonce this server saw stops naming anything live (the mapping took a fresh one, or is gone): a request
 * the server has yet to process may still be granted under it, so it is kept for a while. */
static void pcp_retire(struct pm_server *s, const struct pm_mapping *mapping)
{
	struct pcp_server_priv *p = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	struct pm_req v;
	const struct pm_req *m = &v;
	pm_mapping_req(mapping, &v);
	if (!p || m->kind != PCPMAP_KIND_MAP || !m->sent)
		return;
	if (p->n_retired == PCP_RETIRED_MAX) {
		memmove(&p->retired[0], &p->retired[1], sizeof(p->retired[0]) * (PCP_RETIRED_MAX - 1));
		p->n_retired--;
	}
	struct pcp_retired *r = &p->retired[p->n_retired++];
	memcpy(r->nonce, m->nonce, PCP_NONCE_LEN);
	r->ip_proto = m->ip_proto;
	r->internal_port = m->internal_port;
	r->family = m->family;
	r->has_third_party = m->has_third_party;
	r->third_party = m->third_party;
	r->until = pm_client_now(c) + PCP_RETIRED_US;
}

/* The mapping leaves PCP for another protocol with a request maybe still unanswered: it draws a fresh
 * nonce, which retires the old one. */
static void pcp_mapping_gone(struct pm_server *s, struct pm_mapping *m)
{
	struct pm_req v;
	(void)s;
	pm_mapping_req(m, &v);
	if (v.kind == PCPMAP_KIND_MAP && v.sent &&
	    (v.state == PCPMAP_STATE_WAIT_RESP || v.state == PCPMAP_STATE_NOT_SENT ||
	     v.state == PCPMAP_STATE_ERROR_WAIT_RESEND))
		pm_mapping_nonce_spent(m);
}

/* A late answer for a retired nonce. Returns true when it was one. */
static bool late_answer(struct pm_server *s, const struct pcp_msg *resp)
{
	struct pcp_server_priv *p = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	for (unsigned i = 0; i < p->n_retired; i++) {
		struct pcp_retired *r = &p->retired[i];
		if (r->until < pm_client_now(c) || memcmp(r->nonce, resp->nonce, PCP_NONCE_LEN) != 0 ||
		    resp->opcode != PCP_OP_MAP || resp->protocol != r->ip_proto ||
		    resp->internal_port != r->internal_port)
			continue;
		struct pm_orphan o = {
			.ip_proto = r->ip_proto,
			.internal_port = r->internal_port,
			.family = r->family,
			.has_third_party = r->has_third_party,
			.third_party = r->third_party,
		};
		memcpy(o.nonce, r->nonce, PCP_NONCE_LEN);
		/* The entry stays until it expires: more copies of a request may still be granted later. */
		if (resp->result != PCP_RES_SUCCESS || resp->lifetime == 0)
			return true; /* refused or already gone: nothing held */
		pm_log(c, PCPMAP_LOG_INFO,
		       "server %s: late PCP grant (port %u) for a request that moved to another protocol: "
		       "deleting it",
		       pm_server_name(s), resp->ext_port);
		/* The gateway's choice stays: moving mappings back now would strand their in-flight requests of
		 * the other protocol the same way. */
		pm_mapping_delete_orphan(s, &o);
		return true;
	}
	return false;
}

/* An answer (or an unsolicited response) for one of our mappings: match by nonce, validate against the
 * request it answers, then hand it to the state machine. */
static void on_mapping_answer(struct pm_server *s, const uint8_t *buf, size_t len,
			      const struct pcp_msg *quick, bool unsolicited)
{
	pcpmap_client *c = pm_server_client(s);
	struct pcp_validate_out out;
	struct pm_mapping *m = pm_server_find_nonce(s, quick->nonce);
	if (!m) {
		/* Nothing of ours waits for it (a repeated delete's answer, say), but its epoch is the server's
		 * word like any other's: a restart it shows must still re-verify what is held (RFC 6887 8.5). */
		if (!unsolicited && !pm_server_epoch_stale(s, quick->epoch))
			pm_server_on_epoch(s, quick->epoch, false, NULL);
		if (!unsolicited && late_answer(s, quick))
			return;
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: answer for an unknown nonce dropped",
		       pm_server_name(s));
		return;
	}
	struct pm_req mr;
	pm_mapping_req(m, &mr);
	/* RFC 6887 14.2: unsolicited responses update a held mapping; an error or a delete is not news. */
	if (unsolicited && (quick->result != PCP_RES_SUCCESS || quick->lifetime == 0 ||
			    (mr.state != PCPMAP_STATE_MAPPED && mr.state != PCPMAP_STATE_REFRESHING))) {
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: unsolicited response for mapping %llu ignored",
		       pm_server_name(s), (unsigned long long)mr.id);
		return;
	}
	struct pcp_msg req;
	pm_pcp_build_request(s, m, mr.del, &req);
	enum pcp_verdict v = pcp_validate_response(&req, buf, len, pm_client_codec(c), &out);
	if (v != PCP_V_ACCEPT) {
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: answer dropped: %s", pm_server_name(s),
		       pcp_verdict_name(v));
		return;
	}
	/* A late answer to an earlier delete of the same nonce (apps that re-map a port with a derived nonce
	 * do this): a SUCCESS with lifetime 0 cannot answer a request for a lifetime. */
	if (out.msg.result == PCP_RES_SUCCESS && out.msg.lifetime == 0 && req.lifetime != 0) {
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: a delete's late answer dropped", pm_server_name(s));
		return;
	}
	if (pm_server_epoch_stale(s, out.msg.epoch)) {
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: answer from before its restart dropped",
		       pm_server_name(s));
		return;
	}
	pm_server_on_reachable(s);
	pm_server_on_epoch(s, out.msg.epoch, false, m);
	struct pcp_server_priv *p = pm_server_priv(s);
	if (out.msg.result == PCP_RES_MALFORMED_OPTION) {
		/* Learn the option-length quirk once, then send the request again without it. */
		bool changed = false;
		if (req.opts.has_port_set && !p->no_port_set) {
			p->no_port_set = changed = true;
			pm_log(c, PCPMAP_LOG_INFO, "server %s rejects PORT_SET: leaving it out from now on",
			       pm_server_name(s));
		}
		if (changed) {
			pm_mapping_req(m, &mr); /* the epoch check above may have moved it */
			pcp_send(s, m, mr.del);
			return;
		}
	}
	struct pm_reply rep;
	pm_pcp_reply_from_msg(&out.msg, m, &rep);
	pm_mapping_on_reply(m, &rep);
}

static void pcp_unsolicited(struct pm_server *s, const uint8_t *buf, size_t len)
{
	pcpmap_client *c = pm_server_client(s);
	struct pcp_msg quick;
	if (pcp_decode(buf, len, pm_client_codec(c), &quick) < 0 || !quick.response ||
	    (quick.opcode != PCP_OP_MAP && quick.opcode != PCP_OP_PEER)) {
		pm_client_count(c, PM_STAT_DROPPED);
		return;
	}
	if (pm_client_tracing(c)) {
		char d[256];
		describe(&quick, d, sizeof(d));
		pm_trace(c, false, PCPMAP_PROTO_PCP, pm_server_name(s), buf, len, d);
	}
	on_mapping_answer(s, buf, len, &quick, true);
}

static void handle_datagram(struct pm_server *s, const uint8_t *buf, size_t len)
{
	pcpmap_client *c = pm_server_client(s);
	struct pcp_msg quick;
	struct pcp_validate_out out;
	char d[256];

	/* A NAT-PMP-only server answers a PCP request with its 8-byte "unsupported version" reply, which
	 * names no request (RFC 6887 9). */
	if (len >= 4 && buf[0] == 0) {
		struct pcp_msg ann;
		memset(&ann, 0, sizeof(ann));
		ann.opcode = PCP_OP_ANNOUNCE;
		if (pcp_validate_response(&ann, buf, len, pm_client_codec(c), &out) == PCP_V_NATPMP_SERVER) {
			pm_trace(c, false, PCPMAP_PROTO_PCP, pm_server_name(s), buf, len,
				 "NAT-PMP unsupported-version reply");
			pm_server_on_natpmp_only(s);
			return;
		}
		pm_client_count(c, PM_STAT_DROPPED);
		pm_trace(c, false, PCPMAP_PROTO_PCP, pm_server_name(s), buf, len,
			 "dropped: version 0, not a NAT-PMP reply");
		return;
	}
	/* Find which request this answers (opcode, nonce), then validate against that request. */
	int r = pcp_decode(buf, len, pm_client_codec(c), &quick);
	if (r < 0 || !quick.response) {
		struct pcp_msg probe;
		memset(&probe, 0, sizeof(probe));
		probe.opcode = len >= 2 ? (uint8_t)(buf[1] & 0x7f) : 0;
		enum pcp_verdict v = pcp_validate_response(&probe, buf, len, pm_client_codec(c), &out);
		if (v == PCP_V_UNSUPP_VERSION) {
			pm_log(c, PCPMAP_LOG_INFO, "server %s speaks PCP version %u only", pm_server_name(s),
			       out.server_version);
			pm_server_on_unsupported_version(s, out.server_version);
			return;
		}
		pm_client_count(c, PM_STAT_DROPPED);
		snprintf(d, sizeof(d), "dropped: %s",
			 pcp_verdict_name(v == PCP_V_ACCEPT ? PCP_V_DROP_MALFORMED : v));
		pm_trace(c, false, PCPMAP_PROTO_PCP, pm_server_name(s), buf, len, d);
		return;
	}
	if (pm_client_tracing(c)) {
		describe(&quick, d, sizeof(d));
		pm_trace(c, false, PCPMAP_PROTO_PCP, pm_server_name(s), buf, len, d);
	}
	if (quick.opcode == PCP_OP_ANNOUNCE) {
		pm_server_on_reachable(s);
		pm_server_on_epoch(s, quick.epoch, false, NULL);
		if (pm_server_announcing(s)) {
			struct pcpmap_server_info info;
			memset(&info, 0, sizeof(info));
			info.proto = PCPMAP_PROTO_PCP;
			pm_text_copy(info.server, sizeof(info.server), pm_server_name(s));
			struct pcp_addr me;
			local_addr(s, &me);
			pcp_addr_to_string(&me, info.client_addr, sizeof(info.client_addr));
			info.version = quick.version;
			info.epoch = quick.epoch;
			info.result_code = quick.result;
			info.error = result_errno(quick.result);
			pm_server_on_announce(s, &info);
		}
		return;
	}
	on_mapping_answer(s, buf, len, &quick, false);
}

static void pcp_readable(struct pm_server *s, int fd, uint64_t now)
{
	pcpmap_client *c = pm_server_client(s);
	uint8_t buf[PCP_MAX_MSG + 4];
	(void)now;
	/* Bounded: a flood cannot keep the loop here forever. */
	for (int i = 0; i < 64; i++) {
		ssize_t n = pm_udp_recv(fd, buf, sizeof(buf));
		if (n == -EAGAIN)
			return;
		if (n == -ECONNREFUSED || n == -EHOSTUNREACH || n == -ENETUNREACH) {
			pm_server_on_unreachable(s, (int)n);
			continue;
		}
		if (n == -EMSGSIZE) {
			pm_client_count(c, PM_STAT_RECEIVED);
			pm_client_count(c, PM_STAT_DROPPED);
			continue;
		}
		if (n < 0) {
			pm_log(c, PCPMAP_LOG_WARNING, "server %s: receive failed: %s", pm_server_name(s),
			       pcpmap_strerror((int)n));
			return;
		}
		pm_client_count(c, PM_STAT_RECEIVED);
		handle_datagram(s, buf, (size_t)n);
	}
}

const struct pm_backend_ops pm_pcp_backend = {
	.proto = PCPMAP_PROTO_PCP,
	.name = "PCP",
	.irt_us = PCP_IRT_US,
	.mrt_us = PCP_MRT_US,
	.server_open = pcp_server_open,
	.server_close = pcp_server_close,
	.send = pcp_send,
	.readable = pcp_readable,
	.announce = pcp_announce,
	.mapping_gone = pcp_mapping_gone,
	.retire = pcp_retire,
	.unsolicited = pcp_unsolicited,
};
