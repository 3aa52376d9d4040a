/*
 * Intrusive binary min-heap keyed by (deadline, seq). Each timer stores its array slot, so cancel and re-arm
 * are O(log n) without searching.
 *
 * sched_run must skip timers armed by its own callbacks for <= now (they would otherwise sit at the top of
 * the heap, ahead of older due timers). Such timers are parked in a "deferred" segment at the far end of the
 * same array, [cap - ndefer, cap), and pushed back into the heap when the run ends. Using the same array
 * means parking never allocates, and idx stays a real slot number for cancel and re-arm.
 */
#include "sched/sched.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_MIN_CAP 16

static bool before(const struct sched_timer *a, const struct sched_timer *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

static void place(struct sched *s, size_t i, struct sched_timer *t)
{
	s->heap[i] = t;
	t->idx = i;
}

static void sift_up(struct sched *s, size_t i)
{
	struct sched_timer *t = s->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!before(t, s->heap[parent]))
			break;
		place(s, i, s->heap[parent]);
		i = parent;
	}
	place(s, i, t);
}

static void sift_down(struct sched *s, size_t i)
{
	struct sched_timer *t = s->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->n)
			break;
		if (c + 1 < s->n && before(s->heap[c + 1], s->heap[c]))
			c++;
		if (!before(s->heap[c], t))
			break;
		place(s, i, s->heap[c]);
		i = c;
	}
	place(s, i, t);
}

/* Restores heap order at slot i after its key changed in either direction. */
static void fix(struct sched *s, size_t i)
{
	if (i > 0 && before(s->heap[i], s->heap[(i - 1) / 2]))
		sift_up(s, i);
	else
		sift_down(s, i);
}

static bool in_heap(const struct sched *s, const struct sched_timer *t)
{
	return t->idx < s->n;
}

static void heap_remove(struct sched *s, struct sched_timer *t)
{
	size_t i = t->idx;
	struct sched_timer *last = s->heap[--s->n];

	s->heap[s->n] = NULL;
	t->idx = SIZE_MAX;
	if (i != s->n) {
		place(s, i, last);
		fix(s, i);
	}
}

static void heap_push(struct sched *s, struct sched_timer *t)
{
	place(s, s->n, t);
	s->n++;
	sift_up(s, s->n - 1);
}

/* Lowest slot of the deferred segment. */
static size_t defer_base(const struct sched *s)
{
	return s->cap - s->ndefer;
}

static void defer_remove(struct sched *s, struct sched_timer *t)
{
	size_t base = defer_base(s);

	if (t->idx != base)
		place(s, t->idx, s->heap[base]);
	s->heap[base] = NULL;
	s->ndefer--;
	t->idx = SIZE_MAX;
}

static int grow(struct sched *s)
{
	size_t ncap = s->cap ? s->cap * 2 : SCHED_MIN_CAP;
	struct sched_timer **nh;

	if (s->cap > SIZE_MAX / 2 / sizeof(*nh))
		return -ENOMEM;
	nh = realloc(s->heap, ncap * sizeof(*nh));
	if (!nh)
		return -ENOMEM;
	/* The deferred segment lives at the end of the array: move it to the new end. */
	memmove(nh + ncap - s->ndefer, nh + s->cap - s->ndefer, s->ndefer * sizeof(*nh));
	memset(nh + s->n, 0, (ncap - s->n - s->ndefer) * sizeof(*nh));
	s->heap = nh;
	s->cap = ncap;
	for (size_t i = defer_base(s); i < s->cap; i++)
		s->heap[i]->idx = i;
	return 0;
}

void sched_init(struct sched *s)
{
	memset(s, 0, sizeof(*s));
}

void sched_fini(struct sched *s)
{
	free(s->heap);
	memset(s, 0, sizeof(*s));
}

void sched_timer_init(struct sched_timer *t, void (*fn)(struct sched_timer *, uint64_t, void *), void *arg,
		      const char *name)
{
	t->deadline = 0;
	t->seq = 0;
	t->idx = SIZE_MAX;
	t->fn = fn;
	t->arg = arg;
	t->name = name;
}

bool sched_armed(const struct sched_timer *t)
{
	return t->idx != SIZE_MAX;
}

size_t sched_count(const struct sched *s)
{
	return s->n + s->ndefer;
}

int sched_arm(struct sched *s, struct sched_timer *t, uint64_t deadline)
{
	if (sched_armed(t)) {
		assert(t->idx < s->cap && s->heap[t->idx] == t);
		if (!in_heap(s, t)) {
			/* Deferred by the running sched_run: back into the heap, the slot is already counted. */
			defer_remove(s, t);
			t->deadline = deadline;
			t->seq = s->seq++;
			heap_push(s, t);
			return 0;
		}
		t->deadline = deadline;
		t->seq = s->seq++;
		fix(s, t->idx);
		return 0;
	}
	if (s->n + s->ndefer == s->cap) {
		int r = grow(s);

		if (r < 0)
			return r;
	}
	t->deadline = deadline;
	t->seq = s->seq++;
	heap_push(s, t);
	return 0;
}

void sched_cancel(struct sched *s, struct sched_timer *t)
{
	if (!sched_armed(t))
		return;
	assert(t->idx < s->cap && s->heap[t->idx] == t);
	if (in_heap(s, t))
		heap_remove(s, t);
	else
		defer_remove(s, t);
}

uint64_t sched_next(const struct sched *s)
{
	uint64_t next = s->n ? s->heap[0]->deadline : UINT64_MAX;

	for (size_t i = defer_base(s); i < s->cap; i++)
		if (s->heap[i]->deadline < next)
			next = s->heap[i]->deadline;
	return next;
}

size_t sched_run(struct sched *s, uint64_t now, size_t max)
{
	const uint64_t entry_seq = s->seq;
	size_t fired = 0;

	if (s->running)
		return 0;
	s->running = true;
	while (s->n > 0 && (max == 0 || fired < max)) {
		struct sched_timer *t = s->heap[0];

		if (t->deadline > now)
			break;
		if (t->seq >= entry_seq) {
			/* Armed by a callback of this run: park it, it fires on the next run. */
			heap_remove(s, t);
			s->ndefer++;
			place(s, defer_base(s), t);
			continue;
		}
		heap_remove(s, t);
		fired++;
		t->fn(t, now, t->arg);
	}
	while (s->ndefer > 0) {
		struct sched_timer *t = s->heap[defer_base(s)];

		defer_remove(s, t);
		heap_push(s, t);
	}
	s->running = false;
	return fired;
}
