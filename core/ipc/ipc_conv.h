/* SPDX-License-Identifier: MIT */
/*
 * The public API's structs and the control protocol's messages, converted once for every side that speaks
 * it: the library's daemon mode, pcpmapd, and the daemon's client helpers (daemon/ipc_client.c). Pure: no
 * clock (times are passed in, in the caller's microseconds), no sockets.
 */
#ifndef PCPMAP_CORE_IPC_CONV_H
#define PCPMAP_CORE_IPC_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include <pcpmap/pcpmap.h>

#include "ipc/ipc.h"

/*
 * A CREATE message from a public request: every field the request sets, the nonce when it gives one, the
 * pair's second nonce (NONCE2) and ALLOW_DEGRADE when set, PERSISTENT. Fields of a struct older than the
 * caller's size are read as unset. No sequence number, no WAIT_MS.
 * @return 0; -EINVAL when a field cannot be carried (a string too long or not clean UTF-8, too many
 *         filters, an unknown family); *ret_what (may be NULL) then names it. ret is complete only on 0.
 */
int pmd_conv_create_from_request(const struct pcpmap_request *req, struct pmd_ipc_msg *ret,
				 const char **ret_what);

/* Sets the presence bits of m->req's fields that hold a value (KIND, IP_PROTO, INTERNAL_PORT and FAMILY
 * always; NONCE is the caller's to set). */
void pmd_conv_set_req_bits(struct pmd_ipc_msg *m);

/*
 * Back to a public request (the daemon making the mapping): strings and filters point into q, which must
 * outlive r; filters has room for PMD_IPC_MAX_FILTERS. nonce and nonce2 (may be NULL) are the nonces to
 * use.
 */
void pmd_conv_request_from_req(const struct pmd_ipc_req *q, const uint8_t *nonce, const uint8_t *nonce2,
			       struct pcpmap_request *r, struct pcpmap_filter *filters);

/*
 * A mapping's info into the state attributes of a MAPPING or EVENT (STATE, PROTO, addresses, ports, the
 * times left from now_us, EPOCH, ERRNO, RESULT_CODE, EXTERNAL_PRIVATE; LIFETIME when granted). The request
 * fields, ID, OWNER_UID and NONCE are the caller's.
 */
void pmd_conv_msg_from_info(const struct pcpmap_mapping_info *info, uint64_t now_us, struct pmd_ipc_msg *m);

/*
 * A MAPPING or EVENT into a mapping's info, the relative seconds put on now_us. lifetime is the message's
 * (requested until granted); the nonce when carried; detail empty (the protocol does not carry it).
 */
void pmd_conv_info_from_msg(const struct pmd_ipc_msg *msg, uint64_t now_us, struct pcpmap_mapping_info *ret);

/* One protocol's probe answer, both ways. */
void pmd_conv_server_to_msg(const struct pcpmap_server_info *s, struct pmd_ipc_server *ret);
void pmd_conv_server_from_msg(const struct pmd_ipc_server *s, struct pcpmap_server_info *ret);

/* A probe result into a PROBE_RESULT's attributes (the caller has initialised m), and back. */
void pmd_conv_probe_to_msg(const struct pcpmap_probe_result *r, struct pmd_ipc_msg *m);
void pmd_conv_probe_from_msg(const struct pmd_ipc_msg *msg, struct pcpmap_probe_result *ret);

/* Whole seconds from now until when, rounded up; 0 when past; capped at UINT32_MAX. */
uint32_t pmd_conv_secs_until(uint64_t when_us, uint64_t now_us);

#endif
