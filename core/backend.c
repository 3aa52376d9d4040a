/* The engine's side of core/backend.h: the read-only view and the queries a backend gets instead of the
 * engine's structs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gwcache.h"
#include "internal.h"

void pm_mapping_req(const struct pm_mapping *m, struct pm_req *req)
{
	memset(req, 0, sizeof(*req));
	req->id = m->id;
	req->server = m->server;
	req->state = m->state;
	req->del = m->state == PCPMAP_STATE_DELETING;
	req->sent = m->last_send != 0;
	req->unmap_only = m->unmap_only;
	req->kind = m->kind;
	req->ip_proto = m->ip_proto;
	req->internal_port = m->internal_port;
	req->family = m->family;
	req->suggested_port = m->suggested_port;
	req->suggested_addr = m->suggested_addr;
	req->req_lifetime = m->req_lifetime;
	req->prefer_failure = m->prefer_failure;
	req->has_third_party = m->has_third_party;
	req->third_party = m->third_party;
	req->n_filters = m->n_filters;
	req->filters = m->filters;
	req->description = m->description;
	req->port_reservation = m->port_reservation;
	req->port_set = m->port_set;
	req->peer_addr = m->peer_addr;
	req->peer_port = m->peer_port;
	memcpy(req->nonce, m->nonce, PCP_NONCE_LEN);
	req->have_grant = m->have_grant;
	req->ext_addr = m->ext_addr;
	req->ext_port = m->ext_port;
	req->lifetime = m->lifetime;
	req->epoch = m->epoch;
}

pcpmap_client *pm_server_client(const struct pm_server *s)
{
	return s->client;
}

const char *pm_server_name(const struct pm_server *s)
{
	return s->name;
}

const struct pm_sockaddr *pm_server_addr(const struct pm_server *s)
{
	return &s->addr;
}

const struct pm_sockaddr *pm_server_local(const struct pm_server *s)
{
	return &s->local;
}

void pm_server_set_local(struct pm_server *s, const struct pm_sockaddr *local)
{
	s->local = *local;
}

const struct pm_backend_ops *pm_server_ops(const struct pm_server *s)
{
	return s->ops;
}

void *pm_server_priv(const struct pm_server *s)
{
	return s->priv;
}

void pm_server_set_priv(struct pm_server *s, void *priv)
{
	s->priv = priv;
}

int pm_server_last_error(const struct pm_server *s)
{
	return s->last_error;
}

bool pm_server_announcing(const struct pm_server *s)
{
	return s->client->announce.server == s;
}

uint64_t pm_client_now(const pcpmap_client *c)
{
	return c->now;
}

struct sched *pm_client_sched(pcpmap_client *c)
{
	return &c->sched;
}

bool pm_client_tracing(const pcpmap_client *c)
{
	return c->cfg.trace != NULL;
}

size_t pm_client_max_mappings(const pcpmap_client *c)
{
	return c->cfg.max_mappings;
}

size_t pm_client_n_mappings(const pcpmap_client *c)
{
	return c->n_mappings;
}

const struct pcp_codec_cfg *pm_client_codec(const pcpmap_client *c)
{
	return &c->codec;
}

void pm_client_count(pcpmap_client *c, enum pm_stat which)
{
	switch (which) {
	case PM_STAT_SENT:
		c->stats.sent++;
		break;
	case PM_STAT_RECEIVED:
		c->stats.received++;
		break;
	case PM_STAT_DROPPED:
		c->stats.dropped++;
		break;
	case PM_STAT_RETRANSMITS:
		c->stats.retransmits++;
		break;
	}
}

struct pm_mapping *pm_server_find_mapping(struct pm_server *s, uint64_t id)
{
	struct pm_mapping *m = pm_client_find_mapping(s->client, id);
	return m && m->server == s ? m : NULL;
}

size_t pm_server_live_ids(struct pm_server *s, uint64_t *ids, size_t cap)
{
	pcpmap_client *c = s->client;
	size_t n = 0;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings && n < cap; l = l->next) {
		const struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (m->server == s && m->state != PCPMAP_STATE_FAILED && m->state != PCPMAP_STATE_DELETED)
			ids[n++] = m->id;
	}
	return n;
}

bool pm_server_holds_port(struct pm_server *s, uint8_t ip_proto, uint16_t internal_port)
{
	pcpmap_client *c = s->client;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		const struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (m->server == s && m->internal_port == internal_port && m->ip_proto == ip_proto)
			return true;
	}
	return false;
}

void pm_mapping_nonce_spent(struct pm_mapping *m)
{
	pm_mapping_renonce(m, NULL);
}

void pm_mapping_note_detail(struct pm_mapping *m, const char *detail)
{
	pm_mapping_set_detail(m, "%s", detail);
}

void pm_server_on_ext_addr(struct pm_server *s, const struct pcp_addr *addr)
{
	pcpmap_client *c = s->client;
	struct pm_walk walk;
	pm_walk_begin(c, &walk);
	for (struct pm_mapping *m; (m = pm_walk_next(c, &walk));) {
		if (m->server == s && m->state == PCPMAP_STATE_MAPPED && m->have_grant &&
		    memcmp(&m->ext_addr, addr, sizeof(*addr)) != 0)
			pm_mapping_fsm(m, FSM_EV_RENEW_TIMER);
	}
}

bool pm_server_refused(const struct pm_server *s, enum pcpmap_proto p, bool first_only)
{
	const struct pm_gw *gw = s->gw;
	return gw && gw->status[p] == PM_P_NO && gw->err[p] == -ECONNREFUSED &&
	       (!first_only || gw->fail_count == 0);
}

int pm_server_upnp_memo(const struct pm_server *s, struct pm_upnp_memo *ret)
{
	const struct pm_gwc_entry *e = pm_gw_memo_upnp_hint(s);
	if (!e)
		return -ENOENT;
	ret->url = e->url;
	ret->st = e->st;
	ret->lan = e->lan;
	return 0;
}

void pm_server_upnp_found(struct pm_server *s, const char *url, const char *st, const char *lan)
{
	pm_gw_memo_upnp(s, url, st, lan);
}
