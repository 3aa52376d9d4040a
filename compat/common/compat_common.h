/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_COMPAT_COMMON_H
#define PCPMAP_COMPAT_COMMON_H

/* Helpers shared by the libnatpmp and miniupnpc compatibility libraries. They use the public pcpmap API
 * only; every name here is hidden (the libraries export nothing but the emulated API). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pcpmap/pcpmap.h>

/* The emulated API functions: the only symbols the compat libraries export (with their version scripts). */
#define PCPMAP_EXPORT_COMPAT __attribute__((visibility("default")))

/* What the environment asks of a compat library (doc/COMPAT.md). */
struct pmc_env {
	int debug; /* PCPMAP_DEBUG: 0 silent, 1 one line per mapping event, 2 + pcpmap log, 3 + packets */
	uint32_t protocols; /* PCPMAP_COMPAT_PROTOCOLS, else the library's default */
	char gateway[64]; /* PCPMAP_GATEWAY ("addr", "addr:port", "[v6]:port"), empty for the default route */
	int timeout_ms;   /* PCPMAP_COMPAT_TIMEOUT_MS, else the library's default */
};

/* Reads the environment; bad values are ignored (with a line on stderr when debugging). */
void pmc_env_read(struct pmc_env *ret, uint32_t default_protocols, int default_timeout_ms);

/* "pcp,natpmp,upnp" (any order, '+' or ',' between) to a PCPMAP_PROTO_BIT() mask; -EINVAL when unparsable. */
int pmc_parse_protocols(const char *s, uint32_t *ret);

/* Fills a client configuration from the environment: gateway, protocols and, when debugging, a log and trace
 * callback printing to stderr prefixed with tag (a string that outlives the client). */
void pmc_client_config(struct pcpmap_client_config *cfg, const struct pmc_env *env, const char *tag);

/* One line on stderr: "tag: message". */
__attribute__((format(printf, 2, 3))) void pmc_debug(const char *tag, const char *fmt, ...);

/*
 * The PCP nonce of a mapping made through a compat library: derived from this machine's identity, the user,
 * the protocol, the internal port and the internal client, so a later process of the same user (natpmpc run
 * again, an application restarted) renews or deletes the same mapping, as NAT-PMP and UPnP allow, while
 * off-path hosts cannot guess it (RFC 6887 11.1: the nonce authenticates later requests).
 */
void pmc_nonce(uint8_t ret[12], uint8_t ip_proto, uint16_t internal_port, const char *internal_client);

/* Decimal port "1".."65535" ("0" too with allow_zero); -EINVAL otherwise. */
int pmc_parse_port(const char *s, bool allow_zero, uint16_t *ret);

/* Decimal 0..UINT32_MAX; -EINVAL otherwise. */
int pmc_parse_u32(const char *s, uint32_t *ret);

/* Splits "addr:port", "[v6]:port" or a bare address into the address and the port (0 when absent). */
int pmc_split_server(const char *server, char *host, size_t hostlen, uint16_t *ret_port);

/* Our address on the route to host (a connected UDP socket, nothing is sent): -errno on failure. */
int pmc_local_addr_for(const char *host, char *buf, size_t len);

/* Seconds from now until a pcpmap_now_usec() deadline, rounded up; 0 when past or unknown. */
uint32_t pmc_seconds_until(uint64_t deadline_usec);

#endif
