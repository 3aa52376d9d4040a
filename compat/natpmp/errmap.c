/* SPDX-License-Identifier: MIT */
/* pcpmap errors and protocol result codes to libnatpmp return codes. */
#include <errno.h>

#include "errmap.h"

/* libnatpmp's values (compat/natpmp/include/natpmp.h), repeated so this file stays pure. */
enum {
	NP_INVALIDARGS = -1,
	NP_SOCKETERROR = -2,
	NP_RECVFROM = -5,
	NP_NOGATEWAYSUPPORT = -7,
	NP_SENDERR = -10,
	NP_UNSUPPORTEDVERSION = -14,
	NP_UNSUPPORTEDOPCODE = -15,
	NP_UNDEFINEDERROR = -49,
	NP_NOTAUTHORIZED = -51,
	NP_NETWORKFAILURE = -52,
	NP_OUTOFRESOURCES = -53,
};

/* RFC 6886 3.5 */
static int np_from_natpmp(int code)
{
	switch (code) {
	case 1:
		return NP_UNSUPPORTEDVERSION;
	case 2:
		return NP_NOTAUTHORIZED;
	case 3:
		return NP_NETWORKFAILURE;
	case 4:
		return NP_OUTOFRESOURCES;
	case 5:
		return NP_UNSUPPORTEDOPCODE;
	default:
		return NP_UNDEFINEDERROR;
	}
}

/* RFC 6887 7.4: each PCP result code to the NAT-PMP code of the same meaning. */
static int np_from_pcp(int code)
{
	switch (code) {
	case 1: /* UNSUPP_VERSION */
		return NP_UNSUPPORTEDVERSION;
	case 2: /* NOT_AUTHORIZED */
		return NP_NOTAUTHORIZED;
	case 4: /* UNSUPP_OPCODE */
	case 9: /* UNSUPP_PROTOCOL: NAT-PMP has one opcode per protocol */
		return NP_UNSUPPORTEDOPCODE;
	case 7: /* NETWORK_FAILURE */
		return NP_NETWORKFAILURE;
	case 8:  /* NO_RESOURCES */
	case 10: /* USER_EX_QUOTA */
	case 11: /* CANNOT_PROVIDE_EXTERNAL */
	case 13: /* EXCESSIVE_REMOTE_PEERS */
		return NP_OUTOFRESOURCES;
	default: /* MALFORMED_*, UNSUPP_OPTION, ADDRESS_MISMATCH, unknown */
		return NP_UNDEFINEDERROR;
	}
}

/* UPnP IGD error codes (UPnP-gw-WANIPConnection). */
static int np_from_upnp(int code)
{
	switch (code) {
	case 606: /* Action not authorized */
		return NP_NOTAUTHORIZED;
	case 501: /* Action Failed */
		return NP_NETWORKFAILURE;
	case 718: /* ConflictInMappingEntry */
	case 728: /* NoPortMapsAvailable */
	case 729: /* ConflictWithOtherMechanisms */
		return NP_OUTOFRESOURCES;
	case 401: /* Invalid Action */
		return NP_UNSUPPORTEDOPCODE;
	default:
		return NP_UNDEFINEDERROR;
	}
}

static int np_from_errno(int err)
{
	switch (-err) {
	case EINVAL:
		return NP_INVALIDARGS;
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		return NP_SOCKETERROR;
	case EACCES:
	case EPERM:
		return NP_NOTAUTHORIZED;
	case EAGAIN:
		return NP_NETWORKFAILURE;
	case ENOSPC:
	case EADDRINUSE:
		return NP_OUTOFRESOURCES;
	case EPROTO:
	case EADDRNOTAVAIL:
		return NP_UNDEFINEDERROR;
	case ETIMEDOUT:
	case ECONNREFUSED:
	case EPROTONOSUPPORT:
	case EOPNOTSUPP:
	case EHOSTDOWN:
		return NP_NOGATEWAYSUPPORT;
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ENETDOWN:
		return NP_SENDERR;
	default:
		return NP_RECVFROM;
	}
}

int pmc_natpmp_error(int err, enum pcpmap_proto proto, int result_code)
{
	if (result_code != 0) {
		switch (proto) {
		case PCPMAP_PROTO_PCP:
			return np_from_pcp(result_code);
		case PCPMAP_PROTO_NATPMP:
			return np_from_natpmp(result_code);
		case PCPMAP_PROTO_UPNP:
			return np_from_upnp(result_code);
		case PCPMAP_PROTO_NONE:
			break;
		}
	}
	if (err >= 0)
		return err == 0 && result_code == 0 ? 0 : NP_UNDEFINEDERROR;
	return np_from_errno(err);
}

uint16_t pmc_natpmp_resultcode(int rc, enum pcpmap_proto proto, int result_code)
{
	if (proto == PCPMAP_PROTO_NATPMP && result_code > 0 && result_code <= 0xffff)
		return (uint16_t)result_code;
	if (result_code == 0)
		return 0;
	switch (rc) {
	case NP_UNSUPPORTEDVERSION:
		return 1;
	case NP_NOTAUTHORIZED:
		return 2;
	case NP_NETWORKFAILURE:
		return 3;
	case NP_OUTOFRESOURCES:
		return 4;
	case NP_UNSUPPORTEDOPCODE:
		return 5;
	default:
		return result_code > 0 && result_code <= 0xffff ? (uint16_t)result_code : 0;
	}
}
