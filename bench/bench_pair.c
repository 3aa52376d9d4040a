/* Times several commands interleaved: each run executes every command once, in order, so drift in the
 * machine's load hits them alike, and the ratio of each command to the reference (the last one) is taken
 * within each run. Prints per command the median time and the median of the per-run ratios.
 *   bench_pair RUNS BASE_PORT LABEL CMD ARGS... , LABEL CMD ARGS... , ...
 * "{port}" in an argument becomes BASE_PORT + 10 * run + the command's index. A command that exits non-zero
 * is counted as failed (its time still counts: time to the error). Used by bench/warm.sh. */
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

#define MAX_CMDS 8

struct cmd {
	const char *label;
	char **argv; /* into the program's argv, NULL-terminated copy */
	int argc;
	double *t, *ratio;
	int ok;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static double run_one(struct cmd *c, int port, int *ret_ok)
{
	char **args = calloc((size_t)c->argc + 1, sizeof(char *));
	if (!args)
		exit(1);
	for (int i = 0; i < c->argc; i++) {
		const char *a = c->argv[i], *p = strstr(a, "{port}");
		args[i] = malloc(strlen(a) + 8);
		if (!args[i])
			exit(1);
		if (p)
			sprintf(args[i], "%.*s%d%s", (int)(p - a), a, port, p + 6);
		else
			strcpy(args[i], a);
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	double t0 = now_ms();
	if (posix_spawnp(&pid, args[0], &fa, NULL, args, environ) != 0) {
		perror(args[0]);
		exit(1);
	}
	int st;
	waitpid(pid, &st, 0);
	double dt = now_ms() - t0;
	posix_spawn_file_actions_destroy(&fa);
	*ret_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	for (int i = 0; i < c->argc; i++)
		free(args[i]);
	free(args);
	return dt;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr,
			"usage: bench_pair RUNS BASE_PORT LABEL CMD [ARGS...] [, LABEL CMD [ARGS...]]...\n");
		return 2;
	}
	int runs = atoi(argv[1]), base = atoi(argv[2]);
	if (runs < 1 || runs > 500 || base < 1 || base + 10 * runs + MAX_CMDS > 65535)
		return 2;
	struct cmd cmds[MAX_CMDS];
	int n = 0;
	for (int i = 3; i < argc && n < MAX_CMDS;) {
		struct cmd *c = &cmds[n++];
		memset(c, 0, sizeof(*c));
		c->label = argv[i++];
		c->argv = &argv[i];
		while (i < argc && strcmp(argv[i], ",") != 0) {
			i++;
			c->argc++;
		}
		i++; /* the separator */
		if (!c->argc)
			return 2;
		c->t = calloc((size_t)runs, sizeof(double));
		c->ratio = calloc((size_t)runs, sizeof(double));
		if (!c->t || !c->ratio)
			return 1;
	}
	for (int r = 0; r < runs; r++) {
		for (int k = 0; k < n; k++) {
			int ok;
			cmds[k].t[r] = run_one(&cmds[k], base + 10 * r + k, &ok);
			cmds[k].ok += ok;
		}
		for (int k = 0; k < n; k++)
			cmds[k].ratio[r] = cmds[k].t[r] / cmds[n - 1].t[r];
	}
	for (int k = 0; k < n; k++) {
		struct cmd *c = &cmds[k];
		double med = median(c->t, runs), rat = median(c->ratio, runs);
		printf("  %-36s median %8.1f ms  (min %7.1f)  %3d/%d ok", c->label, med, c->t[0], c->ok,
		       runs);
		if (k < n - 1)
			printf("  %5.2fx %s", rat, cmds[n - 1].label);
		printf("\n");
	}
	return 0;
}
