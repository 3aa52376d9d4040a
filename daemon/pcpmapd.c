/* SPDX-License-Identifier: MIT */
/*
 * pcpmapd: the port-mapping daemon. One epoll loop over the control socket, its connections, a signalfd, a
 * timerfd armed from the engine's next deadline and the engine's own descriptor; nothing wakes it but
 * deadlines and events. Local clients ask over AF_UNIX SOCK_SEQPACKET (doc/IPC.md); SO_PEERCRED says who
 * they are. Uses the public pcpmap API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "daemon/config.h"
#include "ipc/ipc.h"
#include "daemon/policy.h"
#include "daemon/sockown.h"
#include "daemon/state.h"

#ifndef PCPMAPD_DEFAULT_CONFIG
#define PCPMAPD_DEFAULT_CONFIG "/etc/pcpmap/pcpmapd.conf"
#endif
#define DEFAULT_SOCKET_DIR   "/run/pcpmapd"
#define SOCKET_NAME          "pcpmapd.sock"
#define DEFAULT_STATE_DIR    "/var/lib/pcpmapd"
#define OUT_QUEUE_MAX_BYTES  (1u << 20) /* + a full LIST: a client that does not read is dropped beyond */
#define MSGS_PER_WAKEUP      64         /* fairness between connections */
#define PROBE_TIMEOUT_MS     3000
#define PROBE_TIMEOUT_MAX_MS 60000
#define WAIT_MAX_MS          600000
#define CLEANUP_LIFETIME     120   /* a leftover re-created for deletion asks for little */
#define CLEANUP_TIMEOUT_MS   60000 /* after this a leftover is given up (it expires on its own) */
#define SAVE_RETRY_US        30000000u
#define SHUTDOWN_FLUSH_MS    2000

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_CONFIG = 2,
};

enum src_type {
	SRC_LISTEN,
	SRC_SIGNAL,
	SRC_TIMER,
	SRC_ENGINE,
	SRC_CONN,
};

struct src {
	enum src_type type;
};

struct outmsg {
	struct outmsg *next;
	size_t len;
	uint8_t buf[];
};

struct conn {
	struct src src; /* first: epoll data points here */
	struct conn *prev, *next;
	uint32_t id;
	int fd;
	uid_t uid;
	pid_t pid;
	bool subscribed;
	bool dead;
	bool pollout;
	struct outmsg *out_head, *out_tail;
	size_t out_bytes;
};

struct dmap {
	struct dmap *prev, *next;
	struct pmd_state_rec rec;            /* what the state file keeps */
	bool cleanup;                        /* a leftover of an earlier run, being deleted */
	char own_addr[PMD_IPC_ADDR_MAX + 1]; /* internal address for one-owner-per-port; "" = this host */
	struct conn *conn;                   /* the connection whose life bounds it; NULL when detached */
	pcpmap_mapping *m;
	struct conn *waiter; /* CREATE with WAIT_MS: who waits for the first outcome */
	uint32_t wait_seq;
	uint64_t wait_deadline;
	uint64_t cleanup_deadline;
};

struct probe_waiter {
	struct probe_waiter *next;
	struct conn *conn;
	uint32_t seq;
	uint8_t type; /* PMD_MSG_PROBE or PMD_MSG_GET_EXTERNAL */
};

struct daemon {
	struct pmd_cfg cfg;
	const char *cfg_path;
	char socket_path[PMD_CFG_SOCKET_MAX + 1];
	char state_dir[PMD_CFG_PATH_MAX];
	pcpmap_client *client;
	int ep, lfd, sfd, tfd;
	struct src s_listen, s_signal, s_timer, s_engine;
	bool listen_paused;
	uint64_t armed;
	struct conn *conns;
	uint32_t n_conns;
	uint32_t next_conn_id;
	struct dmap *maps;
	struct pmd_state_rec
	    *parked; /* records not restored that could not be set aside: saved as they were */
	size_t n_parked;
	uint32_t next_id;
	bool dirty;
	uint64_t save_retry_at;
	bool probing;
	struct probe_waiter *probe_waiters;
	uint64_t refusal_logged;      /* when the last refused connection was logged */
	uint32_t refusals_suppressed; /* refusals not logged since */
	bool quit;
	bool capture;
	char captured[PMD_IPC_TEXT_MAX + 1];
	uint64_t started;
	uint64_t st_wakeups, st_timer, st_engine;
};

static struct daemon D;
static int log_level = 6;

/* ---- logging: stderr with journald level prefixes ---- */

static void logm(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logm(int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One record per line: a client's string never forges another record. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "<%d>%s\n", level, buf);
}

static void engine_log(void *ud, enum pcpmap_log_level level, const char *msg)
{
	struct daemon *d = ud;
	if (d->capture && level <= PCPMAP_LOG_WARNING && !d->captured[0])
		pmd_ipc_copy_str(d->captured, sizeof(d->captured), msg);
	logm((int)level, "engine: %s", msg);
}

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	size_t len = strlen(path);
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		logm(7, "sd_notify: %s", strerror(errno));
	close(fd);
}

/* ---- helpers ---- */

static const char *ipproto_str(uint8_t p)
{
	return p == IPPROTO_TCP    ? "tcp"
	       : p == IPPROTO_UDP  ? "udp"
	       : p == IPPROTO_SCTP ? "sctp"
	       : p == 0            ? "all"
				   : "?";
}

static uint32_t secs_until(uint64_t when, uint64_t now)
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

static uint32_t count_maps(struct daemon *d, bool by_uid, uid_t uid)
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

/* ---- connections: output ---- */

static void conn_kill(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	if (why)
		logm(6, "connection %u (uid %u, pid %d): closing: %s", c->id, (unsigned)c->uid, (int)c->pid,
		     why);
}

static void conn_set_pollout(struct daemon *d, struct conn *c, bool on)
{
	if (c->pollout == on)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.ptr = &c->src };
	if (epoll_ctl(d->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->pollout = on;
	else
		conn_kill(c, "epoll_ctl failed");
}

static void conn_send(struct daemon *d, struct conn *c, const uint8_t *buf, size_t len)
{
	if (c->dead)
		return;
	if (!c->out_head) {
		for (;;) {
			ssize_t n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n >= 0)
				return; /* SOCK_SEQPACKET: all or nothing */
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_kill(c, errno == EPIPE || errno == ECONNRESET ? NULL : "send failed");
			return;
		}
	}
	/* Room for a LIST of every mapping at the largest message size, and 1 MiB of events besides. */
	if (c->out_bytes + len > OUT_QUEUE_MAX_BYTES + (size_t)d->cfg.max_mappings * PMD_IPC_MAX_MSG) {
		conn_kill(c, "the client does not read its replies (output queue full)");
		return;
	}
	struct outmsg *o = malloc(sizeof(*o) + len);
	if (!o) {
		conn_kill(c, "out of memory");
		return;
	}
	o->next = NULL;
	o->len = len;
	memcpy(o->buf, buf, len);
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->out_bytes += len;
	conn_set_pollout(d, c, true);
}

static void conn_flush(struct daemon *d, struct conn *c)
{
	while (c->out_head && !c->dead) {
		struct outmsg *o = c->out_head;
		ssize_t n = send(c->fd, o->buf, o->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			conn_kill(c, NULL);
			return;
		}
		c->out_head = o->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->out_bytes -= o->len;
		free(o);
	}
	if (!c->dead)
		conn_set_pollout(d, c, false);
}

static void send_msg(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *m)
{
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	int r = pmd_ipc_encode(m, buf, sizeof(buf), &len);
	if (r < 0) {
		logm(3, "cannot encode a %s reply: %s", pmd_ipc_type_name(m->type), strerror(-r));
		return;
	}
	conn_send(d, c, buf, len);
}

static void reply_error(struct daemon *d, struct conn *c, uint32_t seq, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void reply_error(struct daemon *d, struct conn *c, uint32_t seq, int err, const char *fmt, ...)
{
	struct pmd_ipc_msg m;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pmd_ipc_init(&m, PMD_MSG_ERROR, seq);
	m.error = (uint32_t)(err < 0 ? -err : err);
	pmd_ipc_set(&m, PMD_A_ERRNO);
	pmd_ipc_copy_str(m.message, sizeof(m.message), text);
	pmd_ipc_set(&m, PMD_A_MESSAGE);
	const char *name = strerrorname_np((int)m.error);
	logm(7, "connection %u: error reply %s: %s", c->id, name ? name : "?", m.message);
	send_msg(d, c, &m);
}

static void reply_ok(struct daemon *d, struct conn *c, uint32_t seq)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_OK, seq);
	send_msg(d, c, &m);
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
	struct daemon *d = &D;
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

static void do_create(struct daemon *d, struct conn *c, struct pmd_ipc_msg *msg)
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

static void do_delete(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
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

static void do_list(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
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

static void do_probe(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
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

static void do_stats(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg)
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

static void handle_msg(struct daemon *d, struct conn *c, const uint8_t *buf, size_t len)
{
	static struct pmd_ipc_msg msg;
	uint8_t type = 0;
	uint32_t seq = 0;
	int r = pmd_ipc_peek(buf, len, &type, &seq);
	if (r == -EPROTONOSUPPORT) {
		reply_error(d, c, seq, r, "IPC version %u is not supported; this daemon speaks version %d",
			    buf[0], PMD_IPC_VERSION);
		return;
	}
	if (r < 0) {
		reply_error(d, c, len >= PMD_IPC_HDR_LEN ? seq : 0, -EBADMSG,
			    "malformed message (%zu bytes): a 12-byte header whose body length matches", len);
		return;
	}
	if (!pmd_ipc_type_known(type) || type >= 128) {
		reply_error(d, c, seq, -EOPNOTSUPP, "unknown request type %u", type);
		return;
	}
	r = pmd_ipc_decode(buf, len, &msg);
	if (r < 0) {
		reply_error(d, c, seq, -EBADMSG,
			    "malformed %s request: bad attribute length, repeat, string or reserved field",
			    pmd_ipc_type_name(type));
		return;
	}
	logm(7, "connection %u: %s seq %u", c->id, pmd_ipc_type_name(type), seq);
	switch (type) {
	case PMD_MSG_CREATE:
		do_create(d, c, &msg);
		break;
	case PMD_MSG_DELETE:
		do_delete(d, c, &msg);
		break;
	case PMD_MSG_LIST:
		do_list(d, c, &msg);
		break;
	case PMD_MSG_PROBE:
	case PMD_MSG_GET_EXTERNAL:
		do_probe(d, c, &msg);
		break;
	case PMD_MSG_SUBSCRIBE:
		c->subscribed = !msg.unsubscribe;
		reply_ok(d, c, seq);
		break;
	case PMD_MSG_STATS:
		do_stats(d, c, &msg);
		break;
	default:
		reply_error(d, c, seq, -EOPNOTSUPP, "unknown request type %u", type);
		break;
	}
}

/* ---- connections: life ---- */

static void conn_read(struct daemon *d, struct conn *c)
{
	static uint8_t buf[PMD_IPC_MAX_MSG + 1];
	for (int i = 0; i < MSGS_PER_WAKEUP && !c->dead; i++) {
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_kill(c, errno == ECONNRESET ? NULL : "receive failed");
			return;
		}
		if (n == 0) {
			conn_kill(c, NULL);
			return;
		}
		if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > PMD_IPC_MAX_MSG) {
			conn_kill(c, "framing error: a message longer than 4096 bytes");
			return;
		}
		handle_msg(d, c, buf, (size_t)n);
	}
}

static void conn_close(struct daemon *d, struct conn *c)
{
	epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
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
	while (c->out_head) {
		struct outmsg *o = c->out_head;
		c->out_head = o->next;
		free(o);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->n_conns--;
	logm(7, "connection %u closed", c->id);
	free(c);
	if (d->listen_paused) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &d->s_listen };
		if (epoll_ctl(d->ep, EPOLL_CTL_MOD, d->lfd, &ev) == 0)
			d->listen_paused = false;
	}
}

/* Logs a refused connection at most once a second, with the count of those left unlogged in between: a
 * client looping on connect must not flood the journal. */
static void log_refusal(struct daemon *d, const struct ucred *cred, const char *text)
{
	uint64_t now = pcpmap_now_usec();
	if (d->refusal_logged && now - d->refusal_logged < 1000000u) {
		d->refusals_suppressed++;
		return;
	}
	if (d->refusals_suppressed)
		logm(5, "uid %u (pid %d) refused: %s (%u more refusal%s not logged since the last one)",
		     (unsigned)cred->uid, (int)cred->pid, text, d->refusals_suppressed,
		     d->refusals_suppressed == 1 ? "" : "s");
	else
		logm(5, "uid %u (pid %d) refused: %s", (unsigned)cred->uid, (int)cred->pid, text);
	d->refusal_logged = now;
	d->refusals_suppressed = 0;
}

/* Refuses a connection over a limit with an error message, then closes it. */
static void refuse(int fd, int err, const char *text)
{
	struct pmd_ipc_msg m;
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	pmd_ipc_init(&m, PMD_MSG_ERROR, 0);
	m.error = (uint32_t)-err;
	pmd_ipc_set(&m, PMD_A_ERRNO);
	pmd_ipc_copy_str(m.message, sizeof(m.message), text);
	pmd_ipc_set(&m, PMD_A_MESSAGE);
	if (pmd_ipc_encode(&m, buf, sizeof(buf), &len) == 0 &&
	    send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		logm(7, "refusal not delivered: %s", strerror(errno));
	/* Read what the client already sent, so closing does not turn the refusal into a bare reset. */
	for (int i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

static void do_accept(struct daemon *d)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Stop listening until a connection closes, or the loop would spin. */
				logm(4, "accept: %s; pausing new connections", strerror(errno));
				struct epoll_event ev = { .events = 0, .data.ptr = &d->s_listen };
				if (epoll_ctl(d->ep, EPOLL_CTL_MOD, d->lfd, &ev) == 0)
					d->listen_paused = true;
			}
			return;
		}
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			logm(4, "SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		char text[128];
		if (d->n_conns >= d->cfg.max_connections) {
			snprintf(text, sizeof(text), "too many connections (max_connections = %u)",
				 d->cfg.max_connections);
			log_refusal(d, &cred, text);
			refuse(fd, -EUSERS, text);
			continue;
		}
		if (cred.uid != 0) {
			uint32_t n = 0;
			for (struct conn *c = d->conns; c; c = c->next)
				n += c->uid == cred.uid;
			if (n >= d->cfg.max_connections_per_uid) {
				snprintf(
				    text, sizeof(text),
				    "uid %u has %u connections, the per-uid limit (max_connections_per_uid)",
				    (unsigned)cred.uid, n);
				log_refusal(d, &cred, text);
				refuse(fd, -EUSERS, text);
				continue;
			}
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->src.type = SRC_CONN;
		c->fd = fd;
		c->uid = cred.uid;
		c->pid = cred.pid;
		c->id = ++d->next_conn_id;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &c->src };
		if (epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = d->conns;
		if (d->conns)
			d->conns->prev = c;
		d->conns = c;
		d->n_conns++;
		logm(7, "connection %u from uid %u pid %d", c->id, (unsigned)c->uid, (int)c->pid);
	}
}

/* ---- state ---- */

/* Room in the engine for the daemon's limit, leftovers being deleted, pair companions and probes. */
static uint32_t engine_slots(const struct pmd_cfg *cfg)
{
	return 2 * cfg->max_mappings + 64;
}

static void save_state(struct daemon *d, bool persistent_only)
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
static void restore_state(struct daemon *d)
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

/* ---- configuration ---- */

static int first_dir(const char *env, char *out, size_t cap)
{
	const char *v = getenv(env);
	if (!v || v[0] != '/')
		return -ENOENT;
	size_t len = strcspn(v, ":");
	if (len >= cap)
		return -ENAMETOOLONG;
	memcpy(out, v, len);
	out[len] = '\0';
	return 0;
}

static int resolve_paths(struct daemon *d, const char *opt_socket, const char *opt_state)
{
	char dir[PMD_CFG_PATH_MAX];
	if (opt_socket) {
		if (strlen(opt_socket) > PMD_CFG_SOCKET_MAX)
			return -ENAMETOOLONG;
		strcpy(d->socket_path, opt_socket);
	} else if (d->cfg.socket_path[0]) {
		strcpy(d->socket_path, d->cfg.socket_path);
	} else {
		if (first_dir("RUNTIME_DIRECTORY", dir, sizeof(dir)) < 0)
			strcpy(dir, DEFAULT_SOCKET_DIR);
		if ((size_t)snprintf(d->socket_path, sizeof(d->socket_path), "%s/%s", dir, SOCKET_NAME) >=
		    sizeof(d->socket_path))
			return -ENAMETOOLONG;
	}
	if (opt_state) {
		if (strlen(opt_state) >= sizeof(d->state_dir))
			return -ENAMETOOLONG;
		strcpy(d->state_dir, opt_state);
	} else if (d->cfg.state_dir[0]) {
		strcpy(d->state_dir, d->cfg.state_dir);
	} else if (first_dir("STATE_DIRECTORY", d->state_dir, sizeof(d->state_dir)) < 0) {
		strcpy(d->state_dir, DEFAULT_STATE_DIR);
	}
	return 0;
}

static void client_config(const struct pmd_cfg *cfg, struct daemon *d, struct pcpmap_client_config *cc)
{
	pcpmap_client_config_init(cc);
	cc->server = cfg->server[0] ? cfg->server : NULL;
	cc->transport_family = cfg->transport_family;
	cc->protocols = cfg->protocols;
	for (size_t i = 0; i < cfg->n_protocol_order && i < 3; i++)
		cc->protocol_order[i] = cfg->protocol_order[i];
	cc->max_mappings = engine_slots(cfg);
	cc->port_reservation_code = cfg->port_reservation_code;
	cc->remap_interval_ms = cfg->remap_interval_ms;
	cc->no_announce_listener = !cfg->announce_listener;
	cc->no_netlink_monitor = !cfg->netlink_monitor;
	cc->log = engine_log;
	cc->log_userdata = d;
	/* Warnings always reach us, to explain refusals; logm() filters what is printed. */
	cc->log_level =
	    cfg->log_level > PCPMAP_LOG_WARNING ? (enum pcpmap_log_level)cfg->log_level : PCPMAP_LOG_WARNING;
}

static void reload(struct daemon *d)
{
	char err[600];
	struct pmd_cfg n;
	if (!d->cfg_path) {
		logm(5, "SIGHUP: no configuration file to reload");
		return;
	}
	pmd_cfg_defaults(&n);
	if (pmd_cfg_load(d->cfg_path, &n, err, sizeof(err)) < 0) {
		logm(3, "SIGHUP: %s; keeping the running configuration", err);
		return;
	}
	const struct pmd_cfg *o = &d->cfg;
	if (strcmp(n.server, o->server) || n.transport_family != o->transport_family ||
	    n.protocols != o->protocols || n.remap_interval_ms != o->remap_interval_ms ||
	    n.port_reservation_code != o->port_reservation_code || strcmp(n.socket_path, o->socket_path) ||
	    strcmp(n.state_dir, o->state_dir) || n.announce_listener != o->announce_listener ||
	    n.netlink_monitor != o->netlink_monitor)
		logm(4,
		     "SIGHUP: server, transport_family, protocols, remap_interval_ms, "
		     "port_reservation_code, socket, state_dir, announce_listener and netlink_monitor take "
		     "effect at the next start");
	d->cfg.max_mappings = n.max_mappings;
	d->cfg.max_mappings_per_uid = n.max_mappings_per_uid;
	d->cfg.max_connections = n.max_connections;
	d->cfg.max_connections_per_uid = n.max_connections_per_uid;
	d->cfg.default_lifetime = n.default_lifetime;
	d->cfg.max_lifetime = n.max_lifetime;
	d->cfg.log_level = n.log_level;
	d->cfg.user_min_port = n.user_min_port;
	d->cfg.user_persistent = n.user_persistent;
	d->cfg.user_third_party = n.user_third_party;
	d->cfg.user_sctp = n.user_sctp;
	memcpy(d->cfg.port_grants, n.port_grants, sizeof(n.port_grants));
	d->cfg.n_port_grants = n.n_port_grants;
	log_level = n.log_level;
	if (d->client)
		pcpmap_client_set_log_level(d->client, n.log_level > PCPMAP_LOG_WARNING
							   ? (enum pcpmap_log_level)n.log_level
							   : PCPMAP_LOG_WARNING);
	logm(5, "SIGHUP: configuration reloaded from %s", d->cfg_path);
}

/* ---- loop ---- */

static uint64_t own_deadline(const struct daemon *d)
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

static void run_own_deadlines(struct daemon *d, uint64_t now)
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

static void arm_timer(struct daemon *d)
{
	uint64_t dl = pcpmap_client_next_deadline(d->client);
	uint64_t own = own_deadline(d);
	if (own < dl)
		dl = own;
	if (dl == d->armed)
		return;
	struct itimerspec its = { 0 };
	if (dl != UINT64_MAX) {
		its.it_value.tv_sec = (time_t)(dl / 1000000u);
		its.it_value.tv_nsec = (long)(dl % 1000000u) * 1000;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1; /* zero would disarm */
	}
	if (timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		logm(3, "timerfd_settime: %s", strerror(errno));
		return;
	}
	d->armed = dl;
}

static void handle_signal(struct daemon *d)
{
	struct signalfd_siginfo si;
	while (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			reload(d);
		} else {
			logm(5, "signal %s: stopping", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
			d->quit = true;
		}
	}
}

static bool any_dead(const struct daemon *d)
{
	for (const struct conn *c = d->conns; c; c = c->next)
		if (c->dead)
			return true;
	return false;
}

static void settle(struct daemon *d)
{
	/* Closing a connection frees mappings (sends deletes), and callbacks can doom connections: repeat
	 * until quiet, then run what is due. */
	for (int round = 0; round < 16; round++) {
		for (struct conn *c = d->conns, *next; c; c = next) {
			next = c->next;
			if (c->dead)
				conn_close(d, c);
		}
		uint64_t now = pcpmap_now_usec();
		if (pcpmap_client_next_deadline(d->client) <= now) {
			int r = pcpmap_client_process(d->client);
			if (r < 0)
				logm(3, "engine: %s", pcpmap_strerror(r));
		}
		run_own_deadlines(d, pcpmap_now_usec());
		if (!any_dead(d) && pcpmap_client_next_deadline(d->client) > pcpmap_now_usec())
			break;
	}
	if (d->dirty)
		save_state(d, false);
}

static int run(struct daemon *d)
{
	struct epoll_event evs[32];
	while (!d->quit) {
		settle(d);
		arm_timer(d);
		int n = epoll_wait(d->ep, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			logm(3, "epoll_wait: %s", strerror(errno));
			return -errno;
		}
		d->st_wakeups++;
		bool engine = false;
		for (int i = 0; i < n; i++) {
			struct src *s = evs[i].data.ptr;
			switch (s->type) {
			case SRC_LISTEN:
				do_accept(d);
				break;
			case SRC_SIGNAL:
				handle_signal(d);
				break;
			case SRC_TIMER: {
				uint64_t x;
				if (read(d->tfd, &x, sizeof(x)) == (ssize_t)sizeof(x))
					d->st_timer++;
				d->armed = UINT64_MAX - 1; /* expired: the next arm must reprogram */
				engine = true;
				break;
			}
			case SRC_ENGINE:
				d->st_engine++;
				engine = true;
				break;
			case SRC_CONN: {
				struct conn *c = (struct conn *)(void *)s;
				if (evs[i].events & EPOLLOUT)
					conn_flush(d, c);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					conn_read(d, c);
				break;
			}
			}
		}
		if (engine) {
			int r = pcpmap_client_process(d->client);
			if (r < 0)
				logm(3, "engine: %s", pcpmap_strerror(r));
		}
	}
	return 0;
}

/* Whether only root could have made the symbolic link path: the link and the directory holding it are
 * root's, and that directory is not writable by group or others. systemd's DynamicUser= makes
 * /var/lib/NAME such a link to /var/lib/private/NAME. */
static bool root_made_link(const char *path, const struct stat *lst)
{
	char parent[PMD_CFG_PATH_MAX];
	struct stat st;
	if (lst->st_uid != 0 || strlen(path) >= sizeof(parent))
		return false;
	strcpy(parent, path);
	char *slash = strrchr(parent, '/');
	if (!slash)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	return lstat(parent, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
	       !(st.st_mode & (S_IWGRP | S_IWOTH));
}

/*
 * Creates the daemon's directory when missing, then refuses one that others could tamper with: a symbolic
 * link that someone other than root could have made (it can point the socket or the state anywhere), a
 * directory owned by a uid other than ours or root, or one writable by group or others (they could swap the
 * files in it). Logs why.
 * @return 0; -ELOOP, -ENOTDIR, -EPERM for an unsafe directory; -errno.
 */
static int safe_dir(const char *what, const char *path, mode_t mode)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT) {
			int e = errno;
			logm(3, "%s %s: %s", what, path, strerror(e));
			return -e;
		}
		mode_t old = umask(0);
		int r = mkdir(path, mode);
		int e = errno;
		umask(old);
		if ((r < 0 && e != EEXIST) || lstat(path, &st) < 0) {
			e = r < 0 && e != EEXIST ? e : errno;
			logm(3, "%s %s: cannot create it: %s", what, path, strerror(e));
			return -e;
		}
	}
	if (S_ISLNK(st.st_mode)) {
		if (!root_made_link(path, &st)) {
			logm(3,
			     "%s %s is a symbolic link that a uid other than root could have made: refusing "
			     "it "
			     "(give the real directory)",
			     what, path);
			return -ELOOP;
		}
		if (stat(path, &st) < 0) {
			int e = errno;
			logm(3, "%s %s: %s", what, path, strerror(e));
			return -e;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		logm(3, "%s %s is not a directory", what, path);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		logm(3, "%s %s is owned by uid %u, not by the daemon's uid %u or root: refusing it", what,
		     path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		logm(3,
		     "%s %s is writable by %s (mode %04o): refusing it (chmod go-w, or use a private "
		     "directory)",
		     what, path, st.st_mode & S_IWOTH ? "everyone" : "its group",
		     (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* bind() with the umask that gives the socket file mode 0666 at creation: no chmod by path afterwards. */
static int bind_socket(int fd, const struct sockaddr_un *sa)
{
	mode_t old = umask(0111);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	umask(old);
	return r < 0 ? -e : 0;
}

static int open_listener(struct daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	strcpy(sa.sun_path, d->socket_path);
	strcpy(dir, d->socket_path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int r = safe_dir("socket directory", dir, 0755);
		if (r < 0)
			return r;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e = 0;
	if (fd < 0)
		return -errno;
	if ((e = -bind_socket(fd, &sa)) != 0) {
		if (e == EADDRINUSE) {
			/* A live daemon answers a connect; a stale socket file does not. */
			int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
			bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
			if (probe >= 0)
				close(probe);
			if (live) {
				logm(3, "another pcpmapd listens on %s", d->socket_path);
				close(fd);
				return -EADDRINUSE;
			}
			unlink(d->socket_path);
			e = -bind_socket(fd, &sa);
		}
	}
	/* Anyone may connect; SO_PEERCRED decides what each may do. */
	if (!e && listen(fd, 64) < 0)
		e = errno;
	if (e) {
		logm(3, "control socket %s: %s", d->socket_path, strerror(e));
		close(fd);
		return -e;
	}
	d->lfd = fd;
	return 0;
}

static int setup_loop(struct daemon *d)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	d->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if (d->sfd < 0 || d->tfd < 0 || d->ep < 0)
		return -errno;
	d->s_listen.type = SRC_LISTEN;
	d->s_signal.type = SRC_SIGNAL;
	d->s_timer.type = SRC_TIMER;
	d->s_engine.type = SRC_ENGINE;
	struct {
		int fd;
		struct src *s;
	} add[] = {
		{ d->lfd, &d->s_listen },
		{ d->sfd, &d->s_signal },
		{ d->tfd, &d->s_timer },
		{ pcpmap_client_get_fd(d->client), &d->s_engine },
	};
	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = add[i].s };
		if (epoll_ctl(d->ep, EPOLL_CTL_ADD, add[i].fd, &ev) < 0)
			return -errno;
	}
	d->armed = UINT64_MAX;
	return 0;
}

/* Non-persistent mappings are deleted, persistent ones left on the gateway for the next start. */
static void shutdown_daemon(struct daemon *d)
{
	for (struct conn *c = d->conns, *next; c; c = next) {
		next = c->next;
		epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		while (c->out_head) {
			struct outmsg *o = c->out_head;
			c->out_head = o->next;
			free(o);
		}
		free(c);
	}
	d->conns = NULL;
	d->n_conns = 0;
	for (struct probe_waiter *w = d->probe_waiters, *next; w; w = next) {
		next = w->next;
		free(w);
	}
	d->probe_waiters = NULL;
	unsigned deleted = 0, kept = 0;
	for (struct dmap *m = d->maps; m; m = m->next) {
		if (m->rec.persistent && !m->cleanup) {
			pcpmap_mapping_abandon(m->m);
			kept++;
		} else {
			pcpmap_mapping_free(m->m);
			deleted++;
		}
		m->m = NULL;
	}
	int r = deleted ? pcpmap_client_flush(d->client, SHUTDOWN_FLUSH_MS) : 0;
	/* Unconfirmed deletions stay in the state file: the next start deletes them again. */
	save_state(d, r == 0);
	if (r < 0)
		logm(4, "not every deletion was confirmed (%s); the next start retries them",
		     pcpmap_strerror(r));
	logm(5, "stopped: %u mapping%s deleted, %u persistent kept", deleted, deleted == 1 ? "" : "s", kept);
	while (d->maps) {
		struct dmap *m = d->maps;
		d->maps = m->next;
		free(m);
	}
	free(d->parked);
	d->client = pcpmap_client_free(d->client);
	close(d->lfd);
	unlink(d->socket_path);
	close(d->ep);
	close(d->sfd);
	close(d->tfd);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pcpmapd [options]\n"
		"The pcpmap port-mapping daemon: keeps PCP/NAT-PMP/UPnP mappings for local clients.\n\n"
		"  -c, --config FILE     configuration file (default %s, if present)\n"
		"      --check-config    validate the configuration and exit (0 valid, 2 invalid)\n"
		"  -s, --socket PATH     control socket (default $RUNTIME_DIRECTORY/%s or %s/%s)\n"
		"  -S, --state-dir DIR   state directory (default $STATE_DIRECTORY or %s)\n"
		"  -l, --log-level LVL   err, warning, notice, info or debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         version\n",
		PCPMAPD_DEFAULT_CONFIG, SOCKET_NAME, DEFAULT_SOCKET_DIR, SOCKET_NAME, DEFAULT_STATE_DIR);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },    { "check-config", no_argument, NULL, 'C' },
		{ "socket", required_argument, NULL, 's' },    { "state-dir", required_argument, NULL, 'S' },
		{ "log-level", required_argument, NULL, 'l' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },         { NULL, 0, NULL, 0 },
	};
	struct daemon *d = &D;
	const char *opt_socket = NULL, *opt_state = NULL, *opt_level = NULL;
	bool check = false;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:s:S:l:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d->cfg_path = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 's':
			opt_socket = optarg;
			break;
		case 'S':
			opt_state = optarg;
			break;
		case 'l':
			opt_level = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("pcpmapd %s (IPC version %d)\n", pcpmap_version(), PMD_IPC_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_CONFIG;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pcpmapd: unexpected argument '%s'\n", argv[optind]);
		return EXIT_CONFIG;
	}
	char err[700];
	pmd_cfg_defaults(&d->cfg);
	if (!d->cfg_path && access(PCPMAPD_DEFAULT_CONFIG, F_OK) == 0)
		d->cfg_path = PCPMAPD_DEFAULT_CONFIG;
	if (d->cfg_path && pmd_cfg_load(d->cfg_path, &d->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "<3>pcpmapd: configuration error: %s\n", err);
		return EXIT_CONFIG;
	}
	if (opt_level && pmd_cfg_parse_log_level(opt_level, &d->cfg.log_level) < 0) {
		fprintf(stderr,
			"<3>pcpmapd: --log-level wants err, warning, notice, info or debug, not '%s'\n",
			opt_level);
		return EXIT_CONFIG;
	}
	log_level = d->cfg.log_level;
	if (resolve_paths(d, opt_socket, opt_state) < 0) {
		fprintf(stderr, "<3>pcpmapd: socket path or state directory too long\n");
		return EXIT_CONFIG;
	}
	struct pcpmap_client_config cc;
	client_config(&d->cfg, d, &cc);
	if (check) {
		pcpmap_client *probe;
		int r = pcpmap_client_new(&probe, &cc);
		if (r < 0) {
			fprintf(stderr,
				"<3>pcpmapd: configuration error: %s%s%u: the engine refuses it: %s\n",
				d->cfg_path ? d->cfg_path : "", d->cfg_path ? ": line " : "line ",
				d->cfg.server_line, pcpmap_strerror(r));
			return EXIT_CONFIG;
		}
		pcpmap_client_free(probe);
		printf("pcpmapd: configuration %s is valid (socket %s, state directory %s)\n",
		       d->cfg_path ? d->cfg_path : "(defaults)", d->socket_path, d->state_dir);
		return EXIT_OK;
	}
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	d->started = pcpmap_now_usec();
	d->next_id = 1;
	d->lfd = d->sfd = d->tfd = d->ep = -1;
	int r = pcpmap_client_new(&d->client, &cc);
	if (r < 0) {
		logm(3, "cannot start the engine: %s", pcpmap_strerror(r));
		return r == -EINVAL ? EXIT_CONFIG : EXIT_FAIL;
	}
	r = safe_dir("state directory", d->state_dir, 0700);
	if (r == -ELOOP || r == -ENOTDIR || r == -EPERM) {
		/* Writing the state through someone else's link or directory is worse than not starting. */
		logm(3, "cannot start: unsafe state directory %s", d->state_dir);
		d->client = pcpmap_client_free(d->client);
		return EXIT_FAIL;
	}
	if (r < 0)
		logm(3, "state directory %s: %s; mappings will not survive a restart", d->state_dir,
		     strerror(-r));
	/* The socket first: a second daemon on the same socket must not touch the first one's mappings. */
	int lr = open_listener(d);
	if (lr == 0 && r == 0)
		restore_state(d);
	if ((r = lr) < 0 || (r = setup_loop(d)) < 0) {
		logm(3, "cannot start: %s", strerror(-r));
		d->client = pcpmap_client_free(d->client);
		return EXIT_FAIL;
	}
	logm(5, "pcpmapd %s listening on %s, state in %s, %u mapping%s restored", pcpmap_version(),
	     d->socket_path, d->state_dir, count_maps(d, false, 0), count_maps(d, false, 0) == 1 ? "" : "s");
	notify("READY=1");
	r = run(d);
	notify("STOPPING=1");
	shutdown_daemon(d);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
