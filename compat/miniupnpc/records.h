/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_COMPAT_UPNP_RECORDS_H
#define PCPMAP_COMPAT_UPNP_RECORDS_H

/* Records of the mappings made through the library, kept per user beyond the process (records.c). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct upc_record {
	uint8_t ip_proto;
	uint16_t ext_port;
	uint16_t int_port;
	bool third_party; /* the nonce was derived with int_client */
	time_t expires;   /* the end of the gateway's last grant known (wall clock) */
	uint32_t lease;   /* seconds the application asked, 0 for permanent */
	char int_client[48];
	char gateway[64];
	char desc[80];
};

/* Writes (replaces) the record of rec's protocol and external port. 0 or -errno. */
int pmc_upc_record_put(const struct upc_record *rec);
/* The record of that protocol and external port in this network namespace: 0, or -ENOENT (none, or expired:
 * then removed), or -errno. */
int pmc_upc_record_get(uint8_t ip_proto, uint16_t ext_port, struct upc_record *ret);
/* Removes the record, if any. */
void pmc_upc_record_del(uint8_t ip_proto, uint16_t ext_port);
/* Every unexpired record of this network namespace (malloc'ed array, the caller frees it). 0 or -errno. */
int pmc_upc_record_list(struct upc_record **ret, size_t *ret_n);

#endif
