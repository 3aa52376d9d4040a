/* SPDX-License-Identifier: MIT */
/* pcpmapd configuration parser: strict, every error names its line (doc/pcpmapd.conf.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pcpmap/types.h>

#include "daemon/config.h"

void pmd_cfg_defaults(struct pmd_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_mappings = 256;
	cfg->max_mappings_per_uid = 32;
	cfg->max_connections = 128;
	cfg->max_connections_per_uid = 16;
	cfg->default_lifetime = 7200;
	cfg->max_lifetime = 86400;
	cfg->log_level = 6;
	cfg->announce_listener = true;
	cfg->netlink_monitor = true;
	cfg->user_min_port = 1024;
	cfg->user_persistent = true;
	cfg->user_third_party = true;
}

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int pmd_cfg_parse_log_level(const char *s, int *ret)
{
	static const char *const names[] = {
		[3] = "err", [4] = "warning", [5] = "notice", [6] = "info", [7] = "debug"
	};
	for (int i = 3; i <= 7; i++) {
		if (!strcasecmp(s, names[i]) || (s[0] == '0' + i && !s[1])) {
			*ret = i;
			return 0;
		}
	}
	if (!strcasecmp(s, "error")) {
		*ret = 3;
		return 0;
	}
	if (!strcasecmp(s, "warn")) {
		*ret = 4;
		return 0;
	}
	return -EINVAL;
}

int pmd_cfg_parse_protocols(const char *s, uint32_t *ret_mask, uint8_t ret_order[3], size_t *ret_n)
{
	uint32_t mask = 0;
	uint8_t order[3];
	size_t n = 0;
	const char *p = s;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		enum pcpmap_proto proto;
		if (len == 3 && !strncasecmp(p, "pcp", 3))
			proto = PCPMAP_PROTO_PCP;
		else if ((len == 6 && !strncasecmp(p, "natpmp", 6)) ||
			 (len == 7 && !strncasecmp(p, "nat-pmp", 7)))
			proto = PCPMAP_PROTO_NATPMP;
		else if (len == 4 && !strncasecmp(p, "upnp", 4))
			proto = PCPMAP_PROTO_UPNP;
		else
			return -EINVAL;
		if (mask & PCPMAP_PROTO_BIT(proto))
			return -EINVAL;
		mask |= PCPMAP_PROTO_BIT(proto);
		order[n++] = (uint8_t)proto;
		if (!end)
			break;
		p = end + 1;
		if (!*p)
			return -EINVAL;
	}
	if (!mask)
		return -EINVAL;
	*ret_mask = mask;
	memcpy(ret_order, order, n);
	*ret_n = n;
	return 0;
}

static int parse_uint(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_bool(const char *s, bool *ret)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "on") || !strcmp(s, "1")) {
		*ret = true;
		return 0;
	}
	if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "off") || !strcmp(s, "0")) {
		*ret = false;
		return 0;
	}
	return -EINVAL;
}

/* A numeric address with an optional zone (fe80::1%eth0) of the given family (0: either). */
static bool addr_ok(const char *s, size_t len, int family)
{
	char buf[64];
	unsigned char out[16];
	if (!len || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *zone = strchr(buf, '%');
	if (zone) {
		*zone++ = '\0';
		size_t zl = strlen(zone);
		if (!zl || zl > 15)
			return false;
		for (char *z = zone; *z; z++)
			if (!((*z >= 'a' && *z <= 'z') || (*z >= 'A' && *z <= 'Z') ||
			      (*z >= '0' && *z <= '9') || *z == '.' || *z == '_' || *z == '-'))
				return false;
		if (family == AF_INET)
			return false;
		return inet_pton(AF_INET6, buf, out) == 1;
	}
	if (family != AF_INET6 && inet_pton(AF_INET, buf, out) == 1)
		return true;
	return family != AF_INET && inet_pton(AF_INET6, buf, out) == 1;
}

static bool port_ok(const char *s)
{
	unsigned long long v;
	return parse_uint(s, 1, 65535, &v) == 0;
}

/* "A", "A:port" (IPv4), "B" or "[B]:port" (IPv6, optionally with a zone). */
static bool server_ok(const char *s)
{
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || !addr_ok(s + 1, (size_t)(close - s - 1), AF_INET6))
			return false;
		return !close[1] || (close[1] == ':' && port_ok(close + 2));
	}
	const char *colon = strchr(s, ':');
	if (colon && strchr(colon + 1, ':'))
		return addr_ok(s, strlen(s), AF_INET6);
	if (colon)
		return addr_ok(s, (size_t)(colon - s), AF_INET) && port_ok(colon + 1);
	return addr_ok(s, strlen(s), AF_INET);
}

/* Keys whose value needs more than a range check. Each writes what it wants into err on failure. */
static int set_server(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	if (strlen(v) >= sizeof(cfg->server) || !server_ok(v)) {
		errf(err, errlen,
		     "server wants a numeric address, optionally A:PORT or [IPV6]:PORT, not '%s'", v);
		return -EINVAL;
	}
	strcpy(cfg->server, v);
	cfg->server_line = line;
	return 0;
}

static int set_transport(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	(void)line;
	if (!strcasecmp(v, "auto"))
		cfg->transport_family = 0;
	else if (!strcasecmp(v, "ipv4") || !strcmp(v, "4"))
		cfg->transport_family = AF_INET;
	else if (!strcasecmp(v, "ipv6") || !strcmp(v, "6"))
		cfg->transport_family = AF_INET6;
	else {
		errf(err, errlen, "transport_family wants auto, ipv4 or ipv6, not '%s'", v);
		return -EINVAL;
	}
	return 0;
}

static int set_protocols(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	(void)line;
	if (pmd_cfg_parse_protocols(v, &cfg->protocols, cfg->protocol_order, &cfg->n_protocol_order) < 0) {
		errf(err, errlen,
		     "protocols wants a comma-separated list of pcp, natpmp, upnp (each once), not '%s'", v);
		return -EINVAL;
	}
	return 0;
}

static int set_log_level(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	(void)line;
	if (pmd_cfg_parse_log_level(v, &cfg->log_level) < 0) {
		errf(err, errlen, "log_level wants err, warning, notice, info or debug (or 3-7), not '%s'",
		     v);
		return -EINVAL;
	}
	return 0;
}

static int set_socket(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	(void)line;
	if (v[0] != '/' || strlen(v) > PMD_CFG_SOCKET_MAX) {
		errf(err, errlen, "socket wants an absolute path of at most %d bytes, not '%s'",
		     PMD_CFG_SOCKET_MAX, v);
		return -EINVAL;
	}
	strcpy(cfg->socket_path, v);
	return 0;
}

static int set_state_dir(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	(void)line;
	if (v[0] != '/' || strlen(v) >= sizeof(cfg->state_dir) - 64) {
		errf(err, errlen, "state_dir wants an absolute directory path, not '%s'", v);
		return -EINVAL;
	}
	strcpy(cfg->state_dir, v);
	return 0;
}

static int set_grants(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen)
{
	(void)line;
	return pmd_cfg_parse_grants(v, cfg->port_grants, &cfg->n_port_grants, err, errlen);
}

enum ktype {
	K_U32,  /* uint32_t in [min, max] */
	K_U16,  /* uint16_t in [min, max] */
	K_U8,   /* uint8_t in [min, max] */
	K_BOOL, /* yes/no, true/false, on/off, 1/0 */
	K_FN,   /* set() */
};

struct key {
	const char *name;
	enum ktype type;
	size_t off; /* in struct pmd_cfg */
	unsigned long long min, max;
	const char *want; /* numbers: what the value should be, for the error */
	int (*set)(const char *v, struct pmd_cfg *cfg, unsigned line, char *err, size_t errlen);
};

#define CFG(f) offsetof(struct pmd_cfg, f)
#define NUMK(n, t, f, lo, hi, w)              \
	{                                     \
		n, t, CFG(f), lo, hi, w, NULL \
	}
#define BOOLK(n, f)                                 \
	{                                           \
		n, K_BOOL, CFG(f), 0, 0, NULL, NULL \
	}
#define FNK(n, fn)                         \
	{                                  \
		n, K_FN, 0, 0, 0, NULL, fn \
	}

static const struct key keys[] = {
	FNK("server", set_server),
	FNK("transport_family", set_transport),
	FNK("protocols", set_protocols),
	NUMK("remap_interval_ms", K_U32, remap_interval_ms, 1, 60000, "1-60000"),
	NUMK("port_reservation_code", K_U8, port_reservation_code, 128, 255,
	     "an optional option code 128-255"),
	NUMK("max_mappings", K_U32, max_mappings, 1, 65536, "1-65536"),
	NUMK("max_mappings_per_uid", K_U32, max_mappings_per_uid, 1, 65536, "1-65536"),
	NUMK("max_connections", K_U32, max_connections, 1, 65536, "1-65536"),
	NUMK("max_connections_per_uid", K_U32, max_connections_per_uid, 1, 65536, "1-65536"),
	NUMK("default_lifetime", K_U32, default_lifetime, 1, 86400, "seconds, 1-86400"),
	NUMK("max_lifetime", K_U32, max_lifetime, 1, 86400, "seconds, 1-86400"),
	FNK("log_level", set_log_level),
	FNK("socket", set_socket),
	FNK("state_dir", set_state_dir),
	BOOLK("announce_listener", announce_listener),
	BOOLK("netlink_monitor", netlink_monitor),
	NUMK("user_min_port", K_U16, user_min_port, 0, 65535, "0-65535"),
	BOOLK("user_persistent", user_persistent),
	BOOLK("user_third_party", user_third_party),
	BOOLK("user_sctp", user_sctp),
	FNK("user_port_grants", set_grants),
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* Applies one key; on failure writes what the value should be into err. */
static int apply(const struct key *k, const char *v, struct pmd_cfg *cfg, unsigned line, char *err,
		 size_t errlen)
{
	char *p = (char *)cfg + k->off;
	unsigned long long n;
	switch (k->type) {
	case K_FN:
		return k->set(v, cfg, line, err, errlen);
	case K_BOOL:
		if (parse_bool(v, (bool *)p) < 0) {
			errf(err, errlen, "%s wants yes or no, not '%s'", k->name, v);
			return -EINVAL;
		}
		return 0;
	case K_U32:
	case K_U16:
	case K_U8:
		if (parse_uint(v, k->min, k->max, &n) < 0) {
			errf(err, errlen, "%s wants %s, not '%s'", k->name, k->want, v);
			return -EINVAL;
		}
		if (k->type == K_U32)
			*(uint32_t *)(void *)p = (uint32_t)n;
		else if (k->type == K_U16)
			*(uint16_t *)(void *)p = (uint16_t)n;
		else
			*(uint8_t *)p = (uint8_t)n;
		return 0;
	}
	return -EINVAL;
}

int pmd_cfg_parse_grants(const char *s, struct pmd_port_grant *ret, size_t *ret_n, char *err, size_t errlen)
{
	struct pmd_port_grant g[PMD_CFG_GRANTS_MAX];
	size_t n = 0;
	const char *p = s;
	for (;;) {
		char item[64];
		unsigned long long v;
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!len || len >= sizeof(item)) {
			errf(err, errlen,
			     "user_port_grants wants UID:PORT[-PORT][/tcp|/udp|/sctp], ... not '%s'", s);
			return -EINVAL;
		}
		if (n == PMD_CFG_GRANTS_MAX) {
			errf(err, errlen, "user_port_grants has more than %d entries", PMD_CFG_GRANTS_MAX);
			return -EINVAL;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		struct pmd_port_grant *e = &g[n];
		memset(e, 0, sizeof(*e));
		char *colon = strchr(item, ':');
		char *slash = strchr(item, '/');
		char *dash = strchr(item, '-');
		bool bad = !colon || (slash && slash < colon) || (dash && dash < colon);
		if (!bad) {
			*colon = '\0';
			if (slash)
				*slash++ = '\0';
			if (dash)
				*dash++ = '\0';
			if (!strcmp(item, "*"))
				e->any_uid = true;
			else if (parse_uint(item, 0, UINT32_MAX - 1, &v) == 0)
				e->uid = (uint32_t)v;
			else
				bad = true;
		}
		if (!bad && parse_uint(colon + 1, 1, 65535, &v) == 0)
			e->low = e->high = (uint16_t)v;
		else
			bad = true;
		if (!bad && dash) {
			if (parse_uint(dash, e->low, 65535, &v) == 0)
				e->high = (uint16_t)v;
			else
				bad = true;
		}
		if (!bad && slash) {
			if (!strcasecmp(slash, "tcp"))
				e->ip_proto = 6;
			else if (!strcasecmp(slash, "udp"))
				e->ip_proto = 17;
			else if (!strcasecmp(slash, "sctp"))
				e->ip_proto = 132;
			else
				bad = true;
		}
		if (bad) {
			errf(err, errlen,
			     "user_port_grants entry '%.*s' wants UID:PORT[-PORT][/tcp|/udp|/sctp] (UID a "
			     "number or "
			     "*, ports 1-65535, low to high)",
			     (int)len, p);
			return -EINVAL;
		}
		n++;
		if (!end)
			break;
		p = end + 1;
	}
	memcpy(ret, g, n * sizeof(g[0]));
	*ret_n = n;
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

int pmd_cfg_parse(const char *text, size_t len, struct pmd_cfg *cfg, char *err, size_t errlen)
{
	char msg[256];
	bool seen[N_KEYS] = { false };
	unsigned line = 0;
	size_t off = 0;
	if (len > PMD_CFG_MAX_FILE) {
		errf(err, errlen, "file larger than %u bytes", PMD_CFG_MAX_FILE);
		return -EINVAL;
	}
	while (off < len) {
		line++;
		const char *l = text + off;
		const char *nl = memchr(l, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - l) : len - off;
		off += ll + (nl ? 1 : 0);
		if (memchr(l, '\0', ll)) {
			errf(err, errlen, "line %u: NUL byte", line);
			return -EINVAL;
		}
		char buf[1024];
		if (ll >= sizeof(buf)) {
			errf(err, errlen, "line %u: longer than %zu bytes", line, sizeof(buf) - 1);
			return -EINVAL;
		}
		memcpy(buf, l, ll);
		buf[ll] = '\0';
		/* A comment starts a line or follows white space. */
		for (char *p = buf; *p; p++) {
			if (*p == '#' && (p == buf || is_space(p[-1]))) {
				*p = '\0';
				break;
			}
		}
		char *s = buf;
		while (is_space(*s))
			s++;
		size_t sl = strlen(s);
		while (sl && is_space(s[sl - 1]))
			s[--sl] = '\0';
		if (!sl)
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			errf(err, errlen, "line %u: expected 'key = value', got '%s'", line, s);
			return -EINVAL;
		}
		char *key = s, *val = eq + 1;
		char *ke = eq;
		while (ke > key && is_space(ke[-1]))
			ke--;
		*ke = '\0';
		while (is_space(*val))
			val++;
		if (!*key) {
			errf(err, errlen, "line %u: missing key before '='", line);
			return -EINVAL;
		}
		size_t k = N_KEYS;
		for (size_t i = 0; i < N_KEYS; i++)
			if (!strcmp(key, keys[i].name))
				k = i;
		if (k == N_KEYS) {
			errf(err, errlen, "line %u: unknown key '%s'", line, key);
			return -EINVAL;
		}
		if (seen[k]) {
			errf(err, errlen, "line %u: '%s' set twice", line, key);
			return -EINVAL;
		}
		seen[k] = true;
		if (!*val) {
			errf(err, errlen, "line %u: '%s' has no value", line, key);
			return -EINVAL;
		}
		if (apply(&keys[k], val, cfg, line, msg, sizeof(msg)) < 0) {
			errf(err, errlen, "line %u: %s", line, msg);
			return -EINVAL;
		}
	}
	if (cfg->max_mappings_per_uid > cfg->max_mappings) {
		errf(err, errlen, "max_mappings_per_uid (%u) exceeds max_mappings (%u)",
		     cfg->max_mappings_per_uid, cfg->max_mappings);
		return -EINVAL;
	}
	if (cfg->max_connections_per_uid > cfg->max_connections) {
		errf(err, errlen, "max_connections_per_uid (%u) exceeds max_connections (%u)",
		     cfg->max_connections_per_uid, cfg->max_connections);
		return -EINVAL;
	}
	if (cfg->default_lifetime > cfg->max_lifetime) {
		errf(err, errlen, "default_lifetime (%u) exceeds max_lifetime (%u)", cfg->default_lifetime,
		     cfg->max_lifetime);
		return -EINVAL;
	}
	return 0;
}

int pmd_cfg_load(const char *path, struct pmd_cfg *cfg, char *err, size_t errlen)
{
	char msg[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		errf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_size > (off_t)PMD_CFG_MAX_FILE) {
		close(fd);
		errf(err, errlen, "%s: larger than %u bytes", path, PMD_CFG_MAX_FILE);
		return -EFBIG;
	}
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			close(fd);
			errf(err, errlen, "%s: %s", path, strerror(e));
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			/* The file grew while we read it: refuse rather than read a torn copy. */
			free(buf);
			close(fd);
			errf(err, errlen, "%s: changed while being read", path);
			return -EAGAIN;
		}
	}
	close(fd);
	struct pmd_cfg tmp = *cfg;
	int r = pmd_cfg_parse(buf, len, &tmp, msg, sizeof(msg));
	free(buf);
	if (r < 0) {
		errf(err, errlen, "%s: %s", path, msg);
		return r;
	}
	*cfg = tmp;
	return 0;
}
