/*
 * Text helpers without the printf family (text.h says why).
 */
#include "text/text.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

size_t pm_text_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (cap) {
		size_t k = n < cap ? n : cap - 1;
		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

void pm_text_init(struct pm_text *t, char *buf, size_t cap)
{
	t->buf = buf;
	t->cap = cap;
	t->len = 0;
	t->cut = cap == 0;
	if (cap)
		buf[0] = '\0';
}

static void put(struct pm_text *t, const char *s, size_t n)
{
	if (t->cut)
		return;
	if (n >= t->cap - t->len) {
		n = t->cap - t->len - 1;
		t->cut = true;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

void pm_text_str(struct pm_text *t, const char *s)
{
	put(t, s, strlen(s));
}

void pm_text_u(struct pm_text *t, unsigned long long v)
{
	char d[20];
	size_t i = sizeof(d);

	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(t, d + i, sizeof(d) - i);
}

void pm_text_hex2(struct pm_text *t, unsigned char b)
{
	static const char hex[] = "0123456789abcdef";
	char d[2] = { hex[b >> 4], hex[b & 15] };

	put(t, d, 2);
}

static void put_v4(struct pm_text *t, const unsigned char *a)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			put(t, ".", 1);
		pm_text_u(t, a[i]);
	}
}

static void put_group(struct pm_text *t, unsigned g)
{
	static const char hex[] = "0123456789abcdef";
	char d[4];
	size_t i = sizeof(d);

	do {
		d[--i] = hex[g & 15];
		g >>= 4;
	} while (g);
	put(t, d + i, sizeof(d) - i);
}

static void put_v6(struct pm_text *t, const unsigned char *a)
{
	unsigned g[8];
	int best = -1, best_len = 0;

	for (int i = 0; i < 8; i++)
		g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	/* RFC 5952 4.2: the longest run of zero groups, the first of equal ones, and never a single group. */
	for (int i = 0; i < 8;) {
		int j = i;
		while (j < 8 && g[j] == 0)
			j++;
		if (j - i > best_len) {
			best = i;
			best_len = j - i;
		}
		i = j > i ? j : i + 1;
	}
	if (best_len < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			put(t, "::", 2);
			i += best_len - 1;
			continue;
		}
		if (i && i != best + best_len)
			put(t, ":", 1);
		/* IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) addresses, as inet_ntop writes them. */
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && g[5] == 0xffff))) {
			put_v4(t, a + 12);
			return;
		}
		put_group(t, g[i]);
	}
}

int pm_text_ntop(int family, const void *addr, char *buf, size_t len)
{
	struct pm_text t;

	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	if (len == 0)
		return -ENOSPC;
	pm_text_init(&t, buf, len);
	if (family == AF_INET)
		put_v4(&t, addr);
	else
		put_v6(&t, addr);
	if (t.cut) {
		buf[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}
