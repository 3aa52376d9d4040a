/* SPDX-License-Identifier: MIT */
/* pcpmapd state file: text records, strict parser with line numbers, atomic replacement. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/state.h"

#define HEADER "pcpmapd-state 1"

/* ---- growable text buffer ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool err;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->err = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->err = true;
		return;
	}
	sb_put(b, tmp, (size_t)n);
}

static bool plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == ':' || c == '_' || c == '-';
}

/* Strings are percent-encoded outside [A-Za-z0-9.:_-], so a value never holds a space, '=', '/' or ','. */
static void sb_str(struct sbuf *b, const char *key, const char *s)
{
	sb_printf(b, " %s=", key);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (plain(*p))
			sb_put(b, (const char *)p, 1);
		else
			sb_printf(b, "%%%02X", *p);
	}
}

int pmd_state_format(const struct pmd_state_rec *recs, size_t n, char **ret_text, size_t *ret_len)
{
	struct sbuf b = { 0 };
	sb_put(&b, HEADER "\n", strlen(HEADER) + 1);
	for (size_t i = 0; i < n; i++) {
		const struct pmd_state_rec *r = &recs[i];
		const struct pmd_ipc_req *q = &r->req;
		if ((q->kind != 1 && q->kind != 2) || (q->family != 4 && q->family != 6) ||
		    q->n_filters > PMD_IPC_MAX_FILTERS) {
			free(b.p);
			return -EINVAL;
		}
		sb_printf(&b, "mapping id=%" PRIu32 " uid=%" PRIu32 " persistent=%s kind=%s ip_proto=%u",
			  r->id, r->uid, r->persistent ? "yes" : "no", q->kind == 1 ? "map" : "peer",
			  q->ip_proto);
		sb_printf(&b, " internal_port=%u family=%u nonce=", q->internal_port, q->family);
		for (int k = 0; k < PMD_IPC_NONCE_LEN; k++)
			sb_printf(&b, "%02x", q->nonce[k]);
		sb_printf(&b, " lifetime=%" PRIu32, q->lifetime);
		if (q->suggested_port)
			sb_printf(&b, " suggested_port=%u", q->suggested_port);
		if (q->suggested_addr[0])
			sb_str(&b, "suggested_addr", q->suggested_addr);
		if (q->prefer_failure)
			sb_printf(&b, " prefer_failure=yes");
		if (q->third_party[0])
			sb_str(&b, "third_party", q->third_party);
		for (size_t f = 0; f < q->n_filters; f++) {
			sb_str(&b, "filter", q->filters[f].addr);
			sb_printf(&b, "/%u,%u", q->filters[f].prefix_len, q->filters[f].port);
		}
		if (q->description[0])
			sb_str(&b, "description", q->description);
		if (q->port_pair)
			sb_printf(&b, " port_pair=yes");
		if (q->peer_addr[0])
			sb_str(&b, "peer_addr", q->peer_addr);
		if (q->peer_port)
			sb_printf(&b, " peer_port=%u", q->peer_port);
		if (q->protocols)
			sb_printf(&b, " protocols=%" PRIu32, q->protocols);
		if (r->external_addr[0])
			sb_str(&b, "external_addr", r->external_addr);
		if (r->external_port)
			sb_printf(&b, " external_port=%u", r->external_port);
		if (r->expires)
			sb_printf(&b, " expires=%" PRId64, r->expires);
		sb_put(&b, "\n", 1);
	}
	if (b.err) {
		free(b.p);
		return -ENOMEM;
	}
	*ret_text = b.p;
	*ret_len = b.len;
	return 0;
}

/* ---- parsing ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a percent-encoded value into dst (cap bytes); it must be a valid IPC string. */
static int unescape(const char *s, size_t len, char *dst, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -EINVAL;
			int hi = hexval(s[i + 1]);
			int lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (!plain(c)) {
			return -EINVAL;
		}
		if (o + 1 >= cap)
			return -EINVAL;
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return pmd_ipc_str_valid(dst, o) ? 0 : -EINVAL;
}

static int num(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	if (!len || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int yesno(const char *s, size_t len, bool *ret)
{
	if (len == 3 && !memcmp(s, "yes", 3))
		*ret = true;
	else if (len == 2 && !memcmp(s, "no", 2))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

enum {
	F_ID = 1u << 0,
	F_UID = 1u << 1,
	F_PERSISTENT = 1u << 2,
	F_KIND = 1u << 3,
	F_IP_PROTO = 1u << 4,
	F_PORT = 1u << 5,
	F_FAMILY = 1u << 6,
	F_NONCE = 1u << 7,
	F_LIFETIME = 1u << 8,
	F_REQUIRED = (1u << 9) - 1,
};

/* Parses one "mapping ..." line; msg receives the complaint. */
static int parse_line(const char *l, size_t len, struct pmd_state_rec *r, char *msg, size_t msglen)
{
	static const char head[] = "mapping ";
	unsigned seen = 0;
	memset(r, 0, sizeof(*r));
	if (len < sizeof(head) - 1 || memcmp(l, head, sizeof(head) - 1)) {
		snprintf(msg, msglen, "expected 'mapping KEY=VALUE...'");
		return -EINVAL;
	}
	size_t off = sizeof(head) - 1;
	while (off < len) {
		const char *tok = l + off;
		const char *sp = memchr(tok, ' ', len - off);
		size_t tl = sp ? (size_t)(sp - tok) : len - off;
		off += tl + (sp ? 1 : 0);
		if (!tl)
			continue;
		const char *eq = memchr(tok, '=', tl);
		if (!eq) {
			snprintf(msg, msglen, "'%.*s' is not KEY=VALUE", (int)(tl > 40 ? 40 : tl), tok);
			return -EINVAL;
		}
		size_t kl = (size_t)(eq - tok);
		const char *v = eq + 1;
		size_t vl = tl - kl - 1;
		uint64_t n = 0;
		int err = 0;
		unsigned flag = 0;
		struct pmd_ipc_req *q = &r->req;
#define KEY(name) (kl == sizeof(name) - 1 && !memcmp(tok, name, kl))
		if (KEY("id")) {
			flag = F_ID;
			err = num(v, vl, UINT32_MAX, &n);
			r->id = (uint32_t)n;
			if (!err && !n)
				err = -EINVAL;
		} else if (KEY("uid")) {
			flag = F_UID;
			err = num(v, vl, UINT32_MAX, &n);
			r->uid = (uint32_t)n;
		} else if (KEY("persistent")) {
			flag = F_PERSISTENT;
			err = yesno(v, vl, &r->persistent);
		} else if (KEY("kind")) {
			flag = F_KIND;
			if (vl == 3 && !memcmp(v, "map", 3))
				q->kind = 1;
			else if (vl == 4 && !memcmp(v, "peer", 4))
				q->kind = 2;
			else
				err = -EINVAL;
		} else if (KEY("ip_proto")) {
			flag = F_IP_PROTO;
			err = num(v, vl, 255, &n);
			q->ip_proto = (uint8_t)n;
		} else if (KEY("internal_port")) {
			flag = F_PORT;
			err = num(v, vl, 65535, &n);
			q->internal_port = (uint16_t)n;
		} else if (KEY("family")) {
			flag = F_FAMILY;
			err = num(v, vl, 6, &n);
			q->family = (uint8_t)n;
			if (n != 4 && n != 6)
				err = -EINVAL;
		} else if (KEY("nonce")) {
			flag = F_NONCE;
			if (vl != 2 * PMD_IPC_NONCE_LEN)
				err = -EINVAL;
			for (size_t i = 0; !err && i < PMD_IPC_NONCE_LEN; i++) {
				int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
				if (hi < 0 || lo < 0)
					err = -EINVAL;
				else
					q->nonce[i] = (uint8_t)(hi * 16 + lo);
			}
		} else if (KEY("lifetime")) {
			flag = F_LIFETIME;
			err = num(v, vl, UINT32_MAX, &n);
			q->lifetime = (uint32_t)n;
		} else if (KEY("suggested_port")) {
			err = num(v, vl, 65535, &n);
			q->suggested_port = (uint16_t)n;
		} else if (KEY("suggested_addr")) {
			err = unescape(v, vl, q->suggested_addr, sizeof(q->suggested_addr));
		} else if (KEY("prefer_failure")) {
			err = yesno(v, vl, &q->prefer_failure);
		} else if (KEY("third_party")) {
			err = unescape(v, vl, q->third_party, sizeof(q->third_party));
		} else if (KEY("filter")) {
			/* ADDR/PREFIX,PORT; the address is escaped, so the last '/' and ',' are ours. */
			const char *slash = NULL, *comma = NULL;
			for (size_t i = 0; i < vl; i++) {
				if (v[i] == '/')
					slash = v + i;
				else if (v[i] == ',')
					comma = v + i;
			}
			uint64_t pl, pp;
			if (q->n_filters >= PMD_IPC_MAX_FILTERS || !slash || !comma || comma < slash ||
			    num(slash + 1, (size_t)(comma - slash - 1), 128, &pl) < 0 ||
			    num(comma + 1, (size_t)(v + vl - comma - 1), 65535, &pp) < 0) {
				err = -EINVAL;
			} else {
				struct pmd_ipc_filter *f = &q->filters[q->n_filters];
				err = unescape(v, (size_t)(slash - v), f->addr, sizeof(f->addr));
				f->prefix_len = (uint8_t)pl;
				f->port = (uint16_t)pp;
				if (!err)
					q->n_filters++;
			}
		} else if (KEY("description")) {
			err = unescape(v, vl, q->description, sizeof(q->description));
		} else if (KEY("port_pair")) {
			err = yesno(v, vl, &q->port_pair);
		} else if (KEY("peer_addr")) {
			err = unescape(v, vl, q->peer_addr, sizeof(q->peer_addr));
		} else if (KEY("peer_port")) {
			err = num(v, vl, 65535, &n);
			q->peer_port = (uint16_t)n;
		} else if (KEY("protocols")) {
			err = num(v, vl, UINT32_MAX, &n);
			q->protocols = (uint32_t)n;
		} else if (KEY("external_addr")) {
			err = unescape(v, vl, r->external_addr, sizeof(r->external_addr));
		} else if (KEY("external_port")) {
			err = num(v, vl, 65535, &n);
			r->external_port = (uint16_t)n;
		} else if (KEY("expires")) {
			err = num(v, vl, INT64_MAX, &n);
			r->expires = (int64_t)n;
		} else {
			snprintf(msg, msglen, "unknown key '%.*s'", (int)(kl > 40 ? 40 : kl), tok);
			return -EINVAL;
		}
#undef KEY
		if (err) {
			snprintf(msg, msglen, "bad value for '%.*s'", (int)(kl > 40 ? 40 : kl), tok);
			return -EINVAL;
		}
		if (flag & seen) {
			snprintf(msg, msglen, "'%.*s' given twice", (int)kl, tok);
			return -EINVAL;
		}
		seen |= flag;
	}
	if ((seen & F_REQUIRED) != F_REQUIRED) {
		snprintf(msg, msglen,
			 "incomplete record (needs id, uid, persistent, kind, ip_proto, internal_port, "
			 "family, nonce, lifetime)");
		return -EINVAL;
	}
	return 0;
}

static void complain(pmd_state_err_fn err, void *ud, unsigned line, const char *msg)
{
	if (err)
		err(ud, line, msg);
}

int pmd_state_parse(const char *text, size_t len, pmd_state_err_fn err, void *ud, struct pmd_state_rec **ret,
		    size_t *ret_n)
{
	struct pmd_state_rec *recs = NULL, rec;
	size_t n = 0, cap = 0, off = 0;
	unsigned line = 0;
	int bad = 0;
	char msg[160];
	bool header = false;

	while (off < len) {
		const char *l = text + off;
		const char *nl = memchr(l, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - l) : len - off;
		off += ll + (nl ? 1 : 0);
		line++;
		if (!header) {
			if (ll != strlen(HEADER) || memcmp(l, HEADER, ll)) {
				complain(err, ud, line,
					 "not a pcpmapd state file (version 1 header missing)");
				free(recs);
				*ret = NULL;
				*ret_n = 0;
				return 1;
			}
			header = true;
			continue;
		}
		if (!ll || l[0] == '#')
			continue;
		if (memchr(l, '\0', ll)) {
			complain(err, ud, line, "NUL byte");
			bad++;
			continue;
		}
		if (parse_line(l, ll, &rec, msg, sizeof(msg)) < 0) {
			complain(err, ud, line, msg);
			bad++;
			continue;
		}
		bool dup = false;
		for (size_t i = 0; i < n && !dup; i++)
			dup = recs[i].id == rec.id;
		if (dup) {
			snprintf(msg, sizeof(msg), "id %" PRIu32 " repeated", rec.id);
			complain(err, ud, line, msg);
			bad++;
			continue;
		}
		if (n >= PMD_STATE_MAX_RECS) {
			complain(err, ud, line, "too many records");
			bad++;
			break;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct pmd_state_rec *p = realloc(recs, nc * sizeof(*p));
			if (!p) {
				free(recs);
				return -ENOMEM;
			}
			recs = p;
			cap = nc;
		}
		recs[n++] = rec;
	}
	if (!header && len) {
		complain(err, ud, 1, "not a pcpmapd state file");
		bad++;
	}
	*ret = recs;
	*ret_n = n;
	return bad;
}

/* ---- files ---- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int save_as(const char *dir, const char *name, const struct pmd_state_rec *recs, size_t n)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	char *text;
	size_t len;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int r = pmd_state_format(recs, n, &text, &len);
	if (r < 0)
		return r;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		free(text);
		return r;
	}
	r = write_all(fd, text, len);
	free(text);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	return fsync_dir(dir);
}

int pmd_state_save(const char *dir, const struct pmd_state_rec *recs, size_t n)
{
	return save_as(dir, PMD_STATE_FILE, recs, n);
}

static int read_file(const char *path, char **ret, size_t *ret_len);

int pmd_state_set_aside(const char *dir, const struct pmd_state_rec *recs, size_t n, char *ret_path,
			size_t path_len)
{
	char path[PATH_MAX];
	if (ret_path && path_len)
		ret_path[0] = '\0';
	if (snprintf(path, sizeof(path), "%s/%s", dir, PMD_STATE_UNRESTORED) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	/* Records set aside by an earlier start that nobody moved back are kept, not overwritten. */
	struct pmd_state_rec *old = NULL, *all;
	size_t n_old = 0, len = 0;
	char *text = NULL;
	int r = read_file(path, &text, &len);
	if (r == 0) {
		r = pmd_state_parse(text, len, NULL, NULL, &old, &n_old);
		free(text);
		if (r < 0)
			return r;
	} else if (r != -ENOENT) {
		return r;
	}
	all = calloc(n_old + n + 1, sizeof(*all));
	if (!all) {
		free(old);
		return -ENOMEM;
	}
	if (n_old)
		memcpy(all, old, n_old * sizeof(*all));
	free(old);
	size_t total = n_old;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < n_old && !dup; j++)
			dup = all[j].id == recs[i].id &&
			      !memcmp(all[j].req.nonce, recs[i].req.nonce, sizeof(recs[i].req.nonce));
		if (!dup)
			all[total++] = recs[i];
	}
	r = save_as(dir, PMD_STATE_UNRESTORED, all, total);
	free(all);
	if (r == 0 && ret_path && path_len)
		snprintf(ret_path, path_len, "%s", path);
	return r;
}

/* Reads a whole file of at most PMD_STATE_MAX_BYTES (malloc'd, not terminated). @return 0 or -errno. */
static int read_file(const char *path, char **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	char *buf = malloc(PMD_STATE_MAX_BYTES + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, PMD_STATE_MAX_BYTES + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > PMD_STATE_MAX_BYTES) {
			free(buf);
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	*ret = buf;
	*ret_len = len;
	return 0;
}

int pmd_state_load(const char *dir, pmd_state_err_fn err, void *ud, struct pmd_state_rec **ret, size_t *ret_n,
		   char *ret_moved, size_t moved_len)
{
	char path[PATH_MAX];
	if (ret_moved && moved_len)
		ret_moved[0] = '\0';
	if (snprintf(path, sizeof(path), "%s/%s", dir, PMD_STATE_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT) {
			*ret = NULL;
			*ret_n = 0;
			return 0;
		}
		return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	size_t cap = st.st_size > 0 && (uint64_t)st.st_size < PMD_STATE_MAX_BYTES ? (size_t)st.st_size + 1
										  : PMD_STATE_MAX_BYTES + 1;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (r == 0 || (len += (size_t)r) == cap)
			break;
	}
	close(fd);
	int bad;
	struct pmd_state_rec *recs = NULL;
	size_t n = 0;
	if (len > PMD_STATE_MAX_BYTES) {
		complain(err, ud, 0, "file too large");
		bad = 1;
	} else {
		bad = pmd_state_parse(buf, len, err, ud, &recs, &n);
	}
	free(buf);
	if (bad < 0)
		return bad;
	if (bad > 0) {
		char moved[PATH_MAX];
		if (snprintf(moved, sizeof(moved), "%s.corrupt-%lld", path, (long long)time(NULL)) <
			(int)sizeof(moved) &&
		    rename(path, moved) == 0) {
			fsync_dir(dir);
			if (ret_moved && moved_len)
				snprintf(ret_moved, moved_len, "%s", moved);
		}
	}
	*ret = recs;
	*ret_n = n;
	return bad;
}
