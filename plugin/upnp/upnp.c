/* The UPnP IGD backend (loop thread side). miniupnpc blocks, so every IGD action runs on one worker thread
 * per server (upnp_queue.c) and comes back through an eventfd this backend watches; results reach the
 * engine exactly as PCP answers do (pm_mapping_on_reply, pm_server_on_unreachable, pm_server_on_probe).
 *
 * Presence check: UPnP has no epoch, so a gateway that rebooted or dropped a mapping says nothing. Every
 * renewal first asks GetSpecificPortMappingEntry and re-adds what the gateway forgot (the engine just sees
 * the renewal succeed); renewals follow the engine's schedule over the reported lifetime (first one at
 * about half of it: 1 h for the default 7200 s lease). A permanent lease (IGD:1 answering 725) is reported
 * as 7200 s for this reason alone: one SOAP round trip an hour against at most an hour of silent loss.
 * The same query guards new mappings and deletes: UPnP mappings are keyed by external port only and an IGD
 * overwrites a mapping of the same host without a word, so a port held by another application is never
 * overwritten or deleted. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upnp/upnp_int.h"

#define UPNP_IRT_US 3000000u /* a job includes discovery (<= 2 s) and a few HTTP round trips */
#define UPNP_MRT_US 60000000u

struct upnp_priv {
	struct upnp_queue q;
	struct upnp_igd igd;
	unsigned delivering;
	bool closed; /* server_close ran during a delivery: readable() frees this */
	bool noted_double_nat;
	bool noted_lease0;
	bool igd_seen; /* some job found an IGD: only then can a mapping of ours exist there */
};

static int upnp_server_open(struct pm_server *s)
{
	struct upnp_priv *p = calloc(1, sizeof(*p));
	int fd, r;
	if (!p)
		return -ENOMEM;
	/* Our address towards the gateway: a connected UDP socket picks the route and sends nothing. */
	struct pm_sockaddr local;
	r = pm_udp_connect(pm_server_addr(s), &fd, &local);
	if (r < 0) {
		free(p);
		return r;
	}
	pm_server_set_local(s, &local);
	close(fd);
	if (upnp_igd_default_ops == &upnp_miniupnpc_ops) {
		const char *why;
		r = upnp_mini_load(&why);
		if (r < 0) {
			pm_log(pm_server_client(s), PCPMAP_LOG_WARNING,
			       "UPnP unavailable: cannot load miniupnpc: %s", why);
			free(p);
			return r;
		}
	}
	p->igd.ops = upnp_igd_default_ops;
	p->igd.gw = *pm_server_addr(s);
	p->igd.local = local;
	p->igd.stop = &p->q.stop;
	/* A warm start: the remembered control URL first (the worker discovers when it does not answer). */
	struct pm_upnp_memo memo;
	if (pm_server_upnp_memo(s, &memo) == 0 &&
	    upnp_igd_remember(&p->igd, memo.url, memo.st, memo.lan) == 0)
		pm_log(pm_server_client(s), PCPMAP_LOG_DEBUG, "UPnP: remembered IGD %s (%s), our address %s",
		       memo.url, memo.st, memo.lan);
	r = upnp_queue_start(&p->q, UPNP_QUEUE_DEFAULT, upnp_igd_run, upnp_igd_keep, &p->igd);
	if (r < 0) {
		free(p);
		return r;
	}
	r = pm_server_watch_fd(s, p->q.efd);
	if (r < 0) {
		upnp_queue_stop(&p->q);
		free(p);
		return r;
	}
	pm_server_set_priv(s, p);
	return 0;
}

static void upnp_server_close(struct pm_server *s)
{
	struct upnp_priv *p = pm_server_priv(s);
	if (!p)
		return;
	pm_server_unwatch_fd(s, p->q.efd);
	/* Joins the worker: deletes still queued go out first (on a known IGD, bounded by its timeouts). */
	upnp_queue_stop(&p->q);
	upnp_igd_fini(&p->igd);
	pm_server_set_priv(s, NULL);
	if (p->delivering)
		p->closed = true; /* closed from inside a delivery: readable() frees it */
	else
		free(p);
}

static bool same_request(const struct upnp_job *a, const void *arg)
{
	const struct upnp_job *b = arg;
	if (a->op != b->op)
		return false;
	if (a->op == UPNP_OP_PROBE || a->op == UPNP_OP_ANNOUNCE)
		return true;
	return a->id == b->id && a->ext_port == b->ext_port && a->renew == b->renew && a->lease == b->lease &&
	       a->family == b->family && a->release == b->release;
}

/* miniupnpc pastes arguments into the SOAP body as they are: keep the description to plain, XML-safe
 * text. */
static void safe_desc(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (; in && *in && n + 1 < cap; in++) {
		unsigned char ch = (unsigned char)*in;
		out[n++] =
		    ch < 0x20 || ch >= 0x7f || ch == '<' || ch == '>' || ch == '&' || ch == '"' || ch == '\''
			? '_'
			: (char)ch;
	}
	out[n] = '\0';
}

/* PCP and NAT-PMP were refused by ICMP port unreachable: the gateway is up and answers at once, so an IGD
 * on it answers a unicast M-SEARCH quickly too, and silence means none (the ICMP error that would say so is
 * often rate-limited, which made a gateway that is off cost the full 2 s of discovery). */
static bool udp_refused(const struct pm_server *s)
{
	/* Only the first time: a gateway re-probed after nothing answered gets every window, so an IGD slower
	 * than the short ones is still found at the next attempt (3 s later). */
	return pm_server_refused(s, PCPMAP_PROTO_PCP, true);
}

static int post(struct upnp_priv *p, struct upnp_job *j)
{
	if (j->op != UPNP_OP_FAIL && upnp_queue_find(&p->q, same_request, j)) {
		/* The engine retransmits on its own clock; one job per request is enough. */
		free(j);
		return 0;
	}
	int r = j->op == UPNP_OP_FAIL ? upnp_queue_post_done(&p->q, j) : upnp_queue_post(&p->q, j);
	if (r < 0)
		free(j);
	return r;
}

static int upnp_send(struct pm_server *s, struct pm_mapping *mapping, bool del)
{
	struct upnp_priv *p = pm_server_priv(s);
	struct pm_req v;
	const struct pm_req *m = &v;
	pm_mapping_req(mapping, &v);
	if (!p)
		return -ENOTCONN;
	struct upnp_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->op = del ? UPNP_OP_UNMAP : UPNP_OP_MAP;
	j->max_windows = udp_refused(s) ? UPNP_REFUSED_WINDOWS : 0;
	j->del = del;
	j->named = del && m->unmap_only;
	j->id = m->id;
	j->family = m->family;
	j->ip_proto = m->ip_proto;
	j->internal_port = m->internal_port;
	j->ext_port = m->have_grant ? m->ext_port : m->suggested_port;
	j->renew = m->have_grant;
	j->prefer_failure = m->prefer_failure;
	j->lease = m->req_lifetime;
	if (m->has_third_party)
		pcp_addr_to_string(&m->third_party, j->client, sizeof(j->client));
	safe_desc(m->description ? m->description : "pcpmap", j->desc, sizeof(j->desc));
	if (del && !m->have_grant && !p->igd_seen && !j->named) {
		/* No IGD ever answered: nothing this process made can exist there, and a discovery now would
		 * only make the application wait. A named delete (unmap) looks for the IGD like a map does. */
		j->op = UPNP_OP_FAIL;
		j->code = 0;
		snprintf(j->trace[j->n_trace++], UPNP_TRACE_LEN, "UPnP: no IGD was found, nothing to delete");
	} else if (m->kind == PCPMAP_KIND_PEER ||
		   (m->ip_proto != IPPROTO_TCP && m->ip_proto != IPPROTO_UDP)) {
		/* UPnP maps one TCP or UDP port for any peer: nothing else exists to create or delete. */
		j->op = UPNP_OP_FAIL;
		j->code = del && !j->named ? 0 : -EOPNOTSUPP;
		snprintf(j->trace[j->n_trace++], UPNP_TRACE_LEN, "UPnP cannot carry %s%s (protocol %u)",
			 m->kind == PCPMAP_KIND_PEER ? "PEER mappings" : "this mapping",
			 del ? ": nothing to delete" : "", m->ip_proto);
		if (j->named)
			snprintf(j->detail, sizeof(j->detail), "UPnP maps one TCP or UDP port, for any peer");
	}
	return post(p, j);
}

static int post_server_job(struct pm_server *s, enum upnp_op op)
{
	struct upnp_priv *p = pm_server_priv(s);
	if (!p)
		return -ENOTCONN;
	struct upnp_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->op = op;
	j->max_windows = udp_refused(s) ? UPNP_REFUSED_WINDOWS : 0;
	return post(p, j);
}

static int upnp_probe(struct pm_server *s)
{
	return post_server_job(s, UPNP_OP_PROBE);
}

static int upnp_announce(struct pm_server *s)
{
	return post_server_job(s, UPNP_OP_ANNOUNCE);
}

static bool transport_error(int code)
{
	return code == -ECONNREFUSED || code == -ETIMEDOUT;
}

/* Copies as much as fits (info fields are shorter than URLs). */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void fill_info(const struct pm_server *s, const struct upnp_job *j, struct pcpmap_server_info *info)
{
	memset(info, 0, sizeof(*info));
	info->proto = PCPMAP_PROTO_UPNP;
	copy_trunc(info->server, sizeof(info->server), j->igd_url[0] ? j->igd_url : pm_server_name(s));
	copy_trunc(info->client_addr, sizeof(info->client_addr), j->igd_lan);
	info->version = j->igd_version;
	info->rtt_usec = (uint32_t)(j->igd_discovery_us > UINT32_MAX ? UINT32_MAX : j->igd_discovery_us);
	info->result_code = j->code > 0 ? j->code : 0;
	copy_trunc(info->external_addr, sizeof(info->external_addr), j->out_ext);
	if (j->igd_url[0])
		snprintf(info->detail, sizeof(info->detail), "IGD:%d %s", j->igd_version, j->igd_url);
}

static void log_notes(struct pm_server *s, struct upnp_priv *p, const struct upnp_job *j)
{
	pcpmap_client *c = pm_server_client(s);
	if ((j->notes & UPNP_NOTE_DISCOVERED) && j->igd_url[0])
		pm_log(c, PCPMAP_LOG_INFO, "UPnP: IGD:%d at %s found in %.1f ms (our address %s)",
		       j->igd_version, j->igd_url, (double)j->igd_discovery_us / 1000.0, j->igd_lan);
	if ((j->notes & UPNP_NOTE_DOUBLE_NAT) && !p->noted_double_nat) {
		p->noted_double_nat = true;
		pm_log(c, PCPMAP_LOG_NOTICE,
		       "UPnP: the IGD at %s calls itself not connected (its WAN address is private or "
		       "reserved): "
		       "another NAT may sit behind it (double NAT); using it anyway",
		       j->igd_url);
	}
	if ((j->notes & UPNP_NOTE_LEASE0) && !p->noted_lease0) {
		p->noted_lease0 = true;
		pm_log(
		    c, PCPMAP_LOG_NOTICE,
		    "UPnP: the IGD accepts permanent leases only (725): mappings are deleted explicitly and "
		    "checked every %u s",
		    UPNP_PERMANENT_AS_S / 2);
	}
	if (j->notes & UPNP_NOTE_FORGOTTEN)
		pm_log(c, PCPMAP_LOG_NOTICE,
		       "mapping %llu: the gateway had lost it (presence check): re-added",
		       (unsigned long long)j->id);
	if (j->notes & UPNP_NOTE_TAKEN)
		pm_log(c, PCPMAP_LOG_WARNING, "mapping %llu: another client holds its external port now",
		       (unsigned long long)j->id);
	if (j->notes & UPNP_NOTE_NO_ANY)
		pm_log(c, PCPMAP_LOG_DEBUG, "UPnP: the IGD lacks AddAnyPortMapping; using AddPortMapping");
}

/* A create that succeeded for a mapping now served by another protocol (the gateway's PCP came back while
 * the create was out), or now being deleted by a delete queued before the create's port was known: the IGD
 * holds a port nobody will renew or delete. It is given back, with the usual check that the port is still
 * ours (a second delete of a port already gone does nothing). */
static void release_grant(struct pm_server *s, const struct upnp_job *done)
{
	struct upnp_priv *p = pm_server_priv(s);
	struct upnp_job *j = p ? calloc(1, sizeof(*j)) : NULL;
	if (!j)
		return;
	j->op = UPNP_OP_UNMAP;
	j->del = true;
	j->release = true;
	j->renew =
	    true; /* it was granted: an IGD that will not say who holds the port still gets the delete */
	j->id = done->id;
	j->family = done->family;
	j->ip_proto = done->ip_proto;
	j->internal_port = done->internal_port;
	j->ext_port = done->out_port;
	memcpy(j->client, done->client, sizeof(j->client));
	if (post(p, j) < 0)
		pm_log(pm_server_client(s), PCPMAP_LOG_WARNING,
		       "UPnP: could not give back port %u that mapping %llu no longer tracks", done->out_port,
		       (unsigned long long)done->id);
}

static void deliver_mapping(struct pm_server *s, const struct upnp_job *j)
{
	pcpmap_client *c = pm_server_client(s);
	if (j->release) {
		pm_log(c, PCPMAP_LOG_DEBUG, "UPnP: port %u of mapping %llu given back (code %d)", j->ext_port,
		       (unsigned long long)j->id, j->code);
		return;
	}
	struct pm_mapping *m = pm_server_find_mapping(s, j->id);
	if (!m) {
		bool moved = pm_client_find_mapping(c, j->id) != NULL;
		pm_log(c, PCPMAP_LOG_DEBUG, "UPnP: result for mapping %llu dropped: the mapping %s",
		       (unsigned long long)j->id, moved ? "moved to another protocol" : "is gone");
		if (moved && !j->del && j->code == 0)
			release_grant(s, j);
		return;
	}
	struct pm_req mr;
	pm_mapping_req(m, &mr);
	if (mr.del != j->del) {
		/* A create answered after the delete was queued, or a fire-and-forget delete (pair roll-back,
		 * PREFER_FAILURE release): nothing the mapping waits for. */
		pm_log(c, PCPMAP_LOG_DEBUG, "UPnP: stale %s result for mapping %llu (%s) ignored",
		       j->del ? "delete" : "create", (unsigned long long)j->id, pcpmap_state_name(mr.state));
		if (!j->del && j->code == 0)
			release_grant(s, j);
		return;
	}
	if (transport_error(j->code)) {
		pm_server_on_unreachable(s, j->code);
		return;
	}
	if (j->detail[0])
		pm_mapping_note_detail(m, j->detail);
	struct upnp_verdict v;
	upnp_classify(j->code, j->del, j->prefer_failure, &v);
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	r.kind = v.kind;
	r.error = v.error;
	r.hold_s = v.hold_s;
	r.result_code = j->code > 0 ? j->code : 0;
	if (v.kind == PM_REPLY_SUCCESS && !j->del) {
		r.lifetime = j->out_lifetime;
		r.ext_port = j->out_port;
		if (!j->out_ext[0] || pcp_addr_from_string(j->out_ext, &r.ext_addr) < 0)
			pcp_addr_any(&r.ext_addr, mr.family);
	}
	pm_mapping_on_reply(m, &r);
}

static void deliver(struct pm_server *s, struct upnp_priv *p, const struct upnp_job *j)
{
	pcpmap_client *c = pm_server_client(s);
	const char *peer = j->igd_url[0] ? j->igd_url : pm_server_name(s);
	if (j->igd_url[0]) {
		p->igd_seen = true;
		/* Remembered before the result reaches the engine, whose choice stores it. */
		pm_server_upnp_found(s, j->igd_url, j->igd_st, j->igd_lan);
	}
	for (unsigned i = 0; i < j->n_trace && i < UPNP_TRACE_MAX; i++)
		pm_trace(c, true, PCPMAP_PROTO_UPNP, peer, NULL, 0, j->trace[i]);
	log_notes(s, p, j);
	struct pcpmap_server_info info;
	switch (j->op) {
	case UPNP_OP_PROBE:
		fill_info(s, j, &info);
		info.error = j->code;
		pm_server_on_probe(s, j->code, &info);
		break;
	case UPNP_OP_ANNOUNCE:
		if (transport_error(j->code)) {
			pm_server_on_unreachable(s, j->code); /* reports the announcement's failure too */
			break;
		}
		fill_info(s, j, &info);
		if (j->code) {
			struct upnp_verdict v;
			upnp_classify(j->code, false, false, &v);
			info.error = v.error;
		}
		pm_server_on_announce(s, &info);
		break;
	case UPNP_OP_MAP:
	case UPNP_OP_UNMAP:
	case UPNP_OP_FAIL:
		deliver_mapping(s, j);
		break;
	}
}

static void upnp_readable(struct pm_server *s, int fd, uint64_t now)
{
	struct upnp_priv *p = pm_server_priv(s);
	struct upnp_job *j;
	(void)fd;
	(void)now;
	if (!p)
		return;
	upnp_queue_clear(&p->q);
	p->delivering++;
	/* In order, each exactly once. A delivery may close this server (the engine drops a protocol): stop
	 * then, without touching s again. */
	while (!p->closed && (j = upnp_queue_take(&p->q))) {
		deliver(s, p, j);
		free(j);
	}
	p->delivering--;
	if (p->closed && !p->delivering)
		free(p);
}

const struct pm_backend_ops pm_upnp_backend = {
	.proto = PCPMAP_PROTO_UPNP,
	.name = "UPnP",
	.irt_us = UPNP_IRT_US,
	.mrt_us = UPNP_MRT_US,
	.server_open = upnp_server_open,
	.server_close = upnp_server_close,
	.send = upnp_send,
	.readable = upnp_readable,
	.announce = upnp_announce,
	.probe = upnp_probe,
};
