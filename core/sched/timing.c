/*
 * RFC 6887 / RFC 6886 timing. Everything is integer microseconds except the RAND factor, which is applied
 * in double (53-bit mantissa: exact for every value below 2^53 us, i.e. 285 years) and rounded to the
 * nearest microsecond.
 */
#include "sched/timing.h"

#include <errno.h>
#include <limits.h>

double pm_rand_unit(const struct pm_rand *r)
{
	unsigned char b[8];
	uint64_t v = 0;

	r->fill(r->ctx, b, sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		v = v << 8 | b[i];
	return (double)(v >> 11) * 0x1p-53;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A time in microseconds, rounded, saturating at 2^64 (beyond it the conversion is undefined). */
static uint64_t us_round(double v)
{
	v += 0.5;
	return v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
}

void pm_retx_init(struct pm_retx *r, uint64_t irt_us, uint64_t mrt_us, unsigned mrc, uint64_t mrd_us)
{
	r->rt_us = 0;
	r->count = 0;
	r->started_us = 0;
	r->irt_us = irt_us;
	r->mrt_us = mrt_us;
	r->mrc = mrc;
	r->mrd_us = mrd_us;
	r->mrd_clamped = false;
}

int pm_retx_next(struct pm_retx *r, uint64_t now_us, const struct pm_rand *rnd, uint64_t *ret_deadline)
{
	uint64_t started = r->count ? r->started_us : now_us;
	uint64_t rt, deadline, end = UINT64_MAX;
	bool clamped = false;

	if (r->irt_us == 0)
		return -EINVAL;
	if (r->mrc > 0 && r->count >= r->mrc)
		return -ETIMEDOUT;
	if (r->count == UINT_MAX)
		return -ETIMEDOUT;
	if (r->mrd_us > 0) {
		end = sat_add(started, r->mrd_us);
		if (r->mrd_clamped || now_us >= end)
			return -ETIMEDOUT;
	}
	/* RFC 6887 8.1.1 with the jitter taken on the previous RT, not on twice it: RT = IRT + RAND * IRT, then
	 * RT = 2 * RTprev + RAND * RTprev, and once above MRT, RT = MRT + RAND * MRT. */
	double f = PCP_RAND_SPREAD * (2.0 * pm_rand_unit(rnd) - 1.0);
	if (r->count == 0) {
		rt = us_round((double)r->irt_us * (1.0 + f));
	} else {
		double v = (double)r->rt_us * (2.0 + f);
		rt = r->mrt_us == 0 || v <= (double)r->mrt_us ? us_round(v)
							      : us_round((double)r->mrt_us * (1.0 + f));
	}
	deadline = sat_add(now_us, rt);
	if (deadline > end) {
		/* RFC 6887 8.1.1: MRD bounds the whole exchange; wait out the rest, then give up. */
		deadline = end;
		clamped = true;
	}
	r->started_us = started;
	r->rt_us = rt;
	r->count++;
	r->mrd_clamped = clamped;
	*ret_deadline = deadline;
	return 0;
}

uint64_t pm_renew_at(uint64_t granted_at_us, uint32_t lifetime_s, unsigned attempt, uint64_t prev_send_us,
		     const struct pm_rand *rnd)
{
	const uint64_t life_us = (uint64_t)lifetime_s * 1000000u;
	const uint64_t expiry = sat_add(granted_at_us, life_us);
	double u = pm_rand_unit(rnd);
	uint64_t lo, width, t;

	/* RFC 6887 11.2.1: window k starts at 1 - 2^-(k+1) and is 2^-(k+3) of the lifetime wide. */
	if (attempt >= 62) {
		lo = life_us;
		width = 0;
	} else {
		lo = life_us - (life_us >> (attempt + 1));
		width = life_us >> (attempt + 3);
	}
	t = sat_add(granted_at_us, lo + (uint64_t)(u * (double)width));
	/* 11.2.1: no two renewals closer than 4 s. */
	if (prev_send_us != 0 && t < sat_add(prev_send_us, PCP_RENEW_MIN_GAP_US))
		t = sat_add(prev_send_us, PCP_RENEW_MIN_GAP_US);
	return t >= expiry ? UINT64_MAX : t;
}

uint32_t pm_lifetime_sane(uint32_t granted_s)
{
	return granted_s > PCP_MAX_LIFETIME_S ? PCP_MAX_LIFETIME_S : granted_s;
}

uint64_t pm_natpmp_retx_deadline(uint64_t first_send_us, unsigned tries_sent)
{
	unsigned n = tries_sent > NATPMP_MAX_TRIES ? NATPMP_MAX_TRIES : tries_sent;

	/* RFC 6886 3.1: 250 ms, doubling; the wait after the last try is the give-up time. */
	return first_send_us + NATPMP_IRT_US * ((1ULL << n) - 1);
}

uint64_t pm_announce_delay_us(const struct pm_rand *rnd)
{
	return (uint64_t)(pm_rand_unit(rnd) * (double)PCP_ANNOUNCE_MAX_DELAY_US);
}
