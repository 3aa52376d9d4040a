/* SPDX-License-Identifier: MIT */
/*
 * The drop-in's miniupnpc helpers against Debian's own: the XML parsers (SOAP answers, port listings, root
 * descriptions), parseURL(), addr_is_reserved(), miniwget() and simpleUPnPcommand() against an HTTP server on
 * loopback, and minissdpd's protocol against a Unix socket server. Each input goes to both libraries (the real
 * one loaded privately by path, as argv[1]) and the results must be the same. Then every exported function
 * once with NULL or empty arguments: none may crash.
 * Usage: test_dropin_helpers PATH_OF_THE_REAL_LIBMINIUPNPC
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "miniupnpc.h"
#include "miniwget.h"
#include "portlistingparse.h"
#include "upnpcommands.h"
#include "upnperrors.h"
#include "upnpreplyparse.h"
#include "private.h"

static void *real;

#define REAL(name) ((__typeof__(&name))real_sym(#name))
static void *real_sym(const char *name)
{
	void *p = dlsym(real, name);
	if (!p)
		fail_msg("the real library lacks %s", name);
	return p;
}

/* ---- XML ---- */

static const char soap_answer[] =
    "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
    "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
    "<u:GetGenericPortMappingEntryResponse xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">"
    "<NewRemoteHost></NewRemoteHost><NewExternalPort>7300</NewExternalPort><NewProtocol>TCP</NewProtocol>"
    "<NewInternalPort>7301</NewInternalPort><NewInternalClient>192.168.77.2</NewInternalClient>"
    "<NewEnabled>1</NewEnabled><NewPortMappingDescription>a b  c</NewPortMappingDescription>"
    "<NewLeaseDuration>0</NewLeaseDuration></u:GetGenericPortMappingEntryResponse></s:Body></s:Envelope>\r\n";

static const char soap_fault[] =
    "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>"
    "<UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>713</errorCode>"
    "<errorDescription>SpecifiedArrayIndexInvalid</errorDescription></UPnPError></detail></s:Fault>"
    "</s:Body></s:Envelope>\r\n";

static const char *const names[] = { "NewExternalPort",   "NewProtocol",   "NewInternalPort",
				     "NewInternalClient", "NewEnabled",    "NewPortMappingDescription",
				     "NewLeaseDuration",  "NewRemoteHost", "errorCode",
				     "errorDescription",  "faultstring",   "Nothing" };

static void compare_name_values(const char *doc, int len)
{
	struct NameValueParserData ours, theirs;
	memset(&ours, 0, sizeof(ours));
	memset(&theirs, 0, sizeof(theirs));
	ParseNameValue(doc, len, &ours);
	REAL(ParseNameValue)(doc, len, &theirs);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *a = GetValueFromNameValueList(&ours, names[i]);
		const char *b = REAL(GetValueFromNameValueList)(&theirs, names[i]);
		if (!a || !b) {
			if (a != b)
				fail_msg("%s: pcpmap %s, miniupnpc %s", names[i], a ? a : "(none)",
					 b ? b : "(none)");
			continue;
		}
		if (strcmp(a, b))
			fail_msg("%s: pcpmap '%s', miniupnpc '%s'", names[i], a, b);
	}
	ClearNameValueList(&ours);
	REAL(ClearNameValueList)(&theirs);
	assert_null(ours.l_head);
}

static void test_name_values(void **state)
{
	(void)state;
	compare_name_values(soap_answer, (int)strlen(soap_answer));
	compare_name_values(soap_fault, (int)strlen(soap_fault));
	static const char odd[] =
	    "<r>\n <a></a><b>x</b><c/><d> </d><e>  y z </e><b>second</b><f><g>1</g></f></r>";
	static const char *const odd_names[] = { "a", "b", "c", "d", "e", "f", "g", "r" };
	compare_name_values(odd, (int)strlen(odd));
	struct NameValueParserData o1, o2;
	ParseNameValue(odd, (int)strlen(odd), &o1);
	REAL(ParseNameValue)(odd, (int)strlen(odd), &o2);
	for (size_t i = 0; i < sizeof(odd_names) / sizeof(odd_names[0]); i++) {
		const char *a = GetValueFromNameValueList(&o1, odd_names[i]);
		const char *b = REAL(GetValueFromNameValueList)(&o2, odd_names[i]);
		if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
			fail_msg("%s: pcpmap '%s', miniupnpc '%s'", odd_names[i], a ? a : "(none)",
				 b ? b : "(none)");
	}
	ClearNameValueList(&o1);
	REAL(ClearNameValueList)(&o2);
	/* Cut anywhere: what could be read, never a read past the end. */
	for (int n = 0; n < (int)strlen(soap_answer); n += 7) {
		struct NameValueParserData d;
		char *copy = malloc((size_t)n + 1);
		memcpy(copy, soap_answer, (size_t)n);
		ParseNameValue(copy, n, &d);
		ClearNameValueList(&d);
		free(copy);
	}
	/* A value longer than NameValue::value: truncated to 127 bytes. */
	char big[600];
	char val[301];
	memset(val, 'v', 300);
	val[300] = '\0';
	snprintf(big, sizeof(big), "<r><NewDescription>%s</NewDescription></r>", val);
	struct NameValueParserData d;
	ParseNameValue(big, (int)strlen(big), &d);
	const char *v = GetValueFromNameValueList(&d, "NewDescription");
	assert_non_null(v);
	assert_int_equal(strlen(v), 127);
	ClearNameValueList(&d);
	ParseNameValue(NULL, 0, &d);
	assert_null(GetValueFromNameValueList(&d, "x"));
	ClearNameValueList(&d);
	ClearNameValueList(NULL);
	assert_null(GetValueFromNameValueList(NULL, "x"));
}

static const char listing[] =
    "<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:WANIPConnection\">"
    "<p:PortMappingEntry><p:NewRemoteHost>202.233.2.1</p:NewRemoteHost><p:NewExternalPort>2345"
    "</p:NewExternalPort><p:NewProtocol>TCP</p:NewProtocol><p:NewInternalPort>2346</p:NewInternalPort>"
    "<p:NewInternalClient>192.168.1.137</p:NewInternalClient><p:NewEnabled>1</p:NewEnabled>"
    "<p:NewDescription>dooom</p:NewDescription><p:NewLeaseTime>345</p:NewLeaseTime></p:PortMappingEntry>"
    "<p:PortMappingEntry><p:NewRemoteHost></p:NewRemoteHost><p:NewExternalPort>999</p:NewExternalPort>"
    "<p:NewProtocol>UDP</p:NewProtocol><p:NewInternalPort>998</p:NewInternalPort>"
    "<p:NewInternalClient>192.168.1.138</p:NewInternalClient><p:NewEnabled>0</p:NewEnabled>"
    "<p:NewDescription>second</p:NewDescription><p:NewLeaseTime>0</p:NewLeaseTime></p:PortMappingEntry>"
    "</p:PortMappingList>";

static void test_port_listing(void **state)
{
	struct PortMappingParserData ours, theirs;
	(void)state;
	memset(&theirs, 0, sizeof(theirs));
	ParsePortListing(listing, (int)strlen(listing), &ours);
	REAL(ParsePortListing)(listing, (int)strlen(listing), &theirs);
	const struct PortMapping *a = ours.l_head, *b = theirs.l_head;
	int n = 0;
	for (; a && b; a = a->l_next, b = b->l_next, n++) {
		assert_int_equal(a->leaseTime, b->leaseTime);
		assert_int_equal(a->externalPort, b->externalPort);
		assert_int_equal(a->internalPort, b->internalPort);
		assert_string_equal(a->remoteHost, b->remoteHost);
		assert_string_equal(a->internalClient, b->internalClient);
		assert_string_equal(a->description, b->description);
		assert_string_equal(a->protocol, b->protocol);
		assert_int_equal(a->enabled, b->enabled);
	}
	assert_null(a);
	assert_null(b);
	assert_int_equal(n, 2);
	assert_int_equal(ours.l_head->externalPort, 999); /* newest first */
	FreePortListing(&ours);
	REAL(FreePortListing)(&theirs);
	ParsePortListing(NULL, 0, &ours);
	assert_null(ours.l_head);
	FreePortListing(NULL);
}

static const char rootdesc[] =
    "<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1</major>"
    "<minor>1</minor></specVersion><URLBase>http://192.168.77.1:5000/</URLBase><device>"
    "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
    "<presentationURL>http://192.168.77.1/</presentationURL><serviceList><service>"
    "<serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>"
    "<controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL><SCPDURL>/L3F.xml</SCPDURL>"
    "</service></serviceList><deviceList><device><deviceList><device><serviceList><service>"
    "<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>"
    "<controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL>"
    "<SCPDURL>/WANCfg.xml</SCPDURL></service></serviceList></device><device><serviceList><service>"
    "<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>"
    "<controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL>"
    "<SCPDURL>/WANIPCn.xml</SCPDURL></service><service>"
    "<serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType>"
    "<controlURL>/ctl/IP6FCtl</controlURL><eventSubURL>/evt/IP6FCtl</eventSubURL>"
    "<SCPDURL>/WANIP6FC.xml</SCPDURL></service></serviceList></device></deviceList></device></deviceList>"
    "</device></root>";

static void same_service(const struct IGDdatas_service *a, const struct IGDdatas_service *b)
{
	assert_string_equal(a->controlurl, b->controlurl);
	assert_string_equal(a->eventsuburl, b->eventsuburl);
	assert_string_equal(a->scpdurl, b->scpdurl);
	assert_string_equal(a->servicetype, b->servicetype);
}

static void test_rootdesc(void **state)
{
	struct IGDdatas ours, theirs;
	(void)state;
	/* Both fill what the document names and leave the rest: zeroed first, as miniupnpc's callers do. */
	memset(&ours, 0, sizeof(ours));
	memset(&theirs, 0, sizeof(theirs));
	parserootdesc(rootdesc, (int)strlen(rootdesc), &ours);
	REAL(parserootdesc)(rootdesc, (int)strlen(rootdesc), &theirs);
	assert_string_equal(ours.urlbase, theirs.urlbase);
	assert_string_equal(ours.presentationurl, theirs.presentationurl);
	same_service(&ours.CIF, &theirs.CIF);
	same_service(&ours.first, &theirs.first);
	same_service(&ours.second, &theirs.second);
	same_service(&ours.IPv6FC, &theirs.IPv6FC);
	assert_string_equal(ours.first.controlurl, "/ctl/IPConn");
	/* Pretty-printed: white space between every tag. */
	char pretty[sizeof(rootdesc) * 3];
	size_t o = 0;
	for (const char *c = rootdesc; *c; c++) {
		pretty[o++] = *c;
		if (*c == '>') {
			memcpy(pretty + o, "\n  ", 3);
			o += 3;
		}
	}
	pretty[o] = '\0';
	memset(&ours, 0, sizeof(ours));
	memset(&theirs, 0, sizeof(theirs));
	parserootdesc(pretty, (int)o, &ours);
	REAL(parserootdesc)(pretty, (int)o, &theirs);
	/* What the parser produces (cureltname, level and tmp are its scratch). */
	assert_string_equal(ours.urlbase, theirs.urlbase);
	assert_string_equal(ours.presentationurl, theirs.presentationurl);
	assert_memory_equal(&ours.CIF, &theirs.CIF, sizeof(ours.CIF));
	assert_memory_equal(&ours.first, &theirs.first, sizeof(ours.first));
	assert_memory_equal(&ours.second, &theirs.second, sizeof(ours.second));
	assert_memory_equal(&ours.IPv6FC, &theirs.IPv6FC, sizeof(ours.IPv6FC));
	compare_name_values(pretty, (int)o);
	parserootdesc(NULL, 0, &ours);
	parserootdesc(rootdesc, 10, &ours);
	parserootdesc(rootdesc, 0, NULL);
}

/* ---- URLs and addresses ---- */

static void test_parse_url(void **state)
{
	static const char *const urls[] = {
		"http://192.168.77.1:5000/rootDesc.xml",
		"http://192.168.77.1/ctl",
		"http://gw.example:80",
		"http://gw.example:80/",
		"http://gw.example",
		"http://h/x?y",
		"http://[fe80::1%25lo]:5000/x",
		"http://[fe80::1]:5000/x",
		"http://192.168.77.1:0/x",
		"http://192.168.77.1:99999/x",
		"http://h:abc/x",
		"http://h:12ab/x",
		"http:///x",
		"HTTP://h/x",
		"x://h:1/y",
		"https://192.168.77.1/x",
		"pcpmap://192.168.77.1/PCP/ctl/IPConn",
		"http://",
		"",
		"http://"
		"a-very-long-host-name-that-goes-on-and-on-and-on-and-on-past-sixty-four-bytes.example/",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		char h1[256] = "", h2[256] = "";
		unsigned short p1 = 0, p2 = 0;
		char *path1 = NULL, *path2 = NULL;
		unsigned s1 = 0, s2 = 0;
		int r1 = parseURL(urls[i], h1, &p1, &path1, &s1);
		int r2 = REAL(parseURL)(urls[i], h2, &p2, &path2, &s2);
		if (r1 != r2)
			fail_msg("parseURL(%s): pcpmap %d, miniupnpc %d", urls[i], r1, r2);
		if (!r1)
			continue;
		assert_string_equal(h1, h2);
		assert_int_equal(p1, p2);
		assert_string_equal(path1, path2);
	}
}

static void test_addr_is_reserved(void **state)
{
	static const char *const addrs[] = { "10.1.2.3",    "100.64.0.1",  "100.128.0.1", "127.0.0.1",
					     "169.254.1.1", "172.16.0.1",  "172.32.0.1",  "192.0.0.8",
					     "192.0.2.1",   "192.168.1.1", "198.18.0.1",  "198.51.100.7",
					     "203.0.113.1", "224.0.0.1",   "240.0.0.1",   "8.8.8.8",
					     "1.1.1.1",     "0.1.2.3",     "193.0.0.1",   "255.255.255.255" };
	(void)state;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		int a = addr_is_reserved(addrs[i]), b = REAL(addr_is_reserved)(addrs[i]);
		if (a != b)
			fail_msg("addr_is_reserved(%s): pcpmap %d, miniupnpc %d", addrs[i], a, b);
	}
}

/* ---- HTTP on loopback ---- */

struct http_server {
	int fd;
	uint16_t port;
	pthread_t th;
	char last_request[4096];
};

static void *http_run(void *arg)
{
	struct http_server *s = arg;
	for (;;) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		char req[4096];
		size_t n = 0;
		ssize_t r;
		while (n < sizeof(req) - 1 && (r = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
			n += (size_t)r;
			req[n] = '\0';
			char *eoh = strstr(req, "\r\n\r\n");
			const char *cl = strcasestr(req, "Content-Length:");
			if (eoh && (!cl || n >= (size_t)(eoh - req) + 4 + strtoul(cl + 15, NULL, 10)))
				break;
		}
		req[n] = '\0';
		memcpy(s->last_request, req, n + 1);
		const char *resp;
		char buf[4096];
		if (!strncmp(req, "GET /quit", 9)) {
			close(c);
			return NULL;
		} else if (!strncmp(req, "GET /len ", 9)) {
			resp = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: text/xml\r\n\r\nhello "
			       "world";
		} else if (!strncmp(req, "GET /chunked ", 13)) {
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n "
			       "world\r\n0\r\n\r\n";
		} else if (!strncmp(req, "GET /chunked2 ", 14)) {
			/* A chunk that holds what looks like the last chunk. */
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
			       "chunked\r\n\r\n8\r\na\r\n0\r\nbc\r\n0\r\n\r\n";
		} else if (!strncmp(req, "GET /slow ", 10)) {
			/* The head, then the body a moment later. */
			static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
			if (write(c, head, sizeof(head) - 1) < 0)
				perror("http server");
			usleep(100000);
			resp = "late";
		} else if (!strncmp(req, "GET /close ", 11)) {
			resp = "HTTP/1.0 200 OK\r\n\r\nuntil the end";
		} else if (!strncmp(req, "GET /missing ", 13)) {
			resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
		} else {
			snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
				 strlen(soap_answer), soap_answer);
			resp = buf;
		}
		if (write(c, resp, strlen(resp)) < 0)
			perror("http server");
		close(c);
	}
}

static struct http_server http;

static void compare_get(const char *path)
{
	char url[128];
	int s1 = 0, s2 = 0, st1 = 0, st2 = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", http.port, path);
	char *a = miniwget(url, &s1, 0, &st1);
	char *b = REAL(miniwget)(url, &s2, 0, &st2);
	if ((a == NULL) != (b == NULL))
		fail_msg("miniwget(%s): pcpmap %s, miniupnpc %s", path, a ? "a body" : "NULL",
			 b ? "a body" : "NULL");
	assert_int_equal(st1, st2);
	if (a) {
		assert_int_equal(s1, s2);
		assert_memory_equal(a, b, (size_t)s1);
	}
	free(a);
	free(b);
}

static void test_miniwget(void **state)
{
	(void)state;
	compare_get("/len");
	compare_get("/chunked");
	compare_get("/chunked2");
	compare_get("/slow");
	compare_get("/close");
	compare_get("/missing");
	char addr[64] = "x";
	char url[128];
	int size = -1, status = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/len", http.port);
	char *b = miniwget_getaddr(url, &size, addr, sizeof(addr), 0, &status);
	assert_non_null(b);
	assert_string_equal(addr, "127.0.0.1");
	assert_int_equal(size, 11);
	free(b);
	/* pcpmap:// names no HTTP server; a closed port answers nothing. */
	assert_null(miniwget("pcpmap://192.168.77.1/PCP/rootDesc.xml", &size, 0, &status));
	assert_null(miniwget("http://127.0.0.1:1/x", &size, 0, &status));
	assert_null(miniwget(NULL, NULL, 0, NULL));
}

static void test_simple_upnp_command(void **state)
{
	char url[128];
	int size = 0;
	struct UPNParg args[] = { { "NewPortMappingIndex", "0" }, { NULL, NULL } };
	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/ctl/IPConn", http.port);
	const char *st = "urn:schemas-upnp-org:service:WANIPConnection:1";
	char *a = simpleUPnPcommand(-1, url, st, "GetGenericPortMappingEntry", args, &size);
	assert_non_null(a);
	assert_int_equal(size, (int)strlen(soap_answer));
	assert_non_null(strstr(http.last_request, "POST /ctl/IPConn HTTP/1.1\r\n"));
	assert_non_null(strstr(http.last_request, "SOAPAction: \""
						  "urn:schemas-upnp-org:service:WANIPConnection:1"
						  "#GetGenericPortMappingEntry\""));
	assert_non_null(strstr(http.last_request, "<NewPortMappingIndex>0</NewPortMappingIndex>"));
	free(a);
	assert_null(simpleUPnPcommand(-1, "pcpmap://192.168.77.1/PCP/ctl/IPConn", st, "X", NULL, &size));
	assert_int_equal(size, 0);
	assert_null(simpleUPnPcommand(-1, NULL, NULL, NULL, NULL, NULL));
}

/* ---- minissdpd on a Unix socket ---- */

static void *ssdpd_run(void *arg)
{
	int fd = *(int *)arg, c = accept(fd, NULL, NULL);
	unsigned char req[512];
	if (c < 0)
		return NULL;
	if (read(c, req, sizeof(req)) <= 0) {
		close(c);
		return NULL;
	}
	/* Two devices: URL, ST, USN, each with a one-byte length. */
	static const char *const f[] = { "http://192.168.77.1:5000/rootDesc.xml",
					 "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
					 "uuid:one",
					 "http://192.168.77.9:80/d.xml",
					 "upnp:rootdevice",
					 "uuid:two" };
	unsigned char out[1024];
	size_t o = 0;
	out[o++] = 2;
	for (int i = 0; i < 6; i++) {
		out[o++] = (unsigned char)strlen(f[i]);
		memcpy(out + o, f[i], strlen(f[i]));
		o += strlen(f[i]);
	}
	if (write(c, out, o) < 0)
		perror("minissdpd");
	close(c);
	return NULL;
}

static struct UPNPDev *ssdpd_query(struct UPNPDev *(*get)(const char *, const char *, int *), int *err)
{
	char path[] = "/tmp/pcpmap-ssdpd-XXXXXX";
	int tfd = mkstemp(path);
	close(tfd);
	unlink(path);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	pthread_t th;
	pthread_create(&th, NULL, ssdpd_run, &fd);
	struct UPNPDev *d = get("ssdp:all", path, err);
	pthread_join(th, NULL);
	close(fd);
	unlink(path);
	return d;
}

static void test_minissdpd(void **state)
{
	int e1 = 99, e2 = 99;
	(void)state;
	struct UPNPDev *a = ssdpd_query(getDevicesFromMiniSSDPD, &e1);
	struct UPNPDev *b = ssdpd_query(REAL(getDevicesFromMiniSSDPD), &e2);
	assert_int_equal(e1, e2);
	int n = 0;
	for (const struct UPNPDev *x = a, *y = b; x || y; x = x->pNext, y = y->pNext, n++) {
		assert_non_null(x);
		assert_non_null(y);
		assert_string_equal(x->descURL, y->descURL);
		assert_string_equal(x->st, y->st);
		assert_string_equal(x->usn, y->usn);
	}
	assert_int_equal(n, 2);
	freeUPNPDevlist(a);
	REAL(freeUPNPDevlist)(b);
	/* No daemon: an error, no list. */
	int e = 0;
	assert_null(getDevicesFromMiniSSDPD("ssdp:all", "/nonexistent/minissdpd.sock", &e));
	assert_true(e < 0);
	assert_true(connectToMiniSSDPD("/nonexistent/minissdpd.sock") < 0);
}

/* ---- nothing crashes on NULL ---- */

static void test_null_arguments(void **state)
{
	(void)state;
	setenv("PCPMAP_GATEWAY", "127.0.0.1:1", 1); /* ICMP at once: no gateway */
	setenv("PCPMAP_COMPAT_TIMEOUT_MS", "500", 1);
	int e;
	assert_null(upnpDiscover(100, NULL, NULL, 0, 0, 2, NULL));
	assert_null(upnpDiscoverAll(100, NULL, NULL, 0, 0, 2, &e));
	assert_null(upnpDiscoverDevice(NULL, 100, NULL, NULL, 0, 0, 2, NULL));
	assert_null(upnpDiscoverDevices(NULL, 100, NULL, NULL, 0, 0, 2, NULL, 0));
	assert_null(ssdpDiscoverDevices(NULL, 100, NULL, 0, 0, 2, NULL, 0));
	freeUPNPDevlist(NULL);
	assert_int_equal(UPNP_GetValidIGD(NULL, NULL, NULL, NULL, 0), 0);
	assert_int_equal(UPNP_GetIGDFromUrl(NULL, NULL, NULL, NULL, 0), 0);
	GetUPNPUrls(NULL, NULL, NULL, 0);
	FreeUPNPUrls(NULL);
	UPNPIGD_IsConnected(NULL, NULL);
	assert_non_null(strupnperror(12345));
	IGDstartelt(&(struct IGDdatas){ 0 }, "service", 7);
	IGDendelt(&(struct IGDdatas){ 0 }, "service", 7);
	IGDdata(&(struct IGDdatas){ 0 }, "x", 1);
	parsexml(NULL);
	struct xmlparser x = { 0 };
	parsexml(&x);
	char host[80];
	unsigned short port;
	char *path;
	assert_int_equal(parseURL(NULL, host, &port, &path, NULL), 0);
	assert_true(connecthostport(NULL, 80, 0) < 0);
	assert_true(receivedata(-1, host, sizeof(host), 0, NULL) <= 0);
	assert_int_equal(soapPostSubmit(-1, NULL, NULL, 0, NULL, NULL, NULL), -1);
	assert_null(getHTTPResponse(-1, NULL, NULL));
	assert_int_equal(addr_is_reserved(NULL), 1);
	assert_int_equal(requestDevicesFromMiniSSDPD(-1, NULL), MINISSDPC_INVALID_INPUT);
	assert_null(receiveDevicesFromMiniSSDPD(-1, &e));
	assert_int_equal(disconnectFromMiniSSDPD(-1), MINISSDPC_SOCKET_ERROR);
	assert_int_equal(UPNP_GetTotalBytesSent(NULL, NULL), 0);
	assert_int_equal(UPNP_GetTotalBytesReceived(NULL, NULL), 0);
	assert_int_equal(UPNP_GetTotalPacketsSent(NULL, NULL), 0);
	assert_int_equal(UPNP_GetTotalPacketsReceived(NULL, NULL), 0);
	assert_int_equal(UPNP_GetStatusInfo(NULL, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(UPNP_GetConnectionTypeInfo(NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetExternalIPAddress(NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetLinkLayerMaxBitRates(NULL, NULL, NULL, NULL), 401);
	assert_int_equal(UPNP_AddPortMapping(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			 UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_AddAnyPortMapping(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			 UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_DeletePortMapping(NULL, NULL, NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_DeletePortMappingRange(NULL, NULL, NULL, NULL, NULL, NULL),
			 UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetPortMappingNumberOfEntries(NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(
	    UPNP_GetSpecificPortMappingEntry(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	    UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(
	    UPNP_GetGenericPortMappingEntry(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	    UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetListOfPortMappings(NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			 UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetFirewallStatus(NULL, NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetOutboundPinholeTimeout(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), 401);
	assert_int_equal(UPNP_AddPinhole(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
			 UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_UpdatePinhole(NULL, NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_DeletePinhole(NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_CheckPinholeWorking(NULL, NULL, NULL, NULL), UPNPCOMMAND_INVALID_ARGS);
	assert_int_equal(UPNP_GetPinholePackets(NULL, NULL, NULL, NULL), 401);
	ParseNameValue(NULL, 0, NULL);
	ParsePortListing(NULL, 0, NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_values),
		cmocka_unit_test(test_port_listing),
		cmocka_unit_test(test_rootdesc),
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_addr_is_reserved),
		cmocka_unit_test(test_miniwget),
		cmocka_unit_test(test_simple_upnp_command),
		cmocka_unit_test(test_minissdpd),
		cmocka_unit_test(test_null_arguments),
	};
	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH_OF_THE_REAL_LIBMINIUPNPC\n", argv[0]);
		return 2;
	}
#if defined(__SANITIZE_ADDRESS__)
	/* Without RTLD_DEEPBIND (AddressSanitizer refuses it) the real library's calls to itself would reach the
	 * drop-in this program links: there would be nothing to compare. */
	printf("SKIP: sanitizer build: the real library cannot be loaded apart (RTLD_DEEPBIND)\n");
	return 77;
#endif
	real = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!real) {
		printf("SKIP: cannot load %s: %s\n", argv[1], dlerror());
		return 77;
	}
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	http.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (http.fd < 0 || bind(http.fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(http.fd, 8) < 0 ||
	    getsockname(http.fd, (struct sockaddr *)&a, &al) < 0) {
		perror("HTTP server");
		return 1;
	}
	http.port = ntohs(a.sin_port);
	pthread_create(&http.th, NULL, http_run, &http);
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	shutdown(http.fd, SHUT_RDWR);
	close(http.fd);
	pthread_join(http.th, NULL);
	return r;
}
