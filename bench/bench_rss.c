/* Memory of holding one mapping. Run inside the lab's client namespace (bench/rss.sh does it):
 *   library    bench_rss_holder: an application that makes one mapping with pcpmap_map_sync() through the
 *              shared libpcpmap and holds it (its smaps_rollup once mapped)
 *   pcpmap     `pcpmap map tcp PORT` holding its mapping (its smaps_rollup once it printed the mapping)
 *   natpmpc    `natpmpc -a ...` and upnpc `-a ...`: peak RSS of the whole run (they exit once mapped)
 * RSS counts resident pages of every mapping of the process, shared libraries included (what `ps` shows);
 * PSS shares those among the processes that map them. Prints kB and ratios. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

extern char **environ;

/* posix_spawn wants char *const argv[]: writable copies of fixed words (a benchmark may keep them). */
static char *w(const char *s)
{
	char *d = strdup(s);
	if (!d)
		exit(1);
	return d;
}

struct mem {
	long rss, pss;
};

static struct mem read_rollup(pid_t pid)
{
	char path[64], line[256];
	struct mem m = { -1, -1 };
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return m;
	while (fgets(line, sizeof(line), f)) {
		long v;
		if (sscanf(line, "Rss: %ld kB", &v) == 1)
			m.rss = v;
		else if (sscanf(line, "Pss: %ld kB", &v) == 1)
			m.pss = v;
	}
	fclose(f);
	return m;
}

/* Resident kB per mapped file of a process, the largest first. */
static void print_top(pid_t pid, FILE *out)
{
	char path[64], line[512], name[256] = "";
	struct {
		char name[160];
		long kb;
	} t[64];
	size_t n = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		long v;
		char perms[8], pathname[256] = "";
		unsigned long a, b, off;
		unsigned dmaj, dmin;
		unsigned long ino;
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %255s", &a, &b, perms, &off, &dmaj, &dmin, &ino,
			   pathname) >= 7) {
			snprintf(name, sizeof(name), "%s", pathname[0] ? pathname : "[anon]");
			continue;
		}
		if (sscanf(line, "Rss: %ld kB", &v) == 1 && v > 0) {
			size_t i = 0;
			while (i < n && strcmp(t[i].name, name) != 0)
				i++;
			if (i == n && n < 64) {
				snprintf(t[n].name, sizeof(t[n].name), "%s", name);
				t[n++].kb = 0;
			}
			if (i < n)
				t[i].kb += v;
		}
	}
	fclose(f);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (t[j].kb > t[i].kb) {
				__typeof__(t[0]) x = t[i];
				t[i] = t[j];
				t[j] = x;
			}
	for (size_t i = 0; i < n && i < 8; i++)
		fprintf(out, "      %6ld kB  %s\n", t[i].kb, t[i].name);
}

/* A holder (`pcpmap map tcp PORT`, or bench_rss_holder PORT) once it printed the mapping. */
static struct mem holder(const char *pcpmap, bool cli, uint16_t port, bool show)
{
	struct mem m = { -1, -1 };
	int p[2];
	if (pipe(p) < 0)
		return m;
	char portbuf[8];
	snprintf(portbuf, sizeof(portbuf), "%u", port);
	char *argv[] = { w(pcpmap), w("map"), w("tcp"), portbuf, w("--lifetime"), w("600"), NULL };
	char *hargv[] = { w(pcpmap), portbuf, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	pid_t pid;
	if (posix_spawn(&pid, pcpmap, &fa, NULL, cli ? argv : hargv, environ) != 0)
		return m;
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	char buf[512];
	ssize_t n = read(p[0], buf, sizeof(buf) - 1);
	if (n > 0) {
		usleep(300000);
		m = read_rollup(pid);
		if (show)
			print_top(pid, stdout);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	close(p[0]);
	return m;
}

/* Peak RSS of a whole run (kB), or -1. */
static long peak_of(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		return -1;
	posix_spawn_file_actions_destroy(&fa);
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return ru.ru_maxrss;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

static long median(long *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_long);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_rss GATEWAY PCPMAP_BIN HOLDER_BIN RUNS [CLIENT_ADDR]\n");
		return 2;
	}
	const char *gw = argv[1], *pm = argv[2], *hold = argv[3];
	int runs = atoi(argv[4]);
	const char *me = argc > 5 ? argv[5] : "192.168.77.2";
	if (runs < 1 || runs > 100)
		return 2;
	long lib[100], libp[100], cli[100], clip[100], cpeak[100], np[100], up[100];
	int nup = 0, nnp = 0;
	printf("memory of holding one mapping (kB, median of %d runs):\n", runs);
	for (int i = 0; i < runs; i++) {
		uint16_t base = (uint16_t)(41000 + i * 8);
		struct mem m = holder(hold, false, base, i == 0 && getenv("BENCH_RSS_SHOW"));
		lib[i] = m.rss;
		libp[i] = m.pss;
		if (getenv("BENCH_RSS_SHOW"))
			printf("    run %d: application RSS %ld kB%s\n", i + 1, lib[i],
			       i ? " (warm)" : " (cold)");
		m = holder(pm, true, (uint16_t)(base + 1), i == 0 && getenv("BENCH_RSS_SHOW"));
		cli[i] = m.rss;
		clip[i] = m.pss;
		char port[8], port2[8];
		snprintf(port, sizeof(port), "%u", base + 2);
		char *pmo[] = { w(pm), w("map"), w("tcp"), port, w("--once"), NULL };
		cpeak[i] = peak_of(pmo);
		snprintf(port, sizeof(port), "%u", base + 3);
		char *nat[] = { w("natpmpc"), w("-g"), w(gw), w("-a"), port, port, w("tcp"), w("600"), NULL };
		long v = peak_of(nat);
		if (v > 0)
			np[nnp++] = v;
		if (i < 3) { /* upnpc takes 2 s a run */
			snprintf(port2, sizeof(port2), "%u", base + 4);
			char *upc[] = { w("upnpc"), w("-i"), w("-a"), w(me), port2, port2, w("TCP"), NULL };
			v = peak_of(upc);
			if (v > 0)
				up[nup++] = v;
		}
	}
	long l = median(lib, runs), c = median(cli, runs), cp = median(cpeak, runs);
	printf("  application (libpcpmap.so), holding  RSS %6ld  PSS %6ld\n", l, median(libp, runs));
	printf("  pcpmap map, holding                  RSS %6ld  PSS %6ld\n", c, median(clip, runs));
	printf("  pcpmap map --once, peak              RSS %6ld\n", cp);
	if (nnp) {
		long n = median(np, nnp);
		printf("  natpmpc -a, peak                     RSS %6ld   (library / natpmpc %.2f, pcpmap "
		       "--once "
		       "peak / natpmpc %.2f)\n",
		       n, (double)l / (double)n, (double)cp / (double)n);
	}
	if (nup) {
		long u = median(up, nup);
		printf(
		    "  upnpc -i -a, peak                    RSS %6ld   (library / upnpc %.2f, pcpmap --once "
		    "peak / upnpc %.2f)\n",
		    u, (double)l / (double)u, (double)cp / (double)u);
	}
	return 0;
}
