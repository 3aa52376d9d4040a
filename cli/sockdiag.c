// SPDX-License-Identifier: BSD-2-Clause
/*
 * This host's connections through NETLINK_SOCK_DIAG (libmnl), for PEER mappings of existing connections
 * (RFC 6887 §12: a PEER request names the connection's internal and remote endpoints).
 *
 * The parser takes untrusted bytes: every message and attribute is bounds-checked against the exact message end
 * (mnl_nlmsg_ok, mnl_attr_parse_payload plus a truncation check, mnl_attr_validate), and the fixed inet_diag_msg
 * header is copied out with memcpy after a length check.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "net/nlattr.h"
#include "sockdiag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

/* One dump datagram holds at most 32 KiB (the kernel sizes dump skbs to the reader's buffer, capped there). */
#define SD_BUF_SIZE 32768

/* ---------------------------------------------------------------------------------------------------------- */
/* Request */

int pm_net_sockdiag_request(void *buf, size_t len, int family, uint8_t proto, uint32_t states, uint32_t seq)
{
	union {
		struct nlmsghdr align;
		char b[PM_NET_SOCKDIAG_REQ_LEN];
	} req;
	struct inet_diag_req_v2 r;
	struct nlmsghdr *nlh;

	_Static_assert(MNL_NLMSG_HDRLEN + sizeof(struct inet_diag_req_v2) == PM_NET_SOCKDIAG_REQ_LEN,
		       "request size");
	if (!buf || (family != AF_INET && family != AF_INET6) ||
	    (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return -EINVAL;
	if (len < PM_NET_SOCKDIAG_REQ_LEN)
		return -ENOSPC;
	memset(&req, 0, sizeof(req));
	nlh = mnl_nlmsg_put_header(req.b);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	memset(&r, 0, sizeof(r));
	r.sdiag_family = (uint8_t)family;
	r.sdiag_protocol = proto;
	r.idiag_states = states;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(r)), &r, sizeof(r));
	/* The caller's buffer may be unaligned: hand the bytes over, not the header. */
	memcpy(buf, req.b, PM_NET_SOCKDIAG_REQ_LEN);
	return PM_NET_SOCKDIAG_REQ_LEN;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Parser */

struct sd_scan {
	uint8_t proto;
	uint32_t seq, portid; /* 0: accept any */
	bool done;
	int err; /* kernel error carried in the buffer */
	struct pm_net_conn **arr;
	size_t *n, *cap;
};

static bool v4_mapped(const uint8_t a[16])
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

static int append(struct sd_scan *s, const struct pm_net_conn *c)
{
	if (*s->n == *s->cap) {
		size_t ncap = *s->cap ? *s->cap * 2 : 16;
		struct pm_net_conn *p;

		if (ncap < *s->cap || ncap > SIZE_MAX / sizeof(*p))
			return -ENOMEM;
		p = realloc(*s->arr, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*s->arr = p;
		*s->cap = ncap;
	}
	(*s->arr)[(*s->n)++] = *c;
	return 0;
}

static int conn_parse(const struct nlmsghdr *nlh, struct sd_scan *s)
{
	const size_t off = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct inet_diag_msg));
	const struct nlattr *tb[INET_DIAG_MAX + 1];
	struct inet_diag_msg m;
	struct pm_net_conn c;
	uint8_t src[16], dst[16];
	int r;

	if (nlh->nlmsg_len < off)
		return -EBADMSG;
	memcpy(&m, mnl_nlmsg_get_payload(nlh), sizeof(m));
	r = pm_net_attrs_parse((const char *)nlh + off, nlh->nlmsg_len - off, tb, INET_DIAG_MAX);
	if (r < 0)
		return r;
	/* Only set by some kernels and protocols; when present it must agree with what we asked for. */
	if (tb[INET_DIAG_PROTOCOL]) {
		if (mnl_attr_validate(tb[INET_DIAG_PROTOCOL], MNL_TYPE_U8) < 0)
			return -EBADMSG;
		if (mnl_attr_get_u8(tb[INET_DIAG_PROTOCOL]) != s->proto)
			return 0;
	}
	if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
		return 0;
	if (s->proto == IPPROTO_TCP && m.idiag_state != PM_NET_SOCKDIAG_ESTABLISHED)
		return 0;
	if (s->proto == IPPROTO_UDP && m.id.idiag_dport == 0)
		return 0; /* unconnected */

	memset(&c, 0, sizeof(c));
	memcpy(src, m.id.idiag_src, sizeof(src));
	memcpy(dst, m.id.idiag_dst, sizeof(dst));
	c.family = m.idiag_family;
	if (c.family == AF_INET6 && v4_mapped(src) && v4_mapped(dst)) {
		/* A dual-stack socket talking IPv4: its PEER mapping is an IPv4 one. */
		c.family = AF_INET;
		memmove(src, src + 12, 4);
		memmove(dst, dst + 12, 4);
	}
	if (!inet_ntop(c.family, src, c.local, sizeof(c.local)) ||
	    !inet_ntop(c.family, dst, c.remote, sizeof(c.remote)))
		return -EBADMSG; /* cannot happen for these families */
	c.proto = s->proto;
	c.lport = ntohs(m.id.idiag_sport);
	c.rport = ntohs(m.id.idiag_dport);
	c.uid = m.idiag_uid;
	c.inode = m.idiag_inode;
	c.ifindex = m.id.idiag_if;
	c.state = s->proto == IPPROTO_TCP ? "established" : "connected";
	return append(s, &c);
}

/* Returns < 0 to fail, 0 to go on, 1 to stop. */
static int scan_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct sd_scan *s = arg;
	int r;

	if (!mnl_nlmsg_seq_ok(nlh, s->seq) || !mnl_nlmsg_portid_ok(nlh, s->portid))
		return 0;
	r = pm_net_dump_control(nlh, &s->done, &s->err);
	if (r != 0)
		return r < 0 ? r : r == 2;
	return nlh->nlmsg_type == SOCK_DIAG_BY_FAMILY ? conn_parse(nlh, s) : 0;
}

/* Trailing bytes that do not form a whole message are malformed; the last message may omit its padding. */
static int scan_buf(const void *buf, size_t len, struct sd_scan *s)
{
	return pm_net_walk(buf, len, scan_msg, s);
}

static int scan(const void *buf, size_t len, struct sd_scan *s)
{
	size_t n0 = *s->n;
	int r = scan_buf(buf, len, s);

	if (r == 0 && s->err < 0)
		r = s->err;
	if (r < 0) {
		*s->n = n0;
		return r;
	}
	return s->done ? 1 : 0;
}

int pm_net_sockdiag_parse(const void *buf, size_t len, uint8_t proto, struct pm_net_conn **arr, size_t *n,
			  size_t *cap)
{
	struct sd_scan s = { .proto = proto, .arr = arr, .n = n, .cap = cap };

	if ((!buf && len) || len > INT_MAX || !arr || !n || !cap || *n > *cap || (*cap && !*arr) ||
	    (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return -EINVAL;
	return scan(buf, len, &s);
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Live dumps */

static int sd_step(const void *buf, size_t len, void *arg)
{
	return scan(buf, len, arg);
}

int pm_net_sockdiag_dump(int family, uint8_t proto, struct pm_net_conn **arr, size_t *n, size_t *cap)
{
	struct sd_scan s = { .proto = proto, .arr = arr, .n = n, .cap = cap, .seq = 1 };
	char req[PM_NET_SOCKDIAG_REQ_LEN] __attribute__((aligned(4)));
	size_t n0;
	int r;

	if (!arr || !n || !cap || *n > *cap || (*cap && !*arr))
		return -EINVAL;
	r = pm_net_sockdiag_request(req, sizeof(req), family, proto, 1u << PM_NET_SOCKDIAG_ESTABLISHED,
				    s.seq);
	if (r < 0)
		return r;
	n0 = *n;
	r = pm_net_dump(NETLINK_SOCK_DIAG, 2, req, sizeof(req), SD_BUF_SIZE, &s.portid, sd_step, &s);
	if (r < 0)
		*n = n0;
	return r;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Every connection, in a stable order */

static void addr_key(int family, const char *s, uint8_t out[16])
{
	memset(out, 0, 16);
	(void)inet_pton(family, s, out);
}

static int cmp_u(unsigned a, unsigned b)
{
	return a < b ? -1 : a > b;
}

static int conn_cmp(const void *pa, const void *pb)
{
	const struct pm_net_conn *a = pa, *b = pb;
	uint8_t ka[16], kb[16];
	int d;

	/* TCP (6) before UDP (17), IPv4 (2) before IPv6 (10). */
	if ((d = cmp_u(a->proto, b->proto)) || (d = cmp_u((unsigned)a->family, (unsigned)b->family)))
		return d;
	addr_key(a->family, a->local, ka);
	addr_key(b->family, b->local, kb);
	if ((d = memcmp(ka, kb, 16)) || (d = cmp_u(a->lport, b->lport)))
		return d;
	addr_key(a->family, a->remote, ka);
	addr_key(b->family, b->remote, kb);
	if ((d = memcmp(ka, kb, 16)) || (d = cmp_u(a->rport, b->rport)))
		return d;
	return cmp_u(a->inode, b->inode);
}

void pm_net_connections_sort(struct pm_net_conn *arr, size_t n)
{
	if (arr && n > 1)
		qsort(arr, n, sizeof(*arr), conn_cmp);
}

int pm_net_connections(struct pm_net_conn **ret, size_t *ret_n)
{
	static const struct {
		int family;
		uint8_t proto;
	} dumps[] = {
		{ AF_INET, IPPROTO_TCP },
		{ AF_INET6, IPPROTO_TCP },
		{ AF_INET, IPPROTO_UDP },
		{ AF_INET6, IPPROTO_UDP },
	};
	struct pm_net_conn *arr = NULL;
	size_t n = 0, cap = 0, ok = 0;
	int first_err = 0;

	if (!ret || !ret_n)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(dumps) / sizeof(dumps[0]); i++) {
		int r = pm_net_sockdiag_dump(dumps[i].family, dumps[i].proto, &arr, &n, &cap);

		if (r == 0) {
			ok++;
			continue;
		}
		if (r != -ENOENT && r != -EAFNOSUPPORT) {
			free(arr);
			return r;
		}
		if (!first_err)
			first_err = r;
	}
	if (!ok) {
		free(arr);
		return first_err;
	}
	pm_net_connections_sort(arr, n);
	if (n == 0) {
		free(arr);
		arr = NULL;
	}
	*ret = arr;
	*ret_n = n;
	return 0;
}
