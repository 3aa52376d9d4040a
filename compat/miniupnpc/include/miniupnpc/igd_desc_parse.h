/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: what an IGD description says (here: the synthetic IGD, doc/COMPAT.md). */
#ifndef IGD_DESC_PARSE_H_INCLUDED
#define IGD_DESC_PARSE_H_INCLUDED

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

#endif
