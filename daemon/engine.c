/* SPDX-License-Identifier: MIT */
/* pcpmapd engine side: the mappings the daemon holds (library handles, their events, the requests that
 * create, list and delete them), and their persistence in the state directory. */
#include <errno.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/daemon.h"
#include "daemon/policy.h"
#include "daemon/sockown.h"

static struct daemon *engine_d; /* for the library's callbacks, which carry only the mapping */

void engine_init(struct daemon *d)
{
	engine_d = d;
}

/* ---- helpers ---- */

const char *ipproto_str(uint8_t p)
{
	return p == IPPROTO_TCP    ? "tcp"
	       : p == IPPROTO_UDP  ? "udp"
	       : p == IPPROTO_SCTP ? "sctp"
	       : p == 0            ? "all"
				   : "?";
}

uint32_t secs_until(uint64_t when, uint64_t now)
{
	if (when <= now)
		return 0;
	uint64_t s = (when - now + 999999u) / 1000000u;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static struct dmap *find_map(struct daemon *d, uint32_t id)
{
	for (struct dmap *m = d->maps; m; m = m->next)
		if (m->rec.id == id && !m->cleanup)
			return m;
	return NULL;
}

static bool id_in_use(struct daemon *d, uint32_t id)
{
	for (struct dmap *m = d->maps; m; m = m->next)
		if (m->rec.id == id)
			return true;
	return false;
}

static uint32_t new_id(struct daemon *d)
{
	do {
		if (!d->next_id)
			d->next_id = 1;
	} while (id_in_use(d, d->next_id++));
	return d->next_id - 1;
}

/* The policy's view of the mappings held (malloc'd; free() it). @return its length; 0 also on ENOMEM. */
static size_t owner_table(struct daemon *d, struct pmd_owner **ret)
{
	size_t n = 0;
	for (struct dmap *m = d->maps; m; m = m->next)
		n++;
	struct pmd_owner *o = calloc(n ? n : 1, sizeof(*o));
	*ret = o;
	if (!o)
		return 0;
	n = 0;
	for (struct dmap *m = d->maps; m; m = m->next, n++) {
		o[n].id = m->rec.id;
		o[n].uid = m->rec.uid;
		o[n].ip_proto = m->rec.req.ip_proto;
		o[n].internal_port = m->rec.req.internal_port;
		o[n].internal_addr = m->own_addr;
		o[n].leftover = m->cleanup;
	}
	return n;
}

uint32_t count_maps(struct daemon *d, bool by_uid, uid_t uid)
{
	uint32_t n = 0;
	for (struct dmap *m = d->maps; m; m = m->next)
		if (!m->cleanup && (!by_uid || m->rec.uid == uid))
			n++;
	return n;
}

static void map_link(struct daemon *d, struct dmap *m)
{
	m->prev = NULL;
	m->next = d->maps;
	if (d->maps)
		d->maps->prev = m;
	d->maps = m;
}

static void map_unlink_free(struct daemon *d, struct dmap *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		d->maps = m->next;
	if (m->next)
		m->next->prev = m->prev;
	free(m);
	d->dirty = true;
}

/* Strips a zone and parses a numeric address. */
static int parse_ip(const char *s, int *ret_family, unsigned char out[16])
{
	char buf[PMD_IPC_ADDR_MAX + 1];
	snprintf(buf, sizeof(buf), "%s", s);
	char *zone = strchr(buf, '%');
	if (zone)
		*zone = '\0';
	if (inet_pton(AF_INET, buf, out) == 1) {
		*ret_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, out) == 1) {
		*ret_family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* Whether addr is assigned to one of this host's interfaces. */
static bool is_local_addr(const char *addr)
{
	unsigned char want[16];
	int fam;
	struct ifaddrs *ifa, *i;
	bool found = false;
	if (parse_ip(addr, &fam, want) < 0 || getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != fam)
			continue;
		if (fam == AF_INET) {
			const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)i->ifa_addr;
			found = !memcmp(&s->sin_addr, want, 4);
		} else {
			const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
			found = !memcmp(&s->sin6_addr, want, 16);
		}
	}
	freeifaddrs(ifa);
	return found;
}

/* ---- mappings: description messages ---- */

static void fill_mapping(struct dmap *dm, const struct pcpmap_mapping_info *in, bool show_nonce,
			 struct pmd_ipc_msg *m)
{
	struct pcpmap_mapping_info info;
	uint64_t now = pcpmap_now_usec();
	bool have_info = true;
	if (in) {
		info = *in;
	} else if (!dm->m || pcpmap_mapping_get_info(dm->m, &info) < 0) {
		memset(&info, 0, sizeof(info));
		have_info = false;
	}
	const struct pmd_ipc_req *q = &dm->rec.req;
	m->id = dm->rec.id;
	pmd_ipc_set(m, PMD_A_ID);
	m->req = *q;
	pmd_ipc_set(m, PMD_A_KIND);
	pmd_ipc_set(m, PMD_A_IP_PROTO);
	pmd_ipc_set(m, PMD_A_INTERNAL_PORT);
	pmd_ipc_set(m, PMD_A_FAMILY);
	if (q->suggested_port)
		pmd_ipc_set(m, PMD_A_SUGGESTED_PORT);
	if (q->suggested_addr[0])
		pmd_ipc_set(m, PMD_A_SUGGESTED_ADDR);
	if (q->third_party[0])
		pmd_ipc_set(m, PMD_A_THIRD_PARTY);
	if (q->description[0])
		pmd_ipc_set(m, PMD_A_DESCRIPTION);
	if (q->kind == PCPMAP_KIND_PEER) {
		pmd_ipc_set(m, PMD_A_PEER_ADDR);
		pmd_ipc_set(m, PMD_A_PEER_PORT);
	}
	if (q->protocols)
		pmd_ipc_set(m, PMD_A_PROTOCOLS);
	if (q->deadline_ms)
		pmd_ipc_set(m, PMD_A_DEADLINE_MS);
	if (show_nonce) {
		memcpy(m->req.nonce, have_info ? info.nonce : q->nonce, PMD_IPC_NONCE_LEN);
		pmd_ipc_set(m, PMD_A_NONCE);
	}
	/* The granted lifetime once there is one, the requested one before. */
	if (info.lifetime)
		m->req.lifetime = info.lifetime;
	pmd_ipc_set(m, PMD_A_LIFETIME);
	m->persistent = dm->rec.persistent;
	m->state = (uint8_t)info.state;
	pmd_ipc_set(m, PMD_A_STATE);
	m->proto = (uint8_t)info.proto;
	pmd_ipc_set(m, PMD_A_PROTO);
	pmd_ipc_copy_str(m->server, sizeof(m->server), info.server);
	pmd_ipc_set(m, PMD_A_SERVER);
	pmd_ipc_copy_str(m->internal_addr, sizeof(m->internal_addr), info.internal_addr);
	pmd_ipc_set(m, PMD_A_INTERNAL_ADDR);
	pmd_ipc_copy_str(m->external_addr, sizeof(m->external_addr), info.external_addr);
	pmd_ipc_set(m, PMD_A_EXTERNAL_ADDR);
	m->external_port = info.external_port;
	pmd_ipc_set(m, PMD_A_EXTERNAL_PORT);
	if (info.external_port2) {
		m->external_port2 = info.external_port2;
		pmd_ipc_set(m, PMD_A_EXTERNAL_PORT2);
	}
	if (info.pair_method) {
		m->pair_method = (uint8_t)info.pair_method;
		pmd_ipc_set(m, PMD_A_PAIR_METHOD);
	}
	if (info.expires_usec) {
		m->expires_in = secs_until(info.expires_usec, now);
		pmd_ipc_set(m, PMD_A_EXPIRES_IN);
	}
	if (info.refresh_usec) {
		m->refresh_in = secs_until(info.refresh_usec, now);
		pmd_ipc_set(m, PMD_A_REFRESH_IN);
	}
	if (info.retry_usec && info.state == PCPMAP_STATE_ERROR_WAIT_RESEND) {
		m->retry_in = secs_until(info.retry_usec, now);
		pmd_ipc_set(m, PMD_A_RETRY_IN);
	}
	m->epoch = info.epoch;
	pmd_ipc_set(m, PMD_A_EPOCH);
	if (info.error) {
		m->error = (uint32_t)(info.error < 0 ? -info.error : info.error);
		pmd_ipc_set(m, PMD_A_ERRNO);
	}
	if (info.result_code) {
		m->result_code = (uint16_t)info.result_code;
		pmd_ipc_set(m, PMD_A_RESULT_CODE);
	}
	m->owner_uid = dm->rec.uid;
	pmd_ipc_set(m, PMD_A_OWNER_UID);
	m->external_private = info.external_is_private;
}

static void reply_mapping(struct daemon *d, struct conn *c, uint32_t seq, struct dmap *dm,
			  const struct pcpmap_mapping_info *info)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_MAPPING, seq);
	fill_mapping(dm, info, c->uid == 0 || c->uid == dm->rec.uid, &m);
	send_msg(d, c, &m);
}

/* Events go to subscribers that own the mapping, and to root's. */
static void push_event(struct daemon *d, struct dmap *dm, enum pcpmap_event ev,
		       const struct pcpmap_mapping_info *info)
{
	struct pmd_ipc_msg m;
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	bool encoded = false;
	for (struct conn *c = d->conns; c; c = c->next) {
		if (!c->subscribed || c->dead || (c->uid != 0 && c->uid != dm->rec.uid))
			continue;
		if (!encoded) {
			pmd_ipc_init(&m, PMD_MSG_EVENT, 0);
			fill_mapping(dm, info, true, &m);
			m.event = (uint8_t)ev;
			pmd_ipc_set(&m, PMD_A_EVENT);
			if (pmd_ipc_encode(&m, buf, sizeof(buf), &len) < 0) {
				logm(3, "cannot encode an event of mapping %u", dm->rec.id);
				return;
			}
			encoded = true;
		}
		conn_send(d, c, buf, len);
	}
}

/* ---- mappings: engine side ---- */

static void to_request(const struct pmd_ipc_req *q, bool with_nonce, struct pcpmap_request *r,
		       struct pcpmap_filter filters[PMD_IPC_MAX_FILTERS])
{
	pcpmap_request_init(r, q->kind == PCPMAP_KIND_PEER ? PCPMAP_KIND_PEER : PCPMAP_KIND_MAP);
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
	r->nonce = with_nonce ? q->nonce : NULL;
}

/* Keeps the record in step with the engine: nonce (a pair retry draws a new one), last grant, expiry. */
static void update_rec(struct daemon *d, struct dmap *dm, const struct pcpmap_mapping_info *info)
{
	struct pmd_state_rec *r = &dm->rec;
	if (memcmp(r->req.nonce, info->nonce, PMD_IPC_NONCE_LEN)) {
		memcpy(r->req.nonce, info->nonce, PMD_IPC_NONCE_LEN);
		d->dirty = true;
	}
	if ((info->state == PCPMAP_STATE_MAPPED || info->state == PCPMAP_STATE_REFRESHING) &&
	    info->external_addr[0]) {
		char ext[PMD_IPC_ADDR_MAX + 1];
		pmd_ipc_copy_str(ext, sizeof(ext), info->external_addr);
		if (strcmp(ext, r->external_addr) || info->external_port != r->external_port) {
			strcpy(r->external_addr, ext);
			r->external_port = info->external_port;
			d->dirty = true;
		}
		if (info->expires_usec) {
			uint64_t now = pcpmap_now_usec();
			int64_t exp = (int64_t)time(NULL) + (int64_t)secs_until(info->expires_usec, now);
			/* Rewrite the file for expiry only when it moved by more than a minute. */
			if (r->expires < exp - 60 || r->expires > exp + 60) {
				r->expires = exp;
				d->dirty = true;
			}
		}
	}
}

static void on_event(pcpmap_mapping *pm, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct daemon *d = engine_d;
	struct dmap *dm = ud;
	update_rec(d, dm, info);
	if (dm->cleanup) {
		if (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) {
			logm(5,
			     "leftover mapping %u (%s %u, uid %u) deleted: re-created with its old nonce and "
			     "freed",
			     dm->rec.id, ipproto_str(dm->rec.req.ip_proto), dm->rec.req.internal_port,
			     (unsigned)dm->rec.uid);
			pcpmap_mapping_free(pm);
			map_unlink_free(d, dm);
		} else if (ev == PCPMAP_EVENT_FAILED && info->state == PCPMAP_STATE_FAILED) {
			logm(4, "leftover mapping %u (%s %u) could not be deleted: %s; it expires on its own",
			     dm->rec.id, ipproto_str(dm->rec.req.ip_proto), dm->rec.req.internal_port,
			     pcpmap_strerror(info->error));
			pcpmap_mapping_free(pm);
			map_unlink_free(d, dm);
		}
		return;
	}
	int lvl = ev == PCPMAP_EVENT_FAILED || ev == PCPMAP_EVENT_LOST ? 5 : 6;
	logm(lvl, "mapping %u: %s %s %s:%u -> %s:%u via %s%s%s", dm->rec.id, pcpmap_event_name(ev),
	     ipproto_str(info->ip_proto), info->internal_addr, info->internal_port, info->external_addr,
	     info->external_port, pcpmap_proto_name(info->proto), info->error ? ": " : "",
	     info->error ? pcpmap_strerror(info->error) : "");
	push_event(d, dm, ev, info);
	if (dm->waiter &&
	    (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED || ev == PCPMAP_EVENT_FAILED)) {
		reply_mapping(d, dm->waiter, dm->wait_seq, dm, info);
		dm->waiter = NULL;
		dm->wait_deadline = 0;
	}
}

/* Frees the engine mapping (a delete on the gateway for MAP) and the record; tells subscribers. */
static void delete_map(struct daemon *d, struct dmap *dm, const char *why)
{
	struct pcpmap_mapping_info info;
	if (dm->m && pcpmap_mapping_get_info(dm->m, &info) == 0) {
		info.state = PCPMAP_STATE_DELETING;
		push_event(d, dm, PCPMAP_EVENT_DELETED, &info);
	}
	logm(6, "mapping %u (%s %u, uid %u) deleted: %s", dm->rec.id, ipproto_str(dm->rec.req.ip_proto),
	     dm->rec.req.internal_port, (unsigned)dm->rec.uid, why);
	if (dm->waiter) {
		/* A CREATE still waiting for its outcome learns it now. */
		reply_mapping(d, dm->waiter, dm->wait_seq, dm, NULL);
		dm->waiter = NULL;
	}
	pcpmap_mapping_free(dm->m);
	map_unlink_free(d, dm);
}

static int engine_new(struct daemon *d, struct dmap *dm, bool with_nonce)
{
	struct pcpmap_request r;
	struct pcpmap_filter filters[PMD_IPC_MAX_FILTERS];
	to_request(&dm->rec.req, with_nonce, &r, filters);
	r.callback = on_event;
	r.userdata = dm;
	d->capture = true;
	d->captured[0] = '\0';
	int e = pcpmap_mapping_new(d->client, &r, &dm->m);
	d->capture = false;
	if (e < 0)
		return e;
	struct pcpmap_mapping_info info;
	if (pcpmap_mapping_get_info(dm->m, &info) == 0)
		memcpy(dm->rec.req.nonce, info.nonce, PMD_IPC_NONCE_LEN);
	return 0;
}

/* ---- requests ---- */

void do_create(struct daemon *d, struct conn *c, struct pmd_ipc_msg *msg)
{
	struct pmd_ipc_req *q = &msg->req;
	uint32_t seq = msg->seq;
	if (!pmd_ipc_has(msg, PMD_A_IP_PROTO) || !pmd_ipc_has(msg, PMD_A_INTERNAL_PORT)) {
		reply_error(d, c, seq, -EINVAL, "CREATE needs IP_PROTO and INTERNAL_PORT");
		return;
	}
	if (!pmd_ipc_has(msg, PMD_A_KIND))
		q->kind = PCPMAP_KIND_MAP;
	if (q->kind != PCPMAP_KIND_MAP && q->kind != PCPMAP_KIND_PEER) {
		reply_error(d, c, seq, -EINVAL, "KIND must be 1 (MAP) or 2 (PEER), not %u", q->kind);
		return;
	}
	if (!pmd_ipc_has(msg, PMD_A_FAMILY))
		q->family = 4;
	if (q->family != 4 && q->family != 6) {
		reply_error(d, c, seq, -EINVAL, "FAMILY must be 4 or 6, not %u", q->family);
		return;
	}
	/* Authorization and quotas (daemon/policy.c); only the lookups that need I/O are done here. */
	char own_addr[PMD_IPC_ADDR_MAX + 1] = "";
	bool tp_local = q->third_party[0] && is_local_addr(q->third_party);
	if (q->third_party[0] && !tp_local)
		pmd_ipc_copy_str(own_addr, sizeof(own_addr), q->third_party);
	struct pmd_policy_req pq = {
		.uid = (uint32_t)c->uid,
		.ip_proto = q->ip_proto,
		.internal_port = q->internal_port,
		.internal_addr = own_addr,
		.third_party = q->third_party[0] != '\0',
		.third_party_local = tp_local,
		.persistent = msg->persistent,
		.peer = q->kind == PCPMAP_KIND_PEER,
	};
	struct pmd_owner *owners = NULL;
	size_t n_owners = owner_table(d, &owners);
	char why[400];
	int pe = pmd_policy_create(&d->cfg, &pq, owners, n_owners, pmd_sock_held, NULL, why, sizeof(why));
	free(owners);
	if (pe < 0) {
		if (pe == -EPERM || pe == -EADDRINUSE || pe == -EPROTONOSUPPORT)
			logm(5, "uid %u (pid %d) refused %s %u: %s", (unsigned)c->uid, (int)c->pid,
			     ipproto_str(q->ip_proto), q->internal_port, why);
		reply_error(d, c, seq, pe, "%s", why);
		return;
	}
	if (!q->lifetime)
		q->lifetime = d->cfg.default_lifetime;
	if (q->lifetime > d->cfg.max_lifetime)
		q->lifetime = d->cfg.max_lifetime;
	if (q->protocols) {
		uint32_t allowed = d->cfg.protocols ? d->cfg.protocols : PCPMAP_PROTOS_ALL;
		if (!(q->protocols & allowed)) {
			reply_error(d, c, seq, -EPROTONOSUPPORT,
				    "none of the requested protocols (mask 0x%x) is enabled in this daemon",
				    q->protocols);
			return;
		}
		q->protocols &= allowed;
	}
	struct dmap *dm = calloc(1, sizeof(*dm));
	if (!dm) {
		reply_error(d, c, seq, -ENOMEM, "out of memory");
		return;
	}
	dm->rec.id = new_id(d);
	dm->rec.uid = (uint32_t)c->uid;
	dm->rec.persistent = msg->persistent;
	dm->rec.req = *q;
	memcpy(dm->own_addr, own_addr, sizeof(dm->own_addr));
	dm->conn = c;
	int e = engine_new(d, dm, pmd_ipc_has(msg, PMD_A_NONCE));
	if (e < 0) {
		reply_error(d, c, seq, e, "%s", d->captured[0] ? d->captured : pcpmap_strerror(e));
		free(dm);
		return;
	}
	map_link(d, dm);
	d->dirty = true;
	logm(6, "mapping %u: uid %u (pid %d) asks %s %s %u%s%s", dm->rec.id, (unsigned)c->uid, (int)c->pid,
	     q->kind == PCPMAP_KIND_PEER ? "PEER" : "MAP", ipproto_str(q->ip_proto), q->internal_port,
	     q->family == 6 ? " IPv6" : "", msg->persistent ? ", persistent" : "");
	if (pmd_ipc_has(msg, PMD_A_WAIT_MS) && msg->wait_ms) {
		uint32_t w = msg->wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS : msg->wait_ms;
		dm->waiter = c;
		dm->wait_seq = seq;
		dm->wait_deadline = pcpmap_now_usec() + (uint64_t)w * 1000u;
	} else {
		reply_mapping(d, c, seq, dm, NULL);
	}
}

void do_delete(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
{
	if (!pmd_ipc_has(msg, PMD_A_ID)) {
		reply_error(d, c, msg->seq, -EINVAL, "DELETE needs ID");
		return;
	}
	struct dmap *dm = find_map(d, msg->id);
	if (!dm) {
		reply_error(d, c, msg->seq, -ENOENT, "no mapping %u", msg->id);
		return;
	}
	if (c->uid != 0 && c->uid != dm->rec.uid) {
		logm(5, "uid %u (pid %d) may not delete mapping %u of uid %u", (unsigned)c->uid, (int)c->pid,
		     dm->rec.id, (unsigned)dm->rec.uid);
		reply_error(d, c, msg->seq, -EPERM,
			    "mapping %u belongs to uid %u: only its owner or root may delete it", dm->rec.id,
			    (unsigned)dm->rec.uid);
		return;
	}
	char why[64];
	snprintf(why, sizeof(why), "asked by uid %u", (unsigned)c->uid);
	delete_map(d, dm, why);
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_OK, msg->seq);
	m.id = msg->id;
	pmd_ipc_set(&m, PMD_A_ID);
	send_msg(d, c, &m);
}

void do_list(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
{
	uint32_t n = 0;
	bool one = pmd_ipc_has(msg, PMD_A_ID);
	for (struct dmap *dm = d->maps; dm && !c->dead; dm = dm->next) {
		if (dm->cleanup || (one && dm->rec.id != msg->id))
			continue;
		reply_mapping(d, c, msg->seq, dm, NULL);
		n++;
	}
	if (one && !n) {
		reply_error(d, c, msg->seq, -ENOENT, "no mapping %u", msg->id);
		return;
	}
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_OK, msg->seq);
	m.count = n;
	pmd_ipc_set(&m, PMD_A_COUNT);
	send_msg(d, c, &m);
}

static void server_to_msg(const struct pcpmap_server_info *s, struct pmd_ipc_server *o)
{
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

static void reply_external(struct daemon *d, struct conn *c, uint32_t seq, const char *addr,
			   enum pcpmap_proto proto, bool is_private)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_EXTERNAL, seq);
	pmd_ipc_copy_str(m.external_addr, sizeof(m.external_addr), addr);
	pmd_ipc_set(&m, PMD_A_EXTERNAL_ADDR);
	m.proto = (uint8_t)proto;
	pmd_ipc_set(&m, PMD_A_PROTO);
	m.external_private = is_private;
	send_msg(d, c, &m);
}

static void on_probe(pcpmap_client *cl, const struct pcpmap_probe_result *r, void *ud)
{
	struct daemon *d = ud;
	(void)cl;
	d->probing = false;
	logm(6, "probe of %s: chosen %s, external address %s", r->gateway, pcpmap_proto_name(r->chosen),
	     r->external_addr[0] ? r->external_addr : "unknown");
	struct probe_waiter *w = d->probe_waiters;
	d->probe_waiters = NULL;
	while (w) {
		struct probe_waiter *next = w->next;
		if (w->type == PMD_MSG_GET_EXTERNAL) {
			if (r->external_addr[0])
				reply_external(d, w->conn, w->seq, r->external_addr, r->chosen,
					       r->external_is_private);
			else
				reply_error(d, w->conn, w->seq, -ENODATA,
					    "the gateway %s told no external address (chosen protocol: %s)",
					    r->gateway[0] ? r->gateway : "(none)",
					    pcpmap_proto_name(r->chosen));
		} else {
			struct pmd_ipc_msg m;
			pmd_ipc_init(&m, PMD_MSG_PROBE_RESULT, w->seq);
			pmd_ipc_copy_str(m.gateway, sizeof(m.gateway), r->gateway);
			pmd_ipc_set(&m, PMD_A_GATEWAY);
			m.proto = (uint8_t)r->chosen;
			pmd_ipc_set(&m, PMD_A_PROTO);
			pmd_ipc_copy_str(m.external_addr, sizeof(m.external_addr), r->external_addr);
			pmd_ipc_set(&m, PMD_A_EXTERNAL_ADDR);
			m.external_private = r->external_is_private;
			const struct pcpmap_server_info *s[3] = { &r->pcp, &r->natpmp, &r->upnp };
			for (size_t i = 0; i < 3; i++)
				if (s[i]->proto != PCPMAP_PROTO_NONE)
					server_to_msg(s[i], &m.servers[m.n_servers++]);
			send_msg(d, w->conn, &m);
		}
		free(w);
		w = next;
	}
}

void do_probe(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
{
	if (msg->type == PMD_MSG_GET_EXTERNAL) {
		/* A live IPv4 mapping knows the address already: no packet needed. */
		for (struct dmap *dm = d->maps; dm; dm = dm->next) {
			struct pcpmap_mapping_info info;
			if (dm->cleanup || dm->rec.req.family != 4 ||
			    pcpmap_mapping_get_info(dm->m, &info) < 0)
				continue;
			if ((info.state == PCPMAP_STATE_MAPPED || info.state == PCPMAP_STATE_REFRESHING) &&
			    info.external_addr[0]) {
				reply_external(d, c, msg->seq, info.external_addr, info.proto,
					       info.external_is_private);
				return;
			}
		}
	}
	uint32_t t =
	    pmd_ipc_has(msg, PMD_A_TIMEOUT_MS) && msg->timeout_ms ? msg->timeout_ms : PROBE_TIMEOUT_MS;
	if (t > PROBE_TIMEOUT_MAX_MS)
		t = PROBE_TIMEOUT_MAX_MS;
	if (!d->probing) {
		int r = pcpmap_client_probe(d->client, (int)t, on_probe, d);
		if (r < 0) {
			reply_error(d, c, msg->seq, r, "cannot probe the gateway: %s", pcpmap_strerror(r));
			return;
		}
		d->probing = true;
	}
	struct probe_waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		reply_error(d, c, msg->seq, -ENOMEM, "out of memory");
		return;
	}
	w->conn = c;
	w->seq = msg->seq;
	w->type = msg->type;
	w->next = d->probe_waiters;
	d->probe_waiters = w;
}

void do_stats(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_STATS_RESULT, msg->seq);
	m.stat_wakeups = d->st_wakeups;
	m.stat_timer = d->st_timer;
	m.stat_engine = d->st_engine;
	m.stat_uptime = (pcpmap_now_usec() - d->started) / 1000000u;
	m.connections = d->n_conns;
	m.mappings = count_maps(d, false, 0);
	pmd_ipc_set(&m, PMD_A_STAT_WAKEUPS);
	pmd_ipc_set(&m, PMD_A_STAT_TIMER);
	pmd_ipc_set(&m, PMD_A_STAT_ENGINE);
	pmd_ipc_set(&m, PMD_A_STAT_UPTIME);
	pmd_ipc_set(&m, PMD_A_CONNECTIONS);
	pmd_ipc_set(&m, PMD_A_MAPPINGS);
	send_msg(d, c, &m);
}

/* ---- state ---- */

/* Room in the engine for the daemon's limit, leftovers being deleted, pair companions and probes. */
uint32_t engine_slots(const struct pmd_cfg *cfg)
{
	return 2 * cfg->max_mappings + 64;
}

void save_state(struct daemon *d, bool persistent_only)
{
	size_t n = d->n_parked;
	for (struct dmap *m = d->maps; m; m = m->next)
		n++;
	struct pmd_state_rec *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs) {
		logm(3, "cannot save state: out of memory");
		return;
	}
	n = 0;
	for (struct dmap *m = d->maps; m; m = m->next)
		if (!persistent_only || m->rec.persistent)
			recs[n++] = m->rec;
	for (size_t i = 0; i < d->n_parked; i++)
		recs[n++] = d->parked[i];
	int r = pmd_state_save(d->state_dir, recs, n);
	free(recs);
	if (r < 0) {
		logm(3, "cannot save state in %s: %s; retrying in %u s", d->state_dir, strerror(-r),
		     SAVE_RETRY_US / 1000000u);
		d->save_retry_at = pcpmap_now_usec() + SAVE_RETRY_US;
	} else {
		d->save_retry_at = 0;
	}
	d->dirty = false;
}

static void state_complaint(void *ud, unsigned line, const char *msg)
{
	const struct daemon *d = ud;
	logm(3, "state file %s/%s: line %u: %s", d->state_dir, PMD_STATE_FILE, line, msg);
}

/* Renews persistent mappings with their old nonce (suggesting the last grant, so the gateway renews rather
 * than duplicates) and deletes the others by re-creating them with their nonce and freeing them. */
void restore_state(struct daemon *d)
{
	struct pmd_state_rec *recs = NULL;
	size_t n = 0;
	char moved[PMD_CFG_PATH_MAX];
	int bad = pmd_state_load(d->state_dir, state_complaint, d, &recs, &n, moved, sizeof(moved));
	if (bad < 0) {
		logm(3, "cannot read the state in %s: %s; starting without it", d->state_dir, strerror(-bad));
		return;
	}
	if (bad > 0)
		logm(3, "state file had %d bad line%s; %s%s; kept %zu good record%s", bad,
		     bad == 1 ? "" : "s", moved[0] ? "moved aside to " : "could not move it aside", moved, n,
		     n == 1 ? "" : "s");
	/* The limits hold at start too: what does not fit is kept for the administrator, never dropped. */
	enum pmd_restore_verdict *verdict = calloc(n ? n : 1, sizeof(*verdict));
	struct pmd_state_rec *aside = calloc(n ? n : 1, sizeof(*aside));
	size_t n_aside = 0;
	if (!verdict || !aside) {
		logm(3, "cannot restore the state: out of memory; %s/%s left as it is", d->state_dir,
		     PMD_STATE_FILE);
		free(verdict);
		free(aside);
		free(recs);
		return;
	}
	pmd_policy_restore(&d->cfg, recs, n, engine_slots(&d->cfg), verdict);
	int64_t wall = (int64_t)time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct pmd_state_rec *r = &recs[i];
		if (r->id >= d->next_id)
			d->next_id = r->id + 1;
		if (verdict[i] != PMD_RESTORE_OK) {
			logm(4, "%s mapping %u (%s %u, uid %u) not restored: %s",
			     r->persistent ? "persistent" : "leftover", r->id, ipproto_str(r->req.ip_proto),
			     r->req.internal_port, (unsigned)r->uid, pmd_restore_verdict_str(verdict[i]));
			aside[n_aside++] = *r;
			continue;
		}
		/* A leftover is deleted even when its recorded expiry has passed: renewals that changed nothing
		 * did not rewrite the record, so the gateway may hold it for up to a lifetime longer. A delete of
		 * what is gone costs one request. */
		if (!r->persistent && r->expires && r->expires < wall)
			logm(7, "leftover mapping %u (%s %u) may have expired; deleting it anyway", r->id,
			     ipproto_str(r->req.ip_proto), r->req.internal_port);
		struct dmap *dm = calloc(1, sizeof(*dm));
		if (!dm)
			break;
		dm->rec = *r;
		if (r->persistent) {
			if (r->external_port && !r->req.prefer_failure)
				dm->rec.req.suggested_port = r->external_port;
			if (r->external_addr[0] && !r->req.third_party[0])
				snprintf(dm->rec.req.suggested_addr, sizeof(dm->rec.req.suggested_addr), "%s",
					 r->external_addr);
		} else {
			/* Only the first half of a pair carries a nonce we know (see the report's API note). */
			dm->cleanup = true;
			dm->rec.req.port_pair = false;
			dm->rec.req.prefer_failure = false;
			dm->rec.req.suggested_port = r->external_port;
			dm->rec.req.lifetime = CLEANUP_LIFETIME;
			dm->rec.req.deadline_ms = CLEANUP_TIMEOUT_MS;
			dm->cleanup_deadline = pcpmap_now_usec() + (uint64_t)CLEANUP_TIMEOUT_MS * 1000u;
		}
		int e = engine_new(d, dm, true);
		if (e < 0 && r->persistent && (dm->rec.req.suggested_addr[0] || dm->rec.req.suggested_port)) {
			/* The last grant may not suit the request any more: ask as the client first did. */
			dm->rec.req = r->req;
			e = engine_new(d, dm, true);
		}
		if (e < 0) {
			logm(3, "%s mapping %u (%s %u) cannot be re-created: %s",
			     r->persistent ? "persistent" : "leftover", r->id, ipproto_str(r->req.ip_proto),
			     r->req.internal_port, d->captured[0] ? d->captured : pcpmap_strerror(e));
			free(dm);
			aside[n_aside++] = *r;
			d->dirty = true;
			continue;
		}
		if (r->req.third_party[0] && !is_local_addr(r->req.third_party))
			pmd_ipc_copy_str(dm->own_addr, sizeof(dm->own_addr), r->req.third_party);
		/* The nonce is the one we gave; keep the request as the client made it. */
		uint8_t nonce[PMD_IPC_NONCE_LEN];
		memcpy(nonce, dm->rec.req.nonce, sizeof(nonce));
		if (r->persistent) {
			dm->rec.req = r->req;
			memcpy(dm->rec.req.nonce, nonce, sizeof(nonce));
		}
		map_link(d, dm);
		logm(5, "%s mapping %u (%s %u, uid %u): %s with its old nonce",
		     r->persistent ? "persistent" : "leftover", r->id, ipproto_str(r->req.ip_proto),
		     r->req.internal_port, (unsigned)r->uid, r->persistent ? "renewing" : "deleting");
	}
	if (n_aside) {
		char path[PMD_CFG_PATH_MAX + 64];
		int e = pmd_state_set_aside(d->state_dir, aside, n_aside, path, sizeof(path));
		if (e < 0)
			logm(3,
			     "%zu state record%s not restored and cannot be set aside in %s/%s: %s; they "
			     "stay in %s/%s",
			     n_aside, n_aside == 1 ? "" : "s", d->state_dir, PMD_STATE_UNRESTORED,
			     strerror(-e), d->state_dir, PMD_STATE_FILE);
		else
			logm(
			    3,
			    "%zu state record%s not restored (limits or engine table); kept in %s: raise the "
			    "limits, stop the daemon and add their lines to %s to restore them",
			    n_aside, n_aside == 1 ? "" : "s", path, PMD_STATE_FILE);
		/* Without a copy elsewhere they ride along in every save of the state file, not lost. */
		if (e < 0) {
			d->parked = aside;
			d->n_parked = n_aside;
			aside = NULL;
		}
	}
	free(verdict);
	free(aside);
	free(recs);
	d->dirty = true;
}

uint64_t own_deadline(const struct daemon *d)
{
	uint64_t dl = d->save_retry_at ? d->save_retry_at : UINT64_MAX;
	for (const struct dmap *m = d->maps; m; m = m->next) {
		if (m->waiter && m->wait_deadline && m->wait_deadline < dl)
			dl = m->wait_deadline;
		if (m->cleanup && m->cleanup_deadline < dl)
			dl = m->cleanup_deadline;
	}
	return dl;
}

void run_own_deadlines(struct daemon *d, uint64_t now)
{
	for (struct dmap *m = d->maps, *next; m; m = next) {
		next = m->next;
		if (m->waiter && m->wait_deadline && m->wait_deadline <= now) {
			reply_mapping(d, m->waiter, m->wait_seq, m, NULL);
			m->waiter = NULL;
			m->wait_deadline = 0;
		}
		if (m->cleanup && m->cleanup_deadline <= now) {
			logm(4,
			     "leftover mapping %u (%s %u): no answer in %u s; sending a delete and giving up",
			     m->rec.id, ipproto_str(m->rec.req.ip_proto), m->rec.req.internal_port,
			     CLEANUP_TIMEOUT_MS / 1000u);
			pcpmap_mapping_free(m->m);
			map_unlink_free(d, m);
		}
	}
	if (d->save_retry_at && d->save_retry_at <= now)
		d->dirty = true;
}

void engine_conn_closed(struct daemon *d, struct conn *c)
{
	for (struct dmap *dm = d->maps, *next; dm; dm = next) {
		next = dm->next;
		if (dm->waiter == c) {
			dm->waiter = NULL;
			dm->wait_deadline = 0;
		}
		if (dm->conn != c)
			continue;
		dm->conn = NULL;
		if (!dm->rec.persistent)
			delete_map(d, dm, "its connection closed");
	}
	for (struct probe_waiter **pw = &d->probe_waiters; *pw;) {
		if ((*pw)->conn == c) {
			struct probe_waiter *w = *pw;
			*pw = w->next;
			free(w);
		} else {
			pw = &(*pw)->next;
		}
	}
}
