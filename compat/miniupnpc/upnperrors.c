/* SPDX-License-Identifier: MIT */
/* Names of miniupnpc return codes and UPnP IGD error codes (the names the UPnP specifications give). */
#include "miniupnpc/upnperrors.h"
#include "miniupnpc/upnpcommands.h"
#include "common/compat_common.h"

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
	case 701:
		return "PinholeSpaceExhausted";
	case 702:
		return "FirewallDisabled";
	case 703:
		return "InboundPinholeNotAllowed";
	case 704:
		return "NoSuchEntry";
	case 705:
		return "ProtocolNotSupported";
	case 706:
		return "InternalPortWildcardingNotAllowed";
	case 707:
		return "ProtocolWildcardingNotAllowed";
	case 708:
		return "InvalidLayer2Address";
	case 709:
		return "NoPacketSent";
	case 713:
		return "SpecifiedArrayIndexInvalid";
	case 714:
		return "NoSuchEntryInArray";
	case 715:
		return "WildCardNotPermittedInSrcIP";
	case 716:
		return "WildCardNotPermittedInExtPort";
	case 718:
		return "ConflictInMappingEntry";
	case 724:
		return "SamePortValuesRequired";
	case 725:
		return "OnlyPermanentLeasesSupported";
	case 726:
		return "RemoteHostOnlySupportsWildcard";
	case 727:
		return "ExternalPortOnlySupportsWildcard";
	case 728:
		return "NoPortMapsAvailable";
	case 729:
		return "ConflictWithOtherMechanisms";
	case 730:
		return "PortMappingNotFound";
	case 732:
		return "WildCardNotPermittedInIntPort";
	case 733:
		return "InconsistentParameters";
	default:
		return "UnknownError";
	}
}
