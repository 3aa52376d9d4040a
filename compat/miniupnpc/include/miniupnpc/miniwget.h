/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: a small HTTP/1.1 GET, as miniupnpc's miniwget.h declares it. */
#ifndef MINIWGET_H_INCLUDED
#define MINIWGET_H_INCLUDED

#include "miniupnpc_declspec.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Fetches url ("http://host[:port]/path"; IPv6 hosts in brackets) with one HTTP GET and returns the body
 * (malloc'ed, the caller frees it; *size gets its length) when the server answered 200, else NULL. status_code
 * (may be NULL) gets the HTTP status, or -1 when there was no answer. scope_id is the IPv6 interface for
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
 * Splits an "http://" URL: hostname (at least 64 bytes) gets the host (IPv6 in brackets, as written), port the
 * port (80 when absent), path a pointer into url at the path ("/" when there is none: a static string), and
 * scope_id (may be NULL) the interface of an IPv6 "%zone". Returns 1 when the URL is usable, 0 otherwise.
 */
int parseURL(const char *url, char *hostname, unsigned short *port, char **path, unsigned int *scope_id)
    PCPMAP_COMPAT_UPNP_LINK(parseURL);

#ifdef __cplusplus
}
#endif

#endif
