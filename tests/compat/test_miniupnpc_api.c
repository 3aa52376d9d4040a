/* SPDX-License-Identifier: MIT */
/*
 * libpcpmap-miniupnpc through its exported API, as an application sees it: argument checks and return codes
 * of miniupnpc 2.2.4, the synthetic IGD, and whole exchanges with a scripted PCP server on 127.0.0.1
 * (fake_pcp.h): add, look up, list, re-add, delete, the UPnP codes of refusals (718, 606, 728, 501), silence,
 * and the background thread (renewals nobody asked for, leases that end).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "miniupnpc/miniupnpc.h"
#include "miniupnpc/upnpcommands.h"
#include "miniupnpc/upnperrors.h"
#include "miniupnpc/portlistingparse.h"
#include "fake_pcp.h"

static struct fake_pcp fake;
static struct UPNPUrls urls;
static struct IGDdatas data;
static char lan[64];

#define CTL (urls.controlURL)
#define ST  (data.first.servicetype)

static int reset(void **state)
{
	(void)state;
	atomic_store(&fake.result, 0);
	atomic_store(&fake.silent, 0);
	atomic_store(&fake.port_shift, 0);
	atomic_store(&fake.max_life, 3600);
	return 0;
}

static void test_invalid_args(void **state)
{
	char buf[64], port[6], c[16], p[6], d[80], e[4], l[16];
	unsigned n;
	struct UPNPUrls u;
	struct IGDdatas dd;
	(void)state;
	const char *ctl = "pcpmap://x/PCP/ctl/IPConn", *st = "urn:schemas-upnp-org:service:WANIPConnection:1";
	/* No device: 0, and nothing touched (as miniupnpc). */
	memset(&u, 0x55, sizeof(u));
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(UPNP_GetValidIGD(NULL, &u, &dd, buf, sizeof(buf)), 0);
	assert_true(u.controlURL == (char *)(uintptr_t)0x5555555555555555ull);
	assert_int_equal(buf[0], 'x');

	assert_int_equal(UPNP_AddPortMapping(ctl, st, NULL, "1", "127.0.0.1", NULL, "TCP", NULL, NULL), -2);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", NULL, "127.0.0.1", NULL, "TCP", NULL, NULL), -2);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "1", NULL, NULL, "TCP", NULL, NULL), -2);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "1", "127.0.0.1", NULL, NULL, NULL, NULL), -2);
	assert_int_equal(
	    UPNP_AddAnyPortMapping(ctl, st, "1", "1", "127.0.0.1", NULL, "TCP", NULL, NULL, NULL), -2);
	/* Values the IGD would refuse: UPnP codes. */
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "1", "127.0.0.1", NULL, "SCTP", NULL, NULL), 402);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "70000", "1", "127.0.0.1", NULL, "TCP", NULL, NULL),
			 402);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "0", "127.0.0.1", NULL, "TCP", NULL, NULL), 402);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "1", "host.example", NULL, "TCP", NULL, NULL),
			 402);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "1", "127.0.0.1", NULL, "TCP", NULL, "1h"), 402);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "1", "1", "127.0.0.1", NULL, "TCP", "peer", NULL), 402);
	assert_int_equal(UPNP_AddPortMapping(ctl, st, "0", "1", "127.0.0.1", NULL, "TCP", NULL, NULL), 716);

	assert_int_equal(UPNP_DeletePortMapping(ctl, st, NULL, "TCP", NULL), -2);
	assert_int_equal(UPNP_DeletePortMapping(ctl, st, "1", NULL, NULL), -2);
	assert_int_equal(UPNP_DeletePortMapping(ctl, st, "x", "TCP", NULL), 402);
	assert_int_equal(UPNP_DeletePortMappingRange(ctl, st, "10", "5", "TCP", "0"), 402);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(ctl, st, "1", "TCP", NULL, NULL, p, d, e, l), -2);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(ctl, st, "1", "TCP", NULL, c, NULL, d, e, l), -2);
	assert_int_equal(UPNP_GetGenericPortMappingEntry(ctl, st, NULL, port, c, p, buf, d, e, buf, l), -2);
	assert_int_equal(UPNP_GetGenericPortMappingEntry(ctl, st, "first", port, c, p, buf, d, e, buf, l),
			 402);
	assert_int_equal(UPNP_GetExternalIPAddress(ctl, st, NULL), -2);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(ctl, st, NULL), -2);
	assert_int_equal(UPNP_GetListOfPortMappings(ctl, st, "0", "65535", "TCP", "0", NULL), -2);
	assert_int_equal(UPNP_GetConnectionTypeInfo(ctl, st, NULL), -2);
	assert_int_equal(UPNP_GetLinkLayerMaxBitRates(ctl, st, &n, &n), 401);

	assert_int_equal(UPNP_AddPinhole(ctl, st, "", "0", "fd00::1", "80", "6", "60", NULL), -2);
	assert_int_equal(UPNP_AddPinhole(ctl, st, "", "0", "fd00::1", "80", "1", "60", buf), 705);
	assert_int_equal(UPNP_AddPinhole(ctl, st, "", "0", "fd00::1", "0", "6", "60", buf), 706);
	assert_int_equal(UPNP_AddPinhole(ctl, st, "", "0", "fd00::1", "80", "6", "0", buf), 402);
	assert_int_equal(UPNP_AddPinhole(ctl, st, "", "0", "fd00::1", "80", "6", "86401", buf), 402);
	assert_int_equal(UPNP_AddPinhole(ctl, st, "", "0", "10.0.0.1", "80", "6", "60", buf), 402);
	assert_int_equal(UPNP_UpdatePinhole(ctl, st, "12345", "60"), 704);
	assert_int_equal(UPNP_DeletePinhole(ctl, st, "12345"), 704);
	int w;
	assert_int_equal(UPNP_CheckPinholeWorking(ctl, st, "12345", &w), 704);
	assert_int_equal(UPNP_GetPinholePackets(ctl, st, "1", &w), 401);
	int fw = 0, in = 0;
	assert_int_equal(UPNP_GetFirewallStatus(ctl, st, &fw, &in), 0);
	assert_int_equal(fw, 1);
	assert_int_equal(in, 1);
}

static void test_strupnperror(void **state)
{
	(void)state;
	assert_string_equal(strupnperror(0), "Success");
	assert_string_equal(strupnperror(402), "Invalid Args");
	assert_string_equal(strupnperror(606), "Action not authorized");
	assert_string_equal(strupnperror(713), "SpecifiedArrayIndexInvalid");
	assert_string_equal(strupnperror(714), "NoSuchEntryInArray");
	assert_string_equal(strupnperror(718), "ConflictInMappingEntry");
	assert_string_equal(strupnperror(728), "NoPortMapsAvailable");
	assert_string_equal(strupnperror(12345), "UnknownError");
	for (int i = -5; i <= -1; i++) {
		assert_non_null(strupnperror(i));
		assert_string_not_equal(strupnperror(i), "UnknownError");
	}
}

static void test_discover_and_igd(void **state)
{
	int err = 12345;
	char ext[16];
	(void)state;
	struct UPNPDev *dev = upnpDiscover(1000, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &err);
	assert_int_equal(err, UPNPDISCOVER_SUCCESS);
	assert_non_null(dev);
	assert_null(dev->pNext);
	assert_string_equal(dev->descURL, "pcpmap://127.0.0.1/PCP/rootDesc.xml");
	assert_string_equal(dev->st, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
	assert_non_null(strstr(dev->usn, "127.0.0.1"));
	assert_true(atomic_load(&fake.announces) > 0);

	assert_int_equal(UPNP_GetValidIGD(dev, &urls, &data, lan, sizeof(lan)), 1);
	freeUPNPDevlist(dev);
	assert_string_equal(urls.controlURL, "pcpmap://127.0.0.1/PCP/ctl/IPConn");
	assert_string_equal(urls.rootdescURL, "pcpmap://127.0.0.1/PCP/rootDesc.xml");
	assert_string_equal(urls.controlURL_CIF, "pcpmap://127.0.0.1/PCP/ctl/CmnIfCfg");
	assert_string_equal(urls.controlURL_6FC, "pcpmap://127.0.0.1/PCP/ctl/IP6FCtl");
	assert_non_null(urls.ipcondescURL);
	assert_string_equal(data.first.servicetype, "urn:schemas-upnp-org:service:WANIPConnection:1");
	assert_string_equal(data.CIF.servicetype, "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1");
	assert_string_equal(data.IPv6FC.servicetype, "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1");
	assert_string_equal(data.urlbase, "pcpmap://127.0.0.1/PCP");
	assert_string_equal(lan, "127.0.0.1");
	assert_int_equal(UPNPIGD_IsConnected(&urls, &data), 1);

	/* GetUPNPUrls rebuilds the same URLs from data; FreeUPNPUrls clears them. */
	struct UPNPUrls u2;
	GetUPNPUrls(&u2, &data, "ignored", 0);
	assert_string_equal(u2.controlURL, urls.controlURL);
	assert_string_equal(u2.rootdescURL, urls.rootdescURL);
	FreeUPNPUrls(&u2);
	assert_null(u2.controlURL);
	assert_null(u2.rootdescURL);
	assert_null(u2.controlURL_6FC);
	FreeUPNPUrls(NULL);

	/* Skipping discovery gives the same device. */
	struct UPNPUrls u3;
	struct IGDdatas d3;
	char lan3[8];
	assert_int_equal(
	    UPNP_GetIGDFromUrl("http://192.0.2.1:5000/rootDesc.xml", &u3, &d3, lan3, sizeof(lan3)), 1);
	assert_string_equal(u3.controlURL, urls.controlURL);
	assert_string_equal(lan3, "127.0.0"); /* truncated to the buffer, NUL-terminated */
	FreeUPNPUrls(&u3);

	assert_int_equal(UPNP_GetExternalIPAddress(CTL, ST, ext), 0);
	assert_string_equal(ext, FAKE_EXT_ADDR);
	char status[64], lasterr[64], type[64];
	unsigned uptime = 0;
	assert_int_equal(UPNP_GetStatusInfo(CTL, ST, status, &uptime, lasterr), 0);
	assert_string_equal(status, "Connected");
	assert_true(uptime >= 100);
	assert_string_equal(lasterr, "ERROR_NONE");
	assert_int_equal(UPNP_GetConnectionTypeInfo(CTL, ST, type), 0);
	assert_string_equal(type, "IP_Routed");
}

static void test_add_lookup_delete(void **state)
{
	char c[16], p[6], d[80], e[4], l[16], ext[6], proto[4], rh[64];
	unsigned n = 99;
	(void)state;
	int maps0 = atomic_load(&fake.maps);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8000", "8001", lan, "test app", "TCP", NULL, "3600"),
			 0);
	assert_int_equal(atomic_load(&fake.maps), maps0 + 1);
	assert_int_equal(atomic_load(&fake.last_port), 8001);
	uint8_t nonce[12];
	fake_nonce(&fake, false, nonce);

	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8000", "TCP", NULL, c, p, d, e, l), 0);
	assert_string_equal(c, lan);
	assert_string_equal(p, "8001");
	assert_string_equal(d, "test app");
	assert_string_equal(e, "1");
	int left = atoi(l);
	assert_true(left > 3590 && left <= 3600);
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8000", "UDP", NULL, c, p, NULL, NULL, NULL), 714);
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8001", "TCP", NULL, c, p, NULL, NULL, NULL), 714);

	assert_int_equal(UPNP_GetGenericPortMappingEntry(CTL, ST, "0", ext, c, p, proto, d, e, rh, l), 0);
	assert_string_equal(ext, "8000");
	assert_string_equal(proto, "TCP");
	assert_string_equal(rh, "");
	assert_int_equal(UPNP_GetGenericPortMappingEntry(CTL, ST, "1", ext, c, p, proto, d, e, rh, l), 713);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(CTL, ST, &n), 0);
	assert_int_equal(n, 1);
	struct PortMappingParserData list;
	assert_int_equal(UPNP_GetListOfPortMappings(CTL, ST, "1", "65535", "TCP", "0", &list), 0);
	assert_non_null(list.l_head);
	assert_int_equal(list.l_head->externalPort, 8000);
	assert_int_equal(list.l_head->internalPort, 8001);
	assert_string_equal(list.l_head->protocol, "TCP");
	assert_null(list.l_head->l_next);
	FreePortListing(&list);
	assert_null(list.l_head);
	assert_int_equal(UPNP_GetListOfPortMappings(CTL, ST, "1", "65535", "UDP", "0", &list), 730);

	/* Adding it again refreshes it: no new request. */
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8000", "8001", lan, "test app", "tcp", NULL, "3600"),
			 0);
	assert_int_equal(atomic_load(&fake.maps), maps0 + 1);
	/* Another client on that external port, or that internal port on another external port: conflicts. */
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8000", "8001", "127.0.0.2", NULL, "TCP", NULL, "3600"),
			 718);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8002", "8001", lan, NULL, "TCP", NULL, "3600"), 718);
	/* AddAny for what exists hands back its port. */
	char reserved[6] = "";
	assert_int_equal(
	    UPNP_AddAnyPortMapping(CTL, ST, "9000", "8001", lan, NULL, "TCP", NULL, "3600", reserved), 0);
	assert_string_equal(reserved, "8000");
	assert_int_equal(atomic_load(&fake.maps), maps0 + 1);

	int dels0 = atomic_load(&fake.deletes);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8000", "TCP", NULL), 0);
	assert_int_equal(atomic_load(&fake.deletes), dels0 + 1);
	uint8_t dnonce[12];
	fake_nonce(&fake, true, dnonce);
	assert_memory_equal(dnonce, nonce, sizeof(nonce));
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8000", "TCP", NULL, c, p, NULL, NULL, NULL), 714);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8000", "TCP", NULL), 714);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(CTL, ST, &n), 0);
	assert_int_equal(n, 0);

	/* A range. */
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8010", "8010", lan, NULL, "UDP", NULL, "600"), 0);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8011", "8011", lan, NULL, "UDP", NULL, "600"), 0);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8012", "8012", lan, NULL, "TCP", NULL, "600"), 0);
	assert_int_equal(UPNP_DeletePortMappingRange(CTL, ST, "8000", "8020", "UDP", "0"), 0);
	assert_int_equal(atomic_load(&fake.deletes), dels0 + 3);
	assert_int_equal(UPNP_DeletePortMappingRange(CTL, ST, "8000", "8020", "UDP", "0"), 730);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8012", "TCP", NULL), 0);
}

static void test_conflict_at_gateway(void **state)
{
	char reserved[6] = "";
	(void)state;
	/* The gateway hands out another port than asked (miniupnpd does, even with PREFER_FAILURE). */
	atomic_store(&fake.port_shift, 1);
	int dels0 = atomic_load(&fake.deletes);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8100", "8100", lan, NULL, "TCP", NULL, "600"), 718);
	/* ... and what it gave was handed back. */
	assert_true(fake_wait_count(&fake.deletes, dels0 + 1, 10000) >= dels0 + 1);
	char c[16], p[6];
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8100", "TCP", NULL, c, p, NULL, NULL, NULL), 714);
	/* AddAnyPortMapping takes what the gateway gives. */
	assert_int_equal(
	    UPNP_AddAnyPortMapping(CTL, ST, "8100", "8100", lan, NULL, "TCP", NULL, "600", reserved), 0);
	assert_string_equal(reserved, "8101");
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8101", "TCP", NULL, c, p, NULL, NULL, NULL), 0);
	assert_string_equal(p, "8100");
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8101", "TCP", NULL), 0);
}

static void expect_refusal(int pcp_result, const char *client, int upnp_code)
{
	atomic_store(&fake.result, pcp_result);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8200", "8200", client, NULL, "UDP", NULL, "600"),
			 upnp_code);
	char c[16], p[6];
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8200", "UDP", NULL, c, p, NULL, NULL, NULL), 714);
	atomic_store(&fake.result, 0);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refusal(2, lan, 606);         /* NOT_AUTHORIZED */
	expect_refusal(8, lan, 728);         /* NO_RESOURCES */
	expect_refusal(10, lan, 728);        /* USER_EX_QUOTA */
	expect_refusal(7, lan, 501);         /* NETWORK_FAILURE */
	expect_refusal(5, "127.0.0.2", 606); /* UNSUPP_OPTION for a THIRD_PARTY: that host is not allowed */
}

static void test_silence(void **state)
{
	(void)state;
	atomic_store(&fake.silent, 1);
	/* PCPMAP_COMPAT_TIMEOUT_MS is 4000 here: the "HTTP error" of a gateway that does not answer. */
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8300", "8300", lan, NULL, "TCP", NULL, "600"), -3);
	atomic_store(&fake.silent, 0);
}

static void test_background_thread(void **state)
{
	char c[16], p[6], l[16];
	(void)state;
	/* The gateway grants 8 s: the library's thread renews without the application doing anything. */
	atomic_store(&fake.max_life, 8);
	int maps0 = atomic_load(&fake.maps);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8400", "8400", lan, NULL, "TCP", NULL, NULL), 0);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8400", "TCP", NULL, c, p, NULL, NULL, l),
			 0);
	assert_string_equal(l, "0"); /* a permanent lease */
	assert_true(fake_wait_count(&fake.maps, maps0 + 2, 30000) >= maps0 + 2);
	assert_int_equal(atomic_load(&fake.last_port), 8400);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8400", "TCP", NULL), 0);

	/* A lease of 600 s on a gateway that grants 4 s (issue 14): kept for the lease, not for the grant. */
	atomic_store(&fake.max_life, 4);
	maps0 = atomic_load(&fake.maps);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8402", "8402", lan, NULL, "UDP", NULL, "600"), 0);
	assert_true(fake_wait_count(&fake.maps, maps0 + 3, 30000) >= maps0 + 3);
	assert_int_equal(atomic_load(&fake.last_port), 8402);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8402", "UDP", NULL, c, p, NULL, NULL, l),
			 0);
	assert_true(atoi(l) >= 590 && atoi(l) <= 600);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8402", "UDP", NULL), 0);
	atomic_store(&fake.max_life, 8);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8400", "8400", lan, NULL, "TCP", NULL, NULL), 0);

	/* A lease of 2 s ends after 2 s: the thread deletes the mapping, as the IGD would. */
	int dels0 = atomic_load(&fake.deletes);
	assert_int_equal(UPNP_AddPortMapping(CTL, ST, "8401", "8401", lan, NULL, "TCP", NULL, "2"), 0);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8401", "TCP", NULL, c, p, NULL, NULL, l),
			 0);
	assert_true(atoi(l) >= 1 && atoi(l) <= 2);
	assert_true(fake_wait_count(&fake.deletes, dels0 + 1, 20000) >= dels0 + 1);
	assert_int_equal(atomic_load(&fake.last_port), 8401);
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(CTL, ST, "8401", "TCP", NULL, c, p, NULL, NULL, NULL), 714);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8400", "TCP", NULL), 0);
}

struct worker {
	pthread_t th;
	int base;
	int failures;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char ext[8], c[16], p[6];
	for (int i = 0; i < 5; i++) {
		snprintf(ext, sizeof(ext), "%d", w->base + i);
		if (UPNP_AddPortMapping(CTL, ST, ext, ext, lan, "thread", "UDP", NULL, "600") != 0)
			w->failures++;
		if (UPNP_GetSpecificPortMappingEntry(CTL, ST, ext, "UDP", NULL, c, p, NULL, NULL, NULL) !=
			0 ||
		    strcmp(p, ext))
			w->failures++;
	}
	for (int i = 0; i < 5; i++) {
		snprintf(ext, sizeof(ext), "%d", w->base + i);
		if (UPNP_DeletePortMapping(CTL, ST, ext, "UDP", NULL) != 0)
			w->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct worker w[4];
	unsigned n = 99;
	(void)state;
	int maps0 = atomic_load(&fake.maps), dels0 = atomic_load(&fake.deletes);
	for (int i = 0; i < 4; i++) {
		w[i].base = 8500 + 10 * i;
		w[i].failures = 0;
		assert_int_equal(pthread_create(&w[i].th, NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].failures, 0);
	}
	/* Every mapping was asked for (a retransmission on a busy machine may add a request) and deleted. */
	assert_true(atomic_load(&fake.maps) >= maps0 + 20);
	assert_true(atomic_load(&fake.deletes) >= dels0 + 20);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(CTL, ST, &n), 0);
	assert_int_equal(n, 0);
}

/*
 * A mapping an earlier process made (`upnpc -a`, then `upnpc -l` and `upnpc -d`): this process lists it, looks
 * it up and deletes it through PCP with the nonce the earlier one used. The earlier process is this program run
 * again with --add.
 */
static char self_path[4096];

static void test_earlier_process(void **state)
{
	char c[16], p[6], d[80], e[4], l[16], ext[6], proto[4], rh[64];
	unsigned n0 = 0, n = 0;
	(void)state;
	int maps0 = atomic_load(&fake.maps);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(CTL, ST, &n0), 0);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8150", "TCP", NULL, c, p, d, e, l), 714);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self_path, self_path, "--add", "8150", "8151", lan, (char *)NULL);
		_exit(127);
	}
	int status = -1;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* (Its probe may map and delete a port of its own first.) */
	assert_true(atomic_load(&fake.maps) >= maps0 + 1);
	assert_int_equal(atomic_load(&fake.last_port), 8151);
	int dels0 = atomic_load(&fake.deletes);
	uint8_t nonce[12], del_nonce[12];
	fake_nonce(&fake, false, nonce);

	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8150", "TCP", NULL, c, p, d, e, l), 0);
	assert_string_equal(c, lan);
	assert_string_equal(p, "8151");
	assert_string_equal(d, "earlier process");
	assert_string_equal(e, "1");
	/* Nobody renews it now: what is left of the 3600 s the gateway granted. */
	assert_true(atoi(l) > 3500 && atoi(l) <= 3600);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(CTL, ST, &n), 0);
	assert_int_equal(n, n0 + 1);
	bool listed = false;
	for (unsigned i = 0; i < n; i++) {
		char idx[16];
		snprintf(idx, sizeof(idx), "%u", i);
		assert_int_equal(UPNP_GetGenericPortMappingEntry(CTL, ST, idx, ext, c, p, proto, d, e, rh, l),
				 0);
		listed |= !strcmp(ext, "8150") && !strcmp(proto, "TCP") && !strcmp(p, "8151");
	}
	assert_true(listed);
	struct PortMappingParserData list;
	assert_int_equal(UPNP_GetListOfPortMappings(CTL, ST, "8150", "8150", "TCP", "0", &list), 0);
	assert_non_null(list.l_head);
	assert_int_equal(list.l_head->internalPort, 8151);
	FreePortListing(&list);

	/* Deleted through PCP with the earlier process's nonce. */
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8150", "TCP", NULL), 0);
	assert_int_equal(atomic_load(&fake.deletes), dels0 + 1);
	fake_nonce(&fake, true, del_nonce);
	assert_memory_equal(nonce, del_nonce, 12);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8150", "TCP", NULL, c, p, d, e, l), 714);
	assert_int_equal(UPNP_DeletePortMapping(CTL, ST, "8150", "TCP", NULL), 714);
	assert_int_equal(atomic_load(&fake.deletes), dels0 + 1);

	/* A range covers what earlier processes made too. */
	pid = fork();
	if (pid == 0) {
		execl(self_path, self_path, "--add", "8152", "8153", lan, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	dels0 = atomic_load(&fake.deletes);
	assert_int_equal(UPNP_DeletePortMappingRange(CTL, ST, "8151", "8160", "TCP", "0"), 0);
	assert_int_equal(atomic_load(&fake.deletes), dels0 + 1);
	assert_int_equal(UPNP_GetSpecificPortMappingEntry(CTL, ST, "8152", "TCP", NULL, c, p, d, e, l), 714);
	assert_int_equal(UPNP_DeletePortMappingRange(CTL, ST, "8151", "8160", "TCP", "0"), 730);
}

int main(int argc, char **argv)
{
	/* The earlier process of test_earlier_process(): maps and exits, leaving the mapping. */
	if (argc == 5 && !strcmp(argv[1], "--add"))
		return UPNP_AddPortMapping("", "", argv[2], argv[3], argv[4], "earlier process", "TCP", NULL,
					   "0");
	if (!realpath(argv[0], self_path))
		return 1;
	/* Records of earlier processes stay with this run. */
	char state_dir[] = "/tmp/pcpmap-upnp-test-XXXXXX";
	if (!mkdtemp(state_dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("PCPMAP_COMPAT_STATE_DIR", state_dir, 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_invalid_args, reset),
		cmocka_unit_test(test_strupnperror),
		cmocka_unit_test_setup(test_discover_and_igd, reset),
		cmocka_unit_test_setup(test_add_lookup_delete, reset),
		cmocka_unit_test_setup(test_earlier_process, reset),
		cmocka_unit_test_setup(test_conflict_at_gateway, reset),
		cmocka_unit_test_setup(test_refusals, reset),
		cmocka_unit_test_setup(test_silence, reset),
		cmocka_unit_test_setup(test_background_thread, reset),
		cmocka_unit_test_setup(test_threads, reset),
	};
	char gw[32];
	if (fake_pcp_start(&fake) < 0) {
		perror("fake PCP server");
		return 1;
	}
	/* Read once, when the library starts its client. PCP only: the scripted server speaks nothing else. */
	snprintf(gw, sizeof(gw), "127.0.0.1:%u", fake.port);
	setenv("PCPMAP_GATEWAY", gw, 1);
	setenv("PCPMAP_COMPAT_PROTOCOLS", "pcp", 1);
	setenv("PCPMAP_COMPAT_TIMEOUT_MS", "4000", 1);
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	FreeUPNPUrls(&urls);
	fake_pcp_stop(&fake);
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", state_dir);
	return r;
}
