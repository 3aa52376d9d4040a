/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_TYPES_H
#define PCPMAP_TYPES_H

/**
 * @file types.h
 * Types shared by every pcpmap header: the export macro, the opaque objects and the protocol list.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PCPMAP_BUILDING)
#define PCPMAP_EXPORT __attribute__((visibility("default")))
#else
#define PCPMAP_EXPORT
#endif

/** A client: one engine with its servers, sockets, timers and mappings. Not thread-safe. */
typedef struct pcpmap_client pcpmap_client;
/** One mapping (MAP or PEER) held by a client. */
typedef struct pcpmap_mapping pcpmap_mapping;

/** The protocol that carries a mapping or answered a probe. */
enum pcpmap_proto {
	PCPMAP_PROTO_NONE = 0,
	PCPMAP_PROTO_PCP = 1,    /**< Port Control Protocol, RFC 6887 */
	PCPMAP_PROTO_NATPMP = 2, /**< NAT Port Mapping Protocol, RFC 6886 */
	PCPMAP_PROTO_UPNP = 3,   /**< UPnP Internet Gateway Device */
};

/** Bit for one protocol in a protocol mask. */
#define PCPMAP_PROTO_BIT(p) (1u << (unsigned)(p))
/** Every protocol this library knows (a backend that was not built is skipped). */
#define PCPMAP_PROTOS_ALL                                                             \
	(PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) | PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP) | \
	 PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP))

/**
 * Name of a protocol: "PCP", "NAT-PMP", "UPnP" or "none".
 * @return a static string, never NULL.
 */
PCPMAP_EXPORT const char *pcpmap_proto_name(enum pcpmap_proto proto);

/**
 * Version of the library that is running (may differ from PCPMAP_VERSION_STRING, the headers' version).
 * @return a static string, never NULL.
 */
PCPMAP_EXPORT const char *pcpmap_version(void);

/**
 * Current time on the clock every pcpmap deadline uses (CLOCK_MONOTONIC), in microseconds.
 */
PCPMAP_EXPORT uint64_t pcpmap_now_usec(void);

#ifdef __cplusplus
}
#endif

#endif
