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
#include "ipc/ipc_conv.h"

static struct daemon *engine_d; /* for the library's callbacks, which carry only the mapping */

int engine_init(struct daemon *d)
{
	engine_d = d;
	d->journal.fd = -1;
	d->cap_owners = engine_slots(&d->cfg);
	d->n_buckets = 64;
	while (d->n_buckets < d->cap_owners)
		d->n_buckets *= 2;
	d->buckets = calloc(d->n_buckets, sizeof(*d->buckets));
	d->owners = calloc(d->cap_owners, sizeof(*d->owners));
	d->owner_map = calloc(d->cap_owners, sizeof(*d->owner_map));
	if (!d->buckets || !d->owners || !d->owner_map) {
		engine_free(d);
		return -ENOMEM;
	}
	return 0;
}

static void dmap_free(struct dmap *m);

void engine_free(struct daemon *d)
{
	while (d->maps) {
		struct dmap *m = d->maps;
		d->maps = m->next;
		dmap_free(m);
	}
	pmd_journal_close(&d->journal);
	free(d->buckets);
	free(d->owners);
	free(d->owner_map);
	free(d->jput);
	free(d->jdel);
	d->buckets = NULL;
	d->owners = NULL;
	d->owner_map = NULL;
	d->jput = NULL;
	d->jdel = NULL;
}

static bool req_has_more(const struct pmd_ipc_req *q)
{
	return q->suggested_addr[0] || q->third_party[0] || q->n_filters || q->description[0] ||
	       q->peer_addr[0];
}

/* The granted address kept in binary. A string that is no address (a hand-edited state file) is kept as
 * unknown: the record's address is only what the last grant said, never what a request asks for. */
static void drec_set_ext(struct drec *d, const char *s)
{
	d->ext_family = 0;
	memset(d->ext_addr, 0, sizeof(d->ext_addr));
	if (s[0] && inet_pton(AF_INET, s, d->ext_addr) == 1)
		d->ext_family = 4;
	else if (s[0] && inet_pton(AF_INET6, s, d->ext_addr) == 1)
		d->ext_family = 6;
}

static void drec_get_ext(const struct drec *d, char *buf, size_t len)
{
	buf[0] = '\0';
	if (d->ext_family &&
	    !inet_ntop(d->ext_family == 4 ? AF_INET : AF_INET6, d->ext_addr, buf, (socklen_t)len))
		buf[0] = '\0';
}

/* The internal address that owns the port for the policy ("" or NULL: this host); a copy. */
static int dmap_set_own_addr(struct dmap *m, const char *a)
{
	free(m->own_addr);
	m->own_addr = NULL;
	if (a && a[0] && !(m->own_addr = strdup(a)))
		return -ENOMEM;
	return 0;
}

/* Sets the record from a full one. @return 0 or -ENOMEM (the record is then unchanged). */
static int drec_pack(struct drec *d, const struct pmd_state_rec *r)
{
	struct pmd_ipc_req *more = NULL;
	if (req_has_more(&r->req)) {
		more = malloc(sizeof(*more));
		if (!more)
			return -ENOMEM;
		*more = r->req;
	}
	free(d->more);
	const struct pmd_ipc_req *q = &r->req;
	*d = (struct drec){
		.id = r->id,
		.uid = r->uid,
		.lifetime = q->lifetime,
		.protocols = q->protocols,
		.deadline_ms = q->deadline_ms,
		.internal_port = q->internal_port,
		.suggested_port = q->suggested_port,
		.peer_port = q->peer_port,
		.external_port = r->external_port,
		.kind = q->kind,
		.ip_proto = q->ip_proto,
		.family = q->family,
		.persistent = r->persistent,
		.prefer_failure = q->prefer_failure,
		.port_pair = q->port_pair,
		.allow_degrade = q->allow_degrade,
		.expires = r->expires,
		.more = more,
	};
	memcpy(d->nonce, q->nonce, sizeof(d->nonce));
	memcpy(d->nonce2, r->nonce2, sizeof(d->nonce2));
	drec_set_ext(d, r->external_addr);
	return 0;
}

/* The full record (the request's strings and filters included). */
static void drec_unpack(const struct drec *d, struct pmd_state_rec *r)
{
	struct pmd_ipc_req *q = &r->req;
	if (d->more)
		*q = *d->more;
	else
		memset(q, 0, sizeof(*q));
	r->id = d->id;
	r->uid = d->uid;
	r->persistent = d->persistent;
	q->lifetime = d->lifetime;
	q->protocols = d->protocols;
	q->deadline_ms = d->deadline_ms;
	q->internal_port = d->internal_port;
	q->suggested_port = d->suggested_port;
	q->peer_port = d->peer_port;
	q->kind = d->kind;
	q->ip_proto = d->ip_proto;
	q->family = d->family;
	q->prefer_failure = d->prefer_failure;
	q->port_pair = d->port_pair;
	q->allow_degrade = d->allow_degrade;
	memcpy(q->nonce, d->nonce, sizeof(q->nonce));
	memcpy(r->nonce2, d->nonce2, sizeof(r->nonce2));
	drec_get_ext(d, r->external_addr, sizeof(r->external_addr));
	r->external_port = d->external_port;
	r->expires = d->expires;
}

/* Frees a mapping's memory (not its engine handle). */
static void dmap_free(struct dmap *m)
{
	while (m->del_waiters) {
		struct del_waiter *w = m->del_waiters;
		m->del_waiters = w->next;
		free(w);
	}
	free(m->rec.more);
	free(m->own_addr);
	free(m);
}

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

static size_t bucket_of(const struct daemon *d, uint32_t id)
{
	return (size_t)(id * 2654435761u) & (d->n_buckets - 1);
}

/* Any mapping with this id, leftovers included. */
static struct dmap *lookup_id(struct daemon *d, uint32_t id)
{
	for (struct dmap *m = d->buckets[bucket_of(d, id)]; m; m = m->hnext)
		if (m->rec.id == id)
			return m;
	return NULL;
}

static struct dmap *find_map(struct daemon *d, uint32_t id)
{
	struct dmap *m = lookup_id(d, id);
	return m && !m->cleanup ? m : NULL;
}

static uint32_t new_id(struct daemon *d)
{
	do {
		if (!d->next_id)
			d->next_id = 1;
	} while (lookup_id(d, d->next_id++));
	return d->next_id - 1;
}

uint32_t count_maps(struct daemon *d, bool by_uid, uid_t uid)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < d->n_owners; i++)
		if (!d->owners[i].leftover && (!by_uid || d->owners[i].uid == uid))
			n++;
	return n;
}

/* Puts a mapping in the list the daemon's own deadlines walk, or takes it out, after its wait or leftover
 * deadline changed: the loop never walks every mapping. */
static void timed_sync(struct daemon *d, struct dmap *m, bool gone)
{
	bool want = !gone && ((m->waiter && m->wait_deadline) || m->cleanup);
	if (want == m->timed)
		return;
	if (want) {
		m->tprev = NULL;
		m->tnext = d->timed;
		if (d->timed)
			d->timed->tprev = m;
		d->timed = m;
	} else {
		if (m->tprev)
			m->tprev->tnext = m->tnext;
		else
			d->timed = m->tnext;
		if (m->tnext)
			m->tnext->tprev = m->tprev;
	}
	m->timed = want;
}

/* Queues the record for the journal. */
static void mark_dirty(struct daemon *d, struct dmap *m)
{
	if (m->jidx)
		return;
	if (d->n_jput == d->cap_jput) {
		size_t nc = d->cap_jput ? d->cap_jput * 2 : 64;
		struct dmap **p = realloc(d->jput, nc * sizeof(*p));
		if (!p) {
			d->dirty = true; /* the whole state is written instead */
			return;
		}
		d->jput = p;
		d->cap_jput = nc;
	}
	d->jput[d->n_jput++] = m;
	m->jidx = d->n_jput;
}

static void map_link(struct daemon *d, struct dmap *m)
{
	m->prev = NULL;
	m->next = d->maps;
	if (d->maps)
		d->maps->prev = m;
	d->maps = m;
	size_t b = bucket_of(d, m->rec.id);
	m->hnext = d->buckets[b];
	d->buckets[b] = m;
	if (d->n_owners == d->cap_owners) {
		/* Sized for the engine's table at start; grows only if that ever changes. */
		uint32_t nc = d->cap_owners * 2;
		struct pmd_owner *o = realloc(d->owners, nc * sizeof(*o));
		if (o)
			d->owners = o;
		struct dmap **om = o ? realloc(d->owner_map, nc * sizeof(*om)) : NULL;
		if (!om) {
			logm(2, "out of memory for the owner table");
			abort();
		}
		d->owner_map = om;
		d->cap_owners = nc;
	}
	struct pmd_owner *o = &d->owners[d->n_owners];
	o->id = m->rec.id;
	o->uid = m->rec.uid;
	o->ip_proto = m->rec.ip_proto;
	o->internal_port = m->rec.internal_port;
	o->internal_addr = m->own_addr;
	o->leftover = m->cleanup;
	d->owner_map[d->n_owners] = m;
	m->oidx = d->n_owners++;
	timed_sync(d, m, false);
	mark_dirty(d, m);
}

static void map_unlink_free(struct daemon *d, struct dmap *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		d->maps = m->next;
	if (m->next)
		m->next->prev = m->prev;
	for (struct dmap **p = &d->buckets[bucket_of(d, m->rec.id)]; *p; p = &(*p)->hnext)
		if (*p == m) {
			*p = m->hnext;
			break;
		}
	uint32_t last = --d->n_owners;
	if (m->oidx != last) {
		d->owners[m->oidx] = d->owners[last];
		d->owner_map[m->oidx] = d->owner_map[last];
		d->owner_map[m->oidx]->oidx = m->oidx;
	}
	timed_sync(d, m, true);
	if (m->jidx)
		d->jput[m->jidx - 1] = NULL;
	if (d->n_jdel == d->cap_jdel) {
		size_t nc = d->cap_jdel ? d->cap_jdel * 2 : 64;
		uint32_t *p = realloc(d->jdel, nc * sizeof(*p));
		if (p) {
			d->jdel = p;
			d->cap_jdel = nc;
		}
	}
	if (d->n_jdel < d->cap_jdel)
		d->jdel[d->n_jdel++] = m->rec.id;
	else
		d->dirty = true;
	dmap_free(m);
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
	struct pmd_state_rec full;
	drec_unpack(&dm->rec, &full);
	m->id = dm->rec.id;
	pmd_ipc_set(m, PMD_A_ID);
	m->req = full.req;
	/* Replies leave out what the first release did not know (ALLOW_DEGRADE, NONCE2): a client of that
	 * release refuses a message with an attribute it does not know. */
	m->req.allow_degrade = false;
	pmd_conv_set_req_bits(m);
	if (show_nonce) {
		memcpy(m->req.nonce, have_info ? info.nonce : full.req.nonce, PMD_IPC_NONCE_LEN);
		pmd_ipc_set(m, PMD_A_NONCE);
	}
	m->persistent = dm->rec.persistent;
	pmd_conv_msg_from_info(&info, now, m);
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

/* Keeps the record in step with the engine: nonces (a pair retry draws new ones), last grant, expiry. */
static void update_rec(struct daemon *d, struct dmap *dm, const struct pcpmap_mapping_info *info)
{
	struct drec *r = &dm->rec;
	if (memcmp(r->nonce, info->nonce, PMD_IPC_NONCE_LEN)) {
		memcpy(r->nonce, info->nonce, PMD_IPC_NONCE_LEN);
		mark_dirty(d, dm);
	}
	if (memcmp(r->nonce2, info->nonce2, PMD_IPC_NONCE_LEN)) {
		/* A pair's second half: without it a crash would leave that half to expire unrenewed. */
		memcpy(r->nonce2, info->nonce2, PMD_IPC_NONCE_LEN);
		mark_dirty(d, dm);
	}
	if ((info->state == PCPMAP_STATE_MAPPED || info->state == PCPMAP_STATE_REFRESHING) &&
	    info->external_addr[0]) {
		char ext[PMD_IPC_ADDR_MAX + 1], held[PMD_IPC_ADDR_MAX + 1];
		pmd_ipc_copy_str(ext, sizeof(ext), info->external_addr);
		drec_get_ext(r, held, sizeof(held));
		if (strcmp(ext, held) || info->external_port != r->external_port) {
			drec_set_ext(r, ext);
			r->external_port = info->external_port;
			mark_dirty(d, dm);
		}
		if (info->expires_usec) {
			uint64_t now = pcpmap_now_usec();
			int64_t exp = (int64_t)time(NULL) + (int64_t)secs_until(info->expires_usec, now);
			/* Only informational (a leftover is deleted whether or not it expired): written with the
			 * record's next change or the next compaction, so a renewal costs no disk write. */
			r->expires = exp;
		}
	}
}

static void delete_done(struct daemon *d, struct dmap *dm, const struct pcpmap_mapping_info *info);
static void delete_failed(struct daemon *d, struct dmap *dm, const struct pcpmap_mapping_info *info);

static void on_event(pcpmap_mapping *pm, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct daemon *d = engine_d;
	struct dmap *dm = ud;
	if (d->stopping)
		return; /* engine_shutdown() walks the list: no callback may free a mapping under it */
	update_rec(d, dm, info);
	if (dm->cleanup) {
		if (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) {
			logm(5,
			     "leftover mapping %u (%s %u, uid %u) deleted: re-created with its old nonce and "
			     "freed",
			     dm->rec.id, ipproto_str(dm->rec.ip_proto), dm->rec.internal_port,
			     (unsigned)dm->rec.uid);
			pcpmap_mapping_free(pm);
			map_unlink_free(d, dm);
		} else if (ev == PCPMAP_EVENT_FAILED && info->state == PCPMAP_STATE_FAILED) {
			logm(4, "leftover mapping %u (%s %u) could not be deleted: %s; it expires on its own",
			     dm->rec.id, ipproto_str(dm->rec.ip_proto), dm->rec.internal_port,
			     pcpmap_strerror(info->error));
			pcpmap_mapping_free(pm);
			map_unlink_free(d, dm);
		}
		return;
	}
	if (dm->deleting && (ev == PCPMAP_EVENT_DELETED || ev == PCPMAP_EVENT_FAILED)) {
		if (ev == PCPMAP_EVENT_DELETED)
			delete_done(d, dm, info);
		else
			delete_failed(d, dm, info);
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
		timed_sync(d, dm, false);
	}
}

static int engine_new(struct daemon *d, struct dmap *dm, bool with_nonce)
{
	struct pcpmap_request r;
	struct pcpmap_filter filters[PMD_IPC_MAX_FILTERS];
	static const uint8_t zero[PMD_IPC_NONCE_LEN];
	struct pmd_state_rec full;
	drec_unpack(&dm->rec, &full);
	/* A pair taken back whole: its second half keeps its own nonce. */
	bool nonce2 = with_nonce && memcmp(dm->rec.nonce2, zero, sizeof(zero));
	pmd_conv_request_from_req(&full.req, with_nonce ? full.req.nonce : NULL,
				  nonce2 ? dm->rec.nonce2 : NULL, &r, filters);
	r.callback = on_event;
	r.userdata = dm;
	d->capture = true;
	d->captured[0] = '\0';
	int e = pcpmap_mapping_new(d->client, &r, &dm->m);
	d->capture = false;
	if (e < 0)
		return e;
	struct pcpmap_mapping_info info;
	if (pcpmap_mapping_get_info(dm->m, &info) == 0) {
		memcpy(dm->rec.nonce, info.nonce, PMD_IPC_NONCE_LEN);
		if (memcmp(info.nonce2, zero, sizeof(zero)))
			memcpy(dm->rec.nonce2, info.nonce2, PMD_IPC_NONCE_LEN);
	}
	return 0;
}

/* ---- deleting ---- */

/* The gateway confirmed (or there was nothing on it to delete): subscribers hear DELETED, every DELETE waiting
 * gets its OK, and only now the record goes. */
static void delete_done(struct daemon *d, struct dmap *dm, const struct pcpmap_mapping_info *info)
{
	push_event(d, dm, PCPMAP_EVENT_DELETED, info);
	for (struct del_waiter *w = dm->del_waiters; w; w = w->next) {
		struct pmd_ipc_msg m;
		pmd_ipc_init(&m, PMD_MSG_OK, w->seq);
		m.id = dm->rec.id;
		pmd_ipc_set(&m, PMD_A_ID);
		send_msg(d, w->conn, &m);
	}
	logm(6, "mapping %u (%s %u, uid %u) deleted", dm->rec.id, ipproto_str(dm->rec.ip_proto),
	     dm->rec.internal_port, (unsigned)dm->rec.uid);
	pcpmap_mapping_free(dm->m);
	dm->m = NULL;
	map_unlink_free(d, dm);
}

/*
 * The gateway refused the delete or never answered it: nothing was deleted, so nobody is told it was. A
 * mapping someone still owns (its connection is open, or it is persistent) stays as it was: the daemon takes
 * it back with its nonce and renews it, and a later DELETE can try again. One nobody owns any more (its
 * connection closed) is let go: it expires on the gateway on its own.
 */
static void delete_failed(struct daemon *d, struct dmap *dm, const struct pcpmap_mapping_info *info)
{
	int err = info->error ? info->error : -EIO;
	bool keep = dm->conn || dm->rec.persistent;
	push_event(d, dm, PCPMAP_EVENT_FAILED, info);
	for (struct del_waiter *w = dm->del_waiters; w; w = w->next)
		reply_error(d, w->conn, w->seq, err, "the gateway did not delete mapping %u: %s%s",
			    dm->rec.id, pcpmap_strerror(err),
			    keep ? "; the daemon keeps and renews it: delete it again later" : "");
	while (dm->del_waiters) {
		struct del_waiter *w = dm->del_waiters;
		dm->del_waiters = w->next;
		free(w);
	}
	dm->deleting = false;
	logm(4, "mapping %u (%s %u, uid %u) not deleted: %s; %s", dm->rec.id, ipproto_str(dm->rec.ip_proto),
	     dm->rec.internal_port, (unsigned)dm->rec.uid, pcpmap_strerror(err),
	     keep ? "kept and renewed" : "nobody owns it any more: it expires on its own");
	pcpmap_mapping_free(dm->m);
	dm->m = NULL;
	if (keep) {
		int e = engine_new(d, dm, true);
		if (e == 0)
			return;
		logm(3, "mapping %u: cannot take it back after the failed delete: %s", dm->rec.id,
		     pcpmap_strerror(e));
	}
	map_unlink_free(d, dm);
}

/*
 * Starts deleting dm on the gateway; c (may be NULL) is told the outcome with seq. The record, its quota and
 * its port stay until the gateway answered (RFC 6887 15: a MAP with lifetime 0 and the same nonce), so a
 * requester, a subscriber or a LIST never sees a mapping gone that the gateway still holds.
 * @return 0, or -ENOMEM (nothing started, nobody told).
 */
static int delete_start(struct daemon *d, struct dmap *dm, struct conn *c, uint32_t seq, const char *why)
{
	if (c) {
		struct del_waiter *w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->conn = c;
		w->seq = seq;
		w->next = dm->del_waiters;
		dm->del_waiters = w;
	}
	if (dm->waiter) {
		/* A CREATE still waiting for its outcome learns it now. */
		reply_mapping(d, dm->waiter, dm->wait_seq, dm, NULL);
		dm->waiter = NULL;
		dm->wait_deadline = 0;
		timed_sync(d, dm, false);
	}
	if (dm->deleting)
		return 0; /* joins the delete in flight */
	logm(6, "mapping %u (%s %u, uid %u): deleting: %s", dm->rec.id, ipproto_str(dm->rec.ip_proto),
	     dm->rec.internal_port, (unsigned)dm->rec.uid, why);
	struct pcpmap_mapping_info info;
	int r = dm->m ? pcpmap_mapping_delete(dm->m) : 1;
	bool have = dm->m && pcpmap_mapping_get_info(dm->m, &info) == 0;
	if (r == 0 || (r == -EALREADY && have && info.state == PCPMAP_STATE_DELETING)) {
		dm->deleting = true;
		return 0;
	}
	/* Nothing granted or sent, or a PEER, which cannot be deleted and only expires (RFC 6887 12). */
	if (have)
		info.state = PCPMAP_STATE_DELETED;
	delete_done(d, dm, have ? &info : NULL);
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
	char why[400];
	int pe =
	    pmd_policy_create(&d->cfg, &pq, d->owners, d->n_owners, pmd_sock_held, NULL, why, sizeof(why));
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
	struct pmd_state_rec full = { .id = new_id(d),
				      .uid = (uint32_t)c->uid,
				      .persistent = msg->persistent };
	full.req = *q;
	if (pmd_ipc_has(msg, PMD_A_NONCE2) && pmd_ipc_has(msg, PMD_A_NONCE) && q->port_pair)
		memcpy(full.nonce2, msg->nonce2, sizeof(full.nonce2));
	if (drec_pack(&dm->rec, &full) < 0) {
		free(dm);
		reply_error(d, c, seq, -ENOMEM, "out of memory");
		return;
	}
	if (dmap_set_own_addr(dm, own_addr) < 0) {
		dmap_free(dm);
		reply_error(d, c, seq, -ENOMEM, "out of memory");
		return;
	}
	dm->conn = c;
	int e = engine_new(d, dm, pmd_ipc_has(msg, PMD_A_NONCE));
	if (e < 0) {
		reply_error(d, c, seq, e, "%s", d->captured[0] ? d->captured : pcpmap_strerror(e));
		dmap_free(dm);
		return;
	}
	map_link(d, dm);
	logm(6, "mapping %u: uid %u (pid %d) asks %s %s %u%s%s", dm->rec.id, (unsigned)c->uid, (int)c->pid,
	     q->kind == PCPMAP_KIND_PEER ? "PEER" : "MAP", ipproto_str(q->ip_proto), q->internal_port,
	     q->family == 6 ? " IPv6" : "", msg->persistent ? ", persistent" : "");
	if (pmd_ipc_has(msg, PMD_A_WAIT_MS) && msg->wait_ms) {
		uint32_t w = msg->wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS : msg->wait_ms;
		dm->waiter = c;
		dm->wait_seq = seq;
		dm->wait_deadline = pcpmap_now_usec() + (uint64_t)w * 1000u;
		timed_sync(d, dm, false);
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
	/* Answered once the gateway answered (delete_done(), delete_failed()). */
	if (delete_start(d, dm, c, msg->seq, why) < 0)
		reply_error(d, c, msg->seq, -ENOMEM, "out of memory");
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
			pmd_conv_probe_to_msg(r, &m);
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
			if (dm->cleanup || dm->rec.family != 4 || pcpmap_mapping_get_info(dm->m, &info) < 0)
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

/* Forgets what the journal was to receive: the whole state has just been written. */
static void journal_clear(struct daemon *d)
{
	for (size_t i = 0; i < d->n_jput; i++)
		if (d->jput[i])
			d->jput[i]->jidx = 0;
	d->n_jput = 0;
	d->n_jdel = 0;
	d->sync_at = 0;
}

/* Walks the mappings (all, or the persistent ones), then the parked records. */
struct save_iter {
	struct daemon *d;
	const struct dmap *m;
	size_t parked;
	bool persistent_only;
	size_t n;
};

static int save_next(void *ud, struct pmd_state_rec *out)
{
	struct save_iter *it = ud;
	while (it->m && it->persistent_only && !it->m->rec.persistent)
		it->m = it->m->next;
	if (it->m) {
		drec_unpack(&it->m->rec, out);
		it->m = it->m->next;
	} else if (it->parked < it->d->n_parked) {
		*out = it->d->parked[it->parked++];
	} else {
		return 0;
	}
	it->n++;
	return 1;
}

void save_state(struct daemon *d, bool persistent_only)
{
	struct save_iter it = { .d = d, .m = d->maps, .persistent_only = persistent_only };
	int r = pmd_state_compact_iter(d->state_dir, &d->journal, save_next, &it);
	if (r < 0) {
		logm(3, "cannot save state in %s: %s; retrying in %u s", d->state_dir, strerror(-r),
		     SAVE_RETRY_US / 1000000u);
		d->save_retry_at = pcpmap_now_usec() + SAVE_RETRY_US;
	} else {
		d->save_retry_at = 0;
		d->snapshot_bytes = (uint64_t)it.n * 256u;
		journal_clear(d);
	}
	d->dirty = false;
}

/* The records changed since the journal was last written. */
struct put_iter {
	struct daemon *d;
	size_t i;
};

static int put_next(void *ud, struct pmd_state_rec *out)
{
	struct put_iter *it = ud;
	while (it->i < it->d->n_jput && !it->d->jput[it->i])
		it->i++;
	if (it->i >= it->d->n_jput)
		return 0;
	drec_unpack(&it->d->jput[it->i++]->rec, out);
	return 1;
}

void persist(struct daemon *d)
{
	if (!d->dirty && !d->n_jput && !d->n_jdel)
		return;
	if (!d->dirty && d->journal.fd < 0) {
		if (d->save_retry_at)
			return; /* the changes wait for the retry */
		d->dirty = true;
	}
	/* Compaction when the journal outgrows the snapshot: amortised O(1) per change. */
	if (d->journal.size > JOURNAL_MIN_COMPACT + 2 * d->snapshot_bytes)
		d->dirty = true;
	if (d->dirty) {
		save_state(d, false);
		return;
	}
	struct put_iter it = { .d = d };
	int r = pmd_journal_append_iter(&d->journal, put_next, &it, d->jdel, d->n_jdel);
	if (r < 0) {
		logm(3, "cannot append to the journal %s/%s: %s; writing the whole state instead",
		     d->state_dir, PMD_STATE_JOURNAL, strerror(-r));
		save_state(d, false);
		return;
	}
	journal_clear(d);
	/* Written now (a crash of the daemon loses nothing written); on disk within a second (a crash of the
	 * machine loses at most that second). */
	d->sync_at = pcpmap_now_usec() + JOURNAL_SYNC_US;
}

static void state_complaint(void *ud, unsigned line, const char *msg)
{
	const struct daemon *d = ud;
	logm(3, "state file %s/%s: line %u: %s", d->state_dir, PMD_STATE_FILE, line, msg);
}

/* A leftover pair's second half (internal port + 1, external port + 1, its own nonce) is deleted as a
 * leftover of its own. Records written before the second nonce was kept have none: that half expires. */
static void restore_second_half(struct daemon *d, const struct dmap *first, const struct pmd_state_rec *r)
{
	static const uint8_t zero[PMD_IPC_NONCE_LEN];
	if (!memcmp(r->nonce2, zero, sizeof(zero)) || r->req.internal_port == 65535)
		return;
	struct dmap *dm = calloc(1, sizeof(*dm));
	if (!dm)
		return;
	struct pmd_state_rec full;
	drec_unpack(&first->rec, &full);
	if (drec_pack(&dm->rec, &full) < 0) {
		free(dm);
		return;
	}
	dm->rec.id = new_id(d);
	dm->rec.internal_port = (uint16_t)(r->req.internal_port + 1);
	memcpy(dm->rec.nonce, r->nonce2, PMD_IPC_NONCE_LEN);
	dm->rec.suggested_port = r->external_port && r->external_port < 65535 ? r->external_port + 1 : 0;
	dm->rec.external_port = dm->rec.suggested_port;
	dm->cleanup = true;
	dm->cleanup_deadline = first->cleanup_deadline;
	if (dmap_set_own_addr(dm, first->own_addr) < 0) {
		dmap_free(dm);
		return;
	}
	int e = engine_new(d, dm, true);
	if (e < 0) {
		logm(3, "leftover mapping %u: its pair's second half (%s %u) cannot be re-created: %s", r->id,
		     ipproto_str(r->req.ip_proto), dm->rec.internal_port, pcpmap_strerror(e));
		dmap_free(dm);
		return;
	}
	map_link(d, dm);
	logm(5, "leftover mapping %u (%s %u, uid %u): the second half of mapping %u, deleting with its nonce",
	     dm->rec.id, ipproto_str(r->req.ip_proto), dm->rec.internal_port, (unsigned)r->uid, r->id);
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
	/* Ids given below (a pair's second half) must not take one a later record holds. */
	for (size_t i = 0; i < n; i++)
		if (recs[i].id >= d->next_id)
			d->next_id = recs[i].id + 1;
	for (size_t i = 0; i < n; i++) {
		struct pmd_state_rec *r = &recs[i];
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
		struct pmd_state_rec want = *r;
		if (r->persistent) {
			if (r->external_port && !r->req.prefer_failure)
				want.req.suggested_port = r->external_port;
			if (r->external_addr[0] && !r->req.third_party[0])
				snprintf(want.req.suggested_addr, sizeof(want.req.suggested_addr), "%s",
					 r->external_addr);
		} else {
			/* A pair's halves are deleted one by one, each with its own nonce (below). */
			dm->cleanup = true;
			memset(want.nonce2, 0, sizeof(want.nonce2));
			want.req.port_pair = false;
			want.req.prefer_failure = false;
			want.req.suggested_port = r->external_port;
			want.req.lifetime = CLEANUP_LIFETIME;
			want.req.deadline_ms = CLEANUP_TIMEOUT_MS;
			dm->cleanup_deadline = pcpmap_now_usec() + (uint64_t)CLEANUP_TIMEOUT_MS * 1000u;
		}
		int e = drec_pack(&dm->rec, &want);
		if (e == 0)
			e = engine_new(d, dm, true);
		if (e < 0 && e != -ENOMEM && r->persistent &&
		    (want.req.suggested_addr[0] || want.req.suggested_port)) {
			/* The last grant may not suit the request any more: ask as the client first did. */
			e = drec_pack(&dm->rec, r);
			if (e == 0)
				e = engine_new(d, dm, true);
		}
		if (e < 0) {
			logm(3, "%s mapping %u (%s %u) cannot be re-created: %s",
			     r->persistent ? "persistent" : "leftover", r->id, ipproto_str(r->req.ip_proto),
			     r->req.internal_port, d->captured[0] ? d->captured : pcpmap_strerror(e));
			dmap_free(dm);
			aside[n_aside++] = *r;
			d->dirty = true;
			continue;
		}
		if (r->req.third_party[0] && !is_local_addr(r->req.third_party) &&
		    dmap_set_own_addr(dm, r->req.third_party) < 0)
			logm(3, "mapping %u: out of memory: its port counts as this host's for the policy",
			     r->id);
		/* The nonces are the ones we gave; keep the request as the client made it. */
		uint8_t nonce[PMD_IPC_NONCE_LEN], nonce2[PMD_IPC_NONCE_LEN];
		memcpy(nonce, dm->rec.nonce, sizeof(nonce));
		memcpy(nonce2, dm->rec.nonce2, sizeof(nonce2));
		if (r->persistent && drec_pack(&dm->rec, r) == 0) {
			memcpy(dm->rec.nonce, nonce, sizeof(nonce));
			memcpy(dm->rec.nonce2, nonce2, sizeof(nonce2));
		}
		map_link(d, dm);
		logm(5, "%s mapping %u (%s %u, uid %u): %s with its old nonce",
		     r->persistent ? "persistent" : "leftover", r->id, ipproto_str(r->req.ip_proto),
		     r->req.internal_port, (unsigned)r->uid, r->persistent ? "renewing" : "deleting");
		if (dm->cleanup && r->req.port_pair)
			restore_second_half(d, dm, r);
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
	if (d->sync_at && d->sync_at < dl)
		dl = d->sync_at;
	for (const struct dmap *m = d->timed; m; m = m->tnext) {
		if (m->waiter && m->wait_deadline && m->wait_deadline < dl)
			dl = m->wait_deadline;
		if (m->cleanup && m->cleanup_deadline < dl)
			dl = m->cleanup_deadline;
	}
	return dl;
}

void run_own_deadlines(struct daemon *d, uint64_t now)
{
	for (struct dmap *m = d->timed, *next; m; m = next) {
		next = m->tnext;
		if (m->waiter && m->wait_deadline && m->wait_deadline <= now) {
			reply_mapping(d, m->waiter, m->wait_seq, m, NULL);
			m->waiter = NULL;
			m->wait_deadline = 0;
			timed_sync(d, m, false);
		}
		if (m->cleanup && m->cleanup_deadline <= now) {
			logm(4,
			     "leftover mapping %u (%s %u): no answer in %u s; sending a delete and giving up",
			     m->rec.id, ipproto_str(m->rec.ip_proto), m->rec.internal_port,
			     CLEANUP_TIMEOUT_MS / 1000u);
			pcpmap_mapping_free(m->m);
			map_unlink_free(d, m);
		}
	}
	if (d->save_retry_at && d->save_retry_at <= now)
		d->dirty = true;
	if (d->sync_at && d->sync_at <= now) {
		int r = pmd_journal_sync(&d->journal);
		if (r < 0)
			logm(3, "cannot sync the journal %s/%s: %s", d->state_dir, PMD_STATE_JOURNAL,
			     strerror(-r));
		d->sync_at = 0;
	}
}

/* Datagrams the engine took as answers so far. */
static uint64_t answers(struct daemon *d)
{
	struct pcpmap_stats st;
	pcpmap_client_get_stats(d->client, &st);
	return st.received - st.dropped;
}

static uint64_t retransmits(struct daemon *d)
{
	struct pcpmap_stats st;
	pcpmap_client_get_stats(d->client, &st);
	return st.retransmits;
}

/*
 * The library says when no deletion is left in flight (pcpmap_client_flush()), not how each one ended once
 * its handle is freed. So deletions go out a window at a time, and a window counts as confirmed only when
 * the flush ended in time, nothing was retransmitted and at least one answer came per deletion sent.
 * Otherwise its records stay, and the next start deletes them again (one request each if already gone).
 */
void engine_shutdown(struct daemon *d)
{
	unsigned kept = 0, deleted = 0, unconfirmed = 0, unsent = 0;
	d->stopping = true;
	for (struct dmap *m = d->maps; m; m = m->next) {
		if (m->rec.persistent && !m->cleanup && !m->deleting) {
			pcpmap_mapping_abandon(m->m);
			m->m = NULL;
			kept++;
		}
	}
	uint64_t deadline = pcpmap_now_usec() + (uint64_t)SHUTDOWN_DEADLINE_MS * 1000u;
	struct dmap *batch[SHUTDOWN_WINDOW];
	struct dmap *m = d->maps;
	while (m) {
		uint64_t now = pcpmap_now_usec();
		if (now >= deadline)
			break;
		uint64_t a0 = answers(d), r0 = retransmits(d);
		size_t nb = 0, expect = 0;
		for (; m && nb < SHUTDOWN_WINDOW; m = m->next) {
			if (!m->m)
				continue;
			struct pcpmap_mapping_info info;
			/* Only a MAP that the gateway holds is deleted with a request that gets an answer; PEER
			 * cannot be deleted (it expires). */
			if (pcpmap_mapping_get_info(m->m, &info) == 0 && info.kind == PCPMAP_KIND_MAP &&
			    (info.state == PCPMAP_STATE_MAPPED || info.state == PCPMAP_STATE_REFRESHING))
				expect++;
			pcpmap_mapping_free(m->m);
			m->m = NULL;
			batch[nb++] = m;
		}
		int r = pcpmap_client_flush(d->client, (int)((deadline - now + 999u) / 1000u));
		bool sure = r == 0 && retransmits(d) == r0 && answers(d) - a0 >= expect;
		for (size_t i = 0; i < nb; i++) {
			if (sure) {
				map_unlink_free(d, batch[i]);
				deleted++;
			} else {
				unconfirmed++;
			}
		}
	}
	for (struct dmap *x = d->maps; x; x = x->next)
		if (x->m) {
			/* Past the deadline: one best-effort packet from pcpmap_client_free(), record kept. */
			unsent++;
		}
	save_state(d, false);
	if (unconfirmed || unsent)
		logm(4,
		     "%u deletion%s not confirmed and %u not sent before the %u s deadline; the next start "
		     "deletes them again",
		     unconfirmed, unconfirmed == 1 ? "" : "s", unsent, SHUTDOWN_DEADLINE_MS / 1000u);
	logm(5, "stopped: %u mapping%s deleted, %u persistent kept", deleted, deleted == 1 ? "" : "s", kept);
}

void engine_conn_closed(struct daemon *d, struct conn *c)
{
	for (struct dmap *dm = d->maps, *next; dm; dm = next) {
		next = dm->next;
		if (dm->waiter == c) {
			dm->waiter = NULL;
			dm->wait_deadline = 0;
			timed_sync(d, dm, false);
		}
		for (struct del_waiter **pw = &dm->del_waiters; *pw;) {
			struct del_waiter *w = *pw;
			if (w->conn == c) {
				*pw = w->next;
				free(w);
			} else {
				pw = &w->next;
			}
		}
		if (dm->conn != c)
			continue;
		dm->conn = NULL;
		if (!dm->rec.persistent)
			delete_start(d, dm, NULL, 0, "its connection closed");
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
