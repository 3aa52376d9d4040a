/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_LOG_H
#define PCPMAP_LOG_H

/**
 * @file log.h
 * The library is silent: it reports only through the callbacks given in its configuration.
 */

#include <pcpmap/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Severity, with syslog's numbers. */
enum pcpmap_log_level {
	PCPMAP_LOG_ERR = 3,
	PCPMAP_LOG_WARNING = 4,
	PCPMAP_LOG_NOTICE = 5,
	PCPMAP_LOG_INFO = 6,
	PCPMAP_LOG_DEBUG = 7,
};

/**
 * Receives one log line (no trailing newline). msg is valid only during the call.
 * Unlike every other callback of this library, userdata comes first here and in pcpmap_trace_fn (the
 * first ABI had it so; doc/CODING_STYLE.md).
 */
typedef void (*pcpmap_log_fn)(void *userdata, enum pcpmap_log_level level, const char *msg);

/**
 * Receives every protocol packet sent or received, with a readable decoding.
 * @param sent true for packets this client sent.
 * @param peer the server, as "addr:port".
 * @param bytes raw datagram (len bytes); valid only during the call.
 * @param decoded one line describing the packet; valid only during the call.
 */
typedef void (*pcpmap_trace_fn)(void *userdata, bool sent, enum pcpmap_proto proto, const char *peer,
				const uint8_t *bytes, size_t len, const char *decoded);

#ifdef __cplusplus
}
#endif

#endif
