/*
 * RFC 6887 (PCP) and RFC 6886 (NAT-PMP) timing rules: retransmission (RFC 6887 8.1.1), renewal
 * (RFC 6887 11.2.1), lifetime cap (RFC 6887 15), NAT-PMP schedule (RFC 6886 3.1), ANNOUNCE re-map delay
 * (RFC 6887 14.1, doc/PROTOCOLS.md 1.8). Randomness comes from a scripted fake.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sched/env.h"
#include "sched/timing.h"

#define S(x) ((uint64_t)((x)*1000000.0 + 0.5)) /* seconds (exact in us) to microseconds */

/*
 * Fake randomness. Scripted mode: a queue of bytes, the test fails if code reads more than was scripted.
 * PRNG mode (queue empty and prng set): xorshift64 bytes, for the property tests.
 */
struct fake_rand {
	unsigned char q[4096];
	size_t head, tail;
	uint64_t prng;
	size_t reads;
};

static void fake_fill(void *ctx, void *buf, size_t len)
{
	struct fake_rand *f = ctx;
	unsigned char *b = buf;

	f->reads++;
	for (size_t i = 0; i < len; i++) {
		if (f->head < f->tail) {
			b[i] = f->q[f->head++];
		} else if (f->prng) {
			f->prng ^= f->prng << 13;
			f->prng ^= f->prng >> 7;
			f->prng ^= f->prng << 17;
			b[i] = (unsigned char)(f->prng >> 56);
		} else {
			fail_msg("fake rand: read past the scripted bytes");
		}
	}
}

static struct pm_rand fake_init(struct fake_rand *f, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	f->prng = seed;
	return (struct pm_rand){ .fill = fake_fill, .ctx = f };
}

static void push_bytes(struct fake_rand *f, const unsigned char *b, size_t n)
{
	assert_true(f->tail + n <= sizeof(f->q));
	memcpy(f->q + f->tail, b, n);
	f->tail += n;
}

/* Scripts one pm_rand_unit draw: 0 -> 0.0, 1 -> 0.5, 2 -> 1 - 2^-53 (the top of [0, 1)). */
enum { U_ZERO, U_HALF, U_MAX };

static void push_unit(struct fake_rand *f, int which)
{
	unsigned char b[8] = { 0 };

	if (which == U_HALF)
		b[0] = 0x80;
	else if (which == U_MAX)
		memset(b, 0xff, sizeof(b));
	push_bytes(f, b, sizeof(b));
}

/* RAND of RFC 6887 8.1.1 at its extremes and centre. */
#define RAND_MINUS U_ZERO /* RAND = -0.1 */
#define RAND_ZERO  U_HALF /* RAND = 0 */
#define RAND_PLUS  U_MAX  /* RAND = +0.1 (minus 2^-53 * 0.2) */

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/* ---- env.h decoding ---- */

static void test_rand_decoding(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	const unsigned char be[4] = { 0x12, 0x34, 0x56, 0x78 };
	const unsigned char quarter[8] = { 0x40, 0, 0, 0, 0, 0, 0, 0x7f }; /* low 11 bits are dropped */

	(void)state;
	push_bytes(&f, be, sizeof(be));
	assert_int_equal(pm_rand_u32(&r), 0x12345678u);
	push_unit(&f, U_ZERO);
	assert_true(pm_rand_unit(&r) == 0.0);
	push_unit(&f, U_HALF);
	assert_true(pm_rand_unit(&r) == 0.5);
	push_unit(&f, U_MAX);
	assert_true(pm_rand_unit(&r) == 1.0 - 0x1p-53);
	push_bytes(&f, quarter, sizeof(quarter));
	assert_true(pm_rand_unit(&r) == 0.25);
	assert_int_equal(f.reads, 5);
	assert_int_equal(f.head, f.tail);
}

static void test_rand_unit_range(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0x9e3779b97f4a7c15ULL);
	double lo = 1.0, hi = 0.0, sum = 0.0;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		double u = pm_rand_unit(&r);

		assert_true(u >= 0.0 && u < 1.0);
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
		sum += u;
	}
	assert_true(lo < 0.001 && hi > 0.999);
	assert_true(sum / 100000 > 0.49 && sum / 100000 < 0.51);
}

/* ---- RFC 6887 8.1.1 retransmission ---- */

static void test_constants(void **state)
{
	(void)state;
	assert_int_equal(PCP_IRT_US, 3000000);
	assert_int_equal(PCP_MRT_US, 1024000000);
	assert_int_equal(PCP_MRC_DEFAULT, 0);
	assert_int_equal(PCP_MRD_DEFAULT, 0);
	assert_true(PCP_RAND_SPREAD == 0.1);
	assert_int_equal(PCP_RENEW_MIN_GAP_US, 4000000);
	assert_int_equal(PCP_MAX_LIFETIME_S, 86400);
	assert_int_equal(NATPMP_IRT_US, 250000);
	assert_int_equal(NATPMP_MAX_TRIES, 9);
}

/* RAND = 0: RT = 3, 6, 12, ..., 768, then MRT = 1024 s for ever (MRC = MRD = 0). */
static void test_retx_nominal(void **state)
{
	static const unsigned expect_s[] = { 3, 6, 12, 24, 48, 96, 192, 384, 768, 1024, 1024, 1024, 1024 };
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t now = S(1000), start = now, total = 0, dl = 0;

	(void)state;
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, PCP_MRC_DEFAULT, PCP_MRD_DEFAULT);
	for (size_t i = 0; i < sizeof(expect_s) / sizeof(expect_s[0]); i++) {
		push_unit(&f, RAND_ZERO);
		assert_int_equal(pm_retx_next(&x, now, &r, &dl), 0);
		assert_int_equal(x.rt_us, S(expect_s[i]));
		assert_int_equal(dl, now + S(expect_s[i]));
		assert_int_equal(x.count, i + 1);
		assert_int_equal(x.started_us, start);
		total += S(expect_s[i]);
		now = dl;
	}
	assert_int_equal(now - start, total);
	assert_int_equal(f.head, f.tail); /* exactly one draw per transmission */
}

/* RT_1 = IRT + RAND * IRT, RT_n = 2 * RT_{n-1} + RAND * RT_{n-1}, and above MRT: MRT + RAND * MRT. The
 * jitter is RAND times the previous RT, not twice that (the (1 + RAND) * 2 * RT_{n-1} reading doubled it and
 * let the ladder drift: the 7th send near 309 s instead of 189 s at RAND = +0.1). */
static void check_extreme(int which, double factor, uint64_t steady_us)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t now = 0, dl = 0, prev = 0;

	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, 0);
	for (int i = 0; i < 16; i++) {
		double v = i == 0 ? (double)PCP_IRT_US * factor : (double)prev * (1.0 + factor);
		if (v > (double)PCP_MRT_US)
			v = (double)PCP_MRT_US * factor;
		uint64_t want = (uint64_t)(v + 0.5);

		push_unit(&f, which);
		assert_int_equal(pm_retx_next(&x, now, &r, &dl), 0);
		assert_true(absdiff(x.rt_us, want) <= 1);
		assert_int_equal(dl, now + x.rt_us);
		prev = x.rt_us;
		now = dl;
	}
	assert_true(absdiff(prev, steady_us) <= 1);
}

static void test_retx_rand_minus(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t dl;

	(void)state;
	/* 2.7 s, 1.9 * 2.7 = 5.13 s, 1.9 * 5.13 = 9.747 s; steady state 0.9 * 1024 = 921.6 s */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, 0);
	push_unit(&f, RAND_MINUS);
	push_unit(&f, RAND_MINUS);
	push_unit(&f, RAND_MINUS);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(dl, 2700000);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	assert_int_equal(x.rt_us, 5130000);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	assert_int_equal(x.rt_us, 9747000);
	check_extreme(RAND_MINUS, 0.9, 921600000);
}

static void test_retx_rand_plus(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t dl;

	(void)state;
	/* 3.3 s, 2.1 * 3.3 = 6.93 s; above MRT: steady 1.1 * 1024 = 1126.4 s */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, 0);
	push_unit(&f, RAND_PLUS);
	push_unit(&f, RAND_PLUS);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(dl, 3300000);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	assert_int_equal(x.rt_us, 6930000);
	check_extreme(RAND_PLUS, 1.1, 1126400000);
	check_extreme(RAND_ZERO, 1.0, 1024000000);
}

/* Random RAND: every RT within RAND * RT_{n-1} of 2 * RT_{n-1} (RT_1: within 10 % of IRT; above MRT: within
 * 10 % of MRT), RAND varying per step. */
static void test_retx_bounds_random(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0x0123456789abcdefULL);
	double lo_seen = 1.0, hi_seen = -1.0;

	(void)state;
	for (int run = 0; run < 500; run++) {
		struct pm_retx x;
		uint64_t now = (uint64_t)run * 7919, dl = 0, prev = 0;

		pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, 0);
		for (int i = 0; i < 20; i++) {
			double rt, j;

			assert_int_equal(pm_retx_next(&x, now, &r, &dl), 0);
			rt = (double)x.rt_us;
			if (i == 0)
				j = (rt - (double)PCP_IRT_US) / (double)PCP_IRT_US;
			else if (2.1 * (double)prev <= (double)PCP_MRT_US)
				j = (rt - 2.0 * (double)prev) / (double)prev;
			else
				j = (rt - (double)PCP_MRT_US) / (double)PCP_MRT_US;
			/* Near the cap either rule may apply; then only the capped range is checked. */
			if (i > 0 && 1.9 * (double)prev <= (double)PCP_MRT_US &&
			    2.1 * (double)prev > (double)PCP_MRT_US)
				j = j > 0.1 || j < -0.1 ? (rt - 2.0 * (double)prev) / (double)prev : j;
			assert_true(j >= -0.1 - 1e-6 && j <= 0.1 + 1e-6);
			lo_seen = j < lo_seen ? j : lo_seen;
			hi_seen = j > hi_seen ? j : hi_seen;
			assert_int_equal(dl, now + x.rt_us);
			prev = x.rt_us;
			now = dl;
		}
	}
	/* RAND really is drawn afresh: the whole [-0.1, +0.1] range shows up. */
	assert_true(lo_seen < -0.095 && hi_seen > 0.095);
}

static void test_retx_mrt_cap(void **state)
{
	static const uint64_t expect[] = { 1000000, 2000000, 4000000, 5000000, 5000000, 5000000 };
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t now = 0, dl = 0;

	(void)state;
	pm_retx_init(&x, 1000000, 5000000, 0, 0);
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		push_unit(&f, RAND_ZERO);
		assert_int_equal(pm_retx_next(&x, now, &r, &dl), 0);
		assert_int_equal(x.rt_us, expect[i]);
		now = dl;
	}
}

/* MRC counts transmissions (first included): MRC = 3 allows 3 sends; the 4th call gives up. */
static void test_retx_mrc(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t now = 500, dl = 0, kept;

	(void)state;
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 3, 0);
	for (int i = 0; i < 3; i++) {
		push_unit(&f, RAND_ZERO);
		assert_int_equal(pm_retx_next(&x, now, &r, &dl), 0);
		now = dl;
	}
	assert_int_equal(now, 500 + S(3 + 6 + 12));
	kept = dl;
	assert_int_equal(pm_retx_next(&x, now, &r, &dl), -ETIMEDOUT);
	assert_int_equal(dl, kept); /* untouched on failure */
	assert_int_equal(x.count, 3);
	assert_int_equal(pm_retx_next(&x, now + S(100), &r, &dl), -ETIMEDOUT);
	assert_int_equal(f.reads, 3); /* no draw when giving up */

	/* MRC = 1: a single send. */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 1, 0);
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), -ETIMEDOUT);
}

/* MRD: a deadline past started + MRD is clamped to it once; the next call times out. */
static void test_retx_mrd_clamp(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t dl = 0;

	(void)state;
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(20));
	push_unit(&f, RAND_ZERO);
	push_unit(&f, RAND_ZERO);
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, S(100), &r, &dl), 0);
	assert_int_equal(dl, S(103));
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	assert_int_equal(dl, S(109));
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0); /* 109 + 12 = 121 > 120: clamped */
	assert_int_equal(dl, S(120));
	assert_int_equal(pm_retx_next(&x, S(120), &r, &dl), -ETIMEDOUT);
	assert_int_equal(dl, S(120));
	assert_int_equal(x.count, 3);
	assert_int_equal(f.head, f.tail);

	/* Clamped deadline handed out: even an early call gives up rather than clamping again. */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(5));
	push_unit(&f, RAND_ZERO);
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(dl, S(3));
	assert_int_equal(pm_retx_next(&x, S(3), &r, &dl), 0);
	assert_int_equal(dl, S(5));
	assert_int_equal(pm_retx_next(&x, S(4), &r, &dl), -ETIMEDOUT);
}

static void test_retx_mrd_exact_and_late(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t dl = 0;

	(void)state;
	/* MRD = 9 s: 3 + 6 ends exactly at started + MRD, no clamp needed; the next call gives up. */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(9));
	push_unit(&f, RAND_ZERO);
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	assert_int_equal(dl, S(9));
	assert_false(x.mrd_clamped);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), -ETIMEDOUT);

	/* Timer fired late, already past started + MRD: give up without sending. */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(10));
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(pm_retx_next(&x, S(12), &r, &dl), -ETIMEDOUT);
	assert_int_equal(dl, S(3));

	/* MRD shorter than the first RT: the first deadline is already the clamp. */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(2));
	push_unit(&f, RAND_PLUS);
	assert_int_equal(pm_retx_next(&x, S(50), &r, &dl), 0);
	assert_int_equal(dl, S(52));
	assert_int_equal(pm_retx_next(&x, S(52), &r, &dl), -ETIMEDOUT);

	/* MRC and MRD together: whichever comes first. */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 2, S(1000));
	push_unit(&f, RAND_ZERO);
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), 0);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), -ETIMEDOUT);
	assert_int_equal(f.head, f.tail);
}

static void test_retx_reinit_and_einval(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	struct pm_retx x;
	uint64_t dl = 77;

	(void)state;
	pm_retx_init(&x, 0, PCP_MRT_US, 0, 0);
	assert_int_equal(pm_retx_next(&x, 0, &r, &dl), -EINVAL);
	assert_int_equal(dl, 77);

	/* A fresh init restarts the ladder at IRT with a new start time (doc/PROTOCOLS.md 1.4: RT reset). */
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(30));
	push_unit(&f, RAND_ZERO);
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, S(10), &r, &dl), 0);
	assert_int_equal(pm_retx_next(&x, dl, &r, &dl), 0);
	pm_retx_init(&x, PCP_IRT_US, PCP_MRT_US, 0, S(30));
	push_unit(&f, RAND_ZERO);
	assert_int_equal(pm_retx_next(&x, S(500), &r, &dl), 0);
	assert_int_equal(dl, S(503));
	assert_int_equal(x.started_us, S(500));
	assert_int_equal(x.count, 1);
}

/* ---- RFC 6887 11.2.1 renewal ---- */

struct window {
	double lo_s, hi_s;
};

static void check_windows(uint32_t lifetime, const struct window w[5])
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	const uint64_t g = S(12345);

	for (unsigned k = 0; k < 5; k++) {
		uint64_t t;

		push_unit(&f, U_ZERO);
		assert_int_equal(pm_renew_at(g, lifetime, k, 0, &r), g + S(w[k].lo_s));
		push_unit(&f, U_HALF);
		assert_int_equal(pm_renew_at(g, lifetime, k, 0, &r), g + S((w[k].lo_s + w[k].hi_s) / 2));
		push_unit(&f, U_MAX);
		t = pm_renew_at(g, lifetime, k, 0, &r);
		assert_in_range(t, g + S(w[k].hi_s) - 1, g + S(w[k].hi_s));
	}
	assert_int_equal(f.reads, 15); /* exactly one draw per call */
}

static void test_renew_windows_120(void **state)
{
	/* [1/2, 5/8], [3/4, 13/16], [7/8, 29/32], [15/16, 61/64], [31/32, 125/128] of 120 s */
	static const struct window w[5] = {
		{ 60, 75 }, { 90, 97.5 }, { 105, 108.75 }, { 112.5, 114.375 }, { 116.25, 117.1875 },
	};

	(void)state;
	check_windows(120, w);
}

static void test_renew_windows_7200(void **state)
{
	static const struct window w[5] = {
		{ 3600, 4500 }, { 5400, 5850 }, { 6300, 6525 }, { 6750, 6862.5 }, { 6975, 7031.25 },
	};

	(void)state;
	check_windows(7200, w);
}

static void test_renew_windows_86400(void **state)
{
	static const struct window w[5] = {
		{ 43200, 54000 }, { 64800, 70200 }, { 75600, 78300 }, { 81000, 82350 }, { 83700, 84375 },
	};

	(void)state;
	check_windows(86400, w);
}

/* 11.2.1: renewals never closer than 4 s apart. */
static void test_renew_min_gap(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);

	(void)state;
	/* attempt 3 of 120 s opens at 112.5 s; a send at 110 s pushes it to 114 s */
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(0 + S(1), 120, 3, S(1 + 110), &r), S(1 + 114));
	/* a send at 108 s: 112 s < 112.5 s, the window wins */
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(S(1), 120, 3, S(1 + 108), &r), S(1 + 112.5));
	/* the gap also overrides a point late in the window */
	push_unit(&f, U_MAX);
	assert_int_equal(pm_renew_at(S(1), 120, 2, S(1 + 106), &r), S(1 + 110));
	/* prev_send 0 = no previous send, even with granted_at 0 */
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(0, 120, 0, 0, &r), S(60));
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(0, 6, 0, 0, &r), S(3)); /* not pushed to 0 + 4 s */
	push_unit(&f, U_HALF);
	assert_int_equal(pm_renew_at(0, 4, 0, 0, &r), S(2.25));
	/* exactly 4 s after the previous send is allowed */
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(0, 120, 1, S(86), &r), S(90));
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(0, 120, 1, S(86) + 1, &r), S(90) + 1);
}

/* 11.2.1: when the next try would be at or after expiry there is nothing left to renew. */
static void test_renew_past_expiry(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	const uint64_t g = S(7);

	(void)state;
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 120, 4, g + S(116), &r), UINT64_MAX); /* 120 s = expiry */
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 120, 4, g + S(116) - 1, &r), g + S(120) - 1);
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 120, 5, g + S(118.375), &r), UINT64_MAX);
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 0, 0, 0, &r), UINT64_MAX); /* lifetime 0: deleted */
	push_unit(&f, U_MAX);
	assert_int_equal(pm_renew_at(g, 1, 40, 0, &r), UINT64_MAX); /* windows shrink to the expiry */
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 86400, 63, 0, &r), UINT64_MAX);
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 86400, UINT_MAX, 0, &r), UINT64_MAX);
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_renew_at(g, 120, 0, g + S(200), &r), UINT64_MAX); /* previous send after expiry */
}

/* The whole ladder with the worst-case draws (late in every window) on a 120 s mapping. */
static void test_renew_ladder_120(void **state)
{
	static const double expect_s[] = { 75, 97.5, 108.75, 114.375, 118.375 };
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	uint64_t prev = 0;
	unsigned k;

	(void)state;
	for (k = 0;; k++) {
		uint64_t t;

		push_unit(&f, U_MAX);
		t = pm_renew_at(0, 120, k, prev, &r);
		if (t == UINT64_MAX)
			break;
		assert_true(k < 5);
		assert_true(absdiff(t, S(expect_s[k])) <= 1);
		prev = t;
	}
	assert_int_equal(k, 5); /* 118.375 + 4 = 122.375 >= 120 */
}

/* Random draws: every renewal in its window (or pushed by the 4 s gap), increasing, before expiry. */
static void test_renew_ladder_random(void **state)
{
	static const uint32_t lifetimes[] = { 120, 121, 600, 3600, 7200, 86400 };
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0xfeedfacecafebeefULL);

	(void)state;
	for (int run = 0; run < 2000; run++) {
		uint32_t life = lifetimes[run % 6];
		uint64_t g = (uint64_t)run * 1000003, L = (uint64_t)life * 1000000, prev = 0;
		unsigned k;

		for (k = 0; k < 64; k++) {
			uint64_t t = pm_renew_at(g, life, k, prev, &r);
			uint64_t lo = g + L - (L >> (k + 1)), hi = lo + (L >> (k + 3));

			if (t == UINT64_MAX)
				break;
			assert_true(t < g + L);
			assert_true(t >= lo);
			assert_true(t <= hi || (prev && t == prev + PCP_RENEW_MIN_GAP_US));
			if (prev)
				assert_true(t >= prev + PCP_RENEW_MIN_GAP_US);
			prev = t;
		}
		assert_true(k >= 3 && k < 64);
	}
}

/* RFC 6887 15: an implausibly long lifetime is treated as 24 h. */
static void test_lifetime_sane(void **state)
{
	(void)state;
	assert_int_equal(pm_lifetime_sane(0), 0);
	assert_int_equal(pm_lifetime_sane(120), 120);
	assert_int_equal(pm_lifetime_sane(7200), 7200);
	assert_int_equal(pm_lifetime_sane(86400), 86400);
	assert_int_equal(pm_lifetime_sane(86401), 86400);
	assert_int_equal(pm_lifetime_sane(UINT32_MAX), 86400);
}

/* ---- RFC 6886 3.1 NAT-PMP ---- */

static void test_natpmp_schedule(void **state)
{
	static const double send_s[NATPMP_MAX_TRIES] = { 0, .25, .75, 1.75, 3.75, 7.75, 15.75, 31.75, 63.75 };
	const uint64_t first = S(42);

	(void)state;
	for (unsigned n = 0; n < NATPMP_MAX_TRIES; n++)
		assert_int_equal(pm_natpmp_retx_deadline(first, n), first + S(send_s[n]));
	/* after the 9th try: give up at 127.75 s */
	assert_int_equal(pm_natpmp_retx_deadline(first, NATPMP_MAX_TRIES), first + S(127.75));
	assert_int_equal(pm_natpmp_retx_deadline(first, 10), first + S(127.75));
	assert_int_equal(pm_natpmp_retx_deadline(first, UINT_MAX), first + S(127.75));
	assert_int_equal(pm_natpmp_retx_deadline(0, 1), 250000);
}

/* ---- ANNOUNCE re-map delay (RFC 6887 14.1, doc/PROTOCOLS.md 1.8): uniform 0..5 s ---- */

static void test_announce_delay(void **state)
{
	struct fake_rand f;
	struct pm_rand r = fake_init(&f, 0);
	uint64_t t, lo = UINT64_MAX, hi = 0;

	(void)state;
	push_unit(&f, U_ZERO);
	assert_int_equal(pm_announce_delay_us(&r), 0);
	push_unit(&f, U_HALF);
	assert_int_equal(pm_announce_delay_us(&r), 2500000);
	push_unit(&f, U_MAX);
	t = pm_announce_delay_us(&r);
	assert_in_range(t, 4999999, 5000000);

	f.prng = 0x5555aaaa1234ULL;
	for (int i = 0; i < 10000; i++) {
		t = pm_announce_delay_us(&r);
		assert_in_range(t, 0, 5000000);
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	assert_true(lo < 10000 && hi > 4990000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rand_decoding),
		cmocka_unit_test(test_rand_unit_range),
		cmocka_unit_test(test_constants),
		cmocka_unit_test(test_retx_nominal),
		cmocka_unit_test(test_retx_rand_minus),
		cmocka_unit_test(test_retx_rand_plus),
		cmocka_unit_test(test_retx_bounds_random),
		cmocka_unit_test(test_retx_mrt_cap),
		cmocka_unit_test(test_retx_mrc),
		cmocka_unit_test(test_retx_mrd_clamp),
		cmocka_unit_test(test_retx_mrd_exact_and_late),
		cmocka_unit_test(test_retx_reinit_and_einval),
		cmocka_unit_test(test_renew_windows_120),
		cmocka_unit_test(test_renew_windows_7200),
		cmocka_unit_test(test_renew_windows_86400),
		cmocka_unit_test(test_renew_min_gap),
		cmocka_unit_test(test_renew_past_expiry),
		cmocka_unit_test(test_renew_ladder_120),
		cmocka_unit_test(test_renew_ladder_random),
		cmocka_unit_test(test_lifetime_sane),
		cmocka_unit_test(test_natpmp_schedule),
		cmocka_unit_test(test_announce_delay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
