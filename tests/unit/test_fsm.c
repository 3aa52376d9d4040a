/* The mapping state machine table: the edges the RFC flow needs, and the ones it must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "fsm/fsm.h"

#define S(x) PCPMAP_STATE_##x

static void expect_edge(enum pcpmap_state from, enum fsm_event ev, enum pcpmap_state to, unsigned must,
			unsigned must_not)
{
	struct fsm_result r;
	assert_int_equal(fsm_step(from, ev, &r), 0);
	assert_int_equal(r.state, to);
	assert_int_equal(r.actions & must, must);
	assert_int_equal(r.actions & must_not, 0);
}

static void expect_refused(enum pcpmap_state from, enum fsm_event ev)
{
	struct fsm_result r = { .state = S(FAILED), .actions = 0xdead };
	assert_int_equal(fsm_step(from, ev, &r), -EINVAL);
	/* Untouched on refusal. */
	assert_int_equal(r.state, S(FAILED));
	assert_int_equal(r.actions, 0xdead);
}

static void test_create_flow(void **state)
{
	(void)state;
	expect_edge(S(NOT_SENT), FSM_EV_START, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START,
		    FSM_A_NOTIFY_MAPPED);
	expect_edge(S(WAIT_RESP), FSM_EV_RETX_TIMER, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_NEXT,
		    FSM_A_RETX_START);
	expect_edge(S(WAIT_RESP), FSM_EV_SUCCESS, S(MAPPED),
		    FSM_A_CANCEL | FSM_A_RENEW_RESET | FSM_A_RENEW_ARM | FSM_A_EXPIRY_ARM |
			FSM_A_NOTIFY_MAPPED,
		    FSM_A_SEND);
}

static void test_renewal_is_one_packet_per_slot(void **state)
{
	(void)state;
	/* RFC 6887 11.2.1: a renewal is a single packet per slot, never a retransmission ladder. */
	expect_edge(S(MAPPED), FSM_EV_RENEW_TIMER, S(REFRESHING), FSM_A_SEND | FSM_A_RENEW_ARM,
		    FSM_A_RETX_START | FSM_A_RETX_NEXT);
	expect_edge(S(REFRESHING), FSM_EV_RENEW_TIMER, S(REFRESHING), FSM_A_SEND | FSM_A_RENEW_ARM,
		    FSM_A_RETX_START | FSM_A_RETX_NEXT);
	expect_edge(S(REFRESHING), FSM_EV_SUCCESS, S(MAPPED), FSM_A_RENEW_RESET | FSM_A_EXPIRY_ARM,
		    FSM_A_SEND);
	expect_edge(S(REFRESHING), FSM_EV_EXPIRED, S(WAIT_RESP),
		    FSM_A_NOTIFY_LOST | FSM_A_SEND | FSM_A_RETX_START, 0);
}

static void test_errors(void **state)
{
	(void)state;
	expect_edge(S(WAIT_RESP), FSM_EV_ERR_RETRY, S(ERROR_WAIT_RESEND),
		    FSM_A_HOLD_ARM | FSM_A_NOTIFY_FAILED, FSM_A_SEND);
	expect_edge(S(ERROR_WAIT_RESEND), FSM_EV_HOLD_TIMER, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START, 0);
	expect_edge(S(WAIT_RESP), FSM_EV_ERR_FATAL, S(FAILED), FSM_A_NOTIFY_FAILED, FSM_A_SEND);
	expect_edge(S(WAIT_RESP), FSM_EV_GIVE_UP, S(FAILED), FSM_A_NOTIFY_FAILED, FSM_A_SEND);
}

/* A possible state loss is confirmed by a renewal: the grant stays live and nothing is reported (LOST would
 * contradict a gateway that kept the mapping). */
static void test_state_loss_verifies(void **state)
{
	(void)state;
	expect_edge(S(MAPPED), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START,
		    FSM_A_NOTIFY_LOST | FSM_A_EXPIRY_CANCEL);
	expect_edge(S(REFRESHING), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START,
		    FSM_A_NOTIFY_LOST | FSM_A_EXPIRY_CANCEL);
	expect_edge(S(WAIT_RESP), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START,
		    FSM_A_NOTIFY_LOST);
}

/* The side doors are edges now: a pair's restart, a re-home, a delete of what another run made. */
static void test_former_side_doors(void **state)
{
	(void)state;
	expect_edge(S(MAPPED), FSM_EV_RESTART, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL, FSM_A_SEND);
	expect_edge(S(MAPPED), FSM_EV_REHOME, S(NOT_SENT), FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_LOST,
		    FSM_A_SEND);
	expect_edge(S(FAILED), FSM_EV_REHOME, S(NOT_SENT), FSM_A_CANCEL, FSM_A_NOTIFY_LOST);
	expect_edge(S(NOT_SENT), FSM_EV_UNMAP, S(DELETING), FSM_A_SEND | FSM_A_RETX_START, FSM_A_NOTIFY_LOST);
	expect_edge(S(MAPPED), FSM_EV_ERR_FATAL, S(FAILED), FSM_A_NOTIFY_FAILED | FSM_A_EXPIRY_CANCEL,
		    FSM_A_SEND);
	/* A late answer during an error hold: the gateway holds it after all. */
	expect_edge(S(ERROR_WAIT_RESEND), FSM_EV_SUCCESS, S(MAPPED), FSM_A_NOTIFY_MAPPED | FSM_A_EXPIRY_ARM,
		    0);
	/* fsm_apply writes the state only when the edge exists. */
	enum pcpmap_state st = S(DELETED);
	struct fsm_result r;
	assert_int_equal(fsm_apply(&st, FSM_EV_START, &r), -EINVAL);
	assert_int_equal(st, S(DELETED));
	st = S(NOT_SENT);
	assert_int_equal(fsm_apply(&st, FSM_EV_UNMAP, &r), 0);
	assert_int_equal(st, S(DELETING));
}

static void test_delete(void **state)
{
	(void)state;
	expect_edge(S(MAPPED), FSM_EV_DELETE, S(DELETING),
		    FSM_A_SEND | FSM_A_RETX_START | FSM_A_EXPIRY_CANCEL, 0);
	expect_edge(S(DELETING), FSM_EV_RETX_TIMER, S(DELETING), FSM_A_SEND | FSM_A_RETX_NEXT, 0);
	expect_edge(S(DELETING), FSM_EV_DELETED, S(DELETED), FSM_A_RELEASE | FSM_A_NOTIFY_DELETED,
		    FSM_A_SEND);
	/* A delete that did not happen is FAILED, never DELETED. */
	expect_edge(S(DELETING), FSM_EV_GIVE_UP, S(DELETED), FSM_A_RELEASE | FSM_A_NOTIFY_FAILED,
		    FSM_A_SEND | FSM_A_NOTIFY_DELETED);
	expect_edge(S(DELETING), FSM_EV_DELETE_REFUSED, S(DELETED), FSM_A_RELEASE | FSM_A_NOTIFY_FAILED,
		    FSM_A_SEND | FSM_A_NOTIFY_DELETED);
	/* Nothing was sent: nothing to delete. */
	expect_edge(S(NOT_SENT), FSM_EV_DELETE, S(DELETED), FSM_A_RELEASE, FSM_A_SEND);
	expect_edge(S(FAILED), FSM_EV_DELETE, S(DELETED), FSM_A_RELEASE, FSM_A_SEND);
}

static void test_fallback_edges(void **state)
{
	(void)state;
	expect_edge(S(WAIT_RESP), FSM_EV_SWITCH, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START,
		    0);
	expect_edge(S(WAIT_RESP), FSM_EV_PARK, S(NOT_SENT), FSM_A_CANCEL, FSM_A_SEND);
	expect_edge(S(NOT_SENT), FSM_EV_ERR_RETRY, S(ERROR_WAIT_RESEND), FSM_A_HOLD_ARM | FSM_A_NOTIFY_FAILED,
		    0);
	expect_edge(S(NOT_SENT), FSM_EV_GIVE_UP, S(FAILED), FSM_A_NOTIFY_FAILED, 0);
}

static void test_impossible_edges_refused(void **state)
{
	(void)state;
	expect_refused(S(MAPPED), FSM_EV_RETX_TIMER);
	expect_refused(S(MAPPED), FSM_EV_START);
	expect_refused(S(NOT_SENT), FSM_EV_SUCCESS);
	expect_refused(S(DELETING), FSM_EV_SUCCESS);
	expect_refused(S(FAILED), FSM_EV_SUCCESS);
	expect_refused(S(FAILED), FSM_EV_RETX_TIMER);
	for (int ev = 0; ev < FSM_EV__MAX; ev++)
		expect_refused(S(DELETED), (enum fsm_event)ev);
}

static void test_names(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(fsm_event_name(FSM_EV_RENEW_TIMER), "RENEW_TIMER");
	assert_string_equal(fsm_event_name((enum fsm_event)999), "?");
	fsm_actions_string(FSM_A_SEND | FSM_A_RELEASE, buf, sizeof(buf));
	assert_string_equal(buf, "send|release");
	fsm_actions_string(FSM_A_SEND | FSM_A_RETX_START | FSM_A_RENEW_ARM, buf, 12);
	assert_true(strlen(buf) < 12);
	assert_string_equal(pcpmap_state_name(PCPMAP_STATE_ERROR_WAIT_RESEND), "ERROR_WAIT_RESEND");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_flow),
		cmocka_unit_test(test_renewal_is_one_packet_per_slot),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_state_loss_verifies),
		cmocka_unit_test(test_former_side_doors),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_fallback_edges),
		cmocka_unit_test(test_impossible_edges_refused),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
