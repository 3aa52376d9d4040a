/* SPDX-License-Identifier: MIT */
/*
 * A small miniupnpc application, written against the miniupnpc API only: the same source is built with the
 * real libminiupnpc (pkg-config miniupnpc) and with pcpmap's (pkg-config pcpmap-miniupnpc), see build-both.sh.
 *
 *   upnpc_app map tcp|udp EXTERNAL INTERNAL LEASE [CLIENT] [STOPFILE]
 *       discovers the IGD, prints the external address, adds the mapping for CLIENT (default: our LAN
 *       address), reads it back; with STOPFILE keeps running until STOPFILE exists, then deletes the mapping
 *       and checks it is gone.
 *   upnpc_app pinhole tcp|udp PORT LEASE CLIENT6 [STOPFILE]
 *       opens an IPv6 pinhole to [CLIENT6]:PORT (WANIPv6FirewallControl), checks it; with STOPFILE keeps it
 *       until STOPFILE exists, then deletes it.
 * Exit status: 0 success, 1 usage or local error, 2 the gateway refused (the code is printed), 3 no IGD.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

static int usage(void)
{
	fprintf(stderr, "usage: upnpc_app map tcp|udp EXTERNAL INTERNAL LEASE [CLIENT|-] [STOPFILE]\n"
			"       upnpc_app pinhole tcp|udp PORT LEASE CLIENT6 [STOPFILE]\n");
	return 1;
}

static int pinhole(struct UPNPUrls *urls, struct IGDdatas *data, const char *proto, const char *port,
		   const char *lease, const char *client, const char *stopfile)
{
	char id[8] = "";
	int enabled = -1, allowed = -1, working = -1;
	int r = UPNP_GetFirewallStatus(urls->controlURL_6FC, data->IPv6FC.servicetype, &enabled, &allowed);
	printf("firewall %d enabled %d inbound pinholes allowed %d\n", r, enabled, allowed);
	r = UPNP_AddPinhole(urls->controlURL_6FC, data->IPv6FC.servicetype, "empty", "0", client, port,
			    !strcmp(proto, "TCP") ? "6" : "17", lease, id);
	if (r != UPNPCOMMAND_SUCCESS) {
		printf("pinhole failed %d (%s)\n", r, strupnperror(r));
		return r > 0 ? 2 : 1;
	}
	r = UPNP_CheckPinholeWorking(urls->controlURL_6FC, data->IPv6FC.servicetype, id, &working);
	printf("pinhole %s [%s]:%s id %s check %d working %d\n", proto, client, port, id, r, working);
	fflush(stdout);
	if (!stopfile)
		return 0;
	while (access(stopfile, F_OK) != 0)
		usleep(100000);
	r = UPNP_DeletePinhole(urls->controlURL_6FC, data->IPv6FC.servicetype, id);
	printf("pinhole deleted %d (%s)\n", r, strupnperror(r));
	return r == UPNPCOMMAND_SUCCESS ? 0 : 2;
}

int main(int argc, char **argv)
{
	struct UPNPDev *devlist;
	struct UPNPUrls urls;
	struct IGDdatas data;
	char lanaddr[64] = "";
	char extaddr[40] = "";
	int error = 0;
	int r;

	if (argc < 6 || (strcmp(argv[1], "map") && strcmp(argv[1], "pinhole")))
		return usage();
	bool is_pinhole = !strcmp(argv[1], "pinhole");
	const char *proto = !strcmp(argv[2], "tcp") ? "TCP" : !strcmp(argv[2], "udp") ? "UDP" : NULL;
	if (!proto)
		return usage();
	const char *extport = argv[3], *inport = argv[4], *lease = argv[5];
	const char *client = argc > 6 && strcmp(argv[6], "-") ? argv[6] : NULL;
	const char *stopfile = argc > 7 ? argv[7] : NULL;
	if (is_pinhole) {
		/* pinhole tcp|udp PORT LEASE CLIENT6 [STOPFILE] */
		inport = argv[3];
		lease = argv[4];
		client = argv[5];
		stopfile = argc > 6 ? argv[6] : NULL;
	}

	devlist = upnpDiscover(2000, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &error);
	if (!devlist) {
		printf("no IGD found (error %d)\n", error);
		return 3;
	}
	for (struct UPNPDev *d = devlist; d; d = d->pNext)
		printf("device %s st %s\n", d->descURL, d->st);
	r = UPNP_GetValidIGD(devlist, &urls, &data, lanaddr, sizeof(lanaddr));
	freeUPNPDevlist(devlist);
	if (r == 0) {
		printf("no valid IGD\n");
		return 3;
	}
	/* 2: the IGD says it is not connected, or its external address is private; mappings may work anyway. */
	printf("igd %d control %s service %s lan %s\n", r, urls.controlURL, data.first.servicetype, lanaddr);
	if (is_pinhole) {
		r = pinhole(&urls, &data, proto, inport, lease, client, stopfile);
		FreeUPNPUrls(&urls);
		return r;
	}
	if (!client)
		client = lanaddr;

	r = UPNP_GetExternalIPAddress(urls.controlURL, data.first.servicetype, extaddr);
	if (r != UPNPCOMMAND_SUCCESS)
		printf("GetExternalIPAddress failed %d (%s)\n", r, strupnperror(r));
	else
		printf("external address %s\n", extaddr);

	r = UPNP_AddPortMapping(urls.controlURL, data.first.servicetype, extport, inport, client,
				"pcpmap compat test", proto, NULL, lease);
	if (r != UPNPCOMMAND_SUCCESS) {
		printf("add failed %d (%s)\n", r, strupnperror(r));
		FreeUPNPUrls(&urls);
		return r > 0 ? 2 : 1;
	}
	printf("mapped %s %s -> %s:%s\n", proto, extport, client, inport);

	char intClient[40], intPort[6], desc[80], enabled[4], duration[16];
	r = UPNP_GetSpecificPortMappingEntry(urls.controlURL, data.first.servicetype, extport, proto, NULL,
					     intClient, intPort, desc, enabled, duration);
	if (r != UPNPCOMMAND_SUCCESS) {
		printf("entry lookup failed %d (%s)\n", r, strupnperror(r));
		FreeUPNPUrls(&urls);
		return 2;
	}
	printf("entry %s:%s desc '%s' enabled %s lease %s\n", intClient, intPort, desc, enabled, duration);
	fflush(stdout);

	if (stopfile) {
		while (access(stopfile, F_OK) != 0)
			usleep(100000);
		r = UPNP_DeletePortMapping(urls.controlURL, data.first.servicetype, extport, proto, NULL);
		if (r != UPNPCOMMAND_SUCCESS) {
			printf("delete failed %d (%s)\n", r, strupnperror(r));
			FreeUPNPUrls(&urls);
			return 2;
		}
		printf("deleted %s %s\n", proto, extport);
		r = UPNP_GetSpecificPortMappingEntry(urls.controlURL, data.first.servicetype, extport, proto,
						     NULL, intClient, intPort, NULL, NULL, NULL);
		printf("entry after delete: %d (%s)\n", r, strupnperror(r));
		if (r == UPNPCOMMAND_SUCCESS) {
			FreeUPNPUrls(&urls);
			return 2;
		}
	}
	FreeUPNPUrls(&urls);
	return 0;
}
