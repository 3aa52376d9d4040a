/* SPDX-License-Identifier: MIT */
/* pcpmapd state file: text records, strict parser with line numbers, atomic replacement. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
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

/* ---- the record's fields: one table drives both the writer and the parser ---- */

enum ftype {
	T_U32,    /* uint32_t, decimal, at most max */
	T_U16,    /* uint16_t */
	T_U8,     /* uint8_t */
	T_I64,    /* int64_t, 0 to max */
	T_BOOL,   /* yes / no */
	T_STR,    /* percent-encoded string of cap bytes */
	T_NONCE,  /* 24 hex digits */
	T_KIND,   /* map / peer (1 / 2) */
	T_FAMILY, /* 4 / 6 */
	T_FILTER, /* ADDR/PREFIX,PORT; may repeat */
};

struct field {
	const char *key;
	enum ftype type;
	size_t off;    /* in struct pmd_state_rec */
	size_t cap;    /* T_STR: buffer size */
	uint64_t min;  /* numbers */
	uint64_t max;  /* numbers */
	bool required; /* written always; a record without it is refused */
};

#define REC(f) offsetof(struct pmd_state_rec, f)
#define RSZ(f) sizeof(((struct pmd_state_rec *)0)->f)
#define NUM(k, t, f, lo, hi, req)            \
	{                                    \
		k, t, REC(f), 0, lo, hi, req \
	}
#define STR(k, f)                                     \
	{                                             \
		k, T_STR, REC(f), RSZ(f), 0, 0, false \
	}

/* In the order written. */
static const struct field fields[] = {
	NUM("id", T_U32, id, 1, UINT32_MAX, true),
	NUM("uid", T_U32, uid, 0, UINT32_MAX, true),
	NUM("persistent", T_BOOL, persistent, 0, 0, true),
	NUM("kind", T_KIND, req.kind, 0, 0, true),
	NUM("ip_proto", T_U8, req.ip_proto, 0, 255, true),
	NUM("internal_port", T_U16, req.internal_port, 0, 65535, true),
	NUM("family", T_FAMILY, req.family, 0, 0, true),
	NUM("nonce", T_NONCE, req.nonce, 0, 0, true),
	NUM("lifetime", T_U32, req.lifetime, 0, UINT32_MAX, true),
	NUM("suggested_port", T_U16, req.suggested_port, 0, 65535, false),
	STR("suggested_addr", req.suggested_addr),
	NUM("prefer_failure", T_BOOL, req.prefer_failure, 0, 0, false),
	STR("third_party", req.third_party),
	NUM("filter", T_FILTER, req.filters, 0, 0, false),
	STR("description", req.description),
	NUM("port_pair", T_BOOL, req.port_pair, 0, 0, false),
	NUM("nonce2", T_NONCE, nonce2, 0, 0, false),
	NUM("allow_degrade", T_BOOL, req.allow_degrade, 0, 0, false),
	STR("peer_addr", req.peer_addr),
	NUM("peer_port", T_U16, req.peer_port, 0, 65535, false),
	NUM("protocols", T_U32, req.protocols, 0, UINT32_MAX, false),
	STR("external_addr", external_addr),
	NUM("external_port", T_U16, external_port, 0, 65535, false),
	NUM("expires", T_I64, expires, 0, INT64_MAX, false),
};

#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static uint64_t get_num(const struct field *f, const struct pmd_state_rec *r)
{
	const char *p = (const char *)r + f->off;
	switch (f->type) {
	case T_U32:
		return *(const uint32_t *)(const void *)p;
	case T_U16:
		return *(const uint16_t *)(const void *)p;
	case T_U8:
	case T_KIND:
	case T_FAMILY:
		return *(const uint8_t *)p;
	case T_I64:
		return (uint64_t) * (const int64_t *)(const void *)p;
	case T_BOOL:
		return *(const bool *)p;
	default:
		return 0;
	}
}

static void set_num(const struct field *f, struct pmd_state_rec *r, uint64_t v)
{
	char *p = (char *)r + f->off;
	switch (f->type) {
	case T_U32:
		*(uint32_t *)(void *)p = (uint32_t)v;
		break;
	case T_U16:
		*(uint16_t *)(void *)p = (uint16_t)v;
		break;
	case T_U8:
	case T_KIND:
	case T_FAMILY:
		*(uint8_t *)p = (uint8_t)v;
		break;
	case T_I64:
		*(int64_t *)(void *)p = (int64_t)v;
		break;
	case T_BOOL:
		*(bool *)p = v != 0;
		break;
	default:
		break;
	}
}

static bool nonce_zero(const uint8_t *n)
{
	for (int k = 0; k < PMD_IPC_NONCE_LEN; k++)
		if (n[k])
			return false;
	return true;
}

static void format_field(struct sbuf *b, const struct field *f, const struct pmd_state_rec *r)
{
	const char *p = (const char *)r + f->off;
	switch (f->type) {
	case T_STR:
		if (p[0])
			sb_str(b, f->key, p);
		return;
	case T_NONCE: {
		const uint8_t *n = (const uint8_t *)p;
		if (!f->required && nonce_zero(n))
			return;
		sb_printf(b, " %s=", f->key);
		for (int k = 0; k < PMD_IPC_NONCE_LEN; k++)
			sb_printf(b, "%02x", n[k]);
		return;
	}
	case T_FILTER:
		for (size_t i = 0; i < r->req.n_filters; i++) {
			sb_str(b, f->key, r->req.filters[i].addr);
			sb_printf(b, "/%u,%u", r->req.filters[i].prefix_len, r->req.filters[i].port);
		}
		return;
	case T_KIND:
		sb_printf(b, " %s=%s", f->key, r->req.kind == 1 ? "map" : "peer");
		return;
	case T_BOOL:
		if (f->required || get_num(f, r))
			sb_printf(b, " %s=%s", f->key, get_num(f, r) ? "yes" : "no");
		return;
	case T_I64:
		if (f->required || get_num(f, r))
			sb_printf(b, " %s=%" PRId64, f->key, (int64_t)get_num(f, r));
		return;
	default:
		if (f->required || get_num(f, r))
			sb_printf(b, " %s=%" PRIu64, f->key, get_num(f, r));
		return;
	}
}

static int format_rec(struct sbuf *b, const struct pmd_state_rec *r)
{
	const struct pmd_ipc_req *q = &r->req;
	if ((q->kind != 1 && q->kind != 2) || (q->family != 4 && q->family != 6) ||
	    q->n_filters > PMD_IPC_MAX_FILTERS)
		return -EINVAL;
	sb_put(b, "mapping", 7);
	for (size_t i = 0; i < N_FIELDS; i++)
		format_field(b, &fields[i], r);
	sb_put(b, "\n", 1);
	return 0;
}

struct arr_iter {
	const struct pmd_state_rec *recs;
	size_t n, i;
};

static int arr_next(void *ud, struct pmd_state_rec *out)
{
	struct arr_iter *it = ud;
	if (it->i >= it->n)
		return 0;
	*out = it->recs[it->i++];
	return 1;
}

/* Header and records, one record in memory at a time (the text, about 250 bytes each, is built whole). */
static int format_iter(pmd_state_next_fn next, void *ud, char **ret_text, size_t *ret_len)
{
	struct sbuf b = { 0 };
	struct pmd_state_rec *r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	sb_put(&b, HEADER "\n", strlen(HEADER) + 1);
	while (next(ud, r) > 0) {
		if (format_rec(&b, r) < 0) {
			free(r);
			free(b.p);
			return -EINVAL;
		}
	}
	free(r);
	if (b.err) {
		free(b.p);
		return -ENOMEM;
	}
	*ret_text = b.p;
	*ret_len = b.len;
	return 0;
}

int pmd_state_format(const struct pmd_state_rec *recs, size_t n, char **ret_text, size_t *ret_len)
{
	struct arr_iter it = { recs, n, 0 };
	return format_iter(arr_next, &it, ret_text, ret_len);
}

/* ---- an index of records by id (open addressing; ids are never 0) ---- */

struct idindex {
	uint32_t *ids;
	size_t *pos;
	size_t cap; /* a power of two, at least twice the entries */
	size_t n;
};

static size_t idx_slot(const struct idindex *x, uint32_t id)
{
	size_t i = (size_t)(id * 2654435761u) & (x->cap - 1);
	while (x->ids[i] && x->ids[i] != id)
		i = (i + 1) & (x->cap - 1);
	return i;
}

static int idx_grow(struct idindex *x)
{
	struct idindex y = { .cap = x->cap ? x->cap * 2 : 64 };
	y.ids = calloc(y.cap, sizeof(*y.ids));
	y.pos = calloc(y.cap, sizeof(*y.pos));
	if (!y.ids || !y.pos) {
		free(y.ids);
		free(y.pos);
		return -ENOMEM;
	}
	for (size_t i = 0; i < x->cap; i++) {
		if (!x->ids[i])
			continue;
		size_t k = idx_slot(&y, x->ids[i]);
		y.ids[k] = x->ids[i];
		y.pos[k] = x->pos[i];
		y.n++;
	}
	free(x->ids);
	free(x->pos);
	*x = y;
	return 0;
}

/* @return the position recorded for id, or SIZE_MAX. */
static size_t idx_get(const struct idindex *x, uint32_t id)
{
	if (!x->cap)
		return SIZE_MAX;
	size_t k = idx_slot(x, id);
	return x->ids[k] ? x->pos[k] : SIZE_MAX;
}

static int idx_put(struct idindex *x, uint32_t id, size_t pos)
{
	if (2 * (x->n + 1) > x->cap && idx_grow(x) < 0)
		return -ENOMEM;
	size_t k = idx_slot(x, id);
	if (!x->ids[k])
		x->n++;
	x->ids[k] = id;
	x->pos[k] = pos;
	return 0;
}

static void idx_free(struct idindex *x)
{
	free(x->ids);
	free(x->pos);
	memset(x, 0, sizeof(*x));
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

static int parse_value(const struct field *f, const char *v, size_t vl, struct pmd_state_rec *r)
{
	char *p = (char *)r + f->off;
	uint64_t n = 0;
	bool yes;
	switch (f->type) {
	case T_STR:
		return unescape(v, vl, p, f->cap);
	case T_NONCE:
		if (vl != 2 * PMD_IPC_NONCE_LEN)
			return -EINVAL;
		for (size_t i = 0; i < PMD_IPC_NONCE_LEN; i++) {
			int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			((uint8_t *)p)[i] = (uint8_t)(hi * 16 + lo);
		}
		return 0;
	case T_KIND:
		if (vl == 3 && !memcmp(v, "map", 3))
			r->req.kind = 1;
		else if (vl == 4 && !memcmp(v, "peer", 4))
			r->req.kind = 2;
		else
			return -EINVAL;
		return 0;
	case T_FAMILY:
		if (num(v, vl, 6, &n) < 0 || (n != 4 && n != 6))
			return -EINVAL;
		set_num(f, r, n);
		return 0;
	case T_BOOL:
		if (yesno(v, vl, &yes) < 0)
			return -EINVAL;
		set_num(f, r, yes);
		return 0;
	case T_FILTER: {
		/* ADDR/PREFIX,PORT; the address is escaped, so the last '/' and ',' are ours. */
		struct pmd_ipc_req *q = &r->req;
		const char *slash = NULL, *comma = NULL;
		uint64_t pl, pp;
		for (size_t i = 0; i < vl; i++) {
			if (v[i] == '/')
				slash = v + i;
			else if (v[i] == ',')
				comma = v + i;
		}
		if (q->n_filters >= PMD_IPC_MAX_FILTERS || !slash || !comma || comma < slash ||
		    num(slash + 1, (size_t)(comma - slash - 1), 128, &pl) < 0 ||
		    num(comma + 1, (size_t)(v + vl - comma - 1), 65535, &pp) < 0)
			return -EINVAL;
		struct pmd_ipc_filter *fl = &q->filters[q->n_filters];
		if (unescape(v, (size_t)(slash - v), fl->addr, sizeof(fl->addr)) < 0)
			return -EINVAL;
		fl->prefix_len = (uint8_t)pl;
		fl->port = (uint16_t)pp;
		q->n_filters++;
		return 0;
	}
	default:
		if (num(v, vl, f->max, &n) < 0 || n < f->min)
			return -EINVAL;
		set_num(f, r, n);
		return 0;
	}
}

/* Parses one "mapping ..." line; msg receives the complaint. */
static int parse_line(const char *l, size_t len, struct pmd_state_rec *r, char *msg, size_t msglen)
{
	static const char head[] = "mapping ";
	uint64_t seen = 0, required = 0;
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
		const struct field *f = NULL;
		size_t i;
		for (i = 0; i < N_FIELDS && !f; i++)
			if (strlen(fields[i].key) == kl && !memcmp(tok, fields[i].key, kl))
				f = &fields[i];
		if (!f) {
			snprintf(msg, msglen, "unknown key '%.*s'", (int)(kl > 40 ? 40 : kl), tok);
			return -EINVAL;
		}
		uint64_t bit = 1ull << (i - 1);
		if (parse_value(f, eq + 1, tl - kl - 1, r) < 0) {
			snprintf(msg, msglen, "bad value for '%.*s'", (int)kl, tok);
			return -EINVAL;
		}
		if (f->required && (seen & bit)) {
			snprintf(msg, msglen, "'%.*s' given twice", (int)kl, tok);
			return -EINVAL;
		}
		seen |= bit;
	}
	for (size_t k = 0; k < N_FIELDS; k++)
		if (fields[k].required)
			required |= 1ull << k;
	if ((seen & required) != required) {
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
	struct idindex seen = { 0 };

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
				idx_free(&seen);
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
		if (idx_get(&seen, rec.id) != SIZE_MAX) {
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
				idx_free(&seen);
				return -ENOMEM;
			}
			recs = p;
			cap = nc;
		}
		if (idx_put(&seen, rec.id, n) < 0) {
			free(recs);
			idx_free(&seen);
			return -ENOMEM;
		}
		recs[n++] = rec;
	}
	idx_free(&seen);
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

static int save_as_iter(const char *dir, const char *name, pmd_state_next_fn next, void *ud)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	char *text;
	size_t len;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int r = format_iter(next, ud, &text, &len);
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

static int save_as(const char *dir, const char *name, const struct pmd_state_rec *recs, size_t n)
{
	struct arr_iter it = { recs, n, 0 };
	return save_as_iter(dir, name, arr_next, &it);
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

static int load_snapshot(const char *dir, pmd_state_err_fn err, void *ud, struct pmd_state_rec **ret,
			 size_t *ret_n, char *ret_moved, size_t moved_len)
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

/* ---- the journal ---- */

#define JHEADER     "pcpmapd-journal 1\n"
#define JHEADER_LEN (sizeof(JHEADER) - 1)

/* Applies one journal line to the records. @return 0 or -EINVAL (msg says why); -ENOMEM. */
static int replay_line(const char *l, size_t ll, struct pmd_state_rec **recs, size_t *n, size_t *cap,
		       struct idindex *x, char *msg, size_t msglen)
{
	static const char del[] = "delete id=";
	if (ll > sizeof(del) - 1 && !memcmp(l, del, sizeof(del) - 1)) {
		uint64_t id;
		if (num(l + sizeof(del) - 1, ll - (sizeof(del) - 1), UINT32_MAX, &id) < 0 || !id) {
			snprintf(msg, msglen, "bad id in a delete");
			return -EINVAL;
		}
		size_t p = idx_get(x, (uint32_t)id);
		if (p != SIZE_MAX)
			(*recs)[p].id = 0; /* removed; the slot comes back if the id does */
		return 0;
	}
	struct pmd_state_rec rec;
	if (parse_line(l, ll, &rec, msg, msglen) < 0)
		return -EINVAL;
	size_t p = idx_get(x, rec.id);
	if (p != SIZE_MAX) {
		(*recs)[p] = rec;
		return 0;
	}
	if (*n >= PMD_STATE_MAX_RECS) {
		snprintf(msg, msglen, "too many records");
		return -EINVAL;
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct pmd_state_rec *q = realloc(*recs, nc * sizeof(*q));
		if (!q)
			return -ENOMEM;
		*recs = q;
		*cap = nc;
	}
	if (idx_put(x, rec.id, *n) < 0)
		return -ENOMEM;
	(*recs)[(*n)++] = rec;
	return 0;
}

int pmd_journal_replay(const char *text, size_t len, pmd_state_err_fn err, void *ud,
		       struct pmd_state_rec **recs, size_t *n)
{
	struct idindex x = { 0 };
	size_t cap = *n, off = JHEADER_LEN;
	unsigned line = 1;
	int bad = 0, r = 0;
	char msg[160];
	if (!len)
		return 0;
	if (len < JHEADER_LEN || memcmp(text, JHEADER, JHEADER_LEN)) {
		complain(err, ud, 1, "not a pcpmapd journal (version 1 header missing)");
		return 1;
	}
	for (size_t i = 0; i < *n; i++)
		if (idx_put(&x, (*recs)[i].id, i) < 0) {
			idx_free(&x);
			return -ENOMEM;
		}
	while (off < len) {
		const char *l = text + off;
		const char *nl = memchr(l, '\n', len - off);
		line++;
		if (!nl) {
			/* A record counts once its newline is written: this one was cut short by a crash. */
			complain(err, ud, line,
				 "torn last record ignored (the daemon stopped while writing it)");
			break;
		}
		size_t ll = (size_t)(nl - l);
		off += ll + 1;
		if (!ll)
			continue;
		if (memchr(l, '\0', ll)) {
			complain(err, ud, line, "NUL byte");
			bad++;
			continue;
		}
		r = replay_line(l, ll, recs, n, &cap, &x, msg, sizeof(msg));
		if (r == -ENOMEM)
			break;
		if (r < 0) {
			complain(err, ud, line, msg);
			bad++;
			r = 0;
		}
	}
	idx_free(&x);
	if (r < 0)
		return r;
	/* Drop the removed ones. */
	size_t k = 0;
	for (size_t i = 0; i < *n; i++)
		if ((*recs)[i].id)
			(*recs)[k++] = (*recs)[i];
	*n = k;
	return bad;
}

static int move_aside(const char *dir, const char *path, char *ret_moved, size_t moved_len)
{
	char moved[PATH_MAX];
	if (snprintf(moved, sizeof(moved), "%s.corrupt-%lld", path, (long long)time(NULL)) >=
		(int)sizeof(moved) ||
	    rename(path, moved) < 0)
		return -errno;
	fsync_dir(dir);
	if (ret_moved && moved_len && !ret_moved[0])
		snprintf(ret_moved, moved_len, "%s", moved);
	return 0;
}

int pmd_state_load(const char *dir, pmd_state_err_fn err, void *ud, struct pmd_state_rec **ret, size_t *ret_n,
		   char *ret_moved, size_t moved_len)
{
	char path[PATH_MAX];
	char *text = NULL;
	size_t len = 0;
	int bad = load_snapshot(dir, err, ud, ret, ret_n, ret_moved, moved_len);
	if (bad < 0)
		return bad;
	if (snprintf(path, sizeof(path), "%s/%s", dir, PMD_STATE_JOURNAL) >= (int)sizeof(path))
		return bad;
	int r = read_file(path, &text, &len);
	if (r == -ENOENT)
		return bad;
	if (r < 0) {
		complain(err, ud, 0, "the journal cannot be read");
		free(*ret);
		*ret = NULL;
		*ret_n = 0;
		return r;
	}
	r = pmd_journal_replay(text, len, err, ud, ret, ret_n);
	free(text);
	if (r < 0) {
		free(*ret);
		*ret = NULL;
		*ret_n = 0;
		return r;
	}
	if (r > 0)
		move_aside(dir, path, ret_moved, moved_len);
	return bad + r;
}

int pmd_journal_open(const char *dir, struct pmd_journal *j)
{
	char path[PATH_MAX];
	struct stat st;
	j->fd = -1;
	j->size = 0;
	if (snprintf(path, sizeof(path), "%s/%s", dir, PMD_STATE_JOURNAL) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	j->fd = fd;
	j->size = (uint64_t)st.st_size;
	if (!st.st_size) {
		int r = write_all(fd, JHEADER, JHEADER_LEN);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		if (r == 0)
			r = fsync_dir(dir);
		if (r < 0) {
			pmd_journal_close(j);
			return r;
		}
		j->size = JHEADER_LEN;
	}
	return 0;
}

void pmd_journal_close(struct pmd_journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

int pmd_journal_append_iter(struct pmd_journal *j, pmd_state_next_fn next, void *ud, const uint32_t *dels,
			    size_t n_dels)
{
	struct sbuf b = { 0 };
	if (j->fd < 0)
		return -EBADF;
	struct pmd_state_rec *rec = malloc(sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	while (next && next(ud, rec) > 0) {
		if (format_rec(&b, rec) < 0) {
			free(rec);
			free(b.p);
			return -EINVAL;
		}
	}
	free(rec);
	for (size_t i = 0; i < n_dels; i++)
		sb_printf(&b, "delete id=%" PRIu32 "\n", dels[i]);
	if (b.err) {
		free(b.p);
		return -ENOMEM;
	}
	if (!b.len)
		return 0;
	/* One write() per batch; one that falls short is cut back, so no half record stays in the middle. */
	int r = write_all(j->fd, b.p, b.len);
	free(b.p);
	if (r < 0) {
		if (ftruncate(j->fd, (off_t)j->size) < 0)
			r = -EIO; /* the half record stays: the next compaction replaces the file */
		return r;
	}
	j->size += b.len;
	return 0;
}

struct ptr_iter {
	const struct pmd_state_rec *const *recs;
	size_t n, i;
};

static int ptr_next(void *ud, struct pmd_state_rec *out)
{
	struct ptr_iter *it = ud;
	if (it->i >= it->n)
		return 0;
	*out = *it->recs[it->i++];
	return 1;
}

int pmd_journal_append(struct pmd_journal *j, const struct pmd_state_rec *const *puts, size_t n_puts,
		       const uint32_t *dels, size_t n_dels)
{
	struct ptr_iter it = { puts, n_puts, 0 };
	return pmd_journal_append_iter(j, ptr_next, &it, dels, n_dels);
}

int pmd_journal_sync(struct pmd_journal *j)
{
	if (j->fd < 0)
		return -EBADF;
	return fdatasync(j->fd) < 0 ? -errno : 0;
}

int pmd_state_compact(const char *dir, struct pmd_journal *j, const struct pmd_state_rec *recs, size_t n)
{
	struct arr_iter it = { recs, n, 0 };
	return pmd_state_compact_iter(dir, j, arr_next, &it);
}

int pmd_state_compact_iter(const char *dir, struct pmd_journal *j, pmd_state_next_fn next, void *ud)
{
	int r = save_as_iter(dir, PMD_STATE_FILE, next, ud);
	if (r < 0)
		return r;
	if (j->fd < 0 && (r = pmd_journal_open(dir, j)) < 0)
		return r;
	/* The snapshot holds everything the journal said; replaying the journal over it again changes nothing
	 * (each line is a whole record or a removal), so a crash between rename and truncation is harmless. */
	if (ftruncate(j->fd, JHEADER_LEN) < 0 || fdatasync(j->fd) < 0)
		return -errno;
	j->size = JHEADER_LEN;
	return 0;
}
