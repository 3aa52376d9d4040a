/* The library through the daemon (core/daemon_mode.c) against a fake pcpmapd: a SOCK_SEQPACKET listener in a
 * temporary directory that the test answers with the control-protocol codec. Covers AUTO's fallback,
 * DAEMON's errors, the descriptor and timeout contract, callbacks and info from replies and events, delete,
 * flush, probe, the blocking helpers, and LOST then re-creation when the daemon goes away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake_env.h"
#include "internal.h"
#include "ipc/ipc.h"
#include "ipc/ipc_conv.h"

#define EXT4 "203.0.113.1"

struct fake_daemon {
	char dir[64];
	char path[108];
	int lfd; /* listener */
	int fd;  /* the accepted connection, -1 when none */
	pthread_t thr;
	int refuse; /* 0: answer SUBSCRIBE; else refuse the connection with this errno (seq 0) */
	int thread_err;
};

struct rec {
	enum pcpmap_event ev;
	struct pcpmap_mapping_info info;
	pcpmap_mapping *m;
};

struct recorder {
	struct rec evs[32];
	size_t n;
	int probes;
	struct pcpmap_probe_result probe;
};

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct recorder *r = ud;
	if (r->n < 32) {
		r->evs[r->n].ev = ev;
		r->evs[r->n].info = *info;
		r->evs[r->n].m = m;
		r->n++;
	}
}

static void on_probe(pcpmap_client *c, const struct pcpmap_probe_result *res, void *ud)
{
	struct recorder *r = ud;
	(void)c;
	r->probes++;
	r->probe = *res;
}

/* ---- the fake daemon ---- */

static int fake_open(struct fake_daemon *f)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/pcpmap-dmode.XXXXXX");
	if (!mkdtemp(f->dir))
		return -errno;
	snprintf(f->path, sizeof(f->path), "%s/pcpmapd.sock", f->dir);
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f->lfd, 8) < 0)
		return -errno;
	return 0;
}

static void fake_close(struct fake_daemon *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->lfd >= 0)
		close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	f->fd = f->lfd = -1;
}

static int fake_send(int fd, const struct pmd_ipc_msg *m)
{
	uint8_t buf[PMD_IPC_MAX_MSG];
	size_t len;
	int r = pmd_ipc_encode(m, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* 0 and the decoded message; -ETIMEDOUT; -ECONNRESET at the end of the stream. */
static int fake_recv_fd(int fd, struct pmd_ipc_msg *m, int timeout_ms)
{
	uint8_t buf[PMD_IPC_MAX_MSG + 1];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return -ECONNRESET;
	return pmd_ipc_decode(buf, (size_t)n, m);
}

static int fake_recv(struct fake_daemon *f, struct pmd_ipc_msg *m, int timeout_ms)
{
	return fake_recv_fd(f->fd, m, timeout_ms);
}

/* Accepts one connection and answers its SUBSCRIBE (or refuses it). */
static int fake_accept(struct fake_daemon *f, int timeout_ms)
{
	struct pollfd p = { .fd = f->lfd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct pmd_ipc_msg m, r;
	if (f->refuse) {
		pmd_ipc_init(&r, PMD_MSG_ERROR, 0);
		r.error = (uint32_t)f->refuse;
		pmd_ipc_set(&r, PMD_A_ERRNO);
		snprintf(r.message, sizeof(r.message), "too many connections");
		pmd_ipc_set(&r, PMD_A_MESSAGE);
		fake_send(fd, &r);
		fake_recv_fd(fd, &m, 1000);
		close(fd);
		return 0;
	}
	int e = fake_recv_fd(fd, &m, timeout_ms);
	if (e < 0 || m.type != PMD_MSG_SUBSCRIBE || m.unsubscribe) {
		close(fd);
		return e < 0 ? e : -EPROTO;
	}
	pmd_ipc_init(&r, PMD_MSG_OK, m.seq);
	fake_send(fd, &r);
	f->fd = fd;
	return 0;
}

static void *accept_thread(void *arg)
{
	struct fake_daemon *f = arg;
	f->thread_err = fake_accept(f, 3000);
	return NULL;
}

/* pcpmap_client_new() waits for the SUBSCRIBE answer: the daemon's side runs on a thread meanwhile. */
static int client_new(struct fake_daemon *f, enum pcpmap_mode mode, pcpmap_client **ret)
{
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.mode = mode;
	cfg.daemon_socket = f->path;
	if (pthread_create(&f->thr, NULL, accept_thread, f) != 0)
		return -EAGAIN;
	int r = pcpmap_client_new(ret, &cfg);
	pthread_join(f->thr, NULL);
	return r;
}

static void mapping_msg(struct pmd_ipc_msg *m, uint8_t type, uint32_t seq, uint32_t id, enum pcpmap_state st,
			uint16_t port, uint16_t ext_port, const uint8_t *nonce)
{
	pmd_ipc_init(m, type, seq);
	m->id = id;
	pmd_ipc_set(m, PMD_A_ID);
	m->req.kind = PCPMAP_KIND_MAP;
	m->req.ip_proto = 6;
	m->req.internal_port = port;
	m->req.family = 4;
	m->req.lifetime = 600;
	pmd_ipc_set(m, PMD_A_KIND);
	pmd_ipc_set(m, PMD_A_IP_PROTO);
	pmd_ipc_set(m, PMD_A_INTERNAL_PORT);
	pmd_ipc_set(m, PMD_A_FAMILY);
	pmd_ipc_set(m, PMD_A_LIFETIME);
	m->state = (uint8_t)st;
	pmd_ipc_set(m, PMD_A_STATE);
	m->proto = PCPMAP_PROTO_PCP;
	pmd_ipc_set(m, PMD_A_PROTO);
	snprintf(m->server, sizeof(m->server), "192.168.77.1:5351");
	pmd_ipc_set(m, PMD_A_SERVER);
	snprintf(m->internal_addr, sizeof(m->internal_addr), "192.168.77.2");
	pmd_ipc_set(m, PMD_A_INTERNAL_ADDR);
	if (ext_port) {
		snprintf(m->external_addr, sizeof(m->external_addr), EXT4);
		m->external_port = ext_port;
		m->expires_in = 600;
		m->refresh_in = 300;
		pmd_ipc_set(m, PMD_A_EXPIRES_IN);
		pmd_ipc_set(m, PMD_A_REFRESH_IN);
	}
	pmd_ipc_set(m, PMD_A_EXTERNAL_ADDR);
	pmd_ipc_set(m, PMD_A_EXTERNAL_PORT);
	pmd_ipc_set(m, PMD_A_EPOCH);
	m->owner_uid = 0;
	pmd_ipc_set(m, PMD_A_OWNER_UID);
	if (nonce) {
		memcpy(m->req.nonce, nonce, PMD_IPC_NONCE_LEN);
		pmd_ipc_set(m, PMD_A_NONCE);
	}
}

static void send_event(struct fake_daemon *f, enum pcpmap_event ev, uint32_t id, enum pcpmap_state st,
		       uint16_t port, uint16_t ext_port, const uint8_t *nonce)
{
	struct pmd_ipc_msg m;
	mapping_msg(&m, PMD_MSG_EVENT, 0, id, st, port, ext_port, nonce);
	m.event = (uint8_t)ev;
	pmd_ipc_set(&m, PMD_A_EVENT);
	assert_int_equal(fake_send(f->fd, &m), 0);
}

static void send_ok(int fd, uint32_t seq, int count)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_OK, seq);
	if (count >= 0) {
		m.count = (uint32_t)count;
		pmd_ipc_set(&m, PMD_A_COUNT);
	}
	assert_int_equal(fake_send(fd, &m), 0);
}

/* Runs the client's loop as an application would, for ms milliseconds or until the recorder holds want
 * events. */
static void pump(pcpmap_client *c, const struct recorder *r, size_t want, int ms)
{
	uint64_t end = pcpmap_now_usec() + (uint64_t)ms * 1000u;
	while (pcpmap_now_usec() < end && (!r || r->n < want)) {
		int t = pcpmap_client_get_timeout(c);
		if (t < 0 || t > 20)
			t = 20;
		struct pollfd p = { .fd = pcpmap_client_get_fd(c), .events = POLLIN };
		poll(&p, 1, t);
		assert_int_equal(pcpmap_client_process(c), 0);
	}
}

static void tcp_request(struct pcpmap_request *req, uint16_t port, struct recorder *r)
{
	pcpmap_request_init(req, PCPMAP_KIND_MAP);
	req->ip_proto = 6;
	req->internal_port = port;
	req->callback = on_event;
	req->userdata = r;
}

/* A mapping the fake daemon answers: CREATE received and checked, MAPPING id, EVENT MAPPED. */
static pcpmap_mapping *mapped(struct fake_daemon *f, pcpmap_client *c, struct recorder *r, uint16_t port,
			      uint32_t id, uint16_t ext_port, bool persistent)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	tcp_request(&req, port, r);
	req.persistent = persistent;
	assert_int_equal(pcpmap_mapping_new(c, &req, &m), 0);
	struct pmd_ipc_msg msg;
	assert_int_equal(fake_recv(f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_CREATE);
	assert_int_equal(msg.persistent, persistent);
	struct pmd_ipc_msg reply;
	mapping_msg(&reply, PMD_MSG_MAPPING, msg.seq, id, PCPMAP_STATE_WAIT_RESP, port, 0, msg.req.nonce);
	assert_int_equal(fake_send(f->fd, &reply), 0);
	send_event(f, PCPMAP_EVENT_MAPPED, id, PCPMAP_STATE_MAPPED, port, ext_port, msg.req.nonce);
	size_t before = r->n;
	pump(c, r, before + 1, 2000);
	assert_int_equal(r->n, before + 1);
	assert_int_equal(r->evs[before].ev, PCPMAP_EVENT_MAPPED);
	return m;
}

/* ---- tests ---- */

static void test_auto_falls_back_daemon_fails(void **state)
{
	(void)state;
	struct fake_daemon f;
	assert_int_equal(fake_open(&f), 0);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	assert_int_equal(cfg.mode, PCPMAP_MODE_ENGINE);
	assert_null(cfg.daemon_socket);
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	assert_false(req.persistent);

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/none.sock", f.dir);
	cfg.daemon_socket = missing;
	pcpmap_client *c = NULL;
	cfg.mode = PCPMAP_MODE_AUTO;
	assert_int_equal(pcpmap_client_new(&c, &cfg), 0);
	assert_false(pcpmap_client_uses_daemon(c));
	assert_true(pcpmap_client_get_fd(c) >= 0);
	assert_int_equal(pcpmap_client_get_timeout(c), -1);
	c = pcpmap_client_free(c);

	cfg.mode = PCPMAP_MODE_DAEMON;
	assert_int_equal(pcpmap_client_new(&c, &cfg), -ENOENT);
	assert_null(c);
	/* $PCPMAPD_SOCKET when the configuration names none. */
	cfg.daemon_socket = NULL;
	setenv("PCPMAPD_SOCKET", missing, 1);
	assert_int_equal(pcpmap_client_new(&c, &cfg), -ENOENT);
	unsetenv("PCPMAPD_SOCKET");

	/* A socket file nobody listens on (a daemon that died). */
	close(f.lfd);
	f.lfd = -1;
	cfg.daemon_socket = f.path;
	assert_int_equal(pcpmap_client_new(&c, &cfg), -ECONNREFUSED);
	cfg.mode = PCPMAP_MODE_AUTO;
	assert_int_equal(pcpmap_client_new(&c, &cfg), 0);
	assert_false(pcpmap_client_uses_daemon(c));
	c = pcpmap_client_free(c);

	cfg.mode = (enum pcpmap_mode)7;
	assert_int_equal(pcpmap_client_new(&c, &cfg), -EINVAL);
	fake_close(&f);
}

static void test_refused_connection(void **state)
{
	(void)state;
	struct fake_daemon f;
	pcpmap_client *c = NULL;
	assert_int_equal(fake_open(&f), 0);
	f.refuse = EUSERS;
	assert_int_equal(client_new(&f, PCPMAP_MODE_DAEMON, &c), -EUSERS);
	assert_null(c);
	assert_int_equal(client_new(&f, PCPMAP_MODE_AUTO, &c), 0);
	assert_false(pcpmap_client_uses_daemon(c));
	pcpmap_client_free(c);
	fake_close(&f);
}

static void test_create_event_info_delete(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	pcpmap_client *c;
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_AUTO, &c), 0);
	assert_int_equal(f.thread_err, 0);
	assert_true(pcpmap_client_uses_daemon(c));
	int fd = pcpmap_client_get_fd(c);
	assert_true(fd >= 0);
	assert_int_equal(pcpmap_client_get_timeout(c), -1); /* idle: nothing in flight */
	assert_int_equal(pcpmap_client_next_deadline(c), UINT64_MAX);

	/* Requests the engine refuses are refused before anything is sent. */
	struct pcpmap_request req;
	pcpmap_mapping *m;
	tcp_request(&req, 0, &r);
	assert_int_equal(pcpmap_mapping_new(c, &req, &m), -EINVAL);

	tcp_request(&req, 7100, &r);
	req.description = "web";
	req.lifetime = 600;
	req.suggested_port = 8100;
	assert_int_equal(pcpmap_mapping_new(c, &req, &m), 0);
	assert_int_equal(r.n, 0);
	struct pcpmap_mapping_info info;
	assert_int_equal(pcpmap_mapping_get_info(m, &info), 0);
	assert_int_equal(info.state, PCPMAP_STATE_NOT_SENT);
	assert_int_equal(info.internal_port, 7100);
	static const uint8_t zero[12];
	assert_memory_not_equal(info.nonce, zero, 12);

	struct pmd_ipc_msg msg;
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_CREATE);
	assert_int_equal(msg.req.ip_proto, 6);
	assert_int_equal(msg.req.internal_port, 7100);
	assert_int_equal(msg.req.suggested_port, 8100);
	assert_int_equal(msg.req.lifetime, 600);
	assert_string_equal(msg.req.description, "web");
	assert_true(pmd_ipc_has(&msg, PMD_A_NONCE));
	assert_memory_equal(msg.req.nonce, info.nonce, 12);
	assert_false(msg.persistent);
	assert_false(pmd_ipc_has(&msg, PMD_A_WAIT_MS));
	/* In flight: the deadline is the reply's watchdog, not "now". */
	int t = pcpmap_client_get_timeout(c);
	assert_true(t > 9000 && t <= 10000);

	/* The reply, the MAPPED event, and an event of someone else's mapping. */
	struct pmd_ipc_msg reply;
	mapping_msg(&reply, PMD_MSG_MAPPING, msg.seq, 7, PCPMAP_STATE_WAIT_RESP, 7100, 0, msg.req.nonce);
	assert_int_equal(fake_send(f.fd, &reply), 0);
	send_event(&f, PCPMAP_EVENT_MAPPED, 99, PCPMAP_STATE_MAPPED, 7300, 40099, NULL);
	send_event(&f, PCPMAP_EVENT_MAPPED, 7, PCPMAP_STATE_MAPPED, 7100, 40001, msg.req.nonce);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 1000), 1); /* the client's descriptor wakes the application */
	assert_int_equal(r.n, 0);
	assert_int_equal(pcpmap_client_process(c), 0);
	assert_int_equal(r.n, 1);
	assert_ptr_equal(r.evs[0].m, m);
	assert_int_equal(r.evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(r.evs[0].info.state, PCPMAP_STATE_MAPPED);
	assert_string_equal(r.evs[0].info.external_addr, EXT4);
	assert_int_equal(r.evs[0].info.external_port, 40001);
	assert_int_equal(r.evs[0].info.proto, PCPMAP_PROTO_PCP);
	assert_int_equal(r.evs[0].info.lifetime, 600);
	assert_string_equal(r.evs[0].info.server, "192.168.77.1:5351");
	assert_int_equal(pcpmap_mapping_get_info(m, &info), 0);
	uint64_t now = pcpmap_now_usec();
	assert_true(info.expires_usec > now + 590000000ull && info.expires_usec <= now + 600000000ull);
	assert_true(info.refresh_usec > now + 290000000ull && info.refresh_usec <= now + 300000000ull);
	assert_int_equal(pcpmap_client_get_timeout(c), -1);
	assert_int_equal(pcpmap_client_get_fd(c), fd);

	/* The daemon's engine moved it, then lost it. */
	send_event(&f, PCPMAP_EVENT_CHANGED, 7, PCPMAP_STATE_MAPPED, 7100, 40002, msg.req.nonce);
	send_event(&f, PCPMAP_EVENT_LOST, 7, PCPMAP_STATE_WAIT_RESP, 7100, 40002, msg.req.nonce);
	pump(c, &r, 3, 1000);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.evs[1].ev, PCPMAP_EVENT_CHANGED);
	assert_int_equal(r.evs[1].info.external_port, 40002);
	assert_int_equal(r.evs[2].ev, PCPMAP_EVENT_LOST);

	struct pcpmap_stats st;
	pcpmap_client_get_stats(c, &st);
	assert_int_equal(st.sent, 2);     /* SUBSCRIBE, CREATE */
	assert_int_equal(st.received, 6); /* OK, MAPPING, 4 EVENTs */
	assert_int_equal(pcpmap_client_announce(c, 1000, NULL, NULL), -EOPNOTSUPP);

	/* free: DELETE by id, no callback any more; flush waits for the daemon's OK. */
	pcpmap_mapping_free(m);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_DELETE);
	assert_int_equal(msg.id, 7);
	assert_int_equal(pcpmap_client_flush(c, 50), -ETIMEDOUT);
	send_event(&f, PCPMAP_EVENT_DELETED, 7, PCPMAP_STATE_DELETING, 7100, 40002, NULL);
	send_ok(f.fd, msg.seq, -1);
	assert_int_equal(pcpmap_client_flush(c, 1000), 0);
	assert_int_equal(r.n, 3);

	/* Freeing the client closes the connection (the daemon then deletes what is not persistent). */
	pcpmap_client_free(c);
	assert_int_equal(fake_recv(&f, &msg, 1000), -ECONNRESET);
	fake_close(&f);
}

static void test_refusal_and_free_before_reply(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	pcpmap_client *c;
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_DAEMON, &c), 0);
	struct pcpmap_request req;
	pcpmap_mapping *m;
	tcp_request(&req, 7200, &r);
	assert_int_equal(pcpmap_mapping_new(c, &req, &m), 0);
	struct pmd_ipc_msg msg, reply;
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	pmd_ipc_init(&reply, PMD_MSG_ERROR, msg.seq);
	reply.error = EDQUOT;
	pmd_ipc_set(&reply, PMD_A_ERRNO);
	snprintf(reply.message, sizeof(reply.message), "uid 1000 holds 3 mappings, the per-uid limit");
	pmd_ipc_set(&reply, PMD_A_MESSAGE);
	assert_int_equal(fake_send(f.fd, &reply), 0);
	pump(c, &r, 1, 1000);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(r.evs[0].info.state, PCPMAP_STATE_FAILED);
	assert_int_equal(r.evs[0].info.error, -EDQUOT);
	assert_non_null(strstr(r.evs[0].info.detail, "per-uid limit"));
	pcpmap_mapping_free(m); /* the daemon made nothing: nothing to delete */

	/* Freed before the daemon named it: the name, when it comes, is deleted at once. */
	tcp_request(&req, 7202, &r);
	assert_int_equal(pcpmap_mapping_new(c, &req, &m), 0);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_CREATE);
	pcpmap_mapping_free(m);
	assert_int_equal(fake_recv(&f, &reply, 100), -ETIMEDOUT);
	mapping_msg(&reply, PMD_MSG_MAPPING, msg.seq, 9, PCPMAP_STATE_WAIT_RESP, 7202, 0, msg.req.nonce);
	assert_int_equal(fake_send(f.fd, &reply), 0);
	send_event(&f, PCPMAP_EVENT_MAPPED, 9, PCPMAP_STATE_MAPPED, 7202, 40009, msg.req.nonce);
	pump(c, NULL, 0, 100);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_DELETE);
	assert_int_equal(msg.id, 9);
	assert_int_equal(r.n, 1);
	pcpmap_client_free(c);
	fake_close(&f);
}

/* The daemon goes away: LOST; the client reconnects on its own, asks again with the same nonce, and the
 * restored mapping reads MAPPED (same port) or CHANGED (another port). The descriptor never changes. */
static void test_lost_and_recreated(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	pcpmap_client *c;
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_AUTO, &c), 0);
	int fd = pcpmap_client_get_fd(c);
	pcpmap_mapping *m = mapped(&f, c, &r, 7400, 7, 40001, false);
	struct pcpmap_mapping_info before;
	pcpmap_mapping_get_info(m, &before);

	for (int round = 0; round < 2; round++) {
		uint16_t ext = round == 0 ? 40001 : 40002;
		size_t n0 = r.n;
		close(f.fd);
		f.fd = -1;
		pump(c, &r, n0 + 1, 1000);
		assert_int_equal(r.n, n0 + 1);
		assert_int_equal(r.evs[n0].ev, PCPMAP_EVENT_LOST);
		assert_int_equal(r.evs[n0].info.state, PCPMAP_STATE_NOT_SENT);
		assert_int_equal(r.evs[n0].info.error, -ECONNRESET);
		/* Backing off before reconnecting: a deadline, not a busy loop. */
		int t = pcpmap_client_get_timeout(c);
		assert_true(t > 0 && t <= 250 * (1 << round));
		/* Reconnection: SUBSCRIBE first, then the mapping again with its nonce. */
		for (int i = 0; i < 200 && f.fd < 0; i++) {
			pump(c, NULL, 0, 20);
			fake_accept(&f, 0);
		}
		assert_true(f.fd >= 0);
		struct pmd_ipc_msg msg, reply;
		assert_int_equal(fake_recv(&f, &msg, 1000), 0);
		assert_int_equal(msg.type, PMD_MSG_CREATE);
		assert_memory_equal(msg.req.nonce, before.nonce, 12);
		assert_int_equal(msg.req.internal_port, 7400);
		mapping_msg(&reply, PMD_MSG_MAPPING, msg.seq, (uint32_t)(8 + round), PCPMAP_STATE_WAIT_RESP,
			    7400, 0, msg.req.nonce);
		assert_int_equal(fake_send(f.fd, &reply), 0);
		send_event(&f, PCPMAP_EVENT_MAPPED, 8 + (uint32_t)round, PCPMAP_STATE_MAPPED, 7400, ext,
			   msg.req.nonce);
		pump(c, &r, n0 + 2, 1000);
		assert_int_equal(r.n, n0 + 2);
		assert_int_equal(r.evs[n0 + 1].ev, round == 0 ? PCPMAP_EVENT_MAPPED : PCPMAP_EVENT_CHANGED);
		assert_int_equal(r.evs[n0 + 1].info.external_port, ext);
		assert_int_equal(pcpmap_client_get_fd(c), fd);
	}
	/* The second reconnection answered, so the next drop backs off from the start again. */
	pcpmap_mapping_free(m);
	struct pmd_ipc_msg msg;
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_DELETE);
	assert_int_equal(msg.id, 9);
	pcpmap_client_free(c);
	fake_close(&f);
}

/* Persistent mappings: the flag goes to the daemon; after a reconnection the daemon's kept copy is taken
 * back by id (no second CREATE), one it no longer has is asked for again; abandon sends nothing. */
static void test_persistent_attach(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	pcpmap_client *c;
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_DAEMON, &c), 0);
	pcpmap_mapping *a = mapped(&f, c, &r, 7500, 5, 40005, true);
	pcpmap_mapping *b = mapped(&f, c, &r, 7502, 6, 40006, true);
	struct pcpmap_mapping_info ib;
	pcpmap_mapping_get_info(b, &ib);
	close(f.fd);
	f.fd = -1;
	pump(c, &r, 4, 1000);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.evs[2].ev, PCPMAP_EVENT_LOST);
	assert_int_equal(r.evs[3].ev, PCPMAP_EVENT_LOST);
	for (int i = 0; i < 200 && f.fd < 0; i++) {
		pump(c, NULL, 0, 20);
		fake_accept(&f, 0);
	}
	assert_true(f.fd >= 0);
	struct pmd_ipc_msg msg, reply;
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_LIST);
	assert_false(pmd_ipc_has(&msg, PMD_A_ID));
	/* The daemon kept mapping 5 (and holds 11, another program's); 6 is gone. */
	mapping_msg(&reply, PMD_MSG_MAPPING, msg.seq, 11, PCPMAP_STATE_MAPPED, 7900, 40011, NULL);
	assert_int_equal(fake_send(f.fd, &reply), 0);
	mapping_msg(&reply, PMD_MSG_MAPPING, msg.seq, 5, PCPMAP_STATE_MAPPED, 7500, 40005, NULL);
	reply.persistent = true;
	assert_int_equal(fake_send(f.fd, &reply), 0);
	send_ok(f.fd, msg.seq, 2);
	pump(c, &r, 5, 1000);
	assert_int_equal(r.n, 5);
	assert_ptr_equal(r.evs[4].m, a);
	assert_int_equal(r.evs[4].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(r.evs[4].info.external_port, 40005);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_CREATE);
	assert_true(msg.persistent);
	assert_int_equal(msg.req.internal_port, 7502);
	assert_memory_equal(msg.req.nonce, ib.nonce, 12);
	assert_int_equal(fake_recv(&f, &msg, 100), -ETIMEDOUT);

	/* abandon: the handle goes, the daemon keeps the mapping (nothing is sent). */
	pcpmap_mapping_abandon(a);
	assert_int_equal(fake_recv(&f, &msg, 100), -ETIMEDOUT);
	send_event(&f, PCPMAP_EVENT_LOST, 5, PCPMAP_STATE_WAIT_RESP, 7500, 40005, NULL);
	pump(c, NULL, 0, 100);
	assert_int_equal(r.n, 5);
	pcpmap_client_free(c);
	fake_close(&f);
}

struct unmap_script {
	struct fake_daemon *f;
	uint8_t nonce[12];
	int err;
	uint32_t deleted[2];
	struct pmd_ipc_msg create;
};

static int expect(struct fake_daemon *f, uint8_t type, struct pmd_ipc_msg *m)
{
	int r = fake_recv(f, m, 2000);
	if (r < 0)
		return r;
	return m->type == type ? 0 : -EPROTO;
}

/* LIST (one of ours, one with no nonce shown) -> DELETE; LIST (empty) -> CREATE -> MAPPED -> DELETE. */
static void *unmap_daemon(void *arg)
{
	struct unmap_script *u = arg;
	struct fake_daemon *f = u->f;
	struct pmd_ipc_msg m, reply;
	int r = expect(f, PMD_MSG_LIST, &m);
	if (r == 0) {
		mapping_msg(&reply, PMD_MSG_MAPPING, m.seq, 4, PCPMAP_STATE_MAPPED, 7700, 40004, NULL);
		fake_send(f->fd, &reply);
		mapping_msg(&reply, PMD_MSG_MAPPING, m.seq, 5, PCPMAP_STATE_MAPPED, 7700, 40005, u->nonce);
		fake_send(f->fd, &reply);
		pmd_ipc_init(&reply, PMD_MSG_OK, m.seq);
		fake_send(f->fd, &reply);
		r = expect(f, PMD_MSG_DELETE, &m);
	}
	if (r == 0) {
		u->deleted[0] = m.id;
		pmd_ipc_init(&reply, PMD_MSG_OK, m.seq);
		fake_send(f->fd, &reply);
		r = expect(f, PMD_MSG_LIST, &m);
	}
	if (r == 0) {
		pmd_ipc_init(&reply, PMD_MSG_OK, m.seq);
		fake_send(f->fd, &reply);
		r = expect(f, PMD_MSG_CREATE, &u->create);
	}
	if (r == 0) {
		mapping_msg(&reply, PMD_MSG_MAPPING, u->create.seq, 12, PCPMAP_STATE_MAPPED, 7800, 40012,
			    u->nonce);
		fake_send(f->fd, &reply);
		r = expect(f, PMD_MSG_DELETE, &m);
	}
	if (r == 0) {
		u->deleted[1] = m.id;
		pmd_ipc_init(&reply, PMD_MSG_OK, m.seq);
		fake_send(f->fd, &reply);
	}
	u->err = r;
	return NULL;
}

static void test_probe_and_sync_helpers(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	pcpmap_client *c;
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_DAEMON, &c), 0);

	assert_int_equal(pcpmap_client_probe(c, 2000, on_probe, &r), 0);
	assert_int_equal(pcpmap_client_probe(c, 2000, on_probe, &r), -EBUSY);
	struct pmd_ipc_msg msg, reply;
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_PROBE);
	assert_int_equal(msg.timeout_ms, 2000);
	int t = pcpmap_client_get_timeout(c);
	assert_true(t > 11000 && t <= 12000); /* the probe's time plus the watchdog's */
	pmd_ipc_init(&reply, PMD_MSG_PROBE_RESULT, msg.seq);
	snprintf(reply.gateway, sizeof(reply.gateway), "192.168.77.1:5351");
	pmd_ipc_set(&reply, PMD_A_GATEWAY);
	reply.proto = PCPMAP_PROTO_PCP;
	pmd_ipc_set(&reply, PMD_A_PROTO);
	snprintf(reply.external_addr, sizeof(reply.external_addr), EXT4);
	pmd_ipc_set(&reply, PMD_A_EXTERNAL_ADDR);
	reply.n_servers = 1;
	reply.servers[0].proto = PCPMAP_PROTO_PCP;
	reply.servers[0].version = 2;
	reply.servers[0].rtt_usec = 1500;
	snprintf(reply.servers[0].server, sizeof(reply.servers[0].server), "192.168.77.1:5351");
	assert_int_equal(fake_send(f.fd, &reply), 0);
	pump(c, NULL, 0, 200);
	assert_int_equal(r.probes, 1);
	assert_int_equal(r.probe.chosen, PCPMAP_PROTO_PCP);
	assert_string_equal(r.probe.external_addr, EXT4);
	assert_int_equal(r.probe.pcp.version, 2);
	assert_int_equal(r.probe.pcp.rtt_usec, 1500);
	assert_int_equal(r.probe.natpmp.proto, PCPMAP_PROTO_NONE);

	/* Blocking helpers: the answers wait in the socket already (requests are numbered in order), so the
	 * helpers must send, read and return on their own. */
	uint32_t seq = msg.seq;
	uint8_t nonce[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	mapping_msg(&reply, PMD_MSG_MAPPING, seq + 1, 3, PCPMAP_STATE_WAIT_RESP, 7600, 0, nonce);
	assert_int_equal(fake_send(f.fd, &reply), 0);
	send_event(&f, PCPMAP_EVENT_MAPPED, 3, PCPMAP_STATE_MAPPED, 7600, 40003, nonce);
	struct pcpmap_request req;
	pcpmap_mapping *m;
	struct pcpmap_mapping_info info;
	tcp_request(&req, 7600, &r);
	req.nonce = nonce;
	assert_int_equal(pcpmap_map_sync(c, &req, 2000, &m, &info), 0);
	assert_int_equal(info.state, PCPMAP_STATE_MAPPED);
	assert_int_equal(info.external_port, 40003);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_CREATE);
	assert_memory_equal(msg.req.nonce, nonce, 12);
	assert_int_equal(r.n, 0); /* map_sync's own wait took the MAPPED */
	/* From now on the caller's callback hears of the mapping. */
	send_event(&f, PCPMAP_EVENT_LOST, 3, PCPMAP_STATE_ERROR_WAIT_RESEND, 7600, 0, nonce);
	pump(c, &r, 1, 1000);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.evs[0].ev, PCPMAP_EVENT_LOST);
	assert_ptr_equal(r.evs[0].m, m);
	r.n = 0;

	/* probe_sync */
	pmd_ipc_init(&reply, PMD_MSG_PROBE_RESULT, seq + 2);
	reply.proto = PCPMAP_PROTO_NATPMP;
	pmd_ipc_set(&reply, PMD_A_PROTO);
	assert_int_equal(fake_send(f.fd, &reply), 0);
	struct pcpmap_probe_result pr;
	assert_int_equal(pcpmap_probe_sync(c, 1000, &pr), 0);
	assert_int_equal(pr.chosen, PCPMAP_PROTO_NATPMP);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_PROBE);

	/* unmap_sync asks in several steps: the daemon's side answers from a thread. */
	struct unmap_script us = { .f = &f };
	memcpy(us.nonce, nonce, 12);
	pthread_t thr;
	assert_int_equal(pthread_create(&thr, NULL, unmap_daemon, &us), 0);
	/* Held by the daemon: found by nonce in the LIST, deleted by id. */
	tcp_request(&req, 7700, NULL);
	req.nonce = nonce;
	int r1 = pcpmap_unmap_sync(c, &req, 2000, &info);
	struct pcpmap_mapping_info info1 = info;
	/* Not held: the daemon renews it with the nonce (waiting for the outcome), then deletes it. */
	tcp_request(&req, 7800, NULL);
	req.nonce = nonce;
	int r2 = pcpmap_unmap_sync(c, &req, 2000, &info);
	pthread_join(thr, NULL);
	assert_int_equal(us.err, 0);
	assert_int_equal(r1, 0);
	assert_int_equal(info1.state, PCPMAP_STATE_DELETED);
	assert_int_equal(info1.external_port, 40005);
	assert_int_equal(us.deleted[0], 5);
	assert_int_equal(r2, 0);
	assert_int_equal(us.create.req.internal_port, 7800);
	assert_memory_equal(us.create.req.nonce, nonce, 12);
	assert_true(pmd_ipc_has(&us.create, PMD_A_WAIT_MS));
	assert_true(us.create.wait_ms > 0 && us.create.wait_ms <= 2000);
	assert_int_equal(us.deleted[1], 12);

	/* A probe in flight when the daemon goes: its callback still runs, saying why. */
	assert_int_equal(pcpmap_client_probe(c, 1000, on_probe, &r), 0);
	close(f.fd);
	f.fd = -1;
	pump(c, NULL, 0, 200);
	assert_int_equal(r.probes, 2);
	assert_int_equal(r.probe.chosen, PCPMAP_PROTO_NONE);
	assert_int_equal(r.probe.pcp.error, -ECONNRESET);
	assert_int_equal(pcpmap_client_probe(c, 1000, on_probe, &r), -ENOTCONN);
	pcpmap_mapping_free(m);
	pcpmap_client_free(c);
	fake_close(&f);
}

/* One set of requests through both modes: each is accepted by both or refused by both, and what daemon mode
 * accepts reaches the daemon whole (allow_degrade and nonce2 included). */
#define N_SAME 12
static void same_request(int i, struct pcpmap_request *req, struct pcpmap_filter *filters,
			 const char *desc513, struct recorder *r)
{
	static const uint8_t nonce[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	static const uint8_t nonce2[12] = { 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	tcp_request(req, (uint16_t)(7600 + 2 * i), r);
	switch (i) {
	case 0: /* plain */
		break;
	case 1:
		req->allow_degrade = true;
		break;
	case 2: /* a pair taken over with both its nonces */
		req->port_pair = true;
		req->nonce = nonce;
		req->nonce2 = nonce2;
		break;
	case 3:
		req->description = desc513 + 1; /* 512 bytes: the most a description may have */
		break;
	case 4:
		req->description = desc513;
		break;
	case 5:
		req->internal_port = 0; /* MAP of all ports needs ip_proto 0 */
		break;
	case 6:
		req->kind = PCPMAP_KIND_PEER; /* without a peer */
		break;
	case 7:
		filters[0] =
		    (struct pcpmap_filter){ .peer_addr = "198.51.100.7", .prefix_len = 32, .peer_port = 80 };
		filters[1] = (struct pcpmap_filter){ .peer_addr = "198.51.100.0", .prefix_len = 24 };
		req->filters = filters;
		req->n_filters = 2;
		break;
	case 8:
		req->third_party = "192.168.77.20";
		break;
	case 9:
		req->suggested_addr = "not an address";
		break;
	case 10:
		req->nonce2 = nonce2; /* no pair: nothing to use it for */
		break;
	case 11:
		req->allow_degrade = true;
		req->port_pair = true;
		req->deadline_ms = 5000;
		break;
	}
}

static void test_same_requests_both_modes(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	struct pcpmap_filter filters[2];
	char longdesc[514];
	memset(longdesc, 'd', 513);
	longdesc[513] = '\0';
	pcpmap_client *ce, *cd;
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = "127.0.0.1"; /* the engine's first requests go to loopback, where nothing answers */
	assert_int_equal(pcpmap_client_new(&ce, &cfg), 0);
	assert_false(pcpmap_client_uses_daemon(ce));
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_DAEMON, &cd), 0);
	assert_true(pcpmap_client_uses_daemon(cd));
	int accepted = 0;
	for (int i = 0; i < N_SAME; i++) {
		struct pcpmap_request req;
		pcpmap_mapping *me = NULL, *md = NULL;
		same_request(i, &req, filters, longdesc, &r);
		int re = pcpmap_mapping_new(ce, &req, &me);
		same_request(i, &req, filters, longdesc, &r);
		int rd = pcpmap_mapping_new(cd, &req, &md);
		print_message("request %d: engine %d, daemon mode %d\n", i, re, rd);
		assert_int_equal(re < 0 ? re : 0, rd < 0 ? rd : 0);
		pcpmap_mapping_abandon(me);
		if (rd < 0)
			continue;
		accepted++;
		struct pmd_ipc_msg msg;
		assert_int_equal(fake_recv(&f, &msg, 1000), 0);
		assert_int_equal(msg.type, PMD_MSG_CREATE);
		struct pcpmap_request back;
		struct pcpmap_filter fb[PMD_IPC_MAX_FILTERS];
		pmd_conv_request_from_req(&msg.req, msg.req.nonce,
					  pmd_ipc_has(&msg, PMD_A_NONCE2) ? msg.nonce2 : NULL, &back, fb);
		assert_int_equal(back.internal_port, req.internal_port);
		assert_int_equal(back.allow_degrade, req.allow_degrade);
		assert_int_equal(back.port_pair, req.port_pair);
		assert_int_equal(back.deadline_ms, req.deadline_ms);
		assert_int_equal(back.n_filters, req.n_filters);
		if (req.description)
			assert_string_equal(back.description, req.description);
		if (req.third_party)
			assert_string_equal(back.third_party, req.third_party);
		if (req.nonce)
			assert_memory_equal(back.nonce, req.nonce, 12);
		if (req.nonce2 && req.port_pair) {
			assert_non_null(back.nonce2);
			assert_memory_equal(back.nonce2, req.nonce2, 12);
		} else {
			assert_null(back.nonce2);
		}
		pcpmap_mapping_abandon(md);
	}
	assert_true(accepted >= 7);
	pcpmap_client_free(cd);
	pcpmap_client_free(ce);
	fake_close(&f);
}

/* Daemon mode on an injected clock: the requests of a daemon that stopped reading queue up instead of blocking
 * the caller (the socket holds about ten), go out in order once it reads again, and only the injected clock
 * decides when an unanswered request means the daemon is stuck (10 s). */
#define N_QUEUED 300
static void test_never_blocks_fake_clock(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	struct fake_clock clk = { .now_us = 1000000000u };
	struct fake_rand rnd = { .unit = 0.5 };
	struct pm_env env;
	fake_env_init(&env, &clk, &rnd);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.mode = PCPMAP_MODE_DAEMON;
	cfg.max_mappings = 2 * N_QUEUED;
	pcpmap_client *c;
	assert_int_equal(fake_open(&f), 0);
	cfg.daemon_socket = f.path;
	assert_int_equal(pthread_create(&f.thr, NULL, accept_thread, &f), 0);
	assert_int_equal(pm_client_new_env(&c, &cfg, &env), 0);
	pthread_join(f.thr, NULL);
	assert_int_equal(f.thread_err, 0);
	assert_true(pcpmap_client_uses_daemon(c));

	/* The daemon reads nothing meanwhile: every call returns at once, nothing is dropped. */
	static pcpmap_mapping *m[N_QUEUED];
	char desc[513];
	memset(desc, 'd', 512);
	desc[512] = '\0';
	for (int i = 0; i < N_QUEUED; i++) {
		struct pcpmap_request req;
		tcp_request(&req, (uint16_t)(7000 + i), &r);
		req.description = desc; /* 512 bytes: the socket's buffer fills sooner */
		assert_int_equal(pcpmap_mapping_new(c, &req, &m[i]), 0);
	}
	assert_int_equal(pcpmap_client_process(c), 0);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(c, &st);
	print_message("sent at once: %llu of %d\n", (unsigned long long)st.sent, N_QUEUED + 1);
	assert_true(st.sent < N_QUEUED + 1); /* some wait in the queue */

	/* It reads again: every CREATE arrives, in order, on the same connection. */
	for (int i = 0; i < N_QUEUED; i++) {
		struct pmd_ipc_msg msg;
		int e = -ETIMEDOUT;
		for (int tries = 0; tries < 50 && e == -ETIMEDOUT; tries++) {
			assert_int_equal(pcpmap_client_process(c), 0);
			e = fake_recv(&f, &msg, 20);
		}
		assert_int_equal(e, 0);
		assert_int_equal(msg.type, PMD_MSG_CREATE);
		assert_int_equal(msg.req.internal_port, 7000 + i);
	}
	pcpmap_client_get_stats(c, &st);
	assert_int_equal(st.sent, N_QUEUED + 1); /* SUBSCRIBE and every CREATE */
	assert_int_equal(r.n, 0);

	/* Unanswered for 9 s of the injected clock: still connected. At 11 s: the daemon is stuck, the
	 * connection is dropped (and asked again later). */
	clk.now_us += 9000000u;
	assert_int_equal(pcpmap_client_process(c), 0);
	struct pmd_ipc_msg msg;
	assert_int_equal(fake_recv(&f, &msg, 50), -ETIMEDOUT);
	clk.now_us += 2000000u;
	assert_int_equal(pcpmap_client_process(c), 0);
	assert_int_equal(fake_recv(&f, &msg, 500), -ECONNRESET);

	for (int i = 0; i < N_QUEUED; i++)
		pcpmap_mapping_abandon(m[i]);
	pcpmap_client_free(c);
	fake_close(&f);
}

static void send_error(int fd, uint32_t seq, int err, const char *text)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_ERROR, seq);
	m.error = (uint32_t)err;
	pmd_ipc_set(&m, PMD_A_ERRNO);
	snprintf(m.message, sizeof(m.message), "%s", text);
	pmd_ipc_set(&m, PMD_A_MESSAGE);
	assert_int_equal(fake_send(fd, &m), 0);
}

/* pcpmap_mapping_delete() in daemon mode reports what the daemon reports: DELETED once the gateway confirmed;
 * FAILED (state DELETED) when it did not, after which the daemon keeps the mapping and it can be deleted
 * again; FAILED when the daemon itself refuses. */
static void test_mapping_delete(void **state)
{
	(void)state;
	struct fake_daemon f;
	struct recorder r = { 0 };
	pcpmap_client *c;
	struct pmd_ipc_msg msg;
	struct pcpmap_mapping_info info;
	assert_int_equal(fake_open(&f), 0);
	assert_int_equal(client_new(&f, PCPMAP_MODE_DAEMON, &c), 0);

	/* Confirmed. */
	pcpmap_mapping *a = mapped(&f, c, &r, 7300, 31, 17300, false);
	assert_int_equal(pcpmap_mapping_delete(a), 0);
	assert_int_equal(pcpmap_mapping_delete(a), -EALREADY);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_DELETE);
	assert_int_equal(msg.id, 31);
	pump(c, &r, r.n + 1, 100);
	assert_int_equal(r.n, 1); /* nothing until the daemon answers */
	send_event(&f, PCPMAP_EVENT_DELETED, 31, PCPMAP_STATE_DELETED, 7300, 17300, NULL);
	send_ok(f.fd, msg.seq, -1);
	pump(c, &r, 2, 1000);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.evs[1].ev, PCPMAP_EVENT_DELETED);
	assert_int_equal(pcpmap_mapping_get_info(a, &info), 0);
	assert_int_equal(info.state, PCPMAP_STATE_DELETED);
	assert_int_equal(pcpmap_mapping_delete(a), -EALREADY);
	pcpmap_mapping_free(a); /* nothing more to send */
	assert_int_equal(fake_recv(&f, &msg, 100), -ETIMEDOUT);

	/* Unanswered by the gateway: one FAILED, then the daemon's renewal, then a second delete. */
	pcpmap_mapping *b = mapped(&f, c, &r, 7302, 32, 17302, false);
	assert_int_equal(pcpmap_mapping_delete(b), 0);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_DELETE);
	struct pmd_ipc_msg ev;
	mapping_msg(&ev, PMD_MSG_EVENT, 0, 32, PCPMAP_STATE_DELETED, 7302, 17302, NULL);
	ev.event = PCPMAP_EVENT_FAILED;
	pmd_ipc_set(&ev, PMD_A_EVENT);
	ev.error = ETIMEDOUT;
	pmd_ipc_set(&ev, PMD_A_ERRNO);
	assert_int_equal(fake_send(f.fd, &ev), 0);
	send_error(f.fd, msg.seq, ETIMEDOUT, "the gateway did not delete mapping 32");
	pump(c, &r, 4, 1000);
	pump(c, NULL, 0, 50);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.evs[3].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(r.evs[3].info.state, PCPMAP_STATE_DELETED);
	assert_int_equal(r.evs[3].info.error, -ETIMEDOUT);
	send_event(&f, PCPMAP_EVENT_MAPPED, 32, PCPMAP_STATE_MAPPED, 7302, 17302, NULL);
	pump(c, NULL, 0, 50);
	assert_int_equal(pcpmap_mapping_get_info(b, &info), 0);
	assert_int_equal(info.state, PCPMAP_STATE_MAPPED);
	assert_int_equal(pcpmap_mapping_delete(b), 0);
	assert_int_equal(fake_recv(&f, &msg, 1000), 0);
	assert_int_equal(msg.type, PMD_MSG_DELETE);

	/* Refused by the daemon itself (it no longer holds it): FAILED with its reason. */
	send_error(f.fd, msg.seq, ENOENT, "no mapping 32");
	pump(c, &r, 5, 1000);
	assert_int_equal(r.n, 5);
	assert_int_equal(r.evs[4].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(r.evs[4].info.state, PCPMAP_STATE_DELETED);
	assert_int_equal(r.evs[4].info.error, -ENOENT);
	assert_non_null(strstr(r.evs[4].info.detail, "no mapping 32"));
	pcpmap_mapping_free(b);

	/* PEER cannot be deleted (RFC 6887 12), in either mode. */
	struct pcpmap_request req;
	pcpmap_mapping *p;
	tcp_request(&req, 7304, &r);
	req.kind = PCPMAP_KIND_PEER;
	req.peer_addr = "198.51.100.9";
	req.peer_port = 443;
	assert_int_equal(pcpmap_mapping_new(c, &req, &p), 0);
	assert_int_equal(pcpmap_mapping_delete(p), -EOPNOTSUPP);
	pcpmap_mapping_abandon(p);
	pcpmap_client_free(c);
	fake_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auto_falls_back_daemon_fails),
		cmocka_unit_test(test_refused_connection),
		cmocka_unit_test(test_create_event_info_delete),
		cmocka_unit_test(test_refusal_and_free_before_reply),
		cmocka_unit_test(test_lost_and_recreated),
		cmocka_unit_test(test_persistent_attach),
		cmocka_unit_test(test_probe_and_sync_helpers),
		cmocka_unit_test(test_same_requests_both_modes),
		cmocka_unit_test(test_never_blocks_fake_clock),
		cmocka_unit_test(test_mapping_delete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
