/* Library through the daemon (doc/DESIGN.md): a client whose mappings pcpmapd makes. The client keeps the
 * engine's contract (one descriptor, deadlines, callbacks queued and delivered from process()) but holds no
 * gateway state: each mapping is a proxy of one of the daemon's, fed by its replies and events over the
 * control socket (doc/IPC.md). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "ipc/ipc.h"
#include "ipc/ipc_conv.h"
#include "net/ipc_sock.h"
#include "text/text.h"

#define CONNECT_WAIT_MS 1000         /* pcpmap_client_new(): the daemon's answer to SUBSCRIBE */
#define OUT_MAX_BYTES   (256u << 10) /* queued for a daemon that reads nothing: it is stuck, reconnect */
#define REPLY_GRACE_US  10000000u    /* a request unanswered this long: the daemon is stuck */
#define BACKOFF_MIN_US  250000u
#define BACKOFF_MAX_US  8000000u
#define PROBE_MAX_MS    60000u /* the daemon's cap on TIMEOUT_MS */
#define READS_PER_CALL  256    /* per process(); more keep the descriptor readable for the next one */
#define UNMAP_LIFETIME  120u   /* unmap_sync's renewal, deleted at once */

enum req_kind {
	R_SUBSCRIBE = 0,
	R_CREATE, /* map: the proxy, NULL once the application let go of it */
	R_DELETE,
	R_ATTACH, /* LIST after a reconnection: finds the persistent mappings the daemon kept */
	R_PROBE,
	R_SYNC, /* a blocking helper waits for it (sync, NULL once it gave up) */
};

struct sync_wait {
	bool done;
	int err; /* the daemon's refusal, or the connection's loss */
	char message[PMD_IPC_TEXT_MAX + 1];
	/* LIST: the first MAPPING that matches what unmap_sync names. */
	bool list;
	uint8_t ip_proto;
	uint16_t internal_port;
	uint8_t family;
	bool has_nonce;
	uint8_t nonce[PMD_IPC_NONCE_LEN];
	/* LIST and CREATE: the mapping found or made. */
	bool found;
	uint32_t id;
	struct pcpmap_mapping_info info;
	/* PROBE */
	struct pcpmap_probe_result *probe;
};

struct pending {
	struct pending *next;
	uint32_t seq;
	enum req_kind kind;
	uint64_t deadline;
	struct pm_dmap *map;
	bool delete_on_reply; /* CREATE of a mapping freed before the daemon named it */
	bool persistent;      /* CREATE or DELETE of a persistent mapping */
	uint32_t id;          /* DELETE */
	struct sync_wait *sync;
};

struct pm_dmap {
	struct pm_handle h; /* first: the application's pcpmap_mapping */
	pcpmap_client *client;
	struct pm_list link; /* in dmode->maps */
	pcpmap_event_fn cb;
	void *userdata;
	bool user_owned; /* false once the application freed or abandoned it */
	uint32_t id;     /* the daemon's name for it; 0 while it has none */
	bool persistent;
	bool has_nonce2;        /* a pair taken over with its second half's nonce */
	bool in_flight;         /* a CREATE, or the ATTACH of a persistent one, waits for its reply */
	bool attached;          /* the ATTACH in flight found it */
	bool held;              /* the daemon answered for it since the connection began: a drop is a LOST */
	bool done;              /* failed for good or deleted by someone: never asked for again */
	bool deleting;          /* pcpmap_mapping_delete(): DELETED or FAILED (state DELETED) follows */
	struct pmd_ipc_req req; /* what CREATE asks, again after a reconnection */
	struct pcpmap_mapping_info info;
	bool notified_mapped;
	bool ever_notified;
	char notified_addr[sizeof(((struct pcpmap_mapping_info *)0)->external_addr)];
	uint16_t notified_port;
};

struct deferred_delete {
	struct deferred_delete *next;
	uint32_t id;
};

/* An encoded message waiting for room in the socket. */
struct outmsg {
	struct outmsg *next;
	size_t len;
	uint8_t buf[];
};

struct pm_dmode {
	enum pcpmap_mode mode;
	char *path;
	int fd;            /* -1 while disconnected */
	bool lost_pending; /* the connection dropped; the timer reports it */
	int lost_error;
	bool reconnecting;
	uint32_t seq;
	struct outmsg *out_head, *out_tail; /* never blocking: what the socket had no room for, in order */
	size_t out_bytes;
	struct pending *head, *tail;
	struct pm_list maps;
	size_t n_maps;
	struct deferred_delete *deletes; /* persistent mappings to delete once connected again */
	uint64_t backoff_us;
	struct sched_timer t_conn;  /* reports a drop, then reconnects */
	struct sched_timer t_reply; /* the earliest deadline of a request in flight */
	bool probing;
	pcpmap_probe_fn probe_cb;
	void *probe_ud;
	uint8_t buf[PMD_IPC_MAX_MSG + 1];
	struct pmd_ipc_msg msg; /* the message being handled (too large for the stack of every caller) */
};

static uint64_t now_us(const pcpmap_client *c)
{
	return c->env.clock.now_us(c->env.clock.ctx);
}

static struct pm_dmap *dmap_of(struct pm_handle *h)
{
	return pm_container_of(h, struct pm_dmap, h);
}

static bool connected(const struct pm_dmode *dm)
{
	return dm->fd >= 0;
}

/* ---- the socket ---- */

static int open_socket(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Connecting to a local listener completes at once (EAGAIN: its backlog is full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	*ret_fd = fd;
	return 0;
}

static uint32_t next_seq(struct pm_dmode *dm)
{
	if (++dm->seq == 0)
		dm->seq = 1;
	return dm->seq;
}

static void on_io(pcpmap_client *c, int fd);
static void on_message(pcpmap_client *c, const struct pmd_ipc_msg *msg);

static void out_clear(struct pm_dmode *dm)
{
	while (dm->out_head) {
		struct outmsg *o = dm->out_head;
		dm->out_head = o->next;
		free(o);
	}
	dm->out_tail = NULL;
	dm->out_bytes = 0;
}

/* Sends an encoded message, or queues it behind those waiting for room: never waits. @return 0; -ENOBUFS when
 * the daemon has left too much unread; -ENOMEM; the socket's error. */
static int out_send(pcpmap_client *c, const uint8_t *buf, size_t len)
{
	struct pm_dmode *dm = c->dmode;
	if (!dm->out_head) {
		int r = pm_ipc_send(dm->fd, buf, len);
		if (r == 0)
			c->stats.sent++;
		if (r != -EAGAIN)
			return r;
	}
	if (dm->out_bytes + len > OUT_MAX_BYTES)
		return -ENOBUFS;
	struct outmsg *o = malloc(sizeof(*o) + len);
	if (!o)
		return -ENOMEM;
	o->next = NULL;
	o->len = len;
	memcpy(o->buf, buf, len);
	if (dm->out_tail)
		dm->out_tail->next = o;
	else
		dm->out_head = o;
	dm->out_tail = o;
	dm->out_bytes += len;
	if (o == dm->out_head)
		pm_client_watch_out(c, dm->fd, true);
	return 0;
}

/* The socket has room: sends what waits, in order. @return 0, or the socket's error. */
static int out_flush(pcpmap_client *c)
{
	struct pm_dmode *dm = c->dmode;
	while (dm->out_head) {
		struct outmsg *o = dm->out_head;
		int r = pm_ipc_send(dm->fd, o->buf, o->len);
		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			return r;
		c->stats.sent++;
		dm->out_head = o->next;
		dm->out_bytes -= o->len;
		free(o);
	}
	dm->out_tail = NULL;
	pm_client_watch_out(c, dm->fd, false);
	return 0;
}

/* The connection is gone: close it now, report from the timer (never from inside the call that found out). */
static void conn_drop(pcpmap_client *c, int err)
{
	struct pm_dmode *dm = c->dmode;
	if (!connected(dm))
		return;
	pm_client_unwatch_fd(c, dm->fd);
	close(dm->fd);
	dm->fd = -1;
	out_clear(dm); /* what was queued is asked again, or reported lost, after the reconnection */
	dm->lost_pending = true;
	dm->lost_error = err ? err : -ECONNRESET;
	sched_cancel(&c->sched, &dm->t_reply);
	sched_arm(&c->sched, &dm->t_conn, now_us(c));
}

/* ---- requests in flight ---- */

static void arm_reply_timer(pcpmap_client *c)
{
	struct pm_dmode *dm = c->dmode;
	uint64_t first = UINT64_MAX;
	for (const struct pending *p = dm->head; p; p = p->next)
		if (p->deadline < first)
			first = p->deadline;
	if (first == UINT64_MAX)
		sched_cancel(&c->sched, &dm->t_reply);
	else
		sched_arm(&c->sched, &dm->t_reply, first);
}

/* Sends m as a new request; on success *ret (may be NULL) is its entry in the list of requests in flight.
 * extra_us lengthens the reply's deadline (a probe's own timeout). */
static int send_request(pcpmap_client *c, struct pmd_ipc_msg *m, enum req_kind kind, uint64_t extra_us,
			struct pending **ret)
{
	struct pm_dmode *dm = c->dmode;
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	if (!connected(dm))
		return -ENOTCONN;
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	m->seq = next_seq(dm);
	int r = pmd_ipc_encode(m, buf, sizeof(buf), &len);
	if (r < 0) {
		free(p);
		return r;
	}
	r = out_send(c, buf, len);
	if (r < 0) {
		free(p);
		pm_log(c, PCPMAP_LOG_WARNING, "pcpmapd: sending %s failed: %s", pmd_ipc_type_name(m->type),
		       pcpmap_strerror(r));
		conn_drop(c, r);
		return r;
	}
	p->seq = m->seq;
	p->kind = kind;
	p->deadline = now_us(c) + REPLY_GRACE_US + extra_us;
	if (dm->tail)
		dm->tail->next = p;
	else
		dm->head = p;
	dm->tail = p;
	arm_reply_timer(c);
	if (ret)
		*ret = p;
	return 0;
}

static struct pending *find_pending(struct pm_dmode *dm, uint32_t seq)
{
	for (struct pending *p = dm->head; p; p = p->next)
		if (p->seq == seq)
			return p;
	return NULL;
}

static void unlink_pending(struct pm_dmode *dm, struct pending *p)
{
	struct pending *prev = NULL;
	for (struct pending *q = dm->head; q; prev = q, q = q->next) {
		if (q != p)
			continue;
		if (prev)
			prev->next = q->next;
		else
			dm->head = q->next;
		if (dm->tail == q)
			dm->tail = prev;
		q->next = NULL;
		return;
	}
}

static void reply_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	pcpmap_client *c = arg;
	struct pm_dmode *dm = c->dmode;
	for (const struct pending *p = dm->head; p; p = p->next) {
		if (p->deadline <= now) {
			pm_log(c, PCPMAP_LOG_WARNING, "pcpmapd left request %u unanswered: reconnecting",
			       p->seq);
			conn_drop(c, -ETIMEDOUT);
			return;
		}
	}
	arm_reply_timer(c);
}

/* ---- proxies ---- */

static void queue_event(pcpmap_client *c, struct pm_dmap *d, enum pcpmap_event ev)
{
	if (!d->user_owned)
		return;
	struct pm_event *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->kind = PM_EVENT_PROXY;
	e->handle = (pcpmap_mapping *)&d->h;
	e->cb = d->cb;
	e->userdata = d->userdata;
	e->ev = ev;
	e->info = d->info;
	pm_client_queue_event(c, e);
}

/* MAPPED the first time and after a loss with the same external address and port, CHANGED when they moved:
 * the engine's rule, so a re-creation through a restarted daemon reads like any other restoration. */
static void notify_mapped(pcpmap_client *c, struct pm_dmap *d)
{
	bool differs =
	    d->info.external_port != d->notified_port || strcmp(d->info.external_addr, d->notified_addr) != 0;
	if (d->notified_mapped && !differs)
		return;
	enum pcpmap_event ev = d->ever_notified && differs ? PCPMAP_EVENT_CHANGED : PCPMAP_EVENT_MAPPED;
	d->notified_mapped = true;
	d->ever_notified = true;
	d->notified_port = d->info.external_port;
	pm_text_copy(d->notified_addr, sizeof(d->notified_addr), d->info.external_addr);
	queue_event(c, d, ev);
}

/* A MAPPING or EVENT message into the info the engine would give (the daemon's relative seconds onto this
 * client's clock). The detail stays ours (the daemon does not carry it), and so does the nonce when the
 * message has none; the daemon says the requested lifetime until one is granted, the engine says 0. */
static void info_from_msg(pcpmap_client *c, const struct pmd_ipc_msg *msg, struct pcpmap_mapping_info *i)
{
	char detail[sizeof(i->detail)];
	uint8_t nonce[sizeof(i->nonce)], nonce2[sizeof(i->nonce2)];
	memcpy(detail, i->detail, sizeof(detail));
	memcpy(nonce, i->nonce, sizeof(nonce));
	memcpy(nonce2, i->nonce2, sizeof(nonce2));
	pmd_conv_info_from_msg(msg, now_us(c), i);
	if (!pmd_ipc_has(msg, PMD_A_EXPIRES_IN))
		i->lifetime = 0;
	if (!pmd_ipc_has(msg, PMD_A_NONCE))
		memcpy(i->nonce, nonce, sizeof(nonce));
	if (!pmd_ipc_has(msg, PMD_A_NONCE2))
		memcpy(i->nonce2, nonce2, sizeof(nonce2));
	memcpy(i->detail, detail, sizeof(detail));
}

static void build_create(const struct pm_dmap *d, struct pmd_ipc_msg *m)
{
	pmd_ipc_init(m, PMD_MSG_CREATE, 0);
	m->req = d->req;
	pmd_conv_set_req_bits(m);
	/* Always our nonces: the mapping keeps them across daemon restarts and re-creations. */
	memcpy(m->req.nonce, d->info.nonce, PMD_IPC_NONCE_LEN);
	pmd_ipc_set(m, PMD_A_NONCE);
	if (d->has_nonce2) {
		memcpy(m->nonce2, d->info.nonce2, PMD_IPC_NONCE_LEN);
		pmd_ipc_set(m, PMD_A_NONCE2);
	}
	m->persistent = d->persistent;
}

static void send_create(pcpmap_client *c, struct pm_dmap *d)
{
	struct pmd_ipc_msg m;
	struct pending *p;
	build_create(d, &m);
	if (send_request(c, &m, R_CREATE, 0, &p) < 0)
		return; /* asked again after the reconnection */
	p->map = d;
	p->persistent = d->persistent;
	d->in_flight = true;
}

static void send_delete(pcpmap_client *c, uint32_t id, bool persistent, struct pm_dmap *d)
{
	struct pm_dmode *dm = c->dmode;
	struct pmd_ipc_msg m;
	struct pending *p;
	pmd_ipc_init(&m, PMD_MSG_DELETE, 0);
	m.id = id;
	pmd_ipc_set(&m, PMD_A_ID);
	/* Answered once the gateway answered the delete. */
	if (send_request(c, &m, R_DELETE, (uint64_t)PMD_IPC_DELETE_WAIT_MS * 1000u, &p) == 0) {
		p->id = id;
		p->persistent = persistent;
		p->map = d;
		return;
	}
	/* A mapping that is not persistent went with the connection; a persistent one waits for the next. */
	if (!persistent)
		return;
	struct deferred_delete *dd = calloc(1, sizeof(*dd));
	if (!dd)
		return;
	dd->id = id;
	dd->next = dm->deletes;
	dm->deletes = dd;
}

static struct pm_dmap *find_id(struct pm_dmode *dm, uint32_t id)
{
	if (!id)
		return NULL;
	for (struct pm_list *l = dm->maps.next; l != &dm->maps; l = l->next) {
		struct pm_dmap *d = pm_container_of(l, struct pm_dmap, link);
		if (d->id == id)
			return d;
	}
	return NULL;
}

/* Forgets a proxy the application let go of; requests in flight for it find nobody. */
static void release(pcpmap_client *c, struct pm_dmap *d)
{
	struct pm_dmode *dm = c->dmode;
	for (struct pending *p = dm->head; p; p = p->next)
		if (p->map == d)
			p->map = NULL;
	pm_client_purge_events(c, &d->h);
	pm_list_del(&d->link);
	dm->n_maps--;
	free(d);
}

/* ---- replies and events ---- */

/* "pcpmapd: <text>" into a detail field, cut to fit. */
static void daemon_detail(char *dst, size_t cap, const char *text)
{
	snprintf(dst, cap, "pcpmapd: %.*s", (int)(cap > 10 ? cap - 10 : 0), text);
}

/* A probe the daemon could not run (or a connection that dropped): nothing was tried from here, so every
 * protocol says why and chosen is NONE. */
static void probe_failed(int err, const char *message, struct pcpmap_probe_result *r)
{
	memset(r, 0, sizeof(*r));
	struct pcpmap_server_info *all[3] = { &r->pcp, &r->natpmp, &r->upnp };
	for (size_t i = 0; i < 3; i++) {
		all[i]->error = err;
		daemon_detail(all[i]->detail, sizeof(all[i]->detail),
			      message && message[0] ? message : pcpmap_strerror(err));
	}
}

static void finish_probe(pcpmap_client *c, const struct pmd_ipc_msg *msg, int err)
{
	struct pm_dmode *dm = c->dmode;
	dm->probing = false;
	struct pm_event *e = calloc(1, sizeof(*e));
	struct pcpmap_probe_result *r = malloc(sizeof(*r));
	if (!e || !r) {
		free(e);
		free(r);
		return;
	}
	if (msg && !err)
		pmd_conv_probe_from_msg(msg, r);
	else
		probe_failed(err, msg ? msg->message : NULL, r);
	e->kind = PM_EVENT_PROBE;
	e->probe_cb = dm->probe_cb;
	e->userdata = dm->probe_ud;
	e->probe_result = r;
	pm_client_queue_event(c, e);
}

static int msg_error(const struct pmd_ipc_msg *msg)
{
	return msg->error ? -(int)msg->error : -EPROTO;
}

static bool sync_matches(const struct sync_wait *w, const struct pmd_ipc_msg *msg)
{
	if (msg->req.ip_proto != w->ip_proto || msg->req.internal_port != w->internal_port ||
	    msg->req.family != w->family || msg->req.kind != PCPMAP_KIND_MAP)
		return false;
	if (!w->has_nonce)
		return true;
	return pmd_ipc_has(msg, PMD_A_NONCE) && memcmp(msg->req.nonce, w->nonce, PMD_IPC_NONCE_LEN) == 0;
}

static void on_sync_reply(pcpmap_client *c, struct sync_wait *w, const struct pmd_ipc_msg *msg)
{
	switch (msg->type) {
	case PMD_MSG_ERROR:
		w->err = msg_error(msg);
		pm_text_copy(w->message, sizeof(w->message), msg->message);
		w->done = true;
		return;
	case PMD_MSG_MAPPING:
		if (w->list && (w->found || !sync_matches(w, msg)))
			return;
		w->found = true;
		w->id = msg->id;
		info_from_msg(c, msg, &w->info);
		if (!w->list)
			w->done = true; /* CREATE: one reply */
		return;
	case PMD_MSG_PROBE_RESULT:
		if (w->probe)
			pmd_conv_probe_from_msg(msg, w->probe);
		w->done = true;
		return;
	default:
		w->done = true;
		return;
	}
}

/* The ATTACH list ended: persistent mappings the daemon no longer has are asked for again. */
static void attach_done(pcpmap_client *c)
{
	struct pm_dmode *dm = c->dmode;
	for (struct pm_list *l = dm->maps.next; l != &dm->maps && connected(dm); l = l->next) {
		struct pm_dmap *d = pm_container_of(l, struct pm_dmap, link);
		if (!d->persistent || !d->in_flight || d->done)
			continue;
		d->in_flight = false;
		if (!d->attached) {
			d->id = 0;
			send_create(c, d);
		}
	}
}

static void on_attach_mapping(pcpmap_client *c, const struct pmd_ipc_msg *msg)
{
	struct pm_dmode *dm = c->dmode;
	for (struct pm_list *l = dm->maps.next; l != &dm->maps; l = l->next) {
		struct pm_dmap *d = pm_container_of(l, struct pm_dmap, link);
		if (!d->persistent || !d->in_flight || d->attached)
			continue;
		bool same = d->id ? d->id == msg->id
				  : pmd_ipc_has(msg, PMD_A_NONCE) &&
					memcmp(msg->req.nonce, d->info.nonce, PMD_IPC_NONCE_LEN) == 0;
		if (!same)
			continue;
		d->attached = true;
		d->held = true;
		d->id = msg->id;
		info_from_msg(c, msg, &d->info);
		if (d->info.state == PCPMAP_STATE_MAPPED || d->info.state == PCPMAP_STATE_REFRESHING)
			notify_mapped(c, d);
		return;
	}
}

static void on_create_reply(pcpmap_client *c, struct pending *p, const struct pmd_ipc_msg *msg)
{
	struct pm_dmap *d = p->map;
	if (msg->type == PMD_MSG_MAPPING) {
		if (!d) {
			if (p->delete_on_reply)
				send_delete(c, msg->id, p->persistent, NULL);
			return;
		}
		d->in_flight = false;
		d->held = true;
		d->id = msg->id;
		info_from_msg(c, msg, &d->info);
		if (d->deleting)
			send_delete(c, d->id, d->persistent,
				    d); /* pcpmap_mapping_delete() before it was named */
		return;
	}
	if (!d)
		return;
	d->in_flight = false;
	if (msg->type != PMD_MSG_ERROR) {
		c->stats.dropped++;
		return;
	}
	/* Refused (a limit, a permission, a request the daemon's engine rejects): final, as the engine's
	 * -EINVAL would have been, but reported the only way left, by a callback. */
	d->done = true;
	d->info.state = PCPMAP_STATE_FAILED;
	d->info.error = msg_error(msg);
	daemon_detail(d->info.detail, sizeof(d->info.detail),
		      msg->message[0] ? msg->message : pcpmap_strerror(d->info.error));
	pm_log(c, PCPMAP_LOG_WARNING, "pcpmapd refused mapping %s %u: %s",
	       d->req.ip_proto == 17 ? "udp" : "tcp", d->req.internal_port, d->info.detail);
	queue_event(c, d, PCPMAP_EVENT_FAILED);
}

/* pcpmap_mapping_delete() ended without a deletion: FAILED with state DELETED, as the engine reports it. */
static void delete_refused(pcpmap_client *c, struct pm_dmap *d, int err, const char *why)
{
	d->deleting = false;
	d->done = true;
	d->info.state = PCPMAP_STATE_DELETED;
	d->info.error = err;
	daemon_detail(d->info.detail, sizeof(d->info.detail), why && why[0] ? why : pcpmap_strerror(err));
	queue_event(c, d, PCPMAP_EVENT_FAILED);
}

static void on_event(pcpmap_client *c, const struct pmd_ipc_msg *msg)
{
	/* Events of mappings that are not ours (root sees every uid's, a uid every one of its clients') are
	 * not for us. */
	struct pm_dmap *d = find_id(c->dmode, msg->id);
	if (!d)
		return;
	info_from_msg(c, msg, &d->info);
	switch ((enum pcpmap_event)msg->event) {
	case PCPMAP_EVENT_MAPPED:
	case PCPMAP_EVENT_CHANGED:
		notify_mapped(c, d);
		return;
	case PCPMAP_EVENT_LOST:
		d->notified_mapped = false;
		queue_event(c, d, PCPMAP_EVENT_LOST);
		return;
	case PCPMAP_EVENT_FAILED:
		if (d->info.state == PCPMAP_STATE_FAILED)
			d->done = true;
		/* The delete failed; the daemon keeps the mapping and renews it (doc/IPC.md). */
		if (d->deleting && d->info.state == PCPMAP_STATE_DELETED)
			d->deleting = false;
		queue_event(c, d, PCPMAP_EVENT_FAILED);
		return;
	case PCPMAP_EVENT_DELETED:
		/* pcpmap_mapping_delete() confirmed, or someone else (root, another client of this uid) deleted
		 * it through the daemon. */
		d->deleting = false;
		d->info.state = PCPMAP_STATE_DELETED;
		d->id = 0;
		d->done = true;
		d->notified_mapped = false;
		queue_event(c, d, PCPMAP_EVENT_DELETED);
		return;
	}
	c->stats.dropped++;
}

static void on_message(pcpmap_client *c, const struct pmd_ipc_msg *msg)
{
	struct pm_dmode *dm = c->dmode;
	if (msg->type == PMD_MSG_EVENT) {
		on_event(c, msg);
		return;
	}
	if (msg->type < 128) {
		c->stats.dropped++; /* a request from the daemon makes no sense */
		return;
	}
	if (msg->type == PMD_MSG_ERROR && msg->seq == 0) {
		/* The daemon refused the connection itself (a connection limit). */
		pm_log(c, PCPMAP_LOG_WARNING, "pcpmapd refused the connection: %s", msg->message);
		conn_drop(c, msg_error(msg));
		return;
	}
	struct pending *p = find_pending(dm, msg->seq);
	if (!p) {
		c->stats.dropped++;
		return;
	}
	bool many = p->kind == R_ATTACH || (p->kind == R_SYNC && p->sync && p->sync->list);
	bool last = !(many && msg->type == PMD_MSG_MAPPING);
	if (last)
		unlink_pending(dm, p);
	switch (p->kind) {
	case R_SUBSCRIBE:
		if (msg->type == PMD_MSG_OK) {
			dm->backoff_us = BACKOFF_MIN_US;
			if (dm->reconnecting)
				pm_log(c, PCPMAP_LOG_NOTICE, "pcpmapd at %s answers again", dm->path);
			dm->reconnecting = false;
		} else {
			conn_drop(c, msg->type == PMD_MSG_ERROR ? msg_error(msg) : -EPROTO);
		}
		break;
	case R_CREATE:
		on_create_reply(c, p, msg);
		break;
	case R_DELETE:
		if (msg->type == PMD_MSG_ERROR && msg->error != ENOENT)
			pm_log(c, PCPMAP_LOG_INFO, "pcpmapd: delete of mapping %u: %s", p->id, msg->message);
		/* The gateway's answer came as an event before this reply; a refusal of the daemon's own (no
		 * such mapping, not its owner) comes only here. */
		if (p->map && p->map->deleting && msg->type == PMD_MSG_ERROR)
			delete_refused(c, p->map, msg_error(msg), msg->message);
		break;
	case R_ATTACH:
		if (msg->type == PMD_MSG_MAPPING)
			on_attach_mapping(c, msg);
		else
			attach_done(c);
		break;
	case R_PROBE:
		if (msg->type == PMD_MSG_PROBE_RESULT)
			finish_probe(c, msg, 0);
		else
			finish_probe(c, msg, msg->type == PMD_MSG_ERROR ? msg_error(msg) : -EPROTO);
		break;
	case R_SYNC:
		if (p->sync)
			on_sync_reply(c, p->sync, msg);
		else if (p->delete_on_reply && msg->type == PMD_MSG_MAPPING)
			send_delete(c, msg->id, false, NULL);
		break;
	}
	if (last) {
		free(p);
		if (connected(dm))
			arm_reply_timer(c);
	}
}

/* The connection is readable or, with messages queued, writable. */
static void on_io(pcpmap_client *c, int fd)
{
	struct pm_dmode *dm = c->dmode;
	if (dm->out_head) {
		int r = out_flush(c);
		if (r < 0) {
			pm_log(c, PCPMAP_LOG_WARNING, "pcpmapd: sending failed: %s", pcpmap_strerror(r));
			conn_drop(c, r);
			return;
		}
	}
	for (unsigned i = 0; i < READS_PER_CALL && dm->fd == fd; i++) {
		size_t len = 0;
		int r = pm_ipc_recv(fd, dm->buf, &dm->msg, &len);
		if (len)
			c->stats.received++;
		if (r == 0)
			return;
		if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
			c->stats.dropped++; /* not a message of ours; the next may be */
			continue;
		}
		if (r < 0) {
			conn_drop(c, r);
			return;
		}
		on_message(c, &dm->msg);
	}
}

/* ---- losing and finding the daemon ---- */

static void report_loss(pcpmap_client *c)
{
	struct pm_dmode *dm = c->dmode;
	int err = dm->lost_error;
	pm_log(c, PCPMAP_LOG_NOTICE, "connection to pcpmapd at %s lost (%s): reconnecting", dm->path,
	       pcpmap_strerror(err));
	while (dm->head) {
		struct pending *p = dm->head;
		dm->head = p->next;
		switch (p->kind) {
		case R_DELETE:
			if (p->persistent) {
				/* Maybe done, maybe not: ask again (ENOENT is fine). */
				struct deferred_delete *dd = calloc(1, sizeof(*dd));
				if (dd) {
					dd->id = p->id;
					dd->next = dm->deletes;
					dm->deletes = dd;
				}
			}
			break;
		case R_CREATE:
			if (!p->map && p->delete_on_reply && p->persistent)
				pm_log(c, PCPMAP_LOG_WARNING,
				       "a persistent mapping freed before pcpmapd named it may stay in the "
				       "daemon");
			break;
		case R_PROBE:
			finish_probe(c, NULL, err);
			break;
		case R_SYNC:
			if (p->sync) {
				p->sync->err = err;
				p->sync->done = true;
			}
			break;
		default:
			break;
		}
		free(p);
	}
	dm->tail = NULL;
	/* The daemon deleted what was bound to the connection; persistent mappings it kept. Either way this
	 * client cannot vouch for any of them until it hears from the daemon again. */
	for (struct pm_list *l = dm->maps.next; l != &dm->maps; l = l->next) {
		struct pm_dmap *d = pm_container_of(l, struct pm_dmap, link);
		bool held = d->held;
		d->in_flight = false;
		d->held = false;
		if (!d->persistent)
			d->id = 0;
		if (d->deleting) {
			/* The daemon deletes what the connection held, and keeps a persistent one (asked again
			 * after the reconnection): either way this client cannot say the gateway confirmed. */
			delete_refused(c, d, err, "the connection to pcpmapd dropped during the delete");
			continue;
		}
		if (d->done)
			continue;
		d->info.state = PCPMAP_STATE_NOT_SENT;
		d->info.error = err;
		d->info.expires_usec = d->info.refresh_usec = d->info.retry_usec = 0;
		d->notified_mapped = false;
		/* Only what the daemon held can be lost: a request it never answered is simply asked again. */
		if (held)
			queue_event(c, d, PCPMAP_EVENT_LOST);
	}
}

static void subscribe_msg(struct pmd_ipc_msg *m)
{
	pmd_ipc_init(m, PMD_MSG_SUBSCRIBE, 0);
}

static void reconnect(pcpmap_client *c)
{
	struct pm_dmode *dm = c->dmode;
	int fd;
	int r = open_socket(dm->path, &fd);
	if (r == 0) {
		r = pm_client_watch_fd(c, fd, on_io);
		if (r < 0)
			close(fd);
	}
	if (r < 0) {
		pm_log(c, PCPMAP_LOG_DEBUG, "pcpmapd at %s: %s; next try in %llu ms", dm->path,
		       pcpmap_strerror(r), (unsigned long long)(dm->backoff_us / 1000u));
		sched_arm(&c->sched, &dm->t_conn, now_us(c) + dm->backoff_us);
		dm->backoff_us = dm->backoff_us * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : dm->backoff_us * 2;
		return;
	}
	dm->fd = fd;
	/* Requests are answered in order, so everything can go out at once. */
	struct pmd_ipc_msg m;
	subscribe_msg(&m);
	if (send_request(c, &m, R_SUBSCRIBE, 0, NULL) < 0)
		return;
	while (dm->deletes && connected(dm)) {
		struct deferred_delete *dd = dm->deletes;
		dm->deletes = dd->next;
		uint32_t id = dd->id;
		free(dd);
		send_delete(c, id, true, NULL);
	}
	bool any_persistent = false;
	for (struct pm_list *l = dm->maps.next; l != &dm->maps; l = l->next) {
		struct pm_dmap *d = pm_container_of(l, struct pm_dmap, link);
		if (d->persistent && !d->done) {
			d->in_flight = true;
			d->attached = false;
			any_persistent = true;
		}
	}
	if (any_persistent && connected(dm)) {
		pmd_ipc_init(&m, PMD_MSG_LIST, 0);
		if (send_request(c, &m, R_ATTACH, 0, NULL) < 0)
			return;
	}
	for (struct pm_list *l = dm->maps.next; l != &dm->maps && connected(dm); l = l->next) {
		struct pm_dmap *d = pm_container_of(l, struct pm_dmap, link);
		if (!d->persistent && !d->done)
			send_create(c, d);
	}
}

static void conn_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	pcpmap_client *c = arg;
	struct pm_dmode *dm = c->dmode;
	if (dm->lost_pending) {
		dm->lost_pending = false;
		dm->reconnecting = true;
		report_loss(c);
		sched_arm(&c->sched, &dm->t_conn, now + dm->backoff_us);
		dm->backoff_us = dm->backoff_us * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : dm->backoff_us * 2;
		return;
	}
	if (!connected(dm))
		reconnect(c);
}

/* pcpmap_client_new(): SUBSCRIBE and wait for its OK, so AUTO knows whether a daemon really serves. */
static int handshake(pcpmap_client *c, struct pm_dmode *dm, int fd)
{
	struct pmd_ipc_msg *reply = &dm->msg;
	uint8_t buf[PMD_IPC_HDR_LEN];
	size_t len;
	subscribe_msg(reply);
	uint32_t seq = reply->seq = next_seq(dm);
	int r = pmd_ipc_encode(reply, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	/* A fresh connection has room for one message. A daemon that refuses the connection (a limit) sends
	 * its reason and closes, maybe before reading us: a failed send still reads the reason. */
	int sent = pm_ipc_send(fd, buf, len);
	if (sent == 0)
		c->stats.sent++;
	uint64_t end = now_us(c) + CONNECT_WAIT_MS * 1000u;
	for (;;) {
		size_t n = 0;
		r = pm_ipc_recv(fd, dm->buf, reply, &n);
		if (n)
			c->stats.received++;
		if (r == -EBADMSG || r == -EPROTONOSUPPORT)
			return -EPROTO;
		if (r < 0)
			return r == -ECONNRESET && sent < 0 ? sent : r;
		if (r == 0) {
			if (sent < 0)
				return sent;
			/* The one wait of daemon mode, inside pcpmap_client_new() and documented there: the
			 * injected clock says how long is left, poll() says when nothing came. */
			uint64_t now = now_us(c);
			if (now >= end)
				return -ETIMEDOUT;
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int pr = poll(&p, 1, (int)((end - now + 999) / 1000));
			if (pr == 0)
				return -ETIMEDOUT;
			if (pr < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		if (reply->type == PMD_MSG_ERROR && (reply->seq == seq || reply->seq == 0)) {
			pm_log(c, PCPMAP_LOG_WARNING, "pcpmapd at %s refused the connection: %s", dm->path,
			       reply->message);
			return msg_error(reply);
		}
		if (reply->type == PMD_MSG_OK && reply->seq == seq)
			return 0;
		c->stats.dropped++;
	}
}

int pm_dmode_start(pcpmap_client *c, const struct pcpmap_client_config *cfg)
{
	struct pcpmap_client_config def;
	if (!cfg) {
		pcpmap_client_config_init(&def);
		cfg = &def;
	}
	if (cfg->size < offsetof(struct pcpmap_client_config, daemon_socket) + sizeof(cfg->daemon_socket) ||
	    cfg->mode == PCPMAP_MODE_ENGINE)
		return 0;
	const char *path = cfg->daemon_socket;
	if (!path || !*path)
		path = getenv("PCPMAPD_SOCKET");
	if (!path || !*path)
		path = PCPMAP_DEFAULT_DAEMON_SOCKET;
	struct pm_dmode *dm = calloc(1, sizeof(*dm));
	if (!dm)
		return -ENOMEM;
	dm->path = strdup(path);
	if (!dm->path) {
		free(dm);
		return -ENOMEM;
	}
	dm->mode = cfg->mode;
	dm->fd = -1;
	dm->backoff_us = BACKOFF_MIN_US;
	pm_list_init(&dm->maps);
	sched_timer_init(&dm->t_conn, conn_timer, c, "daemon connection");
	sched_timer_init(&dm->t_reply, reply_timer, c, "daemon reply");
	int fd = -1;
	int r = open_socket(dm->path, &fd);
	if (r == 0)
		r = handshake(c, dm, fd);
	if (r == 0)
		r = pm_client_watch_fd(c, fd, on_io);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		pm_log(c, cfg->mode == PCPMAP_MODE_AUTO ? PCPMAP_LOG_INFO : PCPMAP_LOG_ERR,
		       "pcpmapd at %s: %s%s", dm->path, pcpmap_strerror(r),
		       cfg->mode == PCPMAP_MODE_AUTO ? ": using the in-process engine" : "");
		free(dm->path);
		free(dm);
		c->stats = (struct pcpmap_stats){ 0 };
		return cfg->mode == PCPMAP_MODE_AUTO ? 0 : r;
	}
	dm->fd = fd;
	c->dmode = dm;
	c->ops = &pm_dmode_ops;
	c->cfg.daemon_socket = dm->path;
	if (c->cfg.server)
		pm_log(c, PCPMAP_LOG_NOTICE, "server %s not used: pcpmapd chooses the gateway",
		       c->cfg.server);
	pm_log(c, PCPMAP_LOG_INFO, "mappings through pcpmapd at %s", dm->path);
	return 0;
}

static void dmode_stop(pcpmap_client *c)
{
	struct pm_dmode *dm = c->dmode;
	if (!dm)
		return;
	if (connected(dm)) {
		pm_client_unwatch_fd(c, dm->fd);
		close(dm->fd);
	}
	sched_cancel(&c->sched, &dm->t_conn);
	sched_cancel(&c->sched, &dm->t_reply);
	out_clear(dm);
	while (dm->head) {
		struct pending *p = dm->head;
		dm->head = p->next;
		free(p);
	}
	while (dm->deletes) {
		struct deferred_delete *dd = dm->deletes;
		dm->deletes = dd->next;
		free(dd);
	}
	while (!pm_list_empty(&dm->maps)) {
		struct pm_dmap *d = pm_container_of(dm->maps.next, struct pm_dmap, link);
		pm_client_purge_events(c, &d->h);
		pm_list_del(&d->link);
		free(d);
	}
	c->cfg.daemon_socket = NULL;
	free(dm->path);
	free(dm);
	c->dmode = NULL;
}

PCPMAP_EXPORT bool pcpmap_client_uses_daemon(const pcpmap_client *c)
{
	return c && c->ops == &pm_dmode_ops;
}

/* ---- the API in daemon mode ---- */

static int copy_field(pcpmap_client *c, char *dst, size_t cap, const char *src, const char *what)
{
	if (!src)
		return 0;
	size_t len = strlen(src);
	if (len >= cap || !pmd_ipc_str_valid(src, len)) {
		pm_log(c, PCPMAP_LOG_ERR,
		       "request: %s cannot be sent to pcpmapd (at most %zu bytes of UTF-8 "
		       "without control characters)",
		       what, cap - 1);
		return -EINVAL;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

static int dmode_mapping_new(pcpmap_client *c, const struct pcpmap_request *req, pcpmap_mapping **ret)
{
	struct pm_dmode *dm = c->dmode;
	int r = pm_request_validate(c, req);
	if (r < 0)
		return r;
	if (dm->n_maps >= c->cfg.max_mappings) {
		pm_log(c, PCPMAP_LOG_WARNING, "mapping table full (%u mappings)", c->cfg.max_mappings);
		return -ENOSPC;
	}
	struct pm_dmap *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	/* What the daemon could not read must fail here, not after the mapping exists. */
	struct pmd_ipc_msg m;
	const char *what = "request";
	r = pmd_conv_create_from_request(req, &m, &what);
	if (r < 0) {
		pm_log(c, PCPMAP_LOG_ERR,
		       "request: the %s cannot be sent to pcpmapd (too long, or not UTF-8 without control "
		       "characters)",
		       what);
		free(d);
		return r;
	}
	d->req = m.req;
	if (!d->req.protocols && c->cfg.protocols != PCPMAP_PROTOS_ALL)
		d->req.protocols = c->cfg.protocols;
	d->has_nonce2 = pmd_ipc_has(&m, PMD_A_NONCE2);
	if (d->has_nonce2)
		memcpy(d->info.nonce2, m.nonce2, sizeof(d->info.nonce2));
	d->h.ops = &pm_dmode_ops;
	d->client = c;
	d->cb = req->callback;
	d->userdata = req->userdata;
	d->user_owned = true;
	d->persistent = m.persistent;
	if (pmd_ipc_has(&m, PMD_A_NONCE))
		memcpy(d->info.nonce, m.req.nonce, sizeof(d->info.nonce));
	else
		c->env.rand.fill(c->env.rand.ctx, d->info.nonce, sizeof(d->info.nonce));
	d->info.state = PCPMAP_STATE_NOT_SENT;
	d->info.kind = req->kind;
	d->info.ip_proto = req->ip_proto;
	d->info.internal_port = req->internal_port;
	pm_text_copy(d->info.peer_addr, sizeof(d->info.peer_addr), d->req.peer_addr);
	d->info.peer_port = d->req.peer_port;
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	build_create(d, &m);
	r = pmd_ipc_encode(&m, buf, sizeof(buf), &len);
	if (r < 0) {
		pm_log(c, PCPMAP_LOG_ERR, "request: cannot be encoded for pcpmapd: %s", pcpmap_strerror(r));
		free(d);
		return r == -ENOSPC ? -EINVAL : r;
	}
	pm_list_init(&d->link);
	pm_list_add_tail(&dm->maps, &d->link);
	dm->n_maps++;
	c->now = now_us(c);
	/* While the daemon is away the request waits for the reconnection. */
	if (connected(dm))
		send_create(c, d);
	*ret = (pcpmap_mapping *)&d->h;
	return 0;
}

static void dmode_mapping_free(struct pm_handle *h)
{
	struct pm_dmap *d = dmap_of(h);
	pcpmap_client *c = d->client;
	d->user_owned = false;
	if (d->id) {
		send_delete(c, d->id, d->persistent, NULL);
	} else if (d->in_flight) {
		for (struct pending *p = c->dmode->head; p; p = p->next) {
			if (p->map == d && p->kind == R_CREATE) {
				p->delete_on_reply = true;
				p->persistent = d->persistent;
			}
		}
	}
	release(c, d);
}

static void dmode_mapping_abandon(struct pm_handle *h)
{
	struct pm_dmap *d = dmap_of(h);
	d->user_owned = false;
	release(d->client, d);
}

static void dmode_mapping_get_info(const struct pm_handle *h, struct pcpmap_mapping_info *ret)
{
	*ret = ((const struct pm_dmap *)(const void *)h)->info; /* h is its first member */
}

static void dmode_mapping_set_callback(struct pm_handle *h, pcpmap_event_fn cb, void *userdata)
{
	struct pm_dmap *d = dmap_of(h);
	d->cb = cb;
	d->userdata = userdata;
}

/* The daemon answers a DELETE once the gateway did and tells its subscribers (this client is one): DELETED,
 * or FAILED with state DELETED; it then keeps a mapping whose delete failed (doc/IPC.md). */
static int dmode_mapping_delete(struct pm_handle *h)
{
	struct pm_dmap *d = dmap_of(h);
	pcpmap_client *c = d->client;
	if (d->req.kind == PCPMAP_KIND_PEER)
		return -EOPNOTSUPP; /* RFC 6887 12: a PEER mapping only expires */
	if (d->deleting || d->info.state == PCPMAP_STATE_DELETED)
		return -EALREADY;
	if (!d->id && !d->in_flight) {
		/* Never sent, or failed for good: nothing the daemon holds. */
		d->done = true;
		d->info.state = PCPMAP_STATE_DELETED;
		return 1;
	}
	d->deleting = true;
	if (d->id)
		send_delete(c, d->id, d->persistent, d); /* else: once the CREATE's reply names it */
	return 0;
}

static bool nothing_deleting(pcpmap_client *c, void *ud)
{
	(void)ud;
	struct pm_dmode *dm = c->dmode;
	if (dm->deletes)
		return false;
	for (const struct pending *p = dm->head; p; p = p->next)
		if (p->kind == R_DELETE)
			return false;
	return true;
}

static int dmode_flush(pcpmap_client *c, int timeout_ms)
{
	if (nothing_deleting(c, NULL))
		return 0;
	return pm_client_wait(c, nothing_deleting, NULL, timeout_ms < 0 ? 0 : timeout_ms);
}

static bool sync_done(pcpmap_client *c, void *ud)
{
	(void)c;
	return ((struct sync_wait *)ud)->done;
}

/* Sends m and runs the loop until its reply (other callbacks keep running meanwhile). */
static int transact(pcpmap_client *c, struct pmd_ipc_msg *m, struct sync_wait *w, uint64_t extra_us,
		    int timeout_ms)
{
	struct pending *p;
	int r = send_request(c, m, R_SYNC, extra_us, &p);
	if (r < 0)
		return r;
	p->sync = w;
	r = pm_client_wait(c, sync_done, w, timeout_ms);
	if (!w->done) {
		/* Gave up: a late reply finds nobody waiting, and a mapping made meanwhile is deleted. */
		struct pending *q = find_pending(c->dmode, m->seq);
		if (q) {
			q->sync = NULL;
			q->delete_on_reply = m->type == PMD_MSG_CREATE;
		}
		return r < 0 ? r : -ETIMEDOUT;
	}
	return w->err;
}

static int dmode_unmap_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
			    struct pcpmap_mapping_info *ret_info)
{
	struct pm_dmode *dm = c->dmode;
	int r = pm_request_validate(c, req);
	if (r < 0)
		return r;
	if (!connected(dm))
		return -ENOTCONN;
	if (timeout_ms < 0)
		timeout_ms = 0;
	uint64_t end = now_us(c) + (uint64_t)timeout_ms * 1000u;
	/* Local round trips (LIST, DELETE) get at least this long whatever the budget. */
	const int local_ms = timeout_ms > 1000 ? timeout_ms : 1000;
	const uint8_t *nonce =
	    req->size >= offsetof(struct pcpmap_request, nonce) + sizeof(req->nonce) ? req->nonce : NULL;

	/* Held by the daemon already (by this program earlier, or another client of this uid): delete that
	 * one, or the daemon would renew it behind our back. */
	struct sync_wait w = { .list = true, .ip_proto = req->ip_proto, .internal_port = req->internal_port };
	w.family = pmd_ipc_family_to_wire(req->external_family ? req->external_family : AF_INET);
	if (nonce) {
		w.has_nonce = true;
		memcpy(w.nonce, nonce, sizeof(w.nonce));
	}
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_LIST, 0);
	r = transact(c, &m, &w, 0, local_ms);
	if (r < 0)
		return r;
	struct pcpmap_mapping_info info = w.info;
	if (!w.found) {
		/* Not held: the daemon renews it with its nonce, which the gateway accepts only from its
		 * owner, and deletes it. */
		struct pm_dmap tmp;
		memset(&tmp, 0, sizeof(tmp));
		struct pmd_ipc_req *q = &tmp.req;
		q->kind = PCPMAP_KIND_MAP;
		q->ip_proto = req->ip_proto;
		q->internal_port = req->internal_port;
		q->family = w.family;
		q->lifetime = req->lifetime ? req->lifetime : UNMAP_LIFETIME;
		q->protocols = req->protocols
				   ? req->protocols
				   : (c->cfg.protocols != PCPMAP_PROTOS_ALL ? c->cfg.protocols : 0);
		if (copy_field(c, q->third_party, sizeof(q->third_party), req->third_party, "THIRD_PARTY") <
		    0)
			return -EINVAL;
		if (nonce)
			memcpy(tmp.info.nonce, nonce, sizeof(tmp.info.nonce));
		else
			c->env.rand.fill(c->env.rand.ctx, tmp.info.nonce, sizeof(tmp.info.nonce));
		build_create(&tmp, &m);
		uint64_t now = now_us(c);
		uint32_t left = end > now ? (uint32_t)((end - now) / 1000u) : 0;
		m.wait_ms = left ? left : 1;
		pmd_ipc_set(&m, PMD_A_WAIT_MS);
		struct sync_wait cw = { 0 };
		/* The daemon answers after WAIT_MS at the latest: wait a little longer than that. */
		r = transact(c, &m, &cw, (uint64_t)m.wait_ms * 1000u, (int)m.wait_ms + 1000);
		if (r < 0 || !cw.found) {
			if (ret_info && r != -ETIMEDOUT)
				*ret_info = cw.info;
			return r < 0 ? r : -EPROTO;
		}
		info = cw.info;
		w.id = cw.id;
		bool mapped = info.state == PCPMAP_STATE_MAPPED || info.state == PCPMAP_STATE_REFRESHING;
		if (!mapped) {
			/* Refused (another nonce: -EACCES) or no answer: drop the daemon's record, report why. */
			r = info.error ? info.error : -ETIMEDOUT;
			struct sync_wait dw = { 0 };
			pmd_ipc_init(&m, PMD_MSG_DELETE, 0);
			m.id = w.id;
			pmd_ipc_set(&m, PMD_A_ID);
			transact(c, &m, &dw, (uint64_t)PMD_IPC_DELETE_WAIT_MS * 1000u, 1000);
			if (ret_info)
				*ret_info = info;
			return r;
		}
	}
	struct sync_wait dw = { 0 };
	pmd_ipc_init(&m, PMD_MSG_DELETE, 0);
	m.id = w.id;
	pmd_ipc_set(&m, PMD_A_ID);
	uint64_t now = now_us(c);
	int left_ms = end > now ? (int)((end - now + 999) / 1000u) : 0;
	/* Answered once the gateway answered: the reply may come after the caller's budget, which is no sign of a
	 * stuck daemon. */
	r = transact(c, &m, &dw, (uint64_t)PMD_IPC_DELETE_WAIT_MS * 1000u, left_ms > 1000 ? left_ms : 1000);
	info.state = r == 0 ? PCPMAP_STATE_DELETED : info.state;
	info.error = r;
	if (r < 0 && dw.message[0])
		daemon_detail(info.detail, sizeof(info.detail), dw.message);
	if (ret_info)
		*ret_info = info;
	return r;
}

static int dmode_probe(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata)
{
	struct pm_dmode *dm = c->dmode;
	if (dm->probing)
		return -EBUSY;
	if (!connected(dm))
		return -ENOTCONN;
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_PROBE, 0);
	m.timeout_ms = (uint32_t)timeout_ms > PROBE_MAX_MS ? PROBE_MAX_MS : (uint32_t)timeout_ms;
	pmd_ipc_set(&m, PMD_A_TIMEOUT_MS);
	int r = send_request(c, &m, R_PROBE, (uint64_t)m.timeout_ms * 1000u, NULL);
	if (r < 0)
		return r;
	dm->probing = true;
	dm->probe_cb = cb;
	dm->probe_ud = userdata;
	return 0;
}

static int dmode_probe_sync(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret)
{
	struct pm_dmode *dm = c->dmode;
	if (!connected(dm))
		return -ENOTCONN;
	struct pcpmap_probe_result res;
	memset(&res, 0, sizeof(res));
	struct sync_wait w = { .probe = &res };
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_PROBE, 0);
	m.timeout_ms = (uint32_t)timeout_ms > PROBE_MAX_MS ? PROBE_MAX_MS : (uint32_t)timeout_ms;
	pmd_ipc_set(&m, PMD_A_TIMEOUT_MS);
	int r = transact(c, &m, &w, (uint64_t)m.timeout_ms * 1000u, -1);
	if (r < 0)
		return r;
	*ret = res;
	(void)dm;
	return 0;
}

/* The daemon watches the gateway's epoch itself. */
static int dmode_announce(pcpmap_client *c, int timeout_ms, pcpmap_server_fn cb, void *userdata)
{
	(void)c;
	(void)timeout_ms;
	(void)cb;
	(void)userdata;
	return -EOPNOTSUPP;
}

const struct pm_ops pm_dmode_ops = {
	.mapping_new = dmode_mapping_new,
	.mapping_free = dmode_mapping_free,
	.mapping_delete = dmode_mapping_delete,
	.mapping_abandon = dmode_mapping_abandon,
	.mapping_get_info = dmode_mapping_get_info,
	.mapping_set_callback = dmode_mapping_set_callback,
	.flush = dmode_flush,
	.unmap_sync = dmode_unmap_sync,
	.probe = dmode_probe,
	.probe_sync = dmode_probe_sync,
	.announce = dmode_announce,
	.stop = dmode_stop,
};
