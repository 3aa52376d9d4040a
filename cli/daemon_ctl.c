/* SPDX-License-Identifier: MIT */
/*
 * `pcpmap daemon`: pcpmapd's control protocol command by command (doc/IPC.md), on daemon/ipc_client.c: to
 * inspect and drive a running daemon by hand or from scripts (the interop cases use it). Output is one
 * `key=value ...` line per object, so scripts can grep it.
 */
#ifdef PCPMAP_CLI_DAEMON
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "daemon/ipc_client.h"
#include "daemon_ctl.h"

/* The tool's exit codes (pcpmap --help). */
enum {
	RC_OK = 0,
	RC_USAGE = 2,
	RC_CONNECT = 3, /* pcpmapd not reachable */
	RC_REFUSED = 4, /* pcpmapd (or the gateway, through it) refused */
};

static const char *errname(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);
	return n ? n : "?";
}

static void print_mapping(const char *prefix, const struct pmd_ctl_mapping *m)
{
	const struct pcpmap_mapping_info *i = &m->info;
	printf("%sid=%" PRIu32 " state=%s proto=%s kind=%s ip_proto=%u int=%s:%u ext=%s:%u", prefix, m->id,
	       pcpmap_state_name(i->state), pcpmap_proto_name(i->proto),
	       i->kind == PCPMAP_KIND_PEER ? "peer" : "map", i->ip_proto, i->internal_addr, i->internal_port,
	       i->external_addr, i->external_port);
	if (i->external_port2)
		printf(" ext2=%u", i->external_port2);
	printf(" lifetime=%" PRIu32 " refresh_in=%ld owner=%" PRIu32 " persistent=%s", i->lifetime,
	       m->refresh_in == UINT32_MAX ? -1L : (long)m->refresh_in, m->owner_uid,
	       m->persistent ? "yes" : "no");
	if (m->has_nonce) {
		printf(" nonce=");
		for (int k = 0; k < 12; k++)
			printf("%02x", i->nonce[k]);
	}
	if (i->error)
		printf(" error=%s", errname(i->error));
	if (m->third_party[0])
		printf(" third_party=%s", m->third_party);
	printf("\n");
}

static int refused(struct pmd_ctl *c, const char *what, int r)
{
	printf("error op=%s errno=%s message=%s\n", what, errname(r), c ? pmd_ctl_error(c) : strerror(-r));
	fflush(stdout);
	return RC_REFUSED;
}

static int parse_nonce(const char *hex, uint8_t out[12])
{
	if (strlen(hex) != 24)
		return -EINVAL;
	for (int i = 0; i < 12; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Keeps the connection (and so its mappings) until stdin closes or a signal. */
static void hold(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("holding\n");
	fflush(stdout);
	while (!stop) {
		struct pollfd p = { .fd = 0, .events = POLLIN };
		int r = poll(&p, 1, -1);
		if (r > 0) {
			char buf[256];
			if (read(0, buf, sizeof(buf)) <= 0)
				break;
		}
	}
}

static int cmd_create(struct pmd_ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "persistent", no_argument, NULL, 'P' },
		{ "wait", required_argument, NULL, 'w' },
		{ "lifetime", required_argument, NULL, 'L' },
		{ "external-port", required_argument, NULL, 'e' },
		{ "external-address", required_argument, NULL, 'a' },
		{ "prefer-failure", no_argument, NULL, 'F' },
		{ "third-party", required_argument, NULL, 'T' },
		{ "filter", required_argument, NULL, 'f' },
		{ "description", required_argument, NULL, 'D' },
		{ "pair", no_argument, NULL, 'p' },
		{ "peer", required_argument, NULL, 'r' },
		{ "peer-port", required_argument, NULL, 'R' },
		{ "ipv6", no_argument, NULL, '6' },
		{ "nonce", required_argument, NULL, 'n' },
		{ "protocols", required_argument, NULL, 'o' },
		{ "deadline", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'c' },
		{ "hold", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct pcpmap_request req;
	struct pcpmap_filter filters[PCPMAP_MAX_FILTERS];
	char fbuf[PCPMAP_MAX_FILTERS][64];
	uint8_t nonce[12];
	unsigned flags = 0;
	int wait_ms = 10000, count = 1, ch;
	bool do_hold = false;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.filters = filters;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "w:L:e:6", opts, NULL)) != -1) {
		switch (ch) {
		case 'P':
			flags |= PMD_CTL_PERSISTENT;
			break;
		case 'w':
			wait_ms = atoi(optarg);
			break;
		case 'L':
			req.lifetime = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'e':
			req.suggested_port = (uint16_t)atoi(optarg);
			break;
		case 'a':
			req.suggested_addr = optarg;
			break;
		case 'F':
			req.prefer_failure = true;
			break;
		case 'T':
			req.third_party = optarg;
			break;
		case 'f': {
			if (req.n_filters >= PCPMAP_MAX_FILTERS || strlen(optarg) >= sizeof(fbuf[0]))
				return RC_USAGE;
			char *b = fbuf[req.n_filters];
			strcpy(b, optarg);
			struct pcpmap_filter *f = &filters[req.n_filters++];
			char *comma = strchr(b, ',');
			f->peer_port = 0;
			if (comma) {
				*comma = '\0';
				f->peer_port = (uint16_t)atoi(comma + 1);
			}
			char *slash = strchr(b, '/');
			f->prefix_len = strchr(b, ':') ? 128 : 32;
			if (slash) {
				*slash = '\0';
				f->prefix_len = (uint8_t)atoi(slash + 1);
			}
			f->peer_addr = b;
			break;
		}
		case 'D':
			req.description = optarg;
			break;
		case 'p':
			req.port_pair = true;
			break;
		case 'r':
			req.kind = PCPMAP_KIND_PEER;
			req.peer_addr = optarg;
			break;
		case 'R':
			req.peer_port = (uint16_t)atoi(optarg);
			break;
		case '6':
			req.external_family = AF_INET6;
			break;
		case 'n':
			if (parse_nonce(optarg, nonce) < 0)
				return RC_USAGE;
			req.nonce = nonce;
			break;
		case 'o':
			req.protocols = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'd':
			req.deadline_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			count = atoi(optarg);
			break;
		case 'H':
			do_hold = true;
			break;
		default:
			return RC_USAGE;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "create PROTO PORT [options]\n");
		return RC_USAGE;
	}
	const char *p = argv[optind];
	req.ip_proto = !strcasecmp(p, "tcp") ? IPPROTO_TCP : !strcasecmp(p, "udp") ? IPPROTO_UDP : 0;
	int port = atoi(argv[optind + 1]);
	int rc = RC_OK;
	for (int k = 0; k < count; k++) {
		struct pmd_ctl_mapping m;
		req.internal_port = (uint16_t)(port + k * (req.port_pair ? 2 : 1));
		memset(&m, 0, sizeof(m));
		int r = pmd_ctl_create(c, &req, flags, wait_ms, &m);
		if (r < 0) {
			if (m.id)
				print_mapping("failed ", &m);
			rc = refused(c, "create", r);
			break;
		}
		print_mapping("created ", &m);
		fflush(stdout);
	}
	if (do_hold)
		hold();
	return rc;
}

static int cmd_list(struct pmd_ctl *c)
{
	struct pmd_ctl_mapping *v;
	size_t n;
	int r = pmd_ctl_list(c, &v, &n);
	if (r < 0)
		return refused(c, "list", r);
	for (size_t i = 0; i < n; i++)
		print_mapping("mapping ", &v[i]);
	printf("count=%zu\n", n);
	free(v);
	return RC_OK;
}

static void print_server(const char *name, const struct pcpmap_server_info *s)
{
	if (s->proto == PCPMAP_PROTO_NONE)
		return;
	printf("server %s addr=%s version=%d epoch=%" PRIu32 " rtt_us=%" PRIu32 " external=%s error=%s\n",
	       name, s->server, s->version, s->epoch, s->rtt_usec,
	       s->external_addr[0] ? s->external_addr : "-", s->error ? errname(s->error) : "none");
}

static int cmd_probe(struct pmd_ctl *c, int timeout)
{
	struct pcpmap_probe_result r;
	int e = pmd_ctl_probe(c, timeout, &r);
	if (e < 0)
		return refused(c, "probe", e);
	printf("probe gateway=%s chosen=%s external=%s private=%s\n", r.gateway, pcpmap_proto_name(r.chosen),
	       r.external_addr[0] ? r.external_addr : "-", r.external_is_private ? "yes" : "no");
	print_server("pcp", &r.pcp);
	print_server("natpmp", &r.natpmp);
	print_server("upnp", &r.upnp);
	return RC_OK;
}

static int cmd_events(struct pmd_ctl *c, int n, int timeout)
{
	int r = pmd_ctl_subscribe(c, true);
	if (r < 0)
		return refused(c, "subscribe", r);
	printf("subscribed\n");
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		enum pcpmap_event ev;
		struct pmd_ctl_mapping m;
		r = pmd_ctl_next_event(c, timeout, &ev, &m);
		if (r < 0)
			return refused(c, "event", r);
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "event=%s ", pcpmap_event_name(ev));
		print_mapping(prefix, &m);
		fflush(stdout);
	}
	return RC_OK;
}

static int cmd_stats(struct pmd_ctl *c)
{
	struct pmd_ctl_stats s;
	int r = pmd_ctl_stats(c, &s);
	if (r < 0)
		return refused(c, "stats", r);
	printf("stats wakeups=%" PRIu64 " timer=%" PRIu64 " engine=%" PRIu64 " uptime=%" PRIu64
	       " connections=%u mappings=%u\n",
	       s.wakeups, s.timer_wakeups, s.engine_wakeups, s.uptime_s, s.connections, s.mappings);
	return RC_OK;
}

/* Sends hex bytes as one message and prints the reply. */
static int cmd_raw(struct pmd_ctl *c, int argc, char **argv)
{
	static uint8_t buf[16384];
	size_t n = 0;
	for (int i = 0; i < argc; i++) {
		for (const char *p = argv[i]; p[0] && p[1]; p += 2) {
			unsigned v;
			if (n >= sizeof(buf) || sscanf(p, "%2x", &v) != 1)
				return RC_USAGE;
			buf[n++] = (uint8_t)v;
		}
	}
	int r = pmd_ctl_send_raw(c, buf, n);
	if (r < 0)
		return refused(NULL, "send", r);
	struct pmd_ipc_msg *m = malloc(sizeof(*m));
	if (!m)
		return RC_REFUSED;
	r = pmd_ctl_recv_reply(c, m);
	if (r < 0) {
		free(m);
		printf("reply none errno=%s\n", errname(r));
		return RC_REFUSED;
	}
	printf("reply type=%s seq=%" PRIu32 " errno=%s message=%s\n", pmd_ipc_type_name(m->type), m->seq,
	       m->error ? errname(-(int)m->error) : "none", m->message);
	free(m);
	return RC_OK;
}

/* Idle measurement: hold COUNT mappings, read the daemon's wakeup counter, sleep, read it again. */
static int cmd_idle(struct pmd_ctl *c, int count, int seconds, int port)
{
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_TCP;
	for (int k = 0; k < count; k++) {
		struct pmd_ctl_mapping m;
		req.internal_port = (uint16_t)(port + k);
		int r = pmd_ctl_create(c, &req, 0, 10000, &m);
		if (r < 0)
			return refused(c, "create", r);
	}
	/* Let deletions of the probe and first answers settle before counting. */
	sleep(1);
	struct pmd_ctl_stats a, b;
	int r = pmd_ctl_stats(c, &a);
	if (r < 0)
		return refused(c, "stats", r);
	sleep((unsigned)seconds);
	r = pmd_ctl_stats(c, &b);
	if (r < 0)
		return refused(c, "stats", r);
	/* The second STATS request itself is one wakeup. */
	uint64_t w = b.wakeups - a.wakeups - 1;
	printf("idle mappings=%d seconds=%d wakeups=%" PRIu64 " timer=%" PRIu64 " engine=%" PRIu64
	       " (excluding the STATS request)\n",
	       count, seconds, w, b.timer_wakeups - a.timer_wakeups, b.engine_wakeups - a.engine_wakeups);
	return RC_OK;
}

static void usage(FILE *to)
{
	fprintf(
	    to,
	    "Usage: pcpmap daemon [-s SOCKET] [-t TIMEOUT_MS] COMMAND\n"
	    "Speaks pcpmapd's control protocol (doc/IPC.md) one request at a time; prints key=value lines.\n"
	    "  create PROTO PORT [--persistent] [--wait MS] [--lifetime S] [-e PORT] [--external-address A]\n"
	    "         [--prefer-failure] [--third-party A] [--filter A/P,PORT] [--description T] [--pair]\n"
	    "         [--peer A --peer-port P] [-6] [--nonce HEX] [--protocols MASK] [--deadline MS]\n"
	    "         [--count N] [--hold]\n"
	    "  delete ID | get ID | list | probe [MS] | external [MS] | events N [MS] | stats\n"
	    "  raw HEX... (one message as hex bytes) | idle COUNT SECONDS BASEPORT (wakeups while idle)\n"
	    "Exit codes: 0 success, 2 usage, 3 pcpmapd not reachable, 4 refused (error line on stdout).\n");
}

int cli_daemon(int argc, char **argv)
{
	const char *sock = NULL;
	int timeout = 30000;
	int i = 1;
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return RC_OK;
	}
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "-s"))
			sock = argv[i + 1];
		else if (!strcmp(argv[i], "-t"))
			timeout = atoi(argv[i + 1]);
		else
			break;
	}
	if (i >= argc) {
		usage(stderr);
		return RC_USAGE;
	}
	struct pmd_ctl *c;
	int r = pmd_ctl_connect(sock, &c);
	if (r < 0) {
		printf("error op=connect errno=%s message=%s\n", errname(r), strerror(-r));
		return RC_CONNECT;
	}
	pmd_ctl_set_timeout(c, timeout);
	const char *cmd = argv[i];
	int rest = argc - i - 1;
	char **args = argv + i + 1;
	int rc;
	if (!strcmp(cmd, "create"))
		rc = cmd_create(c, argc - i, argv + i);
	else if (!strcmp(cmd, "delete") && rest == 1)
		rc = (r = pmd_ctl_delete(c, (uint32_t)strtoul(args[0], NULL, 10))) < 0
			 ? refused(c, "delete", r)
			 : (printf("deleted id=%s\n", args[0]), RC_OK);
	else if (!strcmp(cmd, "get") && rest == 1) {
		struct pmd_ctl_mapping m;
		r = pmd_ctl_get(c, (uint32_t)strtoul(args[0], NULL, 10), &m);
		rc = r < 0 ? refused(c, "get", r) : (print_mapping("mapping ", &m), RC_OK);
	} else if (!strcmp(cmd, "list"))
		rc = cmd_list(c);
	else if (!strcmp(cmd, "probe"))
		rc = cmd_probe(c, rest ? atoi(args[0]) : 0);
	else if (!strcmp(cmd, "external")) {
		struct pmd_ctl_external e;
		r = pmd_ctl_external(c, rest ? atoi(args[0]) : 0, &e);
		rc = r < 0 ? refused(c, "external", r)
			   : (printf("external addr=%s proto=%s private=%s\n", e.addr,
				     pcpmap_proto_name(e.proto), e.is_private ? "yes" : "no"),
			      RC_OK);
	} else if (!strcmp(cmd, "events") && rest >= 1)
		rc = cmd_events(c, atoi(args[0]), rest > 1 ? atoi(args[1]) : 10000);
	else if (!strcmp(cmd, "stats"))
		rc = cmd_stats(c);
	else if (!strcmp(cmd, "raw"))
		rc = cmd_raw(c, rest, args);
	else if (!strcmp(cmd, "idle") && rest == 3)
		rc = cmd_idle(c, atoi(args[0]), atoi(args[1]), atoi(args[2]));
	else {
		usage(stderr);
		rc = RC_USAGE;
	}
	fflush(stdout);
	pmd_ctl_close(c);
	return rc;
}
#endif
