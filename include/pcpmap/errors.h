/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_ERRORS_H
#define PCPMAP_ERRORS_H

/**
 * @file errors.h
 * Errors. Every fallible pcpmap function returns an int: >= 0 on success, a negative errno on failure.
 * Protocol result codes (PCP 0-13, NAT-PMP 0-5, UPnP 7xx) never travel in return values; they come in
 * struct pcpmap_mapping_info::result_code, beside the errno that summarises them.
 *
 * Errnos with a pcpmap meaning:
 * - ETIMEDOUT: the gateway never answered within the allowed time.
 * - ECONNREFUSED: the gateway answered with ICMP port unreachable: no server listens there now.
 * - EACCES: the gateway refused (PCP NOT_AUTHORIZED, NAT-PMP 2, UPnP 606/718...).
 * - EPROTO: the gateway rejected our request as malformed, or answered something we cannot use.
 * - EOPNOTSUPP: the gateway does not support the operation, opcode, option or protocol.
 * - EADDRINUSE: PREFER_FAILURE (or a port pair) could not get the suggested external port.
 * - EAGAIN: a transient gateway condition (NO_RESOURCES, NETWORK_FAILURE, USER_EX_QUOTA); pcpmap retries.
 * - ENETUNREACH: there is no route to any gateway.
 * - EADDRNOTAVAIL: ADDRESS_MISMATCH: a NAT sits between this host and the gateway.
 * - ENOSPC: the client's mapping table is full.
 */

#include <pcpmap/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Describes an error returned by pcpmap (negative or positive errno).
 * @return a static string, never NULL; thread-safe.
 */
PCPMAP_EXPORT const char *pcpmap_strerror(int err);

/**
 * The protocol's own name of a result code, e.g. "NOT_AUTHORIZED" for PCP 2, "OutOfResources" for NAT-PMP 4,
 * "ConflictInMappingEntry" for UPnP 718.
 * @return a static string, never NULL ("UNKNOWN" for codes the protocol does not define).
 */
PCPMAP_EXPORT const char *pcpmap_result_name(enum pcpmap_proto proto, int code);

/**
 * One sentence on what a user can do about a result code.
 * @return a static string, never NULL (empty when there is no advice).
 */
PCPMAP_EXPORT const char *pcpmap_result_advice(enum pcpmap_proto proto, int code);

#ifdef __cplusplus
}
#endif

#endif
