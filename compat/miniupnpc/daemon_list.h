/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_COMPAT_UPNP_DAEMON_LIST_H
#define PCPMAP_COMPAT_UPNP_DAEMON_LIST_H

/* pcpmapd's table for this uid, through its control protocol (daemon_list.c). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One IPv4 port mapping pcpmapd holds for this uid. */
struct upc_daemon_row {
	uint32_t id;
	uint8_t ip_proto;
	uint16_t int_port;
	uint16_t ext_port;
	uint8_t state; /* enum pcpmap_state */
	bool persistent;
	bool third_party;
	uint32_t expires_in; /* seconds left of the gateway's grant */
	char int_addr[48];
	char desc[80];
};

/* LIST on the daemon's socket at path: the rows (malloc'ed, the caller frees them), or -errno (-ENOENT,
 * -ECONNREFUSED: no daemon; -ETIMEDOUT after 2 s of silence). */
int pmc_upc_daemon_list(const char *path, struct upc_daemon_row **ret, size_t *ret_n);
/* DELETE of mapping id: 0 once the daemon said OK, else -errno (-EPROTO: it refused). */
int pmc_upc_daemon_delete(const char *path, uint32_t id);

#endif
