/* pcpmapd under load: holds N mappings (default 10000) in the daemon against a fake PCP server in this
 * process (a thread answering on 127.0.0.1), and prints what they cost: the time to create them, the
 * daemon's resident memory per mapping, its CPU per renewal (the server grants a short lifetime, so
 * renewals come every ~34 s per mapping, RFC 6887 11.2.1), and its event-loop wake-ups per minute when
 * idle (the server grants a long lifetime; the daemon's STATS counter). Runs pcpmapd as a child with a
 * temporary configuration, socket and state directory, and removes them on exit. Loopback only.
 *
 * usage: bench_daemon [-n N] [-d PCPMAPD] [--refresh-seconds S] [--idle-seconds S] [--short-lifetime S]
 *                     [--long-lifetime S] [--port-base P] [--log-level L] [--keep]
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "daemon/ipc_client.h"
#include "wire/pcp_wire.h"

#define EXT_ADDR         "203.0.113.1" /* TEST-NET-3: what the fake gateway hands out */
#define EPOCH_BASE       1000u
#define DUP_GAP_US       4000000u /* RFC 6887 11.2.1: renewals are >= 4 s apart; closer is a resend */
#define START_TIMEOUT_US 10000000u
#define STOP_TIMEOUT_US  10000000u
#define CTL_TIMEOUT_MS   60000
#define CREATE_TIMEOUT_S 1800 /* bound on creating and confirming every mapping */
#define MIN_WINDOW_S     1
#define MAX_WINDOW_S     3600
#define SOCKET_BUFFER    (8 << 20)
#define SOCKET_PATH_MAX  107 /* sun_path without its NUL */

/* ---- small helpers ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool daemon_alive(void);

/* Sleeps until the deadline in 50 ms steps, so a signal or a dead daemon ends the wait early. */
static int sleep_until(uint64_t deadline)
{
	for (;;) {
		if (interrupted)
			return -EINTR;
		if (!daemon_alive())
			return -ESRCH;
		uint64_t now = now_us();
		if (now >= deadline)
			return 0;
		uint64_t step = deadline - now > 50000u ? 50000u : deadline - now;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* ---- the fake PCP server ---- */

struct nonce_ent {
	bool used;
	bool deleted;
	uint8_t nonce[PCP_NONCE_LEN];
	uint32_t last_grant;
	uint64_t last_us;
};

struct fake {
	int fd;
	uint16_t port;
	pthread_t thread;
	bool running;
	uint64_t t0;
	uint32_t long_s; /* grants of this length are counted in n_long */
	atomic_uint grant_s;
	atomic_bool stop;
	struct nonce_ent *tab; /* owned by the thread */
	size_t cap;
	atomic_uint_fast64_t rx, bad, announces, creates, renewals, deletes, dups, other;
	atomic_uint_fast64_t n_long;           /* live nonces whose last grant is long_s */
	atomic_uint_fast64_t renew_gap_sum_ms; /* sum over renewals of the gap since the previous request */
	atomic_uint_fast64_t first_renewal_us;
	/* Delete answers held back this long (0: answered at once), to see how many the daemon has in flight. */
	unsigned delete_delay_ms;
	atomic_uint drop_deletes; /* the next this many delete requests get no answer (a lossy link) */
	struct held *held;        /* owned by the thread */
	size_t n_held, cap_held;
	atomic_uint_fast64_t max_held;     /* most delete answers held at once */
	atomic_uint_fast64_t deleted_once; /* distinct nonces deleted */
};

struct held {
	uint64_t due_us;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	size_t len;
	uint8_t buf[PCP_MAX_MSG];
};

static struct nonce_ent *lookup(struct fake *f, const uint8_t nonce[PCP_NONCE_LEN], bool *ret_new)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < PCP_NONCE_LEN; i++)
		h = (h ^ nonce[i]) * 1099511628211ull;
	for (size_t i = (size_t)h & (f->cap - 1), probes = 0; probes < f->cap;
	     i = (i + 1) & (f->cap - 1), probes++) {
		struct nonce_ent *e = &f->tab[i];
		if (!e->used) {
			e->used = true;
			memcpy(e->nonce, nonce, PCP_NONCE_LEN);
			*ret_new = true;
			return e;
		}
		if (!memcmp(e->nonce, nonce, PCP_NONCE_LEN)) {
			*ret_new = false;
			return e;
		}
	}
	return NULL;
}

static uint32_t fake_epoch(const struct fake *f)
{
	/* Advances with time as a server that keeps its state does (RFC 6887 8.5). */
	return EPOCH_BASE + (uint32_t)((now_us() - f->t0) / 1000000u);
}

static void fake_answer(struct fake *f, const uint8_t *buf, size_t len, const struct sockaddr_storage *peer,
			socklen_t peer_len)
{
	static struct pcp_msg req, resp; /* large (options): not on the thread's stack */
	uint8_t out[PCP_MAX_MSG];
	size_t out_len;
	if (pcp_decode(buf, len, NULL, &req) < 0 || req.response) {
		atomic_fetch_add(&f->bad, 1);
		return;
	}
	uint64_t now = now_us();
	if (req.opcode == PCP_OP_ANNOUNCE) {
		atomic_fetch_add(&f->announces, 1);
		memset(&resp, 0, sizeof(resp));
		resp.version = PCP_VERSION;
		resp.opcode = PCP_OP_ANNOUNCE;
		resp.response = true;
		resp.result = PCP_RES_SUCCESS;
		resp.epoch = fake_epoch(f);
	} else if (req.opcode == PCP_OP_MAP) {
		uint32_t grant = atomic_load(&f->grant_s);
		uint32_t life = req.lifetime < grant ? req.lifetime : grant;
		bool is_new;
		struct nonce_ent *e = lookup(f, req.nonce, &is_new);
		if (!e) {
			atomic_fetch_add(&f->bad, 1);
			return;
		}
		if (req.lifetime == 0) {
			unsigned drop = atomic_load(&f->drop_deletes);
			if (drop && atomic_compare_exchange_strong(&f->drop_deletes, &drop, drop - 1))
				return;
			atomic_fetch_add(&f->deletes, 1);
			if (!is_new && !e->deleted)
				atomic_fetch_add(&f->deleted_once, 1);
			if (!is_new && !e->deleted && e->last_grant == f->long_s)
				atomic_fetch_sub(&f->n_long, 1);
			e->deleted = true;
			e->last_grant = 0;
		} else {
			if (is_new || e->deleted) {
				atomic_fetch_add(&f->creates, 1);
			} else if (now - e->last_us < DUP_GAP_US) {
				atomic_fetch_add(&f->dups, 1);
			} else {
				atomic_fetch_add(&f->renewals, 1);
				atomic_fetch_add(&f->renew_gap_sum_ms, (now - e->last_us) / 1000u);
				uint_fast64_t zero = 0;
				atomic_compare_exchange_strong(&f->first_renewal_us, &zero, now);
			}
			bool was_long = !is_new && !e->deleted && e->last_grant == f->long_s;
			if (was_long && life != f->long_s)
				atomic_fetch_sub(&f->n_long, 1);
			else if (!was_long && life == f->long_s)
				atomic_fetch_add(&f->n_long, 1);
			e->deleted = false;
			e->last_grant = life;
		}
		e->last_us = now;
		resp = req;
		resp.response = true;
		resp.result = PCP_RES_SUCCESS;
		resp.lifetime = life;
		resp.epoch = fake_epoch(f);
		memset(&resp.client_addr, 0, sizeof(resp.client_addr));
		if (life) {
			resp.ext_port = req.ext_port ? req.ext_port : req.internal_port;
			pcp_addr_from_string(EXT_ADDR, &resp.ext_addr);
		}
	} else {
		atomic_fetch_add(&f->other, 1);
		return;
	}
	if (pcp_encode(&resp, NULL, out, sizeof(out), &out_len) < 0) {
		atomic_fetch_add(&f->bad, 1);
		return;
	}
	if (f->delete_delay_ms && req.opcode == PCP_OP_MAP && req.lifetime == 0 && f->n_held < f->cap_held) {
		struct held *h = &f->held[f->n_held++];
		h->due_us = now + (uint64_t)f->delete_delay_ms * 1000u;
		memcpy(&h->peer, peer, sizeof(*peer));
		h->peer_len = peer_len;
		h->len = out_len;
		memcpy(h->buf, out, out_len);
		if (f->n_held > atomic_load(&f->max_held))
			atomic_store(&f->max_held, f->n_held);
		return;
	}
	while (sendto(f->fd, out, out_len, 0, (const struct sockaddr *)peer, peer_len) < 0 && errno == EINTR)
		;
}

/* Sends the held delete answers that are due, in order. */
static void fake_release(struct fake *f)
{
	uint64_t now = now_us();
	size_t k = 0;
	while (k < f->n_held && f->held[k].due_us <= now) {
		struct held *h = &f->held[k++];
		while (sendto(f->fd, h->buf, h->len, 0, (const struct sockaddr *)&h->peer, h->peer_len) < 0 &&
		       errno == EINTR)
			;
	}
	memmove(f->held, f->held + k, (f->n_held - k) * sizeof(*f->held));
	f->n_held -= k;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t buf[PCP_MAX_MSG + 4];
	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		if (f->n_held)
			fake_release(f);
		if (poll(&p, 1, f->n_held ? 1 : 100) <= 0)
			continue;
		for (int i = 0; i < 256; i++) {
			struct sockaddr_storage peer;
			socklen_t pl = sizeof(peer);
			ssize_t n =
			    recvfrom(f->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer, &pl);
			if (n < 0)
				break;
			atomic_fetch_add(&f->rx, 1);
			fake_answer(f, buf, (size_t)n, &peer, pl);
		}
	}
	return NULL;
}

static int fake_start(struct fake *f, unsigned n, uint32_t short_s, uint32_t long_s, unsigned delete_delay_ms)
{
	memset(f, 0, sizeof(*f));
	f->delete_delay_ms = delete_delay_ms;
	if (delete_delay_ms) {
		f->cap_held = 2 * (size_t)n;
		f->held = calloc(f->cap_held, sizeof(*f->held));
		if (!f->held)
			return -ENOMEM;
	}
	f->fd = -1;
	f->long_s = long_s;
	atomic_store(&f->grant_s, short_s);
	f->cap = 1024;
	while (f->cap < 4 * (size_t)n)
		f->cap *= 2;
	f->tab = calloc(f->cap, sizeof(*f->tab));
	if (!f->tab)
		return -ENOMEM;
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f->fd < 0)
		return -errno;
	/* A burst of N requests (the daemon's shutdown) must not overflow the server's side; past rmem_max
	 * only root may go (SO_RCVBUFFORCE). */
	int sz = SOCKET_BUFFER;
	if (setsockopt(f->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	if (bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&sa, &sl) < 0)
		return -errno;
	f->port = ntohs(sa.sin_port);
	f->t0 = now_us();
	int r = pthread_create(&f->thread, NULL, fake_main, f);
	if (r)
		return -r;
	f->running = true;
	return 0;
}

static void fake_stop(struct fake *f)
{
	if (f->running) {
		atomic_store(&f->stop, true);
		pthread_join(f->thread, NULL);
		f->running = false;
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->tab);
	f->tab = NULL;
	free(f->held);
	f->held = NULL;
}

struct fake_counts {
	uint64_t rx, bad, announces, creates, renewals, deletes, dups, other, gap_sum_ms;
};

static void fake_snapshot(struct fake *f, struct fake_counts *s)
{
	s->rx = atomic_load(&f->rx);
	s->bad = atomic_load(&f->bad);
	s->announces = atomic_load(&f->announces);
	s->creates = atomic_load(&f->creates);
	s->renewals = atomic_load(&f->renewals);
	s->deletes = atomic_load(&f->deletes);
	s->dups = atomic_load(&f->dups);
	s->other = atomic_load(&f->other);
	s->gap_sum_ms = atomic_load(&f->renew_gap_sum_ms);
}

/* ---- the daemon under test ---- */

static pid_t daemon_pid = -1;
static int daemon_status;

static bool daemon_alive(void)
{
	if (daemon_pid <= 0)
		return false;
	pid_t r = waitpid(daemon_pid, &daemon_status, WNOHANG);
	if (r == daemon_pid) {
		daemon_pid = -1;
		return false;
	}
	return true;
}

static int read_proc_status(pid_t pid, long *ret_rss_kb, long *ret_hwm_kb)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return -errno;
	*ret_rss_kb = *ret_hwm_kb = -1;
	while (fgets(line, sizeof(line), fp)) {
		if (!strncmp(line, "VmRSS:", 6))
			*ret_rss_kb = strtol(line + 6, NULL, 10);
		else if (!strncmp(line, "VmHWM:", 6))
			*ret_hwm_kb = strtol(line + 6, NULL, 10);
	}
	fclose(fp);
	return *ret_rss_kb >= 0 ? 0 : -EIO;
}

/* utime + stime in microseconds (/proc/PID/stat fields 14 and 15, clock ticks). */
static int read_cpu_us(pid_t pid, uint64_t *ret)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	unsigned long long v[16] = { 0 };
	/* After the command: state (field 3), then fields 4..; utime is field 14, stime 15. */
	p += 2;
	char *save = NULL;
	int field = 3;
	for (char *tok = strtok_r(p, " ", &save); tok && field <= 15;
	     tok = strtok_r(NULL, " ", &save), field++)
		if (field >= 14)
			v[field - 14] = strtoull(tok, NULL, 10);
	if (field <= 15)
		return -EIO;
	long hz = sysconf(_SC_CLK_TCK);
	*ret = (v[0] + v[1]) * 1000000ull / (unsigned long long)(hz > 0 ? hz : 100);
	return 0;
}

/* Time on a CPU in nanoseconds from /proc/PID/schedstat (ns resolution; 0 when unavailable). */
static uint64_t read_sched_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return 0;
	if (fscanf(fp, "%llu", &ns) != 1)
		ns = 0;
	fclose(fp);
	return ns;
}

/* Host-wide UDP RcvbufErrors (/proc/net/snmp): datagrams dropped because a receive buffer was full. On a quiet
 * host during the bench, these are the daemon's (the fake server's buffer is large). UINT64_MAX unknown. */
static uint64_t read_udp_rcvbuf_errors(void)
{
	char hdr[512], val[512];
	uint64_t ret = UINT64_MAX;
	FILE *fp = fopen("/proc/net/snmp", "re");
	if (!fp)
		return ret;
	while (fgets(hdr, sizeof(hdr), fp)) {
		if (strncmp(hdr, "Udp:", 4) || !fgets(val, sizeof(val), fp))
			continue;
		char *hs = NULL, *vs = NULL;
		char *h = strtok_r(hdr, " \n", &hs), *v = strtok_r(val, " \n", &vs);
		for (; h && v; h = strtok_r(NULL, " \n", &hs), v = strtok_r(NULL, " \n", &vs))
			if (!strcmp(h, "RcvbufErrors"))
				ret = strtoull(v, NULL, 10);
		break;
	}
	fclose(fp);
	return ret;
}

struct cpu_mark {
	uint64_t t_us, cpu_us, sched_ns;
};

static void cpu_mark(pid_t pid, struct cpu_mark *m)
{
	m->t_us = now_us();
	if (read_cpu_us(pid, &m->cpu_us) < 0)
		m->cpu_us = 0;
	m->sched_ns = read_sched_ns(pid);
}

static int start_daemon(const char *exe, const char *conf, const char *log)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Dies with the bench, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl(exe, "pcpmapd", "-c", conf, (char *)NULL);
		_exit(127);
	}
	daemon_pid = pid;
	return 0;
}

static void stop_daemon(uint64_t *ret_ms)
{
	if (daemon_pid <= 0)
		return;
	uint64_t t0 = now_us();
	kill(daemon_pid, SIGTERM);
	while (daemon_alive() && now_us() - t0 < STOP_TIMEOUT_US) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 5000000 };
		nanosleep(&ts, NULL);
	}
	if (daemon_pid > 0) {
		fprintf(stderr, "bench_daemon: pcpmapd did not stop in %u s: killing it\n",
			STOP_TIMEOUT_US / 1000000u);
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, &daemon_status, 0);
		daemon_pid = -1;
	}
	if (ret_ms)
		*ret_ms = (now_us() - t0) / 1000u;
}

static void show_log_tail(const char *log)
{
	FILE *fp = fopen(log, "re");
	if (!fp)
		return;
	static char lines[20][512];
	unsigned n = 0;
	while (fgets(lines[n % 20], sizeof(lines[0]), fp))
		n++;
	fclose(fp);
	fprintf(stderr, "--- last lines of the daemon's log ---\n");
	for (unsigned i = n > 20 ? n - 20 : 0; i < n; i++)
		fputs(lines[i % 20], stderr);
}

/* Records in the daemon's state (snapshot and journal lines, removals not subtracted: after a clean stop
 * the journal is empty). @return their count, or -1. */
static long count_records(const char *state_dir)
{
	static const char *const names[] = { "mappings.state", "mappings.journal" };
	long n = 0;
	for (size_t i = 0; i < 2; i++) {
		char path[PATH_MAX + 32], line[8192];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, names[i]) >= sizeof(path))
			return -1;
		FILE *fp = fopen(path, "re");
		if (!fp) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		while (fgets(line, sizeof(line), fp))
			n += !strncmp(line, "mapping ", 8);
		fclose(fp);
	}
	return n;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* ---- the bench ---- */

struct opts {
	unsigned n;
	const char *daemon;
	unsigned refresh_s, idle_s;
	uint32_t short_s, long_s;
	unsigned port_base;
	const char *log_level;
	bool keep;
	bool shutdown_only;       /* create, then stop: no refresh or idle window */
	unsigned delete_delay_ms; /* the server holds delete answers back this long */
	unsigned check_window;    /* fail unless every delete is confirmed, at most this many in flight */
	unsigned drop_deletes;    /* the server ignores this many delete requests */
};

struct figures {
	uint64_t create_us, mapped_us, list_us;
	struct cpu_mark c_before, c_created;
	long rss_before, rss_after, hwm_after, rss_end;
	struct fake_counts at_mapped;
	/* refresh window */
	struct cpu_mark r0, r1;
	struct fake_counts f0, f1;
	struct pmd_ctl_stats rs0, rs1;
	/* idle window */
	struct cpu_mark i0, i1;
	struct fake_counts g0, g1;
	struct pmd_ctl_stats is0, is1;
	unsigned held_end;
	struct fake_counts final;
	uint64_t stop_ms;
	uint64_t udp_drops0, udp_drops_mapped, udp_drops_end;
};

static void request_for(const struct opts *o, unsigned i, struct pcpmap_request *req)
{
	unsigned span = 65536u - o->port_base;
	pcpmap_request_init(req, PCPMAP_KIND_MAP);
	req->ip_proto = i < span ? IPPROTO_TCP : IPPROTO_UDP;
	req->internal_port = (uint16_t)(o->port_base + i % span);
	req->protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
}

/* Counts the mappings the daemon holds in MAPPED or REFRESHING with the port the server granted. */
static int count_held(struct pmd_ctl *c, unsigned *ret_held, size_t *ret_total, uint64_t *ret_us)
{
	struct pmd_ctl_mapping *ms = NULL;
	size_t n = 0;
	uint64_t t0 = now_us();
	int r = pmd_ctl_list(c, &ms, &n);
	if (ret_us)
		*ret_us = now_us() - t0;
	if (r < 0)
		return r;
	unsigned held = 0;
	for (size_t i = 0; i < n; i++) {
		const struct pcpmap_mapping_info *in = &ms[i].info;
		if ((in->state == PCPMAP_STATE_MAPPED || in->state == PCPMAP_STATE_REFRESHING) &&
		    in->external_port == in->internal_port && !strcmp(in->external_addr, EXT_ADDR))
			held++;
	}
	free(ms);
	*ret_held = held;
	*ret_total = n;
	return 0;
}

static int create_all(const struct opts *o, struct pmd_ctl *c, struct fake *f, struct figures *fg)
{
	uint64_t t0 = now_us();
	for (unsigned i = 0; i < o->n; i++) {
		struct pcpmap_request req;
		struct pmd_ctl_mapping m;
		request_for(o, i, &req);
		int r = pmd_ctl_create(c, &req, 0, 0, &m);
		if (r < 0) {
			fprintf(stderr, "bench_daemon: CREATE %u (%s %u) failed: %s (%s)\n", i,
				req.ip_proto == IPPROTO_TCP ? "tcp" : "udp", req.internal_port, strerror(-r),
				pmd_ctl_error(c));
			return r;
		}
		if (interrupted)
			return -EINTR;
	}
	fg->create_us = now_us() - t0;
	/* Every request answered, then the daemon's own view: every mapping MAPPED with the granted port. */
	uint64_t limit = t0 + (uint64_t)CREATE_TIMEOUT_S * 1000000u;
	while (atomic_load(&f->creates) < o->n) {
		if (now_us() > limit) {
			fprintf(stderr, "bench_daemon: the server saw %" PRIu64 " of %u creations\n",
				(uint64_t)atomic_load(&f->creates), o->n);
			return -ETIMEDOUT;
		}
		int r = sleep_until(now_us() + 10000u);
		if (r < 0)
			return r;
	}
	for (;;) {
		unsigned held;
		size_t total;
		int r = count_held(c, &held, &total, &fg->list_us);
		if (r < 0) {
			fprintf(stderr, "bench_daemon: LIST failed: %s\n", strerror(-r));
			return r;
		}
		if (held == o->n && total == o->n)
			break;
		if (now_us() > limit) {
			fprintf(stderr, "bench_daemon: %u of %u mappings MAPPED (daemon lists %zu)\n", held,
				o->n, total);
			return -ETIMEDOUT;
		}
		r = sleep_until(now_us() + 20000u);
		if (r < 0)
			return r;
	}
	fg->mapped_us = now_us() - t0;
	return 0;
}

static int measure(const struct opts *o, struct pmd_ctl *c, struct fake *f, struct figures *fg)
{
	int r;
	pid_t pid = daemon_pid;
	long hwm;
	/* Let the daemon settle after its start, then the baseline. */
	if ((r = sleep_until(now_us() + 200000u)) < 0)
		return r;
	if ((r = read_proc_status(pid, &fg->rss_before, &hwm)) < 0)
		return r;
	cpu_mark(pid, &fg->c_before);
	fg->udp_drops0 = read_udp_rcvbuf_errors();
	if ((r = create_all(o, c, f, fg)) < 0)
		return r;
	cpu_mark(pid, &fg->c_created);
	fake_snapshot(f, &fg->at_mapped);
	fg->udp_drops_mapped = read_udp_rcvbuf_errors();
	if ((r = read_proc_status(pid, &fg->rss_after, &fg->hwm_after)) < 0)
		return r;
	fprintf(stderr, "bench_daemon: %u mappings held after %.1f s; refresh window of %u s next\n", o->n,
		(double)fg->mapped_us / 1e6, o->refresh_s);

	/* (2) Renewals under a short lifetime: the window opens once renewals flow. */
	uint64_t limit = now_us() + (uint64_t)o->short_s * 1000000u;
	while (!atomic_load(&f->first_renewal_us)) {
		if (now_us() > limit) {
			fprintf(stderr, "bench_daemon: no renewal within the %u s lifetime\n", o->short_s);
			return -ETIMEDOUT;
		}
		if ((r = sleep_until(now_us() + 50000u)) < 0)
			return r;
	}
	if ((r = pmd_ctl_stats(c, &fg->rs0)) < 0)
		return r;
	cpu_mark(pid, &fg->r0);
	fake_snapshot(f, &fg->f0);
	if ((r = sleep_until(fg->r0.t_us + (uint64_t)o->refresh_s * 1000000u)) < 0)
		return r;
	cpu_mark(pid, &fg->r1);
	fake_snapshot(f, &fg->f1);
	if ((r = pmd_ctl_stats(c, &fg->rs1)) < 0)
		return r;

	/* (3) Idle: the server now grants the long lifetime; once every mapping renewed onto it, nothing is
	 * due for half of it. */
	atomic_store(&f->grant_s, o->long_s);
	fprintf(stderr, "bench_daemon: switching the grant to %u s; waiting for every mapping to renew\n",
		o->long_s);
	limit = now_us() + ((uint64_t)o->short_s + 30u) * 1000000u;
	while (atomic_load(&f->n_long) < o->n) {
		if (now_us() > limit) {
			fprintf(stderr,
				"bench_daemon: %" PRIu64 " of %u mappings renewed onto the long lifetime\n",
				(uint64_t)atomic_load(&f->n_long), o->n);
			return -ETIMEDOUT;
		}
		if ((r = sleep_until(now_us() + 50000u)) < 0)
			return r;
	}
	/* The last answers are processed within milliseconds; give it a second. */
	if ((r = sleep_until(now_us() + 1000000u)) < 0)
		return r;
	fprintf(stderr, "bench_daemon: idle window of %u s\n", o->idle_s);
	if ((r = pmd_ctl_stats(c, &fg->is0)) < 0)
		return r;
	cpu_mark(pid, &fg->i0);
	fake_snapshot(f, &fg->g0);
	if ((r = sleep_until(fg->i0.t_us + (uint64_t)o->idle_s * 1000000u)) < 0)
		return r;
	cpu_mark(pid, &fg->i1);
	fake_snapshot(f, &fg->g1);
	if ((r = pmd_ctl_stats(c, &fg->is1)) < 0)
		return r;

	/* Still all there? */
	size_t total;
	if ((r = count_held(c, &fg->held_end, &total, NULL)) < 0)
		return r;
	if ((r = read_proc_status(pid, &fg->rss_end, &hwm)) < 0)
		return r;
	fg->hwm_after = hwm > fg->hwm_after ? hwm : fg->hwm_after;
	fg->udp_drops_end = read_udp_rcvbuf_errors();
	return 0;
}

static double per(double x, double n)
{
	return n > 0 ? x / n : 0;
}

static long long diff_or_minus(uint64_t a, uint64_t b)
{
	return a == UINT64_MAX || b == UINT64_MAX ? -1 : (long long)(b - a);
}

static void print_figures(const struct opts *o, const struct fake *f, const struct figures *fg)
{
	const double n = o->n;
	printf("\npcpmapd holding %u mappings (fake PCP server 127.0.0.1:%u, grants %u s then %u s)\n", o->n,
	       f->port, o->short_s, o->long_s);
	printf("  %-40s %s\n", "figure", "value");
	printf("  %-40s %.2f s (%.0f us per CREATE, blocking calls)\n", "create", fg->create_us / 1e6,
	       per((double)fg->create_us, n));
	printf("  %-40s %.2f s\n", "until all MAPPED (LIST confirms)", fg->mapped_us / 1e6);
	printf("  %-40s %.0f us per mapping (%.2f s)\n", "daemon CPU while creating",
	       per((double)(fg->c_created.cpu_us - fg->c_before.cpu_us), n),
	       (double)(fg->c_created.cpu_us - fg->c_before.cpu_us) / 1e6);
	printf("  %-40s %.1f ms\n", "LIST of every mapping", fg->list_us / 1e3);
	printf("  %-40s %ld kB before, %ld kB after, %ld kB peak, %ld kB at the end\n", "daemon VmRSS",
	       fg->rss_before, fg->rss_after, fg->hwm_after, fg->rss_end);
	printf("  %-40s %.0f bytes\n", "memory per mapping (VmRSS delta / N)",
	       per((double)(fg->rss_after - fg->rss_before) * 1024.0, n));
	printf("  %-40s %" PRIu64 " creations, %" PRIu64 " duplicates, %" PRIu64 " announces, %" PRIu64
	       " renewals (overlapping), %" PRIu64 " malformed\n",
	       "server requests until all MAPPED", fg->at_mapped.creates, fg->at_mapped.dups,
	       fg->at_mapped.announces, fg->at_mapped.renewals, fg->at_mapped.bad);

	uint64_t ren = fg->f1.renewals - fg->f0.renewals;
	uint64_t rcpu = fg->r1.cpu_us - fg->r0.cpu_us;
	uint64_t rsched = fg->r1.sched_ns - fg->r0.sched_ns;
	double rwin = (double)(fg->r1.t_us - fg->r0.t_us) / 1e6;
	printf("  %-40s %" PRIu64 " renewals in %.1f s (mean gap %.1f s, %" PRIu64 " duplicates)\n",
	       "refresh window", ren, rwin,
	       per((double)(fg->f1.gap_sum_ms - fg->f0.gap_sum_ms) / 1e3, (double)ren),
	       fg->f1.dups - fg->f0.dups);
	printf("  %-40s %.1f us (utime+stime %.2f s; schedstat %.1f us)\n", "daemon CPU per renewal",
	       per((double)rcpu, (double)ren), rcpu / 1e6, per((double)rsched / 1e3, (double)ren));
	printf("  %-40s %.1f per renewal (%" PRIu64 " in the window)\n", "wake-ups while renewing",
	       per((double)(fg->rs1.wakeups - fg->rs0.wakeups - 1), (double)ren),
	       fg->rs1.wakeups - fg->rs0.wakeups - 1);

	double iwin = (double)(fg->i1.t_us - fg->i0.t_us) / 1e6;
	uint64_t w = fg->is1.wakeups - fg->is0.wakeups - 1; /* the second STATS woke it once */
	uint64_t wt = fg->is1.timer_wakeups - fg->is0.timer_wakeups;
	uint64_t we = fg->is1.engine_wakeups - fg->is0.engine_wakeups;
	printf("  %-40s %.2f (%" PRIu64 " in %.1f s: %" PRIu64 " timer, %" PRIu64 " engine)\n",
	       "idle wake-ups per minute", per((double)w * 60.0, iwin), w, iwin, wt, we);
	printf("  %-40s %.1f ms per minute (schedstat %.3f ms); %" PRIu64 " server requests\n", "idle CPU",
	       per((double)(fg->i1.cpu_us - fg->i0.cpu_us) / 1e3 * 60.0, iwin),
	       per((double)(fg->i1.sched_ns - fg->i0.sched_ns) / 1e6 * 60.0, iwin), fg->g1.rx - fg->g0.rx);
	printf("  %-40s %lld while creating, %lld after (-1: unknown)\n",
	       "UDP receive-buffer drops (host-wide)", diff_or_minus(fg->udp_drops0, fg->udp_drops_mapped),
	       diff_or_minus(fg->udp_drops_mapped, fg->udp_drops_end));
	printf("  %-40s %u of %u MAPPED; %u connections, %u mappings (STATS)\n", "at the end", fg->held_end,
	       o->n, fg->is1.connections, fg->is1.mappings);
	printf("  %-40s %" PRIu64 " requests: %" PRIu64 " creations, %" PRIu64 " renewals, %" PRIu64
	       " duplicates, %" PRIu64 " deletes, %" PRIu64 " announces\n",
	       "server totals before shutdown", fg->final.rx, fg->final.creates, fg->final.renewals,
	       fg->final.dups, fg->final.deletes, fg->final.announces);
}

static void usage(FILE *fp)
{
	fprintf(
	    fp,
	    "usage: bench_daemon [-n N] [-d PCPMAPD] [--refresh-seconds S] [--idle-seconds S]\n"
	    "                    [--short-lifetime S] [--long-lifetime S] [--port-base P] [--log-level L] "
	    "[--keep]\n"
	    "                    [--shutdown-only] [--delete-delay-ms D] [--check-shutdown W] "
	    "[--drop-deletes K]\n"
	    "  -n, --mappings N        mappings to hold (default 10000, at most 65536)\n"
	    "  -d, --daemon PATH       pcpmapd (default: ../daemon/pcpmapd next to this program)\n"
	    "  --refresh-seconds S     CPU-per-renewal window (default 60)\n"
	    "  --idle-seconds S        idle wake-up window (default 60; the figure is scaled to a minute)\n"
	    "  --short-lifetime S      lifetime granted first (default 60: renewals every ~34 s)\n"
	    "  --long-lifetime S       lifetime granted for the idle window (default 7200)\n"
	    "  --port-base P           first internal port (default 20000; TCP up to 65535, then UDP)\n"
	    "  --log-level L           the daemon's log_level (default info)\n"
	    "  --keep                  keep the temporary directory (configuration, log, state)\n"
	    "  --shutdown-only         create the mappings, then stop the daemon (no windows)\n"
	    "  --delete-delay-ms D     the server answers deletes D ms late (shows deletes in flight)\n"
	    "  --check-shutdown W      exit 1 unless every delete is answered, with at most W in flight,\n"
	    "                          and the daemon's state keeps no record of them (with --drop-deletes:\n"
	    "                          keeps a record of at most W per dropped delete, and of some)\n"
	    "  --drop-deletes K        the server ignores the first K delete requests (a lossy link)\n");
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *ret)
{
	char *e;
	errno = 0;
	unsigned long v = strtoul(s, &e, 10);
	if (errno || *e || e == s || v < lo || v > hi)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o, char *exe_buf, size_t exe_cap)
{
	static const struct option lo[] = {
		{ "mappings", required_argument, NULL, 'n' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "refresh-seconds", required_argument, NULL, 'R' },
		{ "idle-seconds", required_argument, NULL, 'I' },
		{ "short-lifetime", required_argument, NULL, 'S' },
		{ "long-lifetime", required_argument, NULL, 'L' },
		{ "port-base", required_argument, NULL, 'P' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "keep", no_argument, NULL, 'k' },
		{ "shutdown-only", no_argument, NULL, 'O' },
		{ "delete-delay-ms", required_argument, NULL, 'D' },
		{ "check-shutdown", required_argument, NULL, 'W' },
		{ "drop-deletes", required_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct opts){ .n = 10000,
			    .refresh_s = 60,
			    .idle_s = 60,
			    .short_s = 60,
			    .long_s = 7200,
			    .port_base = 20000,
			    .log_level = "info" };
	int ch, bad = 0;
	unsigned v;
	while ((ch = getopt_long(argc, argv, "n:d:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'n':
			bad |= parse_uint(optarg, 1, 65536, &o->n);
			break;
		case 'd':
			o->daemon = optarg;
			break;
		case 'R':
			bad |= parse_uint(optarg, MIN_WINDOW_S, MAX_WINDOW_S, &o->refresh_s);
			break;
		case 'I':
			bad |= parse_uint(optarg, MIN_WINDOW_S, MAX_WINDOW_S, &o->idle_s);
			break;
		case 'S':
			bad |= parse_uint(optarg, 8, 3600, &v);
			o->short_s = v;
			break;
		case 'L':
			bad |= parse_uint(optarg, 600, 86400, &v);
			o->long_s = v;
			break;
		case 'P':
			bad |= parse_uint(optarg, 1024, 65535, &o->port_base);
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 'k':
			o->keep = true;
			break;
		case 'O':
			o->shutdown_only = true;
			break;
		case 'D':
			bad |= parse_uint(optarg, 1, 1000, &o->delete_delay_ms);
			break;
		case 'W':
			bad |= parse_uint(optarg, 1, 65536, &o->check_window);
			break;
		case 'X':
			bad |= parse_uint(optarg, 1, 65536, &o->drop_deletes);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (bad || optind != argc || o->long_s <= o->short_s || o->n > 2u * (65536u - o->port_base))
		return -EINVAL;
	if (!o->daemon) {
		/* The build tree: bench/bench_daemon next to daemon/pcpmapd. */
		char self[PATH_MAX];
		ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (len <= 0)
			return -ENOENT;
		self[len] = '\0';
		char *dir = dirname(dirname(self));
		if ((size_t)snprintf(exe_buf, exe_cap, "%s/daemon/pcpmapd", dir) >= exe_cap)
			return -ENAMETOOLONG;
		o->daemon = exe_buf;
	}
	if (access(o->daemon, X_OK) < 0) {
		fprintf(stderr, "bench_daemon: %s: %s (give the daemon with -d)\n", o->daemon,
			strerror(errno));
		return -ENOENT;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char exe[PATH_MAX];
	struct opts o;
	if (parse_opts(argc, argv, &o, exe, sizeof(exe)) < 0) {
		usage(stderr);
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = 1, r;
	struct fake f;
	struct pmd_ctl *c = NULL;
	static struct figures fg;
	char dir[PATH_MAX], conf[PATH_MAX + 32], log[PATH_MAX + 32], sock[PATH_MAX + 32],
	    state[PATH_MAX + 32];
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/pcpmapd-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	memset(&f, 0, sizeof(f));
	f.fd = -1;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench_daemon: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(conf, sizeof(conf), "%s/pcpmapd.conf", dir);
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	if (strlen(sock) > SOCKET_PATH_MAX) {
		fprintf(stderr, "bench_daemon: socket path %s too long (set TMPDIR shorter)\n", sock);
		goto out;
	}
	if ((r = fake_start(&f, o.n, o.short_s, o.long_s, o.delete_delay_ms)) == 0)
		atomic_store(&f.drop_deletes, o.drop_deletes);
	if (r < 0) {
		fprintf(stderr, "bench_daemon: fake server: %s\n", strerror(-r));
		goto out;
	}
	FILE *cf = fopen(conf, "we");
	if (!cf) {
		fprintf(stderr, "bench_daemon: %s: %s\n", conf, strerror(errno));
		goto out;
	}
	fprintf(cf,
		"# written by bench_daemon\n"
		"server = 127.0.0.1:%u\n"
		"protocols = pcp\n"
		"announce_listener = no\n"
		"netlink_monitor = no\n"
		"remap_interval_ms = 50\n"
		"max_mappings = %u\n"
		"max_mappings_per_uid = %u\n"
		"max_connections = 16\n"
		"max_connections_per_uid = 16\n"
		"default_lifetime = %u\n"
		"max_lifetime = 86400\n"
		"user_min_port = 1024\n"
		"log_level = %s\n"
		"socket = %s\n"
		"state_dir = %s\n",
		f.port, o.n, o.n, o.long_s, o.log_level, sock, state);
	if (fclose(cf) != 0) {
		fprintf(stderr, "bench_daemon: writing %s failed\n", conf);
		goto out;
	}
	if ((r = start_daemon(o.daemon, conf, log)) < 0) {
		fprintf(stderr, "bench_daemon: cannot start %s: %s\n", o.daemon, strerror(-r));
		goto out;
	}
	uint64_t t0 = now_us();
	while ((r = pmd_ctl_connect(sock, &c)) < 0) {
		if (!daemon_alive() || interrupted || now_us() - t0 > START_TIMEOUT_US) {
			fprintf(stderr, "bench_daemon: pcpmapd did not come up on %s: %s\n", sock,
				strerror(-r));
			show_log_tail(log);
			goto out;
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 10000000 };
		nanosleep(&ts, NULL);
	}
	pmd_ctl_set_timeout(c, CTL_TIMEOUT_MS);
	fprintf(stderr, "bench_daemon: pcpmapd %d up on %s (server 127.0.0.1:%u, %s); creating %u mappings\n",
		(int)daemon_pid, sock, f.port, dir, o.n);
	if (o.shutdown_only) {
		r = sleep_until(now_us() + 200000u);
		if (r == 0)
			r = create_all(&o, c, &f, &fg);
		if (r == 0)
			fprintf(stderr, "bench_daemon: %u mappings held after %.1f s; stopping the daemon\n",
				o.n, (double)fg.mapped_us / 1e6);
	} else {
		r = measure(&o, c, &f, &fg);
	}
	if (r < 0) {
		fprintf(stderr, "bench_daemon: %s\n",
			r == -ESRCH   ? "pcpmapd died"
			: r == -EINTR ? "interrupted"
				      : strerror(-r));
		if (!daemon_alive() && WIFSIGNALED(daemon_status))
			fprintf(stderr, "bench_daemon: pcpmapd killed by signal %d\n",
				WTERMSIG(daemon_status));
		show_log_tail(log);
		goto out;
	}
	fake_snapshot(&f, &fg.final);
	if (o.shutdown_only) {
		printf("\npcpmapd holding %u mappings (fake PCP server 127.0.0.1:%u, delete answers %u ms "
		       "late)\n",
		       o.n, f.port, o.delete_delay_ms);
		printf("  %-40s %.2f s (%.0f us per CREATE, blocking calls)\n", "create", fg.create_us / 1e6,
		       (double)fg.create_us / o.n);
		fg.held_end = o.n;
	} else {
		print_figures(&o, &f, &fg);
	}
	if (fg.final.dups || fg.final.bad)
		fprintf(stderr,
			"bench_daemon: warning: the server saw %" PRIu64 " duplicate and %" PRIu64
			" malformed requests\n",
			fg.final.dups, fg.final.bad);
	/* Figures of a daemon that lost mappings on the way are not figures of N mappings. */
	rc = fg.held_end == o.n ? 0 : 1;
	if (rc)
		fprintf(stderr, "bench_daemon: only %u of %u mappings were still MAPPED at the end\n",
			fg.held_end, o.n);
out:
	if (daemon_pid > 0) {
		struct fake_counts before, after;
		fake_snapshot(&f, &before);
		uint64_t drops = read_udp_rcvbuf_errors();
		stop_daemon(&fg.stop_ms);
		fake_snapshot(&f, &after);
		long left = count_records(state);
		if (fg.final.rx) {
			printf("  %-40s %" PRIu64 " ms, %" PRIu64
			       " deletes answered, %lld answers dropped (UDP "
			       "receive buffer), exit status %d\n",
			       "shutdown (SIGTERM)", fg.stop_ms, after.deletes - before.deletes,
			       diff_or_minus(drops, read_udp_rcvbuf_errors()),
			       WIFEXITED(daemon_status) ? WEXITSTATUS(daemon_status) : -1);
			printf("  %-40s %" PRIu64
			       " of %u mappings deleted; %ld record%s left for the next start"
			       "%s\n",
			       "shutdown: confirmed", (uint64_t)atomic_load(&f.deleted_once), o.n, left,
			       left == 1 ? "" : "s", left < 0 ? " (state unreadable)" : "");
			if (o.delete_delay_ms)
				printf("  %-40s %" PRIu64 "\n", "shutdown: most deletes in flight",
				       (uint64_t)atomic_load(&f.max_held));
		}
		/* A window with a lost answer is not confirmed: its records stay, and only its records. */
		bool left_ok = o.drop_deletes
				   ? left > 0 && left <= (long)o.drop_deletes * (long)o.check_window
				   : left == 0;
		if (o.check_window && (atomic_load(&f.deleted_once) != o.n || !left_ok ||
				       (o.delete_delay_ms && atomic_load(&f.max_held) > o.check_window) ||
				       !WIFEXITED(daemon_status) || WEXITSTATUS(daemon_status) != 0)) {
			fprintf(stderr,
				"bench_daemon: shutdown check failed: %" PRIu64
				" of %u deleted, %ld records left, "
				"%" PRIu64 " deletes in flight at most (window %u)\n",
				(uint64_t)atomic_load(&f.deleted_once), o.n, left,
				(uint64_t)atomic_load(&f.max_held), o.check_window);
			show_log_tail(log);
			rc = 1;
		}
	}
	pmd_ctl_close(c);
	fake_stop(&f);
	if (o.keep)
		fprintf(stderr, "bench_daemon: kept %s\n", dir);
	else
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
