/*
 * An application of the public API for the daemon-mode interop cases (cases-daemon-mode.sh): it maps ports
 * with pcpmap_mapping_new() in the mode it is told, through pcpmapd when that is where the client went.
 *
 * usage: daemon_mode_app [-m auto|daemon|engine] [-s SOCKET] [-p] [-k] [-H] [-t MS] tcp|udp PORT...
 *   -p  persistent mappings        -k  abandon them at exit (pcpmap_mapping_abandon) instead of freeing
 *   -H  hold: keep running, printing events, until SIGTERM or SIGINT
 *   -t  how long to wait for every mapping (default 10000 ms)
 * Prints "mode=daemon" or "mode=engine", one "event=NAME port=N ext=ADDR:PORT proto=P state=S error=E" line
 * per callback, "mapped" once every mapping is MAPPED, and "done" after freeing everything.
 * Exit: 0 ok, 2 usage, 3 the client could not be created, 4 a mapping failed or timed out.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#define MAX_PORTS 8

static volatile sig_atomic_t stop;
static unsigned n_mapped, n_failed;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_log(void *ud, enum pcpmap_log_level level, const char *msg)
{
	(void)ud;
	fprintf(stderr, "<%d>%s\n", (int)level, msg);
}

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	bool *mapped = ud;
	(void)m;
	printf("event=%s port=%u ext=%s:%u proto=%s state=%s error=%s\n", pcpmap_event_name(ev),
	       info->internal_port, info->external_addr, info->external_port, pcpmap_proto_name(info->proto),
	       pcpmap_state_name(info->state), info->error ? pcpmap_strerror(info->error) : "none");
	if ((ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) && !*mapped) {
		*mapped = true;
		n_mapped++;
	} else if (ev == PCPMAP_EVENT_FAILED && info->state == PCPMAP_STATE_FAILED) {
		n_failed++;
	}
}

/* Polls the client's descriptor until its deadline and processes, as any event loop would. */
static int loop_once(pcpmap_client *c, int max_ms)
{
	int t = pcpmap_client_get_timeout(c);
	if (t < 0 || t > max_ms)
		t = max_ms;
	struct pollfd p = { .fd = pcpmap_client_get_fd(c), .events = POLLIN };
	if (poll(&p, 1, t) < 0 && errno != EINTR)
		return -errno;
	return pcpmap_client_process(c);
}

int main(int argc, char **argv)
{
	enum pcpmap_mode mode = PCPMAP_MODE_AUTO;
	const char *sock = NULL;
	bool persistent = false, hold = false, keep = false;
	long timeout_ms = 10000;
	int opt;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "m:s:pkHt:")) != -1) {
		switch (opt) {
		case 'm':
			mode = !strcmp(optarg, "daemon")   ? PCPMAP_MODE_DAEMON
			       : !strcmp(optarg, "engine") ? PCPMAP_MODE_ENGINE
							   : PCPMAP_MODE_AUTO;
			break;
		case 's':
			sock = optarg;
			break;
		case 'p':
			persistent = true;
			break;
		case 'k':
			keep = true;
			break;
		case 'H':
			hold = true;
			break;
		case 't':
			timeout_ms = strtol(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 2 || argc - optind - 1 > MAX_PORTS) {
		fprintf(
		    stderr,
		    "usage: %s [-m auto|daemon|engine] [-s SOCKET] [-p] [-k] [-H] [-t MS] tcp|udp PORT...\n",
		    argv[0]);
		return 2;
	}
	uint8_t ip_proto = !strcmp(argv[optind], "udp") ? IPPROTO_UDP : IPPROTO_TCP;

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.mode = mode;
	cfg.daemon_socket = sock;
	cfg.log = on_log;
	cfg.log_level = PCPMAP_LOG_INFO;
	pcpmap_client *c;
	int r = pcpmap_client_new(&c, &cfg);
	if (r < 0) {
		printf("error op=client_new errno=%d message=%s\n", -r, pcpmap_strerror(r));
		return 3;
	}
	printf("mode=%s\n", pcpmap_client_uses_daemon(c) ? "daemon" : "engine");

	pcpmap_mapping *maps[MAX_PORTS];
	bool mapped[MAX_PORTS] = { false };
	int n = argc - optind - 1;
	for (int i = 0; i < n; i++) {
		struct pcpmap_request req;
		pcpmap_request_init(&req, PCPMAP_KIND_MAP);
		req.ip_proto = ip_proto;
		req.internal_port = (uint16_t)strtoul(argv[optind + 1 + i], NULL, 10);
		req.description = "daemon_mode_app";
		req.persistent = persistent;
		req.callback = on_event;
		req.userdata = &mapped[i];
		r = pcpmap_mapping_new(c, &req, &maps[i]);
		if (r < 0) {
			printf("error op=mapping_new errno=%d message=%s\n", -r, pcpmap_strerror(r));
			pcpmap_client_free(c);
			return 4;
		}
	}
	uint64_t end = pcpmap_now_usec() + (uint64_t)timeout_ms * 1000u;
	while (!stop && n_mapped < (unsigned)n && !n_failed && pcpmap_now_usec() < end)
		if (loop_once(c, 100) < 0)
			break;
	int rc = n_mapped == (unsigned)n ? 0 : 4;
	if (rc == 0)
		printf("mapped\n");
	else
		printf("error op=map mapped=%u of %d\n", n_mapped, n);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(c, &st);
	printf("stats sent=%llu received=%llu\n", (unsigned long long)st.sent,
	       (unsigned long long)st.received);
	while (hold && !stop && rc == 0)
		loop_once(c, 1000);
	for (int i = 0; i < n; i++) {
		if (keep)
			pcpmap_mapping_abandon(maps[i]);
		else
			pcpmap_mapping_free(maps[i]);
	}
	pcpmap_client_flush(c, 2000);
	pcpmap_client_free(c);
	printf("done\n");
	return rc;
}
