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
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
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

#include "daemon/daemon.h"

#ifndef PCPMAPD_DEFAULT_CONFIG
#define PCPMAPD_DEFAULT_CONFIG "/etc/pcpmap/pcpmapd.conf"
#endif
#define DEFAULT_SOCKET_DIR "/run/pcpmapd"
#define SOCKET_NAME        "pcpmapd.sock"
#define DEFAULT_STATE_DIR  "/var/lib/pcpmapd"

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_CONFIG = 2,
};

static struct daemon D;
static int log_level = 6;

/* ---- logging: stderr with journald level prefixes ---- */

void logm(int level, const char *fmt, ...)
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
	/* The gateway cache (warm starts) lives with the rest of the daemon's state. */
	cc->cache_dir = d->state_dir[0] ? d->state_dir : NULL;
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
	persist(d);
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
	engine_shutdown(d);
	free(d->parked);
	engine_free(d);
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
#ifdef __GLIBC__
	/* Fixed thresholds: glibc raises them to the size of the largest freed mmap'd block (a LIST reply or a
	 * snapshot of 10,000 mappings: megabytes), and from then on keeps up to twice that much freed heap
	 * resident for good (measured: 180 bytes per held mapping at 10,000). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 512 * 1024);
#endif
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
	int r = engine_init(d);
	if (r < 0) {
		logm(3, "cannot start: %s", strerror(-r));
		return EXIT_FAIL;
	}
	r = pcpmap_client_new(&d->client, &cc);
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
