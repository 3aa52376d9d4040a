/* SPDX-License-Identifier: MIT */
/* pcpmapd control side: the listening socket, SO_PEERCRED, message framing, per-connection output queues
 * and the dispatch of requests to the engine (doc/IPC.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "net/ipc_sock.h"

/* ---- connections: output ---- */

void conn_kill(struct conn *c, const char *why)
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

void conn_send(struct daemon *d, struct conn *c, const uint8_t *buf, size_t len)
{
	if (c->dead)
		return;
	if (!c->out_head) {
		int r = pm_ipc_send(c->fd, buf, len);
		if (r == 0)
			return;
		if (r != -EAGAIN) {
			conn_kill(c, r == -ECONNRESET ? NULL : "send failed");
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

void conn_flush(struct daemon *d, struct conn *c)
{
	while (c->out_head && !c->dead) {
		struct outmsg *o = c->out_head;
		int r = pm_ipc_send(c->fd, o->buf, o->len);
		if (r == -EAGAIN)
			return;
		if (r < 0) {
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

void send_msg(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *m)
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

void reply_error(struct daemon *d, struct conn *c, uint32_t seq, int err, const char *fmt, ...)
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

void reply_ok(struct daemon *d, struct conn *c, uint32_t seq)
{
	struct pmd_ipc_msg m;
	pmd_ipc_init(&m, PMD_MSG_OK, seq);
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

void conn_read(struct daemon *d, struct conn *c)
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

void conn_close(struct daemon *d, struct conn *c)
{
	epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	engine_conn_closed(d, c);
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

void do_accept(struct daemon *d)
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
int safe_dir(const char *what, const char *path, mode_t mode)
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

int open_listener(struct daemon *d)
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
