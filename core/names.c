/* Names and descriptions: protocols, states, events, errors, result codes. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <pcpmap/pcpmap.h>

#include "wire/pcp_wire.h"

PCPMAP_EXPORT const char *pcpmap_proto_name(enum pcpmap_proto proto)
{
	switch (proto) {
	case PCPMAP_PROTO_PCP:
		return "PCP";
	case PCPMAP_PROTO_NATPMP:
		return "NAT-PMP";
	case PCPMAP_PROTO_UPNP:
		return "UPnP";
	case PCPMAP_PROTO_NONE:
		break;
	}
	return "none";
}

PCPMAP_EXPORT const char *pcpmap_version(void)
{
	return PCPMAP_VERSION_STRING;
}

PCPMAP_EXPORT uint64_t pcpmap_now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

PCPMAP_EXPORT const char *pcpmap_state_name(enum pcpmap_state state)
{
	static const char *const names[] = {
		[PCPMAP_STATE_NOT_SENT] = "NOT_SENT",
		[PCPMAP_STATE_WAIT_RESP] = "WAIT_RESP",
		[PCPMAP_STATE_MAPPED] = "MAPPED",
		[PCPMAP_STATE_REFRESHING] = "REFRESHING",
		[PCPMAP_STATE_ERROR_WAIT_RESEND] = "ERROR_WAIT_RESEND",
		[PCPMAP_STATE_DELETING] = "DELETING",
		[PCPMAP_STATE_DELETED] = "DELETED",
		[PCPMAP_STATE_FAILED] = "FAILED",
	};
	if ((unsigned)state >= sizeof(names) / sizeof(names[0]))
		return "UNKNOWN";
	return names[state];
}

PCPMAP_EXPORT const char *pcpmap_event_name(enum pcpmap_event ev)
{
	switch (ev) {
	case PCPMAP_EVENT_MAPPED:
		return "MAPPED";
	case PCPMAP_EVENT_CHANGED:
		return "CHANGED";
	case PCPMAP_EVENT_LOST:
		return "LOST";
	case PCPMAP_EVENT_FAILED:
		return "FAILED";
	case PCPMAP_EVENT_DELETED:
		return "DELETED";
	}
	return "UNKNOWN";
}

PCPMAP_EXPORT const char *pcpmap_pair_method_name(enum pcpmap_pair_method m)
{
	switch (m) {
	case PCPMAP_PAIR_NONE:
		return "none";
	case PCPMAP_PAIR_PORT_RESERVATION:
		return "port-reservation";
	case PCPMAP_PAIR_PORT_SET:
		return "port-set";
	case PCPMAP_PAIR_TWO_MAPS:
		return "two-maps";
	}
	return "unknown";
}

PCPMAP_EXPORT const char *pcpmap_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "Success";
	case ETIMEDOUT:
		return "Connection timed out: the gateway did not answer";
	case ECONNREFUSED:
		return "Connection refused: no port-mapping server listens on the gateway";
	case EACCES:
		return "Refused by the gateway (not authorized)";
	case EADDRINUSE:
		return "The requested external port is not available";
	case EADDRNOTAVAIL:
		return "Address mismatch: a NAT sits between this host and the gateway";
	case ENETUNREACH:
		return "No route to a gateway";
	case EOPNOTSUPP:
		return "The gateway does not support this request";
	case EPROTONOSUPPORT:
		return "The gateway does not support this protocol or version";
	case EPROTO:
		return "Protocol error: the gateway rejected the request as malformed";
	case EAGAIN:
		return "The gateway is temporarily out of resources or network access";
	case ENOSPC:
		return "The mapping table is full";
	}
	const char *s = strerrordesc_np(err);
	return s ? s : "Unknown error";
}

static const char *const natpmp_names[] = { "Success",        "UnsupportedVersion", "NotAuthorized",
					    "NetworkFailure", "OutOfResources",     "UnsupportedOpcode" };

PCPMAP_EXPORT const char *pcpmap_result_name(enum pcpmap_proto proto, int code)
{
	switch (proto) {
	case PCPMAP_PROTO_PCP:
		if (code < 0 || code > 255)
			return "UNKNOWN";
		return pcp_result_name((uint8_t)code);
	case PCPMAP_PROTO_NATPMP:
		if (code >= 0 && (size_t)code < sizeof(natpmp_names) / sizeof(natpmp_names[0]))
			return natpmp_names[code];
		return "UNKNOWN";
	case PCPMAP_PROTO_UPNP:
		switch (code) {
		case 0:
			return "Success";
		case 401:
			return "InvalidAction";
		case 402:
			return "InvalidArgs";
		case 501:
			return "ActionFailed";
		case 606:
			return "ActionNotAuthorized";
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
			return "WildCardNotPermittedInSrcIP";
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
		}
		return "UNKNOWN";
	case PCPMAP_PROTO_NONE:
		break;
	}
	return "UNKNOWN";
}

PCPMAP_EXPORT const char *pcpmap_result_advice(enum pcpmap_proto proto, int code)
{
	if (proto == PCPMAP_PROTO_PCP) {
		switch (code) {
		case PCP_RES_NOT_AUTHORIZED:
			return "the gateway's policy denies this port or host (or the nonce differs from the "
			       "one the "
			       "mapping was made with); try a port above 1024 or check the gateway's rules";
		case PCP_RES_UNSUPP_OPCODE:
			return "the gateway does not implement this request type (PEER is often missing)";
		case PCP_RES_UNSUPP_OPTION:
			return "the gateway does not implement an option you asked for; drop it";
		case PCP_RES_NETWORK_FAILURE:
			return "the gateway has no external address yet; pcpmap retries";
		case PCP_RES_NO_RESOURCES:
		case PCP_RES_USER_EX_QUOTA:
			return "the gateway's mapping table or your quota is full; pcpmap retries";
		case PCP_RES_CANNOT_PROVIDE_EXTERNAL:
			return "the suggested external port or address is taken; suggest another or drop "
			       "--prefer-failure";
		case PCP_RES_ADDRESS_MISMATCH:
			return "another NAT sits between this host and the gateway; map on the outer gateway";
		case PCP_RES_EXCESSIVE_REMOTE_PEERS:
			return "too many filters; use fewer";
		case PCP_RES_MALFORMED_REQUEST:
		case PCP_RES_MALFORMED_OPTION:
			return "the gateway could not parse the request; run with -v and report it";
		}
		return "";
	}
	if (proto == PCPMAP_PROTO_NATPMP && code == 2)
		return "the gateway refuses NAT-PMP mappings for this host; check its configuration";
	if (proto == PCPMAP_PROTO_UPNP && code == 718)
		return "another host holds this external port; try another one";
	return "";
}
