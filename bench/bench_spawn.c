/* Times a command run RUNS times (a new port each run): prints the median, min and max wall time and how
 * many runs exited 0. "{port}" in the arguments becomes BASE_PORT + run. Used by bench/fallback.sh to put
 * pcpmap, natpmpc and upnpc side by side in the lab. */
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_spawn LABEL RUNS BASE_PORT COMMAND [ARGS... with {port}]\n");
		return 2;
	}
	const char *label = argv[1];
	int runs = atoi(argv[2]), base = atoi(argv[3]);
	if (runs < 1 || runs > 1000 || base < 1 || base + runs > 65535)
		return 2;
	int n = argc - 4;
	char **args = calloc((size_t)n + 1, sizeof(char *));
	char **bufs = calloc((size_t)n, sizeof(char *));
	uint64_t *t = calloc((size_t)runs, sizeof(uint64_t));
	if (!args || !bufs || !t)
		return 1;
	int ok = 0;
	for (int r = 0; r < runs; r++) {
		for (int i = 0; i < n; i++) {
			const char *a = argv[4 + i];
			const char *p = strstr(a, "{port}");
			free(bufs[i]);
			bufs[i] = malloc(strlen(a) + 8);
			if (!bufs[i])
				return 1;
			if (p)
				sprintf(bufs[i], "%.*s%d%s", (int)(p - a), a, base + r, p + 6);
			else
				strcpy(bufs[i], a);
			args[i] = bufs[i];
		}
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		pid_t pid;
		uint64_t t0 = now_us();
		if (posix_spawnp(&pid, args[0], &fa, NULL, args, environ) != 0) {
			perror(args[0]);
			return 1;
		}
		int st;
		waitpid(pid, &st, 0);
		t[r] = now_us() - t0;
		posix_spawn_file_actions_destroy(&fa);
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp);
	double med = (runs % 2 ? (double)t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2.0) / 1000.0;
	printf("  %-34s median %9.1f ms  (min %8.1f, max %8.1f)  %d/%d succeeded\n", label, med,
	       t[0] / 1000.0, t[runs - 1] / 1000.0, ok, runs);
	for (int i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(args);
	free(t);
	return 0;
}
