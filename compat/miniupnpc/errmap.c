/* SPDX-License-Identifier: MIT */
/* pcpmap errors and protocol result codes to miniupnpc return codes. */
#include <errno.h>

#include "errmap.h"

/* miniupnpc's values (compat/miniupnpc/include/miniupnpc/upnpcommands.h), repeated so this file stays pure. */
enum {
	UC_UNKNOWN_ERROR = -1,
	UC_INVALID_ARGS = -2,
	UC_HTTP_ERROR = -3,
	UC_INVALID_RESPONSE = -4,
	UC_MEM_ALLOC_ERROR = -5,
};

/* UPnP error codes (UPnP-gw-WANIPConnection-v2). */
enum {
	UE_INVALID_ARGS = 402,
	UE_ACTION_FAILED = 501,
	UE_NOT_AUTHORIZED = 606,
	UE_CONFLICT = 718,
	UE_NO_PORT_MAPS = 728,
};

/* RFC 6887 7.4 */
static int up_from_pcp(int code)
{
	switch (code) {
	case 2: /* NOT_AUTHORIZED */
		return UE_NOT_AUTHORIZED;
	case 8:  /* NO_RESOURCES */
	case 10: /* USER_EX_QUOTA */
		return UE_NO_PORT_MAPS;
	case 11: /* CANNOT_PROVIDE_EXTERNAL: the port asked is not available */
		return UE_CONFLICT;
	case 9: /* UNSUPP_PROTOCOL */
		return UE_INVALID_ARGS;
	default: /* version, malformed, options, network failure, address mismatch, ... */
		return UE_ACTION_FAILED;
	}
}

/* RFC 6886 3.5 */
static int up_from_natpmp(int code)
{
	switch (code) {
	case 2: /* Not Authorized/Refused */
		return UE_NOT_AUTHORIZED;
	case 4: /* Out of resources */
		return UE_NO_PORT_MAPS;
	default: /* unsupported version or opcode, network failure */
		return UE_ACTION_FAILED;
	}
}

static int up_from_errno(int err)
{
	switch (-err) {
	case EADDRINUSE:
		return UE_CONFLICT;
	case EACCES:
	case EPERM:
		return UE_NOT_AUTHORIZED;
	case ENOSPC:
		return UE_NO_PORT_MAPS;
	case EAGAIN:
	case EADDRNOTAVAIL:
		return UE_ACTION_FAILED;
	case EINVAL:
		return UC_INVALID_ARGS;
	case ENOMEM:
		return UC_MEM_ALLOC_ERROR;
	case EPROTO:
	case EBADMSG:
		return UC_INVALID_RESPONSE;
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ENETDOWN:
	case EHOSTDOWN:
	case EPROTONOSUPPORT:
	case EOPNOTSUPP:
	case EINTR:
		return UC_HTTP_ERROR;
	default:
		return UC_UNKNOWN_ERROR;
	}
}

int pmc_upnp_error(int err, enum pcpmap_proto proto, int result_code, bool third_party)
{
	/* PREFER_FAILURE verified by pcpmap: the exact port was not available, whatever the server said. */
	if (err == -EADDRINUSE)
		return UE_CONFLICT;
	/* miniupnpd answers UNSUPP_OPTION to a THIRD_PARTY it does not allow (RFC 6887 13.1). */
	if (third_party && ((proto == PCPMAP_PROTO_PCP && result_code == 5) || err == -EOPNOTSUPP))
		return UE_NOT_AUTHORIZED;
	if (result_code != 0) {
		switch (proto) {
		case PCPMAP_PROTO_PCP:
			return up_from_pcp(result_code);
		case PCPMAP_PROTO_NATPMP:
			return up_from_natpmp(result_code);
		case PCPMAP_PROTO_UPNP:
			/* The IGD's own code, when it is one. */
			if (result_code >= 400 && result_code <= 999)
				return result_code;
			return UE_ACTION_FAILED;
		case PCPMAP_PROTO_NONE:
			break;
		}
	}
	if (err >= 0)
		return err == 0 && result_code == 0 ? 0 : UC_UNKNOWN_ERROR;
	return up_from_errno(err);
}
