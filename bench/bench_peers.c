/* The peer tools' cost of one mapping request, as the reference unit for figures they have no equivalent
 * of (natpmpc and upnpc cannot hold 10,000 mappings, renew them or restore them). Run inside the lab's
 * client namespace (bench/daemon.sh and bench/restore.sh do it): maps a TCP port with `natpmpc -a` and with
 * `upnpc -i -a` (discovery included, as a user runs it; -i: miniupnpc calls the lab's IGD "not
 * connected" because its external address is a documentation address) RUNS times each, interleaved, and
 * prints per tool the median wall time of the whole process, its CPU time (user + system, from wait4) and
 * its peak resident memory. Each mapping is deleted after it is measured, outside the timed part. One
 * line per tool:
 *   peer NAME wall_ms=W cpu_us=C maxrss_kb=M runs=R
 *
 * usage: bench_peers GATEWAY RUNS NATPMPC UPNPC
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct run {
	uint64_t wall_us, cpu_us;
	long maxrss_kb;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Runs argv with stdout and stderr on /dev/null; fails unless it exits 0. */
static int spawn(char *const argv[], struct run *ret)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int st;
	struct rusage ru;
	uint64_t t0 = now_us();
	int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e) {
		fprintf(stderr, "bench_peers: %s: %s\n", argv[0], strerror(e));
		return -e;
	}
	if (wait4(pid, &st, 0, &ru) < 0)
		return -errno;
	uint64_t t1 = now_us();
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "bench_peers: %s %s %s %s failed (status %d)\n", argv[0], argv[1], argv[2],
			argv[3], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return -EIO;
	}
	if (ret) {
		ret->wall_us = t1 - t0;
		ret->cpu_us = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
			      (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
		ret->maxrss_kb = ru.ru_maxrss;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, const struct run *r, int n)
{
	uint64_t *v = calloc((size_t)n, sizeof(*v));
	if (!v)
		exit(1);
	double med[3];
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < n; i++)
			v[i] = k == 0 ? r[i].wall_us : k == 1 ? r[i].cpu_us : (uint64_t)r[i].maxrss_kb;
		qsort(v, (size_t)n, sizeof(*v), cmp_u64);
		med[k] = n % 2 ? (double)v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
	}
	printf("peer %s wall_ms=%.3f cpu_us=%.0f maxrss_kb=%.0f runs=%d\n", name, med[0] / 1000.0, med[1],
	       med[2], n);
	free(v);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_peers GATEWAY RUNS NATPMPC UPNPC\n");
		return 2;
	}
	int runs = atoi(argv[2]);
	if (runs < 1 || runs > 1000)
		return 2;
	/* upnpc -a wants the internal address: ours towards the gateway. */
	struct sockaddr_in gw = { .sin_family = AF_INET, .sin_port = htons(5351) }, me;
	socklen_t len = sizeof(me);
	char self[INET_ADDRSTRLEN];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (inet_pton(AF_INET, argv[1], &gw.sin_addr) != 1 || fd < 0 ||
	    connect(fd, (struct sockaddr *)&gw, sizeof(gw)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&me, &len) < 0 ||
	    !inet_ntop(AF_INET, &me.sin_addr, self, sizeof(self))) {
		fprintf(stderr, "bench_peers: no route to %s\n", argv[1]);
		return 1;
	}
	close(fd);
	struct run *np = calloc((size_t)runs, sizeof(*np)), *up = calloc((size_t)runs, sizeof(*up));
	if (!np || !up)
		return 1;
	static char w_g[] = "-g", w_i[] = "-i", w_a[] = "-a", w_d[] = "-d", w_tcp[] = "tcp", w_600[] = "600",
		    w_0[] = "0";
	char gwbuf[64], port[16];
	snprintf(gwbuf, sizeof(gwbuf), "%s", argv[1]);
	for (int i = 0; i < runs; i++) {
		snprintf(port, sizeof(port), "%d", 45000 + i * 2);
		char *a[] = { argv[3], w_g, gwbuf, w_a, port, port, w_tcp, w_600, NULL };
		char *d[] = { argv[3], w_g, gwbuf, w_a, port, port, w_tcp, w_0, NULL };
		if (spawn(a, &np[i]) < 0 || spawn(d, NULL) < 0)
			return 1;
		snprintf(port, sizeof(port), "%d", 45001 + i * 2);
		char *ua[] = { argv[4], w_i, w_a, self, port, port, w_tcp, w_600, NULL };
		char *ud[] = { argv[4], w_i, w_d, port, w_tcp, NULL };
		if (spawn(ua, &up[i]) < 0 || spawn(ud, NULL) < 0)
			return 1;
	}
	report("natpmpc", np, runs);
	report("upnpc", up, runs);
	free(np);
	free(up);
	return 0;
}
