/* SPDX-License-Identifier: MIT */
/*
 * pcpmap's miniupnpc-compatible API (miniupnpc 2.2.4, API version 17, as Debian 12 ships it).
 *
 * Build an unchanged miniupnpc application against it with
 *     cc app.c $(pkg-config --cflags --libs pcpmap-miniupnpc)
 * and its port mappings become pcpmap mappings: PCP (RFC 6887) first, then NAT-PMP, then UPnP IGD through
 * pcpmap's own UPnP backend. "Discovery" finds the gateway pcpmap uses and describes it as one synthetic IGD
 * whose URLs start with "pcpmap://" (doc/COMPAT.md). A background thread keeps the mappings alive for their
 * lease. Differences from miniupnpc: doc/COMPAT.md.
 */
#ifndef MINIUPNPC_H_INCLUDED
#define MINIUPNPC_H_INCLUDED

#include "miniupnpc_declspec.h"
#include "igd_desc_parse.h"
#include "upnpdev.h"

/* upnpDiscover() error codes. */
#define UPNPDISCOVER_SUCCESS       (0)
#define UPNPDISCOVER_UNKNOWN_ERROR (-1)
#define UPNPDISCOVER_SOCKET_ERROR  (-101)
#define UPNPDISCOVER_MEMORY_ERROR  (-102)

/* The emulated miniupnpc. */
#define MINIUPNPC_VERSION     "2.2.4"
#define MINIUPNPC_API_VERSION 17

/* localport argument of upnpDiscover() (accepted and ignored: pcpmap picks its own ports). */
#define UPNP_LOCAL_PORT_ANY  0
#define UPNP_LOCAL_PORT_SAME 1

#ifdef __cplusplus
extern "C" {
#endif

/** One argument of a SOAP action: element name and value. */
struct UPNParg {
	const char *elt;
	const char *val;
};

/**
 * miniupnpc's raw SOAP call. The synthetic IGD has no SOAP endpoint: this always returns NULL (failure) and
 * sets *bufsize (may be NULL) to 0. Use the UPNP_* commands.
 */
char *simpleUPnPcommand(int s, const char *url, const char *service, const char *action, struct UPNParg *args,
			int *bufsize) PCPMAP_COMPAT_UPNP_LINK(simpleUPnPcommand);

/**
 * Finds the gateway and the protocol pcpmap will use (PCP, NAT-PMP or UPnP), waiting at most delay ms
 * (2000 when delay <= 0). Returns a one-element list describing it (free with freeUPNPDevlist()), or NULL
 * when no gateway answers; *error (may be NULL) gets UPNPDISCOVER_SUCCESS or an UPNPDISCOVER_* error.
 * multicastif, minissdpdsock, localport, ipv6 and ttl are accepted and ignored.
 */
struct UPNPDev *upnpDiscover(int delay, const char *multicastif, const char *minissdpdsock, int localport,
			     int ipv6, unsigned char ttl, int *error) PCPMAP_COMPAT_UPNP_LINK(upnpDiscover);

/** Same as upnpDiscover(). */
struct UPNPDev *upnpDiscoverAll(int delay, const char *multicastif, const char *minissdpdsock, int localport,
				int ipv6, unsigned char ttl, int *error)
    PCPMAP_COMPAT_UPNP_LINK(upnpDiscoverAll);

/** Same as upnpDiscover(); device is ignored. */
struct UPNPDev *upnpDiscoverDevice(const char *device, int delay, const char *multicastif,
				   const char *minissdpdsock, int localport, int ipv6, unsigned char ttl,
				   int *error) PCPMAP_COMPAT_UPNP_LINK(upnpDiscoverDevice);

/** Same as upnpDiscover(); deviceTypes and searchalltypes are ignored. */
struct UPNPDev *upnpDiscoverDevices(const char *const deviceTypes[], int delay, const char *multicastif,
				    const char *minissdpdsock, int localport, int ipv6, unsigned char ttl,
				    int *error, int searchalltypes)
    PCPMAP_COMPAT_UPNP_LINK(upnpDiscoverDevices);

/**
 * Parses an IGD's root description (buffer, bufsize bytes of XML) into data, as miniupnpc does: urlbase, the
 * WANCommonInterfaceConfig service into CIF, the first WANIPConnection or WANPPPConnection into first, a
 * second one into second, WANIPv6FirewallControl into IPv6FC. data is zeroed first.
 */
void parserootdesc(const char *buffer, int bufsize, struct IGDdatas *data)
    PCPMAP_COMPAT_UPNP_LINK(parserootdesc);

/**
 * URLs of the IGD. Here they are synthetic "pcpmap://GATEWAY/PROTOCOL/..." strings naming the gateway and the
 * protocol pcpmap chose at discovery; the commands accept and ignore them.
 */
struct UPNPUrls {
	char *controlURL;     /**< WANIPConnection control: pass it to the UPNP_* commands */
	char *ipcondescURL;   /**< WANIPConnection description */
	char *controlURL_CIF; /**< WANCommonInterfaceConfig control */
	char *controlURL_6FC; /**< WANIPv6FirewallControl control (pinholes) */
	char *rootdescURL;    /**< root description (the device's descURL) */
};

/**
 * Picks the IGD of a list from upnpDiscover(): fills urls and data (free urls with FreeUPNPUrls()) and lanaddr
 * (our address towards the gateway) and returns 1, or returns 0 (nothing touched) when the list holds no
 * gateway. Never returns 2 or 3: see doc/COMPAT.md.
 */
int UPNP_GetValidIGD(struct UPNPDev *devlist, struct UPNPUrls *urls, struct IGDdatas *data, char *lanaddr,
		     int lanaddrlen) PCPMAP_COMPAT_UPNP_LINK(UPNP_GetValidIGD);

/**
 * Skips discovery: fills urls, data and lanaddr for the gateway pcpmap uses and returns 1, or 0 when none
 * answers. rootdescurl is ignored (pcpmap uses the default gateway, or PCPMAP_GATEWAY).
 */
int UPNP_GetIGDFromUrl(const char *rootdescurl, struct UPNPUrls *urls, struct IGDdatas *data, char *lanaddr,
		       int lanaddrlen) PCPMAP_COMPAT_UPNP_LINK(UPNP_GetIGDFromUrl);

/** Fills urls for the gateway of data (from a previous GetValidIGD); descURL and scope_id are ignored. */
void GetUPNPUrls(struct UPNPUrls *urls, struct IGDdatas *data, const char *descURL, unsigned int scope_id)
    PCPMAP_COMPAT_UPNP_LINK(GetUPNPUrls);

/** Frees the strings of urls and sets them to NULL. Accepts NULL. */
void FreeUPNPUrls(struct UPNPUrls *urls) PCPMAP_COMPAT_UPNP_LINK(FreeUPNPUrls);

/** 1 when the last discovery found a gateway that answers, else 0. */
int UPNPIGD_IsConnected(struct UPNPUrls *urls, struct IGDdatas *data)
    PCPMAP_COMPAT_UPNP_LINK(UPNPIGD_IsConnected);

#ifdef __cplusplus
}
#endif

#endif
