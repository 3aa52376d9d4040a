/*
 * Scheduler throughput: 1e6 operations (arm, re-arm, cancel, fire) among 100000 live timers, deadlines
 * spread over 1 s of simulated time. Prints operations per second per phase.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sched/sched.h"

#define LIVE   100000u
#define POOL   (2 * LIVE)
#define OPS    1000000u
#define SPREAD 1000000u /* deadlines within 1 s of now */

struct bench {
	struct sched s;
	struct sched_timer t[POOL];
	uint32_t live[POOL], idle[POOL], pos[POOL]; /* live/idle sets with O(1) random pick */
	size_t nlive, nidle;
	uint64_t rng, now, fired;
};

static uint64_t rnd(struct bench *b)
{
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	return b->rng;
}

static double secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void must_arm(struct bench *b, uint32_t i, uint64_t deadline)
{
	if (sched_arm(&b->s, &b->t[i], deadline) < 0) {
		fprintf(stderr, "bench_sched: out of memory\n");
		exit(1);
	}
}

/* Fired timers re-arm themselves, so the live count stays at LIVE. */
static void on_fire(struct sched_timer *t, uint64_t now, void *arg)
{
	struct bench *b = arg;

	b->fired++;
	must_arm(b, (uint32_t)(t - b->t), now + 1 + rnd(b) % SPREAD);
}

static void set_move(uint32_t *from, size_t *nfrom, uint32_t *to, size_t *nto, uint32_t *pos, size_t k)
{
	uint32_t i = from[k];

	from[k] = from[--*nfrom];
	pos[from[k]] = (uint32_t)k;
	to[*nto] = i;
	pos[i] = (uint32_t)(*nto)++;
}

static void swap_one(struct bench *b)
{
	size_t k = rnd(b) % b->nlive, j = rnd(b) % b->nidle;
	uint32_t i = b->idle[j];

	sched_cancel(&b->s, &b->t[b->live[k]]);
	set_move(b->live, &b->nlive, b->idle, &b->nidle, b->pos, k);
	must_arm(b, i, b->now + 1 + rnd(b) % SPREAD);
	set_move(b->idle, &b->nidle, b->live, &b->nlive, b->pos, b->pos[i]);
}

static void report(const char *what, uint64_t ops, double dt)
{
	printf("%-44s %8.0f ms  %6.2f Mops/s  %6.1f ns/op\n", what, dt * 1e3, (double)ops / dt / 1e6,
	       dt * 1e9 / (double)ops);
}

int main(void)
{
	struct bench *b = calloc(1, sizeof(*b));
	double t0;
	uint64_t ops;

	if (!b)
		return 1;
	b->rng = 0x9e3779b97f4a7c15ULL;
	b->now = 1000000;
	sched_init(&b->s);
	for (uint32_t i = 0; i < POOL; i++) {
		sched_timer_init(&b->t[i], on_fire, b, "bench");
		b->idle[i] = i;
		b->pos[i] = i;
	}
	b->nidle = POOL;

	t0 = secs();
	for (uint32_t n = 0; n < LIVE; n++) {
		uint32_t i = b->idle[b->nidle - 1];

		must_arm(b, i, b->now + 1 + rnd(b) % SPREAD);
		set_move(b->idle, &b->nidle, b->live, &b->nlive, b->pos, b->nidle - 1);
	}
	report("fill: arm 100000 new timers", LIVE, secs() - t0);

	t0 = secs();
	for (uint32_t n = 0; n < OPS; n++)
		must_arm(b, b->live[rnd(b) % b->nlive], b->now + 1 + rnd(b) % SPREAD);
	report("re-arm 1e6 (100000 live)", OPS, secs() - t0);

	t0 = secs();
	for (uint32_t n = 0; n < OPS / 2; n++)
		swap_one(b);
	report("cancel+arm 5e5 pairs = 1e6 ops (100000 live)", OPS, secs() - t0);

	t0 = secs();
	b->fired = 0;
	while (b->fired < OPS) {
		b->now += 50;
		sched_run(&b->s, b->now, 0);
	}
	report("fire+re-arm 1e6 (100000 live)", b->fired, secs() - t0);

	/* Mixed: a quarter each re-arm, cancel+arm, and run steps of 10 us. */
	t0 = secs();
	b->fired = 0;
	ops = 0;
	while (ops < OPS) {
		switch (rnd(b) % 4) {
		case 0:
		case 1:
			must_arm(b, b->live[rnd(b) % b->nlive], b->now + 1 + rnd(b) % SPREAD);
			ops++;
			break;
		case 2:
			swap_one(b);
			ops += 2;
			break;
		default:
			b->now += 10;
			b->fired = 0;
			sched_run(&b->s, b->now, 0);
			ops += 2 * b->fired;
			break;
		}
	}
	report("mixed 1e6 ops (fire+re-arm counts 2)", ops, secs() - t0);

	if (sched_count(&b->s) != LIVE) {
		fprintf(stderr, "bench_sched: %zu live timers, expected %u\n", sched_count(&b->s), LIVE);
		return 1;
	}
	sched_fini(&b->s);
	free(b);
	return 0;
}
