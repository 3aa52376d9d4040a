/* SPDX-License-Identifier: MIT */
/*
 * Discovery and the synthetic IGD. pcpmap does not need a device description: "discovering" is probing the
 * gateway (pcpmap_probe_sync()), and the device handed to the application describes what the probe found, as
 * URLs of the form pcpmap://GATEWAY/PROTOCOL/... (GATEWAY: the address pcpmap talks to; PROTOCOL: PCP,
 * NAT-PMP or UPnP, the one chosen at discovery). The commands accept these URLs and ignore them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "miniupnpc/miniupnpc.h"
#include "upnp_compat.h"
#include "private.h"

#define URL_SCHEME   "pcpmap://"
#define IGD_DEVICE   "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
#define SVC_IPCONN   "urn:schemas-upnp-org:service:WANIPConnection:1"
#define SVC_COMMONIF "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
#define SVC_IPV6FC   "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"

/* "pcpmap://HOST/PROTOCOL" for a probe result; IPv6 hosts in brackets. */
static int url_base(const struct pcpmap_probe_result *r, char *buf, size_t len)
{
	char host[64];
	if (pmc_split_server(r->gateway, host, sizeof(host), NULL) < 0)
		return -EINVAL;
	bool v6 = strchr(host, ':') != NULL;
	int n = snprintf(buf, len, URL_SCHEME "%s%s%s/%s", v6 ? "[" : "", host, v6 ? "]" : "",
			 pcpmap_proto_name(r->chosen));
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static struct UPNPDev *make_dev(const struct pcpmap_probe_result *r)
{
	char base[MINIUPNPC_URL_MAXSIZE], desc[MINIUPNPC_URL_MAXSIZE + 16], usn[MINIUPNPC_URL_MAXSIZE + 64];
	if (url_base(r, base, sizeof(base)) < 0)
		return NULL;
	snprintf(desc, sizeof(desc), "%s/rootDesc.xml", base);
	snprintf(usn, sizeof(usn), "uuid:pcpmap-%s::" IGD_DEVICE, r->gateway);
	size_t ld = strlen(desc) + 1, ls = sizeof(IGD_DEVICE), lu = strlen(usn) + 1;
	struct UPNPDev *d = calloc(1, sizeof(*d) + ld + ls + lu);
	if (!d)
		return NULL;
	d->descURL = d->buffer;
	memcpy(d->descURL, desc, ld);
	d->st = d->buffer + ld;
	memcpy(d->st, IGD_DEVICE, ls);
	d->usn = d->st + ls;
	memcpy(d->usn, usn, lu);
	d->scope_id = 0;
	return d;
}

static void set_service(struct IGDdatas_service *s, const char *type, const char *name, const char *scpd)
{
	snprintf(s->servicetype, sizeof(s->servicetype), "%s", type);
	snprintf(s->controlurl, sizeof(s->controlurl), "/ctl/%s", name);
	snprintf(s->eventsuburl, sizeof(s->eventsuburl), "/evt/%s", name);
	snprintf(s->scpdurl, sizeof(s->scpdurl), "/%s", scpd);
}

static char *join(const char *base, const char *path)
{
	size_t lb = strlen(base), lp = strlen(path);
	char *s = malloc(lb + lp + 1);
	if (s) {
		memcpy(s, base, lb);
		memcpy(s + lb, path, lp + 1);
	}
	return s;
}

static int fill_urls(struct UPNPUrls *urls, const struct IGDdatas *data)
{
	const char *b = data->urlbase;
	urls->controlURL = join(b, data->first.controlurl);
	urls->ipcondescURL = join(b, data->first.scpdurl);
	urls->controlURL_CIF = join(b, data->CIF.controlurl);
	urls->controlURL_6FC = join(b, data->IPv6FC.controlurl);
	urls->rootdescURL = join(b, "/rootDesc.xml");
	if (!urls->controlURL || !urls->ipcondescURL || !urls->controlURL_CIF || !urls->controlURL_6FC ||
	    !urls->rootdescURL) {
		FreeUPNPUrls(urls);
		return -ENOMEM;
	}
	return 0;
}

/* The synthetic IGD of the last probe. Lock held. */
static int fill_igd(struct UPNPUrls *urls, struct IGDdatas *data, char *lanaddr, int lanaddrlen)
{
	char base[MINIUPNPC_URL_MAXSIZE];
	struct IGDdatas d;
	if (url_base(&pmc_upc.probe, base, sizeof(base)) < 0)
		return -EINVAL;
	memset(&d, 0, sizeof(d));
	snprintf(d.urlbase, sizeof(d.urlbase), "%s", base);
	set_service(&d.first, SVC_IPCONN, "IPConn", "WANIPCn.xml");
	set_service(&d.CIF, SVC_COMMONIF, "CmnIfCfg", "WANCfg.xml");
	set_service(&d.IPv6FC, SVC_IPV6FC, "IP6FCtl", "WANIP6FC.xml");
	struct UPNPUrls u;
	memset(&u, 0, sizeof(u));
	int r = fill_urls(&u, &d);
	if (r < 0)
		return r;
	*urls = u;
	*data = d;
	if (lanaddr && lanaddrlen > 0)
		snprintf(lanaddr, (size_t)lanaddrlen, "%s", pmc_upc.lanaddr);
	if (pmc_upc.env.debug && pmc_upc.probe.external_is_private)
		pmc_debug(pmc_upc_tag,
			  "external address %s is private: another NAT upstream likely makes mappings "
			  "unreachable (miniupnpc would return 2 here; this library returns 1)",
			  pmc_upc.probe.external_addr);
	return 0;
}

static struct UPNPDev *discover(int delay, int *error)
{
	int err = UPNPDISCOVER_SUCCESS;
	struct UPNPDev *dev = NULL;
	int r = pmc_upc_lock();
	if (r < 0) {
		if (error)
			*error = r == -ENOMEM ? UPNPDISCOVER_MEMORY_ERROR : UPNPDISCOVER_SOCKET_ERROR;
		return NULL;
	}
	r = pmc_upc_probe(delay > 0 ? delay : 2000, true);
	if (r == 0 && pmc_upc.probe.chosen != PCPMAP_PROTO_NONE) {
		dev = make_dev(&pmc_upc.probe);
		if (!dev)
			err = UPNPDISCOVER_MEMORY_ERROR;
	} else if (r < 0 && r != -ENETUNREACH && r != -ENOENT) {
		err = r == -ENOMEM ? UPNPDISCOVER_MEMORY_ERROR : UPNPDISCOVER_UNKNOWN_ERROR;
	}
	pmc_upc_unlock();
	if (error)
		*error = err;
	return dev;
}

PCPMAP_EXPORT_COMPAT struct UPNPDev *upnpDiscover(int delay, const char *multicastif,
						  const char *minissdpdsock, int localport, int ipv6,
						  unsigned char ttl, int *error)
{
	(void)multicastif;
	(void)minissdpdsock;
	(void)localport;
	(void)ipv6;
	(void)ttl;
	return discover(delay, error);
}

PCPMAP_EXPORT_COMPAT struct UPNPDev *upnpDiscoverAll(int delay, const char *multicastif,
						     const char *minissdpdsock, int localport, int ipv6,
						     unsigned char ttl, int *error)
{
	return upnpDiscover(delay, multicastif, minissdpdsock, localport, ipv6, ttl, error);
}

PCPMAP_EXPORT_COMPAT struct UPNPDev *upnpDiscoverDevice(const char *device, int delay,
							const char *multicastif, const char *minissdpdsock,
							int localport, int ipv6, unsigned char ttl,
							int *error)
{
	(void)device;
	return upnpDiscover(delay, multicastif, minissdpdsock, localport, ipv6, ttl, error);
}

PCPMAP_EXPORT_COMPAT struct UPNPDev *upnpDiscoverDevices(const char *const deviceTypes[], int delay,
							 const char *multicastif, const char *minissdpdsock,
							 int localport, int ipv6, unsigned char ttl,
							 int *error, int searchalltypes)
{
	(void)deviceTypes;
	(void)searchalltypes;
	return upnpDiscover(delay, multicastif, minissdpdsock, localport, ipv6, ttl, error);
}

/* miniupnpc's SSDP search without minissdpd: here the same probe. */
PCPMAP_EXPORT_COMPAT struct UPNPDev *ssdpDiscoverDevices(const char *const deviceTypes[], int delay,
							 const char *multicastif, int localport, int ipv6,
							 unsigned char ttl, int *error, int searchalltypes)
{
	(void)deviceTypes;
	(void)multicastif;
	(void)localport;
	(void)ipv6;
	(void)ttl;
	(void)searchalltypes;
	return discover(delay, error);
}

PCPMAP_EXPORT_COMPAT void freeUPNPDevlist(struct UPNPDev *devlist)
{
	while (devlist) {
		struct UPNPDev *next = devlist->pNext;
		free(devlist);
		devlist = next;
	}
}

PCPMAP_EXPORT_COMPAT int UPNP_GetValidIGD(struct UPNPDev *devlist, struct UPNPUrls *urls,
					  struct IGDdatas *data, char *lanaddr, int lanaddrlen)
{
	struct UPNPDev *d;
	for (d = devlist; d; d = d->pNext)
		if (d->descURL && !strncmp(d->descURL, URL_SCHEME, sizeof(URL_SCHEME) - 1))
			break;
	if (!d || !urls || !data)
		return 0;
	if (pmc_upc_lock() < 0)
		return -1;
	int ret = 0;
	if (pmc_upc_probe(2000, false) == 0 && pmc_upc.probe.chosen != PCPMAP_PROTO_NONE)
		ret = fill_igd(urls, data, lanaddr, lanaddrlen) == 0 ? 1 : -1;
	pmc_upc_unlock();
	return ret;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetIGDFromUrl(const char *rootdescurl, struct UPNPUrls *urls,
					    struct IGDdatas *data, char *lanaddr, int lanaddrlen)
{
	(void)rootdescurl;
	if (!urls || !data)
		return 0;
	if (pmc_upc_lock() < 0)
		return 0;
	int ret = 0;
	if (pmc_upc_probe(2000, false) == 0 && pmc_upc.probe.chosen != PCPMAP_PROTO_NONE)
		ret = fill_igd(urls, data, lanaddr, lanaddrlen) == 0;
	pmc_upc_unlock();
	return ret;
}

PCPMAP_EXPORT_COMPAT void GetUPNPUrls(struct UPNPUrls *urls, struct IGDdatas *data, const char *descURL,
				      unsigned int scope_id)
{
	(void)descURL;
	(void)scope_id;
	if (!urls || !data)
		return;
	memset(urls, 0, sizeof(*urls));
	fill_urls(urls, data);
}

PCPMAP_EXPORT_COMPAT void FreeUPNPUrls(struct UPNPUrls *urls)
{
	if (!urls)
		return;
	free(urls->controlURL);
	urls->controlURL = NULL;
	free(urls->ipcondescURL);
	urls->ipcondescURL = NULL;
	free(urls->controlURL_CIF);
	urls->controlURL_CIF = NULL;
	free(urls->controlURL_6FC);
	urls->controlURL_6FC = NULL;
	free(urls->rootdescURL);
	urls->rootdescURL = NULL;
}

PCPMAP_EXPORT_COMPAT int UPNPIGD_IsConnected(struct UPNPUrls *urls, struct IGDdatas *data)
{
	(void)urls;
	(void)data;
	pthread_mutex_lock(&pmc_upc.lock);
	int r = pmc_upc.have_probe && pmc_upc.probe.chosen != PCPMAP_PROTO_NONE;
	pthread_mutex_unlock(&pmc_upc.lock);
	return r;
}
