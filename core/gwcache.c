/* The gateway cache file: codec, file I/O, and the engine's use of it (see gwcache.h).
 *
 * File format (text, one gateway per line after the header):
 *   pcpmap-gwcache 1
 *   gw=192.168.1.1 mac=02:77:00:00:00:01 proto=upnp pcp=refused learned=1764777600 rtt=2100
 *     url=http://192.168.1.1:5000/ctl/IPConn st=urn:schemas-upnp-org:service:WANIPConnection:2 lan=192.168.1.2
 * (one line). Values are printable ASCII without spaces; mac "-" is unknown. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gwcache.h"
#include "internal.h"
#include "text/text.h"

#define HEADER "pcpmap-gwcache 1"

static const char *const proto_tok[] = {
	[PCPMAP_PROTO_PCP] = "pcp", [PCPMAP_PROTO_NATPMP] = "natpmp", [PCPMAP_PROTO_UPNP] = "upnp"
};
static const char *const pcp_tok[] = { [PM_GWC_PCP_UNKNOWN] = "unknown",
				       [PM_GWC_PCP_YES] = "yes",
				       [PM_GWC_PCP_SILENT] = "silent",
				       [PM_GWC_PCP_REFUSED] = "refused" };

bool pm_gwcache_token_ok(const char *s, size_t cap)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (n + 1 >= cap || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return false;
	return n > 0;
}

static int copy_tok(const char *v, size_t vlen, char *out, size_t cap)
{
	if (vlen == 0 || vlen >= cap)
		return -EBADMSG;
	for (size_t i = 0; i < vlen; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return -EBADMSG;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
	return 0;
}

static int parse_u64(const char *v, size_t vlen, uint64_t max, uint64_t *ret)
{
	uint64_t x = 0;
	if (vlen == 0 || vlen > 20)
		return -EBADMSG;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EBADMSG;
		unsigned d = (unsigned)(v[i] - '0');
		if (x > (max - d) / 10)
			return -EBADMSG;
		x = x * 10 + d;
	}
	*ret = x;
	return 0;
}

static int pick(const char *v, size_t vlen, const char *const *names, size_t n, int *ret)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strlen(names[i]) == vlen && memcmp(names[i], v, vlen) == 0) {
			*ret = (int)i;
			return 0;
		}
	return -EBADMSG;
}

#define SEEN_GW      (1u << 0)
#define SEEN_MAC     (1u << 1)
#define SEEN_PROTO   (1u << 2)
#define SEEN_PCP     (1u << 3)
#define SEEN_LEARNED (1u << 4)
#define SEEN_RTT     (1u << 5)
#define SEEN_URL     (1u << 6)
#define SEEN_ST      (1u << 7)
#define SEEN_LAN     (1u << 8)

static int parse_field(const char *k, size_t klen, const char *v, size_t vlen, struct pm_gwc_entry *e,
		       unsigned *seen)
{
	static const struct {
		const char *name;
		unsigned bit;
	} keys[] = { { "gw", SEEN_GW },   { "mac", SEEN_MAC },         { "proto", SEEN_PROTO },
		     { "pcp", SEEN_PCP }, { "learned", SEEN_LEARNED }, { "rtt", SEEN_RTT },
		     { "url", SEEN_URL }, { "st", SEEN_ST },           { "lan", SEEN_LAN } };
	unsigned bit = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].name) == klen && memcmp(keys[i].name, k, klen) == 0)
			bit = keys[i].bit;
	if (!bit || (*seen & bit))
		return -EBADMSG; /* unknown or repeated key */
	*seen |= bit;
	uint64_t x;
	int i, r;
	switch (bit) {
	case SEEN_GW:
		return copy_tok(v, vlen, e->gw, sizeof(e->gw));
	case SEEN_MAC:
		if (vlen == 1 && v[0] == '-')
			return 0;
		return copy_tok(v, vlen, e->mac, sizeof(e->mac));
	case SEEN_PROTO:
		r = pick(v, vlen, proto_tok, sizeof(proto_tok) / sizeof(proto_tok[0]), &i);
		e->proto = (enum pcpmap_proto)i;
		return r;
	case SEEN_PCP:
		r = pick(v, vlen, pcp_tok, sizeof(pcp_tok) / sizeof(pcp_tok[0]), &i);
		e->pcp = (enum pm_gwc_pcp)i;
		return r;
	case SEEN_LEARNED:
		return parse_u64(v, vlen, UINT64_MAX / 2, &e->learned);
	case SEEN_RTT:
		r = parse_u64(v, vlen, UINT32_MAX, &x);
		e->rtt_us = (uint32_t)x;
		return r;
	case SEEN_URL:
		if (vlen < 8 || memcmp(v, "http://", 7) != 0)
			return -EBADMSG;
		return copy_tok(v, vlen, e->url, sizeof(e->url));
	case SEEN_ST:
		return copy_tok(v, vlen, e->st, sizeof(e->st));
	default:
		return copy_tok(v, vlen, e->lan, sizeof(e->lan));
	}
}

static int parse_line(const char *p, size_t len, struct pm_gwc_entry *e)
{
	unsigned seen = 0;
	memset(e, 0, sizeof(*e));
	size_t i = 0;
	while (i < len) {
		size_t end = i;
		while (end < len && p[end] != ' ')
			end++;
		const char *eq = memchr(p + i, '=', end - i);
		if (!eq || eq == p + i)
			return -EBADMSG;
		size_t klen = (size_t)(eq - (p + i));
		int r = parse_field(p + i, klen, eq + 1, end - i - klen - 1, e, &seen);
		if (r < 0)
			return r;
		i = end + 1;
		if (end + 1 == len)
			return -EBADMSG; /* a trailing space */
	}
	const unsigned need = SEEN_GW | SEEN_PROTO | SEEN_LEARNED;
	if ((seen & need) != need)
		return -EBADMSG;
	/* A UPnP entry is useful only with its IGD. */
	const unsigned igd = SEEN_URL | SEEN_ST | SEEN_LAN;
	if (e->proto == PCPMAP_PROTO_UPNP ? (seen & igd) != igd : (seen & igd) != 0)
		return -EBADMSG;
	return 0;
}

int pm_gwcache_parse(const char *buf, size_t len, struct pm_gwcache *ret)
{
	struct pm_gwcache *c;
	size_t hl = sizeof(HEADER) - 1;
	if (!buf || !ret || len < hl + 1 || memcmp(buf, HEADER, hl) != 0 || buf[hl] != '\n')
		return -EBADMSG;
	if (memchr(buf, '\0', len))
		return -EBADMSG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	size_t i = hl + 1;
	int r = 0;
	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - buf) : len;
		if (end == i || c->n >= PM_GWC_MAX) {
			r = -EBADMSG; /* an empty line, or too many */
			break;
		}
		struct pm_gwc_entry e;
		r = parse_line(buf + i, end - i, &e);
		if (r < 0)
			break;
		if (pm_gwcache_find(c, e.gw)) {
			r = -EBADMSG;
			break;
		}
		c->e[c->n++] = e;
		i = end + 1;
	}
	if (r == 0)
		*ret = *c;
	free(c);
	return r;
}

int pm_gwcache_format(const struct pm_gwcache *c, char *buf, size_t cap)
{
	struct pm_text t;
	if (cap == 0)
		return -ENOSPC;
	pm_text_init(&t, buf, cap);
	pm_text_str(&t, HEADER);
	pm_text_str(&t, "\n");
	for (size_t i = 0; i < c->n && i < PM_GWC_MAX; i++) {
		const struct pm_gwc_entry *e = &c->e[i];
		bool upnp = e->proto == PCPMAP_PROTO_UPNP;
		if (e->proto < PCPMAP_PROTO_PCP || e->proto > PCPMAP_PROTO_UPNP ||
		    e->pcp > PM_GWC_PCP_REFUSED || !pm_gwcache_token_ok(e->gw, sizeof(e->gw)) ||
		    (e->mac[0] && !pm_gwcache_token_ok(e->mac, sizeof(e->mac))) ||
		    (upnp && (!pm_gwcache_token_ok(e->url, sizeof(e->url)) || strncmp(e->url, "http://", 7) ||
			      !pm_gwcache_token_ok(e->st, sizeof(e->st)) ||
			      !pm_gwcache_token_ok(e->lan, sizeof(e->lan)))))
			return -EINVAL;
		pm_text_str(&t, "gw=");
		pm_text_str(&t, e->gw);
		pm_text_str(&t, " mac=");
		pm_text_str(&t, e->mac[0] ? e->mac : "-");
		pm_text_str(&t, " proto=");
		pm_text_str(&t, proto_tok[e->proto]);
		pm_text_str(&t, " pcp=");
		pm_text_str(&t, pcp_tok[e->pcp]);
		pm_text_str(&t, " learned=");
		pm_text_u(&t, e->learned);
		pm_text_str(&t, " rtt=");
		pm_text_u(&t, e->rtt_us);
		if (upnp) {
			pm_text_str(&t, " url=");
			pm_text_str(&t, e->url);
			pm_text_str(&t, " st=");
			pm_text_str(&t, e->st);
			pm_text_str(&t, " lan=");
			pm_text_str(&t, e->lan);
		}
		pm_text_str(&t, "\n");
	}
	return t.cut ? -ENOSPC : (int)t.len;
}

const struct pm_gwc_entry *pm_gwcache_find(const struct pm_gwcache *c, const char *gw)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i].gw, gw) == 0)
			return &c->e[i];
	return NULL;
}

void pm_gwcache_upsert(struct pm_gwcache *c, const struct pm_gwc_entry *e)
{
	size_t at = c->n;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i].gw, e->gw) == 0)
			at = i;
	if (at == c->n && c->n == PM_GWC_MAX) {
		at = 0;
		for (size_t i = 1; i < c->n; i++)
			if (c->e[i].learned < c->e[at].learned)
				at = i;
	}
	c->e[at] = *e;
	if (at == c->n)
		c->n++;
}

/* Seconds since the epoch: the cache's dates outlive the process, so the wall clock. */
static uint64_t wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

/* ---- files ---- */

/* DIR/PREFIX NAME into buf; false when it does not fit. */
static bool file_path(char *buf, size_t len, const char *dir, const char *prefix, const char *name)
{
	struct pm_text t;
	pm_text_init(&t, buf, len);
	pm_text_str(&t, dir);
	pm_text_str(&t, "/");
	pm_text_str(&t, prefix);
	pm_text_str(&t, name);
	return !t.cut;
}

int pm_gwcache_default_dir(char *buf, size_t len)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct pm_text t;
	if (len == 0)
		return -ENAMETOOLONG;
	pm_text_init(&t, buf, len);
	if (x && x[0] == '/') {
		pm_text_str(&t, x);
		pm_text_str(&t, "/pcpmap");
	} else if (geteuid() == 0) {
		pm_text_str(&t, "/run/pcpmap");
	} else {
		return -ENOENT;
	}
	return t.cut ? -ENAMETOOLONG : 0;
}

int pm_gwcache_load(const char *dir, struct pm_gwcache *ret, char *why, size_t why_len)
{
	char path[512];
	if (!file_path(path, sizeof(path), dir, "", PM_GWC_FILE_NAME))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	int r = 0;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	/* Another user's file (or a device, a FIFO) would let them steer where our requests go. */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0022)) {
		snprintf(why, why_len, "%s is not a regular file of ours, writable only by us", path);
		r = -EPERM;
		goto out;
	}
	if (st.st_size > PM_GWC_FILE_MAX) {
		snprintf(why, why_len, "%s is larger than %d bytes", path, PM_GWC_FILE_MAX);
		r = -EFBIG;
		goto out;
	}
	buf = malloc(PM_GWC_FILE_MAX + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, PM_GWC_FILE_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > PM_GWC_FILE_MAX) {
			snprintf(why, why_len, "%s is larger than %d bytes", path, PM_GWC_FILE_MAX);
			r = -EFBIG;
			goto out;
		}
	}
	r = pm_gwcache_parse(buf, got, ret);
	if (r == -EBADMSG)
		snprintf(why, why_len, "%s is not a gateway cache this version understands", path);
out:
	free(buf);
	close(fd);
	return r;
}

/* A new file DIR/.gateways.XXXXXXXX (random hexadecimal), mode 0600, its name left in tmp. What mkostemp()
 * does, without its libc pages (its name generator sits beside printf, doc/PERFORMANCE.md). */
static int create_tmp(const char *dir, char *tmp, size_t len)
{
	for (int attempt = 0; attempt < 16; attempt++) {
		unsigned char rnd[4];
		struct pm_text t;
		if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
			/* No entropy yet (early boot): O_EXCL keeps a guessable name safe, it only has to differ. */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint32_t v = (uint32_t)ts.tv_nsec ^ ((uint32_t)getpid() << 12) ^
				     (uint32_t)attempt * 2654435761u;
			memcpy(rnd, &v, sizeof(rnd));
		}
		pm_text_init(&t, tmp, len);
		pm_text_str(&t, dir);
		pm_text_str(&t, "/." PM_GWC_FILE_NAME ".");
		for (size_t i = 0; i < sizeof(rnd); i++)
			pm_text_hex2(&t, rnd[i]);
		if (t.cut)
			return -ENAMETOOLONG;
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

/* rename(2) straight to the kernel: libc's wrapper shares a page with printf (doc/PERFORMANCE.md). */
static int rename_file(const char *from, const char *to)
{
#ifdef SYS_renameat2
	if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 0) == 0)
		return 0;
	if (errno != ENOSYS) /* kernels before 3.15, or a filter that refuses the call */
		return -errno;
#endif
	return rename(from, to) < 0 ? -errno : 0;
}

int pm_gwcache_store(const char *dir, const struct pm_gwcache *c)
{
	char path[512], tmp[520];
	char *buf = malloc(PM_GWC_FILE_MAX + 1);
	int r, fd = -1;
	if (!buf)
		return -ENOMEM;
	r = pm_gwcache_format(c, buf, PM_GWC_FILE_MAX + 1);
	if (r < 0)
		goto out;
	size_t len = (size_t)r;
	if (!file_path(path, sizeof(path), dir, "", PM_GWC_FILE_NAME)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}
	fd = create_tmp(dir, tmp, sizeof(tmp));
	if (fd < 0) {
		r = fd;
		goto out;
	}
	/* Created 0600 already; said again in case a umask-less platform differs. */
	if (fchmod(fd, 0600) < 0) {
		r = -errno;
		goto fail;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		off += (size_t)n;
	}
	/* No fsync: a cache lost in a crash costs one cold start, and a rename makes the file whole or absent. */
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto fail;
	}
	fd = -1;
	if ((r = rename_file(tmp, path)) < 0)
		goto fail;
	r = 0;
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(buf);
	return r;
}

/* ---- the engine's side ---- */

static bool memo_enabled(const pcpmap_client *c)
{
	return !c->cfg.no_gw_cache && c->cache_dir[0];
}

/* The gateway's address as the cache names it: numeric, without the port. Loopback gateways (tests, a
 * server on this host) have no link-layer identity and are never remembered. */
static bool gw_key(const struct pm_gw *gw, char *buf, size_t len)
{
	const struct pm_sockaddr *a = &gw->addr;
	if (a->u.sa.sa_family == AF_INET) {
		if ((ntohl(a->u.in.sin_addr.s_addr) >> 24) == 127)
			return false;
		return pm_text_ntop(AF_INET, &a->u.in.sin_addr, buf, len) == 0;
	}
	if (a->u.sa.sa_family != AF_INET6 || IN6_IS_ADDR_LOOPBACK(&a->u.in6.sin6_addr))
		return false;
	char s[PM_TEXT_ADDR_MAX];
	if (pm_text_ntop(AF_INET6, &a->u.in6.sin6_addr, s, sizeof(s)) < 0 || len == 0)
		return false;
	struct pm_text t;
	pm_text_init(&t, buf, len);
	pm_text_str(&t, s);
	if (a->u.in6.sin6_scope_id) {
		pm_text_str(&t, "%");
		pm_text_u(&t, a->u.in6.sin6_scope_id);
	}
	return !t.cut;
}

/* The cache speaks for clients that prefer protocols in the default order (PCP, NAT-PMP, UPnP): one that
 * prefers UPnP neither trusts a remembered PCP nor records its own choice for the others. */
static bool default_order(const pcpmap_client *c)
{
	return c->order[0] == PCPMAP_PROTO_PCP && c->order[1] == PCPMAP_PROTO_NATPMP &&
	       c->order[2] == PCPMAP_PROTO_UPNP;
}

static void gw_mac(const struct pm_gw *gw, char *buf, size_t len)
{
	buf[0] = '\0';
	const struct pm_sockaddr *a = &gw->addr;
	const void *addr = a->u.sa.sa_family == AF_INET ? (const void *)&a->u.in.sin_addr
							: (const void *)&a->u.in6.sin6_addr;
	if (gw->client->neighbour_lladdr(a->u.sa.sa_family, addr, buf, len) < 0)
		buf[0] = '\0';
}

static void verify_timer(struct sched_timer *t, uint64_t now, void *arg);

void pm_gw_memo_open(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	char key[PM_GWC_ADDR_LEN], why[160] = "";
	if (!memo_enabled(c) || !default_order(c) || !gw_key(gw, key, sizeof(key)))
		return;
	struct pm_gw_memo *mm = calloc(1, sizeof(*mm));
	if (!mm)
		return;
	sched_timer_init(&mm->t_verify, verify_timer, gw, "gateway-memo-verify");
	pm_text_copy(mm->entry.gw, sizeof(mm->entry.gw), key);
	gw->memo = mm;
	struct pm_gwcache *cache = malloc(sizeof(*cache));
	if (!cache)
		return;
	int r = pm_gwcache_load(c->cache_dir, cache, why, sizeof(why));
	if (r < 0) {
		if (r != -ENOENT)
			pm_log(c, PCPMAP_LOG_NOTICE, "gateway cache ignored: %s",
			       why[0] ? why : pcpmap_strerror(r));
		free(cache);
		return;
	}
	const struct pm_gwc_entry *e = pm_gwcache_find(cache, key);
	if (!e) {
		free(cache);
		return;
	}
	uint64_t now_s = wall_s();
	char mac[PM_GWC_MAC_LEN];
	gw_mac(gw, mac, sizeof(mac));
	if (e->learned > now_s + 60 || now_s - e->learned > PM_GWC_TRUST_S) {
		pm_log(c, PCPMAP_LOG_DEBUG, "gateway %s: remembered %s is too old: probing", gw->name,
		       pcpmap_proto_name(e->proto));
	} else if (e->mac[0] && mac[0] && strcmp(e->mac, mac) != 0) {
		/* The same address on another network (every home router is 192.168.1.1). */
		pm_log(c, PCPMAP_LOG_INFO,
		       "gateway %s: link-layer address %s, not the remembered %s: probing", gw->name, mac,
		       e->mac);
	} else {
		mm->entry = *e;
		mm->have = true;
	}
	free(cache);
}

void pm_gw_memo_close(struct pm_gw *gw)
{
	if (!gw->memo)
		return;
	sched_cancel(&gw->client->sched, &gw->memo->t_verify);
	free(gw->memo);
	gw->memo = NULL;
}

/* How long the remembered protocol gets to answer before the gateway is probed from scratch. */
static uint64_t verify_wait_us(const struct pm_gwc_entry *e)
{
	uint64_t w = 10ull * e->rtt_us;
	/* At least 200 ms: a loaded gateway (or host) takes tens of ms at times, and a false alarm moves the
	 * mapping to a cold probe (NAT-PMP: its late grant is then deleted). At most 1 s, as the grace. */
	return w < 200000u ? 200000u : w > 1000000u ? 1000000u : w;
}

bool pm_gw_memo_warm_start(struct pm_gw *gw)
{
	struct pm_gw_memo *mm = gw->memo;
	pcpmap_client *c = gw->client;
	if (!mm || !mm->have || mm->warm || gw->probe_started)
		return false;
	enum pcpmap_proto p = mm->entry.proto;
	if (!(c->cfg.protocols & PCPMAP_PROTO_BIT(p)) || !c->backends[p])
		return false;
	mm->warm = true;
	mm->verified = false;
	gw->status[p] = PM_P_YES;
	gw->yes_at[p] = c->now;
	gw->rtt_us[p] = mm->entry.rtt_us;
	gw->chosen = p;
	gw->probe_started = c->now;
	pm_log(c, PCPMAP_LOG_INFO, "gateway %s: using %s as remembered (PCP %s there), verifying", gw->name,
	       pcpmap_proto_name(p), pcp_tok[mm->entry.pcp]);
	/* UPnP verifies on its worker (the remembered control URL, then discovery); the UDP protocols here. */
	if (p != PCPMAP_PROTO_UPNP)
		sched_arm(&c->sched, &mm->t_verify, c->now + verify_wait_us(&mm->entry));
	return true;
}

static void verify_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	struct pm_gw *gw = arg;
	struct pm_gw_memo *mm = gw->memo;
	if (!mm || !mm->warm || mm->verified)
		return;
	pm_log(gw->client, PCPMAP_LOG_INFO,
	       "gateway %s: remembered %s did not answer within %.0f ms: probing", gw->name,
	       pcpmap_proto_name(mm->entry.proto), (double)verify_wait_us(&mm->entry) / 1000.0);
	mm->warm = false;
	mm->have = false;
	pm_gw_relearn(gw);
}

void pm_gw_memo_answered(struct pm_server *s)
{
	struct pm_gw *gw = s->gw;
	if (!gw || !gw->memo || !gw->memo->warm || gw->memo->verified ||
	    s->ops->proto != gw->memo->entry.proto)
		return;
	gw->memo->verified = true;
	sched_cancel(&gw->client->sched, &gw->memo->t_verify);
	pm_log(gw->client, PCPMAP_LOG_DEBUG, "gateway %s: remembered %s answered", gw->name, s->ops->name);
}

void pm_gw_memo_failed(struct pm_server *s)
{
	struct pm_gw *gw = s->gw;
	if (!gw || !gw->memo || !gw->memo->warm || gw->memo->verified ||
	    s->ops->proto != gw->memo->entry.proto)
		return;
	pm_log(gw->client, PCPMAP_LOG_INFO, "gateway %s: remembered %s failed: probing", gw->name,
	       s->ops->name);
	gw->memo->warm = false;
	gw->memo->have = false;
	sched_cancel(&gw->client->sched, &gw->memo->t_verify);
}

static void store(struct pm_gw *gw)
{
	pcpmap_client *c = gw->client;
	struct pm_gwcache *cache = calloc(1, sizeof(*cache));
	char why[160] = "";
	if (!cache)
		return;
	/* A file we cannot read is rewritten: it is only a cache. */
	if (pm_gwcache_load(c->cache_dir, cache, why, sizeof(why)) < 0)
		memset(cache, 0, sizeof(*cache));
	pm_gwcache_upsert(cache, &gw->memo->entry);
	int r = pm_gwcache_store(c->cache_dir, cache);
	if (r < 0)
		pm_log(c, PCPMAP_LOG_NOTICE, "gateway cache %s/%s not written: %s", c->cache_dir,
		       PM_GWC_FILE_NAME, pcpmap_strerror(r));
	else
		pm_log(c, PCPMAP_LOG_DEBUG, "gateway %s: remembered %s in %s/%s", gw->name,
		       pcpmap_proto_name(gw->memo->entry.proto), c->cache_dir, PM_GWC_FILE_NAME);
	free(cache);
}

void pm_gw_memo_chosen(struct pm_gw *gw, enum pcpmap_proto p)
{
	struct pm_gw_memo *mm = gw->memo;
	if (!mm)
		return;
	/* A warm start that chose what it remembered learned nothing new (unless the IGD moved). */
	if (mm->warm && mm->entry.proto == p && !mm->dirty)
		return;
	if (p == PCPMAP_PROTO_UPNP && !mm->entry.url[0])
		return; /* nothing usable to remember without the IGD */
	/* A choice narrowed by this client's configuration (--protocol upnp) says nothing about what the
	 * gateway offers others: a better protocol it was not allowed to try is not known to be absent. */
	const pcpmap_client *c = gw->client;
	for (size_t i = 0; i < 3 && c->order[i] != p; i++)
		if (c->backends[c->order[i]] && !(c->cfg.protocols & PCPMAP_PROTO_BIT(c->order[i])))
			return;
	struct pm_gwc_entry *e = &mm->entry;
	bool relearned = !mm->warm || e->proto != p;
	e->proto = p;
	e->rtt_us = gw->rtt_us[p];
	if (relearned) {
		enum pm_pstat st = gw->status[PCPMAP_PROTO_PCP];
		e->pcp = p == PCPMAP_PROTO_PCP ? PM_GWC_PCP_YES
			 : st == PM_P_NO       ? PM_GWC_PCP_REFUSED
			 : st == PM_P_PROBING  ? PM_GWC_PCP_SILENT
					       : PM_GWC_PCP_UNKNOWN;
		e->learned = wall_s();
	}
	if (p != PCPMAP_PROTO_UPNP) {
		e->url[0] = e->st[0] = e->lan[0] = '\0';
	}
	gw_mac(gw, e->mac, sizeof(e->mac));
	mm->dirty = false;
	mm->have = true;
	store(gw);
}

void pm_gw_memo_upnp(struct pm_server *s, const char *url, const char *st, const char *lan)
{
	struct pm_gw *gw = s->gw;
	if (!gw || !gw->memo)
		return;
	struct pm_gwc_entry *e = &gw->memo->entry;
	if (!pm_gwcache_token_ok(url, sizeof(e->url)) || strncmp(url, "http://", 7) ||
	    !pm_gwcache_token_ok(st, sizeof(e->st)) || !pm_gwcache_token_ok(lan, sizeof(e->lan)))
		return; /* not storable: the next start discovers */
	if (!strcmp(e->url, url) && !strcmp(e->st, st) && !strcmp(e->lan, lan))
		return;
	pm_text_copy(e->url, sizeof(e->url), url);
	pm_text_copy(e->st, sizeof(e->st), st);
	pm_text_copy(e->lan, sizeof(e->lan), lan);
	gw->memo->dirty = true;
	/* Rediscovered while UPnP is already the choice: no other choice will store it. */
	if (gw->chosen == PCPMAP_PROTO_UPNP)
		pm_gw_memo_chosen(gw, PCPMAP_PROTO_UPNP);
}

const struct pm_gwc_entry *pm_gw_memo_upnp_hint(const struct pm_server *s)
{
	const struct pm_gw *gw = s->gw;
	if (!gw || !gw->memo || !gw->memo->warm || gw->memo->entry.proto != PCPMAP_PROTO_UPNP ||
	    !gw->memo->entry.url[0])
		return NULL;
	/* Our address is what AddPortMapping names: another one means another network or host setup. */
	char local[PM_GWC_ADDR_LEN] = "";
	if (s->local.u.sa.sa_family == AF_INET)
		pm_text_ntop(AF_INET, &s->local.u.in.sin_addr, local, sizeof(local));
	else if (s->local.u.sa.sa_family == AF_INET6)
		pm_text_ntop(AF_INET6, &s->local.u.in6.sin6_addr, local, sizeof(local));
	if (strcmp(local, gw->memo->entry.lan) != 0)
		return NULL;
	return &gw->memo->entry;
}
