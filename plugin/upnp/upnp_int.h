/* Internal pieces of the UPnP IGD backend, split so that each can be tested without a network:
 *  - upnp_queue.c: the bounded job queue, the worker thread and the eventfd hand-off to the loop thread;
 *  - upnp_igd.c:   what one job does on the worker (retries, lease quirks, presence check, pinholes), the
 *                  UPnP error table and the escalating discovery windows, all over an ops table;
 *  - upnp_mini.c:  that ops table over miniupnpc, and our own SSDP search;
 *  - upnp.c:       the backend (loop thread only): jobs in, pm_* reports out.
 * The worker never touches engine state: a job carries copies of what it needs and names its mapping by
 * id. Only the loop thread calls pm_* functions. */
#ifndef PCPMAP_UPNP_INT_H
#define PCPMAP_UPNP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "plugins.h"

/* ---- jobs ---- */

enum upnp_op {
	UPNP_OP_PROBE = 0, /* (re-)discover the IGD: ops->probe */
	UPNP_OP_ANNOUNCE,  /* discovery if needed + GetExternalIPAddress: ops->announce */
	UPNP_OP_MAP,       /* create or renew a mapping / pinhole */
	UPNP_OP_UNMAP,     /* delete it */
	UPNP_OP_FAIL,      /* no work: a refusal decided on the loop thread, delivered like a result */
};

/* Things the worker noticed that the loop thread logs. */
enum {
	UPNP_NOTE_FORGOTTEN = 1u << 0,  /* presence check: the gateway had lost the mapping (re-added) */
	UPNP_NOTE_LEASE0 = 1u << 1,     /* 725: the IGD takes permanent leases only (remembered) */
	UPNP_NOTE_DISCOVERED = 1u << 2, /* this job ran a discovery (result in igd_*) */
	UPNP_NOTE_DOUBLE_NAT = 1u << 3, /* GetValidIGD said 2: "not connected" or a private WAN address */
	UPNP_NOTE_PORT_MOVED = 1u << 4, /* the external port differs from the one asked for */
	UPNP_NOTE_TAKEN = 1u << 5,      /* presence check: another client holds our external port now */
	UPNP_NOTE_NO_ANY = 1u << 6,     /* AddAnyPortMapping answered 401: not offered (remembered) */
	UPNP_NOTE_SKIPPED = 1u << 7,    /* not run: the server was closing or the IGD was never found */
};

#define UPNP_TRACE_MAX     8
#define UPNP_TRACE_LEN     200
#define UPNP_ADDR_LEN      64
#define UPNP_URL_LEN       128
#define UPNP_DESC_LEN      64
#define UPNP_ST_LEN        128 /* miniupnpc's servicetype buffer (MINIUPNPC_URL_MAXSIZE) */
#define UPNP_UID_LEN       8   /* miniupnpc's uniqueID buffer */
#define UPNP_QUEUE_DEFAULT 256

struct upnp_job {
	struct upnp_job *next;
	enum upnp_op op;
	uint64_t id;  /* mapping id; 0 for server-wide jobs */
	bool del;     /* answers a delete (UPNP_OP_UNMAP, or a UPNP_OP_FAIL standing in for one) */
	bool named;   /* the delete names a mapping that should exist (pcpmap_unmap_sync): finding none, or
		      * another's, is an error (-ENOENT, -EACCES) rather than a release with nothing to do */
	bool release; /* gives back what a create got for a mapping that moved to another protocol meanwhile:
		       * its result goes to no mapping */

	/* Request (copied from the mapping on the loop thread). */
	int family;       /* AF_INET: port mapping; AF_INET6: pinhole */
	uint8_t ip_proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t internal_port;
	uint16_t ext_port;    /* granted port (renew) or suggestion (0: none) */
	bool renew;           /* the mapping holds a grant: presence check, then re-add the same values */
	unsigned max_windows; /* a discovery it runs listens this many windows at most (0: all) */
	bool prefer_failure;  /* exactly ext_port or nothing */
	uint32_t lease;       /* requested lifetime, seconds */
	char client[UPNP_ADDR_LEN]; /* THIRD_PARTY address, "" for our own (miniupnpc's lan address) */
	char desc[UPNP_DESC_LEN];

	/* Result (written by the worker, read by the loop thread after the hand-off). */
	int code;          /* 0 OK, > 0 UPnP errorCode, < 0 -errno (-ECONNREFUSED/-ETIMEDOUT: transport) */
	unsigned notes;    /* UPNP_NOTE_* */
	uint16_t out_port; /* external port granted */
	uint32_t out_lifetime;       /* lifetime to report to the engine */
	uint32_t out_lease;          /* lease actually sent (0 = permanent) */
	char out_ext[UPNP_ADDR_LEN]; /* external address ("" if unknown) */
	char igd_url[UPNP_URL_LEN];  /* control URL of the IGD used */
	char igd_lan[UPNP_ADDR_LEN]; /* our address as the IGD sees it */
	char igd_st[UPNP_ST_LEN];    /* the service type its control URL serves */
	int igd_version;             /* 1 or 2 */
	int igd_status;              /* GetValidIGD's answer */
	uint64_t igd_discovery_us;   /* time the discovery took, when UPNP_NOTE_DISCOVERED */
	int igd_window_ms;           /* the discovery window that found it */
	char detail[160];            /* why a named delete failed, for the mapping's detail ("" if none) */

	/* Decoded actions, emitted through pm_trace by the loop thread. */
	unsigned n_trace;
	char trace[UPNP_TRACE_MAX][UPNP_TRACE_LEN];
};

/* ---- the queue and its worker (upnp_queue.c) ---- */

typedef void (*upnp_run_fn)(void *ctx, struct upnp_job *j);
/* On stop, decides whether a job still waiting is run (deletes) or dropped. */
typedef bool (*upnp_keep_fn)(const struct upnp_job *j);

struct upnp_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct upnp_job *todo_head, *todo_tail; /* posted, waiting for the worker */
	struct upnp_job *running;               /* being run */
	struct upnp_job *done_head, *done_tail; /* results waiting for the loop thread */
	size_t count, cap;                      /* jobs owned by the queue, all three places together */
	int efd;                                /* eventfd: readable while results wait */
	atomic_bool stop;
	bool started;
	pthread_t thread;
	upnp_run_fn run;
	upnp_keep_fn keep;
	void *ctx;
};

/* Creates the eventfd (EFD_CLOEXEC|EFD_NONBLOCK) and starts the worker (every signal blocked in it: a
 * SIGPIPE from a dying HTTP connection or the application's SIGINT must not land there). cap bounds the
 * jobs in flight. 0 or -errno. */
int upnp_queue_start(struct upnp_queue *q, size_t cap, upnp_run_fn run, upnp_keep_fn keep, void *ctx);
/* Hands a job to the worker; the queue owns it from then on. -ENOBUFS when cap jobs are in flight,
 * -ESHUTDOWN once stopping. */
int upnp_queue_post(struct upnp_queue *q, struct upnp_job *j);
/* Posts a result that needs no worker (same order and hand-off as the worker's). */
int upnp_queue_post_done(struct upnp_queue *q, struct upnp_job *j);
/* Loop thread: clears the eventfd; call it before taking the results it announced. */
void upnp_queue_clear(struct upnp_queue *q);
/* Loop thread: the oldest result (the caller frees it), or NULL. */
struct upnp_job *upnp_queue_take(struct upnp_queue *q);
/* True when a job matching `match` is waiting, running or waiting for delivery. */
bool upnp_queue_find(struct upnp_queue *q, bool (*match)(const struct upnp_job *j, const void *arg),
		     const void *arg);
/* Stops the worker: jobs still waiting run only if keep() says so, the running one finishes, undelivered
 * results are freed; joins the thread and closes the eventfd. Idempotent. */
void upnp_queue_stop(struct upnp_queue *q);

/* ---- the IGD and what a job does (upnp_igd.c) ---- */

struct upnp_igd;

struct upnp_add_args {
	uint16_t ext_port, int_port;
	const char *client;
	const char *desc;
	const char *proto; /* "TCP" / "UDP" */
	uint32_t lease;
};

/* Blocking IGD operations. Each returns 0, a UPnP errorCode (> 0), or -errno: -ECONNREFUSED/-ETIMEDOUT
 * when the IGD could not be reached over HTTP, -EPROTO for an unusable answer. */
struct upnp_igd_ops {
	/* Finds a usable IGD (GetValidIGD 1 or 2) and fills g->url, g->lan, g->status, g->v2, g->has_6fc,
	 * g->window_ms. 0, -ETIMEDOUT when nothing usable answered, -ECANCELED when stopped. */
	int (*discover)(struct upnp_igd *g);
	/* Uses g->url and g->st as if discovered (a warm start's remembered IGD, not yet verified): 0 or
	 * -ENOMEM. May be NULL (no warm start). */
	int (*adopt)(struct upnp_igd *g);
	void (*forget)(struct upnp_igd *g); /* frees what discover() kept */
	int (*get_ext)(struct upnp_igd *g, char ext[UPNP_ADDR_LEN]);
	int (*add)(struct upnp_igd *g, const struct upnp_add_args *a);
	int (*add_any)(struct upnp_igd *g, const struct upnp_add_args *a, uint16_t *ret_port);
	int (*del)(struct upnp_igd *g, uint16_t ext_port, const char *proto);
	int (*get_entry)(struct upnp_igd *g, uint16_t ext_port, const char *proto, char client[UPNP_ADDR_LEN],
			 uint16_t *ret_int_port);
	int (*add_pinhole)(struct upnp_igd *g, const char *client, uint16_t port, uint8_t ip_proto,
			   uint32_t lease, char uid[UPNP_UID_LEN]);
	int (*update_pinhole)(struct upnp_igd *g, const char *uid, uint32_t lease);
	int (*del_pinhole)(struct upnp_igd *g, const char *uid);
};

struct upnp_pinhole {
	uint64_t id;
	char uid[UPNP_UID_LEN];
};

/* Worker-private state of one server's IGD. */
struct upnp_igd {
	const struct upnp_igd_ops *ops;
	const atomic_bool *stop;  /* the queue's stop flag: long operations give up */
	struct pm_sockaddr gw;    /* the gateway the core picked (discovery prefers it) */
	struct pm_sockaddr local; /* our address towards it */

	bool valid; /* discovered and not invalidated by a transport error */
	int status; /* GetValidIGD: 1 connected, 2 "not connected"/private WAN address */
	bool v2;    /* WANIPConnection:2: AddAnyPortMapping; lease 0 becomes 604800 */
	bool has_6fc;
	char url[UPNP_URL_LEN]; /* control URL */
	char st[UPNP_ST_LEN];   /* its service type */
	bool remembered;        /* url and st come from the gateway cache and have not answered yet */
	char lan[UPNP_ADDR_LEN];
	int window_ms;
	unsigned max_windows; /* set per job before discover(): windows to listen at most (0: all) */
	uint64_t discovery_us;

	bool have_ext; /* external address cache (GetExternalIPAddress once per server) */
	char ext[UPNP_ADDR_LEN];
	bool lease0_only; /* learned from 725 */
	bool no_any;      /* learned from 401 to AddAnyPortMapping */

	struct upnp_pinhole *pinholes; /* unique IDs by mapping id */
	size_t n_pinholes;

	void *impl; /* the ops' own state (miniupnpc's urls and data) */
};

/* Runs one job on the worker (upnp_run_fn with ctx = the igd). */
void upnp_igd_run(void *ctx, struct upnp_job *j);
/* keep function for upnp_queue_stop: deletes still go out when the server closes. */
bool upnp_igd_keep(const struct upnp_job *j);
/* Frees the IGD state (after the worker stopped). */
void upnp_igd_fini(struct upnp_igd *g);
/* Before the worker starts: uses a remembered IGD (control URL, service type, our LAN address) without
 * discovery; the first job that finds it silent or wrong discovers and runs again. 0 or -errno. */
int upnp_igd_remember(struct upnp_igd *g, const char *url, const char *st, const char *lan);

/* Pure helpers, shared with the tests. */
#define UPNP_PERMANENT_AS_S 7200u   /* a permanent lease is reported as this lifetime: presence check */
#define UPNP_V2_PERMANENT_S 604800u /* IGD:2 turns lease 0 (and > 7 days) into 7 days */
#define UPNP_PINHOLE_MAX_S  86400u  /* WANIPv6FirewallControl: LeaseTime 1..86400 */
#define UPNP_PORT_TRIES     4       /* other external ports tried after a conflict on IGD:1 */

/* The lease sent for a requested lifetime (0 once the IGD takes permanent leases only). */
uint32_t upnp_lease_to_send(uint32_t req_lifetime, bool lease0_only, bool v2);
/* The lifetime reported to the engine for a lease sent: lease 0 is permanent on IGD:1 and counts as
 * UPNP_PERMANENT_AS_S so the engine still renews (the renewal is the presence check); IGD:2 makes it 7 days. */
uint32_t upnp_reported_lifetime(uint32_t sent_lease, bool v2);

/* Escalating discovery: search(ctx, window) is called with each window in turn until it returns 1 (a
 * usable IGD answered; the search returns as soon as one does) or a negative errno; 0 means nothing usable
 * within the window. Returns the index of the window that found it, -ETIMEDOUT when none did, or the
 * search's error. */
/* Windows a discovery gets when the gateway refused PCP and NAT-PMP with ICMP port unreachable (it is up,
 * and an IGD on it answers a unicast M-SEARCH well within them; its silence then is not worth 2 s). */
#define UPNP_REFUSED_WINDOWS 2
extern const int upnp_discovery_windows_ms[];
extern const size_t upnp_n_discovery_windows;
int upnp_discover_escalating(int (*search)(void *ctx, int window_ms), void *ctx, const int *windows_ms,
			     size_t n);

/* What the engine hears about a UPnP result code (code as in struct upnp_job). del: the job deleted. */
struct upnp_verdict {
	enum pm_reply_kind kind;
	int error;
	uint32_t hold_s;
};
void upnp_classify(int code, bool del, bool prefer_failure, struct upnp_verdict *ret);
/* Name of a UPnP errorCode ("ConflictInMappingEntry"), "UNKNOWN" if not known. */
const char *upnp_code_name(int code);

/* ---- SSDP (upnp_mini.c) ---- */

/* Parses an M-SEARCH answer: 0 and LOCATION / ST copied (NUL-terminated) when it is an "HTTP/1.1 200" with
 * a LOCATION, -EBADMSG otherwise, -ENOSPC when a field does not fit. */
int upnp_ssdp_parse(const char *buf, size_t len, char *ret_loc, size_t loc_len, char *ret_st, size_t st_len);
/* True when the host of an http:// URL is the address in sa (IPv4 or IPv6, brackets and %scope ignored). */
bool upnp_url_host_is(const char *url, const struct pm_sockaddr *sa);

/* The real ops over miniupnpc, which upnp_mini_load() loads first (once per process): 0, or -ENOENT with
 * the loader's reason in *ret_why (static text). */
extern const struct upnp_igd_ops upnp_miniupnpc_ops;
int upnp_mini_load(const char **ret_why);
/* The ops new servers use (tests replace it with a fake IGD). */
extern const struct upnp_igd_ops *upnp_igd_default_ops;

#endif
