/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_COMPAT_UPNP_ERRMAP_H
#define PCPMAP_COMPAT_UPNP_ERRMAP_H

/* pcpmap failures as miniupnpc return codes. Pure function (tests/unit/test_compat_errmap.c). */

#include <stdbool.h>

#include <pcpmap/types.h>

/*
 * What a miniupnpc command returns for a failed pcpmap request: a positive UPnP error code for refusals
 * (718 ConflictInMappingEntry, 606 Action not authorized, 728 NoPortMapsAvailable, 501 Action Failed, ...),
 * taken from the server's own result code when it answered (PCP, NAT-PMP or UPnP, by proto), else from the
 * negative errno err; a negative UPNPCOMMAND_* code for local failures and silence (-3 when no gateway
 * answered). 0 for success. third_party says the request was for another host (a THIRD_PARTY): a server that
 * refuses the option refuses that host, which UPnP calls 606.
 */
int pmc_upnp_error(int err, enum pcpmap_proto proto, int result_code, bool third_party);

#endif
