/* SPDX-License-Identifier: MIT */
/*
 * miniupnpc's HTTP, SOAP and minissdpd helpers, written for this library with plain sockets. The synthetic
 * IGD's "pcpmap://" URLs are not HTTP, so for them every call fails as miniupnpc fails for a host that does
 * not answer; for real "http://" URLs they do what miniupnpc's do (doc/COMPAT.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "miniupnpc/miniupnpc.h"
#include "miniupnpc/miniwget.h"
#include "common/compat_common.h"
#include "private.h"

/* miniupnpc's timeouts: connect and each receive. */
#define HTTP_TIMEOUT_MS  3000
#define RECV_TIMEOUT_MS  5000
#define MAX_BODY         (16u << 20)
#define MINISSDPD_SOCKET "/var/run/minissdpd.sock"

PCPMAP_EXPORT_COMPAT int parseURL(const char *url, char *hostname, unsigned short *port, char **path,
				  unsigned int *scope_id)
{
	/* miniupnpc takes "https://" too (and still speaks plain HTTP to port 80). */
	if (!url || !hostname || !port || !path ||
	    (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
		return 0;
	const char *h = url + (url[4] == 's' ? 8 : 7), *he;
	unsigned sid = 0;
	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (!close)
			return 0;
		he = close + 1;
		/* "[fe80::1%25eth0]": the zone names the interface of a link-local address. */
		const char *pct = memchr(h, '%', (size_t)(close - h));
		if (pct) {
			char ifname[IF_NAMESIZE + 1];
			const char *z = pct + 1;
			if (close - z > 2 && !strncmp(z, "25", 2))
				z += 2;
			size_t n = (size_t)(close - z);
			if (n > IF_NAMESIZE)
				return 0;
			memcpy(ifname, z, n);
			ifname[n] = '\0';
			sid = if_nametoindex(ifname);
			if (!sid)
				sid = (unsigned)strtoul(ifname, NULL, 10);
		}
	} else {
		he = h + strcspn(h, ":/");
	}
	/* A longer host is cut to 64 bytes, as miniupnpc does (MAXHOSTNAMELEN). */
	size_t hl = (size_t)(he - h) > 64 ? 64 : (size_t)(he - h);
	/* The port as miniupnpc reads it: the digits after ':', up to the first other character, modulo 2^16. */
	unsigned short v = 80;
	const char *q = he;
	if (*q == ':')
		for (v = 0, q++; *q >= '0' && *q <= '9'; q++)
			v = (unsigned short)(v * 10u + (unsigned)(*q - '0'));
	/* miniupnpc wants a path: "http://host" alone is not a URL it takes. */
	const char *slash = strchr(q, '/');
	if (!slash)
		return 0;
	memcpy(hostname, h, hl);
	hostname[hl] = '\0';
	*port = v;
	*path = (char *)(uintptr_t)slash;
	if (scope_id)
		*scope_id = sid;
	return 1;
}

PCPMAP_EXPORT_COMPAT int connecthostport(const char *host, unsigned short port, unsigned int scope_id)
{
	char h[80], serv[8];
	struct addrinfo hints, *ai, *a;
	int s = -1;
	if (!host)
		return -1;
	/* "[v6]" as parseURL() leaves it; a "%zone" inside is given by scope_id. */
	size_t n = strlen(host);
	if (n >= sizeof(h))
		return -1;
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		h[strcspn(h, "%")] = '\0';
	} else {
		memcpy(h, host, n + 1);
	}
	snprintf(serv, sizeof(serv), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	if (getaddrinfo(h, serv, &hints, &ai) != 0)
		return -1;
	for (a = ai; a && s < 0; a = a->ai_next) {
		s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
		if (s < 0)
			continue;
		if (a->ai_family == AF_INET6 && scope_id)
			((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_scope_id = scope_id;
		int r = connect(s, a->ai_addr, a->ai_addrlen);
		if (r < 0 && errno == EINPROGRESS) {
			struct pollfd p = { .fd = s, .events = POLLOUT };
			int err = ETIMEDOUT;
			socklen_t el = sizeof(err);
			if (poll(&p, 1, HTTP_TIMEOUT_MS) == 1)
				getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
			r = err ? -1 : 0;
		}
		if (r < 0) {
			close(s);
			s = -1;
		}
	}
	freeaddrinfo(ai);
	if (s >= 0) {
		/* The callers expect a blocking socket, as miniupnpc hands out. */
		struct timeval tv = { .tv_sec = HTTP_TIMEOUT_MS / 1000 };
		int fl = fcntl(s, F_GETFL);
		if (fl < 0 || fcntl(s, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			close(s);
			return -1;
		}
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return s;
}

PCPMAP_EXPORT_COMPAT int receivedata(int socket, char *data, int length, int timeout, unsigned int *scope_id)
{
	struct pollfd p = { .fd = socket, .events = POLLIN };
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	if (!data || length < 0)
		return -1;
	int r = poll(&p, 1, timeout);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0; /* timed out */
	ssize_t n = recvfrom(socket, data, (size_t)length, 0, (struct sockaddr *)&from, &fl);
	if (n < 0)
		return -1;
	if (scope_id && from.ss_family == AF_INET6)
		*scope_id = ((struct sockaddr_in6 *)(void *)&from)->sin6_scope_id;
	return (int)n;
}

static int send_all(int fd, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return (int)len;
}

PCPMAP_EXPORT_COMPAT int soapPostSubmit(int fd, const char *url, const char *host, unsigned short port,
					const char *action, const char *body, const char *httpversion)
{
	if (fd < 0 || !url || !host || !action || !body)
		return -1;
	size_t bl = strlen(body);
	char head[2048];
	int n = port == 80
		    ? snprintf(head, sizeof(head),
			       "POST %s HTTP/%s\r\nHost: %s\r\nUser-Agent: pcpmap-miniupnpc\r\n"
			       "Content-Length: %zu\r\nContent-Type: text/xml\r\nSOAPAction: \"%s\"\r\n"
			       "Connection: close\r\nCache-Control: no-cache\r\nPragma: no-cache\r\n\r\n",
			       url, httpversion ? httpversion : "1.1", host, bl, action)
		    : snprintf(head, sizeof(head),
			       "POST %s HTTP/%s\r\nHost: %s:%u\r\nUser-Agent: pcpmap-miniupnpc\r\n"
			       "Content-Length: %zu\r\nContent-Type: text/xml\r\nSOAPAction: \"%s\"\r\n"
			       "Connection: close\r\nCache-Control: no-cache\r\nPragma: no-cache\r\n\r\n",
			       url, httpversion ? httpversion : "1.1", host, port, bl, action);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	if (send_all(fd, head, (size_t)n) < 0 || send_all(fd, body, bl) < 0)
		return -1;
	return n + (int)bl;
}

/* A growing buffer of what the socket delivered. */
struct rbuf {
	char *p;
	size_t len, cap;
};

static int rbuf_more(struct rbuf *b, int s)
{
	if (b->cap - b->len < 4096) {
		size_t cap = b->cap ? b->cap * 2 : 8192;
		if (cap > MAX_BODY + 65536)
			return -1;
		char *p = realloc(b->p, cap + 1);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	int n = receivedata(s, b->p + b->len, (int)(b->cap - b->len), RECV_TIMEOUT_MS, NULL);
	if (n > 0) {
		b->len += (size_t)n;
		b->p[b->len] = '\0';
	}
	return n;
}

static const char *header(const char *head, size_t hlen, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = head; l && l < head + hlen;) {
		if (!strncasecmp(l, name, n) && l[n] == ':') {
			l += n + 1;
			while (*l == ' ' || *l == '\t')
				l++;
			return l;
		}
		l = strstr(l, "\r\n");
		if (l)
			l += 2;
	}
	return NULL;
}

/* Whether [p, p + len) holds a whole chunked body, up to its last (empty) chunk. */
static bool chunked_complete(const char *p, size_t len)
{
	size_t in = 0;
	for (;;) {
		char *e;
		const char *eol = in < len ? memmem(p + in, len - in, "\r\n", 2) : NULL;
		if (!eol)
			return false;
		unsigned long n = strtoul(p + in, &e, 16);
		if (e == p + in)
			return false;
		in = (size_t)(eol - p) + 2;
		if (n == 0)
			return true;
		if (n > len - in || len - in - n < 2)
			return false;
		in += n + 2;
	}
}

/* Decodes a chunked body in place; its length, or -1 when incomplete or malformed. */
static long dechunk(char *p, size_t len)
{
	size_t in = 0, out = 0;
	for (;;) {
		char *e;
		if (in >= len)
			return -1;
		unsigned long n = strtoul(p + in, &e, 16);
		char *eol = strstr(p + in, "\r\n");
		if (e == p + in || !eol)
			return -1;
		in = (size_t)(eol - p) + 2;
		if (n == 0)
			return (long)out;
		if (n > len - in)
			return -1;
		memmove(p + out, p + in, n);
		out += n;
		in += n + 2;
	}
}

PCPMAP_EXPORT_COMPAT void *getHTTPResponse(int s, int *size, int *status_code)
{
	struct rbuf b = { 0 };
	char *end_of_head = NULL;
	if (status_code)
		*status_code = -1;
	if (size)
		*size = -1;
	while (!end_of_head) {
		if (rbuf_more(&b, s) <= 0)
			goto fail;
		end_of_head = strstr(b.p, "\r\n\r\n");
	}
	size_t hlen = (size_t)(end_of_head - b.p) + 4;
	int status = -1;
	if (sscanf(b.p, "HTTP/%*u.%*u %d", &status) != 1)
		goto fail;
	if (status_code)
		*status_code = status;
	const char *cl = header(b.p, hlen, "Content-Length");
	const char *te = header(b.p, hlen, "Transfer-Encoding");
	bool chunked = te && !strncasecmp(te, "chunked", 7);
	long want = cl && !chunked ? strtol(cl, NULL, 10) : -1;
	if (want > (long)MAX_BODY)
		goto fail;
	/* Up to Content-Length, the last chunk, or the end of the connection. */
	for (;;) {
		size_t have = b.len - hlen;
		if (want >= 0 && have >= (size_t)want)
			break;
		if (chunked && chunked_complete(b.p + hlen, have))
			break;
		int n = rbuf_more(&b, s);
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
	}
	long blen = (long)(b.len - hlen);
	if (want >= 0 && blen > want)
		blen = want;
	if (chunked)
		blen = dechunk(b.p + hlen, b.len - hlen);
	if (blen < 0)
		goto fail;
	char *body = malloc((size_t)blen + 1);
	if (!body)
		goto fail;
	memcpy(body, b.p + hlen, (size_t)blen);
	body[blen] = '\0';
	free(b.p);
	if (size)
		*size = (int)blen;
	return body;
fail:
	free(b.p);
	return NULL;
}

PCPMAP_EXPORT_COMPAT void *miniwget_getaddr(const char *url, int *size, char *addr, int addrlen,
					    unsigned int scope_id, int *status_code)
{
	char host[80];
	unsigned short port;
	char *path;
	unsigned sid = 0;
	if (size)
		*size = 0;
	if (status_code)
		*status_code = -1;
	if (addr && addrlen > 0)
		addr[0] = '\0';
	if (!parseURL(url, host, &port, &path, &sid))
		return NULL;
	int s = connecthostport(host, port, sid ? sid : scope_id);
	if (s < 0)
		return NULL;
	if (addr && addrlen > 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(s, (struct sockaddr *)&ss, &sl) == 0) {
			const void *a = ss.ss_family == AF_INET6
					    ? (const void *)&((struct sockaddr_in6 *)(void *)&ss)->sin6_addr
					    : (const void *)&((struct sockaddr_in *)(void *)&ss)->sin_addr;
			if (!inet_ntop(ss.ss_family, a, addr, (socklen_t)addrlen))
				addr[0] = '\0';
		}
	}
	char req[1024];
	int n = snprintf(
	    req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\nUser-Agent: pcpmap-miniupnpc\r\n\r\n",
	    path, host, port);
	void *body = NULL;
	if (n > 0 && (size_t)n < sizeof(req) && send_all(s, req, (size_t)n) >= 0)
		body = getHTTPResponse(s, size, status_code);
	close(s);
	if (!body && size)
		*size = 0;
	return body;
}

PCPMAP_EXPORT_COMPAT void *miniwget(const char *url, int *size, unsigned int scope_id, int *status_code)
{
	return miniwget_getaddr(url, size, NULL, 0, scope_id, status_code);
}

/* A SOAP envelope for action with args, into a malloc'ed string. */
static char *soap_body(const char *service, const char *action, const struct UPNParg *args)
{
	size_t len = 512 + 2 * strlen(action) + strlen(service);
	for (const struct UPNParg *a = args; a && a->elt; a++)
		len += 2 * strlen(a->elt) + (a->val ? strlen(a->val) : 0) + 8;
	char *b = malloc(len);
	if (!b)
		return NULL;
	size_t o = (size_t)snprintf(b, len,
				    "<?xml version=\"1.0\"?>\r\n<s:Envelope "
				    "xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" "
				    "s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">"
				    "<s:Body><u:%s xmlns:u=\"%s\">",
				    action, service);
	for (const struct UPNParg *a = args; a && a->elt; a++)
		o += (size_t)snprintf(b + o, len - o, "<%s>%s</%s>", a->elt, a->val ? a->val : "", a->elt);
	snprintf(b + o, len - o, "</u:%s></s:Body></s:Envelope>\r\n", action);
	return b;
}

PCPMAP_EXPORT_COMPAT char *simpleUPnPcommand(int s, const char *url, const char *service, const char *action,
					     struct UPNParg *args, int *bufsize)
{
	char host[80], soapact[256];
	unsigned short port;
	char *path;
	unsigned sid = 0;
	if (bufsize)
		*bufsize = 0;
	/* The synthetic IGD's pcpmap:// URLs fail here: parseURL() takes http:// only. */
	if (!url || !service || !action || !parseURL(url, host, &port, &path, &sid))
		return NULL;
	int n = snprintf(soapact, sizeof(soapact), "%s#%s", service, action);
	if (n < 0 || (size_t)n >= sizeof(soapact))
		return NULL;
	char *body = soap_body(service, action, args);
	if (!body)
		return NULL;
	if (s < 0)
		s = connecthostport(host, port, sid);
	char *ret = NULL;
	int size = 0;
	if (s >= 0 && soapPostSubmit(s, path, host, port, soapact, body, "1.1") > 0)
		ret = getHTTPResponse(s, &size, NULL);
	free(body);
	if (s >= 0)
		close(s);
	if (ret && bufsize)
		*bufsize = size;
	return ret;
}

PCPMAP_EXPORT_COMPAT int addr_is_reserved(const char *addr_str)
{
	/* RFC 6890's special-purpose IPv4 blocks not forwarded on the Internet, plus multicast and class E. */
	static const struct {
		uint32_t net;
		uint8_t len;
	} blocks[] = {
		{ 0x00000000u, 8 },  { 0x0a000000u, 8 },  { 0x64400000u, 10 }, { 0x7f000000u, 8 },
		{ 0xa9fe0000u, 16 }, { 0xac100000u, 12 }, { 0xc0000000u, 24 }, { 0xc0000200u, 24 },
		{ 0xc01fc400u, 24 }, { 0xc034c100u, 24 }, { 0xc0586300u, 24 }, { 0xc0a80000u, 16 },
		{ 0xc0af3000u, 24 }, { 0xc6120000u, 15 }, { 0xc6336400u, 24 }, { 0xcb007100u, 24 },
		{ 0xe0000000u, 4 },  { 0xf0000000u, 4 },
	};
	struct in_addr a;
	if (!addr_str || inet_pton(AF_INET, addr_str, &a) != 1)
		return 1;
	uint32_t v = ntohl(a.s_addr);
	for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
		if ((v & (0xffffffffu << (32 - blocks[i].len))) == blocks[i].net)
			return 1;
	return 0;
}

/* ---- minissdpd (its Unix socket protocol: lengths in 7-bit groups, most significant first) ---- */

PCPMAP_EXPORT_COMPAT int connectToMiniSSDPD(const char *socketpath)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!socketpath)
		socketpath = MINISSDPD_SOCKET;
	if (strlen(socketpath) >= sizeof(sa.sun_path))
		return MINISSDPC_INVALID_INPUT;
	memcpy(sa.sun_path, socketpath, strlen(socketpath) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return MINISSDPC_SOCKET_ERROR;
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		return MINISSDPC_SOCKET_ERROR;
	}
	return s;
}

PCPMAP_EXPORT_COMPAT int disconnectFromMiniSSDPD(int s)
{
	return close(s) < 0 ? MINISSDPC_SOCKET_ERROR : MINISSDPC_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int requestDevicesFromMiniSSDPD(int s, const char *devtype)
{
	unsigned char buf[256 + 8];
	size_t len, o = 0;
	if (!devtype)
		return MINISSDPC_INVALID_INPUT;
	len = strlen(devtype);
	if (len > 256)
		return MINISSDPC_INVALID_INPUT;
	/* Request type 1: devices of a type; 3: every device ("ssdp:all"). */
	buf[o++] = !strcmp(devtype, "ssdp:all") ? 3 : 1;
	if (len >= 128)
		buf[o++] = (unsigned char)(0x80 | (len >> 7));
	buf[o++] = (unsigned char)(len & 0x7f);
	memcpy(buf + o, devtype, len);
	o += len;
	return send_all(s, (const char *)buf, o) < 0 ? MINISSDPC_SOCKET_ERROR : MINISSDPC_SUCCESS;
}

/* Reads exactly n bytes (the socket has a receive timeout). */
static int read_full(int s, void *buf, size_t n)
{
	size_t o = 0;
	while (o < n) {
		ssize_t r = read(s, (char *)buf + o, n - o);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		o += (size_t)r;
	}
	return 0;
}

static int read_string(int s, char **ret, size_t *ret_len)
{
	size_t len = 0;
	unsigned char c;
	int groups = 0;
	do {
		if (read_full(s, &c, 1) < 0 || ++groups > 4)
			return MINISSDPC_INVALID_SERVER_REPLY;
		len = (len << 7) | (c & 0x7f);
	} while (c & 0x80);
	if (len > 65536)
		return MINISSDPC_INVALID_SERVER_REPLY;
	char *p = malloc(len + 1);
	if (!p)
		return MINISSDPC_MEMORY_ERROR;
	if (read_full(s, p, len) < 0) {
		free(p);
		return MINISSDPC_INVALID_SERVER_REPLY;
	}
	p[len] = '\0';
	*ret = p;
	*ret_len = len;
	return 0;
}

PCPMAP_EXPORT_COMPAT struct UPNPDev *receiveDevicesFromMiniSSDPD(int s, int *error)
{
	struct UPNPDev *head = NULL;
	unsigned char count;
	int err = MINISSDPC_SUCCESS;
	if (read_full(s, &count, 1) < 0) {
		err = MINISSDPC_SOCKET_ERROR;
		goto out;
	}
	for (unsigned i = 0; i < count; i++) {
		char *f[3] = { NULL, NULL, NULL };
		size_t l[3] = { 0, 0, 0 };
		for (int k = 0; k < 3 && err == MINISSDPC_SUCCESS; k++)
			err = read_string(s, &f[k], &l[k]);
		struct UPNPDev *d = err ? NULL : malloc(sizeof(*d) + l[0] + l[1] + l[2] + 3);
		if (d) {
			d->descURL = d->buffer;
			memcpy(d->descURL, f[0], l[0] + 1);
			d->st = d->descURL + l[0] + 1;
			memcpy(d->st, f[1], l[1] + 1);
			d->usn = d->st + l[1] + 1;
			memcpy(d->usn, f[2], l[2] + 1);
			d->scope_id = 0;
			d->pNext = head;
			head = d;
		} else if (!err) {
			err = MINISSDPC_MEMORY_ERROR;
		}
		for (int k = 0; k < 3; k++)
			free(f[k]);
		if (err)
			break;
	}
out:
	if (error)
		*error = err;
	return head;
}

PCPMAP_EXPORT_COMPAT struct UPNPDev *getDevicesFromMiniSSDPD(const char *devtype, const char *socketpath,
							     int *error)
{
	int s = connectToMiniSSDPD(socketpath);
	if (s < 0) {
		if (error)
			*error = s;
		return NULL;
	}
	struct UPNPDev *d = NULL;
	int err = requestDevicesFromMiniSSDPD(s, devtype);
	if (err == MINISSDPC_SUCCESS)
		d = receiveDevicesFromMiniSSDPD(s, &err);
	disconnectFromMiniSSDPD(s);
	if (error)
		*error = err;
	return d;
}
