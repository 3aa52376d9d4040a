/* The IGD operations over miniupnpc (worker thread only), and our own SSDP search.
 *
 * Discovery: miniupnpc 2.2.4's upnpDiscover() raises any delay below 1000 ms to 1000 ms and keeps listening
 * that long after the last answer, so it never returns in less than ~1.05 s although miniupnpd answers
 * within ~50 ms. We send the M-SEARCH ourselves (multicast on the interface towards the gateway, plus
 * unicast to the gateway, UDA 1.1 1.3.2), listen in escalating windows, and hand the first answer whose
 * LOCATION is the gateway's address to UPNP_GetValidIGD() at once. upnpDiscover() remains the fallback
 * when our socket cannot be used. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>

#include "dl/dl.h"
#include "upnp/upnp_int.h"

/* miniupnpc, loaded privately (core/dl/dl.h): every function of it that pcpmap calls. */
#define MU_SYMS(X)                          \
	X(upnpDiscover)                     \
	X(freeUPNPDevlist)                  \
	X(UPNP_GetValidIGD)                 \
	X(FreeUPNPUrls)                     \
	X(UPNP_GetExternalIPAddress)        \
	X(UPNP_AddPortMapping)              \
	X(UPNP_AddAnyPortMapping)           \
	X(UPNP_DeletePortMapping)           \
	X(UPNP_GetSpecificPortMappingEntry) \
	X(UPNP_AddPinhole)                  \
	X(UPNP_UpdatePinhole)               \
	X(UPNP_DeletePinhole)
#define MU_FIELD(n) __typeof__(n) *n;
static struct {
	MU_SYMS(MU_FIELD)
} mu;
#undef MU_FIELD
static pthread_once_t mu_once = PTHREAD_ONCE_INIT;
static int mu_err;
static char mu_why[256];

static void mu_load(void)
{
	void *h;
	mu_err = pm_dl_open(PCPMAP_MINIUPNPC_PATH, &h, mu_why, sizeof(mu_why));
#define MU_SYM(n)        \
	if (mu_err == 0) \
		mu_err = pm_dl_sym(h, #n, &mu.n, sizeof(mu.n), mu_why, sizeof(mu_why));
	MU_SYMS(MU_SYM)
#undef MU_SYM
}

int upnp_mini_load(const char **ret_why)
{
	pthread_once(&mu_once, mu_load);
	if (ret_why)
		*ret_why = mu_why;
	return mu_err;
}

struct mini {
	struct UPNPUrls urls;
	struct IGDdatas data;
	bool have;
};

/* ---- SSDP parsing (pure) ---- */

static const char *find_header(const char *buf, size_t len, const char *name, size_t *ret_len)
{
	size_t nlen = strlen(name);
	const char *end = buf + len;
	const char *p = memchr(buf, '\n', len);
	while (p && p + 1 < end) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			const char *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*ret_len = (size_t)(ve - v);
			return v;
		}
		p = eol < end ? eol : NULL;
	}
	return NULL;
}

static int copy_field(const char *v, size_t vlen, char *out, size_t cap)
{
	if (vlen + 1 > cap)
		return -ENOSPC;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
	return 0;
}

int upnp_ssdp_parse(const char *buf, size_t len, char *ret_loc, size_t loc_len, char *ret_st, size_t st_len)
{
	static const char ok[] = "HTTP/1.1 200";
	size_t llen = 0, slen = 0;
	if (len < sizeof(ok) - 1 || strncasecmp(buf, ok, sizeof(ok) - 1) != 0)
		return -EBADMSG;
	const char *loc = find_header(buf, len, "LOCATION", &llen);
	if (!loc || llen < 8 || strncasecmp(loc, "http://", 7) != 0)
		return -EBADMSG;
	const char *st = find_header(buf, len, "ST", &slen);
	if (!st) {
		st = "";
		slen = 0;
	}
	if (llen + 1 > loc_len || slen + 1 > st_len)
		return -ENOSPC;
	copy_field(loc, llen, ret_loc, loc_len);
	copy_field(st, slen, ret_st, st_len);
	return 0;
}

bool upnp_url_host_is(const char *url, const struct pm_sockaddr *sa)
{
	char host[64];
	if (strncasecmp(url, "http://", 7) != 0)
		return false;
	const char *h = url + 7, *e;
	if (*h == '[') {
		h++;
		e = strchr(h, ']');
	} else {
		e = h + strcspn(h, ":/");
	}
	if (!e || (size_t)(e - h) >= sizeof(host))
		return false;
	memcpy(host, h, (size_t)(e - h));
	host[e - h] = '\0';
	char *pct = strchr(host, '%');
	if (pct)
		*pct = '\0';
	if (sa->u.sa.sa_family == AF_INET) {
		struct in_addr a;
		return inet_pton(AF_INET, host, &a) == 1 && a.s_addr == sa->u.in.sin_addr.s_addr;
	}
	if (sa->u.sa.sa_family == AF_INET6) {
		struct in6_addr a;
		return inet_pton(AF_INET6, host, &a) == 1 && memcmp(&a, &sa->u.in6.sin6_addr, sizeof(a)) == 0;
	}
	return false;
}

/* ---- miniupnpc results ---- */

/* miniupnpc says only "HTTP error": errno of the failed connect or receive tells refused from timeout. */
static int result(int r, int err)
{
	if (r >= 0)
		return r;
	switch (r) {
	case UPNPCOMMAND_HTTP_ERROR:
		return err == ECONNREFUSED || err == ECONNRESET || err == EHOSTUNREACH || err == ENETUNREACH
			   ? -ECONNREFUSED
			   : -ETIMEDOUT;
	case UPNPCOMMAND_INVALID_ARGS:
		return -EINVAL;
	case UPNPCOMMAND_MEM_ALLOC_ERROR:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

static struct mini *M(struct upnp_igd *g)
{
	return g->impl;
}

/* ---- discovery ---- */

#define MAX_CANDS 8
#define SSDP_PORT 1900

struct cand {
	char loc[256];
	char st[128];
	unsigned scope;
	bool match;
	bool tried;
};

struct search {
	struct upnp_igd *g;
	int fd;
	int ufd; /* connected to the gateway's SSDP port: ICMP port unreachable says "no UPnP here" at once */
	int family;
	struct pm_sockaddr mcast, unicast;
	struct cand c[MAX_CANDS];
	size_t n;
	int send_errors;
};

static const char *const search_targets[] = {
	"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
	"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
	"urn:schemas-upnp-org:service:WANIPConnection:1",
	"urn:schemas-upnp-org:service:WANPPPConnection:1",
};

static unsigned local_ifindex(const struct pm_sockaddr *local)
{
	struct ifaddrs *ifa, *i;
	unsigned idx = 0;
	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i && !idx; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6)
			continue;
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
		if (memcmp(&a->sin6_addr, &local->u.in6.sin6_addr, sizeof(a->sin6_addr)) == 0)
			idx = if_nametoindex(i->ifa_name);
	}
	freeifaddrs(ifa);
	return idx;
}

static int search_open(struct search *s)
{
	struct upnp_igd *g = s->g;
	s->family = g->gw.u.sa.sa_family;
	s->fd = socket(s->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return -errno;
	struct pm_sockaddr bind_to = g->local;
	if (s->family == AF_INET) {
		unsigned char ttl = 2; /* UDA 1.1: TTL 2 by default */
		setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
		if (g->local.u.sa.sa_family == AF_INET)
			setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_IF, &g->local.u.in.sin_addr,
				   sizeof(g->local.u.in.sin_addr));
		bind_to.u.in.sin_port = 0;
		pm_sockaddr_set(&s->mcast, "239.255.255.250", SSDP_PORT);
	} else {
		int hops = 2;
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops));
		unsigned idx =
		    g->gw.u.in6.sin6_scope_id ? g->gw.u.in6.sin6_scope_id : local_ifindex(&g->local);
		if (idx)
			setsockopt(s->fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx));
		bind_to.u.in6.sin6_port = 0;
		pm_sockaddr_set(&s->mcast, "ff02::c", SSDP_PORT);
		s->mcast.u.in6.sin6_scope_id = idx;
	}
	if (bind_to.u.sa.sa_family == s->family)
		bind(s->fd, &bind_to.u.sa, bind_to.len); /* best effort: the kernel picks otherwise */
	s->unicast = g->gw;
	if (s->family == AF_INET)
		s->unicast.u.in.sin_port = htons(SSDP_PORT);
	else
		s->unicast.u.in6.sin6_port = htons(SSDP_PORT);
	if (pm_udp_connect(&s->unicast, &s->ufd, NULL) < 0)
		s->ufd = -1;
	return 0;
}

static void host_of(const struct pm_sockaddr *to, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "";
	if (to->u.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &to->u.in.sin_addr, buf, (socklen_t)len);
		return;
	}
	inet_ntop(AF_INET6, &to->u.in6.sin6_addr, a, sizeof(a));
	snprintf(buf, len, "[%s]", a);
}

static int send_one(struct search *s, const struct pm_sockaddr *to, const char *st)
{
	char host[64], buf[512];
	host_of(to, host, sizeof(host));
	int n = snprintf(
	    buf, sizeof(buf),
	    "M-SEARCH * HTTP/1.1\r\nHOST: %s:%d\r\nST: %s\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n\r\n", host,
	    SSDP_PORT, st);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENOSPC;
	return sendto(s->fd, buf, (size_t)n, 0, &to->u.sa, to->len) < 0 ? -errno : 0;
}

static int send_unicast(struct search *s)
{
	char host[64], buf[512];
	host_of(&s->unicast, host, sizeof(host));
	int n = snprintf(buf, sizeof(buf),
			 "M-SEARCH * HTTP/1.1\r\nHOST: %s:%d\r\nST: %s\r\nMAN: \"ssdp:discover\"\r\n\r\n",
			 host, SSDP_PORT, search_targets[0]);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENOSPC;
	return pm_udp_send(s->ufd, buf, (size_t)n);
}

/* Every search target to the multicast group, the IGD device type to the gateway itself. */
static int send_msearch(struct search *s)
{
	int sent = 0, err = 0, r;
	for (size_t t = 0; t < sizeof(search_targets) / sizeof(search_targets[0]); t++) {
		r = send_one(s, &s->mcast, search_targets[t]);
		if (r < 0)
			err = r;
		else
			sent++;
	}
	r = s->ufd >= 0 ? send_unicast(s) : send_one(s, &s->unicast, search_targets[0]);
	if (r == -ECONNREFUSED)
		return r;
	if (r < 0)
		err = r;
	else
		sent++;
	if (!sent)
		s->send_errors++;
	return sent ? 0 : err;
}

static void free_devlist(struct UPNPDev *d)
{
	while (d) {
		struct UPNPDev *n = d->pNext;
		free(d);
		d = n;
	}
}

/* A device list as upnpDiscover() builds it (upnpdev.h): URL, ST and USN strings in the node's buffer. */
static struct UPNPDev *dev_new(const char *loc, const char *st, unsigned scope)
{
	size_t ll = strlen(loc), sl = strlen(st);
	struct UPNPDev *d = calloc(1, sizeof(*d) + ll + sl + 3);
	if (!d)
		return NULL;
	d->descURL = d->buffer;
	memcpy(d->descURL, loc, ll + 1);
	d->st = d->descURL + ll + 1;
	memcpy(d->st, st, sl + 1);
	d->usn = d->st + sl + 1;
	d->usn[0] = '\0';
	d->scope_id = scope;
	return d;
}

static int get_valid_igd(struct UPNPDev *devs, struct UPNPUrls *urls, struct IGDdatas *data, char *lan,
			 int lanlen)
{
#if MINIUPNPC_API_VERSION >= 18
	char wan[64];
	return mu.UPNP_GetValidIGD(devs, urls, data, lan, lanlen, wan, (int)sizeof(wan));
#else
	return mu.UPNP_GetValidIGD(devs, urls, data, lan, lanlen);
#endif
}

/* 1 and 2 are usable: 2 is "not connected", which miniupnpd also says when its WAN address is private or
 * reserved (double NAT, CGN, or a lab's documentation range); API 18+ calls it UPNP_PRIVATEIP_IGD. */
static bool usable(int st)
{
	return st == 1 || st == 2;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void adopt(struct upnp_igd *g, int st, char *lan)
{
	struct mini *m = M(g);
	m->have = true;
	g->status = st;
	g->v2 = ends_with(m->data.first.servicetype, ":2");
	g->has_6fc = m->data.IPv6FC.servicetype[0] && m->data.IPv6FC.controlurl[0] &&
		     m->urls.controlURL_6FC && m->urls.controlURL_6FC[0];
	snprintf(g->url, sizeof(g->url), "%s", m->urls.controlURL ? m->urls.controlURL : "");
	snprintf(g->st, sizeof(g->st), "%s", m->data.first.servicetype);
	snprintf(g->lan, sizeof(g->lan), "%s", lan);
}

/* GetValidIGD over a device list, the gateway's own first. */
static int validate_list(struct upnp_igd *g, struct UPNPDev *devs)
{
	struct mini *m = M(g);
	char lan[UPNP_ADDR_LEN] = "";
	memset(&m->urls, 0, sizeof(m->urls));
	memset(&m->data, 0, sizeof(m->data));
	int st = get_valid_igd(devs, &m->urls, &m->data, lan, (int)sizeof(lan));
	if (usable(st)) {
		adopt(g, st, lan);
		return 1;
	}
	if (st > 0)
		mu.FreeUPNPUrls(&m->urls);
	return 0;
}

static int validate(struct search *s)
{
	struct UPNPDev *head = NULL, **tail = &head;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n; i++) {
			struct cand *c = &s->c[i];
			if (c->tried || c->match != (pass == 0))
				continue;
			c->tried = true;
			struct UPNPDev *d = dev_new(c->loc, c->st, c->scope);
			if (!d)
				break;
			*tail = d;
			tail = &d->pNext;
		}
	}
	if (!head)
		return 0;
	int r = validate_list(s->g, head);
	free_devlist(head);
	return r;
}

/* Adds an answer; returns true when it names the gateway itself (worth validating at once). */
static bool take_answer(struct search *s, const char *buf, size_t len, const struct sockaddr_storage *from)
{
	char loc[256], st[128];
	if (upnp_ssdp_parse(buf, len, loc, sizeof(loc), st, sizeof(st)) < 0)
		return false;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->c[i].loc, loc) == 0)
			return false;
	if (s->n >= MAX_CANDS)
		return false;
	struct cand *c = &s->c[s->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->loc, sizeof(c->loc), "%s", loc);
	snprintf(c->st, sizeof(c->st), "%s", st);
	if (from->ss_family == AF_INET6)
		c->scope = ((const struct sockaddr_in6 *)(const void *)from)->sin6_scope_id;
	c->match = upnp_url_host_is(loc, &s->g->gw);
	return c->match;
}

static int search_window(void *ctx, int window_ms)
{
	struct search *s = ctx;
	int r = send_msearch(s);
	if (r < 0 && s->n == 0)
		return r;
	uint64_t end = pcpmap_now_usec() + (uint64_t)window_ms * 1000u;
	for (;;) {
		if (atomic_load(s->g->stop))
			return -ECANCELED;
		uint64_t now = pcpmap_now_usec();
		if (now >= end)
			break;
		/* Short slices so a closing server does not wait for the window. */
		uint64_t left_ms = (end - now + 999) / 1000;
		struct pollfd pfd[2] = { { .fd = s->fd, .events = POLLIN },
					 { .fd = s->ufd, .events = POLLIN } };
		int n = poll(pfd, s->ufd >= 0 ? 2 : 1, left_ms > 50 ? 50 : (int)left_ms);
		if (n <= 0)
			continue;
		bool now_try = false;
		if (s->ufd >= 0 && (pfd[1].revents & (POLLIN | POLLERR))) {
			char buf[1536];
			ssize_t got = pm_udp_recv(s->ufd, buf, sizeof(buf) - 1);
			/* The gateway itself has no SSDP listener: it does not speak UPnP. */
			if (got == -ECONNREFUSED)
				return -ECONNREFUSED;
			if (got > 0) {
				buf[got] = '\0';
				struct sockaddr_storage from;
				memcpy(&from, &s->unicast.u, s->unicast.len);
				now_try |= take_answer(s, buf, (size_t)got, &from);
			}
		}
		for (int i = 0; i < 16; i++) {
			char buf[1536];
			struct sockaddr_storage from;
			socklen_t flen = sizeof(from);
			ssize_t got =
			    recvfrom(s->fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &flen);
			if (got < 0)
				break;
			buf[got] = '\0';
			now_try |= take_answer(s, buf, (size_t)got, &from);
		}
		if (now_try && validate(s))
			return 1;
	}
	/* The window is over: settle for another IGD on the link if the gateway itself was silent. */
	return validate(s);
}

/* upnpDiscover() and GetValidIGD as upnpc does it, when our own socket cannot be used. */
static int classic_discover(struct upnp_igd *g)
{
	int err = 0;
	struct UPNPDev *devs =
	    mu.upnpDiscover(2000, NULL, NULL, UPNP_LOCAL_PORT_ANY, g->gw.u.sa.sa_family == AF_INET6, 2, &err);
	if (!devs)
		return -ETIMEDOUT;
	/* The gateway's own IGD first. */
	struct UPNPDev *mine = NULL, **mt = &mine, *rest = NULL, **rt = &rest;
	for (struct UPNPDev *d = devs, *n; d; d = n) {
		n = d->pNext;
		d->pNext = NULL;
		if (upnp_url_host_is(d->descURL, &g->gw)) {
			*mt = d;
			mt = &d->pNext;
		} else {
			*rt = d;
			rt = &d->pNext;
		}
	}
	*mt = rest;
	int r = validate_list(g, mine);
	mu.freeUPNPDevlist(mine);
	g->window_ms = 2000;
	return r ? 0 : -ETIMEDOUT;
}

static int mini_discover(struct upnp_igd *g)
{
	if (!g->impl) {
		g->impl = calloc(1, sizeof(struct mini));
		if (!g->impl)
			return -ENOMEM;
	}
	struct search s;
	memset(&s, 0, sizeof(s));
	s.g = g;
	int r = search_open(&s);
	if (r < 0)
		return classic_discover(g);
	size_t n = upnp_n_discovery_windows;
	if (g->max_windows && g->max_windows < n)
		n = g->max_windows;
	r = upnp_discover_escalating(search_window, &s, upnp_discovery_windows_ms, n);
	close(s.fd);
	if (s.ufd >= 0)
		close(s.ufd);
	if (r >= 0) {
		g->window_ms = upnp_discovery_windows_ms[r];
		return 0;
	}
	if (r != -ECANCELED && r != -ETIMEDOUT && r != -ECONNREFUSED)
		return classic_discover(g); /* could not send at all */
	return r;
}

/* A remembered IGD: its control URL and service type are all the SOAP calls need (no description fetch). */
static int mini_adopt(struct upnp_igd *g)
{
	struct mini *m = M(g);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return -ENOMEM;
		g->impl = m;
	} else if (m->have) {
		mu.FreeUPNPUrls(&m->urls);
	}
	memset(&m->urls, 0, sizeof(m->urls));
	memset(&m->data, 0, sizeof(m->data));
	m->have = false;
	if (strlen(g->st) >= sizeof(m->data.first.servicetype))
		return -ENAMETOOLONG;
	/* FreeUPNPUrls() frees these with free(): allocated with malloc() as miniupnpc does. */
	m->urls.controlURL = strdup(g->url);
	if (!m->urls.controlURL)
		return -ENOMEM;
	snprintf(m->data.first.servicetype, sizeof(m->data.first.servicetype), "%s", g->st);
	m->have = true;
	return 0;
}

static void mini_forget(struct upnp_igd *g)
{
	struct mini *m = M(g);
	if (!m)
		return;
	if (m->have)
		mu.FreeUPNPUrls(&m->urls);
	free(m);
	g->impl = NULL;
}

static int mini_get_ext(struct upnp_igd *g, char ext[UPNP_ADDR_LEN])
{
	struct mini *m = M(g);
	char buf[UPNP_ADDR_LEN] = "";
	errno = 0;
	int r = mu.UPNP_GetExternalIPAddress(m->urls.controlURL, m->data.first.servicetype, buf);
	r = result(r, errno);
	if (r == 0 && !buf[0])
		r = -EPROTO;
	if (r == 0)
		snprintf(ext, UPNP_ADDR_LEN, "%s", buf);
	return r;
}

static int mini_add(struct upnp_igd *g, const struct upnp_add_args *a)
{
	struct mini *m = M(g);
	char e[8], i[8], l[16];
	snprintf(e, sizeof(e), "%u", a->ext_port);
	snprintf(i, sizeof(i), "%u", a->int_port);
	snprintf(l, sizeof(l), "%u", a->lease);
	errno = 0;
	int r = mu.UPNP_AddPortMapping(m->urls.controlURL, m->data.first.servicetype, e, i, a->client,
				       a->desc, a->proto, NULL, l);
	return result(r, errno);
}

static int mini_add_any(struct upnp_igd *g, const struct upnp_add_args *a, uint16_t *ret_port)
{
	struct mini *m = M(g);
	char e[8], i[8], l[16], got[16] = "";
	snprintf(e, sizeof(e), "%u", a->ext_port);
	snprintf(i, sizeof(i), "%u", a->int_port);
	snprintf(l, sizeof(l), "%u", a->lease);
	errno = 0;
	int r = mu.UPNP_AddAnyPortMapping(m->urls.controlURL, m->data.first.servicetype, e, i, a->client,
					  a->desc, a->proto, NULL, l, got);
	r = result(r, errno);
	if (r == 0) {
		char *end;
		unsigned long p = strtoul(got, &end, 10);
		if (end == got || p == 0 || p > 65535)
			return -EPROTO;
		*ret_port = (uint16_t)p;
	}
	return r;
}

static int mini_del(struct upnp_igd *g, uint16_t ext_port, const char *proto)
{
	struct mini *m = M(g);
	char e[8];
	snprintf(e, sizeof(e), "%u", ext_port);
	errno = 0;
	int r = mu.UPNP_DeletePortMapping(m->urls.controlURL, m->data.first.servicetype, e, proto, NULL);
	return result(r, errno);
}

static int mini_get_entry(struct upnp_igd *g, uint16_t ext_port, const char *proto,
			  char client[UPNP_ADDR_LEN], uint16_t *ret_int_port)
{
	struct mini *m = M(g);
	char e[8], who[UPNP_ADDR_LEN] = "", iport[16] = "", desc[96] = "", en[8] = "", lease[24] = "";
	snprintf(e, sizeof(e), "%u", ext_port);
	errno = 0;
	int r = mu.UPNP_GetSpecificPortMappingEntry(m->urls.controlURL, m->data.first.servicetype, e, proto,
						    NULL, who, iport, desc, en, lease);
	r = result(r, errno);
	if (r == 0) {
		snprintf(client, UPNP_ADDR_LEN, "%s", who);
		*ret_int_port = (uint16_t)strtoul(iport, NULL, 10);
	}
	return r;
}

static int mini_add_pinhole(struct upnp_igd *g, const char *client, uint16_t port, uint8_t ip_proto,
			    uint32_t lease, char uid[UPNP_UID_LEN])
{
	struct mini *m = M(g);
	char p[8], pr[8], l[16], id[UPNP_UID_LEN] = "";
	snprintf(p, sizeof(p), "%u", port);
	snprintf(pr, sizeof(pr), "%u", ip_proto); /* WANIPv6FirewallControl wants the protocol number */
	snprintf(l, sizeof(l), "%u", lease);
	errno = 0;
	int r = mu.UPNP_AddPinhole(m->urls.controlURL_6FC, m->data.IPv6FC.servicetype, "", "0", client, p, pr,
				   l, id);
	r = result(r, errno);
	if (r == 0) {
		if (!id[0])
			return -EPROTO;
		memcpy(uid, id, UPNP_UID_LEN);
		uid[UPNP_UID_LEN - 1] = '\0';
	}
	return r;
}

static int mini_update_pinhole(struct upnp_igd *g, const char *uid, uint32_t lease)
{
	struct mini *m = M(g);
	char l[16];
	snprintf(l, sizeof(l), "%u", lease);
	errno = 0;
	int r = mu.UPNP_UpdatePinhole(m->urls.controlURL_6FC, m->data.IPv6FC.servicetype, uid, l);
	return result(r, errno);
}

static int mini_del_pinhole(struct upnp_igd *g, const char *uid)
{
	struct mini *m = M(g);
	errno = 0;
	int r = mu.UPNP_DeletePinhole(m->urls.controlURL_6FC, m->data.IPv6FC.servicetype, uid);
	return result(r, errno);
}

const struct upnp_igd_ops upnp_miniupnpc_ops = {
	.discover = mini_discover,
	.adopt = mini_adopt,
	.forget = mini_forget,
	.get_ext = mini_get_ext,
	.add = mini_add,
	.add_any = mini_add_any,
	.del = mini_del,
	.get_entry = mini_get_entry,
	.add_pinhole = mini_add_pinhole,
	.update_pinhole = mini_update_pinhole,
	.del_pinhole = mini_del_pinhole,
};

const struct upnp_igd_ops *upnp_igd_default_ops = &upnp_miniupnpc_ops;
