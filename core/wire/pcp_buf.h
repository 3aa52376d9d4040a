/*
 * Bounds-checked big-endian reader and writer over byte buffers. Errors are sticky: after the first short
 * read or write every further call is a no-op (reads return 0), and the caller checks ->err once at the end.
 * No casts over the buffer and no unaligned loads: every multi-byte value is assembled byte by byte.
 */
#ifndef PCPMAP_WIRE_PCP_BUF_H
#define PCPMAP_WIRE_PCP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct pcp_rbuf {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool err;
};

struct pcp_wbuf {
	uint8_t *p;
	size_t cap;
	size_t off;
	bool err;
};

static inline void pcp_rbuf_init(struct pcp_rbuf *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = p ? len : 0;
	r->off = 0;
	r->err = false;
}

static inline size_t pcp_rbuf_left(const struct pcp_rbuf *r)
{
	return r->err ? 0 : r->len - r->off;
}

/* Marks the error and returns false when fewer than n bytes are left. */
static inline bool pcp_rbuf_need(struct pcp_rbuf *r, size_t n)
{
	if (r->err || r->len - r->off < n) {
		r->err = true;
		return false;
	}
	return true;
}

static inline uint8_t pcp_rbuf_u8(struct pcp_rbuf *r)
{
	if (!pcp_rbuf_need(r, 1))
		return 0;
	return r->p[r->off++];
}

static inline uint16_t pcp_rbuf_u16(struct pcp_rbuf *r)
{
	if (!pcp_rbuf_need(r, 2))
		return 0;
	uint16_t v = (uint16_t)((unsigned)r->p[r->off] << 8 | r->p[r->off + 1]);
	r->off += 2;
	return v;
}

static inline uint32_t pcp_rbuf_u32(struct pcp_rbuf *r)
{
	if (!pcp_rbuf_need(r, 4))
		return 0;
	uint32_t v = (uint32_t)r->p[r->off] << 24 | (uint32_t)r->p[r->off + 1] << 16 |
		     (uint32_t)r->p[r->off + 2] << 8 | (uint32_t)r->p[r->off + 3];
	r->off += 4;
	return v;
}

/* Copies n bytes to dst; on a short buffer dst is zero-filled. */
static inline void pcp_rbuf_bytes(struct pcp_rbuf *r, void *dst, size_t n)
{
	if (!pcp_rbuf_need(r, n)) {
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}

static inline void pcp_rbuf_skip(struct pcp_rbuf *r, size_t n)
{
	if (pcp_rbuf_need(r, n))
		r->off += n;
}

/* Pointer to the next n bytes without consuming them, NULL (and err) when short. */
static inline const uint8_t *pcp_rbuf_peek(struct pcp_rbuf *r, size_t n)
{
	if (!pcp_rbuf_need(r, n))
		return NULL;
	return r->p + r->off;
}

static inline void pcp_wbuf_init(struct pcp_wbuf *w, uint8_t *p, size_t cap)
{
	w->p = p;
	w->cap = p ? cap : 0;
	w->off = 0;
	w->err = false;
}

static inline bool pcp_wbuf_need(struct pcp_wbuf *w, size_t n)
{
	if (w->err || w->cap - w->off < n) {
		w->err = true;
		return false;
	}
	return true;
}

static inline void pcp_wbuf_u8(struct pcp_wbuf *w, uint8_t v)
{
	if (pcp_wbuf_need(w, 1))
		w->p[w->off++] = v;
}

static inline void pcp_wbuf_u16(struct pcp_wbuf *w, uint16_t v)
{
	if (!pcp_wbuf_need(w, 2))
		return;
	w->p[w->off] = (uint8_t)(v >> 8);
	w->p[w->off + 1] = (uint8_t)v;
	w->off += 2;
}

static inline void pcp_wbuf_u32(struct pcp_wbuf *w, uint32_t v)
{
	if (!pcp_wbuf_need(w, 4))
		return;
	w->p[w->off] = (uint8_t)(v >> 24);
	w->p[w->off + 1] = (uint8_t)(v >> 16);
	w->p[w->off + 2] = (uint8_t)(v >> 8);
	w->p[w->off + 3] = (uint8_t)v;
	w->off += 4;
}

static inline void pcp_wbuf_bytes(struct pcp_wbuf *w, const void *src, size_t n)
{
	if (!pcp_wbuf_need(w, n))
		return;
	if (n)
		memcpy(w->p + w->off, src, n);
	w->off += n;
}

static inline void pcp_wbuf_zeros(struct pcp_wbuf *w, size_t n)
{
	if (!pcp_wbuf_need(w, n))
		return;
	memset(w->p + w->off, 0, n);
	w->off += n;
}

/* Zero bytes up to the next multiple of 4 (RFC 6887 7.3 option padding). */
static inline void pcp_wbuf_pad4(struct pcp_wbuf *w)
{
	pcp_wbuf_zeros(w, (4 - (w->off & 3)) & 3);
}

/* Big-endian loads from a buffer the caller has already bounds-checked. */
static inline uint16_t pcp_get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t pcp_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#endif
