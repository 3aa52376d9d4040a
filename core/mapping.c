/* Mappings: request validation, the state machine's actions, answers from backends, port pairs. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "text/text.h"

#define DELETE_MRC       3 /* a delete is retried a few times, never forever */
#define PAIR_MAX_TRIES   8
#define RECENT_DELETE_US 1000000u /* a delete's copies are not expected later than this */

PCPMAP_EXPORT void pcpmap_request_init(struct pcpmap_request *req, enum pcpmap_kind kind)
{
	if (!req)
		return;
	memset(req, 0, sizeof(*req));
	req->size = sizeof(*req);
	req->kind = kind;
	req->ip_proto = IPPROTO_TCP;
	req->external_family = AF_INET;
}

bool pm_addr_is_private(const struct pcp_addr *a)
{
	if (pcp_addr_is_v4(a)) {
		const uint8_t *b = a->b + 12;
		return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
		       (b[0] == 100 && (b[1] & 0xc0) == 64) || /* RFC 6598 shared space */
		       (b[0] == 169 && b[1] == 254) || b[0] == 127;
	}
	/* Unique local (fc00::/7) and link-local addresses are not reachable from the internet. */
	return (a->b[0] & 0xfe) == 0xfc || (a->b[0] == 0xfe && (a->b[1] & 0xc0) == 0x80);
}

static void sockaddr_host(const struct pm_sockaddr *sa, char *buf, size_t len)
{
	const void *a = sa->u.sa.sa_family == AF_INET6 ? (const void *)&sa->u.in6.sin6_addr
						       : (const void *)&sa->u.in.sin_addr;
	if (pm_text_ntop(sa->u.sa.sa_family, a, buf, len) < 0 && len)
		buf[0] = '\0';
}

static void fill_info(const struct pm_mapping *m, struct pcpmap_mapping_info *info)
{
	const pcpmap_client *c = m->client;
	memset(info, 0, sizeof(*info));
	info->state = m->state;
	info->proto = m->proto;
	info->kind = m->kind;
	info->ip_proto = m->ip_proto;
	if (m->server) {
		pm_text_copy(info->server, sizeof(info->server), m->server->name);
		if (m->has_third_party)
			pcp_addr_to_string(&m->third_party, info->internal_addr, sizeof(info->internal_addr));
		else
			sockaddr_host(&m->server->local, info->internal_addr, sizeof(info->internal_addr));
	}
	info->internal_port = m->internal_port;
	if (m->have_grant) {
		pcp_addr_to_string(&m->ext_addr, info->external_addr, sizeof(info->external_addr));
		info->external_port = m->ext_port;
		/* Only an IPv4 NAT can hide behind another NAT; IPv6 pinholes are the host's own address. */
		info->external_is_private = pcp_addr_is_v4(&m->ext_addr) && pm_addr_is_private(&m->ext_addr);
	}
	if (m->pair && m->pair->have_grant) {
		info->external_port2 = m->pair->ext_port;
		info->pair_method = m->pair_method;
	}
	if (m->pair)
		memcpy(info->nonce2, m->pair->nonce, sizeof(info->nonce2));
	if (m->kind == PCPMAP_KIND_PEER) {
		pcp_addr_to_string(&m->peer_addr, info->peer_addr, sizeof(info->peer_addr));
		info->peer_port = m->peer_port;
	}
	info->lifetime = m->lifetime;
	if (sched_armed(&m->t_expire))
		info->expires_usec = m->t_expire.deadline;
	if (sched_armed(&m->t_main)) {
		if (m->state == PCPMAP_STATE_MAPPED || m->state == PCPMAP_STATE_REFRESHING)
			info->refresh_usec = m->t_main.deadline;
		else if (m->state == PCPMAP_STATE_ERROR_WAIT_RESEND)
			info->retry_usec = m->t_main.deadline;
	}
	info->epoch = m->epoch;
	info->error = m->error;
	info->result_code = m->result_code;
	memcpy(info->nonce, m->nonce, sizeof(info->nonce));
	pm_text_copy(info->detail, sizeof(info->detail), m->detail ? m->detail : "");
	/* Still looking for a protocol: say how far the gateway got. */
	if ((!m->detail || !m->detail[0]) && m->gw && !m->have_grant &&
	    (m->state == PCPMAP_STATE_WAIT_RESP || m->state == PCPMAP_STATE_NOT_SENT))
		pm_gw_describe(m->gw, m->protocols, info->detail, sizeof(info->detail));
	(void)c;
}

static void queue_event(struct pm_mapping *m, enum pcpmap_event ev)
{
	/* A pair's companion reports through its owner. */
	struct pm_mapping *target = m->pair_owner ? m->pair_owner : m;
	if (!target->user_owned)
		return;
	struct pm_event *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->kind = PM_EVENT_MAPPING;
	e->m = target;
	e->ev = ev;
	fill_info(target, &e->info);
	if (m != target) {
		/* The companion's failure is the owner's failure. */
		e->info.error = m->error;
		e->info.result_code = m->result_code;
	}
	pm_client_queue_event(m->client, e);
}

static void mapping_free_mem(struct pm_mapping *m)
{
	free(m->filters);
	free(m->description);
	free(m->detail);
	free(m);
}

void pm_mapping_set_detail(struct pm_mapping *m, const char *fmt, ...)
{
	char buf[PM_DETAIL_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!m->detail && !(m->detail = malloc(PM_DETAIL_MAX)))
		return;
	memcpy(m->detail, buf, strlen(buf) + 1);
}

void pm_mapping_describe_gw(struct pm_mapping *m)
{
	char buf[PM_DETAIL_MAX];
	pm_gw_describe(m->gw, m->protocols, buf, sizeof(buf));
	pm_mapping_set_detail(m, "%s", buf);
}

void pm_mapping_set_server(struct pm_mapping *m, struct pm_server *s)
{
	if (m->server && m->server != s && m->server->ops->mapping_gone)
		m->server->ops->mapping_gone(m->server, m);
	m->server = s;
}

void pm_mapping_destroy(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	if (m->server && m->server->ops->retire)
		m->server->ops->retire(m->server, m);
	if (m->server && m->server->ops->proto != PCPMAP_PROTO_PCP && m->state == PCPMAP_STATE_DELETED &&
	    m->last_send) {
		/* A delayed copy of this delete could still remove a new mapping of the same port. */
		struct pm_server *s = m->server;
		unsigned i = s->recent_del_next++ % (sizeof(s->recent_del) / sizeof(s->recent_del[0]));
		s->recent_del[i].ip_proto = m->ip_proto;
		s->recent_del[i].internal_port = m->internal_port;
		s->recent_del[i].until = c->now + RECENT_DELETE_US;
	}
	pm_mapping_set_server(m, NULL);
	if (m->pair) {
		m->pair->pair_owner = NULL;
		pm_mapping_destroy(m->pair);
		m->pair = NULL;
	}
	if (m->pair_owner)
		m->pair_owner->pair = NULL;
	/* Out of the window, and the window refilled: a freed confirmation must not leave others waiting. */
	pm_remap_forget(m);
	sched_cancel(&c->sched, &m->t_main);
	sched_cancel(&c->sched, &m->t_expire);
	pm_client_purge_events(c, m);
	pm_mapping_unlink(m);
	mapping_free_mem(m);
}

static bool is_held(const struct pm_mapping *m)
{
	return m->state == PCPMAP_STATE_MAPPED || m->state == PCPMAP_STATE_REFRESHING ||
	       (m->state == PCPMAP_STATE_ERROR_WAIT_RESEND && m->have_grant) ||
	       m->state == PCPMAP_STATE_WAIT_RESP;
}

void pm_mapping_send_final_delete(struct pm_mapping *m)
{
	if (m->pair)
		pm_mapping_send_final_delete(m->pair);
	if (m->server && m->kind == PCPMAP_KIND_MAP && is_held(m))
		m->server->ops->send(m->server, m, true);
}

static void do_send(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	bool del = m->state == PCPMAP_STATE_DELETING;
	if (!m->server)
		return;
	/* No route to the gateway: timers keep their (growing) schedule, nothing goes out. */
	if (m->gw && m->gw->suspended)
		return;
	int r = m->server->ops->send(m->server, m, del);
	m->last_send = c->now;
	if (r == -ECONNREFUSED || r == -ENETUNREACH || r == -EHOSTUNREACH)
		pm_server_defer_error(m->server, r);
	else if (r < 0)
		pm_log(c, PCPMAP_LOG_WARNING, "mapping %llu: send to %s failed: %s",
		       (unsigned long long)m->id, m->server->name, pcpmap_strerror(r));
}

static void pair_on_owner_mapped(struct pm_mapping *m);

static void notify_mapped(struct pm_mapping *m)
{
	if (m->port_pair_owner_pending)
		return;
	bool differs =
	    m->notified_port != m->ext_port || memcmp(&m->notified_addr, &m->ext_addr, sizeof(m->ext_addr));
	if (m->notified_mapped && !differs)
		return;
	enum pcpmap_event ev = (m->ever_notified && differs) ? PCPMAP_EVENT_CHANGED : PCPMAP_EVENT_MAPPED;
	m->notified_mapped = true;
	m->ever_notified = true;
	m->notified_addr = m->ext_addr;
	m->notified_port = m->ext_port;
	if (ev == PCPMAP_EVENT_MAPPED && pm_addr_is_private(&m->ext_addr) && m->family == AF_INET)
		pm_log(m->client, PCPMAP_LOG_WARNING,
		       "mapping %llu: external address is private or shared: another NAT (double NAT or "
		       "carrier-grade NAT) likely keeps it unreachable from the internet",
		       (unsigned long long)m->id);
	queue_event(m, ev);
}

static void main_timer(struct sched_timer *t, uint64_t now, void *arg);
static void mapping_start(struct pm_mapping *m);
static void expire_timer(struct sched_timer *t, uint64_t now, void *arg);

static void give_back(struct pm_mapping *m);

void pm_mapping_fsm(struct pm_mapping *m, enum fsm_event ev)
{
	pcpmap_client *c = m->client;
	struct fsm_result r;
	char acts[160];

	enum pcpmap_state from = m->state;
	if (fsm_apply(&m->state, ev, &r) < 0) {
		pm_log(c, PCPMAP_LOG_DEBUG, "mapping %llu: %s has no edge for %s, ignored",
		       (unsigned long long)m->id, pcpmap_state_name(from), fsm_event_name(ev));
		return;
	}
	fsm_actions_string(r.actions, acts, sizeof(acts));
	pm_log(c, PCPMAP_LOG_DEBUG, "mapping %llu: %s --%s--> %s [%s]", (unsigned long long)m->id,
	       pcpmap_state_name(from), fsm_event_name(ev), pcpmap_state_name(r.state), acts);
	uint64_t now = c->now;
	if ((m->remap_in_flight || m->remap_retrying) && r.state != PCPMAP_STATE_WAIT_RESP)
		pm_remap_forget(m);
	/* Deleted without a request of its own (parked, or failed) while it still held a grant: the gateway
	 * keeps that port until it expires unless it is given back (a pair's companion parked when its owner
	 * moved to another protocol). */
	if (ev == FSM_EV_DELETE && r.state == PCPMAP_STATE_DELETED && m->have_grant) {
		give_back(m);
		m->have_grant = false;
	}

	if (r.actions & FSM_A_CANCEL)
		sched_cancel(&c->sched, &m->t_main);
	if (r.actions & FSM_A_EXPIRY_CANCEL) {
		sched_cancel(&c->sched, &m->t_expire);
		m->have_grant_live = false;
	}
	if (r.actions & FSM_A_RENEW_RESET) {
		m->renew_attempt = 0;
		m->granted_at = now;
	}
	if (r.actions & FSM_A_EXPIRY_ARM) {
		sched_arm(&c->sched, &m->t_expire, now + (uint64_t)m->lifetime * 1000000u);
		m->have_grant_live = true;
	}
	if (r.actions & FSM_A_SEND)
		do_send(m);
	if (r.actions & FSM_A_RETX_START) {
		uint64_t mrd = 0;
		unsigned mrc = 0;
		if (m->state == PCPMAP_STATE_DELETING)
			mrc = DELETE_MRC;
		else if (m->deadline_us)
			mrd = m->deadline_us;
		pm_retx_init(&m->retx, m->server ? m->server->ops->irt_us : PCP_IRT_US,
			     m->server ? m->server->ops->mrt_us : PCP_MRT_US, mrc, mrd);
		m->retx_exhausted = false;
	}
	if (r.actions & (FSM_A_RETX_START | FSM_A_RETX_NEXT)) {
		uint64_t deadline;
		if (pm_retx_next(&m->retx, now, &c->env.rand, &deadline) < 0) {
			/* Out of budget: give the last packet one more interval, then give up. */
			m->retx_exhausted = true;
			deadline = now + (m->retx.rt_us ? m->retx.rt_us : m->retx.irt_us);
		}
		if (r.actions & FSM_A_RETX_NEXT)
			c->stats.retransmits++;
		sched_arm(&c->sched, &m->t_main, deadline);
	}
	if (r.actions & FSM_A_RENEW_ARM) {
		uint64_t at =
		    pm_renew_at(m->granted_at, m->lifetime, m->renew_attempt, m->last_send, &c->env.rand);
		m->renew_attempt++;
		if (at != UINT64_MAX)
			sched_arm(&c->sched, &m->t_main, at);
		else
			sched_cancel(&c->sched, &m->t_main);
	}
	if (r.actions & FSM_A_HOLD_ARM)
		sched_arm(&c->sched, &m->t_main, now + (uint64_t)(m->hold_s ? m->hold_s : 1) * 1000000u);
	if (r.actions & FSM_A_NOTIFY_LOST) {
		/* LOST takes back a MAPPED the application was told; nothing to take back otherwise. */
		struct pm_mapping *t = m->pair_owner ? m->pair_owner : m;
		if (t->notified_mapped) {
			t->notified_mapped = false;
			queue_event(m, PCPMAP_EVENT_LOST);
		}
	}
	if ((r.actions & FSM_A_NOTIFY_FAILED) && !m->pair_owner)
		queue_event(m, PCPMAP_EVENT_FAILED);
	if ((r.actions & FSM_A_NOTIFY_DELETED) && !m->pair_owner)
		queue_event(m, PCPMAP_EVENT_DELETED);
	if (r.actions & FSM_A_NOTIFY_MAPPED) {
		if (m->pair_owner || m->port_pair)
			pair_on_owner_mapped(m->pair_owner ? m->pair_owner : m);
		else
			notify_mapped(m);
	}
	if ((r.actions & FSM_A_RELEASE) && !m->user_owned && !m->pair_owner) {
		pm_mapping_destroy(m);
		return;
	}
	/* Last, since it may free this mapping: a companion that failed for good makes its owner try again. */
	if ((r.actions & FSM_A_NOTIFY_FAILED) && m->pair_owner && m->state == PCPMAP_STATE_FAILED)
		pm_mapping_pair_companion_failed(m);
}

static void main_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	struct pm_mapping *m = arg;
	pm_remap_unanswered(m); /* a confirmation went a whole RT without an answer */
	switch (m->state) {
	case PCPMAP_STATE_WAIT_RESP:
	case PCPMAP_STATE_DELETING:
		if (m->state == PCPMAP_STATE_DELETING && m->gw && m->gw->suspended) {
			/* No route: nothing went out, so no try is spent; resume() starts them over. */
			sched_arm(&m->client->sched, &m->t_main,
				  now + (m->retx.rt_us ? m->retx.rt_us : PCP_IRT_US));
			break;
		}
		if (m->retx_exhausted || (m->retx.mrc && m->retx.count >= m->retx.mrc) ||
		    (m->retx.mrd_us && now >= m->retx.started_us + m->retx.mrd_us)) {
			m->error = -ETIMEDOUT;
			if (m->state == PCPMAP_STATE_WAIT_RESP) {
				if (m->gw && !m->have_grant)
					pm_mapping_describe_gw(m);
			}
			pm_mapping_fsm(m, FSM_EV_GIVE_UP);
		} else {
			pm_mapping_fsm(m, FSM_EV_RETX_TIMER);
		}
		break;
	case PCPMAP_STATE_MAPPED:
	case PCPMAP_STATE_REFRESHING:
		pm_mapping_fsm(m, FSM_EV_RENEW_TIMER);
		break;
	case PCPMAP_STATE_ERROR_WAIT_RESEND:
		if (m->deadline_us && !m->have_grant && now >= m->first_send + m->deadline_us) {
			pm_mapping_fsm(m, FSM_EV_GIVE_UP);
		} else if (!m->gw) {
			mapping_start(m); /* there was no gateway: look again */
		} else if (m->have_grant || m->pair_owner || m->port_pair) {
			pm_mapping_fsm(m, FSM_EV_HOLD_TIMER);
		} else {
			pm_gw_attach(m); /* the fallback policy may pick another protocol now */
		}
		break;
	case PCPMAP_STATE_NOT_SENT:
		if (m->restart_pending) {
			/* Re-homed after a network change: its paced turn to start again. */
			m->restart_pending = false;
			pm_gw_attach(m);
			break;
		}
		/* Parked while protocols were probed, and the deadline passed. */
		m->error = -ETIMEDOUT;
		if (m->gw)
			pm_mapping_describe_gw(m);
		pm_mapping_fsm(m, FSM_EV_GIVE_UP);
		break;
	default:
		break;
	}
}

static void expire_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	struct pm_mapping *m = arg;
	m->have_grant_live = false;
	pm_mapping_fsm(m, FSM_EV_EXPIRED);
}

/* An answer from the gateway for this mapping (backends call this after validation and the epoch check). */
static void give_back_port(struct pm_mapping *m, uint16_t ext_port);

void pm_mapping_on_reply(struct pm_mapping *m, const struct pm_reply *r)
{
	pcpmap_client *c = m->client;
	pm_remap_answered(m);
	m->proto = m->server ? m->server->ops->proto : PCPMAP_PROTO_NONE;
	m->result_code = r->result_code;
	if (r->has_epoch)
		m->epoch = r->epoch;
	if (m->server)
		pm_server_on_reachable(m->server);

	if (m->state == PCPMAP_STATE_DELETING) {
		if (r->kind == PM_REPLY_SUCCESS && r->lifetime > 0) {
			/* A grant, not the delete's answer (a copy of an earlier request processed after the delete):
			 * the gateway holds the mapping again, so the delete starts over. */
			pm_log(c, PCPMAP_LOG_INFO,
			       "mapping %llu: granted again while deleting: deleting again",
			       (unsigned long long)m->id);
			pm_mapping_fsm(m, FSM_EV_SWITCH);
			return;
		}
		m->error = r->kind == PM_REPLY_SUCCESS ? 0 : r->error;
		if (r->kind != PM_REPLY_SUCCESS)
			pm_log(c, PCPMAP_LOG_INFO, "mapping %llu: delete answered %s (%s)",
			       (unsigned long long)m->id, pcpmap_result_name(m->proto, r->result_code),
			       pcpmap_strerror(r->error));
		pm_mapping_fsm(m, r->kind == PM_REPLY_SUCCESS ? FSM_EV_DELETED : FSM_EV_DELETE_REFUSED);
		return;
	}
	if (m->state != PCPMAP_STATE_WAIT_RESP && m->state != PCPMAP_STATE_REFRESHING &&
	    m->state != PCPMAP_STATE_MAPPED && m->state != PCPMAP_STATE_ERROR_WAIT_RESEND) {
		/* A late grant for a mapping that no longer wants one (it failed meanwhile, say because the
		 * protocol chosen later could not express it): the gateway holds it, so it is deleted, and the
		 * mapping draws a fresh nonce for whatever it does next. */
		if (r->kind == PM_REPLY_SUCCESS && r->lifetime && m->server && m->kind == PCPMAP_KIND_MAP) {
			pm_log(c, PCPMAP_LOG_INFO,
			       "mapping %llu: late grant (port %u) in state %s: deleting it",
			       (unsigned long long)m->id, r->ext_port, pcpmap_state_name(m->state));
			give_back_port(m, r->ext_port);
			return;
		}
		pm_log(c, PCPMAP_LOG_DEBUG, "mapping %llu: answer in state %s ignored",
		       (unsigned long long)m->id, pcpmap_state_name(m->state));
		return;
	}
	switch (r->kind) {
	case PM_REPLY_SUCCESS:
		if (r->lifetime == 0) {
			m->error = -EPROTO;
			pm_log(c, PCPMAP_LOG_WARNING, "mapping %llu: gateway granted a zero lifetime",
			       (unsigned long long)m->id);
			pm_mapping_fsm(m, FSM_EV_ERR_FATAL);
			return;
		}
		/* PREFER_FAILURE means exactly this port or nothing, on creation and on every renewal; some
		 * servers (miniupnpd) hand out another port anyway, so check, and give back what we did not ask
		 * for. */
		uint16_t pinned = m->have_grant ? m->ext_port : m->suggested_port;
		if (m->prefer_failure && pinned && r->ext_port != pinned) {
			m->error = -EADDRINUSE;
			m->ext_addr = r->ext_addr;
			m->ext_port = r->ext_port;
			m->have_grant = true;
			m->lifetime = pm_lifetime_sane(r->lifetime);
			pm_log(c, PCPMAP_LOG_INFO,
			       "mapping %llu: asked for port %u with PREFER_FAILURE, gateway gave %u: "
			       "releasing it",
			       (unsigned long long)m->id, pinned, r->ext_port);
			give_back(m);
			m->have_grant = false;
			pm_mapping_fsm(m, FSM_EV_ERR_FATAL);
			return;
		}
		m->error = 0;
		m->ext_addr = r->ext_addr;
		m->ext_port = r->ext_port;
		m->lifetime = pm_lifetime_sane(r->lifetime);
		m->have_grant = true;
		m->echoed_port_reservation = r->echoed_port_reservation;
		m->echoed_port_set = r->echoed_port_set;
		pm_mapping_fsm(m, FSM_EV_SUCCESS);
		return;
	case PM_REPLY_RETRY:
		m->error = r->error;
		m->hold_s = r->hold_s;
		pm_mapping_fsm(m, FSM_EV_ERR_RETRY);
		return;
	case PM_REPLY_FATAL:
		m->error = r->error;
		pm_mapping_fsm(m, FSM_EV_ERR_FATAL);
		return;
	}
}

static int parse_addr(const char *s, int family, struct pcp_addr *ret)
{
	struct pcp_addr a;
	if (pcp_addr_from_string(s, &a) < 0)
		return -EINVAL;
	if (family && (family == AF_INET) != pcp_addr_is_v4(&a))
		return -EINVAL;
	*ret = a;
	return 0;
}

/* A request the library refuses: the reason goes to the log and to pcpmap_request_check()'s caller. */
static int invalid(pcpmap_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(pcpmap_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->invalid_why, sizeof(c->invalid_why), fmt, ap);
	va_end(ap);
	pm_log(c, PCPMAP_LOG_ERR, "request: %s", c->invalid_why);
	return -EINVAL;
}

static int validate_and_copy(pcpmap_client *c, const struct pcpmap_request *req, struct pm_mapping *m)
{
	if (req->size < offsetof(struct pcpmap_request, userdata) + sizeof(void *) ||
	    req->size > sizeof(*req)) {
		return invalid(c, "unknown struct size %zu", req->size);
	}
	if (req->kind != PCPMAP_KIND_MAP && req->kind != PCPMAP_KIND_PEER) {
		return invalid(c, "kind must be MAP or PEER");
	}
	m->kind = req->kind;
	m->ip_proto = req->ip_proto;
	m->internal_port = req->internal_port;
	m->family = req->external_family ? req->external_family : AF_INET;
	if (m->family != AF_INET && m->family != AF_INET6) {
		return invalid(c, "external family must be AF_INET or AF_INET6");
	}
	if (m->ip_proto == 0 && m->internal_port != 0) {
		return invalid(c, "protocol 0 (all) needs internal port 0 (RFC 6887 11.1)");
	}
	if (m->ip_proto != 0 && m->internal_port == 0 && req->kind == PCPMAP_KIND_MAP) {
		return invalid(c, "internal port 0 (all ports) is only valid with protocol 0");
	}
	m->suggested_port = req->suggested_port;
	pcp_addr_any(&m->suggested_addr, m->family);
	if (req->suggested_addr) {
		if (parse_addr(req->suggested_addr, m->family, &m->suggested_addr) < 0) {
			return invalid(c, "suggested address '%s' is not an %s address", req->suggested_addr,
				       m->family == AF_INET ? "IPv4" : "IPv6");
		}
		m->has_suggested_addr = true;
	}
	m->req_lifetime = req->lifetime ? req->lifetime : PCPMAP_DEFAULT_LIFETIME;
	m->prefer_failure = req->prefer_failure;
	if (m->prefer_failure && req->kind == PCPMAP_KIND_PEER) {
		return invalid(c, "PREFER_FAILURE is for MAP only (RFC 6887 13.2)");
	}
	if (m->prefer_failure && !m->suggested_port) {
		return invalid(c, "PREFER_FAILURE needs a suggested port");
	}
	if (req->third_party) {
		if (pcp_addr_from_string(req->third_party, &m->third_party) < 0) {
			return invalid(c, "THIRD_PARTY '%s' is not an address", req->third_party);
		}
		m->has_third_party = true;
	}
	if (req->n_filters) {
		if (req->kind != PCPMAP_KIND_MAP || req->n_filters > PCPMAP_MAX_FILTERS || !req->filters) {
			return invalid(c, "FILTERs are for MAP only, at most %d", PCPMAP_MAX_FILTERS);
		}
		m->filters = calloc(req->n_filters, sizeof(*m->filters));
		if (!m->filters)
			return -ENOMEM;
		for (size_t i = 0; i < req->n_filters; i++) {
			const struct pcpmap_filter *f = &req->filters[i];
			struct pcp_filter *o = &m->filters[i];
			if (!f->peer_addr || pcp_addr_from_string(f->peer_addr, &o->peer_addr) < 0) {
				return invalid(c, "filter %zu: bad peer address", i);
			}
			unsigned max = pcp_addr_is_v4(&o->peer_addr) ? 32 : 128;
			if (f->prefix_len > max) {
				return invalid(c, "filter %zu: prefix length %u > %u", i, f->prefix_len, max);
			}
			/* IPv4 prefixes count over the IPv4-mapped form (RFC 6887 13.3). */
			o->prefix_len =
			    (uint8_t)(pcp_addr_is_v4(&o->peer_addr) ? f->prefix_len + 96 : f->prefix_len);
			o->peer_port = f->peer_port;
		}
		m->n_filters = req->n_filters;
	}
	if (req->description) {
		size_t len = strlen(req->description);
		if (len > PCP_MAX_DESCRIPTION) {
			return invalid(c, "description longer than %d bytes", PCP_MAX_DESCRIPTION);
		}
		m->description = strdup(req->description);
		if (!m->description)
			return -ENOMEM;
	}
	if (req->port_pair) {
		if (req->kind != PCPMAP_KIND_MAP || (m->internal_port & 1) || m->internal_port == 0 ||
		    m->internal_port == 65535 || m->ip_proto == 0) {
			return invalid(c, "a port pair needs a MAP on an even internal port");
		}
		if (m->suggested_port & 1) {
			return invalid(c, "a port pair needs an even suggested port");
		}
		m->port_pair = true;
		m->port_reservation = true;
	}
	if (req->kind == PCPMAP_KIND_PEER) {
		if (!req->peer_addr)
			return invalid(c, "PEER needs a remote peer address");
		if (pcp_addr_from_string(req->peer_addr, &m->peer_addr) < 0)
			return invalid(c, "PEER remote peer '%s' is not an IPv4 or IPv6 address",
				       req->peer_addr);
		if (!req->peer_port || !m->ip_proto || !m->internal_port) {
			return invalid(c, "PEER needs protocol, internal port and peer port");
		}
		m->peer_port = req->peer_port;
	}
	m->protocols = req->protocols ? req->protocols : c->cfg.protocols;
	m->deadline_us = (uint64_t)req->deadline_ms * 1000u;
	m->cb = req->callback;
	m->userdata = req->userdata;
	if (req->size >= offsetof(struct pcpmap_request, nonce) + sizeof(req->nonce) && req->nonce)
		memcpy(m->nonce, req->nonce, PCP_NONCE_LEN);
	if (req->size >= offsetof(struct pcpmap_request, allow_degrade) + sizeof(req->allow_degrade))
		m->allow_degrade = req->allow_degrade;
	if (req->size >= offsetof(struct pcpmap_request, nonce2) + sizeof(req->nonce2) && req->nonce2 &&
	    m->port_pair) {
		memcpy(m->pair_nonce, req->nonce2, PCP_NONCE_LEN);
		m->has_pair_nonce = true;
	}
	return 0;
}

static struct pm_mapping *mapping_alloc(pcpmap_client *c)
{
	struct pm_mapping *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->h.ops = &pm_engine_ops;
	m->client = c;
	m->id = ++c->next_id;
	pm_list_init(&m->link);
	sched_timer_init(&m->t_main, main_timer, m, "mapping");
	sched_timer_init(&m->t_expire, expire_timer, m, "expiry");
	c->env.rand.fill(c->env.rand.ctx, m->nonce, sizeof(m->nonce));
	return m;
}

static void mapping_start(struct pm_mapping *m)
{
	pcpmap_client *c = m->client;
	m->first_send = c->now;
	if (!m->gw) {
		int r = pm_client_gateway_for(c, m->family, &m->gw);
		if (r < 0) {
			/* No gateway now: wait and try again, reporting why. */
			m->error = r;
			m->hold_s = 5;
			pm_mapping_fsm(m, FSM_EV_ERR_RETRY);
			return;
		}
	}
	pm_gw_attach(m);
}

void pm_mapping_delete_orphan(struct pm_server *s, const struct pm_orphan *o)
{
	pcpmap_client *c = s->client;
	struct pm_mapping *m = mapping_alloc(c);
	if (!m)
		return;
	m->kind = PCPMAP_KIND_MAP;
	m->ip_proto = o->ip_proto;
	m->internal_port = o->internal_port;
	m->family = o->family;
	m->has_third_party = o->has_third_party;
	m->third_party = o->third_party;
	m->ext_port = o->ext_port; /* UPnP deletes by external port */
	m->protocols = PCPMAP_PROTO_BIT(s->ops->proto);
	memcpy(m->nonce, o->nonce, PCP_NONCE_LEN);
	m->gw = s->gw;
	if (pm_mapping_link(m) < 0) {
		mapping_free_mem(m);
		return;
	}
	pm_mapping_set_server(m, s);
	/* Not the application's: the state machine releases it once the delete is answered or given up. */
	pm_mapping_fsm(m, FSM_EV_UNMAP);
}

PCPMAP_EXPORT int pcpmap_request_check(pcpmap_client *c, const struct pcpmap_request *req, char *ret_why,
				       size_t len)
{
	if (!c || !req)
		return -EINVAL;
	c->invalid_why[0] = '\0';
	int r = pm_request_validate(c, req);
	if (ret_why && len)
		snprintf(ret_why, len, "%s", r == -EINVAL ? c->invalid_why : r < 0 ? pcpmap_strerror(r) : "");
	return r;
}

/* Hands what the gateway granted this mapping to an owner-less mapping that deletes it, and gives the mapping a
 * fresh nonce. */
static void give_back_port(struct pm_mapping *m, uint16_t ext_port)
{
	if (!m->server || m->kind != PCPMAP_KIND_MAP)
		return;
	struct pm_orphan o = {
		.ip_proto = m->ip_proto,
		.internal_port = m->internal_port,
		.family = m->family,
		.has_third_party = m->has_third_party,
		.third_party = m->third_party,
		.ext_port = ext_port,
	};
	memcpy(o.nonce, m->nonce, PCP_NONCE_LEN);
	pm_mapping_renonce(m, NULL);
	pm_mapping_delete_orphan(m->server, &o);
}

static void give_back(struct pm_mapping *m)
{
	if (m->have_grant)
		give_back_port(m, m->ext_port);
}

void pm_mapping_drop_grant(struct pm_mapping *m)
{
	if (m->pair) {
		struct pm_mapping *p = m->pair;
		p->pair_owner = NULL;
		m->pair = NULL;
		pm_mapping_fsm(p, FSM_EV_DELETE);
	}
	give_back(m); /* the old grant is deleted with its own retries */
	pm_mapping_fsm(m, FSM_EV_MOVE);
	m->have_grant = false;
	m->renew_attempt = 0;
	m->port_pair_owner_pending = false;
}

int pm_request_validate(pcpmap_client *c, const struct pcpmap_request *req)
{
	struct pm_mapping *m = mapping_alloc(c);
	if (!m)
		return -ENOMEM;
	int r = validate_and_copy(c, req, m);
	mapping_free_mem(m);
	return r;
}

PCPMAP_EXPORT int pcpmap_mapping_new(pcpmap_client *c, const struct pcpmap_request *req, pcpmap_mapping **ret)
{
	return c && req && ret ? c->ops->mapping_new(c, req, ret) : -EINVAL;
}

int pm_engine_mapping_new(pcpmap_client *c, const struct pcpmap_request *req, pcpmap_mapping **ret)
{
	if (c->n_mappings >= c->cfg.max_mappings) {
		pm_log(c, PCPMAP_LOG_WARNING, "mapping table full (%u mappings)", c->cfg.max_mappings);
		return -ENOSPC;
	}
	struct pm_mapping *m = mapping_alloc(c);
	if (!m)
		return -ENOMEM;
	int r = validate_and_copy(c, req, m);
	if (r < 0) {
		mapping_free_mem(m);
		return r;
	}
	if (pm_mapping_link(m) < 0) {
		mapping_free_mem(m);
		return -ENOMEM;
	}
	m->user_owned = true;
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	mapping_start(m);
	*ret = (pcpmap_mapping *)m;
	return 0;
}

PCPMAP_EXPORT pcpmap_mapping *pcpmap_mapping_free(pcpmap_mapping *handle)
{
	struct pm_handle *h = (struct pm_handle *)handle;
	if (h)
		h->ops->mapping_free(h);
	return NULL;
}

void pm_engine_mapping_free(struct pm_handle *h)
{
	struct pm_mapping *m = (struct pm_mapping *)h;
	pcpmap_client *c = m->client;
	m->user_owned = false;
	pm_client_purge_events(c, m);
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	if (m->state == PCPMAP_STATE_DELETED) {
		pm_mapping_destroy(m); /* pcpmap_mapping_delete() already finished */
		return;
	}
	if (m->pair) {
		struct pm_mapping *p = m->pair;
		p->pair_owner = NULL;
		m->pair = NULL;
		if (p->kind == PCPMAP_KIND_MAP && p->state != PCPMAP_STATE_FAILED)
			pm_mapping_fsm(p, FSM_EV_DELETE);
		else
			pm_mapping_destroy(p);
	}
	/* PEER cannot delete (RFC 6887 12): leave it to expire. A mapping that never had a server (parked
	 * while the gateway's protocols were probed, then failed) has nothing to delete anywhere, nor has one
	 * never granted whose server refused it by ICMP port unreachable since it last answered: nothing
	 * listens there, and a delete would wait out its tries (the ICMP error that would end them is often
	 * rate-limited). */
	if (m->kind == PCPMAP_KIND_PEER || !m->server ||
	    (!m->have_grant && m->server->unreachable_count > 0 && m->server->last_error == -ECONNREFUSED)) {
		pm_mapping_destroy(m);
		return;
	}
	pm_mapping_fsm(m, FSM_EV_DELETE);
	return;
}

PCPMAP_EXPORT int pcpmap_mapping_delete(pcpmap_mapping *handle)
{
	struct pm_handle *h = (struct pm_handle *)handle;
	return h ? h->ops->mapping_delete(h) : -EINVAL;
}

int pm_engine_mapping_delete(struct pm_handle *h)
{
	struct pm_mapping *m = (struct pm_mapping *)h;
	if (m->kind == PCPMAP_KIND_PEER)
		return -EOPNOTSUPP;
	if (m->state == PCPMAP_STATE_DELETING || m->state == PCPMAP_STATE_DELETED)
		return -EALREADY;
	pcpmap_client *c = m->client;
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	if (m->pair) {
		/* The companion goes too; the owner's event speaks for the pair. */
		struct pm_mapping *p = m->pair;
		p->pair_owner = NULL;
		m->pair = NULL;
		if (p->state != PCPMAP_STATE_FAILED)
			pm_mapping_fsm(p, FSM_EV_DELETE);
		else
			pm_mapping_destroy(p);
	}
	bool sent = m->server && m->last_send;
	pm_mapping_fsm(m, FSM_EV_DELETE);
	return sent && m->state == PCPMAP_STATE_DELETING ? 0 : 1;
}

PCPMAP_EXPORT pcpmap_mapping *pcpmap_mapping_abandon(pcpmap_mapping *handle)
{
	struct pm_handle *h = (struct pm_handle *)handle;
	if (h)
		h->ops->mapping_abandon(h);
	return NULL;
}

void pm_engine_mapping_abandon(struct pm_handle *h)
{
	pm_mapping_destroy((struct pm_mapping *)h);
}

void pm_engine_mapping_set_callback(struct pm_handle *h, pcpmap_event_fn cb, void *userdata)
{
	struct pm_mapping *m = (struct pm_mapping *)h;
	m->cb = cb;
	m->userdata = userdata;
}

void pm_engine_mapping_get_info(const struct pm_handle *h, struct pcpmap_mapping_info *ret)
{
	fill_info((const struct pm_mapping *)h, ret);
}

PCPMAP_EXPORT int pcpmap_mapping_get_info_sized(const pcpmap_mapping *handle, struct pcpmap_mapping_info *ret,
						size_t size)
{
	const struct pm_handle *h = (const struct pm_handle *)handle;
	struct pcpmap_mapping_info full;
	if (!h || !ret || size < PM_INFO_SIZE_V0)
		return -EINVAL;
	h->ops->mapping_get_info(h, &full);
	memcpy(ret, &full, size < sizeof(full) ? size : sizeof(full));
	return 0;
}

PCPMAP_EXPORT int(pcpmap_mapping_get_info)(const pcpmap_mapping *handle, struct pcpmap_mapping_info *ret)
{
	return pcpmap_mapping_get_info_sized(handle, ret, PM_INFO_SIZE_V0);
}

/* Port pairs (RTP/RTCP): the owner maps internal N to an even external port E, the companion maps N + 1 to
 * E + 1 pinned with PREFER_FAILURE. The first try carries PORT_RESERVATION, the second PORT_SET (size 2,
 * parity); the pair is verified from the assigned ports, never from an echoed option, and a failed try is
 * rolled back before the next one. */
static void pair_fail(struct pm_mapping *owner, int err);

static void pair_retry(struct pm_mapping *owner, uint16_t next_suggestion)
{
	pcpmap_client *c = owner->client;
	if (++owner->pair_tries >= PAIR_MAX_TRIES) {
		pair_fail(owner, -EADDRINUSE);
		return;
	}
	/* Roll back both halves; the owner starts over with a fresh nonce and the next even suggestion. */
	if (owner->pair) {
		struct pm_mapping *p = owner->pair;
		p->pair_owner = NULL;
		owner->pair = NULL;
		pm_mapping_fsm(p, FSM_EV_DELETE);
	}
	/* The owner's half is deleted by a mapping of its own (retried, and visible to a create of the same
	 * port that must not overtake it); the owner starts over with a fresh nonce. */
	give_back(owner);
	owner->have_grant = false;
	pm_mapping_fsm(owner, FSM_EV_RESTART);
	owner->has_pair_nonce = false; /* a new pair: new nonces for both halves */
	owner->suggested_port = next_suggestion;
	owner->port_reservation = false;
	owner->port_set = owner->pair_tries == 1;
	pm_log(c, PCPMAP_LOG_INFO, "mapping %llu: port pair try %u suggesting %u",
	       (unsigned long long)owner->id, owner->pair_tries + 1, next_suggestion);
	pm_gw_attach(owner);
}

static void pair_fail(struct pm_mapping *owner, int err)
{
	if (owner->pair) {
		struct pm_mapping *p = owner->pair;
		p->pair_owner = NULL;
		owner->pair = NULL;
		pm_mapping_fsm(p, FSM_EV_DELETE);
	}
	if (owner->have_grant)
		owner->server->ops->send(owner->server, owner, true);
	owner->have_grant = false;
	owner->error = err;
	pm_mapping_fsm(owner, FSM_EV_ERR_FATAL);
}

static uint16_t next_even(uint16_t port)
{
	uint32_t p = (uint32_t)port + 2;
	p &= ~1u;
	if (p < 1024 || p > 65534)
		p = 1024 + 2u * (uint32_t)(port % 1000);
	return (uint16_t)p;
}

static void pair_on_owner_mapped(struct pm_mapping *owner)
{
	pcpmap_client *c = owner->client;
	struct pm_mapping *p = owner->pair;

	if (owner->state != PCPMAP_STATE_MAPPED && owner->state != PCPMAP_STATE_REFRESHING)
		return;
	if (!p) {
		if (owner->ext_port & 1) {
			pair_retry(owner, next_even(owner->ext_port));
			return;
		}
		/* Start the companion for N + 1 -> E + 1. */
		p = mapping_alloc(c);
		if (!p) {
			pair_fail(owner, -ENOMEM);
			return;
		}
		p->kind = PCPMAP_KIND_MAP;
		p->ip_proto = owner->ip_proto;
		p->internal_port = (uint16_t)(owner->internal_port + 1);
		p->family = owner->family;
		p->suggested_port = (uint16_t)(owner->ext_port + 1);
		p->suggested_addr = owner->ext_addr;
		p->has_suggested_addr = true;
		p->req_lifetime = owner->req_lifetime;
		p->prefer_failure = true;
		p->has_third_party = owner->has_third_party;
		p->third_party = owner->third_party;
		p->protocols = owner->protocols;
		p->deadline_us = owner->deadline_us;
		p->gw = owner->gw;
		p->pair_owner = owner;
		if (owner->has_pair_nonce)
			memcpy(p->nonce, owner->pair_nonce, PCP_NONCE_LEN);
		if (pm_mapping_link(p) < 0) {
			mapping_free_mem(p);
			pair_fail(owner, -ENOMEM);
			return;
		}
		owner->pair = p;
		owner->port_pair_owner_pending = true;
		mapping_start(p);
		return;
	}
	/* Called for the companion's grant too: the pair is complete when both hold. */
	if (p->have_grant && owner->have_grant && p->ext_port == owner->ext_port + 1 &&
	    (p->state == PCPMAP_STATE_MAPPED || p->state == PCPMAP_STATE_REFRESHING)) {
		if (owner->port_pair_owner_pending) {
			owner->port_pair_owner_pending = false;
			owner->pair_method = owner->pair_tries == 0   ? PCPMAP_PAIR_PORT_RESERVATION
					     : owner->pair_tries == 1 ? PCPMAP_PAIR_PORT_SET
								      : PCPMAP_PAIR_TWO_MAPS;
		}
		notify_mapped(owner);
		return;
	}
	if (p->have_grant && p->ext_port != owner->ext_port + 1) {
		/* The owner's port moved (gateway state loss, a late answer): the pair is broken. The companion
		 * goes, a new one follows the owner, and the pair is reported again once whole (CHANGED). */
		p->pair_owner = NULL;
		owner->pair = NULL;
		pm_mapping_fsm(p, FSM_EV_DELETE);
		pair_on_owner_mapped(owner);
	}
}

/* The companion failed for good (EADDRINUSE from PREFER_FAILURE, or another refusal). */
void pm_mapping_pair_companion_failed(struct pm_mapping *p)
{
	struct pm_mapping *owner = p->pair_owner;
	if (!owner)
		return;
	if (p->error == -EADDRINUSE || p->result_code == PCP_RES_CANNOT_PROVIDE_EXTERNAL)
		pair_retry(owner, next_even(owner->ext_port));
	else
		pair_fail(owner, p->error ? p->error : -EPROTO);
}

/* Blocking convenience built on get_fd / get_timeout / process. */
struct sync_wait {
	pcpmap_event_fn user_cb;
	void *user_ud;
	bool done;
	int err;
};

static bool sync_done(pcpmap_client *c, void *ud)
{
	(void)c;
	return ((struct sync_wait *)ud)->done;
}

static void sync_cb(pcpmap_mapping *mh, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		    void *ud)
{
	struct sync_wait *w = ud;
	if (w->done)
		return;
	if (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) {
		w->done = true;
		w->err = 0;
	} else if (ev == PCPMAP_EVENT_FAILED) {
		w->done = true;
		w->err = info->error ? info->error : -EPROTO;
	}
	(void)mh;
}

PCPMAP_EXPORT int pcpmap_map_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
				  pcpmap_mapping **ret_mapping, struct pcpmap_mapping_info *ret_info)
{
	struct sync_wait w = { 0 };
	struct pcpmap_request r;
	pcpmap_mapping *mh;
	int err;

	if (!c || !req || !ret_mapping || !req->size || req->size > sizeof(r))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	memcpy(&r, req, req->size);
	r.size = sizeof(r);
	w.user_cb = req->callback;
	w.user_ud = req->userdata;
	r.callback = sync_cb;
	r.userdata = &w;
	err = pcpmap_mapping_new(c, &r, &mh);
	if (err < 0)
		return err;
	err = pm_client_wait(c, sync_done, &w, timeout_ms);
	if (w.done)
		err = w.err;
	if (ret_info)
		pcpmap_mapping_get_info(mh, ret_info);
	if (err < 0) {
		if (err == -ETIMEDOUT && ret_info && !ret_info->error)
			ret_info->error = -ETIMEDOUT;
		pcpmap_mapping_free(mh);
		return err;
	}
	/* Mapped: the caller's callback from now on (a daemon-mode handle is not an engine mapping). */
	struct pm_handle *h = (struct pm_handle *)mh;
	h->ops->mapping_set_callback(h, w.user_cb, w.user_ud);
	*ret_mapping = mh;
	return 0;
}

static bool nothing_deleting(pcpmap_client *c, void *ud)
{
	(void)ud;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next)
		if (pm_container_of(l, struct pm_mapping, link)->state == PCPMAP_STATE_DELETING)
			return false;
	return true;
}

PCPMAP_EXPORT int pcpmap_client_flush(pcpmap_client *c, int timeout_ms)
{
	return c ? c->ops->flush(c, timeout_ms) : -EINVAL;
}

int pm_engine_flush(pcpmap_client *c, int timeout_ms)
{
	if (nothing_deleting(c, NULL))
		return 0;
	return pm_client_wait(c, nothing_deleting, NULL, timeout_ms < 0 ? 0 : timeout_ms);
}

struct unmap_wait {
	bool done;
	int err;
	struct pcpmap_mapping_info info;
};

static bool unmap_done(pcpmap_client *c, void *ud)
{
	(void)c;
	return ((struct unmap_wait *)ud)->done;
}

static void unmap_cb(pcpmap_mapping *mh, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct unmap_wait *w = ud;
	(void)mh;
	if (ev == PCPMAP_EVENT_DELETED || ev == PCPMAP_EVENT_FAILED) {
		w->done = true;
		w->err = ev == PCPMAP_EVENT_DELETED ? 0 : info->error ? info->error : -EPROTO;
		w->info = *info;
	}
}

PCPMAP_EXPORT int pcpmap_unmap_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
				    struct pcpmap_mapping_info *ret_info)
{
	if (!c || !req || req->kind != PCPMAP_KIND_MAP)
		return -EINVAL;
	return c->ops->unmap_sync(c, req, timeout_ms, ret_info);
}

int pm_engine_unmap_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
			 struct pcpmap_mapping_info *ret_info)
{
	struct unmap_wait w = { 0 };
	int err;

	if (c->n_mappings >= c->cfg.max_mappings)
		return -ENOSPC;
	struct pm_mapping *m = mapping_alloc(c);
	if (!m)
		return -ENOMEM;
	err = validate_and_copy(c, req, m);
	if (err < 0) {
		mapping_free_mem(m);
		return err;
	}
	m->cb = unmap_cb;
	m->userdata = &w;
	if (pm_mapping_link(m) < 0) {
		mapping_free_mem(m);
		return -ENOMEM;
	}
	m->user_owned = true;
	m->unmap_only = true;
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	/* PCP deletes by nonce; without PCP the first allowed protocol deletes by ports. */
	enum pcpmap_proto proto = PCPMAP_PROTO_NONE;
	if (!(m->protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP)))
		proto = (m->protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP)) ? PCPMAP_PROTO_NATPMP
									       : PCPMAP_PROTO_UPNP;
	err = pm_client_server_for(c, m->family, proto, &m->server);
	if (err < 0) {
		pm_mapping_destroy(m);
		return err;
	}
	m->gw = m->server->gw;
	pm_mapping_fsm(m, FSM_EV_UNMAP);
	err = pm_client_wait(c, unmap_done, &w, timeout_ms < 0 ? 0 : timeout_ms);
	if (w.done) {
		err = w.err;
		if (ret_info)
			*ret_info = w.info;
		/* Released by the state machine once the user gives it up. */
		pm_mapping_destroy(m);
		return err;
	}
	if (ret_info)
		fill_info(m, ret_info);
	pm_mapping_destroy(m);
	return err;
}
