/* The NAT-PMP backend (RFC 6886) on Debian's libnatpmp 20150609: IPv4 TCP/UDP mappings, the public address
 * learnt with its own request, answers checked here because the library matches nothing (doc/PROTOCOLS.md 2.2).
 *
 * Retransmission is ours, not libnatpmp's. The engine runs one scheduler and one state machine for every
 * protocol: it arms retransmissions with irt_us/mrt_us below and calls send() for each (re)transmission,
 * and send() transmits at once with sendnewportmappingrequest(). libnatpmp has a timer of its own that
 * resends from inside readnatpmpresponseorretry() when that finds nothing to read; the two would fight
 * (double sends, a second schedule, the library giving up after 9 tries while the engine goes on). So the
 * library is only asked to read when a datagram is known to be queued (MSG_PEEK says so), which means it
 * reads first and never reaches its resend path, and its retry time is pushed out of reach as well.
 *
 * libnatpmp holds one pending request per natpmp_t, so every mapping in flight gets its own natpmp_t (its
 * own socket), created on its first send and closed once the mapping is deleted, failed or gone; the
 * server keeps one more for public-address requests. Sockets are bounded by the client's max_mappings. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ENABLE_STRNATPMPERR
#include <natpmp.h>

#include "dl/dl.h"
#include "backend.h"
#include "plugins.h"
#include "text/text.h"

/* libnatpmp, loaded privately (core/dl/dl.h): every function of it that pcpmap calls. */
#define NP_SYMS(X)                   \
	X(initnatpmp)                \
	X(closenatpmp)               \
	X(sendpublicaddressrequest)  \
	X(sendnewportmappingrequest) \
	X(readnatpmpresponseorretry) \
	X(strnatpmperr)
#define NP_FIELD(n) __typeof__(n) *n;
static struct {
	NP_SYMS(NP_FIELD)
} np_lib;
#undef NP_FIELD
static pthread_once_t np_lib_once = PTHREAD_ONCE_INIT;
static int np_lib_err;
static char np_lib_why[256];

static void np_lib_load(void)
{
	void *h;
	np_lib_err = pm_dl_open(PCPMAP_NATPMP_PATH, &h, np_lib_why, sizeof(np_lib_why));
#define NP_SYM(n)            \
	if (np_lib_err == 0) \
		np_lib_err = pm_dl_sym(h, #n, &np_lib.n, sizeof(np_lib.n), np_lib_why, sizeof(np_lib_why));
	NP_SYMS(NP_SYM)
#undef NP_SYM
}

#define NP_OP_ADDR          0                 /* public address request (RFC 6886 3.2) */
#define NP_MRT_US           64000000ULL       /* RFC 6886 3.1: the 9th wait is 64 s; later ones stay there */
#define NP_ERROR_HOLD_S     30                /* transient refusals (results 3 and 4) wait this long */
#define NP_ADDR_ANSWER_LEN  12                /* RFC 6886 3.2 */
#define NP_MAP_ANSWER_LEN   16                /* RFC 6886 3.3 */
#define NP_SHORT_ANSWER_LEN 8                 /* version, opcode, result, SSSoE: every answer has these */
#define NP_PEEK_MAX         64                /* larger datagrams are traced truncated */
#define NP_READ_BUDGET      16                /* datagrams per socket per readable call */
#define NP_REAP_EVERY_US    30000000ULL       /* orphaned sockets are looked for this often */
#define NP_NO_LIBRARY_RETRY ((time_t)1 << 62) /* a retry time libnatpmp never reaches */

/* One natpmp_t: one request in flight. */
struct np_req {
	struct pm_list link;
	uint64_t mapping_id; /* 0 for the public-address socket and for delete-all */
	natpmp_t p;
	bool open;
	bool dead;       /* closed by the reaper, outside the event loop's batch */
	bool refuse;     /* refused here: -EOPNOTSUPP is delivered from a timer, never from inside send */
	bool delete_all; /* pm_natpmp_delete_all() */
	/* What was sent, to match answers: libnatpmp checks neither type nor port. */
	bool pending;
	uint8_t op;
	uint16_t internal_port;
	uint32_t lifetime;
	/* A grant waiting for the public address: map answers carry none (RFC 6886 3.3). */
	bool parked;
	struct pm_reply parked_reply;
};

struct natpmp_priv {
	struct np_req addr; /* public-address requests; never in reqs */
	struct pm_list reqs;
	size_t n_open; /* sockets held by reqs */
	bool have_ext;
	struct in_addr ext;
	/* Public-address ladder: RFC 6886 3.1's schedule (pm_natpmp_retx_deadline) on the engine's scheduler. */
	bool fetching;
	uint64_t fetch_first;
	unsigned fetch_tries;
	uint64_t addr_sent_at;
	struct sched_timer t_fetch;
	struct sched_timer t_reap;
	uint64_t last_reap;
	struct sched_timer t_refuse;
	/* Every socket of a stopped server draws its own ICMP error: one report per instant. */
	bool unreach_seen;
	uint64_t unreach_at;
};

/* Exported for the CLI and daemon; the prototype belongs in core/internal.h. */
int pm_natpmp_delete_all(struct pm_server *s, uint8_t ip_proto);

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *op_name(uint8_t op)
{
	return op == NATPMP_PROTOCOL_TCP ? "tcp" : op == NATPMP_PROTOCOL_UDP ? "udp" : "address";
}

static bool is_unreachable(int err)
{
	return err == -ECONNREFUSED || err == -EHOSTUNREACH || err == -ENETUNREACH;
}

/* libnatpmp's return codes as -errno: socket failures keep the errno the library left behind. */
static int lib_error(int rc, int saved_errno)
{
	switch (rc) {
	case NATPMP_ERR_INVALIDARGS:
		return -EINVAL;
	case NATPMP_ERR_SOCKETERROR:
	case NATPMP_ERR_CONNECTERR:
	case NATPMP_ERR_SENDERR:
	case NATPMP_ERR_FCNTLERROR:
	case NATPMP_ERR_RECVFROM:
		return saved_errno ? -saved_errno : -EIO;
	case NATPMP_ERR_NOGATEWAYSUPPORT:
		return -ECONNREFUSED;
	}
	return -EIO;
}

/* The library resends from readnatpmpresponseorretry() once its retry time passes; ours is the only
 * schedule, so that time is moved out of reach after every send. */
static void no_library_retry(natpmp_t *p)
{
	p->retry_time.tv_sec = NP_NO_LIBRARY_RETRY;
	p->retry_time.tv_usec = 0;
}

static int req_open(struct pm_server *s, struct np_req *q)
{
	pcpmap_client *c = pm_server_client(s);
	/* forcegw: the server the core chose; libnatpmp never scans for a gateway itself. */
	errno = 0;
	int rc = np_lib.initnatpmp(&q->p, 1, pm_server_addr(s)->u.in.sin_addr.s_addr);
	if (rc < 0) {
		int r = lib_error(rc, errno);
		/* initnatpmp leaves its socket open when a later step fails. */
		if (rc != NATPMP_ERR_SOCKETERROR && q->p.s >= 0)
			close(q->p.s);
		pm_log(c, PCPMAP_LOG_WARNING, "server %s: NAT-PMP socket: %s (%s)", pm_server_name(s),
		       np_lib.strnatpmperr(rc), pcpmap_strerror(r));
		return r;
	}
	int fl = fcntl(q->p.s, F_GETFD);
	if (fl >= 0)
		fcntl(q->p.s, F_SETFD, fl | FD_CLOEXEC);
	int r = pm_server_watch_fd(s, q->p.s);
	if (r < 0) {
		np_lib.closenatpmp(&q->p);
		return r;
	}
	q->open = true;
	return 0;
}

static void req_close(struct pm_server *s, struct np_req *q)
{
	if (!q->open)
		return;
	pm_server_unwatch_fd(s, q->p.s);
	np_lib.closenatpmp(&q->p);
	q->open = false;
	q->pending = false;
}

/* Sockets close from a timer only: closing one inside readable() could free a watch that the event loop
 * still holds in its current epoll batch. */
static void mark_dead(struct pm_server *s, struct np_req *q)
{
	struct natpmp_priv *np = pm_server_priv(s);
	q->dead = true;
	q->parked = false;
	q->pending = false;
	sched_arm(pm_client_sched(pm_server_client(s)), &np->t_reap, pm_client_now(pm_server_client(s)));
}

static struct np_req *req_find(struct natpmp_priv *np, uint64_t id)
{
	for (struct pm_list *l = np->reqs.next; l != &np->reqs; l = l->next) {
		struct np_req *q = pm_container_of(l, struct np_req, link);
		if (!q->dead && !q->delete_all && q->mapping_id == id)
			return q;
	}
	return NULL;
}

static struct np_req *req_by_fd(struct natpmp_priv *np, int fd)
{
	if (np->addr.open && np->addr.p.s == fd)
		return &np->addr;
	for (struct pm_list *l = np->reqs.next; l != &np->reqs; l = l->next) {
		struct np_req *q = pm_container_of(l, struct np_req, link);
		if (q->open && q->p.s == fd)
			return q;
	}
	return NULL;
}

static int req_new(struct pm_server *s, uint64_t id, bool with_socket, struct np_req **ret)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	if (with_socket && np->n_open >= pm_client_max_mappings(c)) {
		/* Some may belong to mappings that are gone: reap, and let the retransmission try again. */
		sched_arm(pm_client_sched(c), &np->t_reap, pm_client_now(c));
		pm_log(c, PCPMAP_LOG_WARNING, "server %s: %zu NAT-PMP sockets open, no more",
		       pm_server_name(s), np->n_open);
		return -ENOSPC;
	}
	struct np_req *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->mapping_id = id;
	if (with_socket) {
		int r = req_open(s, q);
		if (r < 0) {
			free(q);
			return r;
		}
		np->n_open++;
	}
	pm_list_add_tail(&np->reqs, &q->link);
	/* More sockets than mappings: some mapping went away without a word to the backend. */
	if (np->n_open > pm_client_n_mappings(c))
		sched_arm(pm_client_sched(c), &np->t_reap, pm_client_now(c));
	*ret = q;
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Closes the sockets of mappings that were deleted, failed or destroyed. The engine does not tell backends
 * when it frees a mapping, so live ids are looked up: sorted once, O((n + m) log m). */
static void reap_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	struct pm_server *s = arg;
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	(void)t;
	np->last_reap = now;
	size_t n = 0, n_all = pm_client_n_mappings(c);
	uint64_t *ids = n_all ? malloc(n_all * sizeof(*ids)) : NULL;
	bool know_live = ids || !n_all;
	if (ids)
		n = pm_server_live_ids(s, ids, n_all);
	if (ids)
		qsort(ids, n, sizeof(*ids), cmp_id);
	for (struct pm_list *l = np->reqs.next; l != &np->reqs;) {
		struct np_req *q = pm_container_of(l, struct np_req, link);
		l = l->next;
		if (!q->dead && !q->delete_all && know_live &&
		    (!ids || !bsearch(&q->mapping_id, ids, n, sizeof(*ids), cmp_id)))
			q->dead = true;
		if (!q->dead)
			continue;
		pm_list_del(&q->link);
		if (q->open) {
			req_close(s, q);
			np->n_open--;
		}
		free(q);
	}
	free(ids);
}

static void trace_sent(struct pm_server *s, const struct np_req *q, const char *decoded)
{
	pm_trace(pm_server_client(s), true, PCPMAP_PROTO_NATPMP, pm_server_name(s), q->p.pending_request,
		 (size_t)q->p.pending_request_len, decoded);
}

static int map_transmit(struct pm_server *s, struct np_req *q, uint8_t op, uint16_t internal,
			uint16_t suggest, uint32_t lifetime, const char *note)
{
	pcpmap_client *c = pm_server_client(s);
	errno = 0;
	int rc = np_lib.sendnewportmappingrequest(&q->p, op, internal, suggest, lifetime);
	int saved = errno;
	no_library_retry(&q->p);
	q->pending = true;
	q->op = op;
	q->internal_port = internal;
	q->lifetime = lifetime;
	pm_client_count(c, PM_STAT_SENT);
	if (pm_client_tracing(c)) {
		char d[160];
		snprintf(d, sizeof(d), "NAT-PMP map %s request internal=%u suggest=%u lifetime=%u%s",
			 op_name(op), internal, suggest, lifetime, note);
		trace_sent(s, q, d);
	}
	return rc < 0 ? lib_error(rc, saved) : 0;
}

static int addr_transmit(struct pm_server *s)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	errno = 0;
	int rc = np_lib.sendpublicaddressrequest(&np->addr.p);
	int saved = errno;
	no_library_retry(&np->addr.p);
	np->addr.pending = true;
	np->addr.op = NP_OP_ADDR;
	np->addr_sent_at = pm_client_now(c);
	pm_client_count(c, PM_STAT_SENT);
	if (pm_client_tracing(c))
		trace_sent(s, &np->addr, "NAT-PMP public address request");
	return rc < 0 ? lib_error(rc, saved) : 0;
}

static void fetch_stop(struct natpmp_priv *np, pcpmap_client *c)
{
	np->fetching = false;
	sched_cancel(pm_client_sched(c), &np->t_fetch);
}

static void fetch_send(struct pm_server *s)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	int r = addr_transmit(s);
	np->fetch_tries++;
	if (is_unreachable(r)) {
		/* Reported from the next timer run, like the engine's own send errors. */
		fetch_stop(np, c);
		pm_server_defer_error(s, r);
		return;
	}
	sched_arm(pm_client_sched(c), &np->t_fetch,
		  pm_natpmp_retx_deadline(np->fetch_first, np->fetch_tries));
}

/* Starts learning the public address unless a request for it is already on its ladder. */
static void fetch_start(struct pm_server *s)
{
	struct natpmp_priv *np = pm_server_priv(s);
	if (np->fetching)
		return;
	np->fetching = true;
	np->fetch_first = pm_client_now(pm_server_client(s));
	np->fetch_tries = 0;
	fetch_send(s);
}

static void server_info(const struct pm_server *s, int result, uint32_t epoch,
			struct pcpmap_server_info *info)
{
	const struct natpmp_priv *np = pm_server_priv(s);
	memset(info, 0, sizeof(*info));
	info->proto = PCPMAP_PROTO_NATPMP;
	pm_text_copy(info->server, sizeof(info->server), pm_server_name(s));
	if (pm_text_ntop(AF_INET, &pm_server_local(s)->u.in.sin_addr, info->client_addr,
			 sizeof(info->client_addr)) < 0)
		info->client_addr[0] = '\0';
	info->version = 0;
	info->epoch = epoch;
	info->rtt_usec = (uint32_t)(pm_client_now(pm_server_client(s)) - np->addr_sent_at);
	info->result_code = result;
	if (np->have_ext)
		pm_text_ntop(AF_INET, &np->ext, info->external_addr, sizeof(info->external_addr));
}

/* RFC 6886 3.5 result codes in the engine's terms. */
static void reply_for_result(int result, struct pm_reply *r)
{
	r->result_code = result;
	switch (result) {
	case 0:
		r->kind = PM_REPLY_SUCCESS;
		r->error = 0;
		return;
	case 1: /* unsupported version */
		r->kind = PM_REPLY_FATAL;
		r->error = -EPROTONOSUPPORT;
		return;
	case 2: /* not authorized / refused */
		r->kind = PM_REPLY_FATAL;
		r->error = -EACCES;
		return;
	case 3: /* network failure: the gateway has no address yet */
	case 4: /* out of resources */
		r->kind = PM_REPLY_RETRY;
		r->error = -EAGAIN;
		r->hold_s = NP_ERROR_HOLD_S;
		return;
	case 5: /* unsupported opcode */
		r->kind = PM_REPLY_FATAL;
		r->error = -EOPNOTSUPP;
		return;
	}
	r->kind = PM_REPLY_FATAL;
	r->error = -EPROTO;
}

static void set_ext_addr(const struct natpmp_priv *np, struct pm_reply *r)
{
	if (np->have_ext)
		pcp_addr_from_v4(&r->ext_addr, &np->ext);
	else
		pcp_addr_any(&r->ext_addr, AF_INET);
}

static bool mapping_deleting(const struct pm_mapping *m)
{
	struct pm_req v;
	pm_mapping_req(m, &v);
	return v.del;
}

/* Hands an answer to the engine; the socket goes once the mapping needs it no more. */
static void deliver(struct pm_server *s, struct np_req *q, struct pm_mapping *m, const struct pm_reply *r)
{
	pcpmap_client *c = pm_server_client(s);
	struct pm_req v;
	pm_mapping_req(m, &v);
	pm_mapping_on_reply(m, r);
	m = pm_client_find_mapping(c, v.id);
	if (m)
		pm_mapping_req(m, &v);
	if (!m || v.state == PCPMAP_STATE_FAILED || v.state == PCPMAP_STATE_DELETED)
		mark_dead(s, q);
}

/* Parked grants go to the engine with the public address just learnt. A grant is a grant even when the
 * address request failed: the gateway holds the mapping, so it is reported held (address unknown, logged),
 * never turned into a failure that would leave it on the gateway untracked; the address follows with the
 * next answer to the address request (renew_stale). */
static void release_parked(struct pm_server *s)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	for (struct pm_list *l = np->reqs.next; l != &np->reqs; l = l->next) {
		struct np_req *q = pm_container_of(l, struct np_req, link);
		if (!q->parked || q->dead)
			continue;
		q->parked = false;
		struct pm_mapping *m = pm_server_find_mapping(s, q->mapping_id);
		if (!m) {
			mark_dead(s, q);
			continue;
		}
		if (q->parked_reply.has_epoch && pm_server_epoch_stale(s, q->parked_reply.epoch)) {
			/* The address answer showed a restart after this grant: the gateway lost it. Dropped as a
			 * map answer from before the restart is; the mapping's retransmission asks again. */
			pm_client_count(c, PM_STAT_DROPPED);
			pm_log(c, PCPMAP_LOG_DEBUG,
			       "server %s: grant for mapping %llu from before the gateway's restart dropped",
			       pm_server_name(s), (unsigned long long)q->mapping_id);
			mark_dead(s, q);
			continue;
		}
		struct pm_reply r = q->parked_reply;
		if (!np->have_ext)
			pm_log(c, PCPMAP_LOG_WARNING,
			       "server %s: public address unknown; mapping %llu reported without it",
			       pm_server_name(s), (unsigned long long)q->mapping_id);
		set_ext_addr(np, &r);
		deliver(s, q, m, &r);
	}
}

/* The gateway's public address moved: held mappings renew now, and their answers carry the new one. */
static void renew_stale(struct pm_server *s)
{
	struct natpmp_priv *np = pm_server_priv(s);
	struct pcp_addr now_addr;
	pcp_addr_from_v4(&now_addr, &np->ext);
	pm_server_on_ext_addr(s, &now_addr);
}

static void on_addr_answer(struct pm_server *s, int result, uint32_t epoch, bool epoch_valid,
			   struct in_addr ext)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	struct pcpmap_server_info info;
	struct pm_reply as_reply;
	bool changed = false;

	/* Our state first: the core's hooks below may start mappings, which come back through send(). */
	fetch_stop(np, c);
	memset(&as_reply, 0, sizeof(as_reply));
	reply_for_result(result, &as_reply);
	bool had_ext = np->have_ext;
	if (result == 0) {
		changed = np->have_ext && np->ext.s_addr != ext.s_addr;
		if (!np->have_ext || changed) {
			char a[PM_TEXT_ADDR_MAX];
			pm_text_ntop(AF_INET, &ext, a, sizeof(a));
			/* pcpmap_server_info has no field for it: logged, and kept for map answers. */
			pm_log(c, PCPMAP_LOG_INFO, "server %s: NAT-PMP public address %s%s",
			       pm_server_name(s), a, changed ? " (changed)" : "");
		}
		np->have_ext = true;
		np->ext = ext;
	} else {
		pm_log(c, PCPMAP_LOG_INFO, "server %s: public address request answered %s", pm_server_name(s),
		       pcpmap_result_name(PCPMAP_PROTO_NATPMP, result));
	}
	server_info(s, result, epoch, &info);
	info.error = as_reply.error;
	if (epoch_valid)
		pm_server_on_epoch(s, epoch, true, NULL);
	/* Any answer proves NAT-PMP, except one saying the version or the opcode is not spoken. */
	if (result == 1 || result == 5) {
		pm_server_on_probe(s, -EPROTONOSUPPORT, &info);
	} else {
		pm_server_on_probe(s, 0, &info);
		pm_server_on_reachable(s);
	}
	release_parked(s);
	if (changed || (result == 0 && !had_ext))
		renew_stale(s);
	if (pm_server_announcing(s))
		pm_server_on_announce(s, &info);
}

/* RFC 6886 3.2.1: the gateway's unsolicited public address notice (source already checked by the core,
 * which also runs the epoch check and re-verifies every mapping). A new address is taken at once, so a
 * grant answered before the re-verification does not report the old one. */
static void natpmp_unsolicited(struct pm_server *s, const uint8_t *buf, size_t len)
{
	struct natpmp_priv *np = pm_server_priv(s);
	if (!np || len != NP_ADDR_ANSWER_LEN || buf[0] != 0 || buf[1] != 128 || buf[2] != 0 || buf[3] != 0)
		return;
	struct in_addr ext;
	memcpy(&ext.s_addr, buf + 8, 4);
	bool changed = np->have_ext && np->ext.s_addr != ext.s_addr;
	if (!changed && np->have_ext)
		return;
	char a[PM_TEXT_ADDR_MAX];
	pm_text_ntop(AF_INET, &ext, a, sizeof(a));
	pm_log(pm_server_client(s), PCPMAP_LOG_INFO, "server %s: NAT-PMP public address %s (announced)",
	       pm_server_name(s), a);
	np->have_ext = true;
	np->ext = ext;
	release_parked(s);
	renew_stale(s);
}

/* Whether a mapping of ours on this server still uses the request's internal port. */
static bool port_in_use(struct pm_server *s, const struct np_req *q)
{
	return pm_server_holds_port(s, q->op == 1 ? IPPROTO_UDP : IPPROTO_TCP, q->internal_port);
}

static void delete_untracked(struct pm_server *s, const struct np_req *q, uint16_t ext_port)
{
	struct pm_orphan o = {
		.ip_proto = q->op == 1 ? IPPROTO_UDP : IPPROTO_TCP,
		.internal_port = q->internal_port,
		.family = AF_INET,
		.ext_port = ext_port,
	};
	pm_log(pm_server_client(s), PCPMAP_LOG_INFO,
	       "server %s: late NAT-PMP grant (port %u) for a mapping that left: deleting it",
	       pm_server_name(s), ext_port);
	pm_mapping_delete_orphan(s, &o);
}

static void on_map_answer(struct pm_server *s, struct np_req *q, int result, uint32_t epoch, bool epoch_valid,
			  const natpmpresp_t *resp)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);

	if (q->delete_all) {
		pm_server_on_reachable(s);
		if (epoch_valid)
			pm_server_on_epoch(s, epoch, true, NULL);
		pm_log(c, result ? PCPMAP_LOG_WARNING : PCPMAP_LOG_INFO,
		       "server %s: NAT-PMP delete-all %s: %s", pm_server_name(s), op_name(q->op),
		       pcpmap_result_name(PCPMAP_PROTO_NATPMP, result));
		mark_dead(s, q);
		return;
	}
	struct pm_mapping *m = pm_server_find_mapping(s, q->mapping_id);
	if (!m) {
		/* The mapping left NAT-PMP (or is gone) with this request in flight, and the gateway granted it
		 * anyway: nobody tracks that grant, so it is deleted (by port: nothing else of ours here uses it). */
		if (result == 0 && resp->pnu.newportmapping.lifetime && q->lifetime && !port_in_use(s, q))
			delete_untracked(s, q, resp->pnu.newportmapping.mappedpublicport);
		mark_dead(s, q);
		return;
	}
	if (epoch_valid && pm_server_epoch_stale(s, epoch)) {
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: NAT-PMP answer from before its restart dropped",
		       pm_server_name(s));
		mark_dead(s, q);
		return;
	}
	if (epoch_valid)
		pm_server_on_epoch(s, epoch, true, m);
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	reply_for_result(result, &r);
	r.has_epoch = epoch_valid;
	r.epoch = epoch;
	pcp_addr_any(&r.ext_addr, AF_INET);
	if (result == 0) {
		r.ext_port = resp->pnu.newportmapping.mappedpublicport;
		r.lifetime = resp->pnu.newportmapping.lifetime;
	}
	if (r.kind == PM_REPLY_SUCCESS && r.lifetime > 0 && !mapping_deleting(m)) {
		/* A grant needs the public address: wait for it while it is unknown. One being refreshed is
		 * still the best knowledge: the grant goes to the engine at once (a grant held back can expire
		 * unreported), and a changed address renews the mapping when the refresh answers. */
		if (!np->have_ext) {
			pm_server_on_reachable(s);
			q->parked = true;
			q->parked_reply = r;
			fetch_start(s);
			return;
		}
		set_ext_addr(np, &r);
	}
	deliver(s, q, m, &r);
}

static void drop(struct pm_server *s, struct np_req *q, const uint8_t *buf, size_t len, const char *why)
{
	pcpmap_client *c = pm_server_client(s);
	uint8_t sink;
	/* A short read consumes the whole datagram. */
	while (recv(q->p.s, &sink, sizeof(sink), MSG_DONTWAIT) < 0 && errno == EINTR)
		;
	pm_client_count(c, PM_STAT_DROPPED);
	pm_log(c, PCPMAP_LOG_DEBUG, "server %s: NAT-PMP answer dropped: %s", pm_server_name(s), why);
	if (pm_client_tracing(c)) {
		char d[160];
		snprintf(d, sizeof(d), "NAT-PMP dropped: %s", why);
		pm_trace(c, false, PCPMAP_PROTO_NATPMP, pm_server_name(s), buf, len, d);
	}
}

static void report_unreachable(struct pm_server *s, int err)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	if (np->unreach_seen && np->unreach_at == pm_client_now(c) && pm_server_last_error(s) == err)
		return;
	np->unreach_seen = true;
	np->unreach_at = pm_client_now(c);
	fetch_stop(np, c);
	for (struct pm_list *l = np->reqs.next; l != &np->reqs; l = l->next)
		pm_container_of(l, struct np_req, link)->parked = false;
	/* A gateway probe in flight learns why NAT-PMP is absent (the core's unreachable path does not tell
	 * it), then the engine reacts. */
	struct pcpmap_server_info info;
	server_info(s, 0, 0, &info);
	info.error = err;
	pm_probe_on_answer(s, PCPMAP_PROTO_NATPMP, err, &info);
	pm_server_on_unreachable(s, err);
}

static void trace_received(struct pm_server *s, const struct np_req *q, const uint8_t *buf, size_t len,
			   size_t full_len)
{
	pcpmap_client *c = pm_server_client(s);
	char d[192];
	uint16_t result = rd16(buf + 2);
	const char *rname = pcpmap_result_name(PCPMAP_PROTO_NATPMP, result);
	uint32_t epoch = rd32(buf + 4);
	if (q->op == NP_OP_ADDR && full_len >= NP_ADDR_ANSWER_LEN) {
		char a[PM_TEXT_ADDR_MAX];
		struct in_addr ext;
		memcpy(&ext.s_addr, buf + 8, 4);
		pm_text_ntop(AF_INET, &ext, a, sizeof(a));
		snprintf(d, sizeof(d), "NAT-PMP public address response result=%s epoch=%u external=%s",
			 rname, epoch, a);
	} else if (q->op != NP_OP_ADDR && full_len >= NP_MAP_ANSWER_LEN) {
		snprintf(d, sizeof(d),
			 "NAT-PMP map %s response result=%s epoch=%u internal=%u external=%u lifetime=%u",
			 op_name(q->op), rname, epoch, rd16(buf + 8), rd16(buf + 10), rd32(buf + 12));
	} else {
		snprintf(d, sizeof(d), "NAT-PMP %s%s response result=%s (%zu bytes)",
			 q->op == NP_OP_ADDR ? "public " : "map ", op_name(q->op), rname, full_len);
	}
	pm_trace(c, false, PCPMAP_PROTO_NATPMP, pm_server_name(s), buf, len, d);
}

/* One queued datagram (peeked, still in the socket): checked against what this socket asked, then read
 * and parsed by libnatpmp. */
/* A late copy of a successful answer for a mapping this socket served, still held with the same port: the
 * gateway says it holds it for that lifetime from now, so the grant's expiry moves (no event: same values). */
static void late_renewal(struct pm_server *s, struct np_req *q, const uint8_t *buf, size_t len)
{
	struct natpmp_priv *np = pm_server_priv(s);
	if (q->pending || q->delete_all || !q->mapping_id || len < NP_MAP_ANSWER_LEN || buf[0] != 0 ||
	    buf[1] != 128 + q->op || q->op == NP_OP_ADDR || rd16(buf + 2) != 0 ||
	    rd16(buf + 8) != q->internal_port || rd32(buf + 12) == 0 || !np->have_ext)
		return;
	struct pm_mapping *m = pm_server_find_mapping(s, q->mapping_id);
	if (!m)
		return;
	struct pm_req v;
	pm_mapping_req(m, &v);
	if (!v.have_grant || v.ext_port != rd16(buf + 10) ||
	    (v.state != PCPMAP_STATE_MAPPED && v.state != PCPMAP_STATE_REFRESHING))
		return;
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	r.kind = PM_REPLY_SUCCESS;
	r.ext_port = rd16(buf + 10);
	r.lifetime = rd32(buf + 12);
	set_ext_addr(np, &r);
	pm_mapping_on_reply(m, &r);
}

/* A late copy of a grant for a mapping that has left NAT-PMP since (or is gone): the gateway holds it for that
 * lifetime and nobody tracks it, so it is deleted, as a grant answered after the mapping left is (by internal
 * port: only when no mapping of ours here uses that port). */
static void late_grant_left(struct pm_server *s, struct np_req *q, const uint8_t *buf, size_t len)
{
	if (q->pending || q->delete_all || !q->mapping_id || !q->lifetime || len < NP_MAP_ANSWER_LEN ||
	    buf[0] != 0 || q->op == NP_OP_ADDR || buf[1] != 128 + q->op || rd16(buf + 2) != 0 ||
	    rd16(buf + 8) != q->internal_port || rd32(buf + 12) == 0)
		return;
	if (pm_server_find_mapping(s, q->mapping_id) || port_in_use(s, q))
		return;
	delete_untracked(s, q, rd16(buf + 10));
}

static void handle_datagram(struct pm_server *s, struct np_req *q, const uint8_t *buf, size_t full_len)
{
	pcpmap_client *c = pm_server_client(s);
	size_t len = full_len < NP_PEEK_MAX ? full_len : NP_PEEK_MAX;
	size_t need = q->op == NP_OP_ADDR ? NP_ADDR_ANSWER_LEN : NP_MAP_ANSWER_LEN;
	char why[96];

	why[0] = '\0';
	if (!q->pending) {
		snprintf(why, sizeof(why), "nothing in flight on this socket (late duplicate)");
	} else if (full_len < NP_SHORT_ANSWER_LEN) {
		snprintf(why, sizeof(why), "%zu bytes", full_len);
	} else if (buf[0] != 0) {
		snprintf(why, sizeof(why), "version %u", buf[0]);
	} else {
		uint16_t result = rd16(buf + 2);
		/* An unsupported-version answer may carry opcode 0 (RFC 6886 text) or 128 (erratum 3618). */
		bool unsupp_version = result == 1 && (buf[1] == 0 || buf[1] == 128);
		if (buf[1] != 128 + q->op && !unsupp_version)
			snprintf(why, sizeof(why), "opcode %u answers no %s request", buf[1], op_name(q->op));
		else if (result == 0 && full_len < need)
			snprintf(why, sizeof(why), "success in %zu bytes", full_len);
		else if (q->op != NP_OP_ADDR && full_len >= need && rd16(buf + 8) != q->internal_port)
			snprintf(why, sizeof(why), "internal port %u, asked %u", rd16(buf + 8),
				 q->internal_port);
		else if (q->op != NP_OP_ADDR && result == 0 && (rd32(buf + 12) == 0) != (q->lifetime == 0))
			/* A delete's answer while a create is in flight, or the other way round. */
			snprintf(why, sizeof(why), "lifetime %u answers a %s", rd32(buf + 12),
				 q->lifetime ? "delete" : "create");
	}
	if (why[0]) {
		/* Unmatched, but from our server (a connected socket): its epoch still says whether it restarted. */
		if (full_len >= NP_SHORT_ANSWER_LEN && buf[0] == 0 && buf[1] >= 128)
			pm_server_on_epoch(s, rd32(buf + 4), true, NULL);
		late_renewal(s, q, buf, full_len);
		late_grant_left(s, q, buf, full_len);
		drop(s, q, buf, len, why);
		return;
	}

	natpmpresp_t resp;
	memset(&resp, 0, sizeof(resp));
	errno = 0;
	int rc = np_lib.readnatpmpresponseorretry(&q->p, &resp);
	switch (rc) {
	case 0:
	case NATPMP_ERR_UNSUPPORTEDVERSION:
	case NATPMP_ERR_UNSUPPORTEDOPCODE:
	case NATPMP_ERR_UNDEFINEDERROR:
	case NATPMP_ERR_NOTAUTHORIZED:
	case NATPMP_ERR_NETWORKFAILURE:
	case NATPMP_ERR_OUTOFRESOURCES:
		break;
	case NATPMP_TRYAGAIN: /* the datagram went away: nothing was read */
		return;
	case NATPMP_ERR_NOGATEWAYSUPPORT:
		report_unreachable(s, -ECONNREFUSED);
		return;
	case NATPMP_ERR_NOPENDINGREQ: /* out of step with us: nothing was read */
		drop(s, q, buf, len, "libnatpmp has no request pending");
		return;
	default:
		pm_client_count(c, PM_STAT_DROPPED);
		pm_log(c, PCPMAP_LOG_DEBUG, "server %s: NAT-PMP read: %s", pm_server_name(s),
		       np_lib.strnatpmperr(rc));
		return;
	}
	/* Answered. libnatpmp leaves has_pending_request set after a server error (only success clears it):
	 * clear it, so a late copy is dropped as a duplicate and nothing is ever resent by the library. */
	q->p.has_pending_request = 0;
	q->pending = false;
	/* The library fills result and epoch before it looks at the opcode, so an unsupported-version answer
	 * with opcode 0 comes back as UNSUPPORTEDOPCODE with resultcode 1: trust resultcode. */
	int result = rc == 0 ? 0 : resp.resultcode;
	/* Only a full answer or the 8-byte unsupported-version one has a real SSSoE (an echoed request in an
	 * unsupported-opcode answer does not). */
	bool epoch_valid = full_len >= need || full_len == NP_SHORT_ANSWER_LEN;
	if (pm_client_tracing(c))
		trace_received(s, q, buf, len, full_len);
	if (q->op == NP_OP_ADDR) {
		struct in_addr ext = { .s_addr = rc == 0 ? resp.pnu.publicaddress.addr.s_addr : 0 };
		on_addr_answer(s, result, resp.epoch, epoch_valid, ext);
	} else {
		on_map_answer(s, q, result, resp.epoch, epoch_valid, &resp);
	}
}

static void natpmp_readable(struct pm_server *s, int fd, uint64_t now)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	(void)now;
	struct np_req *q = np ? req_by_fd(np, fd) : NULL;
	if (!q)
		return;
	for (int i = 0; i < NP_READ_BUDGET && q->open; i++) {
		uint8_t buf[NP_PEEK_MAX];
		/* Peek: the bytes for our checks and the trace; libnatpmp then reads the datagram itself. */
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			int err = -errno;
			if (err == -EINTR)
				continue;
			if (err == -EAGAIN || err == -EWOULDBLOCK)
				return;
			if (is_unreachable(err)) {
				/* ICMP port unreachable on the connected socket: no server listens now. */
				report_unreachable(s, err);
				continue;
			}
			pm_log(c, PCPMAP_LOG_WARNING, "server %s: NAT-PMP receive failed: %s",
			       pm_server_name(s), pcpmap_strerror(err));
			return;
		}
		pm_client_count(c, PM_STAT_RECEIVED);
		handle_datagram(s, q, buf, (size_t)n);
	}
}

/* What NAT-PMP cannot express is refused, not approximated: a FILTER or THIRD_PARTY dropped silently
 * would open more than the application asked for. */
static const char *cannot_carry(const struct pm_req *m)
{
	if (m->kind != PCPMAP_KIND_MAP)
		return "NAT-PMP has no PEER mappings";
	if (m->ip_proto != IPPROTO_TCP && m->ip_proto != IPPROTO_UDP)
		return "NAT-PMP maps TCP or UDP only";
	if (m->family != AF_INET)
		return "NAT-PMP maps IPv4 only";
	if (m->has_third_party)
		return "NAT-PMP cannot map for another host (THIRD_PARTY)";
	if (m->n_filters)
		return "NAT-PMP has no FILTER";
	return NULL;
}

static int natpmp_send(struct pm_server *s, struct pm_mapping *mapping, bool del)
{
	struct natpmp_priv *np = pm_server_priv(s);
	struct pm_req v;
	const struct pm_req *m = &v;
	pm_mapping_req(mapping, &v);
	pcpmap_client *c = pm_server_client(s);
	struct np_req *q = req_find(np, m->id);
	int r;

	/* The engine frees and moves mappings without telling backends: look for orphaned sockets now and then. */
	if (pm_client_now(c) - np->last_reap >= NP_REAP_EVERY_US && !sched_armed(&np->t_reap))
		sched_arm(pm_client_sched(c), &np->t_reap, pm_client_now(c));

	const char *why = cannot_carry(m);
	if (why) {
		if (!q) {
			r = req_new(s, m->id, false, &q);
			if (r < 0)
				return r;
			pm_log(c, PCPMAP_LOG_WARNING, "mapping %llu: %s", (unsigned long long)m->id, why);
		}
		/* The refusal arrives like an answer, from the next timer run: never from inside send. */
		q->refuse = true;
		sched_arm(pm_client_sched(c), &np->t_refuse, pm_client_now(c));
		return 0;
	}
	if (!q) {
		r = req_new(s, m->id, true, &q);
		if (r < 0)
			return r;
	}
	uint8_t op = m->ip_proto == IPPROTO_TCP ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;
	if (del) {
		/* RFC 6886 3.4: lifetime 0 deletes; the suggested port is ignored, so 0. */
		q->parked = false;
		return map_transmit(s, q, op, m->internal_port, 0, 0, "");
	}
	/* Renewals and re-creations suggest what was granted, so a rebooted gateway can give it back (3.3). */
	uint16_t suggest = m->have_grant ? m->ext_port : m->suggested_port;
	r = map_transmit(s, q, op, m->internal_port, suggest, m->req_lifetime, "");
	/* The public address: needed once, and refreshed with every renewal or re-creation (it may move). */
	if (!np->have_ext || m->have_grant)
		fetch_start(s);
	return r;
}

static void fetch_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	struct pm_server *s = arg;
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	(void)t;
	(void)now;
	/* Port 5351 of the gateway refused PCP by ICMP: NAT-PMP shares it, so retransmitting only draws more ICMP
	 * errors, which the gateway rate-limits (and then the next client's refusal never arrives). */
	if (pm_server_refused(s, PCPMAP_PROTO_NATPMP, false)) {
		np->fetching = false;
		struct pcpmap_server_info info;
		server_info(s, 0, 0, &info);
		info.error = -ECONNREFUSED;
		pm_server_on_probe(s, -ECONNREFUSED, &info);
		release_parked(s);
		return;
	}
	if (np->fetch_tries >= NATPMP_MAX_TRIES) {
		/* RFC 6886 3.1: no answer to 9 tries. */
		np->fetching = false;
		pm_log(c, PCPMAP_LOG_INFO, "server %s: no answer to %u NAT-PMP public address requests",
		       pm_server_name(s), np->fetch_tries);
		struct pcpmap_server_info info;
		server_info(s, 0, 0, &info);
		info.error = -ETIMEDOUT;
		pm_server_on_probe(s, -ETIMEDOUT, &info);
		release_parked(s);
		return;
	}
	pm_client_count(c, PM_STAT_RETRANSMITS);
	fetch_send(s);
}

static void refuse_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	struct pm_server *s = arg;
	struct natpmp_priv *np = pm_server_priv(s);
	(void)t;
	(void)now;
	for (struct pm_list *l = np->reqs.next; l != &np->reqs; l = l->next) {
		struct np_req *q = pm_container_of(l, struct np_req, link);
		if (!q->refuse || q->dead)
			continue;
		q->refuse = false;
		mark_dead(s, q);
		struct pm_mapping *m = pm_server_find_mapping(s, q->mapping_id);
		if (!m)
			continue;
		struct pm_reply r;
		memset(&r, 0, sizeof(r));
		r.kind = PM_REPLY_FATAL;
		r.error = -EOPNOTSUPP;
		pcp_addr_any(&r.ext_addr, AF_INET);
		pm_mapping_on_reply(m, &r);
	}
}

/* The announcement probe of NAT-PMP is a public address request (RFC 6886 3.2); the engine retransmits it
 * and the answer reaches pm_server_on_announce() with proto NATPMP, version 0 and the epoch. */
static int natpmp_announce(struct pm_server *s)
{
	return addr_transmit(s);
}

static int natpmp_probe(struct pm_server *s)
{
	fetch_start(s);
	return 0;
}

static int natpmp_server_open(struct pm_server *s)
{
	pcpmap_client *c = pm_server_client(s);
	if (pm_server_addr(s)->u.sa.sa_family != AF_INET)
		return -EAFNOSUPPORT; /* NAT-PMP is IPv4 only */
	if (ntohs(pm_server_addr(s)->u.in.sin_port) != NATPMP_PORT) {
		pm_log(c, PCPMAP_LOG_ERR, "server %s: libnatpmp only talks to port %d", pm_server_name(s),
		       NATPMP_PORT);
		return -EINVAL;
	}
	pthread_once(&np_lib_once, np_lib_load);
	if (np_lib_err < 0) {
		pm_log(c, PCPMAP_LOG_WARNING, "NAT-PMP unavailable: cannot load libnatpmp: %s", np_lib_why);
		return np_lib_err;
	}
	struct natpmp_priv *np = calloc(1, sizeof(*np));
	if (!np)
		return -ENOMEM;
	pm_list_init(&np->reqs);
	pm_list_init(&np->addr.link);
	np->last_reap = pm_client_now(c);
	sched_timer_init(&np->t_fetch, fetch_timer, s, "natpmp-address");
	sched_timer_init(&np->t_reap, reap_timer, s, "natpmp-reap");
	sched_timer_init(&np->t_refuse, refuse_timer, s, "natpmp-refuse");
	int r = req_open(s, &np->addr);
	if (r < 0) {
		free(np);
		return r;
	}
	/* libnatpmp connected the socket: our source address towards the gateway. */
	struct pm_sockaddr local;
	memset(&local, 0, sizeof(local));
	local.len = sizeof(local.u);
	if (getsockname(np->addr.p.s, &local.u.sa, &local.len) < 0) {
		r = -errno;
		req_close(s, &np->addr);
		free(np);
		return r;
	}
	pm_server_set_local(s, &local);
	pm_server_set_priv(s, np);
	return 0;
}

static void natpmp_server_close(struct pm_server *s)
{
	struct natpmp_priv *np = pm_server_priv(s);
	pcpmap_client *c = pm_server_client(s);
	if (!np)
		return;
	sched_cancel(pm_client_sched(c), &np->t_fetch);
	sched_cancel(pm_client_sched(c), &np->t_reap);
	sched_cancel(pm_client_sched(c), &np->t_refuse);
	while (!pm_list_empty(&np->reqs)) {
		struct np_req *q = pm_container_of(np->reqs.next, struct np_req, link);
		pm_list_del(&q->link);
		req_close(s, q);
		free(q);
	}
	req_close(s, &np->addr);
	free(np);
	pm_server_set_priv(s, NULL);
}

/* RFC 6886 3.4: removes every mapping of this host for one protocol (internal port 0, lifetime 0). The
 * answer is logged; the call can simply be repeated, the request is idempotent. */
int pm_natpmp_delete_all(struct pm_server *s, uint8_t ip_proto)
{
	if (!s || pm_server_ops(s) != &pm_natpmp_backend || !pm_server_priv(s))
		return -EINVAL;
	if (ip_proto != IPPROTO_TCP && ip_proto != IPPROTO_UDP)
		return -EINVAL;
	struct natpmp_priv *np = pm_server_priv(s);
	uint8_t op = ip_proto == IPPROTO_TCP ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;
	struct np_req *q = NULL;
	for (struct pm_list *l = np->reqs.next; l != &np->reqs; l = l->next) {
		struct np_req *e = pm_container_of(l, struct np_req, link);
		if (e->delete_all && !e->dead && e->op == op)
			q = e;
	}
	if (!q) {
		int r = req_new(s, 0, true, &q);
		if (r < 0)
			return r;
		q->delete_all = true;
	}
	return map_transmit(s, q, op, 0, 0, 0, " (delete all)");
}

const struct pm_backend_ops pm_natpmp_backend = {
	.proto = PCPMAP_PROTO_NATPMP,
	.name = "NAT-PMP",
	.irt_us = NATPMP_IRT_US,
	.mrt_us = NP_MRT_US,
	.server_open = natpmp_server_open,
	.unsolicited = natpmp_unsolicited,
	.server_close = natpmp_server_close,
	.send = natpmp_send,
	.readable = natpmp_readable,
	.announce = natpmp_announce,
	.probe = natpmp_probe,
};
