/*
 * Timer scheduler: (deadline, arm sequence) order, cancel, re-arm, callbacks that change the heap while it
 * runs, and a long random run checked against a naive model. The scheduler is what drives the RFC 6887
 * 8.1.1 retransmissions and 11.2.1 renewals, so a timer armed by a callback for "now" must wait for the
 * next run (no busy loop on a zero RT).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched/sched.h"

#define NT 16

struct world;

struct tmr {
	struct sched_timer t;
	struct world *w;
	int id;
	int fired;
	/* scripted actions of the callback */
	struct tmr *rearm_target;
	uint64_t rearm_deadline;
	struct tmr *cancel_target;
	int arm_many;    /* arm this many extra timers */
	bool nested_run; /* call sched_run from the callback */
};

struct world {
	struct sched s;
	struct tmr tm[NT];
	struct tmr extra[200];
	int log[256];
	size_t nlog;
	uint64_t next_seen; /* sched_next() seen inside a callback */
	size_t nested_ret;
};

static void on_fire(struct sched_timer *st, uint64_t now, void *arg)
{
	struct tmr *m = arg;
	struct world *w = m->w;

	(void)now;
	assert_ptr_equal(st, &m->t);
	assert_false(sched_armed(st)); /* disarmed before its fn runs */
	m->fired++;
	assert_true(w->nlog < sizeof(w->log) / sizeof(w->log[0]));
	w->log[w->nlog++] = m->id;
	if (m->rearm_target)
		assert_int_equal(sched_arm(&w->s, &m->rearm_target->t, m->rearm_deadline), 0);
	if (m->cancel_target)
		sched_cancel(&w->s, &m->cancel_target->t);
	for (int i = 0; i < m->arm_many; i++)
		assert_int_equal(sched_arm(&w->s, &w->extra[i].t, (uint64_t)(i % 7) * 10), 0);
	if (m->nested_run)
		w->nested_ret = sched_run(&w->s, UINT64_MAX, 0);
	w->next_seen = sched_next(&w->s);
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	sched_init(&w->s);
	for (int i = 0; i < NT; i++) {
		w->tm[i].w = w;
		w->tm[i].id = i;
		sched_timer_init(&w->tm[i].t, on_fire, &w->tm[i], "test");
	}
	for (int i = 0; i < 200; i++) {
		w->extra[i].w = w;
		w->extra[i].id = 100 + i;
		sched_timer_init(&w->extra[i].t, on_fire, &w->extra[i], "extra");
	}
	return w;
}

static void world_free(struct world *w)
{
	sched_fini(&w->s);
	free(w);
}

static void arm(struct world *w, int i, uint64_t deadline)
{
	assert_int_equal(sched_arm(&w->s, &w->tm[i].t, deadline), 0);
	assert_true(sched_armed(&w->tm[i].t));
}

static void expect_log(struct world *w, const int *ids, size_t n)
{
	assert_int_equal(w->nlog, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(w->log[i], ids[i]);
	w->nlog = 0;
}

#define EXPECT(w, ...)                                               \
	do {                                                         \
		static const int ids_[] = { __VA_ARGS__ };           \
		expect_log(w, ids_, sizeof(ids_) / sizeof(ids_[0])); \
	} while (0)

static void test_empty(void **state)
{
	struct world *w = world_new();

	(void)state;
	assert_int_equal(sched_next(&w->s), UINT64_MAX);
	assert_int_equal(sched_run(&w->s, UINT64_MAX, 0), 0);
	assert_int_equal(sched_count(&w->s), 0);
	assert_false(sched_armed(&w->tm[0].t));
	assert_int_equal(w->tm[0].t.idx, SIZE_MAX);
	sched_cancel(&w->s, &w->tm[0].t); /* not armed: no-op */
	assert_int_equal(sched_count(&w->s), 0);
	world_free(w);
}

static void test_order(void **state)
{
	struct world *w = world_new();
	static const uint64_t dl[] = { 50, 10, 30, 20, 40, 60, 5 };

	(void)state;
	for (int i = 0; i < 7; i++)
		arm(w, i, dl[i]);
	assert_int_equal(sched_count(&w->s), 7);
	assert_int_equal(sched_next(&w->s), 5);
	assert_int_equal(sched_run(&w->s, 4, 0), 0);  /* nothing due */
	assert_int_equal(sched_run(&w->s, 20, 0), 3); /* deadline == now is due */
	EXPECT(w, 6, 1, 3);
	assert_int_equal(sched_next(&w->s), 30);
	assert_int_equal(sched_run(&w->s, 1000, 0), 4);
	EXPECT(w, 2, 4, 0, 5);
	assert_int_equal(sched_next(&w->s), UINT64_MAX);
	for (int i = 0; i < 7; i++)
		assert_false(sched_armed(&w->tm[i].t));
	world_free(w);
}

/* Equal deadlines fire in arming order (FIFO by seq); a re-arm goes to the back of its deadline. */
static void test_fifo_equal(void **state)
{
	struct world *w = world_new();
	static const int order[] = { 3, 1, 4, 0, 2, 9, 7, 8, 6, 5 };

	(void)state;
	for (int i = 0; i < 10; i++)
		arm(w, order[i], 100);
	assert_int_equal(sched_run(&w->s, 100, 0), 10);
	expect_log(w, order, 10);

	for (int i = 0; i < 5; i++)
		arm(w, i, 7);
	arm(w, 1, 7); /* same deadline, new seq: now last */
	arm(w, 9, 6);
	assert_int_equal(sched_run(&w->s, 7, 0), 6);
	EXPECT(w, 9, 0, 2, 3, 4, 1);
	world_free(w);
}

static void test_max(void **state)
{
	struct world *w = world_new();

	(void)state;
	for (int i = 0; i < 5; i++)
		arm(w, i, (uint64_t)i);
	assert_int_equal(sched_run(&w->s, 100, 2), 2);
	EXPECT(w, 0, 1);
	assert_int_equal(sched_run(&w->s, 100, 1), 1);
	EXPECT(w, 2);
	assert_int_equal(sched_run(&w->s, 100, 0), 2);
	EXPECT(w, 3, 4);
	world_free(w);
}

static void test_cancel_middle(void **state)
{
	struct world *w = world_new();

	(void)state;
	for (int i = 0; i < 9; i++)
		arm(w, i, 10 + (uint64_t)i * 10);
	/* cancel from the middle of the order and from the middle/end of the array */
	sched_cancel(&w->s, &w->tm[4].t);
	assert_false(sched_armed(&w->tm[4].t));
	sched_cancel(&w->s, &w->tm[4].t); /* twice: no-op */
	sched_cancel(&w->s, w->s.heap[w->s.n / 2]);
	sched_cancel(&w->s, w->s.heap[w->s.n - 1]);
	assert_int_equal(sched_count(&w->s), 6);
	assert_int_equal(sched_run(&w->s, 1000, 0), 6);
	assert_int_equal(w->nlog, 6);
	for (size_t i = 1; i < w->nlog; i++)
		assert_true(w->log[i] > w->log[i - 1]);
	for (size_t i = 0; i < w->nlog; i++)
		assert_int_not_equal(w->log[i], 4);
	/* cancelling the head moves sched_next */
	arm(w, 0, 5);
	arm(w, 1, 8);
	sched_cancel(&w->s, &w->tm[0].t);
	assert_int_equal(sched_next(&w->s), 8);
	sched_cancel(&w->s, &w->tm[1].t);
	assert_int_equal(sched_next(&w->s), UINT64_MAX);
	world_free(w);
}

static void test_rearm(void **state)
{
	struct world *w = world_new();

	(void)state;
	for (int i = 0; i < 6; i++)
		arm(w, i, 100 + (uint64_t)i * 100);
	arm(w, 5, 50); /* later -> earliest */
	assert_int_equal(sched_next(&w->s), 50);
	arm(w, 0, 1000); /* earliest -> latest */
	assert_int_equal(sched_count(&w->s), 6);
	arm(w, 3, 250); /* middle, slightly earlier */
	assert_int_equal(sched_run(&w->s, UINT64_MAX, 0), 6);
	EXPECT(w, 5, 1, 3, 2, 4, 0);
	world_free(w);
}

/* A callback that re-arms its own timer for <= now does not fire again in this run. */
static void test_cb_rearm_self(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].rearm_target = &w->tm[0];
	w->tm[0].rearm_deadline = 0;
	arm(w, 0, 10);
	arm(w, 1, 20);
	assert_int_equal(sched_run(&w->s, 20, 0), 2);
	EXPECT(w, 0, 1);
	assert_true(sched_armed(&w->tm[0].t));
	assert_int_equal(sched_next(&w->s), 0);
	assert_int_equal(sched_run(&w->s, 20, 0), 1);
	EXPECT(w, 0);
	/* periodic: re-armed into the future, fires once per run */
	w->tm[0].rearm_deadline = 30;
	assert_int_equal(sched_run(&w->s, 20, 0), 1);
	assert_int_equal(sched_run(&w->s, 29, 0), 0);
	assert_int_equal(sched_run(&w->s, 30, 0), 1);
	EXPECT(w, 0, 0);
	assert_int_equal(w->tm[0].fired, 4);
	world_free(w);
}

static void test_cb_cancel_others(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].cancel_target = &w->tm[2]; /* due later in this run */
	w->tm[1].cancel_target = &w->tm[3]; /* not due */
	arm(w, 0, 1);
	arm(w, 1, 2);
	arm(w, 2, 3);
	arm(w, 3, 100);
	arm(w, 4, 4);
	assert_int_equal(sched_run(&w->s, 50, 0), 3);
	EXPECT(w, 0, 1, 4);
	assert_false(sched_armed(&w->tm[2].t));
	assert_false(sched_armed(&w->tm[3].t));
	assert_int_equal(sched_count(&w->s), 0);
	world_free(w);
}

/* A callback arms a new timer due before the remaining due ones: the old ones still fire, the new one
 * waits for the next run but is visible to sched_next. */
static void test_cb_arm_new_due(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].rearm_target = &w->tm[9];
	w->tm[0].rearm_deadline = 0;
	arm(w, 0, 10);
	arm(w, 1, 20);
	arm(w, 2, 30);
	assert_int_equal(sched_run(&w->s, 30, 0), 3);
	EXPECT(w, 0, 1, 2);
	assert_int_equal(w->next_seen, 0); /* seen from tm[2]'s callback, while tm[9] was parked */
	assert_true(sched_armed(&w->tm[9].t));
	assert_int_equal(sched_count(&w->s), 1);
	assert_int_equal(sched_next(&w->s), 0);
	assert_int_equal(sched_run(&w->s, 30, 0), 1);
	EXPECT(w, 9);
	world_free(w);
}

/* Re-arming a timer that is due but not yet fired gives it a new seq: it waits for the next run. */
static void test_cb_rearm_due_other(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].rearm_target = &w->tm[1];
	w->tm[0].rearm_deadline = 5;
	arm(w, 0, 5);
	arm(w, 1, 6);
	arm(w, 2, 7);
	assert_int_equal(sched_run(&w->s, 10, 0), 2);
	EXPECT(w, 0, 2);
	assert_int_equal(sched_run(&w->s, 10, 0), 1);
	EXPECT(w, 1);
	world_free(w);
}

/* Timers parked during a run (armed by a callback for <= now) can be cancelled or re-armed by a later
 * callback of the same run. */
static void test_cb_touch_parked(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].rearm_target = &w->tm[8];
	w->tm[0].rearm_deadline = 0;
	w->tm[1].rearm_target = &w->tm[9];
	w->tm[1].rearm_deadline = 0;
	w->tm[2].cancel_target = &w->tm[8]; /* parked by now: cancel it */
	w->tm[3].rearm_target = &w->tm[9];  /* parked: move it to the future */
	w->tm[3].rearm_deadline = 500;
	arm(w, 0, 1);
	arm(w, 1, 2);
	arm(w, 2, 3);
	arm(w, 3, 4);
	assert_int_equal(sched_run(&w->s, 10, 0), 4);
	EXPECT(w, 0, 1, 2, 3);
	assert_false(sched_armed(&w->tm[8].t));
	assert_true(sched_armed(&w->tm[9].t));
	assert_int_equal(sched_count(&w->s), 1);
	assert_int_equal(sched_next(&w->s), 500);
	assert_int_equal(sched_run(&w->s, 499, 0), 0);
	assert_int_equal(sched_run(&w->s, 500, 0), 1);
	EXPECT(w, 9);
	world_free(w);
}

/* A callback grows the array while timers are parked; their slots must follow. */
static void test_cb_growth_with_parked(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].rearm_target = &w->tm[7];
	w->tm[0].rearm_deadline = 0;
	w->tm[1].arm_many = 200;
	w->tm[2].cancel_target = &w->tm[7];
	arm(w, 0, 1);
	arm(w, 1, 2);
	arm(w, 2, 3);
	arm(w, 3, 3);
	arm(w, 4, 1000);
	assert_int_equal(sched_run(&w->s, 100, 0), 4);
	EXPECT(w, 0, 1, 2, 3);
	assert_false(sched_armed(&w->tm[7].t));
	assert_int_equal(sched_count(&w->s), 201);
	assert_true(w->s.cap >= 201);
	/* the extras (armed by tm[1]) fire on the next run, by deadline then arming order */
	assert_int_equal(sched_run(&w->s, 100, 0), 200);
	assert_int_equal(w->nlog, 200);
	for (size_t i = 1; i < 200; i++) {
		int a = w->log[i - 1] - 100, b = w->log[i] - 100;

		assert_true(a % 7 < b % 7 || (a % 7 == b % 7 && a < b));
	}
	w->nlog = 0;
	assert_int_equal(sched_run(&w->s, 1000, 0), 1);
	EXPECT(w, 4);

	/* same with the parked timer kept: it must survive the move */
	w->tm[2].cancel_target = NULL;
	arm(w, 0, 1);
	arm(w, 1, 2);
	arm(w, 2, 3);
	assert_int_equal(sched_run(&w->s, 100, 0), 3);
	assert_true(sched_armed(&w->tm[7].t));
	assert_int_equal(w->s.heap[w->tm[7].t.idx], &w->tm[7].t);
	w->nlog = 0;
	assert_int_equal(sched_run(&w->s, 100, 0), 201);
	assert_int_equal(w->log[0], 7); /* deadline 0, before the extras at 0 (armed later) */
	world_free(w);
}

static void test_nested_run_refused(void **state)
{
	struct world *w = world_new();

	(void)state;
	w->tm[0].nested_run = true;
	w->nested_ret = 99;
	arm(w, 0, 1);
	arm(w, 1, 2);
	assert_int_equal(sched_run(&w->s, 10, 0), 2);
	assert_int_equal(w->nested_ret, 0);
	EXPECT(w, 0, 1);
	world_free(w);
}

/* ---- 10000 random operations against a naive model ---- */

#define MT 64

struct model {
	bool armed[MT];
	uint64_t deadline[MT], seq[MT];
	uint64_t seq_next;
	uint64_t entry_seq, now;
	bool in_run;
};

struct mworld {
	struct sched s;
	struct sched_timer t[MT];
	struct model m;
	uint64_t rng;
	size_t fired, total_fired;
	size_t parked; /* arms from callbacks for <= now: the case sched_run must skip */
};

static uint64_t rnd(struct mworld *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static void m_arm(struct mworld *w, int i, uint64_t deadline)
{
	assert_int_equal(sched_arm(&w->s, &w->t[i], deadline), 0);
	w->m.armed[i] = true;
	w->m.deadline[i] = deadline;
	w->m.seq[i] = w->m.seq_next++;
}

static void m_cancel(struct mworld *w, int i)
{
	sched_cancel(&w->s, &w->t[i]);
	w->m.armed[i] = false;
}

static uint64_t m_next(const struct model *m)
{
	uint64_t n = UINT64_MAX;

	for (int i = 0; i < MT; i++)
		if (m->armed[i] && m->deadline[i] < n)
			n = m->deadline[i];
	return n;
}

/* The timer the model says fires next in this run, -1 if none. */
static int m_due(const struct model *m)
{
	int best = -1;

	for (int i = 0; i < MT; i++) {
		if (!m->armed[i] || m->deadline[i] > m->now || m->seq[i] >= m->entry_seq)
			continue;
		if (best < 0 || m->deadline[i] < m->deadline[best] ||
		    (m->deadline[i] == m->deadline[best] && m->seq[i] < m->seq[best]))
			best = i;
	}
	return best;
}

static void m_check(struct mworld *w)
{
	size_t count = 0;

	for (int i = 0; i < MT; i++) {
		assert_int_equal(sched_armed(&w->t[i]), w->m.armed[i]);
		if (w->m.armed[i]) {
			assert_int_equal(w->t[i].deadline, w->m.deadline[i]);
			assert_int_equal(w->t[i].seq, w->m.seq[i]);
			count++;
		}
	}
	assert_int_equal(sched_count(&w->s), count);
	assert_int_equal(sched_next(&w->s), m_next(&w->m));
}

static void m_random_op(struct mworld *w, uint64_t base)
{
	int i = (int)(rnd(w) % MT);

	if (rnd(w) % 3) {
		uint64_t dl = base + rnd(w) % 64 - (rnd(w) % 4 == 0 ? rnd(w) % 32 : 0);

		if (w->m.in_run && dl <= w->m.now)
			w->parked++;
		m_arm(w, i, dl);
	} else {
		m_cancel(w, i);
	}
}

static void m_fire(struct sched_timer *t, uint64_t now, void *arg)
{
	struct mworld *w = arg;
	int i = (int)(t - w->t);

	assert_true(w->m.in_run);
	assert_int_equal(now, w->m.now);
	assert_int_equal(i, m_due(&w->m)); /* fires exactly what the model predicts, in order */
	assert_false(sched_armed(t));
	w->m.armed[i] = false;
	w->fired++;
	/* half the callbacks mutate the heap: arm (often due), re-arm, cancel */
	if (rnd(w) % 2) {
		int k = (int)(rnd(w) % 4);

		for (int j = 0; j < k; j++)
			m_random_op(w, now - 32);
	}
	m_check(w);
}

static void test_random_model(void **state)
{
	struct mworld *w = calloc(1, sizeof(*w));
	uint64_t now = 1000;

	(void)state;
	assert_non_null(w);
	w->rng = 0x2545f4914f6cdd1dULL;
	sched_init(&w->s);
	for (int i = 0; i < MT; i++)
		sched_timer_init(&w->t[i], m_fire, w, "model");
	for (int op = 0; op < 10000; op++) {
		uint64_t r = rnd(w) % 10;

		if (r < 6) {
			m_random_op(w, now);
		} else {
			size_t max = rnd(w) % 3 == 0 ? (size_t)(rnd(w) % 4 + 1) : 0, got;

			now += rnd(w) % 40;
			w->m.entry_seq = w->m.seq_next;
			w->m.now = now;
			w->m.in_run = true;
			w->fired = 0;
			got = sched_run(&w->s, now, max);
			w->m.in_run = false;
			assert_int_equal(got, w->fired);
			w->total_fired += got;
			if (max)
				assert_true(got <= max);
			/* nothing eligible left behind unless max stopped the run */
			if (!max || got < max)
				assert_int_equal(m_due(&w->m), -1);
		}
		m_check(w);
	}
	/* the run really exercised firing and the skip-and-park path */
	assert_true(w->total_fired > 2000);
	assert_true(w->parked > 200);
	sched_fini(&w->s);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_fifo_equal),
		cmocka_unit_test(test_max),
		cmocka_unit_test(test_cancel_middle),
		cmocka_unit_test(test_rearm),
		cmocka_unit_test(test_cb_rearm_self),
		cmocka_unit_test(test_cb_cancel_others),
		cmocka_unit_test(test_cb_arm_new_due),
		cmocka_unit_test(test_cb_rearm_due_other),
		cmocka_unit_test(test_cb_touch_parked),
		cmocka_unit_test(test_cb_growth_with_parked),
		cmocka_unit_test(test_nested_run_refused),
		cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
