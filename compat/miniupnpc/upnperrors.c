/* SPDX-License-Identifier: MIT */
/* Names of miniupnpc return codes and UPnP IGD error codes (the names the UPnP specifications give). */
#include "miniupnpc/upnperrors.h"
#include "miniupnpc/upnpcommands.h"
#include "common/compat_common.h"

#include <string.h>

#include <pcpmap/pcpmap.h>

PCPMAP_EXPORT_COMPAT const char *strupnperror(int err)
{
	switch (err) {
	case UPNPCOMMAND_SUCCESS:
		return "Success";
	case UPNPCOMMAND_UNKNOWN_ERROR:
		return "pcpmap-miniupnpc: unknown error";
	case UPNPCOMMAND_INVALID_ARGS:
		return "pcpmap-miniupnpc: invalid arguments";
	case UPNPCOMMAND_HTTP_ERROR:
		return "pcpmap-miniupnpc: the gateway did not answer";
	case UPNPCOMMAND_INVALID_RESPONSE:
		return "pcpmap-miniupnpc: invalid response";
	case UPNPCOMMAND_MEM_ALLOC_ERROR:
		return "pcpmap-miniupnpc: out of memory";
	case 401:
		return "Invalid Action";
	case 402:
		return "Invalid Args";
	case 501:
		return "Action Failed";
	case 606:
		return "Action not authorized";
	case 708:
		return "InvalidLayer2Address"; /* miniupnpc's name; the IGD specification's differs */
	default:
		break;
	}
	/* The 7xx names are the ones libpcpmap reports. */
	const char *name = pcpmap_result_name(PCPMAP_PROTO_UPNP, err);
	return err >= 700 && err < 800 && strcmp(name, "UNKNOWN") != 0 ? name : "UnknownError";
}
