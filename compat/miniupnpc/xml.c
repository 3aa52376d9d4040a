/* SPDX-License-Identifier: MIT */
/*
 * miniupnpc's XML helpers, written for this library: a small non-validating tokenizer (parsexml()), the
 * name/value list of a SOAP answer, IGD:2 port listings and the root description's services. The synthetic IGD
 * never needs them; applications that parse documents themselves with them get the same results as with
 * miniupnpc for well-formed input, and never a read outside the buffer for any input.
 */
#include <stdlib.h>
#include <string.h>

#include "miniupnpc/igd_desc_parse.h"
#include "miniupnpc/miniupnpc.h"
#include "miniupnpc/portlistingparse.h"
#include "miniupnpc/upnpreplyparse.h"
#include "common/compat_common.h"
#include "private.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Finds needle in [p, end); returns its start or NULL. */
static const char *find(const char *p, const char *end, const char *needle)
{
	size_t n = strlen(needle);
	for (; p && (size_t)(end - p) >= n; p++)
		if (!memcmp(p, needle, n))
			return p;
	return NULL;
}

/* An element name ends at white space, '/', '>' or the end; the namespace prefix ("s:") is dropped, as
 * miniupnpc's parser does, so "u:NewExternalPort" is reported as "NewExternalPort". */
static const char *name_end(const char *p, const char *end, const char **ret_start)
{
	const char *start = p;
	while (p < end && !is_space(*p) && *p != '/' && *p != '>') {
		if (*p == ':')
			start = p + 1;
		p++;
	}
	*ret_start = start;
	return p;
}

static void attributes(struct xmlparser *x, const char *p, const char *end)
{
	while (p < end) {
		while (p < end && is_space(*p))
			p++;
		const char *n = p;
		while (p < end && !is_space(*p) && *p != '=')
			p++;
		const char *ne = p;
		while (p < end && is_space(*p))
			p++;
		if (p >= end || *p != '=' || ne == n)
			return;
		p++;
		while (p < end && is_space(*p))
			p++;
		if (p >= end || (*p != '"' && *p != '\''))
			return;
		char q = *p++;
		const char *v = p;
		while (p < end && *p != q)
			p++;
		if (p >= end)
			return;
		if (x->attfunc)
			x->attfunc(x->data, n, (int)(ne - n), v, (int)(p - v));
		p++;
	}
}

PCPMAP_EXPORT_COMPAT void parsexml(struct xmlparser *x)
{
	if (!x || !x->xmlstart || x->xmlsize <= 0)
		return;
	const char *p = x->xmlstart, *end = x->xmlstart + x->xmlsize;
	x->xmlend = end;
	while (p < end) {
		x->xml = p;
		if (*p != '<') {
			/* Text up to the next tag, as it stands (white space included), as miniupnpc's parser. */
			const char *t = memchr(p, '<', (size_t)(end - p));
			const char *te = t ? t : end;
			if (x->datafunc)
				x->datafunc(x->data, p, (int)(te - p));
			p = te;
			continue;
		}
		p++;
		if (p < end && (*p == '?' || *p == '!')) {
			if ((size_t)(end - p) >= 8 && !memcmp(p, "![CDATA[", 8)) {
				const char *c = p + 8, *ce = find(c, end, "]]>");
				if (!ce)
					return;
				if (x->datafunc)
					x->datafunc(x->data, c, (int)(ce - c));
				p = ce + 3;
			} else if ((size_t)(end - p) >= 3 && !memcmp(p, "!--", 3)) {
				const char *ce = find(p + 3, end, "-->");
				if (!ce)
					return;
				p = ce + 3;
			} else {
				const char *ce = memchr(p, '>', (size_t)(end - p));
				if (!ce)
					return;
				p = ce + 1;
			}
			continue;
		}
		bool closing = p < end && *p == '/';
		if (closing)
			p++;
		const char *n, *ne = name_end(p, end, &n);
		const char *gt = memchr(ne, '>', (size_t)(end - ne));
		if (!gt)
			return;
		if (closing) {
			if (x->endeltfunc && ne > n)
				x->endeltfunc(x->data, n, (int)(ne - n));
		} else if (ne > n) {
			/* An empty element (<a/>) starts and never ends, as in miniupnpc's parser. */
			bool empty = gt[-1] == '/';
			if (x->starteltfunc)
				x->starteltfunc(x->data, n, (int)(ne - n));
			attributes(x, ne, empty ? gt - 1 : gt);
		}
		p = gt + 1;
	}
	x->xml = end;
}

static void run(const char *buf, int size, void *data, void (*start)(void *, const char *, int),
		void (*stop)(void *, const char *, int), void (*text)(void *, const char *, int))
{
	struct xmlparser x;
	memset(&x, 0, sizeof(x));
	x.xmlstart = buf;
	x.xmlsize = size;
	x.data = data;
	x.starteltfunc = start;
	x.endeltfunc = stop;
	x.datafunc = text;
	parsexml(&x);
}

/* Copies len bytes of s as a string into dst (size bytes), truncating. */
static void put_n(char *dst, size_t size, const char *s, int len)
{
	size_t n = len < 0 ? 0 : (size_t)len;
	if (n >= size)
		n = size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static bool name_is(const char *name, int len, const char *want)
{
	return len >= 0 && strlen(want) == (size_t)len && !memcmp(name, want, (size_t)len);
}

/* ---- SOAP answers: name/value pairs ---- */

/* An element's text is kept (cdata) until it ends; then it becomes a pair, "" when it had none. Containers
 * end after another element started inside them, so they give no pair. */
static void nv_start(void *d, const char *name, int len)
{
	struct NameValueParserData *p = d;
	put_n(p->curelt, sizeof(p->curelt), name, len);
	p->cdata = NULL;
	p->cdatalen = 0;
	p->topelt++;
}

static void nv_end(void *d, const char *name, int len)
{
	struct NameValueParserData *p = d;
	if (p->topelt > 0)
		p->topelt--;
	if (!p->curelt[0] || !name_is(name, len, p->curelt)) {
		p->curelt[0] = '\0';
		return;
	}
	const char *text = p->cdata ? p->cdata : "";
	int tlen = p->cdata ? p->cdatalen : 0;
	if (!strcmp(p->curelt, "NewPortListing")) {
		/* Kept whole: a listing outgrows a value (128 bytes); ParsePortListing() reads it. */
		char *l = malloc((size_t)tlen + 1);
		if (!l)
			return;
		memcpy(l, text, (size_t)tlen);
		l[tlen] = '\0';
		free(p->portListing);
		p->portListing = l;
		p->portListingLength = tlen;
	} else {
		struct NameValue *nv = calloc(1, sizeof(*nv));
		if (nv) {
			put_n(nv->name, sizeof(nv->name), p->curelt, (int)strlen(p->curelt));
			put_n(nv->value, sizeof(nv->value), text, tlen);
			/* Newest first, as miniupnpc: of two equal names the later one is found. */
			nv->l_next = p->l_head;
			p->l_head = nv;
		}
	}
	p->curelt[0] = '\0';
	p->cdata = NULL;
	p->cdatalen = 0;
}

static void nv_text(void *d, const char *text, int len)
{
	struct NameValueParserData *p = d;
	if (p->curelt[0]) {
		p->cdata = text;
		p->cdatalen = len;
	}
}

PCPMAP_EXPORT_COMPAT void ParseNameValue(const char *buffer, int bufsize, struct NameValueParserData *data)
{
	if (!data)
		return;
	memset(data, 0, sizeof(*data));
	if (buffer)
		run(buffer, bufsize, data, nv_start, nv_end, nv_text);
	data->cdata = NULL;
	data->cdatalen = 0;
}

PCPMAP_EXPORT_COMPAT void ClearNameValueList(struct NameValueParserData *pdata)
{
	if (!pdata)
		return;
	free(pdata->portListing);
	pdata->portListing = NULL;
	pdata->portListingLength = 0;
	while (pdata->l_head) {
		struct NameValue *next = pdata->l_head->l_next;
		free(pdata->l_head);
		pdata->l_head = next;
	}
}

PCPMAP_EXPORT_COMPAT char *GetValueFromNameValueList(struct NameValueParserData *pdata, const char *Name)
{
	if (!pdata || !Name)
		return NULL;
	for (struct NameValue *nv = pdata->l_head; nv; nv = nv->l_next)
		if (!strcmp(nv->name, Name))
			return nv->value;
	return NULL;
}

/* ---- IGD:2 port listings ---- */

static const char *const listing_elts[] = {
	[PortMappingEntry] = "PortMappingEntry",
	[NewRemoteHost] = "NewRemoteHost",
	[NewExternalPort] = "NewExternalPort",
	[NewProtocol] = "NewProtocol",
	[NewInternalPort] = "NewInternalPort",
	[NewInternalClient] = "NewInternalClient",
	[NewEnabled] = "NewEnabled",
	[NewDescription] = "NewDescription",
	[NewLeaseTime] = "NewLeaseTime",
};

static void pl_start(void *d, const char *name, int len)
{
	struct PortMappingParserData *p = d;
	p->curelt = PortMappingEltNone;
	for (int i = PortMappingEntry; i <= NewLeaseTime; i++)
		if (name_is(name, len, listing_elts[i]))
			p->curelt = (portMappingElt)i;
	if (p->curelt == PortMappingEntry) {
		/* Newest first, as miniupnpc lists them. */
		struct PortMapping *pm = calloc(1, sizeof(*pm));
		if (!pm)
			return;
		pm->l_next = p->l_head;
		p->l_head = pm;
	}
}

static void pl_end(void *d, const char *name, int len)
{
	struct PortMappingParserData *p = d;
	(void)name;
	(void)len;
	p->curelt = PortMappingEltNone;
}

static unsigned long long to_ull(const char *s, int len)
{
	unsigned long long v = 0;
	for (int i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	return v;
}

static void pl_text(void *d, const char *text, int len)
{
	struct PortMappingParserData *p = d;
	struct PortMapping *pm = p->l_head; /* the entry being filled */
	if (!pm)
		return;
	switch (p->curelt) {
	case NewRemoteHost:
		put_n(pm->remoteHost, sizeof(pm->remoteHost), text, len);
		break;
	case NewExternalPort:
		pm->externalPort = (unsigned short)to_ull(text, len);
		break;
	case NewProtocol:
		put_n(pm->protocol, sizeof(pm->protocol), text, len);
		break;
	case NewInternalPort:
		pm->internalPort = (unsigned short)to_ull(text, len);
		break;
	case NewInternalClient:
		put_n(pm->internalClient, sizeof(pm->internalClient), text, len);
		break;
	case NewEnabled:
		pm->enabled = (unsigned char)to_ull(text, len);
		break;
	case NewDescription:
		put_n(pm->description, sizeof(pm->description), text, len);
		break;
	case NewLeaseTime:
		pm->leaseTime = (UNSIGNED_INTEGER)to_ull(text, len);
		break;
	case PortMappingEltNone:
	case PortMappingEntry:
		break;
	}
}

PCPMAP_EXPORT_COMPAT void ParsePortListing(const char *buffer, int bufsize,
					   struct PortMappingParserData *pdata)
{
	if (!pdata)
		return;
	memset(pdata, 0, sizeof(*pdata));
	if (buffer)
		run(buffer, bufsize, pdata, pl_start, pl_end, pl_text);
	pdata->curelt = PortMappingEltNone;
}

/* ---- root descriptions ---- */

PCPMAP_EXPORT_COMPAT void IGDstartelt(void *d, const char *name, int len)
{
	struct IGDdatas *g = d;
	put_n(g->cureltname, sizeof(g->cureltname), name, len);
	g->level++;
	if (name_is(name, len, "service"))
		memset(&g->tmp, 0, sizeof(g->tmp));
}

static bool type_is(const char *servicetype, const char *service)
{
	static const char prefix[] = "urn:schemas-upnp-org:service:";
	size_t n = strlen(service);
	return !strncmp(servicetype, prefix, sizeof(prefix) - 1) &&
	       !strncmp(servicetype + sizeof(prefix) - 1, service, n) &&
	       servicetype[sizeof(prefix) - 1 + n] == ':';
}

PCPMAP_EXPORT_COMPAT void IGDendelt(void *d, const char *name, int len)
{
	struct IGDdatas *g = d;
	g->cureltname[0] = '\0';
	g->level--;
	if (!name_is(name, len, "service"))
		return;
	const char *t = g->tmp.servicetype;
	if (type_is(t, "WANCommonInterfaceConfig"))
		g->CIF = g->tmp;
	else if (type_is(t, "WANIPv6FirewallControl"))
		g->IPv6FC = g->tmp;
	else if (type_is(t, "WANIPConnection") || type_is(t, "WANPPPConnection")) {
		if (!g->first.servicetype[0])
			g->first = g->tmp;
		else if (!g->second.servicetype[0])
			g->second = g->tmp;
	}
}

PCPMAP_EXPORT_COMPAT void IGDdata(void *d, const char *text, int len)
{
	struct IGDdatas *g = d;
	char *dst = NULL;
	const char *e = g->cureltname;
	if (!strcmp(e, "URLBase"))
		dst = g->urlbase;
	else if (!strcmp(e, "presentationURL"))
		dst = g->presentationurl;
	else if (!strcmp(e, "serviceType"))
		dst = g->tmp.servicetype;
	else if (!strcmp(e, "controlURL"))
		dst = g->tmp.controlurl;
	else if (!strcmp(e, "eventSubURL"))
		dst = g->tmp.eventsuburl;
	else if (!strcmp(e, "SCPDURL"))
		dst = g->tmp.scpdurl;
	if (dst)
		put_n(dst, MINIUPNPC_URL_MAXSIZE, text, len);
}

PCPMAP_EXPORT_COMPAT void parserootdesc(const char *buffer, int bufsize, struct IGDdatas *data)
{
	/* Only what the document names is written: callers zero data first, as miniupnpc's own do. */
	if (data && buffer)
		run(buffer, bufsize, data, IGDstartelt, IGDendelt, IGDdata);
}
