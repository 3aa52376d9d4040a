/* Time to a mapping. Run inside the lab's client namespace (bench/ttm.sh does it):
 *   raw        one PCP MAP round trip on a pre-built packet (the floor)
 *   inproc     cold start to MAPPED in-process: client creation (netlink gateway lookup, socket) + MAP,
 *              without the gateway cache (cold) and with it (warm: the gateway remembered, verified by the MAP)
 *   pcpmap     the whole `pcpmap map tcp PORT --once` process
 *   natpmpc    `natpmpc -g GW -a PORT PORT tcp 3600`, the same job through NAT-PMP
 * Each mapping is deleted after it is measured, outside the timed part. Prints medians of N runs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "wire/pcp_wire.h"

extern char **environ;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double median_ms(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return (n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0) / 1000.0;
}

static uint64_t raw_once(const char *gw, uint16_t port, bool del)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PCP_SERVER_PORT) };
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	inet_pton(AF_INET, gw, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&me, &len) < 0) {
		perror("raw socket");
		exit(1);
	}
	struct pcp_msg m;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_MAP;
	m.lifetime = del ? 0 : 600;
	pcp_addr_from_v4(&m.client_addr, &me.sin_addr);
	memset(m.nonce, 0x5a, sizeof(m.nonce));
	m.nonce[0] = (uint8_t)port;
	m.protocol = IPPROTO_TCP;
	m.internal_port = port;
	pcp_addr_any(&m.ext_addr, AF_INET);
	uint8_t buf[PCP_MAX_MSG];
	size_t n;
	if (pcp_encode(&m, NULL, buf, sizeof(buf), &n) < 0)
		exit(1);
	uint64_t t0 = pcpmap_now_usec();
	if (send(fd, buf, n, 0) < 0)
		exit(1);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 2000) <= 0 || recv(fd, buf, sizeof(buf), 0) < 24) {
		fprintf(stderr, "raw: no answer\n");
		exit(1);
	}
	uint64_t t1 = pcpmap_now_usec();
	close(fd);
	return t1 - t0;
}

/* cold: the gateway cache neither read nor written (the gateway probed from scratch); warm: the cache the
 * previous warm run left. */
static uint64_t inproc_once(uint16_t port, bool warm)
{
	uint64_t t0 = pcpmap_now_usec();
	pcpmap_client *c;
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.no_gw_cache = !warm;
	if (pcpmap_client_new(&c, &cfg) < 0)
		exit(1);
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = port;
	req.lifetime = 600;
	pcpmap_mapping *m;
	struct pcpmap_mapping_info info;
	int r = pcpmap_map_sync(c, &req, 5000, &m, &info);
	uint64_t t1 = pcpmap_now_usec();
	if (r < 0) {
		fprintf(stderr, "inproc: %s\n", pcpmap_strerror(r));
		exit(1);
	}
	pcpmap_mapping_free(m);
	pcpmap_client_flush(c, 2000);
	pcpmap_client_free(c);
	return t1 - t0;
}

static uint64_t spawn_once(char *const argv[])
{
	pid_t pid;
	int st;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	uint64_t t0 = pcpmap_now_usec();
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
		perror(argv[0]);
		exit(1);
	}
	waitpid(pid, &st, 0);
	uint64_t t1 = pcpmap_now_usec();
	posix_spawn_file_actions_destroy(&fa);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s exited with status %d\n", argv[0], WEXITSTATUS(st));
		exit(1);
	}
	return t1 - t0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: bench_ttm GATEWAY PCPMAP_BIN RUNS [NATPMPC_BIN]\n");
		return 2;
	}
	const char *gw = argv[1];
	int runs = atoi(argv[3]);
	if (runs < 1 || runs > 1000)
		return 2;
	uint64_t *raw = calloc((size_t)runs, sizeof(uint64_t)),
		 *inproc = calloc((size_t)runs, sizeof(uint64_t));
	uint64_t *proc = calloc((size_t)runs, sizeof(uint64_t)),
		 *npmp = calloc((size_t)runs, sizeof(uint64_t)),
		 *warm = calloc((size_t)runs, sizeof(uint64_t));
	if (!raw || !inproc || !proc || !npmp || !warm)
		return 1;
	char portbuf[16], gwbuf[64];
	/* posix_spawn wants char *const argv[]: writable copies of the fixed words. */
	static char w_map[] = "map", w_tcp[] = "tcp", w_once[] = "--once", w_lt[] = "--lifetime",
		    w_600[] = "600", w_g[] = "-g", w_a[] = "-a";
	snprintf(gwbuf, sizeof(gwbuf), "%s", gw);
	/* Interleave the four so drift in the machine's load hits them alike. */
	for (int i = 0; i < runs; i++) {
		uint16_t base = (uint16_t)(20000 + i * 5);
		raw[i] = raw_once(gw, base, false);
		raw_once(gw, base, true);
		inproc[i] = inproc_once((uint16_t)(base + 1), false);
		warm[i] = inproc_once((uint16_t)(base + 4), true);
		snprintf(portbuf, sizeof(portbuf), "%u", base + 2);
		char *pm[] = { argv[2], w_map, w_tcp, portbuf, w_once, w_lt, w_600, NULL };
		proc[i] = spawn_once(pm);
		if (argc > 4) {
			snprintf(portbuf, sizeof(portbuf), "%u", base + 3);
			char *np[] = { argv[4], w_g, gwbuf, w_a, portbuf, portbuf, w_tcp, w_600, NULL };
			npmp[i] = spawn_once(np);
		}
	}
	double r = median_ms(raw, runs), ip = median_ms(inproc, runs), p = median_ms(proc, runs);
	printf("time to a mapping through PCP, miniupnpd in namespaces, median of %d runs:\n", runs);
	printf("  raw PCP MAP round trip            %8.3f ms\n", r);
	printf("  pcpmap in-process, cold start     %8.3f ms  (%.2fx raw)\n", ip, ip / r);
	double wm = median_ms(warm, runs);
	printf("  pcpmap in-process, warm start     %8.3f ms  (%.2fx raw)\n", wm, wm / r);
	printf("  pcpmap map --once, whole process  %8.3f ms  (warm)\n", p);
	if (argc > 4) {
		double n = median_ms(npmp, runs);
		printf("  natpmpc -a, whole process         %8.3f ms  (pcpmap process / natpmpc = %.2f)\n", n,
		       p / n);
	}
	free(raw);
	free(inproc);
	free(proc);
	free(npmp);
	free(warm);
	return 0;
}
