/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: a small HTTP/1.1 GET, as miniupnpc's miniwget.h declares it. */
#ifndef MINIWGET_H_INCLUDED
#define MINIWGET_H_INCLUDED

#include "miniupnpc_declspec.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Fetches url ("http://host[:port]/path"; IPv6 hosts in brackets) with one HTTP GET and returns the body of
 * the answer, whatever its status (malloc'ed, the caller frees it; *size gets its length), or NULL when there
 * was no answer. status_code (may be NULL) gets the HTTP status, or -1. scope_id is the IPv6 interface for
 * link-local hosts. The synthetic IGD's "pcpmap://" URLs name no HTTP server: NULL, status -1.
 */
void *miniwget(const char *url, int *size, unsigned int scope_id, int *status_code)
    PCPMAP_COMPAT_UPNP_LINK(miniwget);

/**
 * As miniwget(); addr (addrlen bytes) also gets our local address of the connection as text ("" when there
 * was none).
 */
void *miniwget_getaddr(const char *url, int *size, char *addr, int addrlen, unsigned int scope_id,
		       int *status_code) PCPMAP_COMPAT_UPNP_LINK(miniwget_getaddr);

/**
 * Splits an "http://" (or "https://") URL as miniupnpc does: hostname (65 bytes) gets the host, cut to 64
 * bytes (IPv6 in brackets, as written), port the digits after ':' (80 when there is no ':'), path a pointer
 * into url at the first '/' after the host, and scope_id (may be NULL) the interface of an IPv6 "%25zone".
 * Returns 1, or 0 (nothing written) for another scheme or a URL without a path.
 */
int parseURL(const char *url, char *hostname, unsigned short *port, char **path, unsigned int *scope_id)
    PCPMAP_COMPAT_UPNP_LINK(parseURL);

#ifdef __cplusplus
}
#endif

#endif
