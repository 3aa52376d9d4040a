/* Internal objects of the engine: client, servers, mappings and the backend ops table. */
#ifndef PCPMAP_INTERNAL_H
#define PCPMAP_INTERNAL_H

#include <pcpmap/pcpmap.h>

#include "fsm/fsm.h"
#include "net/net.h"
#include "sched/env.h"
#include "sched/sched.h"
#include "sched/timing.h"
#include "wire/pcp_epoch.h"
#include "wire/pcp_wire.h"

struct pm_server;
struct pm_mapping;
struct pm_dmap;
struct pm_dmode;

/* What a backend learned from one answer to a mapping request, in protocol-neutral terms. */
enum pm_reply_kind {
	PM_REPLY_SUCCESS = 0, /* granted (or deleted, when lifetime is 0) */
	PM_REPLY_RETRY,       /* refused for now: retry after hold_s */
	PM_REPLY_FATAL,       /* refused for good */
};

struct pm_reply {
	enum pm_reply_kind kind;
	int error;       /* negative errno summarising the result */
	int result_code; /* the protocol's own code */
	uint32_t lifetime;
	uint32_t hold_s; /* PM_REPLY_RETRY: how long to wait */
	struct pcp_addr ext_addr;
	uint16_t ext_port;
	bool has_epoch;
	uint32_t epoch;
	bool echoed_port_reservation;
	bool echoed_port_set;
};

/* One protocol backend. Every function gets the server it works for; the backend keeps its own state in
 * server->priv. */
struct pm_backend_ops {
	enum pcpmap_proto proto;
	const char *name;
	uint64_t irt_us, mrt_us; /* retransmission ladder of this protocol */
	/* Opens the transport (socket registered with pm_server_watch_fd()). */
	int (*server_open)(struct pm_server *s);
	void (*server_close)(struct pm_server *s);
	/* Sends the request for the mapping's state: create/renew, or delete when del is set. */
	int (*send)(struct pm_server *s, struct pm_mapping *m, bool del);
	/* The socket is readable: read, validate and dispatch everything pending. */
	void (*readable)(struct pm_server *s, int fd, uint64_t now);
	/* Sends an ANNOUNCE-like probe; the answer comes through pm_server_on_announce(). */
	int (*announce)(struct pm_server *s);
	/* Learns whether this protocol answers at the server, without a mapping (NAT-PMP: public address
	 * request; UPnP: discovery). Reports through pm_server_on_probe(). NULL: mapping requests probe. */
	int (*probe)(struct pm_server *s);
	/* The mapping leaves this server (destroyed, or moved to another server): drop its state. May be NULL. */
	void (*mapping_gone)(struct pm_server *s, struct pm_mapping *m);
	/* The mapping's nonce stops naming anything live on this server (a fresh nonce, or the mapping is
	 * gone) although requests under it went out: late grants for it can be recognised. May be NULL. */
	void (*retire)(struct pm_server *s, const struct pm_mapping *m);
	/* A response the server sent unasked to the announcement port (RFC 6887 14.2), source already checked:
	 * updates the mapping whose nonce it carries, drops it otherwise. May be NULL. */
	void (*unsolicited)(struct pm_server *s, const uint8_t *buf, size_t len);
};

struct pm_list {
	struct pm_list *prev, *next;
};

/* What a gateway is known to speak (learned once, re-learned on failure). */
enum pm_pstat { PM_P_UNKNOWN = 0, PM_P_PROBING, PM_P_YES, PM_P_NO };
#define PM_NPROTO 4 /* indexed by enum pcpmap_proto */

/* One gateway address and the protocol servers on it. The fallback policy lives here, not in backends. */
struct pm_gw {
	struct pcpmap_client *client;
	struct pm_list link;
	struct pm_sockaddr addr; /* with the PCP/NAT-PMP port */
	char name[64];
	struct pm_server *srv[PM_NPROTO];
	enum pm_pstat status[PM_NPROTO];
	int err[PM_NPROTO];
	uint64_t yes_at[PM_NPROTO];
	uint32_t rtt_us[PM_NPROTO];
	enum pcpmap_proto chosen;
	uint64_t probe_started;
	unsigned fail_count;
	bool suspended;              /* no route to it: nothing is sent until one returns */
	struct sched_timer t_decide; /* end of the grace window for a better protocol */
	struct sched_timer t_upnp;   /* deferred start of UPnP discovery */
};

struct pm_server {
	struct pcpmap_client *client;
	struct pm_gw *gw;
	const struct pm_backend_ops *ops;
	struct pm_list link;
	struct pm_sockaddr addr;  /* server address and port */
	struct pm_sockaddr local; /* our source address towards it */
	char name[64];
	struct pcp_epoch epoch;
	/* Deletes of ports (NAT-PMP, UPnP) answered lately: a copy of one may still be on its way. */
	struct {
		uint8_t ip_proto;
		uint16_t internal_port;
		uint64_t until;
	} recent_del[8];
	unsigned recent_del_next;
	uint32_t reset_prev_epoch; /* the epoch before the last reset seen, and when it was seen (0: none) */
	uint64_t reset_seen_at;
	uint32_t last_epoch;
	bool have_epoch;
	int last_error;
	int pending_error;
	bool natpmp_only;
	unsigned unreachable_count;
	struct sched_timer t_error; /* defers socket errors out of the send path */
	void *priv;
};

struct pm_mapping {
	struct pcpmap_client *client;
	struct pm_gw *gw;
	struct pm_server *server;
	struct pm_list link;
	uint64_t id;

	/* The request, validated and in wire terms. */
	enum pcpmap_kind kind;
	uint8_t ip_proto;
	uint16_t internal_port;
	int family;
	uint16_t suggested_port;
	struct pcp_addr suggested_addr;
	bool has_suggested_addr;
	uint32_t req_lifetime;
	bool prefer_failure;
	bool has_third_party;
	struct pcp_addr third_party;
	size_t n_filters;
	struct pcp_filter *filters;
	char *description;
	bool port_reservation;
	bool port_set;
	bool port_pair;
	struct pcp_addr peer_addr;
	uint16_t peer_port;
	uint32_t protocols;
	uint64_t deadline_us;
	pcpmap_event_fn cb;
	void *userdata;
	uint8_t nonce[PCP_NONCE_LEN];

	/* State. */
	enum pcpmap_state state;
	struct sched_timer t_main;   /* retransmission, renewal slot or error hold */
	struct sched_timer t_expire; /* end of the granted lifetime */
	struct pm_retx retx;
	unsigned renew_attempt;
	uint64_t granted_at;
	uint64_t last_send;
	uint32_t hold_s;
	uint64_t first_send;
	bool retx_exhausted;
	bool user_owned; /* false once the application freed or abandoned it */
	bool unmap_only; /* made by pcpmap_unmap_sync(): the delete must find what it names */

	/* What the gateway granted. */
	enum pcpmap_proto proto;
	bool have_grant;
	struct pcp_addr ext_addr;
	uint16_t ext_port;
	uint32_t lifetime;
	uint32_t epoch;
	int error;
	int result_code;
	bool have_grant_live;
	bool echoed_port_reservation;
	bool echoed_port_set;
	bool notified_mapped;
	bool ever_notified;
	struct pcp_addr notified_addr;
	uint16_t notified_port;

	/* A port pair: the companion mapping for internal_port + 1, owned by this one. */
	struct pm_mapping *pair;
	struct pm_mapping *pair_owner;
	enum pcpmap_pair_method pair_method;
	unsigned pair_tries;
	bool port_pair_owner_pending; /* the owner's MAPPED waits for its companion */
	bool has_pair_nonce;          /* the companion's nonce was given (taking a pair over) */
	uint8_t pair_nonce[PCP_NONCE_LEN];
	bool allow_degrade;
	char *detail;         /* what was tried / what was dropped; NULL until pm_mapping_set_detail() */
	bool remap_pending;   /* queued for a paced re-creation */
	bool remap_in_flight; /* its confirmation is out and counts against the window */
	bool remap_retrying;  /* ... went a whole RT unanswered: out of the window, still under the ceiling */
	bool restart_pending; /* re-homed: the main timer starts it again */
	uint64_t remap_at;    /* not before this time */

	struct pm_dmap *dmap; /* daemon mode: a proxy of one of pcpmapd's mappings (core/daemon_mode.c) */
	struct pm_mapping *nonce_next; /* chain of the client's nonce index */
};

enum pm_event_kind { PM_EVENT_MAPPING = 0, PM_EVENT_SERVER, PM_EVENT_PROBE };

struct pm_event {
	struct pm_event *next;
	enum pm_event_kind kind;
	struct pm_mapping *m;
	enum pcpmap_event ev;
	struct pcpmap_mapping_info info;
	pcpmap_server_fn server_cb;
	void *userdata;
	struct pcpmap_server_info server_info;
	pcpmap_probe_fn probe_cb;
	struct pcpmap_probe_result *probe_result; /* owned by the event */
};

struct pm_watch;

struct pm_env {
	struct pm_clock clock;
	struct pm_rand rand;
};

struct pcpmap_client {
	struct pcpmap_client_config cfg;
	char *server_str;
	struct pm_env env;
	int epfd;
	struct sched sched;
	struct pm_list gateways;
	struct pm_list mappings;
	size_t n_mappings;
	/* Every listed mapping by nonce, so an answer finds its mapping without a walk of the list. */
	char invalid_why[160]; /* why the last request was refused (pcpmap_request_check) */
	struct pm_walk *walks; /* walks in progress, innermost first */
	struct pm_mapping **nonce_tab;
	size_t nonce_cap; /* a power of two, or 0 */
	uint64_t next_id;
	struct pm_event *ev_head, *ev_tail;
	struct pm_watch *watches;
	struct pm_watch *dead_watches; /* unwatched during an epoll batch, freed after it */
	struct pcpmap_stats stats;
	struct pcp_codec_cfg codec;
	const struct pm_backend_ops *backends[PM_NPROTO]; /* pm_backend_for(); tests put fakes here */
	enum pcpmap_proto order[3];                       /* preference among protocols that answer */
	bool stop;
	bool processing;
	uint64_t now; /* read once per process() */

	/* Announcement probe. */
	/* Resilience: announcement listeners, route monitor, paced re-creation. */
	int ann_fd[2];  /* IPv4 and IPv6 listeners on 5350, -1 when closed */
	int nl_fd;      /* rtnetlink monitor, -1 when closed */
	bool listening; /* listeners and monitor opened (lazily, with the first gateway) */
	struct sched_timer t_remap;
	/* Confirmations after a possible state loss: additive increase, multiplicative decrease. */
	struct {
		double cwnd, ssthresh;
		unsigned in_flight;
		unsigned
		    retrying; /* confirmations retransmitted outside the window, counted under the ceiling */
		uint64_t
		    shrunk_at; /* the last shrink for queueing: answers to earlier requests cannot repeat it */
	} remap;
	struct sched_timer t_netcheck;
	int (*default_gateway)(int family, struct pm_gateway *ret); /* tests inject one */

	struct {
		struct pm_server *server;
		pcpmap_server_fn cb;
		void *userdata;
		uint64_t sent_at;
		uint64_t deadline;
		struct pm_retx retx;
		struct sched_timer timer;
	} announce;

	/* Gateway probe (core/probe.c). */
	struct {
		bool active;
		pcpmap_probe_fn cb;
		void *userdata;
		struct pm_gw *gw;
		uint64_t started;
		uint64_t deadline;
		struct sched_timer timer;
		struct pcpmap_probe_result res;
		unsigned pending; /* bits of protocols still to answer */
		pcpmap_mapping *ext_map;
	} probe;

	/* Daemon mode (core/daemon_mode.c): NULL when this client runs the engine itself. */
	struct pm_dmode *dmode;
};

/* Creation with injected clock and randomness (tests use a fake clock). */
int pm_client_new_env(pcpmap_client **ret, const struct pcpmap_client_config *cfg, const struct pm_env *env);

/* Sizes of the output structs as first published (0.1.0): the floor of the *_sized() calls, and what the
 * unsized exports write for binaries built against that header. The structs only grow at their end. */
#define PM_INFO_SIZE_V0  (offsetof(struct pcpmap_mapping_info, external_is_private) + sizeof(bool))
#define PM_PROBE_SIZE_V0 sizeof(struct pcpmap_probe_result)
#define PM_STATS_SIZE_V0 (offsetof(struct pcpmap_stats, retransmits) + sizeof(uint64_t))

/* Logging through the application's callback. */
void pm_log(const pcpmap_client *c, enum pcpmap_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pm_trace(const pcpmap_client *c, bool sent, enum pcpmap_proto proto, const char *peer,
	      const uint8_t *bytes, size_t len, const char *decoded);

/* Epoll registration of a backend socket. */
int pm_server_watch_fd(struct pm_server *s, int fd);
void pm_server_unwatch_fd(struct pm_server *s, int fd);

/* Called by backends. */
/* Outcome of ops->probe (or the first sign of life from a server): err 0 when the protocol answers (info
 * may carry version, epoch, RTT, external address), or a negative errno when it does not (ECONNREFUSED,
 * ETIMEDOUT, EPROTONOSUPPORT). */
void pm_server_on_probe(struct pm_server *s, int err, const struct pcpmap_server_info *info);
/* A grant the gateway made for a nonce no live mapping carries any more (a late answer after the mapping
 * moved to another protocol): deleted with that nonce through a mapping of its own, owned by nobody. */
struct pm_orphan {
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t ip_proto;
	uint16_t internal_port;
	int family;
	bool has_third_party;
	struct pcp_addr third_party;
	uint16_t ext_port;
};
void pm_mapping_delete_orphan(struct pm_server *s, const struct pm_orphan *o);
/* The mapping leaves the server that granted it: the grant is deleted there by a mapping of its own (with
 * retries), and the mapping waits unsent with a fresh nonce; nothing is reported until the new grant. A port
 * pair's owner drops its companion too (made again once the owner is granted). */
void pm_mapping_drop_grant(struct pm_mapping *m);
/* Mappings by id: backends that finish work asynchronously (UPnP worker) must not keep mapping pointers. */
struct pm_mapping *pm_client_find_mapping(pcpmap_client *c, uint64_t id);
struct pm_mapping *pm_server_find_nonce(struct pm_server *s, const uint8_t nonce[PCP_NONCE_LEN]);
/* A walk over the client's mappings whose body may free any of them (a pair's companion, a released
 * delete): unlinking a mapping moves every walk that would step onto it. Walks nest. */
struct pm_walk {
	struct pm_list *next;
	struct pm_walk *outer;
};
void pm_walk_begin(pcpmap_client *c, struct pm_walk *w);
/* The next mapping, or NULL at the end (the walk is then over). */
struct pm_mapping *pm_walk_next(pcpmap_client *c, struct pm_walk *w);
/* Ends a walk left early. */
void pm_walk_end(pcpmap_client *c, struct pm_walk *w);
/* Puts a mapping in the client's list and nonce index, or takes it out; every change of a listed mapping's
 * nonce goes through pm_mapping_renonce() (a fresh random one when nonce is NULL). */
int pm_mapping_link(struct pm_mapping *m);
void pm_mapping_unlink(struct pm_mapping *m);
void pm_mapping_renonce(struct pm_mapping *m, const uint8_t *nonce);
void pm_nonce_index_free(pcpmap_client *c);
void pm_mapping_on_reply(struct pm_mapping *m, const struct pm_reply *r);
/* Returns false when the epoch shows the server lost its state (the core then re-creates its mappings). */
bool pm_server_on_epoch(struct pm_server *s, uint32_t epoch, bool natpmp_rule, struct pm_mapping *except);
/* True for an answer written before a restart this client already saw (its epoch belongs to the old run,
 * reordered behind the new one): its grant is not the gateway's state any more. */
bool pm_server_epoch_stale(const struct pm_server *s, uint32_t epoch);
/* An unsolicited announcement from gateway gw: the epoch check, and whatever it says, every mapping held
 * through the gateway is confirmed with a renewal after a random 0-5 s (RFC 6887 14.1.1: a restart within
 * the epoch check's slack is otherwise invisible). Returns false when the epoch shows a state loss. */
bool pm_gw_on_announced(struct pm_gw *gw, struct pm_server *s, uint32_t epoch, bool natpmp_rule);
void pm_server_on_unreachable(struct pm_server *s, int err);
void pm_server_on_reachable(struct pm_server *s);
/* Reports a socket error from the next timer run instead of from inside a send. */
void pm_server_defer_error(struct pm_server *s, int err);
void pm_server_on_announce(struct pm_server *s, const struct pcpmap_server_info *info);
/* The server answered with another protocol version: NAT-PMP (0) or a PCP version we do not speak. */
void pm_server_on_natpmp_only(struct pm_server *s);
void pm_server_on_unsupported_version(struct pm_server *s, uint8_t version);

/* Client internals. */
int pm_parse_server(const char *s, struct pm_sockaddr *ret);
/* The gateway for a mapping family (configured server, else the kernel's default gateway). */
int pm_client_gateway_for(pcpmap_client *c, int family, struct pm_gw **ret);
/* The server of one protocol on a gateway, opened on first use. */
int pm_gw_server(struct pm_gw *gw, enum pcpmap_proto proto, struct pm_server **ret);
/* Both at once; proto NONE means the gateway's learned protocol, else PCP. */
int pm_client_server_for(pcpmap_client *c, int family, enum pcpmap_proto proto, struct pm_server **ret);
/* Fallback policy: gives a starting mapping its server (or parks it while protocols are probed). */
void pm_gw_attach(struct pm_mapping *m);
void pm_client_free_gateways(pcpmap_client *c);
void pm_gw_close_server(struct pm_gw *gw, enum pcpmap_proto p);
void pm_gw_free(struct pm_gw *gw);
/* "tried PCP (port unreachable), NAT-PMP (no answer), ..." for the protocols in mask. */
void pm_gw_describe(const struct pm_gw *gw, uint32_t mask, char *buf, size_t len);
int pm_client_watch_fd(pcpmap_client *c, int fd, void (*fn)(pcpmap_client *c, int fd));
void pm_client_unwatch_fd(pcpmap_client *c, int fd);
/* The blocking helpers' loop: process, then poll until done(), timeout_ms (-1: none; -ETIMEDOUT) or a signal
 * (-EINTR). */
int pm_client_wait(pcpmap_client *c, bool (*done)(pcpmap_client *c, void *ud), void *ud, int timeout_ms);

/* Resilience (core/resilience.c). */
void pm_resilience_init(pcpmap_client *c);
void pm_resilience_fini(pcpmap_client *c);
/* Opens the announcement listeners and the route monitor, once. */
void pm_resilience_start(pcpmap_client *c);
/* Queues the held mappings of server s (except one) for paced re-creation, not before now + delay_us. */
void pm_remap_server(struct pm_server *s, struct pm_mapping *except, uint64_t delay_us);
/* The window's feedback: a confirmation was answered (any answer), or went unanswered for a whole RT (the
 * window halves). Both take the mapping out of the window; one unanswered still counts under the ceiling
 * while it is retransmitted. No-ops for a mapping that is not in the window. */
void pm_remap_answered(struct pm_mapping *m);
void pm_remap_unanswered(struct pm_mapping *m);
/* The mapping left the confirmation some other way (failed, moved, deleted): out of the window, no signal. */
void pm_remap_forget(struct pm_mapping *m);
/* An unsolicited datagram from the announcement listeners (exposed for tests). */
void pm_client_on_unsolicited(pcpmap_client *c, const uint8_t *buf, size_t len,
			      const struct pm_sockaddr *src);
/* Route/address/link events (a pm_net_event mask): a debounced re-check follows. */
void pm_client_on_net_events(pcpmap_client *c, unsigned mask);
/* Re-checks routes and source addresses now (exposed for tests). */
void pm_client_net_check(pcpmap_client *c);

/* Probe (core/probe.c): backends' probe answers and PCP ANNOUNCE answers feed it. */
void pm_probe_on_answer(struct pm_server *s, enum pcpmap_proto proto, int err,
			const struct pcpmap_server_info *info);
void pm_probe_init(pcpmap_client *c);
void pm_probe_fini(pcpmap_client *c);
int pm_client_announce_on(pcpmap_client *c, struct pm_server *s, int timeout_ms, pcpmap_server_fn cb,
			  void *userdata);
void pm_client_queue_event(pcpmap_client *c, struct pm_event *e);
void pm_client_purge_events(pcpmap_client *c, const struct pm_mapping *m);

/* Daemon mode (core/daemon_mode.c): the client is a proxy of pcpmapd's (doc/DESIGN.md). */
/* With cfg's mode AUTO or DAEMON, connects and subscribes (at most 1 s); 0 also when AUTO falls back. */
int pm_dmode_start(pcpmap_client *c, const struct pcpmap_client_config *cfg);
void pm_dmode_free(pcpmap_client *c);
int pm_dmode_mapping_new(pcpmap_client *c, const struct pcpmap_request *req, pcpmap_mapping **ret);
void pm_dmode_mapping_free(struct pm_mapping *m);
void pm_dmode_mapping_abandon(struct pm_mapping *m);
void pm_dmode_mapping_get_info(const struct pm_mapping *m, struct pcpmap_mapping_info *ret);
int pm_dmode_flush(pcpmap_client *c, int timeout_ms);
int pm_dmode_unmap_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
			struct pcpmap_mapping_info *ret_info);
int pm_dmode_probe(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata);
int pm_dmode_probe_sync(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret);
/* The engine's checks of a request (mapping.c), without making a mapping. */
int pm_request_validate(pcpmap_client *c, const struct pcpmap_request *req);

/* Mapping helpers shared with backends. */
void pm_mapping_fsm(struct pm_mapping *m, enum fsm_event ev);
void pm_mapping_destroy(struct pm_mapping *m);
void pm_mapping_send_final_delete(struct pm_mapping *m);
void pm_mapping_pair_companion_failed(struct pm_mapping *p);
/* Sets the mapping's detail (at most PM_DETAIL_MAX - 1 bytes), allocated on first use: few mappings ever have
 * one, and 160 bytes in each of 10,000 held mappings would be 1.6 MB for nothing. Out of memory keeps the old
 * text. */
#define PM_DETAIL_MAX 160
void pm_mapping_set_detail(struct pm_mapping *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* pm_gw_describe() into the mapping's detail. */
void pm_mapping_describe_gw(struct pm_mapping *m);
/* Moves a mapping to server s (or none), telling the old server's backend. */
void pm_mapping_set_server(struct pm_mapping *m, struct pm_server *s);
bool pm_addr_is_private(const struct pcp_addr *a);

/* Lists. */
static inline void pm_list_init(struct pm_list *l)
{
	l->prev = l->next = l;
}
static inline bool pm_list_empty(const struct pm_list *l)
{
	return l->next == l;
}
static inline void pm_list_add_tail(struct pm_list *head, struct pm_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}
static inline void pm_list_del(struct pm_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}
#define pm_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

extern const struct pm_backend_ops pm_pcp_backend;
#ifdef PCPMAP_HAVE_NATPMP
extern const struct pm_backend_ops pm_natpmp_backend;
/* NAT-PMP's per-protocol delete-all (internal port 0, lifetime 0; RFC 6886 3.4). */
int pm_natpmp_delete_all(struct pm_server *s, uint8_t ip_proto);
#endif
#ifdef PCPMAP_HAVE_UPNP
extern const struct pm_backend_ops pm_upnp_backend;
#endif
/* The backend for a protocol, NULL when it was not built. */
const struct pm_backend_ops *pm_backend_for(enum pcpmap_proto proto);
/* PCP backend pieces shared with tests and fakes. */
void pm_pcp_build_request(const struct pm_server *s, const struct pm_mapping *m, bool del,
			  struct pcp_msg *msg);
void pm_pcp_reply_from_msg(const struct pcp_msg *resp, const struct pm_mapping *m, struct pm_reply *r);

#endif
