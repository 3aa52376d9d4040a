/* The mapping state machine shared by every protocol: one table {state, event} -> {new state, actions}.
 * Pure: no I/O, no clock, no bytes. The caller performs the returned actions. */
#ifndef PCPMAP_FSM_H
#define PCPMAP_FSM_H

#include <pcpmap/mapping.h>

enum fsm_event {
	FSM_EV_START = 0,   /* the application asked for the mapping */
	FSM_EV_SUCCESS,     /* the gateway granted it (lifetime > 0) */
	FSM_EV_ERR_RETRY,   /* the gateway refused for now (short-lifetime error) or cannot be reached now */
	FSM_EV_ERR_FATAL,   /* the gateway refused for good (long-lifetime error) */
	FSM_EV_RETX_TIMER,  /* a retransmission is due */
	FSM_EV_HOLD_TIMER,  /* the error hold time is over: try again */
	FSM_EV_RENEW_TIMER, /* a renewal slot is due */
	FSM_EV_EXPIRED,     /* the granted lifetime ran out without a renewal */
	FSM_EV_DELETE,      /* the application released the mapping */
	FSM_EV_DELETED,     /* the gateway confirmed the delete, or gave a final answer to it */
	FSM_EV_VERIFY,  /* the server may have lost its state (epoch, announcement): renew now to confirm */
	FSM_EV_GIVE_UP, /* the first-contact deadline passed or the retry budget is spent */
	FSM_EV_RETRY,   /* try a failed mapping again (network change, new server) */
	FSM_EV_SWITCH,  /* the fallback policy moved the mapping to another protocol: start over there */
	FSM_EV_PARK,    /* wait, unsent, until the gateway's protocols are known */
	FSM_EV_RESTART, /* start over unsent (a port pair's next try, with a fresh nonce) */
	FSM_EV_REHOME,  /* the gateway or our address changed: start over unsent on the new path */
	FSM_EV_UNMAP,   /* delete a mapping made elsewhere (an earlier run, another process) */
	FSM_EV_DELETE_REFUSED, /* the gateway answered the delete with an error: nothing was deleted */
	FSM_EV_MOVE,           /* the fallback policy moves a granted mapping to another protocol */
	FSM_EV__MAX
};

enum fsm_action {
	FSM_A_SEND = 1u << 0,          /* send the request for the new state (create, renew or delete) */
	FSM_A_RETX_START = 1u << 1,    /* start a retransmission ladder (RFC 6887 8.1.1) */
	FSM_A_RETX_NEXT = 1u << 2,     /* continue the ladder */
	FSM_A_RENEW_ARM = 1u << 3,     /* schedule the next renewal slot (RFC 6887 11.2.1) */
	FSM_A_RENEW_RESET = 1u << 4,   /* a fresh grant: renewal slots restart at attempt 0 */
	FSM_A_HOLD_ARM = 1u << 5,      /* wait the error's hold time before trying again */
	FSM_A_CANCEL = 1u << 6,        /* cancel the pending retransmission / renewal / hold timer */
	FSM_A_EXPIRY_ARM = 1u << 7,    /* (re)arm the expiry timer at the granted lifetime */
	FSM_A_EXPIRY_CANCEL = 1u << 8, /* the mapping is not held any more */
	FSM_A_NOTIFY_MAPPED = 1u << 9, /* MAPPED or CHANGED, the caller compares values */
	FSM_A_NOTIFY_LOST = 1u << 10,
	FSM_A_NOTIFY_FAILED = 1u << 11,
	FSM_A_NOTIFY_DELETED = 1u << 12,
	FSM_A_RELEASE = 1u << 13, /* the mapping object may be freed */
};

struct fsm_result {
	enum pcpmap_state state;
	unsigned actions;
};

/* Looks up the edge. Returns 0 and fills ret, or -EINVAL for an edge the table does not have (the caller
 * ignores the event and logs it). */
int fsm_step(enum pcpmap_state from, enum fsm_event ev, struct fsm_result *ret);
/* The only door to a mapping's state: takes the edge for ev from *state, writes the new state and fills ret.
 * Returns -EINVAL, with *state untouched, when the table has no such edge. */
int fsm_apply(enum pcpmap_state *state, enum fsm_event ev, struct fsm_result *ret);

const char *fsm_event_name(enum fsm_event ev);
/* Writes the action names joined by '|' into buf. */
void fsm_actions_string(unsigned actions, char *buf, size_t len);

#endif
