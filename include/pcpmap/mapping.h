/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_MAPPING_H
#define PCPMAP_MAPPING_H

/**
 * @file mapping.h
 * Mappings: MAP (an inbound port on the gateway) and PEER (an existing outbound connection made to last)
 * requests, kept alive by the client's state machine and refresh scheduler whatever protocol carries them.
 */

#include <pcpmap/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Kind of request (RFC 6887 opcodes; NAT-PMP and UPnP carry MAP only). */
enum pcpmap_kind {
	PCPMAP_KIND_MAP = 1,
	PCPMAP_KIND_PEER = 2,
};

/** Where a mapping stands. */
enum pcpmap_state {
	PCPMAP_STATE_NOT_SENT = 0,          /**< created, nothing sent yet */
	PCPMAP_STATE_WAIT_RESP = 1,         /**< request sent, retransmitting until an answer */
	PCPMAP_STATE_MAPPED = 2,            /**< the gateway holds the mapping; a renewal is scheduled */
	PCPMAP_STATE_REFRESHING = 3,        /**< a renewal was sent and is not answered yet; still mapped */
	PCPMAP_STATE_ERROR_WAIT_RESEND = 4, /**< the gateway refused for now; pcpmap retries later */
	PCPMAP_STATE_DELETING = 5,          /**< a delete is in flight */
	PCPMAP_STATE_DELETED = 6,           /**< deleted on the gateway (or never created) */
	PCPMAP_STATE_FAILED = 7,            /**< gave up: the error says why; nothing more is sent */
};

/** Name of a state, e.g. "MAPPED". A static string, never NULL. */
PCPMAP_EXPORT const char *pcpmap_state_name(enum pcpmap_state state);

/** What a callback reports. Each event is a statement about the gateway's table, and pcpmap makes it only
 * when it knows it to be true:
 * - MAPPED: the gateway answered that it holds the mapping, with info.external_addr/external_port (for a port
 *   pair: both halves, adjacent). Reported once; a renewal or re-verification that gets the same values back
 *   reports nothing.
 * - CHANGED: the gateway answered that it holds the mapping with another external address or port than the
 *   one last reported (a renewal, a re-verification after the gateway announced itself, or an unsolicited
 *   response, RFC 6887 14.2).
 * - LOST: the gateway no longer holds what was last reported MAPPED or CHANGED: its lifetime ended with no
 *   renewal answered, or the network path to that gateway is gone (new default gateway or source address).
 *   An epoch reset or an announcement alone is not LOST: pcpmap confirms the mapping with a renewal first.
 *   pcpmap then re-creates it and reports MAPPED or CHANGED when the gateway grants it again.
 * - FAILED: a request did not do what it asked. info.error and info.result_code say why. When info.state is
 *   FAILED this is final (nothing is held for it: a grant the gateway made against the request, such as
 *   another port under PREFER_FAILURE, has been given back); otherwise pcpmap retries at info.retry_usec.
 *   A delete the gateway refused or never answered is FAILED, not DELETED.
 * - DELETED: the gateway answered that the mapping is deleted.
 */
enum pcpmap_event {
	PCPMAP_EVENT_MAPPED = 1,  /**< the gateway holds it, as info says */
	PCPMAP_EVENT_CHANGED = 2, /**< the gateway holds it with another external address or port */
	PCPMAP_EVENT_LOST = 3,    /**< the gateway no longer holds what was reported; pcpmap re-creates it */
	PCPMAP_EVENT_FAILED = 4,  /**< a request failed; final when info.state is FAILED */
	PCPMAP_EVENT_DELETED = 5, /**< the gateway confirmed the deletion */
};

/** Name of an event, e.g. "MAPPED". A static string, never NULL. */
PCPMAP_EXPORT const char *pcpmap_event_name(enum pcpmap_event ev);

/** How a port pair (RTP/RTCP) was obtained. */
enum pcpmap_pair_method {
	PCPMAP_PAIR_NONE = 0,             /**< not a pair request */
	PCPMAP_PAIR_PORT_RESERVATION = 1, /**< the server honoured PORT_RESERVATION */
	PCPMAP_PAIR_PORT_SET = 2, /**< the server honoured PORT_SET (RFC 7753) with size 2 and parity */
	PCPMAP_PAIR_TWO_MAPS = 3, /**< two MAP requests, the second pinned with PREFER_FAILURE */
};

/** Name of a pair method, e.g. "two-maps". A static string, never NULL. */
PCPMAP_EXPORT const char *pcpmap_pair_method_name(enum pcpmap_pair_method m);

/** Everything known about a mapping. Strings are NUL-terminated and empty when unknown. */
struct pcpmap_mapping_info {
	enum pcpmap_state state;
	enum pcpmap_proto proto; /**< protocol carrying it (PCPMAP_PROTO_NONE before the first answer) */
	enum pcpmap_kind kind;
	uint8_t ip_proto; /**< 6 TCP, 17 UDP, 0 all */
	char server[64];  /**< gateway, "addr:port" */
	char internal_addr[48];
	uint16_t internal_port;
	char external_addr[48];
	uint16_t external_port;
	uint16_t external_port2;             /**< second port of a pair (external_port + 1), else 0 */
	enum pcpmap_pair_method pair_method; /**< how the pair was obtained */
	char peer_addr[48];                  /**< PEER: remote peer */
	uint16_t peer_port;
	uint32_t lifetime; /**< lifetime granted by the gateway, seconds */
	uint64_t
	    expires_usec; /**< pcpmap_now_usec() time when the mapping expires unless renewed; 0 unknown */
	uint64_t refresh_usec; /**< when the next renewal goes out; 0 when none is scheduled */
	uint64_t retry_usec;   /**< ERROR_WAIT_RESEND: when the next try goes out */
	uint32_t epoch;        /**< server epoch in the last answer */
	int error;             /**< last error, negative errno, 0 if none */
	int result_code;   /**< protocol's own result code of the last answer (see pcpmap_result_name()) */
	uint8_t nonce[12]; /**< the PCP mapping nonce (needed to delete the mapping from elsewhere) */
	/** What was tried when no protocol answered, or what a degraded mapping dropped; empty otherwise. */
	char detail[160];
	/** The nonce of a pair's second half (external_port2); zero when there is none. */
	uint8_t nonce2[12];
	bool
	    external_is_private; /**< the external address is private or shared (RFC 1918/6598): a NAT further
				       up (double NAT, carrier-grade NAT) likely makes it unreachable */
};

/**
 * Receives mapping events. info is valid only during the call. The callback may call any pcpmap function,
 * including pcpmap_mapping_free() on this mapping.
 */
typedef void (*pcpmap_event_fn)(pcpmap_mapping *m, enum pcpmap_event ev,
				const struct pcpmap_mapping_info *info, void *userdata);

/** A FILTER (RFC 6887 13.3): only this remote peer (prefix) may use a MAP mapping. */
struct pcpmap_filter {
	const char *peer_addr; /**< numeric address */
	uint8_t prefix_len;    /**< 0-32 for IPv4, 0-128 for IPv6 */
	uint16_t peer_port;    /**< 0 for all ports */
};

/** Largest number of FILTERs in one request. */
#define PCPMAP_MAX_FILTERS 40

/**
 * A mapping request. Initialise with pcpmap_request_init(), then set fields. pcpmap_mapping_new() copies it,
 * strings and filters included.
 */
struct pcpmap_request {
	size_t size; /**< sizeof(struct pcpmap_request), set by pcpmap_request_init() */
	enum pcpmap_kind kind;
	uint8_t ip_proto;       /**< IPPROTO_TCP (6) or IPPROTO_UDP (17); 0 = every protocol (PCP MAP only) */
	uint16_t internal_port; /**< local port; 0 with ip_proto 0 means all ports (PCP MAP only) */
	int external_family;    /**< AF_INET (default when 0) or AF_INET6 (an IPv6 pinhole) */
	uint16_t suggested_port;    /**< external port wanted; 0 for no preference */
	const char *suggested_addr; /**< external address wanted; NULL for no preference */
	uint32_t lifetime;          /**< seconds; 0 means PCPMAP_DEFAULT_LIFETIME. Renewed until freed. */
	bool prefer_failure;     /**< fail (EADDRINUSE) rather than accept another port than suggested_port */
	const char *third_party; /**< map for this other internal address (PCP THIRD_PARTY); NULL for ours */
	const struct pcpmap_filter *filters; /**< PCP FILTERs, n_filters of them (MAP only) */
	size_t n_filters;
	const char *description; /**< PCP DESCRIPTION / UPnP description (UTF-8, at most 512 bytes) */
	bool port_pair; /**< RTP/RTCP: internal_port (even) and internal_port + 1 get external N (even) and
				       N + 1; see enum pcpmap_pair_method */
	const char *peer_addr;    /**< PEER: remote peer address */
	uint16_t peer_port;       /**< PEER: remote peer port */
	uint32_t protocols;       /**< mask of PCPMAP_PROTO_BIT(); 0 means the client's */
	uint32_t deadline_ms;     /**< give up (ETIMEDOUT) when the first answer takes longer; 0 = never (RFC
				       6887: MRC and MRD unbounded) */
	pcpmap_event_fn callback; /**< may be NULL */
	void *userdata;
	/** PCP mapping nonce to use (to renew or delete a mapping made earlier, e.g. by another process);
	    NULL for a fresh random one. */
	const uint8_t *nonce;
	/**
	 * When the protocol the gateway speaks cannot express part of the request (PEER, THIRD_PARTY, FILTER,
	 * PREFER_FAILURE, IPv6, all-protocols on NAT-PMP; THIRD_PARTY, FILTER... on UPnP), map anyway without
	 * it and say what was dropped in pcpmap_mapping_info::detail. Default: fail with EOPNOTSUPP.
	 */
	bool allow_degrade;
	/** With port_pair: the nonce of the second half (internal port + 1), to take a pair over; NULL for a
	    fresh one. */
	const uint8_t *nonce2;
	/**
	 * Only with a daemon (pcpmap_client_uses_daemon()): pcpmapd keeps the mapping after this client is
	 * freed or exits, and across daemon restarts, until pcpmap_mapping_free() or another client of the
	 * daemon deletes it. The daemon may refuse it to users other than root (a final FAILED event, -EPERM).
	 * The in-process engine ignores it: its mappings end with the client (or expire on the gateway after
	 * pcpmap_mapping_abandon()).
	 */
	bool persistent;
};

/** Fills req with defaults for a request of this kind. Accepts NULL (does nothing). */
PCPMAP_EXPORT void pcpmap_request_init(struct pcpmap_request *req, enum pcpmap_kind kind);

/**
 * Checks a request the way pcpmap_mapping_new() does, without starting anything, and says why it is refused
 * (e.g. "PEER remote peer 'x' is not an IPv4 or IPv6 address"), so a program or a daemon can pass the
 * reason on instead of reading the log.
 * @param ret_why receives the reason, NUL-terminated and cut to len bytes (empty when valid); may be NULL.
 * @return 0 when valid, -EINVAL when refused (reason in ret_why), -ENOMEM.
 */
PCPMAP_EXPORT int pcpmap_request_check(pcpmap_client *c, const struct pcpmap_request *req, char *ret_why,
				       size_t len);

/**
 * Starts a mapping. The first request goes out at once (when the gateway's protocol is known or PCP is
 * tried first); its outcome arrives through the callback from pcpmap_client_process(), never from this call.
 * @param ret receives the mapping, owned by the caller until pcpmap_mapping_free() or
 *        pcpmap_mapping_abandon(); untouched on failure.
 * @return 0; -EINVAL for an invalid request (the log says which field); -ENOSPC when the table is full;
 *         -ENOMEM.
 */
PCPMAP_EXPORT int pcpmap_mapping_new(pcpmap_client *c, const struct pcpmap_request *req,
				     pcpmap_mapping **ret);

/**
 * Deletes the mapping on the gateway (RFC 6887: MAP with lifetime 0 and the same nonce; PEER mappings are
 * left to expire, since PEER cannot delete) and releases the handle at once: no callback fires for it any
 * more. The client keeps the deletion in flight; see pcpmap_client_flush(). In daemon mode it asks the
 * daemon to delete it, persistent or not.
 * @return NULL. Accepts NULL.
 */
PCPMAP_EXPORT pcpmap_mapping *pcpmap_mapping_free(pcpmap_mapping *m);

/**
 * Deletes the mapping on the gateway and keeps the handle, so the caller learns the outcome: a DELETED event
 * once the gateway confirmed, or a FAILED event (state DELETED, info.error saying why: -EACCES for a
 * refusal, -ETIMEDOUT when three tries went unanswered, the server's ICMP error) when nothing was deleted.
 * The handle stays valid until pcpmap_mapping_free() or pcpmap_mapping_abandon(), which no longer send
 * anything for it. In daemon mode pcpmapd deletes it and the same events follow; after a FAILED the daemon
 * keeps the mapping and renews it (MAPPED may follow), so it can be deleted again.
 * @return 0 when the delete went out (an event follows); 1 when nothing was granted or sent, so there is
 *         nothing to delete (no event follows); -EINVAL for NULL; -EALREADY when a delete is in flight or
 *         done; -EOPNOTSUPP for a PEER mapping (RFC 6887 12: it can only expire).
 */
PCPMAP_EXPORT int pcpmap_mapping_delete(pcpmap_mapping *m);

/**
 * Releases the handle without deleting: the gateway keeps the mapping until its lifetime runs out. In daemon
 * mode the daemon keeps renewing it until this client is freed, or for good if it is persistent.
 * @return NULL. Accepts NULL.
 */
PCPMAP_EXPORT pcpmap_mapping *pcpmap_mapping_abandon(pcpmap_mapping *m);

/**
 * Copies what is known about the mapping into ret, at most size bytes of it: the struct only ever grows at
 * its end, so a program built against an older header gets the fields it knows and nothing is written past
 * them. Call it through the pcpmap_mapping_get_info() macro, which passes sizeof(*ret).
 * @return 0, or -EINVAL for NULL arguments or a size below the first published struct.
 */
PCPMAP_EXPORT int pcpmap_mapping_get_info_sized(const pcpmap_mapping *m, struct pcpmap_mapping_info *ret,
						size_t size);
/** The first published form (the struct of version 0.1.0); kept for binaries built against it. */
PCPMAP_EXPORT int pcpmap_mapping_get_info(const pcpmap_mapping *m, struct pcpmap_mapping_info *ret);
#define pcpmap_mapping_get_info(m, ret) pcpmap_mapping_get_info_sized((m), (ret), sizeof(*(ret)))

/**
 * Blocking convenience for simple programs: starts a mapping and runs the client's loop until it is
 * MAPPED, fails for good, or timeout_ms passes. Built on pcpmap_client_get_fd(), pcpmap_client_get_timeout()
 * and pcpmap_client_process(); callbacks of other mappings keep running meanwhile.
 * @param ret_mapping receives the mapping on success (caller frees it); untouched on failure.
 * @param ret_info receives the mapping's info, on failure too (may be NULL).
 * @return 0 once mapped; -ETIMEDOUT; the mapping's error (e.g. -EACCES, -ECONNREFUSED); errors of
 *         pcpmap_mapping_new().
 */
PCPMAP_EXPORT int pcpmap_map_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
				  pcpmap_mapping **ret_mapping, struct pcpmap_mapping_info *ret_info);

/**
 * Deletes a mapping made earlier, possibly by another process, and waits for the gateway's answer: the
 * request names the mapping (protocol, internal port, family, third party) and, for PCP, carries the nonce
 * it was made with (the gateway refuses a delete with another nonce: -EACCES).
 * In daemon mode a mapping the daemon holds with that nonce (or those ports) is deleted by the daemon;
 * otherwise the daemon renews it with the nonce (the gateway's acceptance proves the nonce) and deletes it.
 * @param ret_info receives the outcome (may be NULL).
 * @return 0 when the gateway confirmed (daemon mode: when the daemon deleted it); -ETIMEDOUT; the gateway's
 *         or the daemon's refusal as a negative errno.
 */
PCPMAP_EXPORT int pcpmap_unmap_sync(pcpmap_client *c, const struct pcpmap_request *req, int timeout_ms,
				    struct pcpmap_mapping_info *ret_info);

#ifdef __cplusplus
}
#endif

#endif
