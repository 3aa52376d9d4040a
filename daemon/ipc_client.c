/* SPDX-License-Identifier: MIT */
/* Blocking client of pcpmapd's control socket: the codec plus poll() and a queue for events. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/ipc_client.h"
#include "ipc/ipc_conv.h"
#include "net/ipc_sock.h"

#define EVENT_QUEUE_MAX 4096u

struct queued_event {
	struct queued_event *next;
	enum pcpmap_event ev;
	struct pmd_ctl_mapping m;
};

struct pmd_ctl {
	int fd;
	int timeout_ms;
	uint32_t seq;
	char error[PMD_IPC_TEXT_MAX + 1];
	struct queued_event *head, *tail;
	size_t n_queued;
	uint8_t buf[PMD_IPC_MAX_MSG + 1];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int pmd_ctl_connect(const char *path, struct pmd_ctl **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path)
		path = getenv("PCPMAPD_SOCKET");
	if (!path || !*path)
		path = PMD_CTL_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct pmd_ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->timeout_ms = 30000;
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		int e = errno;
		free(c);
		return -e;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(c->fd);
		free(c);
		return -e;
	}
	*ret = c;
	return 0;
}

void pmd_ctl_close(struct pmd_ctl *c)
{
	if (!c)
		return;
	while (c->head) {
		struct queued_event *q = c->head;
		c->head = q->next;
		free(q);
	}
	close(c->fd);
	free(c);
}

int pmd_ctl_fd(const struct pmd_ctl *c)
{
	return c->fd;
}

void pmd_ctl_set_timeout(struct pmd_ctl *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
}

const char *pmd_ctl_error(const struct pmd_ctl *c)
{
	return c->error;
}

int pmd_ctl_send_raw(struct pmd_ctl *c, const void *buf, size_t len)
{
	/* A blocking client: waits for room, up to the timeout. */
	uint64_t deadline = c->timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)c->timeout_ms;
	for (;;) {
		int r = pm_ipc_send(c->fd, buf, len);
		if (r != -EAGAIN)
			return r;
		int t = -1;
		if (deadline != UINT64_MAX) {
			uint64_t now = now_ms();
			if (now >= deadline)
				return -ETIMEDOUT;
			t = (int)(deadline - now);
		}
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		if (poll(&p, 1, t) < 0 && errno != EINTR)
			return -errno;
	}
}

/* Receives and decodes one message before the deadline (ms on the monotonic clock; UINT64_MAX none). */
static int recv_msg(struct pmd_ctl *c, uint64_t deadline, struct pmd_ipc_msg *ret)
{
	for (;;) {
		int t = -1;
		if (deadline != UINT64_MAX) {
			uint64_t now = now_ms();
			if (now >= deadline)
				return -ETIMEDOUT;
			t = (int)(deadline - now);
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = poll(&p, 1, t);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		r = pm_ipc_recv(c->fd, c->buf, ret, NULL);
		if (r == -ECONNRESET) {
			/* The daemon closed with our request unread (a refusal at accept): the error is reported
			 * first, its ERROR message may still be queued behind it. */
			r = pm_ipc_recv(c->fd, c->buf, ret, NULL);
			if (r <= 0)
				return -ECONNRESET;
		}
		if (r == 0)
			continue;
		return r < 0 ? r : 0;
	}
}

void pmd_ctl_mapping_from_msg(const struct pmd_ipc_msg *msg, struct pmd_ctl_mapping *m)
{
	memset(m, 0, sizeof(*m));
	pmd_conv_info_from_msg(msg, now_us(), &m->info);
	m->id = msg->id;
	m->owner_uid = msg->owner_uid;
	m->persistent = msg->persistent;
	m->refresh_in = pmd_ipc_has(msg, PMD_A_REFRESH_IN) ? msg->refresh_in : UINT32_MAX;
	m->has_nonce = pmd_ipc_has(msg, PMD_A_NONCE);
	snprintf(m->description, sizeof(m->description), "%s", msg->req.description);
	snprintf(m->third_party, sizeof(m->third_party), "%s", msg->req.third_party);
}

static void queue_event(struct pmd_ctl *c, const struct pmd_ipc_msg *msg)
{
	struct queued_event *q = malloc(sizeof(*q));
	if (!q)
		return;
	if (c->n_queued >= EVENT_QUEUE_MAX) {
		/* A caller that never reads events loses the oldest ones rather than memory. */
		struct queued_event *old = c->head;
		c->head = old->next;
		if (!c->head)
			c->tail = NULL;
		free(old);
		c->n_queued--;
	}
	q->next = NULL;
	q->ev = (enum pcpmap_event)msg->event;
	pmd_ctl_mapping_from_msg(msg, &q->m);
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	c->n_queued++;
}

int pmd_ctl_recv_reply(struct pmd_ctl *c, struct pmd_ipc_msg *ret)
{
	uint64_t deadline = c->timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)c->timeout_ms;
	for (;;) {
		int r = recv_msg(c, deadline, ret);
		if (r < 0)
			return r;
		if (ret->type != PMD_MSG_EVENT)
			return 0;
		queue_event(c, ret);
	}
}

static int error_reply(struct pmd_ctl *c, const struct pmd_ipc_msg *reply)
{
	snprintf(c->error, sizeof(c->error), "%s", reply->message);
	return reply->error ? -(int)reply->error : -EPROTO;
}

/* Next reply with the same seq (LIST sends several). */
static int next_reply(struct pmd_ctl *c, uint32_t seq, uint64_t deadline, struct pmd_ipc_msg *reply)
{
	for (;;) {
		int r = recv_msg(c, deadline, reply);
		if (r < 0)
			return r;
		if (reply->type == PMD_MSG_EVENT) {
			queue_event(c, reply);
			continue;
		}
		/* seq 0: the daemon refused the connection itself (a limit). */
		if (reply->type == PMD_MSG_ERROR && (reply->seq == seq || reply->seq == 0))
			return error_reply(c, reply);
		if (reply->seq != seq)
			continue; /* a late answer to an earlier request that timed out */
		return 0;
	}
}

/* Sends a request and returns its first reply (ERROR turned into -errno). */
static int transact(struct pmd_ctl *c, struct pmd_ipc_msg *req, uint64_t deadline, struct pmd_ipc_msg *reply)
{
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	req->seq = ++c->seq;
	if (!req->seq)
		req->seq = ++c->seq;
	int r = pmd_ipc_encode(req, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	c->error[0] = '\0';
	r = pmd_ctl_send_raw(c, buf, len);
	if (r == -ECONNRESET) {
		/* Refused at accept (a limit): the reason may wait in the socket. */
		if (recv_msg(c, now_ms() + 100, reply) == 0 && reply->type == PMD_MSG_ERROR &&
		    reply->seq == 0)
			return error_reply(c, reply);
		return r;
	}
	if (r < 0)
		return r;
	return next_reply(c, req->seq, deadline, reply);
}

static uint64_t deadline_for(const struct pmd_ctl *c, int extra_ms)
{
	if (c->timeout_ms < 0)
		return UINT64_MAX;
	return now_ms() + (uint64_t)c->timeout_ms + (uint64_t)(extra_ms > 0 ? extra_ms : 0);
}

int pmd_ctl_create(struct pmd_ctl *c, const struct pcpmap_request *req, unsigned flags, int wait_ms,
		   struct pmd_ctl_mapping *ret)
{
	struct pmd_ipc_msg m, reply;
	if (!c || !req)
		return -EINVAL;
	int r = pmd_conv_create_from_request(req, &m, NULL);
	if (r < 0)
		return r;
	m.persistent = flags & PMD_CTL_PERSISTENT;
	if (wait_ms > 0) {
		m.wait_ms = (uint32_t)wait_ms;
		pmd_ipc_set(&m, PMD_A_WAIT_MS);
	}
	r = transact(c, &m, deadline_for(c, wait_ms), &reply);
	if (r < 0)
		return r;
	if (reply.type != PMD_MSG_MAPPING)
		return -EPROTO;
	struct pmd_ctl_mapping tmp;
	pmd_ctl_mapping_from_msg(&reply, &tmp);
	if (ret)
		*ret = tmp;
	if (wait_ms <= 0)
		return 0;
	if (tmp.info.state == PCPMAP_STATE_MAPPED || tmp.info.state == PCPMAP_STATE_REFRESHING)
		return 0;
	if (tmp.info.error)
		return tmp.info.error;
	return -ETIMEDOUT;
}

int pmd_ctl_delete(struct pmd_ctl *c, uint32_t id)
{
	struct pmd_ipc_msg m, reply;
	pmd_ipc_init(&m, PMD_MSG_DELETE, 0);
	m.id = id;
	pmd_ipc_set(&m, PMD_A_ID);
	/* The daemon answers once the gateway did. */
	int r = transact(c, &m, deadline_for(c, PMD_IPC_DELETE_WAIT_MS), &reply);
	if (r < 0)
		return r;
	return reply.type == PMD_MSG_OK ? 0 : -EPROTO;
}

int pmd_ctl_delete_send(struct pmd_ctl *c, uint32_t id)
{
	struct pmd_ipc_msg m;
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	pmd_ipc_init(&m, PMD_MSG_DELETE, ++c->seq);
	if (!m.seq)
		m.seq = ++c->seq;
	m.id = id;
	pmd_ipc_set(&m, PMD_A_ID);
	int r = pmd_ipc_encode(&m, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	c->error[0] = '\0';
	/* Its reply, when it comes, is skipped by the next request's wait like any late one. */
	return pmd_ctl_send_raw(c, buf, len);
}

static int list(struct pmd_ctl *c, const uint32_t *id, struct pmd_ctl_mapping **ret, size_t *ret_n)
{
	struct pmd_ipc_msg m, reply;
	struct pmd_ctl_mapping *v = NULL;
	size_t n = 0, cap = 0;
	pmd_ipc_init(&m, PMD_MSG_LIST, 0);
	if (id) {
		m.id = *id;
		pmd_ipc_set(&m, PMD_A_ID);
	}
	uint64_t deadline = deadline_for(c, 0);
	int r = transact(c, &m, deadline, &reply);
	while (r == 0 && reply.type == PMD_MSG_MAPPING) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct pmd_ctl_mapping *p = realloc(v, nc * sizeof(*p));
			if (!p) {
				r = -ENOMEM;
				break;
			}
			v = p;
			cap = nc;
		}
		pmd_ctl_mapping_from_msg(&reply, &v[n++]);
		r = next_reply(c, m.seq, deadline, &reply);
	}
	if (r == 0 && (reply.type != PMD_MSG_OK || reply.count != n))
		r = -EPROTO;
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int pmd_ctl_list(struct pmd_ctl *c, struct pmd_ctl_mapping **ret, size_t *ret_n)
{
	return list(c, NULL, ret, ret_n);
}

int pmd_ctl_get(struct pmd_ctl *c, uint32_t id, struct pmd_ctl_mapping *ret)
{
	struct pmd_ctl_mapping *v;
	size_t n;
	int r = list(c, &id, &v, &n);
	if (r < 0)
		return r;
	if (n != 1) {
		free(v);
		return -ENOENT;
	}
	*ret = v[0];
	free(v);
	return 0;
}

int pmd_ctl_probe(struct pmd_ctl *c, int timeout_ms, struct pcpmap_probe_result *ret)
{
	struct pmd_ipc_msg m, reply;
	pmd_ipc_init(&m, PMD_MSG_PROBE, 0);
	if (timeout_ms > 0) {
		m.timeout_ms = (uint32_t)timeout_ms;
		pmd_ipc_set(&m, PMD_A_TIMEOUT_MS);
	}
	int r = transact(c, &m, deadline_for(c, timeout_ms), &reply);
	if (r < 0)
		return r;
	if (reply.type != PMD_MSG_PROBE_RESULT)
		return -EPROTO;
	pmd_conv_probe_from_msg(&reply, ret);
	return 0;
}

int pmd_ctl_external(struct pmd_ctl *c, int timeout_ms, struct pmd_ctl_external *ret)
{
	struct pmd_ipc_msg m, reply;
	pmd_ipc_init(&m, PMD_MSG_GET_EXTERNAL, 0);
	if (timeout_ms > 0) {
		m.timeout_ms = (uint32_t)timeout_ms;
		pmd_ipc_set(&m, PMD_A_TIMEOUT_MS);
	}
	int r = transact(c, &m, deadline_for(c, timeout_ms), &reply);
	if (r < 0)
		return r;
	if (reply.type != PMD_MSG_EXTERNAL)
		return -EPROTO;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->addr, sizeof(ret->addr), "%s", reply.external_addr);
	ret->proto = (enum pcpmap_proto)reply.proto;
	ret->is_private = reply.external_private;
	return 0;
}

int pmd_ctl_subscribe(struct pmd_ctl *c, bool on)
{
	struct pmd_ipc_msg m, reply;
	pmd_ipc_init(&m, PMD_MSG_SUBSCRIBE, 0);
	m.unsubscribe = !on;
	/* The daemon answers once the gateway did. */
	int r = transact(c, &m, deadline_for(c, PMD_IPC_DELETE_WAIT_MS), &reply);
	if (r < 0)
		return r;
	return reply.type == PMD_MSG_OK ? 0 : -EPROTO;
}

int pmd_ctl_next_event(struct pmd_ctl *c, int timeout_ms, enum pcpmap_event *ret_ev,
		       struct pmd_ctl_mapping *m)
{
	struct pmd_ipc_msg msg;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;
	while (!c->head) {
		int r = recv_msg(c, deadline, &msg);
		if (r < 0)
			return r;
		if (msg.type == PMD_MSG_EVENT)
			queue_event(c, &msg);
	}
	struct queued_event *q = c->head;
	c->head = q->next;
	if (!c->head)
		c->tail = NULL;
	c->n_queued--;
	*ret_ev = q->ev;
	*m = q->m;
	free(q);
	return 0;
}

int pmd_ctl_stats(struct pmd_ctl *c, struct pmd_ctl_stats *ret)
{
	struct pmd_ipc_msg m, reply;
	pmd_ipc_init(&m, PMD_MSG_STATS, 0);
	int r = transact(c, &m, deadline_for(c, 0), &reply);
	if (r < 0)
		return r;
	if (reply.type != PMD_MSG_STATS_RESULT)
		return -EPROTO;
	ret->wakeups = reply.stat_wakeups;
	ret->timer_wakeups = reply.stat_timer;
	ret->engine_wakeups = reply.stat_engine;
	ret->uptime_s = reply.stat_uptime;
	ret->connections = reply.connections;
	ret->mappings = reply.mappings;
	return 0;
}
