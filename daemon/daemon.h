/* SPDX-License-Identifier: MIT */
/*
 * pcpmapd's parts and what they share. control.c owns the control socket, message framing and each
 * connection's output queue; engine.c owns the mappings (the library's handles, their events, the
 * requests that create, list and delete them) and their persistence; policy.c decides who may map what
 * (pure); pcpmapd.c holds the loop, the configuration and the process's life.
 */
#ifndef PCPMAP_DAEMON_DAEMON_H
#define PCPMAP_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <pcpmap/pcpmap.h>

#include "daemon/config.h"
#include "daemon/policy.h"
#include "daemon/state.h"
#include "ipc/ipc.h"

#define OUT_QUEUE_MAX_BYTES  (1u << 20) /* + a full LIST: a client that does not read is dropped beyond */
#define MSGS_PER_WAKEUP      64         /* fairness between connections */
#define PROBE_TIMEOUT_MS     3000
#define PROBE_TIMEOUT_MAX_MS 60000
#define WAIT_MAX_MS          600000
#define CLEANUP_LIFETIME     120   /* a leftover re-created for deletion asks for little */
#define CLEANUP_TIMEOUT_MS   60000 /* after this a leftover is given up (it expires on its own) */
#define SAVE_RETRY_US        30000000u
#define SHUTDOWN_WINDOW      64          /* deletions in flight at once when stopping */
#define SHUTDOWN_DEADLINE_MS 8000        /* under systemd's TimeoutStopSec=10s, with room for the last save */
#define JOURNAL_SYNC_US      1000000u    /* fdatasync of the journal at most this long after a write */
#define JOURNAL_MIN_COMPACT  (64u << 10) /* the journal is compacted past this plus twice the snapshot */

enum src_type {
	SRC_LISTEN,
	SRC_SIGNAL,
	SRC_TIMER,
	SRC_ENGINE,
	SRC_CONN,
};

struct src {
	enum src_type type;
};

struct outmsg {
	struct outmsg *next;
	size_t len;
	uint8_t buf[];
};

struct conn {
	struct src src; /* first: epoll data points here */
	struct conn *prev, *next;
	uint32_t id;
	int fd;
	uid_t uid;
	pid_t pid;
	bool subscribed;
	bool dead;
	bool pollout;
	struct outmsg *out_head, *out_tail;
	size_t out_bytes;
};

/*
 * A mapping's record as the daemon holds it: the scalars inline; the strings and filters few requests carry
 * (suggested_addr, third_party, filters, description, peer_addr) in `more`, allocated only when one is set.
 * The full struct pmd_state_rec (about 2.9 KB, most of it room for 40 filters and a 512-byte description)
 * is built from it only to save it or to hand it to the library.
 */
struct drec {
	uint32_t id, uid;
	uint32_t lifetime, protocols, deadline_ms;
	uint16_t internal_port, suggested_port, peer_port, external_port;
	uint8_t kind, ip_proto, family;
	bool persistent, prefer_failure, port_pair, allow_degrade;
	uint8_t nonce[PMD_IPC_NONCE_LEN], nonce2[PMD_IPC_NONCE_LEN];
	uint8_t ext_family;   /* 4 or 6: ext_addr holds the granted address; 0: none known */
	uint8_t ext_addr[16]; /* binary: 16 bytes where the string took 48, in each of 10,000 records */
	int64_t expires;
	struct pmd_ipc_req *more; /* NULL: none of those strings or filters */
};

/* A DELETE request that waits for the gateway's answer. */
struct del_waiter {
	struct del_waiter *next;
	struct conn *conn;
	uint32_t seq;
};

struct dmap {
	struct dmap *prev, *next;
	struct dmap *hnext;         /* in the id index's bucket */
	struct dmap *tprev, *tnext; /* in the list of mappings with a deadline of the daemon's own */
	bool timed;                 /* in that list */
	uint32_t oidx;              /* its entry in the policy's owner table */
	size_t jidx;                /* its place in the journal's pending records + 1; 0: not pending */
	bool cleanup;               /* a leftover of an earlier run, being deleted */
	struct drec rec;            /* what the state file keeps */
	char *own_addr; /* internal address for one-owner-per-port; NULL = this host (allocated when set) */
	struct conn *conn; /* the connection whose life bounds it; NULL when detached */
	pcpmap_mapping *m;
	struct conn *waiter; /* CREATE with WAIT_MS: who waits for the first outcome */
	uint32_t wait_seq;
	uint64_t wait_deadline;
	uint64_t cleanup_deadline;
	bool deleting; /* the delete is in flight: the record stays until the gateway answers */
	struct del_waiter *del_waiters; /* DELETE requests told the outcome */
};

struct probe_waiter {
	struct probe_waiter *next;
	struct conn *conn;
	uint32_t seq;
	uint8_t type; /* PMD_MSG_PROBE or PMD_MSG_GET_EXTERNAL */
};

struct daemon {
	struct pmd_cfg cfg;
	const char *cfg_path;
	char socket_path[PMD_CFG_SOCKET_MAX + 1];
	char state_dir[PMD_CFG_PATH_MAX];
	pcpmap_client *client;
	int ep, lfd, sfd, tfd;
	struct src s_listen, s_signal, s_timer, s_engine;
	bool listen_paused;
	uint64_t armed;
	struct conn *conns;
	uint32_t n_conns;
	uint32_t next_conn_id;
	struct dmap *maps;
	struct dmap **buckets;    /* id index */
	size_t n_buckets;         /* a power of two */
	struct dmap *timed;       /* mappings with a CREATE wait or a leftover deadline */
	struct pmd_owner *owners; /* the policy's view of every mapping held, kept in step */
	struct dmap **owner_map;  /* owners[i] belongs to owner_map[i] */
	uint32_t n_owners, cap_owners;
	struct pmd_journal journal;
	struct dmap **jput; /* records changed since the journal was last written (NULL: freed since) */
	size_t n_jput, cap_jput;
	uint32_t *jdel; /* ids removed since then */
	size_t n_jdel, cap_jdel;
	uint64_t sync_at; /* when the journal's last writes are synced to disk; 0: nothing pending */
	uint64_t snapshot_bytes;
	struct pmd_state_rec
	    *parked; /* records not restored that could not be set aside: saved as they were */
	size_t n_parked;
	uint32_t next_id;
	bool dirty;
	uint64_t save_retry_at;
	bool probing;
	struct probe_waiter *probe_waiters;
	uint64_t refusal_logged;      /* when the last refused connection was logged */
	uint32_t refusals_suppressed; /* refusals not logged since */
	bool quit;
	bool stopping; /* engine_shutdown() runs: mapping events are ignored */
	bool capture;
	char captured[PMD_IPC_TEXT_MAX + 1];
	uint64_t started;
	uint64_t st_wakeups, st_timer, st_engine;
};

/* ---- pcpmapd.c ---- */

/* Logs one line on stderr with a journald level prefix (3 err .. 7 debug). */
void logm(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- control.c: socket, framing, connections ---- */

/* Marks a connection for closing at the next settle; why (may be NULL) is logged. */
void conn_kill(struct conn *c, const char *why);
/* Sends one encoded message, queueing what the socket does not take now. */
void conn_send(struct daemon *d, struct conn *c, const uint8_t *buf, size_t len);
/* Sends what is queued; stops at EAGAIN. */
void conn_flush(struct daemon *d, struct conn *c);
/* Encodes and sends a message. */
void send_msg(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *m);
void reply_error(struct daemon *d, struct conn *c, uint32_t seq, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void reply_ok(struct daemon *d, struct conn *c, uint32_t seq);
/* Reads up to MSGS_PER_WAKEUP requests of a connection and answers them. */
void conn_read(struct daemon *d, struct conn *c);
/* Closes a connection: its non-persistent mappings are deleted. */
void conn_close(struct daemon *d, struct conn *c);
/* Accepts pending connections within the limits. */
void do_accept(struct daemon *d);
/* Creates or checks a directory that others cannot tamper with. @return 0; -ELOOP, -ENOTDIR, -EPERM; -errno. */
int safe_dir(const char *what, const char *path, mode_t mode);
/* Binds and listens on d->socket_path. @return 0 or -errno. */
int open_listener(struct daemon *d);

/* ---- engine.c: mappings, events, persistence ---- */

/* Gives the engine its daemon (the library's callbacks carry the mapping only) and sizes its tables.
 * @return 0 or -ENOMEM. */
int engine_init(struct daemon *d);
const char *ipproto_str(uint8_t p);
uint32_t secs_until(uint64_t when, uint64_t now);
uint32_t count_maps(struct daemon *d, bool by_uid, uid_t uid);
/* Room in the engine for the daemon's limit, leftovers being deleted, pair companions and probes. */
uint32_t engine_slots(const struct pmd_cfg *cfg);
void do_create(struct daemon *d, struct conn *c, struct pmd_ipc_msg *msg);
void do_delete(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg);
void do_list(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg);
void do_probe(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg);
void do_stats(struct daemon *d, struct conn *c, const struct pmd_ipc_msg *msg);
/* A connection is closing: its waits end and its non-persistent mappings are deleted. */
void engine_conn_closed(struct daemon *d, struct conn *c);
/* Writes the state file (all mappings, or only the persistent ones) and empties the journal. */
void save_state(struct daemon *d, bool persistent_only);
/* Writes what changed since the last call to the journal (or the whole state when due). */
void persist(struct daemon *d);
/* Stopping: persistent mappings are left on the gateway; the others are deleted SHUTDOWN_WINDOW at a time
 * until SHUTDOWN_DEADLINE_MS; those whose deletion was not confirmed stay in the state for the next start. */
void engine_shutdown(struct daemon *d);
/* Frees the engine's tables and what is left of the mappings (their handles are the library's). */
void engine_free(struct daemon *d);
/* Reads the state file at start: persistent mappings are renewed, leftovers deleted. */
void restore_state(struct daemon *d);
/* The earliest of the daemon's own deadlines (CREATE waits, leftover give-ups, save retries). */
uint64_t own_deadline(const struct daemon *d);
void run_own_deadlines(struct daemon *d, uint64_t now);

#endif
