/* pcpmap: the command-line port-mapping tool. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "connections.h"
#include "top.h"
#ifdef PCPMAP_CLI_DAEMON
#include "daemon/ipc_client.h"
#include "daemon_ctl.h"
#endif

/* Exit codes (documented in the man page and README). */
enum {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_NO_SUPPORT = 3, /* no gateway, or it speaks no protocol we can use */
	EXIT_REFUSED = 4,    /* the gateway refused the request */
	EXIT_TIMEOUT = 5,    /* the gateway did not answer in time */
};

struct opts {
	const char *gateway;
	int timeout_ms;
	int verbose;
	bool json;
	bool once;
	uint32_t lifetime;
	uint16_t ext_port;
	const char *ext_addr;
	bool prefer_failure;
	const char *third_party;
	struct pcpmap_filter filters[PCPMAP_MAX_FILTERS];
	char filter_buf[PCPMAP_MAX_FILTERS][64];
	size_t n_filters;
	const char *description;
	bool pair;
	int family;
	const char *nonce_hex;
	uint32_t protocols;
	uint8_t order[3];
	bool allow_degrade;
	uint32_t pick; /* connections --pick N, 0 = list only */
	bool daemon;   /* hand the mapping to pcpmapd */
	bool no_cache; /* neither read nor write the gateway cache */
	bool watch;    /* list --watch */
	const char *socket;
};

static const char *prog = "pcpmap";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s%s%s: ", prog, cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s %s%s--help'.\n", prog, cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

static int exit_code_for(int err)
{
	switch (-err) {
	case 0:
		return EXIT_OK;
	case ETIMEDOUT:
		return EXIT_TIMEOUT;
	case ECONNREFUSED:
	case ENETUNREACH:
	case EPROTONOSUPPORT:
	case EOPNOTSUPP:
		return EXIT_NO_SUPPORT;
	case EACCES:
	case ENOENT: /* a delete found no such mapping on the gateway */
	case EADDRINUSE:
	case EADDRNOTAVAIL:
	case EAGAIN:
	case EPROTO:
	case E2BIG:
		return EXIT_REFUSED;
	}
	return EXIT_INTERNAL;
}

static void log_cb(void *ud, enum pcpmap_log_level level, const char *msg)
{
	(void)ud;
	static const char *const names[] = {
		[3] = "error", [4] = "warning", [5] = "notice", [6] = "info", [7] = "debug"
	};
	fprintf(stderr, "%s: %s: %s\n", prog, names[level], msg);
}

static void trace_cb(void *ud, bool sent, enum pcpmap_proto proto, const char *peer, const uint8_t *bytes,
		     size_t len, const char *decoded)
{
	const struct opts *o = ud;
	fprintf(stderr, "%s %s %s (%zu bytes) %s\n", sent ? "->" : "<-", peer, pcpmap_proto_name(proto), len,
		decoded);
	if (o->verbose > 1 && len) {
		for (size_t i = 0; i < len; i++)
			fprintf(stderr, "%s%02x", i % 16 == 0 ? "   " : " ", bytes[i]);
		fprintf(stderr, "\n");
	}
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max || s[0] == '-')
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_proto(const char *s, uint8_t *ret)
{
	if (!strcasecmp(s, "tcp"))
		*ret = IPPROTO_TCP;
	else if (!strcasecmp(s, "udp"))
		*ret = IPPROTO_UDP;
	else if (!strcasecmp(s, "all"))
		*ret = 0;
	else
		return -EINVAL;
	return 0;
}

static const char *proto_str(uint8_t p)
{
	return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : p == 0 ? "all" : "?";
}

static int parse_nonce(const char *hex, uint8_t out[12])
{
	if (strlen(hex) != 24)
		return -EINVAL;
	for (int i = 0; i < 24; i++)
		if (!isxdigit((unsigned char)hex[i]))
			return -EINVAL;
	for (int i = 0; i < 12; i++) {
		char byte[3] = { hex[2 * i], hex[2 * i + 1], '\0' };
		out[i] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return 0;
}

static void nonce_str(const uint8_t n[12], char out[25])
{
	for (int i = 0; i < 12; i++)
		sprintf(out + 2 * i, "%02x", n[i]);
}

/* JSON strings here come from addresses and our own names; escape anyway. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* The error's text; a delete that found nothing says so rather than "No such file or directory". */
static const char *err_text(int err)
{
	return err == -ENOENT ? "Nothing was deleted: the gateway holds no such mapping"
			      : pcpmap_strerror(err);
}

/* A nonce means something only to PCP (and to a request PCP may have carried before anything answered). */
static bool nonce_meaningful(const struct opts *o, const struct pcpmap_mapping_info *i)
{
	if (i->proto == PCPMAP_PROTO_PCP)
		return true;
	return i->proto == PCPMAP_PROTO_NONE &&
	       (!o->protocols || (o->protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP)));
}

static bool unmap_command(const struct opts *o, const struct pcpmap_mapping_info *i, bool second, char *buf,
			  size_t len);

/* "addr:port", or "[addr]:port" for IPv6. */
static const char *endpoint(char *buf, size_t len, const char *addr, uint16_t port)
{
	cli_conn_endpoint(strchr(addr, ':') ? AF_INET6 : AF_INET, addr, port, buf, len);
	return buf;
}

static void print_info(const struct opts *o, const char *event, const struct pcpmap_mapping_info *i)
{
	uint64_t now = pcpmap_now_usec();
	long refresh = i->refresh_usec > now ? (long)((i->refresh_usec - now) / 1000000u) : -1;
	char nonce[25];
	nonce_str(i->nonce, nonce);
	if (o->json) {
		printf("{\"event\":");
		json_str(stdout, event);
		printf(
		    ",\"state\":\"%s\",\"protocol\":\"%s\",\"kind\":\"%s\",\"transport\":\"%s\",\"server\":",
		    pcpmap_state_name(i->state), pcpmap_proto_name(i->proto),
		    i->kind == PCPMAP_KIND_PEER ? "peer" : "map", proto_str(i->ip_proto));
		json_str(stdout, i->server);
		printf(",\"internal\":{\"address\":");
		json_str(stdout, i->internal_addr);
		printf(",\"port\":%u},\"external\":{\"address\":", i->internal_port);
		json_str(stdout, i->external_addr);
		printf(",\"port\":%u", i->external_port);
		if (i->external_port2)
			printf(",\"port2\":%u,\"pair_method\":\"%s\"", i->external_port2,
			       pcpmap_pair_method_name(i->pair_method));
		printf("}");
		if (i->kind == PCPMAP_KIND_PEER) {
			printf(",\"peer\":{\"address\":");
			json_str(stdout, i->peer_addr);
			printf(",\"port\":%u}", i->peer_port);
		}
		printf(",\"lifetime\":%" PRIu32 ",\"refresh_in\":%ld,\"epoch\":%" PRIu32, i->lifetime,
		       refresh, i->epoch);
		if (nonce_meaningful(o, i))
			printf(",\"nonce\":\"%s\"", nonce);
		char cmd[512];
		if (o->once && !strcmp(event, "mapped")) {
			/* null: nothing can delete it (a PEER mapping, a UPnP pinhole); it ends with its lifetime. */
			printf(",\"unmap_command\":");
			if (unmap_command(o, i, false, cmd, sizeof(cmd)))
				json_str(stdout, cmd);
			else
				printf("null");
			if (i->external_port2 && unmap_command(o, i, true, cmd, sizeof(cmd))) {
				printf(",\"unmap_command2\":");
				json_str(stdout, cmd);
			}
		}
		printf(",\"external_is_private\":%s,\"detail\":", i->external_is_private ? "true" : "false");
		json_str(stdout, i->detail);
		if (i->error)
			printf(",\"error\":{\"errno\":%d,\"message\":\"%s\",\"result_code\":%d,\"result\":\"%"
			       "s\"}",
			       -i->error, err_text(i->error), i->result_code,
			       pcpmap_result_name(i->proto, i->result_code));
		printf("}\n");
		fflush(stdout);
		return;
	}
	if (!strcmp(event, "mapped") || !strcmp(event, "changed")) {
		char in[64], ex[64];
		printf("%s %s %s -> %s", event, proto_str(i->ip_proto),
		       endpoint(in, sizeof(in), i->internal_addr, i->internal_port),
		       endpoint(ex, sizeof(ex), i->external_addr, i->external_port));
		if (i->external_port2)
			printf(" (+%u, pair via %s)", i->external_port2,
			       pcpmap_pair_method_name(i->pair_method));
		printf(" via %s %s, lifetime %" PRIu32 " s", pcpmap_proto_name(i->proto), i->server,
		       i->lifetime);
		if (refresh >= 0)
			printf(", refreshing in %ld s", refresh);
		printf("\n");
		if (i->external_is_private)
			printf("warning: %s is a private or shared address: another NAT (double NAT or "
			       "carrier-grade "
			       "NAT) probably keeps this port unreachable from the internet\n",
			       i->external_addr);
	} else if (!strcmp(event, "failed")) {
		printf("failed %s %u via %s: %s", proto_str(i->ip_proto), i->internal_port,
		       i->server[0] ? i->server : "(no gateway)", err_text(i->error));
		if (i->result_code && i->proto != PCPMAP_PROTO_NONE) {
			const char *adv = pcpmap_result_advice(i->proto, i->result_code);
			printf(" [%s %s]%s%s", pcpmap_proto_name(i->proto),
			       pcpmap_result_name(i->proto, i->result_code), *adv ? ": " : "", adv);
		}
		if (i->detail[0])
			printf(" (%s)", i->detail);
		if (!o->once && i->state != PCPMAP_STATE_FAILED && i->retry_usec > now)
			printf("; retrying in %" PRIu64 " s", (i->retry_usec - now + 999999) / 1000000u);
		printf("\n");
	} else {
		printf("%s %s %u via %s\n", event, proto_str(i->ip_proto), i->internal_port, i->server);
	}
	fflush(stdout);
}

struct run_state {
	struct opts *o;
	bool progress_shown; /* a progress line sits on stderr: clear it before printing */
	bool done;
	int err;
	bool mapped;
};

static void event_cb(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct run_state *st = ud;
	(void)m;
	if (st->done)
		return; /* events queued in the same batch after the one that ended the run */
	if (st->progress_shown) {
		fputs("\r\033[K", stderr);
		st->progress_shown = false;
	}
	char name[16];
	snprintf(name, sizeof(name), "%s", pcpmap_event_name(ev));
	for (char *p = name; *p; p++)
		*p = (char)(*p - 'A' + 'a' >= 'a' && *p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	print_info(st->o, name, info);
	if (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED)
		st->mapped = true;
	if (ev == PCPMAP_EVENT_FAILED && (st->o->once || info->state == PCPMAP_STATE_FAILED)) {
		st->done = true;
		st->err = info->error ? info->error : -EPROTO;
	}
	if (st->o->once && st->mapped)
		st->done = true;
}

static int make_client(struct opts *o, pcpmap_client **ret)
{
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = o->gateway;
	cfg.protocols = o->protocols;
	cfg.no_gw_cache = o->no_cache;
	/* A --once run leaves before any announcement or route change could matter to it: the listeners on
	 * 5350 and the rtnetlink monitor would only delay its request (sockets, joins, two link dumps). */
	cfg.no_announce_listener = o->once;
	cfg.no_netlink_monitor = o->once;
	memcpy(cfg.protocol_order, o->order, sizeof(cfg.protocol_order));
	if (o->daemon) {
		cfg.mode = PCPMAP_MODE_DAEMON;
		cfg.daemon_socket = o->socket;
	}
	cfg.log = log_cb;
	cfg.log_level = o->verbose >= 2 ? PCPMAP_LOG_DEBUG
			: o->verbose    ? PCPMAP_LOG_INFO
					: PCPMAP_LOG_WARNING;
	if (o->verbose) {
		cfg.trace = trace_cb;
		cfg.trace_userdata = o;
	}
	int r = pcpmap_client_new(ret, &cfg);
	if (r < 0)
		fprintf(stderr, "%s: cannot start: %s%s\n", prog, pcpmap_strerror(r),
			r == -EINVAL
			    ? " (check --gateway: a numeric address, optionally [v6]:port or v4:port)"
			    : "");
	return r;
}

/* The command that deletes this mapping (second: its pair's companion, internal port + 1), or false when
 * none can: PCP has no delete for a PEER mapping (RFC 6887 12: it lives as long as its lifetime), and
 * UPnP names a pinhole by an ID only its creator holds. PCP deletes by nonce, NAT-PMP by internal port,
 * UPnP by external port. */
static bool unmap_command(const struct opts *o, const struct pcpmap_mapping_info *i, bool second, char *buf,
			  size_t len)
{
	char nonce[25];
	size_t n = 0;
	if (i->kind == PCPMAP_KIND_PEER || (i->proto == PCPMAP_PROTO_UPNP && o->family == AF_INET6))
		return false;
	unsigned port = i->internal_port + (second ? 1u : 0u);
	unsigned ext = second ? i->external_port2 : i->external_port;
#define ADD(...)                                                  \
	do {                                                      \
		int k_ = snprintf(buf + n, len - n, __VA_ARGS__); \
		if (k_ < 0 || (size_t)k_ >= len - n)              \
			return false;                             \
		n += (size_t)k_;                                  \
	} while (0)
	ADD("%s unmap %s %u", prog, proto_str(i->ip_proto), port);
	switch (i->proto) {
	case PCPMAP_PROTO_PCP:
		nonce_str(second ? i->nonce2 : i->nonce, nonce);
		ADD(" --nonce %s", nonce);
		break;
	case PCPMAP_PROTO_NATPMP:
		ADD(" --protocol natpmp");
		break;
	case PCPMAP_PROTO_UPNP:
		ADD(" --protocol upnp -e %u", ext);
		break;
	default:
		return false;
	}
	if (o->gateway)
		ADD(" --gateway %s", o->gateway);
	if (o->family == AF_INET6)
		ADD(" -6");
	if (o->third_party)
		ADD(" --third-party %s", o->third_party);
	if (o->daemon)
		ADD(" --daemon");
	if (o->socket)
		ADD(" --socket %s", o->socket);
#undef ADD
	return true;
}

static void print_unmap_hint(const struct opts *o, const struct pcpmap_mapping_info *i)
{
	char cmd[512];
	if (o->json)
		return;
	if (!unmap_command(o, i, false, cmd, sizeof(cmd))) {
		printf("it cannot be deleted (%s): it ends with its lifetime, %" PRIu32 " s\n",
		       i->kind == PCPMAP_KIND_PEER
			   ? "PCP has no delete for PEER mappings"
			   : "UPnP lets only the process that made a pinhole delete it",
		       i->lifetime);
		return;
	}
	printf("to delete it: %s\n", cmd);
	if (i->external_port2 && unmap_command(o, i, true, cmd, sizeof(cmd)))
		printf("and its pair: %s\n", cmd);
}

static int open_signalfd(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int run_mapping(struct opts *o, struct pcpmap_request *req, const char *cmd)
{
	pcpmap_client *c;
	pcpmap_mapping *m;
	struct run_state st = { .o = o };
	int r = make_client(o, &c);
	if (r < 0)
		return EXIT_INTERNAL;
	int sfd = open_signalfd();
	/* Handed to pcpmapd: map, report, and leave the mapping with the daemon. */
	if (o->daemon)
		o->once = true;
	req->callback = event_cb;
	req->userdata = &st;
	if (o->once)
		req->deadline_ms = (uint32_t)o->timeout_ms;
	r = pcpmap_mapping_new(c, req, &m);
	if (r < 0) {
		fprintf(stderr, "%s %s: invalid request: %s\n", prog, cmd, pcpmap_strerror(r));
		pcpmap_client_free(c);
		return r == -EINVAL ? EXIT_USAGE : EXIT_INTERNAL;
	}
	uint64_t start = pcpmap_now_usec();
	bool interrupted = false;
	/* A progress line while the gateway takes longer than a moment, only on a terminal. */
	bool progress = isatty(STDERR_FILENO) && !o->json && !o->verbose;
	while (!st.done) {
		pcpmap_client_process(c);
		if (st.mapped)
			progress = false;
		if (st.done)
			break;
		int t = pcpmap_client_get_timeout(c);
		if (progress && !st.mapped) {
			uint64_t waited = pcpmap_now_usec() - start;
			if (waited >= 300000u) {
				struct pcpmap_mapping_info info;
				pcpmap_mapping_get_info(m, &info);
				fprintf(stderr, "\r\033[Kwaiting for %s: %.1f s%s%s",
					info.server[0] ? info.server : "the gateway", waited / 1e6,
					info.detail[0] ? ", " : "", info.detail);
				st.progress_shown = true;
			}
			/* Refresh the line about every 250 ms. */
			int next = waited >= 300000u ? 250 : (int)((300000u - waited) / 1000u) + 1;
			if (t < 0 || t > next)
				t = next;
		}
		if (o->once || !st.mapped) {
			/* Until the first mapping, --timeout bounds the wait. */
			uint64_t now = pcpmap_now_usec();
			uint64_t end = start + (uint64_t)o->timeout_ms * 1000u;
			if (o->once || o->timeout_ms > 0) {
				if (now >= end && !st.mapped) {
					st.err = -ETIMEDOUT;
					if (st.progress_shown)
						fputs("\r\033[K", stderr);
					struct pcpmap_mapping_info info;
					pcpmap_mapping_get_info(m, &info);
					info.error = -ETIMEDOUT;
					print_info(o, "failed", &info);
					break;
				}
				int left = (int)((end - now + 999) / 1000);
				if (t < 0 || t > left)
					t = left;
			}
		}
		struct pollfd pfd[2] = { { .fd = pcpmap_client_get_fd(c), .events = POLLIN },
					 { .fd = sfd, .events = POLLIN } };
		if (poll(pfd, sfd >= 0 ? 2 : 1, t) < 0 && errno != EINTR)
			break;
		if (sfd >= 0 && (pfd[1].revents & POLLIN)) {
			interrupted = true;
			break;
		}
	}
	int code = EXIT_OK;
	if (o->once && st.mapped && !st.err) {
		struct pcpmap_mapping_info info;
		pcpmap_mapping_get_info(m, &info);
		print_unmap_hint(o, &info);
		pcpmap_mapping_abandon(m);
	} else {
		/* Ctrl-C, SIGTERM or failure: delete what we hold and wait briefly for the gateway. */
		pcpmap_mapping_free(m);
		pcpmap_client_flush(c, 2000);
		if (st.mapped && interrupted)
			printf(o->json ? "{\"event\":\"deleted\"}\n" : "deleted\n");
		code = interrupted ? EXIT_OK : exit_code_for(st.err);
	}
	pcpmap_client_free(c);
	if (sfd >= 0)
		close(sfd);
	return code;
}

enum {
	OPT_ONCE = 256,
	OPT_LIFETIME,
	OPT_PREFER_FAILURE,
	OPT_THIRD_PARTY,
	OPT_FILTER,
	OPT_DESCRIPTION,
	OPT_PAIR,
	OPT_NONCE,
	OPT_PROTOCOL,
	OPT_ALLOW_DEGRADE,
	OPT_EXT_ADDR,
	OPT_PICK,
	OPT_DAEMON,
	OPT_WATCH,
	OPT_SOCKET,
	OPT_NO_CACHE,
};

static const struct option common_long[] = {
	{ "gateway", required_argument, NULL, 'g' },
	{ "timeout", required_argument, NULL, 't' },
	{ "json", no_argument, NULL, 'j' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "lifetime", required_argument, NULL, OPT_LIFETIME },
	{ "external-port", required_argument, NULL, 'e' },
	{ "external-address", required_argument, NULL, OPT_EXT_ADDR },
	{ "prefer-failure", no_argument, NULL, OPT_PREFER_FAILURE },
	{ "third-party", required_argument, NULL, OPT_THIRD_PARTY },
	{ "filter", required_argument, NULL, OPT_FILTER },
	{ "description", required_argument, NULL, OPT_DESCRIPTION },
	{ "pair", no_argument, NULL, OPT_PAIR },
	{ "nonce", required_argument, NULL, OPT_NONCE },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "allow-degrade", no_argument, NULL, OPT_ALLOW_DEGRADE },
	{ "ipv6", no_argument, NULL, '6' },
	{ "ipv4", no_argument, NULL, '4' },
	{ "pick", required_argument, NULL, OPT_PICK },
	{ "daemon", no_argument, NULL, OPT_DAEMON },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "no-cache", no_argument, NULL, OPT_NO_CACHE },
	{ NULL, 0, NULL, 0 },
};

static int parse_filter(struct opts *o, const char *arg)
{
	/* ADDR[/PREFIX][,PORT] */
	if (o->n_filters >= PCPMAP_MAX_FILTERS)
		return -E2BIG;
	char *buf = o->filter_buf[o->n_filters];
	if (strlen(arg) >= sizeof(o->filter_buf[0]))
		return -EINVAL;
	strcpy(buf, arg);
	struct pcpmap_filter *f = &o->filters[o->n_filters];
	uint32_t v;
	char *comma = strrchr(buf, ',');
	f->peer_port = 0;
	if (comma) {
		*comma = '\0';
		if (parse_u32(comma + 1, 0, 65535, &v) < 0)
			return -EINVAL;
		f->peer_port = (uint16_t)v;
	}
	char *slash = strchr(buf, '/');
	bool v6 = strchr(buf, ':') != NULL;
	f->prefix_len = v6 ? 128 : 32;
	if (slash) {
		*slash = '\0';
		if (parse_u32(slash + 1, 0, v6 ? 128 : 32, &v) < 0)
			return -EINVAL;
		f->prefix_len = (uint8_t)v;
	}
	f->peer_addr = buf;
	o->n_filters++;
	return 0;
}

/* A list like "pcp,upnp": the protocols allowed, in the order preferred. */
static int parse_protocols(const char *arg, uint32_t *ret, uint8_t order[3])
{
	uint32_t mask = 0;
	size_t n = 0;
	uint8_t ord[3] = { 0, 0, 0 };
	char buf[64];
	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum pcpmap_proto p;
		if (!strcasecmp(tok, "pcp"))
			p = PCPMAP_PROTO_PCP;
		else if (!strcasecmp(tok, "natpmp") || !strcasecmp(tok, "nat-pmp"))
			p = PCPMAP_PROTO_NATPMP;
		else if (!strcasecmp(tok, "upnp"))
			p = PCPMAP_PROTO_UPNP;
		else
			return -EINVAL;
		if (mask & PCPMAP_PROTO_BIT(p))
			return -EINVAL;
		mask |= PCPMAP_PROTO_BIT(p);
		ord[n++] = (uint8_t)p;
	}
	if (!mask)
		return -EINVAL;
	*ret = mask;
	memcpy(order, ord, sizeof(ord));
	return 0;
}

/* Parses common options; leaves positional arguments at argv[optind..]. */
static int parse_opts(const char *cmd, int argc, char **argv, struct opts *o, void (*help)(void))
{
	uint32_t v;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "g:t:jvhe:46", common_long, NULL)) != -1) {
		switch (ch) {
		case 'g':
			o->gateway = optarg;
			break;
		case 't':
			if (parse_u32(optarg, 1, 3600000, &v) < 0)
				return usage_error(cmd, "--timeout wants milliseconds (1-3600000), not '%s'",
						   optarg);
			o->timeout_ms = (int)v;
			break;
		case 'j':
			o->json = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			help();
			exit(EXIT_OK);
		case OPT_ONCE:
			o->once = true;
			break;
		case OPT_LIFETIME:
			if (parse_u32(optarg, 1, UINT32_MAX, &v) < 0)
				return usage_error(cmd, "--lifetime wants seconds, not '%s'", optarg);
			o->lifetime = v;
			break;
		case 'e':
			if (parse_u32(optarg, 1, 65535, &v) < 0)
				return usage_error(cmd, "--external-port wants 1-65535, not '%s'", optarg);
			o->ext_port = (uint16_t)v;
			break;
		case OPT_EXT_ADDR:
			o->ext_addr = optarg;
			break;
		case OPT_PREFER_FAILURE:
			o->prefer_failure = true;
			break;
		case OPT_THIRD_PARTY:
			o->third_party = optarg;
			break;
		case OPT_FILTER:
			if (parse_filter(o, optarg) < 0)
				return usage_error(cmd, "--filter wants ADDR[/PREFIX][,PORT], not '%s'",
						   optarg);
			break;
		case OPT_DESCRIPTION:
			o->description = optarg;
			break;
		case OPT_PAIR:
			o->pair = true;
			break;
		case OPT_NONCE:
			o->nonce_hex = optarg;
			break;
		case OPT_ALLOW_DEGRADE:
			o->allow_degrade = true;
			break;
		case OPT_PROTOCOL:
			if (parse_protocols(optarg, &o->protocols, o->order) < 0)
				return usage_error(
				    cmd, "--protocol wants a list of pcp,natpmp,upnp, not '%s'", optarg);
			break;
		case '6':
			o->family = AF_INET6;
			break;
		case '4':
			o->family = AF_INET;
			break;
		case OPT_DAEMON:
			o->daemon = true;
			break;
		case OPT_WATCH:
			o->watch = true;
			break;
		case OPT_SOCKET:
			o->socket = optarg;
			break;
		case OPT_NO_CACHE:
			o->no_cache = true;
			break;
		case OPT_PICK:
			if (parse_u32(optarg, 1, UINT32_MAX, &v) < 0)
				return usage_error(
				    cmd, "--pick wants a connection number (1, 2, ...), not '%s'", optarg);
			o->pick = v;
			break;
		default:
			fprintf(stderr, "Try '%s %s --help'.\n", prog, cmd);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

static void help_map(void)
{
	printf(
	    "Usage: %s map PROTO PORT [options]\n"
	    "Maps PROTO (tcp, udp, all) PORT of this host on the gateway and keeps it alive until Ctrl-C.\n\n"
	    "  -e, --external-port N   suggest external port N\n"
	    "      --external-address A  suggest external address A\n"
	    "      --lifetime S        requested lifetime in seconds (default 7200; renewed until exit)\n"
	    "      --prefer-failure    fail rather than take another port than --external-port\n"
	    "      --third-party ADDR  map for another host ADDR (PCP THIRD_PARTY)\n"
	    "      --filter A[/P][,PORT]  only this remote peer may connect (repeatable, PCP FILTER)\n"
	    "      --description TEXT  describe the mapping (PCP DESCRIPTION)\n"
	    "      --pair              RTP/RTCP: map PORT and PORT+1 to an even external pair\n"
	    "  -6, --ipv6              IPv6 mapping (a firewall pinhole); default IPv4\n"
	    "      --once              map, print the result and exit (the mapping lives its lifetime)\n"
	    "      --daemon            hand the mapping to pcpmapd, which keeps it (persistent) after exit\n"
	    "      --socket PATH       pcpmapd's control socket, with --daemon\n"
	    "      --protocol LIST     protocols to use, in the order to prefer, e.g. pcp or upnp,pcp\n"
	    "      --allow-degrade     map even if the gateway's protocol cannot express --filter,\n"
	    "                          --prefer-failure or --description (the result says what was dropped)\n"
	    "  -g, --gateway ADDR      gateway address (default: the default route's gateway)\n"
	    "      --no-cache          probe the gateway as if never seen (no gateway cache read or "
	    "written)\n"
	    "  -t, --timeout MS        how long to wait for the first answer (default 3000)\n"
	    "  -j, --json              JSON lines on stdout\n"
	    "  -v, --verbose           protocol trace on stderr (-vv adds bytes and debug logs)\n",
	    prog);
}

static void help_peer(void)
{
	printf("Usage: %s peer PROTO PORT PEER_ADDR PEER_PORT [options]\n"
	       "Creates a PCP PEER mapping for the connection from local PORT to PEER_ADDR:PEER_PORT and "
	       "keeps it\n"
	       "alive until Ctrl-C. Options as for 'map' (-e, --lifetime, --third-party, --description, -6,\n"
	       "--once, -g, -t, -j, -v).\n",
	       prog);
}

static void help_unmap(void)
{
	printf("Usage: %s unmap PROTO PORT --nonce HEX [options]\n"
	       "       %s unmap PROTO PORT --protocol natpmp|upnp [-e EXTERNAL_PORT] [options]\n"
	       "Deletes a mapping made earlier (e.g. by 'map --once', which prints this command). Exits\n"
	       "non-zero, saying why, when nothing was deleted.\n"
	       "  --nonce HEX            the mapping's 24-hex-digit PCP nonce\n"
	       "  --protocol natpmp|upnp a mapping made through NAT-PMP or UPnP (no nonce)\n"
	       "  -e, --external-port N  UPnP: the mapping's external port (default PORT)\n"
	       "  -6, --third-party, -g, -t, -j, -v as for 'map'\n",
	       prog, prog);
}

static void help_announce(void)
{
	printf("Usage: %s announce [options]\n"
	       "Sends a PCP ANNOUNCE to the gateway and prints its epoch, version and round-trip time.\n"
	       "  -g, --gateway ADDR, -t, --timeout MS, -j, --json, -v, --verbose\n",
	       prog);
}

static void fill_request(struct opts *o, struct pcpmap_request *req)
{
	req->lifetime = o->lifetime;
	req->suggested_port = o->ext_port;
	req->suggested_addr = o->ext_addr;
	req->prefer_failure = o->prefer_failure;
	req->third_party = o->third_party;
	req->filters = o->filters;
	req->n_filters = o->n_filters;
	req->description = o->description;
	req->port_pair = o->pair;
	req->external_family = o->family ? o->family : AF_INET;
	req->protocols = o->protocols;
	req->allow_degrade = o->allow_degrade;
	/* Handed to the daemon, the mapping outlives this command. */
	req->persistent = o->daemon;
}

static int cmd_map(int argc, char **argv, struct opts *o)
{
	int r = parse_opts("map", argc, argv, o, help_map);
	if (r)
		return r;
	if (argc - optind != 2)
		return usage_error("map", "%s", "needs PROTO and PORT, e.g. 'map tcp 8080'");
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	uint8_t proto;
	uint32_t port;
	if (parse_proto(argv[optind], &proto) < 0)
		return usage_error("map", "PROTO is tcp, udp or all, not '%s'", argv[optind]);
	if (parse_u32(argv[optind + 1], proto == 0 ? 0 : 1, 65535, &port) < 0)
		return usage_error("map", "PORT is 1-65535, not '%s'", argv[optind + 1]);
	req.ip_proto = proto;
	req.internal_port = (uint16_t)port;
	fill_request(o, &req);
	return run_mapping(o, &req, "map");
}

static int cmd_peer(int argc, char **argv, struct opts *o)
{
	int r = parse_opts("peer", argc, argv, o, help_peer);
	if (r)
		return r;
	if (argc - optind != 4)
		return usage_error("peer", "%s", "needs PROTO PORT PEER_ADDR PEER_PORT");
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	uint8_t proto;
	uint32_t port, pport;
	if (parse_proto(argv[optind], &proto) < 0 || proto == 0)
		return usage_error("peer", "PROTO is tcp or udp, not '%s'", argv[optind]);
	if (parse_u32(argv[optind + 1], 1, 65535, &port) < 0)
		return usage_error("peer", "PORT is 1-65535, not '%s'", argv[optind + 1]);
	if (parse_u32(argv[optind + 3], 1, 65535, &pport) < 0)
		return usage_error("peer", "PEER_PORT is 1-65535, not '%s'", argv[optind + 3]);
	struct in6_addr bin;
	if (inet_pton(AF_INET, argv[optind + 2], &bin) != 1 &&
	    inet_pton(AF_INET6, argv[optind + 2], &bin) != 1)
		return usage_error("peer", "PEER_ADDR '%s' is not an IPv4 or IPv6 address", argv[optind + 2]);
	if (o->prefer_failure || o->n_filters || o->pair)
		return usage_error("peer", "%s", "--prefer-failure, --filter and --pair are for 'map' only");
	req.ip_proto = proto;
	req.internal_port = (uint16_t)port;
	req.peer_addr = argv[optind + 2];
	req.peer_port = (uint16_t)pport;
	fill_request(o, &req);
	if (!o->family && strchr(req.peer_addr, ':'))
		req.external_family = AF_INET6;
	return run_mapping(o, &req, "peer");
}

/* What to try after a delete that did not happen. */
static const char *unmap_advice(const struct opts *o, const struct pcpmap_mapping_info *i)
{
	bool upnp = i->proto == PCPMAP_PROTO_UPNP ||
		    (o->protocols && o->protocols == PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP));
	switch (-i->error) {
	case ENOENT:
		if (upnp && o->family == AF_INET6)
			return "a UPnP pinhole closes when its lease ends; only the process that made it can "
			       "delete it sooner";
		return upnp ? "UPnP finds a mapping by its external port: give it with -e as 'map --once' "
			      "printed it ('to delete it: ...')"
			    : "check PROTO and PORT against what 'map --once' printed";
	case EACCES:
		return upnp ? "that external port now maps to another client or port: it is not this mapping"
			    : "PCP deletes only with the nonce the mapping was made with (--nonce, as 'map "
			      "--once' printed it)";
	case ETIMEDOUT:
		return "the gateway did not answer: check --gateway, or allow more time with --timeout";
	case ECONNREFUSED:
	case EOPNOTSUPP:
	case EPROTONOSUPPORT:
		return "the gateway does not answer this protocol: name the one the mapping was made with "
		       "(--protocol pcp, natpmp or upnp)";
	}
	return "run it again with -v to see what the gateway answered";
}

static int cmd_unmap(int argc, char **argv, struct opts *o)
{
	int r = parse_opts("unmap", argc, argv, o, help_unmap);
	if (r)
		return r;
	if (argc - optind != 2)
		return usage_error("unmap", "%s", "needs PROTO and PORT");
	bool pcp = !o->protocols || (o->protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP));
	if (pcp && !o->nonce_hex)
		return usage_error(
		    "unmap", "%s",
		    "needs --nonce (printed by 'map --once'): PCP deletes only with the same nonce "
		    "(or --protocol natpmp|upnp for mappings made through those)");
	uint8_t nonce[12];
	if (o->nonce_hex && parse_nonce(o->nonce_hex, nonce) < 0)
		return usage_error("unmap", "--nonce wants 24 hex digits, not '%s'", o->nonce_hex);
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	uint8_t proto;
	uint32_t port;
	if (parse_proto(argv[optind], &proto) < 0)
		return usage_error("unmap", "PROTO is tcp, udp or all, not '%s'", argv[optind]);
	if (parse_u32(argv[optind + 1], proto == 0 ? 0 : 1, 65535, &port) < 0)
		return usage_error("unmap", "PORT is 1-65535, not '%s'", argv[optind + 1]);
	req.ip_proto = proto;
	req.internal_port = (uint16_t)port;
	fill_request(o, &req);
	req.nonce = o->nonce_hex ? nonce : NULL;
	pcpmap_client *c;
	if (make_client(o, &c) < 0)
		return EXIT_INTERNAL;
	struct pcpmap_mapping_info info;
	memset(&info, 0, sizeof(info));
	r = pcpmap_unmap_sync(c, &req, o->timeout_ms, &info);
	pcpmap_client_free(c);
	if (r == 0) {
		if (o->json)
			print_info(o, "deleted", &info);
		else
			printf("deleted %s %u via %s\n", proto_str(proto), (unsigned)port, info.server);
		return EXIT_OK;
	}
	info.error = r;
	/* The request names what was asked even when nothing answered. */
	info.ip_proto = proto;
	info.internal_port = (uint16_t)port;
	if (!info.server[0] && o->gateway)
		snprintf(info.server, sizeof(info.server), "%s", o->gateway);
	print_info(o, "failed", &info);
	if (!o->json)
		fprintf(stderr, "%s unmap: nothing was deleted; %s\n", prog, unmap_advice(o, &info));
	return exit_code_for(r);
}

static void announce_cb(pcpmap_client *c, const struct pcpmap_server_info *i, void *ud)
{
	struct run_state *st = ud;
	st->done = true;
	st->err = i->error;
	if (st->o->json) {
		printf("{\"event\":\"announce\",\"server\":");
		json_str(stdout, i->server);
		printf(",\"protocol\":\"%s\",\"version\":%d,\"epoch\":%" PRIu32 ",\"rtt_us\":%" PRIu32
		       ",\"client_address\":",
		       pcpmap_proto_name(i->proto), i->version, i->epoch, i->rtt_usec);
		json_str(stdout, i->client_addr);
		if (i->error)
			printf(",\"error\":{\"errno\":%d,\"message\":\"%s\"}", -i->error,
			       pcpmap_strerror(i->error));
		printf("}\n");
	} else if (i->error) {
		printf("announce to %s failed: %s\n", i->server, pcpmap_strerror(i->error));
	} else {
		printf("%s at %s: version %d, epoch %" PRIu32 " s, round trip %.3f ms, our address %s\n",
		       pcpmap_proto_name(i->proto), i->server, i->version, i->epoch, i->rtt_usec / 1000.0,
		       i->client_addr);
	}
	pcpmap_client_stop(c);
}

static int cmd_announce(int argc, char **argv, struct opts *o)
{
	int r = parse_opts("announce", argc, argv, o, help_announce);
	if (r)
		return r;
	if (argc != optind)
		return usage_error("announce", "unexpected argument '%s'", argv[optind]);
	pcpmap_client *c;
	if (make_client(o, &c) < 0)
		return EXIT_INTERNAL;
	struct run_state st = { .o = o };
	r = pcpmap_client_announce(c, o->timeout_ms, announce_cb, &st);
	if (r < 0) {
		fprintf(stderr, "%s announce: %s\n", prog, pcpmap_strerror(r));
		pcpmap_client_free(c);
		return exit_code_for(r);
	}
	while (!st.done) {
		r = pcpmap_client_run(c, o->timeout_ms + 1000);
		if (r < 0)
			break;
	}
	pcpmap_client_free(c);
	return st.done ? exit_code_for(st.err) : EXIT_TIMEOUT;
}

static void help_probe(void)
{
	printf(
	    "Usage: %s probe [options]\n"
	    "Asks the gateway which protocols it answers (PCP, NAT-PMP, UPnP IGD), with round-trip times,\n"
	    "epoch and external address, and which one pcpmap would use.\n"
	    "  -g, --gateway ADDR, -t, --timeout MS (default 3000), --protocol LIST, -j, --json, -v\n",
	    prog);
}

static void print_proto_json(const char *key, const struct pcpmap_server_info *i, bool comma)
{
	printf("\"%s\":{\"tried\":%s", key, i->proto != PCPMAP_PROTO_NONE ? "true" : "false");
	if (i->proto != PCPMAP_PROTO_NONE) {
		printf(",\"answers\":%s,\"server\":", i->error ? "false" : "true");
		json_str(stdout, i->server);
		printf(",\"version\":%d,\"epoch\":%" PRIu32 ",\"rtt_us\":%" PRIu32 ",\"external_address\":",
		       i->version, i->epoch, i->rtt_usec);
		json_str(stdout, i->external_addr);
		printf(",\"detail\":");
		json_str(stdout, i->detail);
		if (i->error)
			printf(",\"error\":{\"errno\":%d,\"message\":\"%s\"}", -i->error,
			       pcpmap_strerror(i->error));
	}
	printf("}%s", comma ? "," : "");
}

static void print_proto_line(const char *name, const struct pcpmap_server_info *i)
{
	if (i->proto == PCPMAP_PROTO_NONE) {
		printf("  %-8s not tried\n", name);
		return;
	}
	if (i->error) {
		printf("  %-8s no   (%s)\n", name, pcpmap_strerror(i->error));
		return;
	}
	printf("  %-8s yes  ", name);
	if (i->proto == PCPMAP_PROTO_PCP)
		printf("version %d, ", i->version);
	if (i->proto != PCPMAP_PROTO_UPNP)
		printf("epoch %" PRIu32 " s, ", i->epoch);
	if (i->detail[0])
		printf("%s, ", i->detail);
	printf("%.2f ms", i->rtt_usec / 1000.0);
	if (i->external_addr[0])
		printf(", external %s", i->external_addr);
	printf("\n");
}

static int cmd_probe(int argc, char **argv, struct opts *o)
{
	o->timeout_ms = 3000;
	int r = parse_opts("probe", argc, argv, o, help_probe);
	if (r)
		return r;
	if (argc != optind)
		return usage_error("probe", "unexpected argument '%s'", argv[optind]);
	pcpmap_client *c;
	if (make_client(o, &c) < 0)
		return EXIT_INTERNAL;
	bool tty = isatty(STDERR_FILENO) && !o->json && !o->verbose;
	if (tty)
		fprintf(stderr, "probing the gateway...\r");
	struct pcpmap_probe_result res;
	r = pcpmap_probe_sync(c, o->timeout_ms, &res);
	if (tty)
		fprintf(stderr, "                      \r");
	pcpmap_client_free(c);
	if (r < 0) {
		fprintf(stderr, "%s probe: %s%s\n", prog, pcpmap_strerror(r),
			r == -ENETUNREACH ? " (no default route; name the gateway with --gateway)" : "");
		return exit_code_for(r);
	}
	if (o->json) {
		printf("{\"event\":\"probe\",\"gateway\":");
		json_str(stdout, res.gateway);
		printf(",\"protocols\":{");
		print_proto_json("pcp", &res.pcp, true);
		print_proto_json("natpmp", &res.natpmp, true);
		print_proto_json("upnp", &res.upnp, false);
		printf("},\"chosen\":\"%s\",\"external_address\":", pcpmap_proto_name(res.chosen));
		json_str(stdout, res.external_addr);
		printf(",\"external_is_private\":%s}\n", res.external_is_private ? "true" : "false");
	} else {
		printf("gateway %s\n", res.gateway);
		print_proto_line("PCP", &res.pcp);
		print_proto_line("NAT-PMP", &res.natpmp);
		print_proto_line("UPnP", &res.upnp);
		if (res.chosen == PCPMAP_PROTO_NONE)
			printf("no port-mapping protocol answers at %s: the gateway may have PCP, NAT-PMP "
			       "and UPnP "
			       "disabled, or a firewall drops them\n",
			       res.gateway);
		else
			printf("pcpmap uses %s%s%s\n", pcpmap_proto_name(res.chosen),
			       res.external_addr[0] ? "; external address " : "", res.external_addr);
		if (res.external_is_private)
			printf("warning: %s is a private or shared address: another NAT (double NAT or "
			       "carrier-grade "
			       "NAT) sits beyond this gateway, so mapped ports are likely unreachable from "
			       "the internet\n",
			       res.external_addr);
	}
	return res.chosen == PCPMAP_PROTO_NONE ? EXIT_NO_SUPPORT : EXIT_OK;
}

static void help_external(void)
{
	printf("Usage: %s external-address [options]\n"
	       "Prints the gateway's external address, as the protocol pcpmap uses reports it.\n"
	       "  -g, --gateway ADDR, -t, --timeout MS (default 3000), --protocol LIST, -j, --json, -v\n",
	       prog);
}

static int cmd_external(int argc, char **argv, struct opts *o)
{
	o->timeout_ms = 3000;
	int r = parse_opts("external-address", argc, argv, o, help_external);
	if (r)
		return r;
	if (argc != optind)
		return usage_error("external-address", "unexpected argument '%s'", argv[optind]);
	pcpmap_client *c;
	if (make_client(o, &c) < 0)
		return EXIT_INTERNAL;
	struct pcpmap_probe_result res;
	r = pcpmap_probe_sync(c, o->timeout_ms, &res);
	pcpmap_client_free(c);
	if (r < 0) {
		fprintf(stderr, "%s external-address: %s\n", prog, pcpmap_strerror(r));
		return exit_code_for(r);
	}
	if (!res.external_addr[0]) {
		fprintf(stderr,
			"%s external-address: no protocol at %s told the external address (run '%s probe')\n",
			prog, res.gateway, prog);
		return res.chosen == PCPMAP_PROTO_NONE ? EXIT_NO_SUPPORT : EXIT_TIMEOUT;
	}
	if (o->json) {
		printf("{\"event\":\"external-address\",\"external_address\":");
		json_str(stdout, res.external_addr);
		printf(",\"protocol\":\"%s\",\"gateway\":", pcpmap_proto_name(res.chosen));
		json_str(stdout, res.gateway);
		printf(",\"external_is_private\":%s}\n", res.external_is_private ? "true" : "false");
	} else {
		printf("%s\n", res.external_addr);
		if (res.external_is_private)
			fprintf(
			    stderr,
			    "warning: %s is a private or shared address: double NAT or carrier-grade NAT\n",
			    res.external_addr);
	}
	return EXIT_OK;
}

static void help_connections(void)
{
	printf(
	    "Usage: %s connections [PROTO] [--pick N] [options]\n"
	    "Lists this host's established TCP and connected UDP connections (IPv4 and IPv6), numbered;\n"
	    "PROTO (tcp, udp, all), -4 and -6 narrow the list. With --pick N, creates the PEER mapping of\n"
	    "connection N and keeps it alive until Ctrl-C, as 'peer' would.\n\n"
	    "      --pick N            map connection N of the list (as numbered with the same filters)\n"
	    "  -4, --ipv4 / -6, --ipv6 IPv4 or IPv6 connections only\n"
	    "  -e, --lifetime, --third-party, --description, --once, --protocol, --allow-degrade,\n"
	    "  -g, -t, -j, -v as for 'peer'\n",
	    prog);
}

static int cmd_connections(int argc, char **argv, struct opts *o)
{
	int r = parse_opts("connections", argc, argv, o, help_connections);
	if (r)
		return r;
	uint8_t proto = 0;
	if (argc - optind > 1)
		return usage_error("connections", "unexpected argument '%s'", argv[optind + 1]);
	if (argc - optind == 1 && parse_proto(argv[optind], &proto) < 0)
		return usage_error("connections", "PROTO is tcp, udp or all, not '%s'", argv[optind]);
	if (o->prefer_failure || o->n_filters || o->pair)
		return usage_error("connections", "%s",
				   "--prefer-failure, --filter and --pair are for 'map' only");
	struct cli_conn *conns;
	size_t n;
	r = cli_connections_list(&conns, &n);
	if (r < 0) {
		fprintf(stderr, "%s connections: cannot read the connection table: %s\n", prog, strerror(-r));
		return EXIT_INTERNAL;
	}
	n = cli_connections_filter(conns, n, proto, o->family);
	if (!o->pick) {
		cli_connections_print(stdout, conns, n, o->json);
		free(conns);
		return EXIT_OK;
	}
	if (o->pick > n) {
		free(conns);
		return usage_error("connections", "--pick %" PRIu32 ": the list has %zu connection%s",
				   o->pick, n, n == 1 ? "" : "s");
	}
	const struct cli_conn *c = &conns[o->pick - 1];
	if (!o->json) {
		char l[64], p[64];
		cli_conn_endpoint(c->family, c->local, c->lport, l, sizeof(l));
		cli_conn_endpoint(c->family, c->remote, c->rport, p, sizeof(p));
		printf("connection %" PRIu32 ": %s %s -> %s\n", o->pick, proto_str(c->proto), l, p);
	}
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.ip_proto = c->proto;
	req.internal_port = c->lport;
	req.peer_addr = c->remote;
	req.peer_port = c->rport;
	fill_request(o, &req);
	req.external_family = c->family; /* a dual-stack socket talking IPv4 is listed as IPv4 */
	r = run_mapping(o, &req, "connections");
	free(conns);
	return r;
}

static void help_list(void)
{
	printf("Usage: %s list [--watch] [--json] [--socket PATH]\n"
	       "Lists the mappings pcpmapd holds: owner, state, protocol, internal and external endpoints,\n"
	       "lifetime and when the next refresh goes out. --watch redraws every second until Ctrl-C.\n"
	       "  --socket PATH           pcpmapd's control socket (default $PCPMAPD_SOCKET, else\n"
	       "                          /run/pcpmapd/pcpmapd.sock)\n",
	       prog);
}

#ifdef PCPMAP_CLI_DAEMON
static void print_list(const struct opts *o, const struct pmd_ctl_mapping *ms, size_t n)
{
	if (!o->json)
		printf("%-4s %-6s %-11s %-8s %-5s %-28s %-28s %-9s %s\n", "ID", "OWNER", "STATE", "PROTOCOL",
		       "KIND", "INTERNAL", "EXTERNAL", "LIFETIME", "REFRESH");
	for (size_t i = 0; i < n; i++) {
		const struct pmd_ctl_mapping *m = &ms[i];
		const struct pcpmap_mapping_info *f = &m->info;
		char in[80], ex[80], refresh[32], ep[64];
		snprintf(in, sizeof(in), "%s %s", proto_str(f->ip_proto),
			 endpoint(ep, sizeof(ep), f->internal_addr, f->internal_port));
		endpoint(ep, sizeof(ep), f->external_addr[0] ? f->external_addr : "-", f->external_port);
		if (f->external_port2)
			snprintf(ex, sizeof(ex), "%s+%u", ep, f->external_port2);
		else
			snprintf(ex, sizeof(ex), "%s", ep);
		if (m->refresh_in == UINT32_MAX)
			snprintf(refresh, sizeof(refresh), "-");
		else
			snprintf(refresh, sizeof(refresh), "refreshing in %u s", m->refresh_in);
		if (o->json) {
			printf("{\"event\":\"mapping\",\"id\":%u,\"owner_uid\":%u,\"persistent\":%s,"
			       "\"state\":\"%s\","
			       "\"protocol\":\"%s\",\"kind\":\"%s\",\"transport\":\"%s\",\"internal\":{"
			       "\"address\":",
			       m->id, m->owner_uid, m->persistent ? "true" : "false",
			       pcpmap_state_name(f->state), pcpmap_proto_name(f->proto),
			       f->kind == PCPMAP_KIND_PEER ? "peer" : "map", proto_str(f->ip_proto));
			json_str(stdout, f->internal_addr);
			printf(",\"port\":%u},\"external\":{\"address\":", f->internal_port);
			json_str(stdout, f->external_addr);
			printf(",\"port\":%u},\"lifetime\":%" PRIu32 ",\"refresh_in\":%ld}\n",
			       f->external_port, f->lifetime,
			       m->refresh_in == UINT32_MAX ? -1L : (long)m->refresh_in);
			continue;
		}
		char lt[16];
		snprintf(lt, sizeof(lt), "%" PRIu32 " s", f->lifetime);
		printf("%-4u %-6u %-11s %-8s %-5s %-28s %-28s %-9s %s%s\n", m->id, m->owner_uid,
		       pcpmap_state_name(f->state), pcpmap_proto_name(f->proto),
		       f->kind == PCPMAP_KIND_PEER ? "peer" : "map", in, ex, lt, refresh,
		       m->persistent ? "  (persistent)" : "");
	}
	if (!o->json && !n)
		printf("(pcpmapd holds no mapping)\n");
	fflush(stdout);
}
#endif

static int cmd_list(int argc, char **argv, struct opts *o)
{
	int r = parse_opts("list", argc, argv, o, help_list);
	if (r)
		return r;
	if (argc != optind)
		return usage_error("list", "unexpected argument '%s'", argv[optind]);
#ifdef PCPMAP_CLI_DAEMON
	struct pmd_ctl *ctl;
	r = pmd_ctl_connect(o->socket, &ctl);
	if (r < 0) {
		fprintf(stderr,
			"%s list: cannot reach pcpmapd%s%s: %s (is it running? 'systemctl start pcpmapd')\n",
			prog, o->socket ? " at " : "", o->socket ? o->socket : "", strerror(-r));
		return EXIT_NO_SUPPORT;
	}
	int sfd = o->watch ? open_signalfd() : -1;
	bool tty = isatty(STDOUT_FILENO);
	for (;;) {
		struct pmd_ctl_mapping *ms = NULL;
		size_t n = 0;
		r = pmd_ctl_list(ctl, &ms, &n);
		if (r < 0) {
			fprintf(stderr, "%s list: %s\n", prog, strerror(-r));
			break;
		}
		if (o->watch && tty && !o->json)
			printf("\033[H\033[2J");
		print_list(o, ms, n);
		free(ms);
		if (!o->watch)
			break;
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		if (sfd >= 0 && poll(&pfd, 1, 1000) > 0)
			break; /* Ctrl-C */
	}
	if (sfd >= 0)
		close(sfd);
	pmd_ctl_close(ctl);
	return r < 0 ? EXIT_INTERNAL : EXIT_OK;
#else
	fprintf(stderr, "%s list: this pcpmap was built without pcpmapd support\n", prog);
	return EXIT_NO_SUPPORT;
#endif
}

static void help_main(void)
{
	printf("Usage: %s COMMAND [options]\n"
	       "Gets port mappings through the NAT gateway: PCP (RFC 6887), falling back to NAT-PMP and UPnP "
	       "IGD.\n\n"
	       "Commands:\n"
	       "  map PROTO PORT         map a port and keep it alive (--once to map and exit)\n"
	       "  peer PROTO PORT ADDR PORT  PEER mapping for an existing connection\n"
	       "  unmap PROTO PORT --nonce HEX  delete a mapping made with --once (as it printed)\n"
	       "  announce               ask the gateway for its PCP epoch\n"
	       "  probe                  which protocols the gateway answers, RTTs, external address\n"
	       "  external-address       print the gateway's external address\n"
	       "  connections [PROTO]    this host's connections; --pick N makes one's PEER mapping\n"
	       "  list [--watch]         the mappings pcpmapd holds\n"
	       "  daemon COMMAND         pcpmapd's control requests one by one (create, delete, list, "
	       "events...)\n"
	       "  top                    full-screen view: connections, mappings, events\n\n"
	       "'%s COMMAND --help' tells more. Exit codes: 0 success, 1 internal error, 2 usage,\n"
	       "3 no gateway or no supported protocol, 4 refused by the gateway, 5 timeout.\n",
	       prog, prog);
}

static int cmd_daemon(int argc, char **argv, struct opts *o)
{
	(void)o;
#ifdef PCPMAP_CLI_DAEMON
	return cli_daemon(argc, argv);
#else
	(void)argc;
	(void)argv;
	fprintf(stderr, "%s daemon: this pcpmap was built without pcpmapd support\n", prog);
	return EXIT_NO_SUPPORT;
#endif
}

#ifdef PCPMAP_CLI_TOP
/* Where the `top` module is: beside the tool in the build tree, else in the tool's private directory under
 * the library directory, found from the tool's own place (an install under any prefix works). */
static void top_module_path(char *buf, size_t len)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0 || !(exe[n] = '\0', slash = strrchr(exe, '/'))) {
		snprintf(buf, len, "%s", PCPMAP_TOP_MODULE_DIR "/" CLI_TOP_MODULE);
		return;
	}
	*slash = '\0';
	snprintf(buf, len, "%s/%s", exe, CLI_TOP_MODULE);
	if (access(buf, F_OK) == 0)
		return;
	if (PCPMAP_TOP_MODULE_DIR[0] == '/')
		snprintf(buf, len, "%s/%s", PCPMAP_TOP_MODULE_DIR, CLI_TOP_MODULE);
	else
		snprintf(buf, len, "%s/%s/%s", exe, PCPMAP_TOP_MODULE_DIR, CLI_TOP_MODULE);
}

static int cmd_top(int argc, char **argv, struct opts *o)
{
	char path[4200];
	int (*entry)(int, char **);

	(void)o;
	top_module_path(path, sizeof(path));
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "%s top: cannot load the full-screen view: %s\n", prog, dlerror());
		fprintf(stderr,
			"%s top: reinstall pcpmap, or use 'pcpmap list --watch' or 'pcpmap connections'\n",
			prog);
		return EXIT_NO_SUPPORT;
	}
	void *sym = dlsym(h, CLI_TOP_ENTRY);
	if (!sym) {
		fprintf(stderr, "%s top: %s is not this version's view (no %s): reinstall pcpmap\n", prog,
			path, CLI_TOP_ENTRY);
		dlclose(h);
		return EXIT_NO_SUPPORT;
	}
	/* POSIX makes dlsym()'s object pointer usable as a function pointer; memcpy keeps ISO C quiet. */
	memcpy(&entry, &sym, sizeof(entry));
	return entry(argc, argv); /* the module stays loaded: the process ends after it */
}
#else
static int cmd_top(int argc, char **argv, struct opts *o)
{
	(void)argc;
	(void)argv;
	(void)o;
	fprintf(stderr,
		"%s top: this pcpmap was built without ncurses (libncurses-dev); use 'pcpmap list --watch' "
		"or 'pcpmap connections'\n",
		prog);
	return EXIT_NO_SUPPORT;
}
#endif

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv, struct opts *o);
} commands[] = {
	/* clang-format off */
	{ "map", cmd_map },
	{ "peer", cmd_peer },
	{ "unmap", cmd_unmap },
	{ "announce", cmd_announce },
	{ "probe", cmd_probe },
	{ "external-address", cmd_external },
	{ "connections", cmd_connections },
	{ "list", cmd_list },
	{ "daemon", cmd_daemon },
	{ "top", cmd_top },
	/* clang-format on */
};

int main(int argc, char **argv)
{
	struct opts o;
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 3000;
	if (argc < 2)
		return usage_error(NULL, "%s", "needs a command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		help_main();
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("pcpmap %s\n", pcpmap_version());
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1, &o);
	return usage_error(NULL, "unknown command '%s'", argv[1]);
}
