/* What a protocol backend (plugin/) sees of the engine: the ops table it fills, a read-only view of the
 * request it carries, and the functions through which it reports what the server said. Servers and mappings
 * are opaque here; a backend never walks the client's mappings or writes their state. */
#ifndef PCPMAP_BACKEND_H
#define PCPMAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pcpmap/pcpmap.h>

#include "list.h"
#include "net/net.h"
#include "sched/sched.h"
#include "sched/timing.h"
#include "wire/pcp_wire.h"

struct pm_server;
struct pm_mapping;

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
 * pm_server_priv(). */
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

/* A read-only copy of what a mapping asks for and holds, filled by pm_mapping_req(). Pointers point into
 * the mapping and stay valid until the next call into the engine. */
struct pm_req {
	uint64_t id;
	const struct pm_server *server; /* the server it is on (compare only) */
	enum pcpmap_state state;
	bool del;        /* the request it sends now is a delete (state DELETING) */
	bool sent;       /* a request went out for it (and it may be answered) */
	bool unmap_only; /* a delete that must find what it names (pcpmap_unmap_sync()) */
	/* The request, validated and in wire terms. */
	enum pcpmap_kind kind;
	uint8_t ip_proto;
	uint16_t internal_port;
	int family;
	uint16_t suggested_port;
	struct pcp_addr suggested_addr;
	uint32_t req_lifetime;
	bool prefer_failure;
	bool has_third_party;
	struct pcp_addr third_party;
	size_t n_filters;
	const struct pcp_filter *filters;
	const char *description; /* NULL: none */
	bool port_reservation;
	bool port_set;
	struct pcp_addr peer_addr;
	uint16_t peer_port;
	uint8_t nonce[PCP_NONCE_LEN];
	/* The grant it holds (have_grant false: none). */
	bool have_grant;
	struct pcp_addr ext_addr;
	uint16_t ext_port;
	uint32_t lifetime;
	uint32_t epoch;
};
void pm_mapping_req(const struct pm_mapping *m, struct pm_req *ret);

/* The server's own pieces. */
pcpmap_client *pm_server_client(const struct pm_server *s);
const char *pm_server_name(const struct pm_server *s);
const struct pm_sockaddr *pm_server_addr(const struct pm_server *s);
/* Our source address towards the server, as the backend learned it when it opened its transport. */
const struct pm_sockaddr *pm_server_local(const struct pm_server *s);
void pm_server_set_local(struct pm_server *s, const struct pm_sockaddr *local);
const struct pm_backend_ops *pm_server_ops(const struct pm_server *s);
void *pm_server_priv(const struct pm_server *s);
void pm_server_set_priv(struct pm_server *s, void *priv);
/* The last transport error reported for the server (0: none). */
int pm_server_last_error(const struct pm_server *s);
/* True while an announcement (pcpmap_announce()) waits for this server's answer. */
bool pm_server_announcing(const struct pm_server *s);
/* True when the gateway refused protocol p by ICMP (port unreachable) at its last probe; with first_only,
 * only while no full probe of the gateway has failed yet. */
bool pm_server_refused(const struct pm_server *s, enum pcpmap_proto p, bool first_only);

/* Warm starts (core/gwcache.c). The IGD remembered for this server's gateway: 0 and the strings (owned by
 * the engine, valid until the server closes), or -ENOENT. */
struct pm_upnp_memo {
	const char *url; /* control URL */
	const char *st;  /* service type */
	const char *lan; /* our address as the IGD saw it */
};
int pm_server_upnp_memo(const struct pm_server *s, struct pm_upnp_memo *ret);
/* The UPnP backend found (or rediscovered) an IGD at this server's gateway. */
void pm_server_upnp_found(struct pm_server *s, const char *url, const char *st, const char *lan);

/* The client's clock, timers and settings. */
uint64_t pm_client_now(const pcpmap_client *c);
struct sched *pm_client_sched(pcpmap_client *c);
bool pm_client_tracing(const pcpmap_client *c);
size_t pm_client_max_mappings(const pcpmap_client *c);
size_t pm_client_n_mappings(const pcpmap_client *c);
const struct pcp_codec_cfg *pm_client_codec(const pcpmap_client *c);
/* Counters of pcpmap_stats a backend moves. */
enum pm_stat { PM_STAT_SENT = 0, PM_STAT_RECEIVED, PM_STAT_DROPPED, PM_STAT_RETRANSMITS };
void pm_client_count(pcpmap_client *c, enum pm_stat which);

/* Logging through the application's callback. */
void pm_log(const pcpmap_client *c, enum pcpmap_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pm_trace(const pcpmap_client *c, bool sent, enum pcpmap_proto proto, const char *peer,
	      const uint8_t *bytes, size_t len, const char *decoded);

/* Epoll registration of a backend socket. */
int pm_server_watch_fd(struct pm_server *s, int fd);
void pm_server_unwatch_fd(struct pm_server *s, int fd);

/* Finding mappings. Mappings by id: backends that finish work asynchronously (UPnP worker) must not keep
 * mapping pointers. */
struct pm_mapping *pm_client_find_mapping(pcpmap_client *c, uint64_t id);
/* The mapping with that id if it is on server s, else NULL. */
struct pm_mapping *pm_server_find_mapping(struct pm_server *s, uint64_t id);
struct pm_mapping *pm_server_find_nonce(struct pm_server *s, const uint8_t nonce[PCP_NONCE_LEN]);
/* Fills ids (up to cap) with the ids of the mappings on server s that are neither failed nor deleted;
 * returns how many it wrote. */
size_t pm_server_live_ids(struct pm_server *s, uint64_t *ids, size_t cap);
/* True when a mapping on server s is for that protocol and internal port. */
bool pm_server_holds_port(struct pm_server *s, uint8_t ip_proto, uint16_t internal_port);

/* Reports. */
/* Outcome of ops->probe (or the first sign of life from a server): err 0 when the protocol answers (info
 * may carry version, epoch, RTT, external address), or a negative errno when it does not (ECONNREFUSED,
 * ETIMEDOUT, EPROTONOSUPPORT). */
void pm_server_on_probe(struct pm_server *s, int err, const struct pcpmap_server_info *info);
void pm_probe_on_answer(struct pm_server *s, enum pcpmap_proto proto, int err,
			const struct pcpmap_server_info *info);
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
/* The answer to the mapping's request. */
void pm_mapping_on_reply(struct pm_mapping *m, const struct pm_reply *r);
/* The nonce the mapping sent may still be granted by this server although the mapping leaves it: the engine
 * gives the mapping a fresh one (retiring the old through ops->retire). */
void pm_mapping_nonce_spent(struct pm_mapping *m);
/* What the backend tried or dropped for the mapping, shown in its info's detail. */
void pm_mapping_note_detail(struct pm_mapping *m, const char *detail);
/* Returns false when the epoch shows the server lost its state (the core then re-creates its mappings). */
bool pm_server_on_epoch(struct pm_server *s, uint32_t epoch, bool natpmp_rule, struct pm_mapping *except);
/* True for an answer written before a restart this client already saw (its epoch belongs to the old run,
 * reordered behind the new one): its grant is not the gateway's state any more. */
bool pm_server_epoch_stale(const struct pm_server *s, uint32_t epoch);
/* The server's external address is now addr: mappings granted on another address renew at once. */
void pm_server_on_ext_addr(struct pm_server *s, const struct pcp_addr *addr);
void pm_server_on_unreachable(struct pm_server *s, int err);
void pm_server_on_reachable(struct pm_server *s);
/* Reports a socket error from the next timer run instead of from inside a send. */
void pm_server_defer_error(struct pm_server *s, int err);
void pm_server_on_announce(struct pm_server *s, const struct pcpmap_server_info *info);
/* The server answered with another protocol version: NAT-PMP (0) or a PCP version we do not speak. */
void pm_server_on_natpmp_only(struct pm_server *s);
void pm_server_on_unsupported_version(struct pm_server *s, uint8_t version);

#endif
