/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: port mapping lists (UPNP_GetListOfPortMappings()). */
#ifndef PORTLISTINGPARSE_H_INCLUDED
#define PORTLISTINGPARSE_H_INCLUDED

#include "miniupnpc_declspec.h"
#include "miniupnpctypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Elements of an IGD:2 port listing (kept for the type of PortMappingParserData::curelt). */
typedef enum {
	PortMappingEltNone,
	PortMappingEntry,
	NewRemoteHost,
	NewExternalPort,
	NewProtocol,
	NewInternalPort,
	NewInternalClient,
	NewEnabled,
	NewDescription,
	NewLeaseTime
} portMappingElt;

/** One mapping of a listing. */
struct PortMapping {
	struct PortMapping *l_next;
	UNSIGNED_INTEGER leaseTime;
	unsigned short externalPort;
	unsigned short internalPort;
	char remoteHost[64];
	char internalClient[64];
	char description[64];
	char protocol[4];
	unsigned char enabled;
};

/** A listing: a linked list from l_head, freed with FreePortListing(). */
struct PortMappingParserData {
	struct PortMapping *l_head;
	portMappingElt curelt;
};

/**
 * Parses an IGD:2 port listing (the NewPortListing XML of GetListOfPortMappings, bufsize bytes) into pdata,
 * appending one PortMapping per PortMappingEntry; pdata must be zeroed or hold an earlier listing.
 */
void ParsePortListing(const char *buffer, int bufsize, struct PortMappingParserData *pdata)
    PCPMAP_COMPAT_UPNP_LINK(ParsePortListing);

/** Frees the entries of a listing and empties it. */
void FreePortListing(struct PortMappingParserData *pdata) PCPMAP_COMPAT_UPNP_LINK(FreePortListing);

#ifdef __cplusplus
}
#endif

#endif
