/* SPDX-License-Identifier: MIT */
/*
 * The ABI facts of the miniupnpc headers an application compiles against: the size and offset of every member
 * of every public struct, and the value of every public constant. Compiled twice, once against Debian's
 * headers (LAYOUT_TABLE=layout_real) and once against pcpmap's (LAYOUT_TABLE=layout_ours);
 * test_miniupnpc_layout compares the two tables entry by entry.
 */
#include <stddef.h>
#include <stdlib.h>

#include "miniupnpc.h"
#include "miniupnpctypes.h"
#include "miniwget.h"
#include "portlistingparse.h"
#include "upnpcommands.h"
#include "upnperrors.h"
#include "upnpreplyparse.h"

#include "miniupnpc_layout.h"

#define MEMBER(T, m)                                                       \
	{ #T "." #m " offset", (long long)offsetof(T, m), NULL },          \
	{                                                                  \
#T "." #m " size", (long long)sizeof(((T *)NULL)->m), NULL \
	}
#define FLEX(T, m)                                                   \
	{                                                            \
#T "." #m " offset", (long long)offsetof(T, m), NULL \
	}
#define SIZE(T)                                          \
	{                                                \
		"sizeof " #T, (long long)sizeof(T), NULL \
	}
#define CONST(c)                         \
	{                                \
#c, (long long)(c), NULL \
	}
#define STRING(c)        \
	{                \
#c, 0, c \
	}
#define STRINGIFY_(x) #x
#define SPELLING(c)                              \
	{                                        \
#c " spelling", 0, STRINGIFY_(c) \
	}

const struct layout_entry LAYOUT_TABLE[] = {
	SIZE(struct UPNPDev),
	MEMBER(struct UPNPDev, pNext),
	MEMBER(struct UPNPDev, descURL),
	MEMBER(struct UPNPDev, st),
	MEMBER(struct UPNPDev, usn),
	MEMBER(struct UPNPDev, scope_id),
	FLEX(struct UPNPDev, buffer),
	SIZE(struct UPNPUrls),
	MEMBER(struct UPNPUrls, controlURL),
	MEMBER(struct UPNPUrls, ipcondescURL),
	MEMBER(struct UPNPUrls, controlURL_CIF),
	MEMBER(struct UPNPUrls, controlURL_6FC),
	MEMBER(struct UPNPUrls, rootdescURL),
	SIZE(struct UPNParg),
	MEMBER(struct UPNParg, elt),
	MEMBER(struct UPNParg, val),
	SIZE(struct IGDdatas_service),
	MEMBER(struct IGDdatas_service, controlurl),
	MEMBER(struct IGDdatas_service, eventsuburl),
	MEMBER(struct IGDdatas_service, scpdurl),
	MEMBER(struct IGDdatas_service, servicetype),
	SIZE(struct IGDdatas),
	MEMBER(struct IGDdatas, cureltname),
	MEMBER(struct IGDdatas, urlbase),
	MEMBER(struct IGDdatas, presentationurl),
	MEMBER(struct IGDdatas, level),
	MEMBER(struct IGDdatas, CIF),
	MEMBER(struct IGDdatas, first),
	MEMBER(struct IGDdatas, second),
	MEMBER(struct IGDdatas, IPv6FC),
	MEMBER(struct IGDdatas, tmp),
	SIZE(struct NameValue),
	MEMBER(struct NameValue, l_next),
	MEMBER(struct NameValue, name),
	MEMBER(struct NameValue, value),
	SIZE(struct NameValueParserData),
	MEMBER(struct NameValueParserData, l_head),
	MEMBER(struct NameValueParserData, curelt),
	MEMBER(struct NameValueParserData, portListing),
	MEMBER(struct NameValueParserData, portListingLength),
	MEMBER(struct NameValueParserData, topelt),
	MEMBER(struct NameValueParserData, cdata),
	MEMBER(struct NameValueParserData, cdatalen),
	SIZE(struct PortMapping),
	MEMBER(struct PortMapping, l_next),
	MEMBER(struct PortMapping, leaseTime),
	MEMBER(struct PortMapping, externalPort),
	MEMBER(struct PortMapping, internalPort),
	MEMBER(struct PortMapping, remoteHost),
	MEMBER(struct PortMapping, internalClient),
	MEMBER(struct PortMapping, description),
	MEMBER(struct PortMapping, protocol),
	MEMBER(struct PortMapping, enabled),
	SIZE(struct PortMappingParserData),
	MEMBER(struct PortMappingParserData, l_head),
	MEMBER(struct PortMappingParserData, curelt),
	SIZE(portMappingElt),
	CONST(PortMappingEltNone),
	CONST(PortMappingEntry),
	CONST(NewRemoteHost),
	CONST(NewExternalPort),
	CONST(NewProtocol),
	CONST(NewInternalPort),
	CONST(NewInternalClient),
	CONST(NewEnabled),
	CONST(NewDescription),
	CONST(NewLeaseTime),
	SIZE(UNSIGNED_INTEGER),
	SPELLING(UNSIGNED_INTEGER),
	SPELLING(STRTOUI),
	CONST(MINIUPNPC_URL_MAXSIZE),
	CONST(MINIUPNPC_API_VERSION),
	STRING(MINIUPNPC_VERSION),
	CONST(UPNPDISCOVER_SUCCESS),
	CONST(UPNPDISCOVER_UNKNOWN_ERROR),
	CONST(UPNPDISCOVER_SOCKET_ERROR),
	CONST(UPNPDISCOVER_MEMORY_ERROR),
	CONST(UPNP_LOCAL_PORT_ANY),
	CONST(UPNP_LOCAL_PORT_SAME),
	CONST(UPNPCOMMAND_SUCCESS),
	CONST(UPNPCOMMAND_UNKNOWN_ERROR),
	CONST(UPNPCOMMAND_INVALID_ARGS),
	CONST(UPNPCOMMAND_HTTP_ERROR),
	CONST(UPNPCOMMAND_INVALID_RESPONSE),
	CONST(UPNPCOMMAND_MEM_ALLOC_ERROR),
	{ NULL, 0, NULL },
};
