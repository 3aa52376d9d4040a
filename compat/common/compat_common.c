/* SPDX-License-Identifier: MIT */
/* Helpers shared by the compat libraries: environment, stderr debugging, derived nonces, parsing. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "compat_common.h"

int pmc_parse_protocols(const char *s, uint32_t *ret)
{
	uint32_t mask = 0;
	char word[16];

	if (!s || !ret)
		return -EINVAL;
	while (*s) {
		size_t n = strcspn(s, ",+ ");
		if (n == 0) {
			s++;
			continue;
		}
		if (n >= sizeof(word))
			return -EINVAL;
		memcpy(word, s, n);
		word[n] = '\0';
		s += n;
		if (!strcasecmp(word, "pcp"))
			mask |= PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
		else if (!strcasecmp(word, "natpmp") || !strcasecmp(word, "nat-pmp"))
			mask |= PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP);
		else if (!strcasecmp(word, "upnp"))
			mask |= PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP);
		else
			return -EINVAL;
	}
	if (!mask)
		return -EINVAL;
	*ret = mask;
	return 0;
}

void pmc_debug(const char *tag, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line, so lines of several threads do not interleave. */
	fprintf(stderr, "%s: %s\n", tag, line);
}

void pmc_env_read(struct pmc_env *ret, uint32_t default_protocols, int default_timeout_ms)
{
	const char *s;
	memset(ret, 0, sizeof(*ret));
	ret->protocols = default_protocols;
	ret->timeout_ms = default_timeout_ms;

	s = getenv("PCPMAP_DEBUG");
	if (s && *s) {
		char *end;
		long v = strtol(s, &end, 10);
		ret->debug = *end || v < 0 ? 1 : v > 3 ? 3 : (int)v;
	}
	s = getenv("PCPMAP_COMPAT_PROTOCOLS");
	if (s && *s && pmc_parse_protocols(s, &ret->protocols) < 0 && ret->debug)
		pmc_debug("pcpmap-compat", "PCPMAP_COMPAT_PROTOCOLS='%s' ignored (want e.g. pcp,natpmp,upnp)",
			  s);
	s = getenv("PCPMAP_GATEWAY");
	if (s && *s) {
		if (strlen(s) < sizeof(ret->gateway))
			snprintf(ret->gateway, sizeof(ret->gateway), "%s", s);
		else if (ret->debug)
			pmc_debug("pcpmap-compat", "PCPMAP_GATEWAY too long, ignored");
	}
	s = getenv("PCPMAP_COMPAT_TIMEOUT_MS");
	if (s && *s) {
		uint32_t v;
		if (pmc_parse_u32(s, &v) == 0 && v > 0 && v <= 600000)
			ret->timeout_ms = (int)v;
		else if (ret->debug)
			pmc_debug("pcpmap-compat", "PCPMAP_COMPAT_TIMEOUT_MS='%s' ignored", s);
	}
}

static void log_to_stderr(void *ud, enum pcpmap_log_level level, const char *msg)
{
	static const char *const names[] = { "err", "warning", "notice", "info", "debug" };
	int i = (int)level - PCPMAP_LOG_ERR;
	pmc_debug(ud, "[%s] %s", i >= 0 && i < 5 ? names[i] : "?", msg);
}

static void trace_to_stderr(void *ud, bool sent, enum pcpmap_proto proto, const char *peer,
			    const uint8_t *bytes, size_t len, const char *decoded)
{
	(void)bytes;
	pmc_debug(ud, "%s %s %s (%zu bytes) %s", sent ? ">" : "<", pcpmap_proto_name(proto), peer, len,
		  decoded);
}

void pmc_client_config(struct pcpmap_client_config *cfg, const struct pmc_env *env, const char *tag)
{
	pcpmap_client_config_init(cfg);
	cfg->server = env->gateway[0] ? env->gateway : NULL;
	cfg->protocols = env->protocols;
	if (env->debug >= 2) {
		cfg->log = log_to_stderr;
		cfg->log_userdata = (void *)(uintptr_t)tag;
		cfg->log_level = PCPMAP_LOG_DEBUG;
	}
	if (env->debug >= 3) {
		cfg->trace = trace_to_stderr;
		cfg->trace_userdata = (void *)(uintptr_t)tag;
	}
}

/* SipHash-2-4 (Aumasson, Bernstein): a keyed hash, so the nonce reveals nothing of the machine identity. */
static uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void sip_rounds(uint64_t v[4], int n)
{
	for (int i = 0; i < n; i++) {
		v[0] += v[1];
		v[1] = rotl64(v[1], 13);
		v[1] ^= v[0];
		v[0] = rotl64(v[0], 32);
		v[2] += v[3];
		v[3] = rotl64(v[3], 16);
		v[3] ^= v[2];
		v[0] += v[3];
		v[3] = rotl64(v[3], 21);
		v[3] ^= v[0];
		v[2] += v[1];
		v[1] = rotl64(v[1], 17);
		v[1] ^= v[2];
		v[2] = rotl64(v[2], 32);
	}
}

static uint64_t siphash24(const uint8_t key[16], const uint8_t *msg, size_t len)
{
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull, k0 ^ 0x6c7967656e657261ull,
			  k1 ^ 0x7465646279746573ull };
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t m = load_le64(msg + i);
		v[3] ^= m;
		sip_rounds(v, 2);
		v[0] ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)msg[i + j] << (8 * j);
	v[3] ^= b;
	sip_rounds(v, 2);
	v[0] ^= b;
	v[2] ^= 0xff;
	sip_rounds(v, 4);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The machine's 128-bit identity (systemd machine-id), else a hash of the host name. */
static void machine_key(uint8_t key[16])
{
	static const char *const files[] = { "/etc/machine-id", "/var/lib/dbus/machine-id" };
	char line[64];
	memset(key, 0, 16);
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp)
			continue;
		bool ok = fgets(line, sizeof(line), fp) != NULL;
		fclose(fp);
		if (!ok)
			continue;
		int i;
		for (i = 0; i < 16; i++) {
			int hi = hexval((unsigned char)line[2 * i]),
			    lo = hexval((unsigned char)line[2 * i + 1]);
			if (hi < 0 || lo < 0)
				break;
			key[i] = (uint8_t)(hi << 4 | lo);
		}
		if (i == 16)
			return;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	static const uint8_t zero[16];
	uint64_t a = siphash24(zero, (const uint8_t *)host, strlen(host));
	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(a >> (8 * i));
		key[8 + i] = (uint8_t)(~a >> (8 * i));
	}
}

void pmc_nonce(uint8_t ret[12], uint8_t ip_proto, uint16_t internal_port, const char *internal_client)
{
	static const char label[] = "pcpmap-compat-nonce-1";
	uint8_t key[16], msg[128];
	size_t n = 0;
	machine_key(key);
	memcpy(msg, label, sizeof(label) - 1);
	n = sizeof(label) - 1;
	uint32_t uid = (uint32_t)getuid();
	for (int i = 0; i < 4; i++)
		msg[n++] = (uint8_t)(uid >> (8 * i));
	msg[n++] = ip_proto;
	msg[n++] = (uint8_t)(internal_port >> 8);
	msg[n++] = (uint8_t)internal_port;
	size_t cl = internal_client ? strlen(internal_client) : 0;
	if (cl > 64)
		cl = 64;
	if (cl)
		memcpy(msg + n, internal_client, cl);
	n += cl;
	msg[n++] = 0; /* block counter */
	uint64_t h0 = siphash24(key, msg, n);
	msg[n - 1] = 1;
	uint64_t h1 = siphash24(key, msg, n);
	for (int i = 0; i < 8; i++)
		ret[i] = (uint8_t)(h0 >> (8 * i));
	for (int i = 0; i < 4; i++)
		ret[8 + i] = (uint8_t)(h1 >> (8 * i));
}

int pmc_parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

int pmc_parse_port(const char *s, bool allow_zero, uint16_t *ret)
{
	uint32_t v;
	if (pmc_parse_u32(s, &v) < 0 || v > 65535 || (v == 0 && !allow_zero))
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

int pmc_split_server(const char *server, char *host, size_t hostlen, uint16_t *ret_port)
{
	const char *end, *port = NULL;
	size_t n;
	if (!server || !*server)
		return -EINVAL;
	if (server[0] == '[') {
		end = strchr(server, ']');
		if (!end)
			return -EINVAL;
		n = (size_t)(end - server - 1);
		server++;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return -EINVAL;
	} else {
		const char *colon = strchr(server, ':');
		if (colon && !strchr(colon + 1, ':')) {
			n = (size_t)(colon - server);
			port = colon + 1;
		} else {
			n = strlen(server);
		}
	}
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, server, n);
	host[n] = '\0';
	uint16_t p = 0;
	if (port && pmc_parse_port(port, false, &p) < 0)
		return -EINVAL;
	if (ret_port)
		*ret_port = p;
	return 0;
}

int pmc_local_addr_for(const char *host, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char h[64];
	memset(&ss, 0, sizeof(ss));
	/* A scope ("fe80::1%eth0") is not part of inet_pton's syntax. */
	snprintf(h, sizeof(h), "%s", host);
	char *pct = strchr(h, '%');
	unsigned scope = 0;
	if (pct) {
		*pct = '\0';
		scope = (unsigned)atoi(pct + 1);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, h, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(9);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(9);
		s6->sin6_scope_id = scope;
		sl = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	const void *a = ss.ss_family == AF_INET ? (const void *)&s4->sin_addr : (const void *)&s6->sin6_addr;
	if (!inet_ntop(ss.ss_family, a, buf, (socklen_t)len))
		return -ENOSPC;
	return 0;
}

uint32_t pmc_seconds_until(uint64_t deadline_usec)
{
	uint64_t now = pcpmap_now_usec();
	if (!deadline_usec || deadline_usec == UINT64_MAX || deadline_usec <= now)
		return 0;
	uint64_t s = (deadline_usec - now + 999999u) / 1000000u;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}
