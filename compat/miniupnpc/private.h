/* SPDX-License-Identifier: MIT */
/*
 * Functions libminiupnpc.so.17 exports without an installed header declaring them (its private headers
 * minixml.h, minissdpc.h, connecthostport.h, receivedata.h, minisoap.h, miniwget_private.h,
 * addr_is_reserved.h). The binary drop-in exports them under these names with the same signatures and
 * struct layouts, for programs that declared them themselves; libpcpmap-miniupnpc keeps them hidden.
 */
#ifndef PCPMAP_COMPAT_UPNP_PRIVATE_H
#define PCPMAP_COMPAT_UPNP_PRIVATE_H

#include "miniupnpc/upnpdev.h"

/* minixml.h: the callbacks get the element name (namespace prefix removed), text, attributes. */
struct xmlparser {
	const char *xmlstart;
	const char *xmlend;
	const char *xml;
	int xmlsize;
	void *data;
	void (*starteltfunc)(void *, const char *, int);
	void (*endeltfunc)(void *, const char *, int);
	void (*datafunc)(void *, const char *, int);
	void (*attfunc)(void *, const char *, int, const char *, int);
};
/* Parses xmlsize bytes from xmlstart, calling the non-NULL callbacks with data. */
void parsexml(struct xmlparser *p) PCPMAP_COMPAT_UPNP_LINK(parsexml);

/* minissdpc.h: minissdpd's Unix socket protocol. */
#define MINISSDPC_SUCCESS              (0)
#define MINISSDPC_UNKNOWN_ERROR        (-1)
#define MINISSDPC_SOCKET_ERROR         (-101)
#define MINISSDPC_MEMORY_ERROR         (-102)
#define MINISSDPC_INVALID_INPUT        (-103)
#define MINISSDPC_INVALID_SERVER_REPLY (-104)
struct UPNPDev *getDevicesFromMiniSSDPD(const char *devtype, const char *socketpath, int *error)
    PCPMAP_COMPAT_UPNP_LINK(getDevicesFromMiniSSDPD);
int connectToMiniSSDPD(const char *socketpath) PCPMAP_COMPAT_UPNP_LINK(connectToMiniSSDPD);
int disconnectFromMiniSSDPD(int s) PCPMAP_COMPAT_UPNP_LINK(disconnectFromMiniSSDPD);
int requestDevicesFromMiniSSDPD(int s, const char *devtype)
    PCPMAP_COMPAT_UPNP_LINK(requestDevicesFromMiniSSDPD);
struct UPNPDev *receiveDevicesFromMiniSSDPD(int s, int *error)
    PCPMAP_COMPAT_UPNP_LINK(receiveDevicesFromMiniSSDPD);
/* SSDP discovery: here the same probe as upnpDiscover(). */
struct UPNPDev *ssdpDiscoverDevices(const char *const deviceTypes[], int delay, const char *multicastif,
				    int localport, int ipv6, unsigned char ttl, int *error,
				    int searchalltypes) PCPMAP_COMPAT_UPNP_LINK(ssdpDiscoverDevices);

/* connecthostport.h, receivedata.h, minisoap.h, miniwget_private.h (SOCKET is int on POSIX). */
int connecthostport(const char *host, unsigned short port, unsigned int scope_id)
    PCPMAP_COMPAT_UPNP_LINK(connecthostport);
int receivedata(int socket, char *data, int length, int timeout, unsigned int *scope_id)
    PCPMAP_COMPAT_UPNP_LINK(receivedata);
int soapPostSubmit(int fd, const char *url, const char *host, unsigned short port, const char *action,
		   const char *body, const char *httpversion) PCPMAP_COMPAT_UPNP_LINK(soapPostSubmit);
void *getHTTPResponse(int s, int *size, int *status_code) PCPMAP_COMPAT_UPNP_LINK(getHTTPResponse);

/* addr_is_reserved.h: 1 when the IPv4 address (text) is private, shared, loopback, link-local, documentation,
 * multicast or otherwise not routable on the Internet (or unparsable), else 0. */
int addr_is_reserved(const char *addr_str) PCPMAP_COMPAT_UPNP_LINK(addr_is_reserved);

#endif
