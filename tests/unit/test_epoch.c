/* Epoch state-loss checks at their exact boundaries: PCP (RFC 6887 8.5) and NAT-PMP (RFC 6886 3.6). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "wire/pcp_epoch.h"

/* A fresh state that has seen (server, client). */
static struct pcp_epoch seen(uint32_t server, uint64_t client)
{
	struct pcp_epoch e;
	memset(&e, 0, sizeof(e));
	assert_true(pcp_epoch_check(&e, server, client)); /* the first value is always valid */
	return e;
}

static bool pcp_step(uint32_t prev_server, uint64_t prev_client, uint32_t server, uint64_t client)
{
	struct pcp_epoch e = seen(prev_server, prev_client);
	bool valid = pcp_epoch_check(&e, server, client);
	/* Always records the new pair. */
	assert_true(e.have);
	assert_int_equal(e.server, server);
	assert_int_equal(e.client_s, client);
	return valid;
}

static void test_pcp_first(void **state)
{
	(void)state;
	struct pcp_epoch e;
	memset(&e, 0, sizeof(e));
	assert_true(pcp_epoch_check(&e, 0, 0));
	assert_true(e.have);
	memset(&e, 0, sizeof(e));
	assert_true(pcp_epoch_check(&e, UINT32_MAX, UINT64_MAX / 2));
	assert_int_equal(e.server, UINT32_MAX);
}

static void test_pcp_backwards(void **state)
{
	(void)state;
	/* Same instant: back by exactly 1 s is valid, by 2 s is not. */
	assert_true(pcp_step(1000, 500, 1000, 500));
	assert_true(pcp_step(1000, 500, 999, 500));
	assert_false(pcp_step(1000, 500, 998, 500));
	assert_false(pcp_step(1000, 500, 0, 500));
	/* Back by 1 s after client time passed: the rate rule still applies (client 2 s ahead, 2 s slack). */
	assert_true(pcp_step(1000, 500, 999, 501));
	assert_false(pcp_step(1000, 500, 999, 502));
	/* A server restart reported with a small epoch long after. */
	assert_false(pcp_step(100000, 0, 5, 100000));
	/* Epoch 0 from a server that was at 1: back by exactly 1 s. */
	assert_true(pcp_step(1, 10, 0, 10));
}

static void test_pcp_slack_server_fast(void **state)
{
	(void)state;
	/*
	 * Client waited 160 s. Invalid iff 160 + 2 < S - S/16: S = 172 gives 172 - 10 = 162 (valid, the edge),
	 * S = 173 gives 173 - 10 = 163 (invalid).
	 */
	assert_true(pcp_step(1000, 100, 1000 + 172, 100 + 160));
	assert_false(pcp_step(1000, 100, 1000 + 173, 100 + 160));
	/* Small deltas: only the 2 s slack (S/16 = 0 below 16). */
	assert_true(pcp_step(1000, 100, 1002, 100));
	assert_false(pcp_step(1000, 100, 1003, 100));
	assert_true(pcp_step(1000, 100, 1000 + 12, 100 + 10));
	assert_false(pcp_step(1000, 100, 1000 + 13, 100 + 10));
}

static void test_pcp_slack_client_fast(void **state)
{
	(void)state;
	/* Server advanced 160 s. Invalid iff 160 + 2 < C - C/16: C = 172 valid, C = 173 invalid. */
	assert_true(pcp_step(1000, 100, 1000 + 160, 100 + 172));
	assert_false(pcp_step(1000, 100, 1000 + 160, 100 + 173));
	/* Server stood still for 2 s / 3 s of client time. */
	assert_true(pcp_step(1000, 100, 1000, 102));
	assert_false(pcp_step(1000, 100, 1000, 103));
	/* Long gaps: 1/16 of a day. C = 86400: 86400 - 5400 = 81000, so S must be >= 80998. */
	assert_true(pcp_step(0, 0, 80998, 86400));
	assert_false(pcp_step(0, 0, 80997, 86400));
}

static void test_pcp_sequence(void **state)
{
	(void)state;
	struct pcp_epoch e;
	memset(&e, 0, sizeof(e));
	/* A well-behaved server over several responses. */
	assert_true(pcp_epoch_check(&e, 10, 1000));
	assert_true(pcp_epoch_check(&e, 40, 1030));
	assert_true(pcp_epoch_check(&e, 3640, 4630));
	/* It reboots: epoch back near 0. */
	assert_false(pcp_epoch_check(&e, 3, 4700));
	/* The new value became the reference: the next response is judged against it. */
	assert_true(pcp_epoch_check(&e, 63, 4760));
	/* An invalid check still updated the pair: after a jump forward, continuing from there is valid. */
	assert_false(pcp_epoch_check(&e, 100000, 4761));
	assert_true(pcp_epoch_check(&e, 100010, 4771));
}

static bool natpmp_step(uint32_t prev, uint64_t prev_client, uint32_t sssoe, uint64_t client)
{
	struct pcp_epoch e;
	memset(&e, 0, sizeof(e));
	assert_true(natpmp_epoch_check(&e, prev, prev_client));
	bool valid = natpmp_epoch_check(&e, sssoe, client);
	assert_int_equal(e.server, sssoe);
	assert_int_equal(e.client_s, client);
	return valid;
}

static void test_natpmp(void **state)
{
	(void)state;
	struct pcp_epoch e;
	memset(&e, 0, sizeof(e));
	assert_true(natpmp_epoch_check(&e, 0, 0)); /* first value */
	assert_true(e.have);

	/* elapsed 80: expected = 1000 + 80 - 10 = 1070; invalid iff new + 2 < 1070. */
	assert_true(natpmp_step(1000, 0, 1068, 80));
	assert_false(natpmp_step(1000, 0, 1067, 80));
	assert_true(natpmp_step(1000, 0, 1080, 80));
	/* NAT-PMP has no upper bound: a gateway clock running fast is not state loss. */
	assert_true(natpmp_step(1000, 0, 500000, 80));
	/* Same instant: back by 2 s is still valid, by 3 s is not. */
	assert_true(natpmp_step(1000, 50, 998, 50));
	assert_false(natpmp_step(1000, 50, 997, 50));
	/* elapsed 7: 7/8 rounds to 0, expected = prev + 7. */
	assert_true(natpmp_step(1000, 0, 1005, 7));
	assert_false(natpmp_step(1000, 0, 1004, 7));
	/* elapsed 8: expected = prev + 7. */
	assert_true(natpmp_step(1000, 0, 1005, 8));
	assert_false(natpmp_step(1000, 0, 1004, 8));
	/* Reboot: SSSoE small after an hour. */
	assert_false(natpmp_step(3600, 0, 4, 3600));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcp_first),
		cmocka_unit_test(test_pcp_backwards),
		cmocka_unit_test(test_pcp_slack_server_fast),
		cmocka_unit_test(test_pcp_slack_client_fast),
		cmocka_unit_test(test_pcp_sequence),
		cmocka_unit_test(test_natpmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
