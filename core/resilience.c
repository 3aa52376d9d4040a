/* Resilience: unsolicited announcements (PCP ANNOUNCE, NAT-PMP address notices) on port 5350, route and
 * address changes through rtnetlink, and paced re-creation of mappings a gateway lost. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define REMAP_INTERVAL_DEFAULT_US 50000u
#define REMAP_CWND_INIT           4.0
/* Answers slower than the first retransmission timer / 4 show a queue at the gateway: the window shrinks. */
#define REMAP_QUEUE_TARGET_DIV    4u
#define NETCHECK_DEBOUNCE_US      200000u /* netlink events come in bursts */

static void remap_timer(struct sched_timer *t, uint64_t now, void *arg);
static void netcheck_timer(struct sched_timer *t, uint64_t now, void *arg);
static void listen_timer(struct sched_timer *t, uint64_t now, void *arg);

void pm_resilience_init(pcpmap_client *c)
{
	c->ann_fd[0] = c->ann_fd[1] = -1;
	c->nl_fd = -1;
	sched_timer_init(&c->t_remap, remap_timer, c, "remap");
	c->remap.cwnd = REMAP_CWND_INIT;
	c->remap.ssthresh = 1e9;
	sched_timer_init(&c->t_netcheck, netcheck_timer, c, "netcheck");
	sched_timer_init(&c->t_listen, listen_timer, c, "listen");
}

void pm_resilience_fini(pcpmap_client *c)
{
	for (int i = 0; i < 2; i++)
		if (c->ann_fd[i] >= 0)
			close(c->ann_fd[i]);
	if (c->nl_fd >= 0)
		close(c->nl_fd);
	c->ann_fd[0] = c->ann_fd[1] = c->nl_fd = -1;
	sched_cancel(&c->sched, &c->t_remap);
	sched_cancel(&c->sched, &c->t_netcheck);
	sched_cancel(&c->sched, &c->t_listen);
}

static bool same_host(const struct pm_sockaddr *a, const struct pm_sockaddr *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
	return memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, sizeof(struct in6_addr)) == 0;
}

static uint16_t sockaddr_port(const struct pm_sockaddr *a)
{
	return ntohs(a->u.sa.sa_family == AF_INET ? a->u.in.sin_port : a->u.in6.sin6_port);
}

void pm_client_on_unsolicited(pcpmap_client *c, const uint8_t *buf, size_t len, const struct pm_sockaddr *src,
			      uint64_t now)
{
	struct pm_gw *gw = NULL;
	c->now = now;
	c->stats.received++;
	/* Only our own gateway may make us re-map: anyone on the link can send to 5350. A server sends from the
	 * port it serves on (RFC 6887 14.1, RFC 6886 3.2.1), so the source port must match too. */
	for (struct pm_list *l = c->gateways.next; l != &c->gateways; l = l->next) {
		struct pm_gw *g = pm_container_of(l, struct pm_gw, link);
		if (same_host(&g->addr, src) && sockaddr_port(&g->addr) == sockaddr_port(src)) {
			gw = g;
			break;
		}
	}
	char who[PM_SOCKADDR_STRLEN];
	if (pm_sockaddr_to_string(src, who, sizeof(who)) < 0)
		snprintf(who, sizeof(who), "?");
	if (!gw) {
		c->stats.dropped++;
		pm_log(c, PCPMAP_LOG_DEBUG, "announcement from %s, not a gateway of ours: dropped", who);
		return;
	}
	if (len >= PCP_HDR_LEN && buf[0] == PCP_VERSION) {
		struct pcp_msg m;
		struct pm_server *s = gw->srv[PCPMAP_PROTO_PCP];
		if (pcp_decode(buf, len, &c->codec, &m) < 0 || !m.response) {
			c->stats.dropped++;
			return;
		}
		if (m.opcode == PCP_OP_MAP || m.opcode == PCP_OP_PEER) {
			/* RFC 6887 14.2: an unsolicited MAP or PEER response updates the mapping it names. */
			if (s && s->ops->unsolicited)
				s->ops->unsolicited(s, buf, len);
			else
				c->stats.dropped++;
			return;
		}
		if (m.opcode != PCP_OP_ANNOUNCE || m.result != PCP_RES_SUCCESS) {
			c->stats.dropped++;
			return;
		}
		char d[96];
		snprintf(d, sizeof(d), "unsolicited ANNOUNCE epoch=%u", m.epoch);
		pm_trace(c, false, PCPMAP_PROTO_PCP, who, buf, len, d);
		pm_gw_on_announced(gw, s, m.epoch, false);
		return;
	}
	if (len == 12 && buf[0] == 0 && buf[1] == 128) {
		/* NAT-PMP external address notice (RFC 6886 3.2.1). */
		uint16_t result = (uint16_t)(buf[2] << 8 | buf[3]);
		uint32_t sssoe =
		    (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
		char d[96];
		snprintf(d, sizeof(d), "NAT-PMP address notice result=%u epoch=%u ext=%u.%u.%u.%u", result,
			 sssoe, buf[8], buf[9], buf[10], buf[11]);
		pm_trace(c, false, PCPMAP_PROTO_NATPMP, who, buf, len, d);
		if (result == 0) {
			struct pm_server *s = gw->srv[PCPMAP_PROTO_NATPMP];
			if (s && s->ops->unsolicited)
				s->ops->unsolicited(s, buf, len); /* the new public address */
			pm_gw_on_announced(gw, s, sssoe, true);
		}
		return;
	}
	c->stats.dropped++;
}

static void listener_readable(pcpmap_client *c, int fd)
{
	uint8_t buf[PCP_MAX_MSG + 4];
	for (int i = 0; i < 64; i++) {
		struct pm_sockaddr src;
		ssize_t n = pm_udp_recvfrom(fd, buf, sizeof(buf), &src);
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			c->stats.dropped++;
			continue;
		}
		pm_client_on_unsolicited(c, buf, (size_t)n, &src, c->env.clock.now_us(c->env.clock.ctx));
	}
}

void pm_client_on_net_events(pcpmap_client *c, unsigned mask, uint64_t now)
{
	c->now = now;
	if (!mask)
		return;
	if (!sched_armed(&c->t_netcheck))
		sched_arm(&c->sched, &c->t_netcheck, c->now + NETCHECK_DEBOUNCE_US);
}

static void monitor_readable(pcpmap_client *c, int fd)
{
	unsigned mask = 0;
	if (pm_net_monitor_read(fd, &mask) == 0)
		pm_client_on_net_events(c, mask, c->now);
}

static void resilience_start(pcpmap_client *c)
{
	if (c->listening)
		return;
	c->listening = true;
	if (!c->cfg.no_announce_listener) {
		static const int fams[2] = { AF_INET, AF_INET6 };
		for (int i = 0; i < 2; i++) {
			int r = pm_udp_multicast_listener(fams[i], PCP_CLIENT_PORT, 0, &c->ann_fd[i]);
			if (r == 0)
				r = pm_client_watch_fd(c, c->ann_fd[i], listener_readable);
			if (r < 0) {
				pm_log(c, PCPMAP_LOG_INFO, "no %s announcement listener on port %d: %s",
				       fams[i] == AF_INET ? "IPv4" : "IPv6", PCP_CLIENT_PORT,
				       pcpmap_strerror(r));
				if (c->ann_fd[i] >= 0)
					close(c->ann_fd[i]);
				c->ann_fd[i] = -1;
			}
		}
	}
	if (!c->cfg.no_netlink_monitor) {
		int r = pm_net_monitor_open(&c->nl_fd);
		if (r == 0)
			r = pm_client_watch_fd(c, c->nl_fd, monitor_readable);
		if (r < 0) {
			pm_log(c, PCPMAP_LOG_INFO, "not following route changes: %s", pcpmap_strerror(r));
			if (c->nl_fd >= 0)
				close(c->nl_fd);
			c->nl_fd = -1;
		}
	}
}

static void listen_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	resilience_start(arg);
}

void pm_resilience_start_soon(pcpmap_client *c)
{
	if (!c->listening && !sched_armed(&c->t_listen))
		sched_arm(&c->sched, &c->t_listen, c->now);
}

static bool held(const struct pm_mapping *m)
{
	return m->state == PCPMAP_STATE_MAPPED || m->state == PCPMAP_STATE_REFRESHING ||
	       (m->state == PCPMAP_STATE_ERROR_WAIT_RESEND && m->have_grant);
}

static uint64_t remap_interval(const pcpmap_client *c)
{
	return c->cfg.remap_interval_ms ? (uint64_t)c->cfg.remap_interval_ms * 1000u
					: REMAP_INTERVAL_DEFAULT_US;
}

void pm_remap_server(struct pm_server *s, struct pm_mapping *except, uint64_t delay_us)
{
	pcpmap_client *c = s->client;
	uint64_t at = c->now + delay_us;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (m->server != s || m == except || !held(m))
			continue;
		if (!m->remap_pending || at < m->remap_at)
			m->remap_at = at;
		m->remap_pending = true;
	}
	if (!sched_armed(&c->t_remap) || c->t_remap.deadline > at)
		sched_arm(&c->sched, &c->t_remap, at);
}

static bool visible(const struct pm_mapping *m)
{
	return m->cb != NULL || (m->pair_owner && m->pair_owner->cb);
}

/* The next mapping to confirm: those the application watches (a callback) first, then the oldest. */
static struct pm_mapping *next_remap(pcpmap_client *c, uint64_t now, uint64_t *ret_next_at)
{
	struct pm_mapping *best = NULL;
	*ret_next_at = UINT64_MAX;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (!m->remap_pending)
			continue;
		if (!held(m)) {
			m->remap_pending = false; /* deleted, failed or already re-created meanwhile */
			continue;
		}
		if (m->remap_at > now) {
			if (m->remap_at < *ret_next_at)
				*ret_next_at = m->remap_at;
			continue;
		}
		if (!best || (visible(m) && !visible(best)) ||
		    (visible(m) == visible(best) && m->id < best->id))
			best = m;
	}
	return best;
}

static void retry_done(pcpmap_client *c, struct pm_mapping *m)
{
	if (!m->remap_retrying)
		return;
	m->remap_retrying = false;
	if (c->remap.retrying)
		c->remap.retrying--;
	if (!sched_armed(&c->t_remap))
		sched_arm(&c->sched, &c->t_remap, c->now);
}

static void verify(pcpmap_client *c, struct pm_mapping *m, bool windowed)
{
	m->remap_pending = false;
	retry_done(c, m);
	if (windowed && !m->remap_in_flight) {
		m->remap_in_flight = true;
		c->remap.in_flight++;
	}
	pm_mapping_fsm(m, FSM_EV_VERIFY);
}

/* Fixed spacing (remap_interval_ms set): one confirmation per interval. */
static void remap_paced(pcpmap_client *c, uint64_t now)
{
	uint64_t later;
	struct pm_mapping *m = next_remap(c, now, &later);
	if (!m) {
		if (later != UINT64_MAX)
			sched_arm(&c->sched, &c->t_remap, later);
		return;
	}
	verify(c, m, false);
	next_remap(c, now, &later);
	bool more = false;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings && !more; l = l->next)
		more = pm_container_of(l, struct pm_mapping, link)->remap_pending;
	if (more) {
		uint64_t at = now + remap_interval(c);
		sched_arm(&c->sched, &c->t_remap, later != UINT64_MAX && later > at ? later : at);
	}
}

/* The window: as many confirmations out as it allows, visible mappings first, then the oldest (the list
 * is in creation order). Two passes over the list per refill, not one per mapping. */
static void remap_windowed(pcpmap_client *c, uint64_t now)
{
	unsigned ceiling =
	    c->cfg.remap_max_in_flight ? c->cfg.remap_max_in_flight : PCPMAP_DEFAULT_REMAP_MAX_IN_FLIGHT;
	unsigned window = c->remap.cwnd < 1.0 ? 1u : (unsigned)c->remap.cwnd;
	uint64_t later = UINT64_MAX;
	if (window > ceiling)
		window = ceiling;
	for (int pass = 0; pass < 2; pass++) {
		struct pm_walk walk;
		pm_walk_begin(c, &walk);
		for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
			if (!m->remap_pending || visible(m) != (pass == 0))
				continue;
			if (!held(m)) {
				m->remap_pending = false;
				continue;
			}
			if (m->remap_at > now) {
				later = m->remap_at < later ? m->remap_at : later;
				continue;
			}
			/* The window, and the ceiling over everything out (retransmissions included). */
			if (c->remap.in_flight >= window ||
			    c->remap.in_flight + c->remap.retrying >= ceiling) {
				pm_walk_end(c, &walk);
				return; /* answers or timeouts refill it */
			}
			verify(c, m, true);
		}
	}
	if (later != UINT64_MAX)
		sched_arm(&c->sched, &c->t_remap, later);
}

static void remap_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	pcpmap_client *c = arg;
	if (c->cfg.remap_interval_ms)
		remap_paced(c, now);
	else
		remap_windowed(c, now);
}

static void remap_leave(pcpmap_client *c, struct pm_mapping *m)
{
	m->remap_in_flight = false;
	if (c->remap.in_flight)
		c->remap.in_flight--;
	if (!sched_armed(&c->t_remap))
		sched_arm(&c->sched, &c->t_remap, c->now);
}

void pm_remap_answered(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	retry_done(c, m);
	if (!m->remap_in_flight)
		return;
	/* The answer's delay, from a request sent once (a retransmitted one's answer may be to either copy). */
	uint64_t irt = m->server && m->server->ops->irt_us ? m->server->ops->irt_us : PCP_IRT_US;
	uint64_t target = irt / REMAP_QUEUE_TARGET_DIV;
	bool sampled = m->retx.count <= 1;
	uint64_t rtt = sampled && c->now > m->last_send ? c->now - m->last_send : 0;
	if (sampled && rtt > target) {
		/* A gateway that handles one request at a time answers the window's last request after all the
		 * others: growing further only queues more, until requests wait past the retransmission timer and
		 * each one goes out twice. Scale the window to what keeps the wait at the target, once per round
		 * trip (the answers to requests sent before the shrink still show the old queue). */
		if (m->last_send >= c->remap.shrunk_at) {
			double w = c->remap.cwnd * (double)target / (double)rtt;
			c->remap.cwnd = c->remap.ssthresh = w < 1.0 ? 1.0 : w;
			c->remap.shrunk_at = c->now;
		}
	} else if (sampled && rtt <= target / 2) {
		/* Slow start below the threshold, then one more per window's worth of answers. Not beyond half the
		 * target: the queue a window fills shows in the delay only a round trip later, and miniupnpd gets
		 * slower with every rule it adds, so growing up to the target itself overshoots it. */
		c->remap.cwnd += c->remap.cwnd < c->remap.ssthresh ? 1.0 : 1.0 / c->remap.cwnd;
	}
	remap_leave(c, m);
}

void pm_remap_forget(struct pm_mapping *m)
{
	retry_done(m->client, m);
	if (m->remap_in_flight)
		remap_leave(m->client, m);
}

void pm_remap_unanswered(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	if (!m->remap_in_flight)
		return;
	/* Once per round trip, as TCP counts one loss event per window: the answers lost from one flight time
	 * out together, and halving for each took the window to 1, where every further loss stopped
	 * re-creation for a whole retransmission timer. */
	if (m->last_send >= c->remap.shrunk_at) {
		c->remap.ssthresh = c->remap.cwnd / 2.0 < 1.0 ? 1.0 : c->remap.cwnd / 2.0;
		c->remap.cwnd = c->remap.ssthresh;
		c->remap.shrunk_at = c->now;
	}
	/* Out of the window, so a lost answer does not hold a slot through the retransmission backoff, but
	 * still under the ceiling: its retransmissions are on the wire too. */
	m->remap_retrying = true;
	c->remap.retrying++;
	remap_leave(c, m);
}

/* Moves every mapping of gateway `from` to `to` (which may be the same gateway with fresh servers): what can
 * still be released on the old one is deleted, and each mapping is created again, paced. */
static void rehome(struct pm_gw *from, struct pm_gw *to, const char *why)
{
	pcpmap_client *c = from->client;
	pm_log(c, PCPMAP_LOG_NOTICE, "gateway %s: %s; re-creating its mappings%s%s", from->name, why,
	       to != from ? " on " : "", to != from ? to->name : "");
	struct pm_walk walk;
	pm_walk_begin(c, &walk);
	for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
		if (m->gw != from)
			continue;
		if (m->state == PCPMAP_STATE_DELETING) {
			pm_mapping_fsm(m, FSM_EV_GIVE_UP);
			continue;
		}
		if (m->pair_owner) {
			/* A pair's companion is made again by its owner once the owner is mapped. */
			if (m->server && held(m) && to != from)
				m->server->ops->send(m->server, m, true);
			pm_mapping_destroy(m);
			continue;
		}
		/* Best effort: a delete from the old address may still reach the old gateway. */
		if (m->server && held(m) && m->kind == PCPMAP_KIND_MAP && to != from)
			m->server->ops->send(m->server, m, true);
		m->remap_pending = false;
		m->restart_pending = false;
		pm_remap_unanswered(m);
		pm_remap_forget(m);
		/* The LOST event (if any) still describes the mapping as it was held. */
		pm_mapping_fsm(m, FSM_EV_REHOME);
		m->have_grant = false;
		pm_mapping_set_server(m, NULL);
		m->gw = to;
		m->renew_attempt = 0;
		if (m->port_pair)
			m->port_pair_owner_pending = false;
	}
	/* Start them again, paced: the first at once. */
	uint64_t at = c->now;
	pm_walk_begin(c, &walk);
	for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
		if (m->gw != to || m->state != PCPMAP_STATE_NOT_SENT || m->pair_owner ||
		    sched_armed(&m->t_main))
			continue;
		if (at == c->now) {
			pm_gw_attach(m);
		} else {
			/* A parked start: the mapping's main timer fires the attach. */
			m->restart_pending = true;
			sched_arm(&c->sched, &m->t_main, at);
		}
		at += remap_interval(c);
	}
}

static void gw_reset_servers(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	for (int p = 0; p < PM_NPROTO; p++) {
		struct pm_server *s = gw->srv[p];
		if (!s)
			continue;
		for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
			struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
			if (m->server == s)
				pm_mapping_set_server(m, NULL);
		}
		pm_gw_close_server(gw, (enum pcpmap_proto)p);
	}
	gw->chosen = PCPMAP_PROTO_NONE;
	for (int p = 0; p < PM_NPROTO; p++)
		gw->status[p] = PM_P_UNKNOWN;
	gw->probe_started = 0;
}

static void resume(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	gw->suspended = false;
	pm_log(c, PCPMAP_LOG_NOTICE, "gateway %s: route is back", gw->name);
	struct pm_walk walk;
	pm_walk_begin(c, &walk);
	for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
		if (m->gw != gw)
			continue;
		switch (m->state) {
		case PCPMAP_STATE_WAIT_RESP:
			pm_mapping_fsm(m, FSM_EV_SWITCH); /* send now, fresh ladder */
			break;
		case PCPMAP_STATE_MAPPED:
		case PCPMAP_STATE_REFRESHING:
			pm_mapping_fsm(m, FSM_EV_RENEW_TIMER);
			break;
		case PCPMAP_STATE_ERROR_WAIT_RESEND:
			pm_gw_attach(m);
			break;
		case PCPMAP_STATE_DELETING:
			pm_mapping_fsm(m, FSM_EV_SWITCH); /* the delete's tries start now */
			break;
		default:
			break;
		}
	}
}

void pm_client_net_check(pcpmap_client *c, uint64_t now)
{
	c->now = now;
	for (struct pm_list *l = c->gateways.next; l != &c->gateways;) {
		struct pm_gw *gw = pm_container_of(l, struct pm_gw, link);
		l = l->next;
		int family = gw->addr.u.sa.sa_family;
		bool has_mappings = false;
		for (struct pm_list *ml = c->mappings.next; ml != &c->mappings; ml = ml->next)
			if (pm_container_of(ml, struct pm_mapping, link)->gw == gw)
				has_mappings = true;
		/* A suspended gateway is re-checked even with no mappings left: later ones attach to it. */
		if (!has_mappings && !gw->suspended)
			continue;

		struct pm_sockaddr now_addr = gw->addr;
		if (!c->cfg.server) {
			struct pm_gateway g;
			int r = c->default_gateway(family, &g);
			if (r == -ENOENT) {
				if (!gw->suspended)
					pm_log(c, PCPMAP_LOG_NOTICE,
					       "gateway %s: no default route any more; waiting for one",
					       gw->name);
				gw->suspended = true;
				continue;
			}
			if (r < 0 || pm_sockaddr_from_gateway(&now_addr, &g, PCP_SERVER_PORT) < 0)
				continue;
		}
		if (!same_host(&now_addr, &gw->addr)) {
			struct pm_gw *to;
			gw->suspended = false;
			if (pm_client_gateway_for(c, family, &to) < 0)
				continue;
			rehome(gw, to, "the default gateway changed");
			pm_gw_free(gw);
			continue;
		}
		/* Same gateway: did our source address towards it change? (PCP's Client IP field, NAT-PMP's
		 * and UPnP's internal client all depend on it.) */
		struct pm_server *s = NULL;
		for (int p = 0; p < PM_NPROTO && !s; p++)
			s = gw->srv[p];
		if (s) {
			int fd;
			struct pm_sockaddr local;
			if (pm_udp_connect(&gw->addr, &fd, &local) == 0) {
				close(fd);
				if (!same_host(&local, &s->local) && s->local.len) {
					gw->suspended = false;
					gw_reset_servers(gw);
					rehome(gw, gw, "our source address changed");
					continue;
				}
			}
		}
		if (gw->suspended)
			resume(gw);
	}
}

static void netcheck_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	pm_client_net_check(arg, now);
}
