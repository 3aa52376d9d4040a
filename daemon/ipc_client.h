/* SPDX-License-Identifier: MIT */
/*
 * Blocking client of pcpmapd's control socket (doc/IPC.md), for the pcpmap tool, the library's daemon mode
 * and tests. Uses only the IPC codec and the public pcpmap types; knows nothing of the daemon's internals.
 * One connection, one thread. Every call waits for its reply (timeout set by pmd_ctl_set_timeout(), 30 s by
 * default); events that arrive meanwhile are queued for pmd_ctl_next_event().
 *
 * Errors: -errno. A refusal by the daemon returns the errno it sent (-EPERM not yours, -ENOENT no such
 * mapping, -EDQUOT per-uid limit, -ENOSPC daemon limit, -EINVAL bad request, -EBADMSG malformed, ...), and
 * pmd_ctl_error() gives its message. -ECONNRESET when the daemon closed the connection, -ETIMEDOUT when no
 * reply came in time, -EPROTO when the reply made no sense.
 */
#ifndef PCPMAP_DAEMON_IPC_CLIENT_H
#define PCPMAP_DAEMON_IPC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pcpmap/pcpmap.h>

#include "ipc/ipc.h"

/* Where pcpmapd listens unless told otherwise. */
#define PMD_CTL_DEFAULT_SOCKET "/run/pcpmapd/pcpmapd.sock"

struct pmd_ctl;

/* A mapping as the daemon describes it. info's expires_usec, refresh_usec and retry_usec are on the
 * pcpmap_now_usec() clock (CLOCK_MONOTONIC), converted from the daemon's relative seconds. */
struct pmd_ctl_mapping {
	uint32_t id;
	uint32_t owner_uid;
	bool persistent;
	bool has_nonce; /* the daemon shows the nonce to the owner and root only */
	struct pcpmap_mapping_info info;
	uint32_t refresh_in; /* seconds until the next renewal; UINT32_MAX when none is scheduled */
	char description[PMD_IPC_DESC_MAX + 1];
	char third_party[PMD_IPC_ADDR_MAX + 1];
};

/* The daemon's view of the external address. */
struct pmd_ctl_external {
	char addr[PMD_IPC_ADDR_MAX + 1];
	enum pcpmap_proto proto;
	bool is_private;
};

struct pmd_ctl_stats {
	uint64_t wakeups;        /* event-loop wakeups since the daemon started */
	uint64_t timer_wakeups;  /* of which the timer fired */
	uint64_t engine_wakeups; /* of which the engine's descriptor was readable */
	uint64_t uptime_s;
	uint32_t connections;
	uint32_t mappings;
};

/* Flags for pmd_ctl_create(). */
#define PMD_CTL_PERSISTENT 1u /* the daemon keeps the mapping after this connection closes, across restarts */

/*
 * Connects. path NULL: $PCPMAPD_SOCKET, else PMD_CTL_DEFAULT_SOCKET.
 * @return 0; -errno of socket()/connect() (-ENOENT no daemon, -ECONNREFUSED stale socket, -EACCES).
 */
int pmd_ctl_connect(const char *path, struct pmd_ctl **ret);

/* Closes the connection; the daemon deletes the non-persistent mappings it made. Accepts NULL. */
void pmd_ctl_close(struct pmd_ctl *c);

/* The socket, to poll for events (POLLIN) in a caller's loop. */
int pmd_ctl_fd(const struct pmd_ctl *c);

/* Reply timeout in milliseconds; -1 waits for ever. */
void pmd_ctl_set_timeout(struct pmd_ctl *c, int timeout_ms);

/* The message of the last ERROR reply ("" if none). */
const char *pmd_ctl_error(const struct pmd_ctl *c);

/*
 * Asks the daemon to create a mapping (every field of req except callback/userdata; req->nonce re-uses a
 * nonce). wait_ms > 0: the reply comes after the first outcome (mapped, changed or failed) or after wait_ms,
 * whichever is first; 0: at once, in state NOT_SENT or WAIT_RESP.
 * @param ret receives the mapping (may be NULL); filled on -EADDRINUSE etc. too when the daemon answered.
 * @return 0 when created (and, with wait_ms, MAPPED); the mapping's error when it failed (ret->info.state
 *         tells whether the daemon keeps retrying); -ETIMEDOUT when wait_ms passed without an outcome (the
 *         mapping exists and keeps trying); a refusal (-EPERM, -EDQUOT, -ENOSPC, -EINVAL...).
 */
int pmd_ctl_create(struct pmd_ctl *c, const struct pcpmap_request *req, unsigned flags, int wait_ms,
		   struct pmd_ctl_mapping *ret);

/* Deletes mapping id (owner or root) and waits for the gateway's answer, up to the timeout plus
 * PMD_IPC_DELETE_WAIT_MS. @return 0 once the gateway confirmed; -ENOENT, -EPERM; the gateway's refusal
 * (-EACCES) or -ETIMEDOUT when it never answered: then the daemon keeps the mapping. */
int pmd_ctl_delete(struct pmd_ctl *c, uint32_t id);

/* Asks the daemon to delete mapping id without waiting for the outcome (an interactive view that must not
 * stall on a gateway that does not answer): the list shows it DELETING, then gone, or kept when the gateway
 * refused. @return 0 once sent; -ECONNRESET, -errno of the send. */
int pmd_ctl_delete_send(struct pmd_ctl *c, uint32_t id);

/* Every mapping the daemon holds (malloc'd array in *ret, free() it). @return 0 or -errno. */
int pmd_ctl_list(struct pmd_ctl *c, struct pmd_ctl_mapping **ret, size_t *ret_n);

/* One mapping by id. @return 0, -ENOENT. */
int pmd_ctl_get(struct pmd_ctl *c, uint32_t id, struct pmd_ctl_mapping *ret);

/* Probes the gateway through the daemon (pcpmap_client_probe()). timeout_ms 0: the daemon's default. */
int pmd_ctl_probe(struct pmd_ctl *c, int timeout_ms, struct pcpmap_probe_result *ret);

/* The external address (from a live IPv4 mapping, else a probe). */
int pmd_ctl_external(struct pmd_ctl *c, int timeout_ms, struct pmd_ctl_external *ret);

/* Starts (or with on = false stops) event delivery: events of this uid's mappings, every mapping's for root. */
int pmd_ctl_subscribe(struct pmd_ctl *c, bool on);

/*
 * Waits for the next event (queued ones first).
 * @return 0 (ev and m filled); -ETIMEDOUT; -ECONNRESET.
 */
int pmd_ctl_next_event(struct pmd_ctl *c, int timeout_ms, enum pcpmap_event *ret_ev,
		       struct pmd_ctl_mapping *m);

/* The daemon's counters. */
int pmd_ctl_stats(struct pmd_ctl *c, struct pmd_ctl_stats *ret);

/* Low level, for tests and tools: send raw bytes as one message; receive and decode the next message that is
 * not an event (events are queued). @return 0 or -errno (-EBADMSG: the daemon sent something undecodable). */
int pmd_ctl_send_raw(struct pmd_ctl *c, const void *buf, size_t len);
int pmd_ctl_recv_reply(struct pmd_ctl *c, struct pmd_ipc_msg *ret);

/* Fills m from a MAPPING or EVENT message. */
void pmd_ctl_mapping_from_msg(const struct pmd_ipc_msg *msg, struct pmd_ctl_mapping *m);

#endif
