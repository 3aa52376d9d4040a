/*
 * Injected time and randomness for the pure modules. The pure code never reads a clock or an entropy source
 * itself: the caller hands both in, so tests can script them.
 *
 * Time: one monotonic clock, uint64_t microseconds, arbitrary origin.
 * Randomness: fill() writes len bytes. Bytes are consumed in order and combined big-endian, so a test that
 * scripts the bytes knows exactly which value comes out (see pm_rand_u32 and pm_rand_unit).
 */
#ifndef PCPMAP_SCHED_ENV_H
#define PCPMAP_SCHED_ENV_H

#include <stddef.h>
#include <stdint.h>

struct pm_clock {
	uint64_t (*now_us)(void *ctx);
	void *ctx;
};

struct pm_rand {
	void (*fill)(void *ctx, void *buf, size_t len);
	void *ctx;
};

/* Reads the clock. */
static inline uint64_t pm_clock_now(const struct pm_clock *c)
{
	return c->now_us(c->ctx);
}

/* One fill() of 4 bytes, read big-endian: bytes 12 34 56 78 give 0x12345678. */
static inline uint32_t pm_rand_u32(const struct pm_rand *r)
{
	unsigned char b[4];

	r->fill(r->ctx, b, sizeof(b));
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/*
 * Uniform in [0, 1) with 53 bits: one fill() of 8 bytes read big-endian, top 53 bits used. All-zero bytes
 * give 0.0, 80 00.. gives 0.5, all-0xff bytes give 1 - 2^-53. Defined in timing.c.
 */
double pm_rand_unit(const struct pm_rand *r);

#endif /* PCPMAP_SCHED_ENV_H */
