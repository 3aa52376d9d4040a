/* SPDX-License-Identifier: BSD-2-Clause */
/* Netlink attribute parsing shared by the rtnetlink and sock_diag parsers. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "net/nlattr.h"

struct attr_ctx {
	const struct nlattr **tb;
	unsigned max;
	uintptr_t base; /* address of the first attribute */
	size_t end;     /* offset just past the last well-formed attribute, padding included */
};

static int attr_cb(const struct nlattr *attr, void *data)
{
	struct attr_ctx *c = data;
	uint16_t type = mnl_attr_get_type(attr);

	if (type <= c->max)
		c->tb[type] = attr;
	c->end = (size_t)((uintptr_t)attr - c->base) + MNL_ALIGN((size_t)mnl_attr_get_len(attr));
	return MNL_CB_OK;
}

int pm_net_attrs_parse(const void *payload, size_t size, const struct nlattr **tb, unsigned max)
{
	struct attr_ctx c = { .tb = tb, .max = max, .base = (uintptr_t)payload, .end = 0 };

	memset(tb, 0, (max + 1) * sizeof(*tb));
	if (size == 0)
		return 0;
	if (mnl_attr_parse_payload(payload, size, attr_cb, &c) < 0)
		return -EBADMSG;
	if (c.end < size)
		return -EBADMSG;
	return 0;
}

#define MAX_ERRNO 4095

static int walk(const void *buf, size_t len, int (*fn)(const struct nlmsghdr *nlh, void *arg), void *arg)
{
	const char *p = buf;
	size_t left = len;

	while (left > 0) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)(const void *)p;
		/* mnl_nlmsg_ok compares (int)nlmsg_len: a length >= 2^31 would pass it. */
		if (!mnl_nlmsg_ok(nlh, (int)left) || nlh->nlmsg_len > left)
			return -EBADMSG;
		int r = fn(nlh, arg);
		if (r < 0)
			return r;
		if (r > 0)
			break;
		size_t step = MNL_ALIGN((size_t)nlh->nlmsg_len);
		if (step >= left)
			break;
		p += step;
		left -= step;
	}
	return 0;
}

int pm_net_walk(const void *buf, size_t len, int (*fn)(const struct nlmsghdr *nlh, void *arg), void *arg)
{
	const void *view;
	void *copy;

	if (len == 0)
		return 0;
	int r = pm_net_aligned_view(buf, len, &view, &copy);
	if (r < 0)
		return r;
	r = walk(view, len, fn, arg);
	free(copy);
	return r;
}

int pm_net_aligned_view(const void *buf, size_t len, const void **ret_view, void **ret_copy)
{
	void *copy;

	*ret_copy = NULL;
	if (((uintptr_t)buf % _Alignof(struct nlmsghdr)) == 0) {
		*ret_view = buf;
		return 0;
	}
	copy = malloc(len);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	*ret_view = copy;
	*ret_copy = copy;
	return 0;
}

int pm_net_kernel_errno(const struct nlmsghdr *nlh, int *ret)
{
	int32_t e;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(e))
		return -EBADMSG;
	memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
	if (e > 0 || e < -MAX_ERRNO)
		return -EBADMSG;
	*ret = e;
	return 0;
}

int pm_net_dump_control(const struct nlmsghdr *nlh, bool *done, int *err)
{
	int e = 0, r;

	switch (nlh->nlmsg_type) {
	case NLMSG_DONE:
		/* Since Linux 4.x NLMSG_DONE carries the dump's final status (sock_diag: -ENOENT, no handler). */
		if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int32_t)) {
			r = pm_net_kernel_errno(nlh, &e);
			if (r < 0)
				return r;
		}
		break;
	case NLMSG_ERROR:
		r = pm_net_kernel_errno(nlh, &e);
		if (r < 0)
			return r;
		if (e == 0)
			return 1;
		break;
	default:
		return 0;
	}
	*done = true;
	*err = e;
	return 2;
}

int pm_net_dump(int bus, unsigned timeout_s, const void *req, size_t len, size_t bufsize,
		uint32_t *ret_portid, int (*step)(const void *buf, size_t len, void *arg), void *arg)
{
	struct timeval tv = { .tv_sec = (time_t)timeout_s };
	struct mnl_socket *nl;
	void *rx = malloc(bufsize); /* malloc's alignment suits struct nlmsghdr */
	int r = 0;

	if (!rx)
		return -ENOMEM;
	nl = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (!nl) {
		r = -errno;
		free(rx);
		return r;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto out;
	}
	*ret_portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, req, len) < 0) {
		r = -errno;
		goto out;
	}
	while (r == 0) {
		ssize_t got = mnl_socket_recvfrom(nl, rx, bufsize);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		} else if (got == 0) {
			r = -EPIPE;
		} else {
			r = step(rx, (size_t)got, arg);
		}
	}
	if (r > 0)
		r = 0;
out:
	mnl_socket_close(nl);
	free(rx);
	return r;
}
