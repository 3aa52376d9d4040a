/* The engine's own objects: client, gateways, servers and mappings. Backends see none of this: they get
 * core/backend.h. */
#ifndef PCPMAP_INTERNAL_H
#define PCPMAP_INTERNAL_H

#include <pcpmap/pcpmap.h>

#include "backend.h"
#include "fsm/fsm.h"
#include "net/net.h"
#include "sched/env.h"
#include "sched/sched.h"
#include "sched/timing.h"
#include "wire/pcp_epoch.h"
#include "wire/pcp_wire.h"
#include "plugins.h"

struct pm_server;
struct pm_mapping;
struct pm_dmode;
struct pm_ops;

/* What the application holds as a pcpmap_mapping: the first member of the engine's struct pm_mapping and of
 * daemon mode's proxy (core/daemon_mode.c), so each public call on a mapping dispatches through it. */
struct pm_handle {
	const struct pm_ops *ops;
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
	struct pm_gw_memo *memo;     /* warm starts (core/gwcache.c); NULL when not remembered */
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
	struct pm_handle h; /* first: the application's pcpmap_mapping */
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

	struct pm_mapping *nonce_next; /* chain of the client's nonce index */
};

enum pm_event_kind { PM_EVENT_MAPPING = 0, PM_EVENT_SERVER, PM_EVENT_PROBE, PM_EVENT_PROXY };

struct pm_event {
	struct pm_event *next;
	enum pm_event_kind kind;
	struct pm_mapping *m;
	pcpmap_mapping *handle; /* PM_EVENT_PROXY: a daemon-mode mapping, with its callback */
	pcpmap_event_fn cb;
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
		    shrunk_at; /* the last shrink (queueing or loss): earlier requests cannot repeat it */
	} remap;
	struct sched_timer t_netcheck;
	struct sched_timer t_listen; /* opens the listeners once the first request is out */
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

	/* The implementation behind the public API, chosen once in pcpmap_client_new(): pm_engine_ops, or
	 * pm_dmode_ops with dmode its state (core/daemon_mode.c). */
	const struct pm_ops *ops;
	struct pm_dmode *dmode;

	char cache_dir[256]; /* gateway cache (core/gwcache.c); "" when disabled */
	int (*neighbour_lladdr)(int family, const void *addr, char *ret, size_t len); /* tests inject one */
};

/* Creation with injected clock and randomness (tests use a fake clock). */
int pm_client_new_env(pcpmap_client **ret, const struct pcpmap_client_config *cfg, const struct pm_env *env);

/* Sizes of the output structs as first published (0.1.0): the floor of the *_sized() calls, and what the
 * unsized exports write for binaries built against that header. The structs only grow at their end. */
#define PM_INFO_SIZE_V0  (offsetof(struct pcpmap_mapping_info, external_is_private) + sizeof(bool))
#define PM_PROBE_SIZE_V0 sizeof(struct pcpmap_probe_result)
#define PM_STATS_SIZE_V0 (offsetof(struct pcpmap_stats, retransmits) + sizeof(uint64_t))

/* Engine-side mapping and server operations. */
/* The mapping leaves the server that granted it: the grant is deleted there by a mapping of its own (with
 * retries), and the mapping waits unsent with a fresh nonce; nothing is reported until the new grant. A port
 * pair's owner drops its companion too (made again once the owner is granted). */
void pm_mapping_drop_grant(struct pm_mapping *m);
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
/* An unsolicited announcement from gateway gw: the epoch check, and whatever it says, every mapping held
 * through the gateway is confirmed with a renewal after a random 0-5 s (RFC 6887 14.1.1: a restart within
 * the epoch check's slack is otherwise invisible). Returns false when the epoch shows a state loss. */
bool pm_gw_on_announced(struct pm_gw *gw, struct pm_server *s, uint32_t epoch, bool natpmp_rule);

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
/* Forgets what the gateway speaks and probes it again from scratch (a remembered protocol was silent). */
void pm_gw_relearn(struct pm_gw *gw);
int pm_client_watch_fd(pcpmap_client *c, int fd, void (*fn)(pcpmap_client *c, int fd));
void pm_client_unwatch_fd(pcpmap_client *c, int fd);
/* Whether a client-level descriptor is also watched for room to write (its callback then runs on either).
 * @return 0; -ENOENT when fd is not watched; -errno of epoll_ctl(). */
int pm_client_watch_out(pcpmap_client *c, int fd, bool on);
/* The blocking helpers' loop: process, then poll until done(), timeout_ms (-1: none; -ETIMEDOUT) or a signal
 * (-EINTR). */
int pm_client_wait(pcpmap_client *c, bool (*done)(pcpmap_client *c, void *ud), void *ud, int timeout_ms);

/* Resilience (core/resilience.c). */
void pm_resilience_init(pcpmap_client *c);
void pm_resilience_fini(pcpmap_client *c);
/* Opens the announcement listeners and the route monitor, once. */
/* Opens the announcement listeners and the route monitor on the loop's next turn: a gateway's first request
 * goes out before their ~45 system calls of set-up. */
void pm_resilience_start_soon(pcpmap_client *c);
/* Queues the held mappings of server s (except one) for paced re-creation, not before now + delay_us. */
void pm_remap_server(struct pm_server *s, struct pm_mapping *except, uint64_t delay_us);
/* The window's feedback: a confirmation was answered (any answer), or went unanswered for a whole RT (the
 * window halves). Both take the mapping out of the window; one unanswered still counts under the ceiling
 * while it is retransmitted. No-ops for a mapping that is not in the window. */
void pm_remap_answered(struct pm_mapping *m);
void pm_remap_unanswered(struct pm_mapping *m);
/* The mapping left the confirmation some other way (failed, moved, deleted): out of the window, no signal. */
void pm_remap_forget(struct pm_mapping *m);
/* The entry points below are events at time now, which becomes the engine's clock for what they run (tests
 * and the simulator call them with their fake clock's time). */
/* An unsolicited datagram from the announcement listeners. */
void pm_client_on_unsolicited(pcpmap_client *c, const uint8_t *buf, size_t len, const struct pm_sockaddr *src,
			      uint64_t now);
/* Route/address/link events (a pm_net_event mask): a debounced re-check follows. */
void pm_client_on_net_events(pcpmap_client *c, unsigned mask, uint64_t now);
/* Re-checks routes and source addresses. */
void pm_client_net_check(pcpmap_client *c, uint64_t now);

/* Probe (core/probe.c): backends' probe answers and PCP ANNOUNCE answers feed it. */
void pm_probe_init(pcpmap_client *c);
void pm_probe_fini(pcpmap_client *c);
int pm_client_announce_on(pcpmap_client *c, struct pm_server *s, int timeout_ms, pcpmap_server_fn cb,
			  void *userdata);
void pm_client_queue_event(pcpmap_client *c, struct pm_event *e);
/* Drops the queued events of a mapping (an engine struct pm_mapping or a daemon-mode handle). */
void pm_client_purge_events(pcpmap_client *c, const void *mapping);

/*
 * The public API's implementations: the engine in this process, or pcpmapd (daemon mode, core/daemon_mode.c,
 * doc/DESIGN.md). Chosen once in pcpmap_client_new(); the public functions check their arguments and
 * dispatch: client calls through c->ops, mapping calls through the handle's ops.
 */
struct pm_ops {
	int (*mapping_new)(pcpmap_client *c, const struct pcpmap_request *req, pcpmap_mapping **ret);
	void (*mapping_free)(struct pm_handle *h);
	int (*mapping_delete)(struct pm_handle *h);
	void (*mapping_abandon)(struct pm_handle *h);
	void (*mapping_get_info)(const struct pm_handle *h, struct pcpmap_mapping_info *ret);
	void (*mapping_set_callback)(struct pm_handle *h, pcpmap_event_fn cb,
				     void *userdata); /* map_sync() */
	int (*flush)(pcpmap_client *c, int timeout_ms);
	int (*unmap_sync)(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
			  struct pcpmap_mapping_info *ret_info);
	int (*probe)(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata);
	int (*probe_sync)(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret);
	int (*announce)(pcpmap_client *c, int timeout_ms, pcpmap_server_fn cb, void *userdata);
	void (*stop)(pcpmap_client *c); /* first step of pcpmap_client_free(); NULL: nothing to do */
};
extern const struct pm_ops pm_engine_ops;
extern const struct pm_ops pm_dmode_ops;

/* The engine's side of the table (mapping.c, probe.c, client.c). */
int pm_engine_mapping_new(pcpmap_client *c, const struct pcpmap_request *req, pcpmap_mapping **ret);
void pm_engine_mapping_free(struct pm_handle *h);
int pm_engine_mapping_delete(struct pm_handle *h);
void pm_engine_mapping_abandon(struct pm_handle *h);
void pm_engine_mapping_get_info(const struct pm_handle *h, struct pcpmap_mapping_info *ret);
void pm_engine_mapping_set_callback(struct pm_handle *h, pcpmap_event_fn cb, void *userdata);
int pm_engine_flush(pcpmap_client *c, int timeout_ms);
int pm_engine_unmap_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
			 struct pcpmap_mapping_info *ret_info);
int pm_engine_probe(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata);
int pm_engine_probe_sync(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret);

/* With cfg's mode AUTO or DAEMON, connects and subscribes (at most 1 s) and, connected, sets c->ops to
 * pm_dmode_ops; 0 also when AUTO falls back to the engine. */
int pm_dmode_start(pcpmap_client *c, const struct pcpmap_client_config *cfg);
/* The engine's checks of a request (mapping.c), without making a mapping. */
int pm_request_validate(pcpmap_client *c, const struct pcpmap_request *req);

/* Mapping helpers of the engine's modules. */
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

/* The backend for a protocol, NULL when it was not built. */
const struct pm_backend_ops *pm_backend_for(enum pcpmap_proto proto);

#endif
