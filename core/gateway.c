/* Gateways and the fallback policy: which protocol a gateway speaks is learned once (PCP first, NAT-PMP
 * and UPnP probed in parallel), remembered, and re-learned after failures. Backends only report what they
 * saw; the choice is made here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gwcache.h"
#include "internal.h"
#include "text/text.h"

#define GRACE_MIN_US        20000u /* wait at least this long for a better protocol after a worse one answered */
#define GRACE_MAX_US        1000000u /* ... and at most this long */
/* UPnP discovery is heavier (multicast, HTTP, a worker thread): it starts this long after PCP and NAT-PMP
 * unless they already failed, so a PCP gateway never pays for it and a UPnP-only one pays 50 ms at most. */
#define UPNP_PROBE_DELAY_US 50000u

/* What each protocol can express beyond a plain TCP/UDP MAP. */
enum pm_cap {
	PM_CAP_PEER = 1u << 0,
	PM_CAP_THIRD_PARTY = 1u << 1,
	PM_CAP_FILTER = 1u << 2,
	PM_CAP_PREFER_FAILURE = 1u << 3,
	PM_CAP_DESCRIPTION = 1u << 4,
	PM_CAP_IPV6 = 1u << 5,
	PM_CAP_ALL_PROTOCOLS = 1u << 6,
};

static unsigned proto_caps(enum pcpmap_proto p)
{
	switch (p) {
	case PCPMAP_PROTO_PCP:
		return ~0u;
	case PCPMAP_PROTO_UPNP:
		/* AddPortMapping names the internal client and fails on a taken port; pinholes for IPv6. */
		return PM_CAP_THIRD_PARTY | PM_CAP_PREFER_FAILURE | PM_CAP_DESCRIPTION | PM_CAP_IPV6;
	default:
		return 0;
	}
}

static unsigned mapping_needs(const struct pm_mapping *m)
{
	unsigned need = 0;
	if (m->kind == PCPMAP_KIND_PEER)
		need |= PM_CAP_PEER;
	if (m->has_third_party)
		need |= PM_CAP_THIRD_PARTY;
	if (m->n_filters)
		need |= PM_CAP_FILTER;
	/* A pair's second half is pinned with PREFER_FAILURE by pcpmap itself, and the assigned port is checked
	 * on every protocol: it needs no protocol support. */
	if (m->prefer_failure && !m->pair_owner)
		need |= PM_CAP_PREFER_FAILURE;
	if (m->description)
		need |= PM_CAP_DESCRIPTION;
	if (m->family == AF_INET6)
		need |= PM_CAP_IPV6;
	if (m->ip_proto == 0)
		need |= PM_CAP_ALL_PROTOCOLS;
	return need;
}

static void caps_string(unsigned caps, char *buf, size_t len)
{
	static const char *const names[] = { "PEER",        "THIRD_PARTY", "FILTER",       "PREFER_FAILURE",
					     "DESCRIPTION", "IPv6",        "all-protocols" };
	size_t off = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(caps & (1u << i)))
			continue;
		int n = snprintf(buf + off, len - off, "%s%s", off ? ", " : "", names[i]);
		if (n < 0 || (size_t)n >= len - off)
			return;
		off += (size_t)n;
	}
}

static const char *pstat_name(enum pm_pstat st)
{
	switch (st) {
	case PM_P_UNKNOWN:
		return "unknown";
	case PM_P_PROBING:
		return "probing";
	case PM_P_YES:
		return "yes";
	case PM_P_NO:
		return "no";
	}
	return "?";
}

static uint32_t gw_mask(const struct pm_gw *gw)
{
	uint32_t mask = 0;
	for (size_t i = 0; i < 3; i++) {
		enum pcpmap_proto p = gw->client->order[i];
		if ((gw->client->cfg.protocols & PCPMAP_PROTO_BIT(p)) && gw->client->backends[p])
			mask |= PCPMAP_PROTO_BIT(p);
	}
	/* NAT-PMP and UPnP carry IPv4 only; pinholes over UPnP need an IPv6 gateway. */
	if (gw->addr.u.sa.sa_family == AF_INET6)
		mask &= ~PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP);
	return mask;
}

static void server_error_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	struct pm_server *s = arg;
	pm_server_on_unreachable(s, s->pending_error);
}

void pm_server_defer_error(struct pm_server *s, int err)
{
	s->pending_error = err;
	sched_arm(&s->client->sched, &s->t_error, s->client->now);
}

static void server_free(struct pm_server *s)
{
	pcpmap_client *c = s->client;
	if (c->announce.server == s) {
		c->announce.server = NULL;
		sched_cancel(&c->sched, &c->announce.timer);
	}
	sched_cancel(&c->sched, &s->t_error);
	if (s->ops && s->ops->server_close)
		s->ops->server_close(s);
	if (s->gw)
		s->gw->srv[s->ops->proto] = NULL;
	free(s);
}

void pm_gw_close_server(struct pm_gw *gw, enum pcpmap_proto p)
{
	if (gw->srv[p])
		server_free(gw->srv[p]);
}

void pm_gw_free(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	for (int p = 0; p < PM_NPROTO; p++)
		if (gw->srv[p])
			server_free(gw->srv[p]);
	sched_cancel(&c->sched, &gw->t_decide);
	sched_cancel(&c->sched, &gw->t_upnp);
	pm_gw_memo_close(gw);
	pm_list_del(&gw->link);
	free(gw);
}

void pm_client_free_gateways(pcpmap_client *c)
{
	while (!pm_list_empty(&c->gateways)) {
		struct pm_gw *gw = pm_container_of(c->gateways.next, struct pm_gw, link);
		for (int p = 0; p < PM_NPROTO; p++)
			if (gw->srv[p])
				server_free(gw->srv[p]);
		sched_cancel(&c->sched, &gw->t_decide);
		sched_cancel(&c->sched, &gw->t_upnp);
		pm_gw_memo_close(gw);
		pm_list_del(&gw->link);
		free(gw);
	}
}

static void decide_timer(struct sched_timer *t, uint64_t now, void *arg);
static void upnp_timer(struct sched_timer *t, uint64_t now, void *arg);

int pm_client_gateway_for(pcpmap_client *c, int family, struct pm_gw **ret)
{
	struct pm_sockaddr sa;
	int r;

	if (c->cfg.server) {
		r = pm_parse_server(c->cfg.server, &sa);
		if (r < 0)
			return r;
	} else {
		/* The mapping's family picks the transport first (a home router cannot map IPv4 through its IPv6
		 * address); with no preference the IPv6 gateway comes first, as the seed design chose. */
		int order[2];
		if (c->cfg.transport_family) {
			order[0] = c->cfg.transport_family;
			order[1] = 0;
		} else if (family == AF_INET) {
			order[0] = AF_INET;
			order[1] = AF_INET6;
		} else {
			order[0] = AF_INET6;
			order[1] = AF_INET;
		}
		struct pm_gateway g;
		r = -ENETUNREACH;
		for (int i = 0; i < 2 && order[i]; i++) {
			r = c->default_gateway(order[i], &g);
			if (r == 0)
				break;
		}
		if (r < 0)
			return r == -ENOENT ? -ENETUNREACH : r;
		r = pm_sockaddr_from_gateway(&sa, &g, PCP_SERVER_PORT);
		if (r < 0)
			return r;
	}

	for (struct pm_list *l = c->gateways.next; l != &c->gateways; l = l->next) {
		struct pm_gw *gw = pm_container_of(l, struct pm_gw, link);
		if (gw->addr.len == sa.len && memcmp(&gw->addr.u, &sa.u, sa.len) == 0) {
			*ret = gw;
			return 0;
		}
	}
	struct pm_gw *gw = calloc(1, sizeof(*gw));
	if (!gw)
		return -ENOMEM;
	gw->client = c;
	gw->addr = sa;
	pm_sockaddr_to_string(&sa, gw->name, sizeof(gw->name));
	sched_timer_init(&gw->t_decide, decide_timer, gw, "gateway-decide");
	sched_timer_init(&gw->t_upnp, upnp_timer, gw, "gateway-upnp-probe");
	pm_list_init(&gw->link);
	pm_list_add_tail(&c->gateways, &gw->link);
	pm_gw_memo_open(gw);
	pm_resilience_start_soon(c);
	*ret = gw;
	return 0;
}

int pm_gw_server(struct pm_gw *gw, enum pcpmap_proto proto, struct pm_server **ret)
{
	pcpmap_client *c = gw->client;
	if ((unsigned)proto >= PM_NPROTO)
		return -EINVAL;
	if (gw->srv[proto]) {
		*ret = gw->srv[proto];
		return 0;
	}
	const struct pm_backend_ops *ops = c->backends[proto];
	if (!ops)
		return -EPROTONOSUPPORT;
	struct pm_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->client = c;
	s->gw = gw;
	s->addr = gw->addr;
	s->ops = ops;
	sched_timer_init(&s->t_error, server_error_timer, s, "server-error");
	pm_text_copy(s->name, sizeof(s->name), gw->name);
	pm_list_init(&s->link);
	int r = ops->server_open(s);
	if (r < 0) {
		pm_log(c, PCPMAP_LOG_WARNING, "%s server %s: %s", ops->name, s->name, pcpmap_strerror(r));
		free(s);
		return r;
	}
	gw->srv[proto] = s;
	pm_log(c, PCPMAP_LOG_DEBUG, "server %s: opened (%s)", s->name, ops->name);
	*ret = s;
	return 0;
}

int pm_client_server_for(pcpmap_client *c, int family, enum pcpmap_proto proto, struct pm_server **ret)
{
	struct pm_gw *gw;
	int r = pm_client_gateway_for(c, family, &gw);
	if (r < 0)
		return r;
	if (proto == PCPMAP_PROTO_NONE)
		proto = gw->chosen != PCPMAP_PROTO_NONE ? gw->chosen : PCPMAP_PROTO_PCP;
	return pm_gw_server(gw, proto, ret);
}

/* Starts the probes of the protocols that learn without a mapping (NAT-PMP, UPnP) in parallel with the
 * first PCP request, so a gateway that lacks PCP costs no serial timeout. */
static void probe_one(struct pm_gw *gw, enum pcpmap_proto p)
{
	const struct pm_backend_ops *ops = gw->client->backends[p];
	if (!ops->probe) {
		gw->status[p] = PM_P_PROBING; /* its first mapping request is the probe */
		return;
	}
	struct pm_server *s;
	int r = pm_gw_server(gw, p, &s);
	if (r == 0)
		r = ops->probe(s);
	if (r < 0) {
		gw->status[p] = PM_P_NO;
		gw->err[p] = r;
	} else {
		gw->status[p] = PM_P_PROBING;
	}
}

static bool udp_protocols_failed(const struct pm_gw *gw, uint32_t mask)
{
	for (enum pcpmap_proto p = PCPMAP_PROTO_PCP; p <= PCPMAP_PROTO_NATPMP; p++)
		if ((mask & PCPMAP_PROTO_BIT(p)) && gw->status[p] != PM_P_NO)
			return false;
	return true;
}

/* Protocols whose mapping requests are their probe (PCP) are marked first, so the first request goes out
 * before any probe packet: a single-threaded server (miniupnpd) answers in arrival order, and a NAT-PMP
 * address request sent first delayed every cold PCP mapping by one server turn. */
static void gw_probe_mark(struct pm_gw *gw)
{
	uint32_t mask = gw_mask(gw);
	if (!gw->probe_started)
		gw->probe_started = gw->client->now;
	for (enum pcpmap_proto p = PCPMAP_PROTO_PCP; p <= PCPMAP_PROTO_NATPMP; p++)
		if ((mask & PCPMAP_PROTO_BIT(p)) && gw->status[p] == PM_P_UNKNOWN &&
		    !gw->client->backends[p]->probe)
			gw->status[p] = PM_P_PROBING;
}

static void gw_probe(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	uint32_t mask = gw_mask(gw);
	gw_probe_mark(gw);
	for (enum pcpmap_proto p = PCPMAP_PROTO_PCP; p <= PCPMAP_PROTO_NATPMP; p++)
		if ((mask & PCPMAP_PROTO_BIT(p)) && gw->status[p] == PM_P_UNKNOWN)
			probe_one(gw, p);
	if ((mask & PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP)) && gw->status[PCPMAP_PROTO_UPNP] == PM_P_UNKNOWN) {
		if (udp_protocols_failed(gw, mask) || c->order[0] == PCPMAP_PROTO_UPNP)
			probe_one(gw, PCPMAP_PROTO_UPNP);
		else if (!sched_armed(&gw->t_upnp))
			sched_arm(&c->sched, &gw->t_upnp, gw->probe_started + UPNP_PROBE_DELAY_US);
	}
}

static void upnp_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	struct pm_gw *gw = arg;
	if (gw->chosen == PCPMAP_PROTO_NONE && gw->status[PCPMAP_PROTO_UPNP] == PM_P_UNKNOWN &&
	    (gw_mask(gw) & PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP)))
		probe_one(gw, PCPMAP_PROTO_UPNP);
}

static bool mapping_movable(const struct pm_mapping *m)
{
	return m->state == PCPMAP_STATE_NOT_SENT || m->state == PCPMAP_STATE_WAIT_RESP ||
	       m->state == PCPMAP_STATE_ERROR_WAIT_RESEND;
}

/* The protocol of a mapping on this gateway: the learned one if the mapping allows it, else the first
 * allowed protocol that may still answer. */
/* Whether protocol p can carry the mapping, dropping only what the request allows to drop (as fits()). */
static bool expressible(const struct pm_mapping *m, enum pcpmap_proto p)
{
	const unsigned droppable = PM_CAP_FILTER | PM_CAP_PREFER_FAILURE | PM_CAP_DESCRIPTION;
	unsigned missing = mapping_needs(m) & ~proto_caps(p);
	return (missing & ~(m->allow_degrade ? droppable : PM_CAP_DESCRIPTION)) == 0;
}

/* The learned protocol if allowed, else the first allowed one that may still answer. */
static enum pcpmap_proto pick_any(const struct pm_gw *gw, uint32_t mask, bool *ret_wait)
{
	if (gw->chosen && (mask & PCPMAP_PROTO_BIT(gw->chosen)))
		return gw->chosen;
	for (size_t i = 0; i < 3; i++) {
		enum pcpmap_proto p = gw->client->order[i];
		if (!(mask & PCPMAP_PROTO_BIT(p)) || gw->status[p] == PM_P_NO)
			continue;
		if (gw->status[p] == PM_P_YES || !gw->client->backends[p]->probe)
			return p;
		*ret_wait = true;
		return PCPMAP_PROTO_NONE;
	}
	return PCPMAP_PROTO_NONE;
}

/* The protocol of a mapping on this gateway: the learned one if the mapping allows it and it can carry the
 * mapping, else the first allowed protocol that may still answer and can carry it (a PEER request waits for
 * PCP rather than fail on a NAT-PMP that merely answered first). When none can, the learned one, so the
 * mapping fails saying why. */
static enum pcpmap_proto pick_for(const struct pm_gw *gw, const struct pm_mapping *m, bool *ret_wait)
{
	uint32_t mask = gw_mask(gw) & m->protocols;
	enum pcpmap_proto fallback = PCPMAP_PROTO_NONE;
	bool can = false;
	*ret_wait = false;
	for (size_t i = 0; i < 3; i++) {
		enum pcpmap_proto p = gw->client->order[i];
		can |= (mask & PCPMAP_PROTO_BIT(p)) && gw->status[p] != PM_P_NO && expressible(m, p);
	}
	/* No allowed protocol can carry it: the first that answers says so (fits() fails it for good). */
	if (!can)
		return pick_any(gw, mask, ret_wait);
	if (gw->chosen && (mask & PCPMAP_PROTO_BIT(gw->chosen))) {
		if (expressible(m, gw->chosen))
			return gw->chosen;
		fallback = gw->chosen;
	}
	for (size_t i = 0; i < 3; i++) {
		enum pcpmap_proto p = gw->client->order[i];
		if (!(mask & PCPMAP_PROTO_BIT(p)) || gw->status[p] == PM_P_NO)
			continue;
		if (!expressible(m, p)) {
			if (gw->status[p] == PM_P_YES && fallback == PCPMAP_PROTO_NONE)
				fallback = p;
			continue;
		}
		if (gw->status[p] == PM_P_YES)
			return p;
		/* PCP requests probe by themselves; the others must answer their probe first. */
		if (!gw->client->backends[p]->probe)
			return p;
		*ret_wait = true;
		return PCPMAP_PROTO_NONE;
	}
	return fallback;
}

void pm_gw_describe(const struct pm_gw *gw, uint32_t mask, char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "tried");
	for (size_t i = 0; i < 3 && off < len; i++) {
		enum pcpmap_proto p = gw->client->order[i];
		if (!(mask & PCPMAP_PROTO_BIT(p)) || !gw->client->backends[p])
			continue;
		const char *why = "no answer";
		if (gw->status[p] == PM_P_YES)
			why = "answers";
		else if (gw->status[p] == PM_P_UNKNOWN)
			why = "not yet";
		else if (gw->status[p] == PM_P_NO && gw->err[p] == -ECONNREFUSED)
			why = "port unreachable";
		else if (gw->status[p] == PM_P_NO && gw->err[p] == -EAFNOSUPPORT)
			why = "not for this address family";
		else if (gw->status[p] == PM_P_NO && gw->err[p] && gw->err[p] != -ETIMEDOUT)
			why = pcpmap_strerror(gw->err[p]);
		int n = snprintf(buf + off, len - off, "%s %s (%s)", off > 5 ? "," : "", pcpmap_proto_name(p),
				 why);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (off >= len && len)
		buf[len - 1] = '\0';
}

static void fail_mapping(struct pm_mapping *m, int err)
{
	struct pm_gw *gw = m->gw;
	pm_mapping_describe_gw(m);
	/* Nothing answers: retry with a doubling backoff (3 s to 5 min), re-learning the gateway each time. */
	uint32_t hold = 3u << (gw->fail_count < 7 ? gw->fail_count : 7);
	m->error = err;
	m->hold_s = hold > 300 ? 300 : hold;
	pm_mapping_fsm(m, FSM_EV_ERR_RETRY);
}

/* Checks that protocol p can express the mapping; drops what may be dropped. Returns false (and fails the
 * mapping) when it cannot. */
static bool fits(struct pm_mapping *m, enum pcpmap_proto p)
{
	const unsigned droppable = PM_CAP_FILTER | PM_CAP_PREFER_FAILURE | PM_CAP_DESCRIPTION;
	unsigned missing = mapping_needs(m) & ~proto_caps(p);
	char names[96];
	if (!missing)
		return true;
	caps_string(missing, names, sizeof(names));
	/* A description is advice, never a reason to fail. */
	if ((missing & ~(m->allow_degrade ? droppable : PM_CAP_DESCRIPTION)) == 0) {
		if (missing & PM_CAP_FILTER) {
			free(m->filters);
			m->filters = NULL;
			m->n_filters = 0;
		}
		if (missing & PM_CAP_PREFER_FAILURE)
			m->prefer_failure = false;
		if (missing & PM_CAP_DESCRIPTION) {
			free(m->description);
			m->description = NULL;
		}
		pm_mapping_set_detail(m, "%s cannot express %s: mapped without it", pcpmap_proto_name(p),
				      names);
		pm_log(m->client, PCPMAP_LOG_NOTICE, "mapping %llu: %s", (unsigned long long)m->id,
		       m->detail ? m->detail : "");
		return true;
	}
	pm_mapping_set_detail(m, "the gateway speaks %s, which cannot express %s%s", pcpmap_proto_name(p),
			      names, (missing & ~droppable) ? "" : " (allow degrading to map without it)");
	m->error = -EOPNOTSUPP;
	m->proto = p;
	pm_mapping_fsm(m, FSM_EV_ERR_FATAL);
	return false;
}

static void attach(struct pm_mapping *m);

#define DELETE_WAIT_US 100000u

/* A delete of the same internal port in flight on the mapping's server, for a protocol without nonces. */
static bool delete_pending(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	if (!m->server || m->server->ops->proto == PCPMAP_PROTO_PCP)
		return false;
	const struct pm_server *s = m->server;
	for (size_t i = 0; i < sizeof(s->recent_del) / sizeof(s->recent_del[0]); i++)
		if (s->recent_del[i].until > c->now && s->recent_del[i].ip_proto == m->ip_proto &&
		    s->recent_del[i].internal_port == m->internal_port)
			return true;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		const struct pm_mapping *d = pm_container_of(l, struct pm_mapping, link);
		if (d != m && d->server == m->server && d->state == PCPMAP_STATE_DELETING &&
		    d->ip_proto == m->ip_proto && d->internal_port == m->internal_port)
			return true;
	}
	return false;
}

void pm_gw_attach(struct pm_mapping *m)
{
	struct pm_gw *gw = m->gw;
	/* A remembered gateway: straight to its protocol, the request itself verifies it. */
	if (gw->chosen || pm_gw_memo_warm_start(gw)) {
		attach(m);
		return;
	}
	/* The request first, then the probes of the other protocols (in parallel with its answer). */
	gw_probe_mark(gw);
	attach(m);
	if (!gw->chosen)
		gw_probe(gw);
}

static void attach(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	struct pm_gw *gw = m->gw;
	bool wait;

	enum pcpmap_proto p = pick_for(gw, m, &wait);
	if (p != PCPMAP_PROTO_NONE) {
		struct pm_server *s;
		/* A grant of the old protocol is not carried over: it is given back where it was made (even when
		 * the new protocol cannot express the mapping and it fails), and asked for anew here. */
		if (m->server && m->server->ops->proto != p && m->have_grant)
			pm_mapping_drop_grant(m);
		if (!fits(m, p))
			return;
		int r = pm_gw_server(gw, p, &s);
		if (r < 0) {
			gw->status[p] = PM_P_NO;
			gw->err[p] = r;
			pm_gw_attach(m);
			return;
		}
		bool moved = m->server && m->server != s;
		pm_mapping_set_server(m, s);
		if ((m->state == PCPMAP_STATE_NOT_SENT || (moved && m->state == PCPMAP_STATE_WAIT_RESP)) &&
		    delete_pending(m)) {
			/* NAT-PMP and UPnP name a mapping by its ports: a create sent while a delete of the same
			 * internal port is in flight could be overtaken by it and deleted. Start once it is done
			 * (a request moving here from another protocol waits too). */
			if (m->state == PCPMAP_STATE_WAIT_RESP)
				pm_mapping_fsm(m, FSM_EV_PARK);
			m->restart_pending = true;
			sched_arm(&c->sched, &m->t_main, c->now + DELETE_WAIT_US);
			return;
		}
		if (m->state == PCPMAP_STATE_NOT_SENT)
			pm_mapping_fsm(m, FSM_EV_START);
		else if (m->state == PCPMAP_STATE_ERROR_WAIT_RESEND)
			pm_mapping_fsm(m, FSM_EV_HOLD_TIMER);
		else if (moved)
			pm_mapping_fsm(m, FSM_EV_SWITCH);
		return;
	}
	if (wait) {
		/* Parked until a probe answers; a deadline still applies. The protocol it waits for may never
		 * have been asked (the gateway's choice was made without it): ask now. */
		uint32_t mask = gw_mask(gw) & m->protocols;
		for (enum pcpmap_proto p2 = PCPMAP_PROTO_PCP; p2 <= PCPMAP_PROTO_UPNP; p2++)
			if ((mask & PCPMAP_PROTO_BIT(p2)) && gw->status[p2] == PM_P_UNKNOWN &&
			    expressible(m, p2))
				probe_one(gw, p2);
		if (m->state != PCPMAP_STATE_NOT_SENT)
			pm_mapping_fsm(m, FSM_EV_PARK);
		if (m->deadline_us)
			sched_arm(&c->sched, &m->t_main, m->first_send + m->deadline_us);
		pm_log(c, PCPMAP_LOG_DEBUG, "mapping %llu: waiting for the gateway's protocols",
		       (unsigned long long)m->id);
		return;
	}
	/* No allowed protocol answers at this gateway. */
	int err = -EPROTONOSUPPORT;
	for (size_t i = 0; i < 3; i++)
		if (gw->err[gw->client->order[i]] &&
		    (m->protocols & PCPMAP_PROTO_BIT(gw->client->order[i]))) {
			err = gw->err[gw->client->order[i]];
			break;
		}
	fail_mapping(m, err);
}

static void choose(struct pm_gw *gw, enum pcpmap_proto p)
{
	pcpmap_client *c = gw->client;
	if (gw->chosen != p)
		pm_log(c, PCPMAP_LOG_INFO, "gateway %s: using %s (PCP %s, NAT-PMP %s, UPnP %s)", gw->name,
		       pcpmap_proto_name(p), pstat_name(gw->status[PCPMAP_PROTO_PCP]),
		       pstat_name(gw->status[PCPMAP_PROTO_NATPMP]),
		       pstat_name(gw->status[PCPMAP_PROTO_UPNP]));
	gw->chosen = p;
	gw->fail_count = 0;
	sched_cancel(&c->sched, &gw->t_decide);
	pm_gw_memo_chosen(gw, p);
}

/* Re-evaluates every mapping of the gateway that is still looking for a protocol after the gateway's
 * knowledge changed. A mapping waiting out an error hold keeps waiting unless its protocol is gone. */
static void reattach_all(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	struct pm_walk walk;
	pm_walk_begin(c, &walk);
	for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
		if (m->gw != gw || !mapping_movable(m))
			continue;
		bool wait;
		enum pcpmap_proto p = pick_for(gw, m, &wait);
		bool server_gone = m->server && gw->status[m->server->ops->proto] == PM_P_NO;
		if (m->state == PCPMAP_STATE_ERROR_WAIT_RESEND && !server_gone)
			continue;
		/* A request in flight on a protocol that answers is left to finish there: moving it would leave
		 * whatever the gateway grants it unknown to us. */
		bool in_flight = m->state == PCPMAP_STATE_WAIT_RESP && m->server &&
				 gw->status[m->server->ops->proto] == PM_P_YES;
		if (p != PCPMAP_PROTO_NONE) {
			if (m->state == PCPMAP_STATE_NOT_SENT || !m->server ||
			    (m->server->ops->proto != p && !in_flight))
				pm_gw_attach(m);
		} else if (wait) {
			if (m->state != PCPMAP_STATE_NOT_SENT && server_gone)
				pm_gw_attach(m);
		} else if (m->state != PCPMAP_STATE_ERROR_WAIT_RESEND || server_gone) {
			pm_gw_attach(m);
		}
	}
}

/* Requests of better (still possible) protocols than p that wait for an answer on this gateway. */
static unsigned better_in_flight(const struct pm_gw *gw, enum pcpmap_proto p)
{
	pcpmap_client *c = gw->client;
	unsigned n = 0;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		const struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (m->gw == gw && m->state == PCPMAP_STATE_WAIT_RESP && m->server &&
		    m->server->ops->proto != p && gw->status[m->server->ops->proto] != PM_P_NO)
			n++;
	}
	return n;
}

static void decide(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	uint32_t mask = gw_mask(gw);
	bool pending_better = false;

	if (gw->chosen == PCPMAP_PROTO_NONE && (mask & PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP)) &&
	    gw->status[PCPMAP_PROTO_UPNP] == PM_P_UNKNOWN && gw->probe_started &&
	    udp_protocols_failed(gw, mask)) {
		sched_cancel(&c->sched, &gw->t_upnp);
		probe_one(gw, PCPMAP_PROTO_UPNP);
	}

	for (size_t i = 0; i < 3; i++) {
		enum pcpmap_proto p = gw->client->order[i];
		if (!(mask & PCPMAP_PROTO_BIT(p)))
			continue;
		if (gw->status[p] == PM_P_YES) {
			if (pending_better) {
				/* A better protocol may still answer: give it a moment, scaled to this RTT and to the
				 * requests it has in flight (a single-threaded server answers a burst one by one). */
				uint64_t grace = (4ull + better_in_flight(gw, p)) * gw->rtt_us[p];
				grace = grace < GRACE_MIN_US   ? GRACE_MIN_US
					: grace > GRACE_MAX_US ? GRACE_MAX_US
							       : grace;
				uint64_t at = gw->yes_at[p] + grace;
				if (c->now < at) {
					sched_arm(&c->sched, &gw->t_decide, at);
					return;
				}
			}
			choose(gw, p);
			reattach_all(gw);
			return;
		}
		if (gw->status[p] != PM_P_NO)
			pending_better = true;
	}
	if (!pending_better)
		pm_log(c, PCPMAP_LOG_NOTICE, "gateway %s: no port-mapping protocol answers", gw->name);
	reattach_all(gw);
	if (!pending_better) {
		gw->fail_count++;
		/* Re-learn from scratch at the next attempt. */
		gw->chosen = PCPMAP_PROTO_NONE;
		for (int p = 0; p < PM_NPROTO; p++)
			gw->status[p] = PM_P_UNKNOWN;
		gw->probe_started = 0;
	}
}

void pm_gw_relearn(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	gw->chosen = PCPMAP_PROTO_NONE;
	for (int p = 0; p < PM_NPROTO; p++)
		gw->status[p] = PM_P_UNKNOWN;
	gw->probe_started = 0;
	sched_cancel(&c->sched, &gw->t_decide);
	reattach_all(gw);
}

static void decide_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	decide(arg);
}

static bool set_status(struct pm_gw *gw, enum pcpmap_proto p, enum pm_pstat st, int err, uint32_t rtt_us)
{
	if (!gw || (unsigned)p >= PM_NPROTO)
		return false;
	if (gw->status[p] == st)
		return false;
	gw->status[p] = st;
	gw->err[p] = err;
	if (st == PM_P_YES) {
		gw->yes_at[p] = gw->client->now;
		gw->rtt_us[p] = rtt_us;
	}
	pm_log(gw->client, PCPMAP_LOG_DEBUG, "gateway %s: %s %s%s%s", gw->name, pcpmap_proto_name(p),
	       pstat_name(st), err ? ": " : "", err ? pcpmap_strerror(err) : "");
	return true;
}

void pm_server_on_probe(struct pm_server *s, int err, const struct pcpmap_server_info *info)
{
	struct pm_gw *gw = s->gw;
	pm_probe_on_answer(s, s->ops->proto, err, info);
	if (set_status(gw, s->ops->proto, err ? PM_P_NO : PM_P_YES, err, info ? info->rtt_usec : 0))
		decide(gw);
}

void pm_server_on_reachable(struct pm_server *s)
{
	s->unreachable_count = 0;
	s->last_error = 0;
	pm_gw_memo_answered(s);
	if (s->gw && s->gw->status[s->ops->proto] != PM_P_YES) {
		uint64_t rtt =
		    s->client->now - (s->gw->probe_started ? s->gw->probe_started : s->client->now);
		set_status(s->gw, s->ops->proto, PM_P_YES, 0, (uint32_t)rtt);
		decide(s->gw);
	}
}

void pm_server_on_unreachable(struct pm_server *s, int err)
{
	pcpmap_client *c = s->client;
	struct pm_gw *gw = s->gw;
	enum pcpmap_proto p = s->ops->proto;
	s->last_error = err;
	s->unreachable_count++;
	pm_probe_on_answer(s, p, err, NULL);
	pm_gw_memo_failed(s);

	if (c->announce.server == s) {
		struct pcpmap_server_info info;
		memset(&info, 0, sizeof(info));
		pm_text_copy(info.server, sizeof(info.server), s->name);
		info.error = err;
		pm_server_on_announce(s, &info);
	}
	/* Deletes in flight have nobody to talk to. */
	struct pm_walk walk;
	pm_walk_begin(c, &walk);
	for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
		if (m->server == s && m->state == PCPMAP_STATE_DELETING) {
			m->error = err;
			pm_mapping_fsm(m, FSM_EV_GIVE_UP);
		}
	}
	if (!gw)
		return;
	pm_log(c, PCPMAP_LOG_INFO, "%s server %s: %s", s->ops->name, s->name, pcpmap_strerror(err));
	/* PCP and NAT-PMP share UDP port 5351: port unreachable for one is port unreachable for both. */
	bool changed = set_status(gw, p, PM_P_NO, err, 0);
	if (p == PCPMAP_PROTO_PCP || p == PCPMAP_PROTO_NATPMP) {
		enum pcpmap_proto other = p == PCPMAP_PROTO_PCP ? PCPMAP_PROTO_NATPMP : PCPMAP_PROTO_PCP;
		if (gw->status[other] != PM_P_YES)
			changed |= set_status(gw, other, PM_P_NO, err, 0);
	}
	if (gw->chosen == p) {
		/* The protocol that worked stopped answering: re-learn the gateway. */
		gw->chosen = PCPMAP_PROTO_NONE;
		sched_cancel(&c->sched, &gw->t_decide);
		changed = true;
	}
	/* A second ICMP error for what is already known changes nothing. */
	if (changed)
		decide(gw);
}

void pm_server_on_natpmp_only(struct pm_server *s)
{
	struct pm_gw *gw = s->gw;
	pm_log(s->client, PCPMAP_LOG_NOTICE, "gateway %s speaks NAT-PMP, not PCP", s->name);
	set_status(gw, PCPMAP_PROTO_PCP, PM_P_NO, -EPROTONOSUPPORT, 0);
	/* The reply itself proves NAT-PMP: no need to wait for its probe (RFC 6887 9). */
	if (gw && (gw_mask(gw) & PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP)))
		set_status(
		    gw, PCPMAP_PROTO_NATPMP, PM_P_YES, 0,
		    (uint32_t)(s->client->now - (gw->probe_started ? gw->probe_started : s->client->now)));
	if (gw)
		decide(gw);
}

void pm_server_on_unsupported_version(struct pm_server *s, uint8_t version)
{
	pm_log(s->client, PCPMAP_LOG_NOTICE, "gateway %s speaks PCP version %u, not %u", s->name, version,
	       PCP_VERSION);
	set_status(s->gw, PCPMAP_PROTO_PCP, PM_P_NO, -EPROTONOSUPPORT, 0);
	if (s->gw)
		decide(s->gw);
}
