/*
 * RFC 6887 (PCP) and RFC 6886 (NAT-PMP) timing rules as data and pure functions. Time is monotonic
 * microseconds passed in by the caller; randomness comes from an injected source (env.h).
 */
#ifndef PCPMAP_SCHED_TIMING_H
#define PCPMAP_SCHED_TIMING_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/env.h"

#define PCP_IRT_US                3000000ULL    /* RFC 6887 8.1.1 */
#define PCP_MRT_US                1024000000ULL /* RFC 6887 8.1.1 */
#define PCP_MRC_DEFAULT           0             /* unbounded */
#define PCP_MRD_DEFAULT           0             /* unbounded */
#define PCP_RAND_SPREAD           0.1           /* RAND in [-0.1, +0.1] */
#define PCP_RENEW_MIN_GAP_US      4000000ULL    /* RFC 6887 11.2.1: renewals never closer than 4 s */
#define PCP_MAX_LIFETIME_S        86400U        /* sanity cap (RFC 6887 15) */
#define NATPMP_IRT_US             250000ULL     /* RFC 6886 3.1 */
#define NATPMP_MAX_TRIES          9
#define PCP_ANNOUNCE_MAX_DELAY_US 5000000ULL /* re-map spread after a multicast ANNOUNCE */

/*
 * Retransmission state of one request (RFC 6887 8.1.1). mrt_us 0 = no cap (as in RFC 3315); mrc and mrd_us
 * 0 = unbounded. mrc counts transmissions, the first one included.
 */
struct pm_retx {
	uint64_t rt_us;      /* RT of the last transmission */
	unsigned count;      /* transmissions so far */
	uint64_t started_us; /* time of the first transmission */
	uint64_t irt_us, mrt_us;
	unsigned mrc;
	uint64_t mrd_us;
	bool mrd_clamped; /* the last deadline handed out was started + mrd */
};

void pm_retx_init(struct pm_retx *r, uint64_t irt_us, uint64_t mrt_us, unsigned mrc, uint64_t mrd_us);
/*
 * Call once per transmission, right before sending (the first call at the first send, then each time the
 * previous deadline passes without a response). Sets *ret_deadline = now + RT, where
 *   RT_1 = (1 + RAND) * IRT,   RT_n = (1 + RAND) * MIN(2 * RT_{n-1}, MRT),
 * RAND uniform in [-0.1, +0.1), freshly drawn each call (one pm_rand_unit per successful call).
 * Returns -ETIMEDOUT (state and *ret_deadline untouched, nothing sent) when the transmission would exceed
 * mrc, or when mrd > 0 and started + mrd has been reached or was already handed out as the deadline: a
 * deadline past started + mrd is clamped to it once, and the call after that times out. -EINVAL if irt is 0.
 */
int pm_retx_next(struct pm_retx *r, uint64_t now_us, const struct pm_rand *rnd, uint64_t *ret_deadline);

/*
 * When to send renewal number attempt (0 = first) of a mapping granted lifetime_s seconds at granted_at_us
 * (RFC 6887 11.2.1): uniformly in [1 - 2^-(k+1), 1 - 2^-(k+1) + 2^-(k+3)) of the lifetime after granted_at,
 * i.e. [1/2, 5/8), [3/4, 13/16), [7/8, 29/32), ..., but never earlier than prev_send_us + 4 s (prev_send_us
 * 0 = no previous send). Returns UINT64_MAX when that time is at or after the expiry granted_at + lifetime:
 * no more renewals, the mapping is lost. Consumes exactly one pm_rand_unit. The lifetime is used as given:
 * pass it through pm_lifetime_sane first.
 */
uint64_t pm_renew_at(uint64_t granted_at_us, uint32_t lifetime_s, unsigned attempt, uint64_t prev_send_us,
		     const struct pm_rand *rnd);

/* A granted lifetime capped at PCP_MAX_LIFETIME_S (RFC 6887 15: treat an implausible lifetime as 24 h). */
uint32_t pm_lifetime_sane(uint32_t granted_s);

/*
 * NAT-PMP (RFC 6886 3.1) schedule, 250 ms doubling: try n (1-based) is sent at first_send + 250 ms *
 * (2^(n-1) - 1), i.e. 0, 0.25, 0.75, 1.75, ..., 63.75 s. Returns when to send try tries_sent + 1; once
 * NATPMP_MAX_TRIES are sent it returns the give-up time, first_send + 127.75 s.
 */
uint64_t pm_natpmp_retx_deadline(uint64_t first_send_us, unsigned tries_sent);

/* Uniform random delay in [0, 5 s) before re-mapping after a multicast ANNOUNCE (RFC 6887 8.5, 14.1). */
uint64_t pm_announce_delay_us(const struct pm_rand *rnd);

#endif /* PCPMAP_SCHED_TIMING_H */
