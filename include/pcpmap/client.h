/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_CLIENT_H
#define PCPMAP_CLIENT_H

/**
 * @file client.h
 * The client: one engine that never owns the loop. The caller polls one file descriptor
 * (pcpmap_client_get_fd()) until the next deadline (pcpmap_client_get_timeout()), then calls
 * pcpmap_client_process(). Callbacks run only from inside pcpmap_client_process(), never from the call that
 * caused them. A client and its mappings must be used from one thread at a time.
 */

#include <pcpmap/types.h>
#include <pcpmap/log.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Lifetime requested when a request says 0, in seconds (RFC 6886's recommendation, common practice). */
#define PCPMAP_DEFAULT_LIFETIME     7200u
/** Default bound on the mapping table of one client. */
#define PCPMAP_DEFAULT_MAX_MAPPINGS 1024u

/** Where a client's mappings are made: see pcpmap_client_config::mode and pcpmap_client_uses_daemon(). */
enum pcpmap_mode {
	/** In this process: the client runs its own engine (sockets, timers, gateway probing). The default. */
	PCPMAP_MODE_ENGINE = 0,
	/** Through pcpmapd when its control socket answers at pcpmap_client_new(), else in this process. */
	PCPMAP_MODE_AUTO,
	/** Through pcpmapd only: pcpmap_client_new() fails when no daemon answers. */
	PCPMAP_MODE_DAEMON,
};

/** Where pcpmapd listens unless pcpmap_client_config::daemon_socket or $PCPMAPD_SOCKET says otherwise. */
#define PCPMAP_DEFAULT_DAEMON_SOCKET "/run/pcpmapd/pcpmapd.sock"

/**
 * Client configuration. Initialise with pcpmap_client_config_init(), then set what you need.
 * pcpmap_client_new() copies it (strings included): the caller keeps ownership of everything here.
 */
struct pcpmap_client_config {
	/** sizeof(struct pcpmap_client_config), set by pcpmap_client_config_init(); lets the struct grow. */
	size_t size;
	/**
	 * Server to use: a numeric IPv4 or IPv6 address, optionally with a port ("192.168.1.1",
	 * "[fe80::1%eth0]:5351"). NULL: the default gateway read from the kernel; when both families have one,
	 * the IPv6 gateway carries the requests and the mapping family still follows each request.
	 */
	const char *server;
	/** AF_INET or AF_INET6 to force the transport family of the default-gateway choice; 0 for automatic. */
	int transport_family;
	/** Mask of PCPMAP_PROTO_BIT() values that may be used; 0 means every protocol built in. */
	uint32_t protocols;
	/** Upper bound on live mappings; 0 means PCPMAP_DEFAULT_MAX_MAPPINGS. */
	uint32_t max_mappings;
	/** Option code used for PORT_RESERVATION (no IANA code exists); 0 means 132. */
	uint8_t port_reservation_code;
	/** Log callback and its level threshold; NULL log means silence. */
	pcpmap_log_fn log;
	void *log_userdata;
	enum pcpmap_log_level log_level;
	/** Packet trace callback (for protocol debugging); NULL for none. */
	pcpmap_trace_fn trace;
	void *trace_userdata;
	/**
	 * After a gateway may have lost its state (epoch, announcement), its mappings are confirmed with
	 * renewals, mappings with a callback first, oldest first. 0 (the default): as many at once as a window
	 * allows that grows while answers come back and halves when one goes unanswered (as TCP's congestion
	 * window does), never more than remap_max_in_flight. Non-zero: one every remap_interval_ms instead.
	 * Re-homing after a network change is always spaced by remap_interval_ms (0: 50 ms).
	 */
	uint32_t remap_interval_ms;
	/** Do not listen for unsolicited announcements on port 5350 (PCP ANNOUNCE, NAT-PMP address notices). */
	bool no_announce_listener;
	/** Do not follow route and address changes through rtnetlink. */
	bool no_netlink_monitor;
	/**
	 * Order in which protocols are preferred when several answer, as enum pcpmap_proto values; unlisted
	 * protocols follow in the default order (PCP, NAT-PMP, UPnP); all zero means the default.
	 */
	uint8_t protocol_order[3];
	/**
	 * PCPMAP_MODE_ENGINE (the default) runs the protocol engine in this process. An application that
	 * wants the host's pcpmapd when it runs (one client state for every application, mappings that can
	 * outlive the program: pcpmap_request::persistent) and still works without it sets PCPMAP_MODE_AUTO;
	 * the API and the callbacks stay the same (differences: pcpmap_client_uses_daemon()).
	 * PCPMAP_MODE_DAEMON insists on the daemon.
	 */
	enum pcpmap_mode mode;
	/** The daemon's control socket (AF_UNIX SOCK_SEQPACKET); NULL: $PCPMAPD_SOCKET if set, else
	    PCPMAP_DEFAULT_DAEMON_SOCKET. Only with PCPMAP_MODE_AUTO and PCPMAP_MODE_DAEMON. */
	const char *daemon_socket;
	/** Ceiling of confirmations in flight to one client's gateways after a possible state loss; 0 means
	    PCPMAP_DEFAULT_REMAP_MAX_IN_FLIGHT. */
	uint32_t remap_max_in_flight;
	/**
	 * Directory of the gateway cache (warm starts: which protocol each gateway spoke and where its UPnP IGD
	 * answers, so the next start skips discovery). NULL: $XDG_RUNTIME_DIR/pcpmap, else /run/pcpmap for root,
	 * else no cache. The file is created mode 0600 (the directory 0700 when missing) and written by atomic
	 * rename; a remembered protocol is used only once a request to it has been answered.
	 */
	const char *cache_dir;
	/** Neither read nor write the gateway cache: every client start probes the gateway. */
	bool no_gw_cache;
};

/** Default of pcpmap_client_config::remap_max_in_flight. */
#define PCPMAP_DEFAULT_REMAP_MAX_IN_FLIGHT 64

/** Fills cfg with defaults (every protocol, default gateway, no logging). Accepts NULL (does nothing). */
PCPMAP_EXPORT void pcpmap_client_config_init(struct pcpmap_client_config *cfg);
/**
 * Fills cfg with defaults (every protocol, default gateway, no logging) and sets cfg->size. size is the
 * caller's sizeof(*cfg): only that much is written, so a program built against an older, shorter struct
 * keeps working with a newer library. Accepts NULL, or a size shorter than the first published struct (does
 * nothing; pcpmap_client_new() then refuses cfg). Call it as pcpmap_client_config_init(cfg).
 */
PCPMAP_EXPORT void pcpmap_client_config_init_sized(struct pcpmap_client_config *cfg, size_t size);
#define pcpmap_client_config_init(cfg) pcpmap_client_config_init_sized((cfg), sizeof(*(cfg)))

/**
 * Creates a client. No packet is sent until a mapping or probe asks for it. With PCPMAP_MODE_AUTO or
 * PCPMAP_MODE_DAEMON it first connects to pcpmapd and subscribes to its events, waiting at most 1 s for the
 * daemon's answer; AUTO falls back to the in-process engine when that fails.
 * @param ret receives the client; untouched on failure. Free it with pcpmap_client_free().
 * @param cfg configuration (copied), or NULL for defaults.
 * @return 0, -EINVAL (bad configuration: unparsable server address, unknown size or mode), -ENOMEM, or the
 *         errno of creating the internal epoll descriptor. PCPMAP_MODE_DAEMON without a daemon: -ENOENT (no
 *         socket), -ECONNREFUSED (a socket nobody listens on), -EACCES, -EUSERS (the daemon's connection
 *         limit), -ETIMEDOUT (no answer), -ECONNRESET, or another errno of connecting.
 */
PCPMAP_EXPORT int pcpmap_client_new(pcpmap_client **ret, const struct pcpmap_client_config *cfg);

/**
 * Frees a client. Every mapping still owned by the application is deleted on the gateway with one
 * best-effort packet (no wait for the answer) and freed; pointers to them become invalid. To wait for the
 * gateway to confirm deletions, call pcpmap_client_flush() first.
 * @return NULL, so callers can write c = pcpmap_client_free(c). Accepts NULL.
 */
PCPMAP_EXPORT pcpmap_client *pcpmap_client_free(pcpmap_client *c);

/**
 * The one descriptor to poll for POLLIN. It stays the same for the life of the client (in daemon mode too,
 * across reconnections to the daemon).
 * @return a descriptor owned by the client (do not close it), or -EINVAL for NULL.
 */
PCPMAP_EXPORT int pcpmap_client_get_fd(const pcpmap_client *c);

/**
 * Whether this client talks to pcpmapd (daemon mode) instead of running its own engine: false with
 * PCPMAP_MODE_ENGINE, true with PCPMAP_MODE_DAEMON, decided by pcpmap_client_new() with PCPMAP_MODE_AUTO.
 *
 * In daemon mode every call and callback works as documented, with these differences:
 * - The daemon's configuration picks the gateway and the protocols: server, transport_family,
 *   port_reservation_code, remap_interval_ms, no_announce_listener, no_netlink_monitor, protocol_order and
 *   trace are not used; protocols narrows each request as pcpmap_request::protocols does.
 * - pcpmap_mapping_new() checks the request as the engine does, sends it and returns at once. A refusal by
 *   the daemon (-EPERM, -EDQUOT, -ENOSPC, -EPROTONOSUPPORT...) comes as a final FAILED event (state
 *   FAILED) whose info.detail holds the daemon's message. allow_degrade and nonce2 cannot be carried to
 *   the daemon: -EOPNOTSUPP. info.nonce2 stays zero.
 * - pcpmap_mapping_abandon() only releases the handle: the daemon deletes the mapping when this client is
 *   freed (its connection closes), unless the request was persistent.
 * - pcpmap_client_free() closes the connection: the daemon deletes every mapping of this client that is not
 *   persistent, as the engine would.
 * - pcpmap_client_flush() waits until the daemon acknowledged every deletion sent to it.
 * - pcpmap_client_announce() returns -EOPNOTSUPP; pcpmap_client_probe(), pcpmap_probe_sync() and
 *   pcpmap_unmap_sync() ask the daemon (-ENOTCONN while it is unreachable); pcpmap_client_get_stats()
 *   counts control messages (sent, received, dropped).
 * - When the connection to the daemon drops (a daemon restart), every mapping the daemon had answered for
 *   reports LOST; the client reconnects with a backoff (0.25 s, doubling up to 8 s) and asks for its
 *   mappings again with the same nonces, or takes persistent ones back by id; MAPPED (or CHANGED) follows
 *   as after any loss. Mappings made meanwhile are sent once the daemon is back.
 * A send that finds the socket full waits at most 1 s; a daemon that leaves a request unanswered for 10 s
 * (a probe: its timeout plus 10 s) is treated as gone.
 */
PCPMAP_EXPORT bool pcpmap_client_uses_daemon(const pcpmap_client *c);

/**
 * The next deadline on the pcpmap_now_usec() clock, in microseconds.
 * @return UINT64_MAX when nothing is scheduled (and for NULL).
 */
PCPMAP_EXPORT uint64_t pcpmap_client_next_deadline(const pcpmap_client *c);

/**
 * The next deadline as a poll() timeout in milliseconds, rounded up: -1 when nothing is scheduled, 0 when
 * pcpmap_client_process() should run now; -EINVAL for NULL.
 */
PCPMAP_EXPORT int pcpmap_client_get_timeout(const pcpmap_client *c);

/**
 * Reads every pending datagram, runs every expired timer and delivers the resulting callbacks.
 * Never blocks. Call it when the descriptor is readable or the deadline has passed; extra calls are harmless.
 * @return 0, or a negative errno for a failure of the client itself (not of one mapping, which callbacks
 *         report).
 */
PCPMAP_EXPORT int pcpmap_client_process(pcpmap_client *c);

/**
 * Convenience loop over the three calls above: polls and processes until timeout_ms elapsed, or until
 * pcpmap_client_stop() is called from a callback.
 * @param timeout_ms how long to run; -1 for no limit.
 * @return 0 when the time ran out or the loop was stopped, -EINTR when a signal interrupted the wait,
 *         -EINVAL for NULL, another negative errno on failure.
 */
PCPMAP_EXPORT int pcpmap_client_run(pcpmap_client *c, int timeout_ms);

/** Makes the current pcpmap_client_run() return after the callback that called this. Accepts NULL. */
PCPMAP_EXPORT void pcpmap_client_stop(pcpmap_client *c);

/**
 * Runs the loop until every deletion in flight is confirmed by the gateway or timeout_ms elapses.
 * @return 0 when nothing is left in flight, -ETIMEDOUT otherwise, -EINTR on a signal, -EINVAL for NULL.
 */
PCPMAP_EXPORT int pcpmap_client_flush(pcpmap_client *c, int timeout_ms);

/** What a probe or announcement found out about a server. */
struct pcpmap_server_info {
	enum pcpmap_proto proto; /**< protocol that answered, or PCPMAP_PROTO_NONE */
	char server[64];         /**< server address, "addr:port" */
	char client_addr[48];    /**< our address as the server sees it (PCP Client IP) */
	int version;             /**< protocol version the server speaks (PCP 2, NAT-PMP 0) */
	uint32_t epoch;          /**< server epoch (seconds since its state began) */
	uint32_t rtt_usec;       /**< round-trip time of the probe */
	int error;               /**< 0 or negative errno */
	int result_code;         /**< protocol result code */
	char external_addr[48];  /**< external address when the protocol tells it (NAT-PMP, UPnP, PCP MAP) */
	char detail[256];        /**< protocol detail: the UPnP IGD's control URL, ... */
};

/** Receives the outcome of pcpmap_client_announce(). info is valid only during the call. */
typedef void (*pcpmap_server_fn)(pcpmap_client *c, const struct pcpmap_server_info *info, void *userdata);

/**
 * Sends a PCP ANNOUNCE to the server (retransmitted per RFC 6887 until timeout_ms) and reports the answer:
 * the epoch, the version and the round-trip time. The callback runs once, from pcpmap_client_process().
 * @return 0 when the request went out, -EBUSY if an announcement is already in flight, -ENETUNREACH when
 *         no server is known, another negative errno on socket errors.
 */
PCPMAP_EXPORT int pcpmap_client_announce(pcpmap_client *c, int timeout_ms, pcpmap_server_fn cb,
					 void *userdata);

/** What a probe of the gateway found: every protocol tried, and the one pcpmap will use. */
struct pcpmap_probe_result {
	char gateway[64];              /**< gateway address, "addr:port" */
	struct pcpmap_server_info pcp; /**< proto is PCPMAP_PROTO_NONE when not tried */
	struct pcpmap_server_info natpmp;
	struct pcpmap_server_info upnp;
	enum pcpmap_proto chosen; /**< the protocol mappings will use; NONE when nothing answers */
	char external_addr[48];   /**< as the chosen protocol reports it */
	bool external_is_private; /**< private or shared (RFC 1918, RFC 6598): double NAT likely */
};

/** Receives a probe's outcome. r is valid only during the call. */
typedef void (*pcpmap_probe_fn)(pcpmap_client *c, const struct pcpmap_probe_result *r, void *userdata);

/**
 * Asks every enabled protocol at once whether the gateway speaks it (PCP ANNOUNCE, NAT-PMP public address,
 * UPnP discovery), with round-trip times, epoch and external address (learned for PCP with a short MAP of
 * the discard port, RFC 6887 11.6, deleted at once). The callback runs once, from pcpmap_client_process(),
 * when every protocol answered or timeout_ms passed.
 * @return 0 when the probe started, -EBUSY if one is in flight, -ENETUNREACH without a gateway.
 */
PCPMAP_EXPORT int pcpmap_client_probe(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata);

/**
 * Blocking probe built on pcpmap_client_probe() and the loop calls.
 * @return 0 (ret filled; check ret->chosen), -ETIMEDOUT never (the result says what timed out), -ENETUNREACH
 *         without a gateway, -EINTR on a signal.
 */
PCPMAP_EXPORT int pcpmap_probe_sync(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret);
/** pcpmap_probe_sync() writing at most size bytes of ret (the struct only grows at its end); the
    pcpmap_probe_sync() macro passes sizeof(*ret). -EINVAL for a size below the first published struct. */
PCPMAP_EXPORT int pcpmap_probe_sync_sized(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret,
					  size_t size);
#define pcpmap_probe_sync(c, t, ret) pcpmap_probe_sync_sized((c), (t), (ret), sizeof(*(ret)))

/** Changes the threshold of the log callback given at creation (e.g. on a daemon's reload). */
PCPMAP_EXPORT void pcpmap_client_set_log_level(pcpmap_client *c, enum pcpmap_log_level level);

/** Counters of what the client saw. */
struct pcpmap_stats {
	uint64_t sent;     /**< datagrams sent */
	uint64_t received; /**< datagrams received */
	uint64_t dropped;  /**< datagrams dropped by validation (wrong source, opcode, nonce, malformed) */
	uint64_t epoch_resets; /**< server state losses detected */
	uint64_t retransmits;  /**< retransmissions */
};

/** Copies the client's counters into ret (zeroes for a NULL client; nothing for a NULL ret). */
PCPMAP_EXPORT void pcpmap_client_get_stats(const pcpmap_client *c, struct pcpmap_stats *ret);
/** pcpmap_client_get_stats() writing at most size bytes of ret (the struct only grows at its end); the
    pcpmap_client_get_stats() macro passes sizeof(*ret). */
PCPMAP_EXPORT void pcpmap_client_get_stats_sized(const pcpmap_client *c, struct pcpmap_stats *ret,
						 size_t size);
#define pcpmap_client_get_stats(c, ret) pcpmap_client_get_stats_sized((c), (ret), sizeof(*(ret)))

#ifdef __cplusplus
}
#endif

#endif
