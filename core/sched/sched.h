/*
 * Timer scheduler: an intrusive binary min-heap of timers ordered by (deadline, arm sequence), so timers with
 * equal deadlines fire in the order they were armed. Pure: the caller passes "now" in (env.h); nothing here
 * reads a clock. Not thread-safe; one scheduler per event loop.
 *
 * Timers are owned by their users; the scheduler only holds pointers. A timer must be cancelled (or have
 * fired) before its memory is released or handed to another scheduler.
 */
#ifndef PCPMAP_SCHED_SCHED_H
#define PCPMAP_SCHED_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sched_timer {
	uint64_t deadline; /* monotonic microseconds */
	uint64_t seq;      /* arm sequence: tie-break for equal deadlines */
	size_t idx;        /* slot in the scheduler's array; SIZE_MAX when not armed */
	void (*fn)(struct sched_timer *t, uint64_t now, void *arg);
	void *arg;
	const char *name; /* for logs and debugging only */
};

struct sched {
	/* heap in [0, n); during sched_run, deferred timers in [cap - ndefer, cap) */
	struct sched_timer **heap;
	size_t n, cap;
	uint64_t seq;  /* next arm sequence */
	size_t ndefer; /* timers armed by callbacks of the running sched_run for <= its now */
	bool running;  /* inside sched_run */
};

void sched_init(struct sched *s);
/* Frees the array; timers are owned by their users and are not touched (they may already be freed). */
void sched_fini(struct sched *s);
void sched_timer_init(struct sched_timer *t, void (*fn)(struct sched_timer *, uint64_t, void *), void *arg,
		      const char *name);
/* (Re)arms t for deadline with a fresh sequence number; -ENOMEM only when the array cannot grow. */
int sched_arm(struct sched *s, struct sched_timer *t, uint64_t deadline);
/* No-op when t is not armed. */
void sched_cancel(struct sched *s, struct sched_timer *t);
bool sched_armed(const struct sched_timer *t);
/* Earliest deadline among armed timers, UINT64_MAX when none. */
uint64_t sched_next(const struct sched *s);
/* Number of armed timers. */
size_t sched_count(const struct sched *s);
/*
 * Fires the timers due at now (deadline <= now) in (deadline, seq) order, each disarmed before its fn runs.
 * A callback may arm, re-arm or cancel any timer. Only timers armed before this call are fired: one armed
 * (or re-armed) by a callback for <= now waits for the next sched_run, so a self-re-arming timer cannot loop.
 * max bounds the number fired (0 = unbounded). Returns the number fired. Not reentrant: a nested call from a
 * callback fires nothing and returns 0.
 */
size_t sched_run(struct sched *s, uint64_t now, size_t max);

#endif /* PCPMAP_SCHED_SCHED_H */
