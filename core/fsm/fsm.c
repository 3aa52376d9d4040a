/* The mapping state machine: every edge a mapping can take, as data. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fsm/fsm.h"
#include "text/text.h"

#define S(x) PCPMAP_STATE_##x

struct fsm_edge {
	enum pcpmap_state from;
	enum fsm_event ev;
	enum pcpmap_state to;
	unsigned actions;
};

/* Retransmission restarts whenever a new kind of request (create, delete) goes out; a renewal is one packet
 * per slot (RFC 6887 11.2.1), so REFRESHING advances slots instead of retransmitting. */
static const struct fsm_edge fsm_table[] = {
	{ S(NOT_SENT), FSM_EV_START, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START },
	{ S(NOT_SENT), FSM_EV_DELETE, S(DELETED), FSM_A_CANCEL | FSM_A_RELEASE },
	/* Parked while protocols are probed: no answer anywhere, or the deadline passed. */
	{ S(NOT_SENT), FSM_EV_ERR_RETRY, S(ERROR_WAIT_RESEND),
	  FSM_A_CANCEL | FSM_A_HOLD_ARM | FSM_A_NOTIFY_FAILED },
	{ S(NOT_SENT), FSM_EV_GIVE_UP, S(FAILED), FSM_A_CANCEL | FSM_A_NOTIFY_FAILED },
	/* The gateway's protocol cannot express the request. */
	{ S(NOT_SENT), FSM_EV_ERR_FATAL, S(FAILED), FSM_A_CANCEL | FSM_A_NOTIFY_FAILED },

	{ S(WAIT_RESP), FSM_EV_SUCCESS, S(MAPPED),
	  FSM_A_CANCEL | FSM_A_RENEW_RESET | FSM_A_RENEW_ARM | FSM_A_EXPIRY_ARM | FSM_A_NOTIFY_MAPPED },
	{ S(WAIT_RESP), FSM_EV_RETX_TIMER, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_NEXT },
	{ S(WAIT_RESP), FSM_EV_ERR_RETRY, S(ERROR_WAIT_RESEND),
	  FSM_A_CANCEL | FSM_A_HOLD_ARM | FSM_A_NOTIFY_FAILED },
	{ S(WAIT_RESP), FSM_EV_ERR_FATAL, S(FAILED),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_FAILED },
	{ S(WAIT_RESP), FSM_EV_GIVE_UP, S(FAILED), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_FAILED },
	{ S(WAIT_RESP), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(WAIT_RESP), FSM_EV_EXPIRED, S(WAIT_RESP), FSM_A_NOTIFY_LOST },
	{ S(WAIT_RESP), FSM_EV_SWITCH, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(WAIT_RESP), FSM_EV_PARK, S(NOT_SENT), FSM_A_CANCEL },
	{ S(WAIT_RESP), FSM_EV_DELETE, S(DELETING),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_SEND | FSM_A_RETX_START },

	{ S(MAPPED), FSM_EV_RENEW_TIMER, S(REFRESHING), FSM_A_SEND | FSM_A_RENEW_ARM },
	{ S(MAPPED), FSM_EV_SUCCESS, S(MAPPED),
	  FSM_A_CANCEL | FSM_A_RENEW_RESET | FSM_A_RENEW_ARM | FSM_A_EXPIRY_ARM | FSM_A_NOTIFY_MAPPED },
	/* A possible state loss is confirmed with a renewal on the retransmission ladder, not reported: LOST
	 * means the gateway no longer holds the mapping, and an epoch reset or an announcement does not prove
	 * that (miniupnpd resets its epoch on SIGUSR1 and keeps every rule). Until an answer comes the mapping
	 * waits (WAIT_RESP) and claims nothing; the grant's expiry, if it comes first, is LOST. */
	{ S(MAPPED), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(MAPPED), FSM_EV_EXPIRED, S(WAIT_RESP),
	  FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START | FSM_A_NOTIFY_LOST },
	{ S(MAPPED), FSM_EV_DELETE, S(DELETING),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	/* A port pair that cannot complete: the owner gives its half back and fails. */
	{ S(MAPPED), FSM_EV_ERR_FATAL, S(FAILED), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_FAILED },

	{ S(REFRESHING), FSM_EV_SUCCESS, S(MAPPED),
	  FSM_A_CANCEL | FSM_A_RENEW_RESET | FSM_A_RENEW_ARM | FSM_A_EXPIRY_ARM | FSM_A_NOTIFY_MAPPED },
	{ S(REFRESHING), FSM_EV_RENEW_TIMER, S(REFRESHING), FSM_A_SEND | FSM_A_RENEW_ARM },
	{ S(REFRESHING), FSM_EV_ERR_RETRY, S(ERROR_WAIT_RESEND),
	  FSM_A_CANCEL | FSM_A_HOLD_ARM | FSM_A_NOTIFY_FAILED },
	{ S(REFRESHING), FSM_EV_ERR_FATAL, S(FAILED),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_FAILED },
	{ S(REFRESHING), FSM_EV_EXPIRED, S(WAIT_RESP),
	  FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START | FSM_A_NOTIFY_LOST },
	{ S(REFRESHING), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(REFRESHING), FSM_EV_DELETE, S(DELETING),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_SEND | FSM_A_RETX_START },

	/* An answer to a request sent before the hold: the gateway holds the mapping after all. */
	{ S(ERROR_WAIT_RESEND), FSM_EV_SUCCESS, S(MAPPED),
	  FSM_A_CANCEL | FSM_A_RENEW_RESET | FSM_A_RENEW_ARM | FSM_A_EXPIRY_ARM | FSM_A_NOTIFY_MAPPED },
	{ S(ERROR_WAIT_RESEND), FSM_EV_HOLD_TIMER, S(WAIT_RESP),
	  FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(ERROR_WAIT_RESEND), FSM_EV_SWITCH, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(ERROR_WAIT_RESEND), FSM_EV_PARK, S(NOT_SENT), FSM_A_CANCEL },
	{ S(ERROR_WAIT_RESEND), FSM_EV_ERR_RETRY, S(ERROR_WAIT_RESEND),
	  FSM_A_CANCEL | FSM_A_HOLD_ARM | FSM_A_NOTIFY_FAILED },
	{ S(ERROR_WAIT_RESEND), FSM_EV_VERIFY, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(ERROR_WAIT_RESEND), FSM_EV_RETRY, S(WAIT_RESP), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(ERROR_WAIT_RESEND), FSM_EV_EXPIRED, S(ERROR_WAIT_RESEND), FSM_A_NOTIFY_LOST },
	{ S(ERROR_WAIT_RESEND), FSM_EV_GIVE_UP, S(FAILED),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_FAILED },
	{ S(ERROR_WAIT_RESEND), FSM_EV_ERR_FATAL, S(FAILED),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_FAILED },
	/* The gateway may still hold a mapping an earlier answer granted: delete it. */
	{ S(ERROR_WAIT_RESEND), FSM_EV_DELETE, S(DELETING),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_SEND | FSM_A_RETX_START },

	{ S(DELETING), FSM_EV_RETX_TIMER, S(DELETING), FSM_A_SEND | FSM_A_RETX_NEXT },
	/* The route came back: the delete's tries, spent on silence, start again. */
	{ S(DELETING), FSM_EV_SWITCH, S(DELETING), FSM_A_CANCEL | FSM_A_SEND | FSM_A_RETX_START },
	{ S(DELETING), FSM_EV_DELETED, S(DELETED), FSM_A_CANCEL | FSM_A_NOTIFY_DELETED | FSM_A_RELEASE },
	/* A delete that did not happen is never DELETED: refused or unanswered, it is FAILED. */
	{ S(DELETING), FSM_EV_DELETE_REFUSED, S(DELETED),
	  FSM_A_CANCEL | FSM_A_NOTIFY_FAILED | FSM_A_RELEASE },
	{ S(DELETING), FSM_EV_GIVE_UP, S(DELETED), FSM_A_CANCEL | FSM_A_NOTIFY_FAILED | FSM_A_RELEASE },

	{ S(FAILED), FSM_EV_RETRY, S(WAIT_RESP), FSM_A_SEND | FSM_A_RETX_START },
	{ S(FAILED), FSM_EV_DELETE, S(DELETED), FSM_A_RELEASE },

	/* A port pair's next try: the owner's half was given back, it starts over with a fresh nonce. */
	{ S(WAIT_RESP), FSM_EV_RESTART, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },
	{ S(MAPPED), FSM_EV_RESTART, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },
	{ S(REFRESHING), FSM_EV_RESTART, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },
	{ S(ERROR_WAIT_RESEND), FSM_EV_RESTART, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },

	/* A new gateway or a new source address: what the old path held is out of reach (LOST, reported only
	 * for a mapping that was reported held), and everything starts over there, failed ones included. */
	{ S(NOT_SENT), FSM_EV_REHOME, S(NOT_SENT), FSM_A_CANCEL },
	{ S(WAIT_RESP), FSM_EV_REHOME, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_LOST },
	{ S(MAPPED), FSM_EV_REHOME, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_LOST },
	{ S(REFRESHING), FSM_EV_REHOME, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_LOST },
	{ S(ERROR_WAIT_RESEND), FSM_EV_REHOME, S(NOT_SENT),
	  FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL | FSM_A_NOTIFY_LOST },
	{ S(FAILED), FSM_EV_REHOME, S(NOT_SENT), FSM_A_CANCEL },

	/* A granted mapping moves to another protocol: the old grant is deleted by a mapping of its own, this
	 * one asks anew. Nothing is reported: the new grant is MAPPED, CHANGED or nothing (same values). */
	{ S(WAIT_RESP), FSM_EV_MOVE, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },
	{ S(MAPPED), FSM_EV_MOVE, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },
	{ S(REFRESHING), FSM_EV_MOVE, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },
	{ S(ERROR_WAIT_RESEND), FSM_EV_MOVE, S(NOT_SENT), FSM_A_CANCEL | FSM_A_EXPIRY_CANCEL },

	/* Deleting what an earlier run or another process made: straight to DELETING, nothing held here. */
	{ S(NOT_SENT), FSM_EV_UNMAP, S(DELETING), FSM_A_SEND | FSM_A_RETX_START },
};

int fsm_step(enum pcpmap_state from, enum fsm_event ev, struct fsm_result *ret)
{
	for (size_t i = 0; i < sizeof(fsm_table) / sizeof(fsm_table[0]); i++) {
		if (fsm_table[i].from == from && fsm_table[i].ev == ev) {
			ret->state = fsm_table[i].to;
			ret->actions = fsm_table[i].actions;
			return 0;
		}
	}
	return -EINVAL;
}

int fsm_apply(enum pcpmap_state *state, enum fsm_event ev, struct fsm_result *ret)
{
	int r = fsm_step(*state, ev, ret);
	if (r == 0)
		*state = ret->state;
	return r;
}

const char *fsm_event_name(enum fsm_event ev)
{
	static const char *const names[FSM_EV__MAX] = {
		[FSM_EV_START] = "START",
		[FSM_EV_SUCCESS] = "SUCCESS",
		[FSM_EV_ERR_RETRY] = "ERR_RETRY",
		[FSM_EV_ERR_FATAL] = "ERR_FATAL",
		[FSM_EV_RETX_TIMER] = "RETX_TIMER",
		[FSM_EV_HOLD_TIMER] = "HOLD_TIMER",
		[FSM_EV_RENEW_TIMER] = "RENEW_TIMER",
		[FSM_EV_EXPIRED] = "EXPIRED",
		[FSM_EV_DELETE] = "DELETE",
		[FSM_EV_DELETED] = "DELETED",
		[FSM_EV_VERIFY] = "VERIFY",
		[FSM_EV_GIVE_UP] = "GIVE_UP",
		[FSM_EV_RETRY] = "RETRY",
		[FSM_EV_SWITCH] = "SWITCH",
		[FSM_EV_PARK] = "PARK",
		[FSM_EV_RESTART] = "RESTART",
		[FSM_EV_REHOME] = "REHOME",
		[FSM_EV_UNMAP] = "UNMAP",
		[FSM_EV_DELETE_REFUSED] = "DELETE_REFUSED",
		[FSM_EV_MOVE] = "MOVE",
	};
	if ((unsigned)ev >= FSM_EV__MAX)
		return "?";
	return names[ev];
}

void fsm_actions_string(unsigned actions, char *buf, size_t len)
{
	static const char *const names[] = { "send",           "retx-start",  "retx-next",
					     "renew-arm",      "renew-reset", "hold-arm",
					     "cancel",         "expiry-arm",  "expiry-cancel",
					     "notify-mapped",  "notify-lost", "notify-failed",
					     "notify-deleted", "release" };
	struct pm_text t;
	if (len == 0)
		return;
	pm_text_init(&t, buf, len);
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]) && !t.cut; i++) {
		if (!(actions & (1u << i)))
			continue;
		if (t.len)
			pm_text_str(&t, "|");
		pm_text_str(&t, names[i]);
	}
}
