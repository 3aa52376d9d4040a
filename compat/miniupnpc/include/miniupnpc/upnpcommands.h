/* SPDX-License-Identifier: MIT */
/*
 * pcpmap's miniupnpc-compatible API: the IGD commands. Ports are decimal strings, protocols "TCP" or "UDP".
 * Returns: UPNPCOMMAND_SUCCESS (0), a negative UPNPCOMMAND_* code, or a positive UPnP error code (718
 * ConflictInMappingEntry, 606 Action not authorized, 714 NoSuchEntryInArray, ...; strupnperror() names
 * them). controlURL and servicetype are accepted and ignored: every command goes to the gateway pcpmap uses.
 * Mappings are those made through this library by this process (doc/COMPAT.md).
 */
#ifndef UPNPCOMMANDS_H_INCLUDED
#define UPNPCOMMANDS_H_INCLUDED

#include "miniupnpc_declspec.h"
#include "miniupnpctypes.h"

#define UPNPCOMMAND_SUCCESS          (0)
#define UPNPCOMMAND_UNKNOWN_ERROR    (-1)
#define UPNPCOMMAND_INVALID_ARGS     (-2)
#define UPNPCOMMAND_HTTP_ERROR       (-3) /* here: the gateway did not answer in time */
#define UPNPCOMMAND_INVALID_RESPONSE (-4)
#define UPNPCOMMAND_MEM_ALLOC_ERROR  (-5)

#ifdef __cplusplus
extern "C" {
#endif

struct PortMappingParserData;

/* Traffic counters: not available through PCP or NAT-PMP; these return 0. */
UNSIGNED_INTEGER UPNP_GetTotalBytesSent(const char *controlURL, const char *servicetype)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetTotalBytesSent);
UNSIGNED_INTEGER UPNP_GetTotalBytesReceived(const char *controlURL, const char *servicetype)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetTotalBytesReceived);
UNSIGNED_INTEGER UPNP_GetTotalPacketsSent(const char *controlURL, const char *servicetype)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetTotalPacketsSent);
UNSIGNED_INTEGER UPNP_GetTotalPacketsReceived(const char *controlURL, const char *servicetype)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetTotalPacketsReceived);

/**
 * status (64 bytes) gets "Connected" when a gateway answers (else "Disconnected"), uptime the server's epoch
 * (seconds since its state began), lastconnerror (64 bytes) "ERROR_NONE". Any pointer may be NULL.
 */
int UPNP_GetStatusInfo(const char *controlURL, const char *servicetype, char *status, unsigned int *uptime,
		       char *lastconnerror) PCPMAP_COMPAT_UPNP_LINK(UPNP_GetStatusInfo);

/** connectionType (64 bytes) gets "IP_Routed". */
int UPNP_GetConnectionTypeInfo(const char *controlURL, const char *servicetype, char *connectionType)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetConnectionTypeInfo);

/** extIpAdd (16 bytes) gets the external IPv4 address as text. */
int UPNP_GetExternalIPAddress(const char *controlURL, const char *servicetype, char *extIpAdd)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetExternalIPAddress);

/** Not available: returns 401 (Invalid Action). */
int UPNP_GetLinkLayerMaxBitRates(const char *controlURL, const char *servicetype, unsigned int *bitrateDown,
				 unsigned int *bitrateUp)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetLinkLayerMaxBitRates);

/**
 * Maps external port extPort to inClient:inPort, exactly that external port (718 when the gateway would give
 * another). desc NULL means "libminiupnpc"; leaseDuration NULL or "0" means as long as this process runs
 * (and a day after it ends); remoteHost NULL or "" means any remote host, else a PCP FILTER. Blocks until the
 * gateway answered (PCPMAP_COMPAT_TIMEOUT_MS, 8 s by default).
 */
int UPNP_AddPortMapping(const char *controlURL, const char *servicetype, const char *extPort,
			const char *inPort, const char *inClient, const char *desc, const char *proto,
			const char *remoteHost, const char *leaseDuration)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_AddPortMapping);

/** As UPNP_AddPortMapping() but the gateway may pick another external port; reservedPort (6 bytes) gets it. */
int UPNP_AddAnyPortMapping(const char *controlURL, const char *servicetype, const char *extPort,
			   const char *inPort, const char *inClient, const char *desc, const char *proto,
			   const char *remoteHost, const char *leaseDuration, char *reservedPort)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_AddAnyPortMapping);

/** Deletes a mapping made through this library and waits for the gateway; 714 when there is none. */
int UPNP_DeletePortMapping(const char *controlURL, const char *servicetype, const char *extPort,
			   const char *proto, const char *remoteHost)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_DeletePortMapping);

/** Deletes the mappings of proto with external ports in [extPortStart, extPortEnd]; 730 when there is none. */
int UPNP_DeletePortMappingRange(const char *controlURL, const char *servicetype, const char *extPortStart,
				const char *extPortEnd, const char *proto, const char *manage)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_DeletePortMappingRange);

/** The number of mappings made through this library that are alive. */
int UPNP_GetPortMappingNumberOfEntries(const char *controlURL, const char *servicetype,
				       unsigned int *numEntries)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetPortMappingNumberOfEntries);

/**
 * Looks a mapping up by external port and protocol: intClient (16 bytes), intPort (6), desc (80), enabled (4)
 * and leaseDuration (16, seconds left; "0" for a permanent lease) are filled; desc, enabled and leaseDuration
 * may be NULL. 714 when there is none.
 */
int UPNP_GetSpecificPortMappingEntry(const char *controlURL, const char *servicetype, const char *extPort,
				     const char *proto, const char *remoteHost, char *intClient,
				     char *intPort, char *desc, char *enabled, char *leaseDuration)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetSpecificPortMappingEntry);

/**
 * The index-th mapping (from "0", in the order they were made): extPort (6 bytes), intClient (16), intPort (6),
 * protocol (4), desc (80), enabled (4), rHost (64), duration (16); any output may be NULL. 713 past the end.
 */
int UPNP_GetGenericPortMappingEntry(const char *controlURL, const char *servicetype, const char *index,
				    char *extPort, char *intClient, char *intPort, char *protocol, char *desc,
				    char *enabled, char *rHost, char *duration)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetGenericPortMappingEntry);

/** The mappings of protocol with external ports in [startPort, endPort], at most numberOfPorts ("0": all). */
int UPNP_GetListOfPortMappings(const char *controlURL, const char *servicetype, const char *startPort,
			       const char *endPort, const char *protocol, const char *numberOfPorts,
			       struct PortMappingParserData *data)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetListOfPortMappings);

/** IPv6 pinholes are PCP MAP requests for IPv6: firewallEnabled and inboundPinholeAllowed get 1. */
int UPNP_GetFirewallStatus(const char *controlURL, const char *servicetype, int *firewallEnabled,
			   int *inboundPinholeAllowed) PCPMAP_COMPAT_UPNP_LINK(UPNP_GetFirewallStatus);

/** Not available: returns 401 (Invalid Action). */
int UPNP_GetOutboundPinholeTimeout(const char *controlURL, const char *servicetype, const char *remoteHost,
				   const char *remotePort, const char *intClient, const char *intPort,
				   const char *proto, int *opTimeout)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_GetOutboundPinholeTimeout);

/**
 * Opens an IPv6 pinhole to intClient:intPort (proto is the IP protocol number, "6" or "17") for leaseTime
 * seconds (1..86400), kept alive meanwhile; uniqueID (8 bytes) gets its identifier.
 */
int UPNP_AddPinhole(const char *controlURL, const char *servicetype, const char *remoteHost,
		    const char *remotePort, const char *intClient, const char *intPort, const char *proto,
		    const char *leaseTime, char *uniqueID) PCPMAP_COMPAT_UPNP_LINK(UPNP_AddPinhole);

/** Sets a pinhole's lease to leaseTime seconds from now; 704 when there is none. */
int UPNP_UpdatePinhole(const char *controlURL, const char *servicetype, const char *uniqueID,
		       const char *leaseTime) PCPMAP_COMPAT_UPNP_LINK(UPNP_UpdatePinhole);

/** Closes a pinhole and waits for the gateway; 704 when there is none. */
int UPNP_DeletePinhole(const char *controlURL, const char *servicetype, const char *uniqueID)
    PCPMAP_COMPAT_UPNP_LINK(UPNP_DeletePinhole);

/** isWorking gets 1 while the gateway holds the pinhole; 704 when there is none. */
int UPNP_CheckPinholeWorking(const char *controlURL, const char *servicetype, const char *uniqueID,
			     int *isWorking) PCPMAP_COMPAT_UPNP_LINK(UPNP_CheckPinholeWorking);

/** Not available: returns 401 (Invalid Action). */
int UPNP_GetPinholePackets(const char *controlURL, const char *servicetype, const char *uniqueID,
			   int *packets) PCPMAP_COMPAT_UPNP_LINK(UPNP_GetPinholePackets);

#ifdef __cplusplus
}
#endif

#endif
