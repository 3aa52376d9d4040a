/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: what an IGD description says (here: the synthetic IGD, doc/COMPAT.md). */
#ifndef IGD_DESC_PARSE_H_INCLUDED
#define IGD_DESC_PARSE_H_INCLUDED

#include "miniupnpc_declspec.h"

#define MINIUPNPC_URL_MAXSIZE (128)

/** One service of the device: URLs relative to IGDdatas::urlbase, and its service type URN. */
struct IGDdatas_service {
	char controlurl[MINIUPNPC_URL_MAXSIZE];
	char eventsuburl[MINIUPNPC_URL_MAXSIZE];
	char scpdurl[MINIUPNPC_URL_MAXSIZE];
	char servicetype[MINIUPNPC_URL_MAXSIZE];
};

/** The device. Applications pass first.servicetype to the UPNP_* commands. */
struct IGDdatas {
	char cureltname[MINIUPNPC_URL_MAXSIZE];
	char urlbase[MINIUPNPC_URL_MAXSIZE];
	char presentationurl[MINIUPNPC_URL_MAXSIZE];
	int level;
	struct IGDdatas_service CIF;    /**< WANCommonInterfaceConfig:1 */
	struct IGDdatas_service first;  /**< WANIPConnection:1 (the one the commands use) */
	struct IGDdatas_service second; /**< unused here: empty */
	struct IGDdatas_service IPv6FC; /**< WANIPv6FirewallControl:1 (pinholes) */
	struct IGDdatas_service tmp;    /**< scratch of the real parser: empty */
};

#ifdef __cplusplus
extern "C" {
#endif

/* The callbacks of parserootdesc()'s XML parser (data is a struct IGDdatas *), for applications that drive
 * miniupnpc's parser themselves: an element starts, ends, or has text (name/text and its length). */
void IGDstartelt(void *data, const char *name, int len) PCPMAP_COMPAT_UPNP_LINK(IGDstartelt);
void IGDendelt(void *data, const char *name, int len) PCPMAP_COMPAT_UPNP_LINK(IGDendelt);
void IGDdata(void *data, const char *text, int len) PCPMAP_COMPAT_UPNP_LINK(IGDdata);

#ifdef __cplusplus
}
#endif

#endif
