/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: discovered devices. */
#ifndef UPNPDEV_H_INCLUDED
#define UPNPDEV_H_INCLUDED

#include "miniupnpc_declspec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One discovered device; the strings live in buffer. A list is freed with freeUPNPDevlist(). */
struct UPNPDev {
	struct UPNPDev *pNext;
	char *descURL;
	char *st;
	char *usn;
	unsigned int scope_id;
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L
	char buffer[];
#else
	char buffer[0];
#endif
};

/** Frees a list returned by upnpDiscover() and friends. Accepts NULL. */
void freeUPNPDevlist(struct UPNPDev *devlist) PCPMAP_COMPAT_UPNP_LINK(freeUPNPDevlist);

#ifdef __cplusplus
}
#endif

#endif
