/* SPDX-License-Identifier: BSD-2-Clause */
/* Netlink attribute parsing shared by the rtnetlink and sock_diag parsers. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

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
