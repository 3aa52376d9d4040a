// SPDX-License-Identifier: BSD-2-Clause
/*
 * The link-layer address of a neighbour (the gateway) from the kernel's neighbour table (rtnetlink
 * RTM_GETNEIGH dump through libmnl): what tells one 192.168.1.1 from another for the gateway cache.
 * Every message and attribute is bounds-checked as in route.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "net/nlattr.h"
#include "net/net.h"
#include "text/text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <libmnl/libmnl.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define NEIGH_BUF_SIZE 32768

struct neigh_scan {
	int family;
	const void *addr;
	size_t alen;
	uint32_t seq, portid;
	bool done, found;
	int err;
	unsigned char ll[32];
	size_t ll_len;
};

/* States in which the kernel's address is a fact, not a guess being resolved. */
#define NUD_USABLE (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)

static int scan_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct neigh_scan *s = arg;
	if (nlh->nlmsg_seq != s->seq || nlh->nlmsg_pid != s->portid)
		return 0;
	int r = pm_net_dump_control(nlh, &s->done, &s->err);
	if (r != 0)
		return r < 0 ? r : r == 2;
	if (nlh->nlmsg_type != RTM_NEWNEIGH)
		return 0;
	struct ndmsg nd;
	const struct nlattr *tb[NDA_MAX + 1];
	size_t off = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nd));
	if (nlh->nlmsg_len < off)
		return -EBADMSG;
	memcpy(&nd, mnl_nlmsg_get_payload(nlh), sizeof(nd));
	if (pm_net_attrs_parse((const char *)nlh + off, nlh->nlmsg_len - off, tb, NDA_MAX) < 0)
		return -EBADMSG;
	if (nd.ndm_family != s->family || !(nd.ndm_state & NUD_USABLE) || !tb[NDA_DST] || !tb[NDA_LLADDR])
		return 0;
	if (mnl_attr_get_payload_len(tb[NDA_DST]) != s->alen ||
	    memcmp(mnl_attr_get_payload(tb[NDA_DST]), s->addr, s->alen) != 0)
		return 0;
	size_t ll = mnl_attr_get_payload_len(tb[NDA_LLADDR]);
	if (ll == 0 || ll > sizeof(s->ll))
		return 0;
	memcpy(s->ll, mnl_attr_get_payload(tb[NDA_LLADDR]), ll);
	s->ll_len = ll;
	s->found = true;
	return 0;
}

static int neigh_step(const void *buf, size_t len, void *arg)
{
	struct neigh_scan *s = arg;
	int r = pm_net_walk(buf, len, scan_msg, s);
	return r < 0 ? r : s->done;
}

int pm_net_neighbour_lladdr(int family, const void *addr, char *ret, size_t len)
{
	union {
		struct nlmsghdr align;
		char b[MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct ndmsg))];
	} req;
	struct neigh_scan s;

	if (!addr || !ret || (family != AF_INET && family != AF_INET6))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req.b);
	nlh->nlmsg_type = RTM_GETNEIGH;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = 1;
	struct ndmsg nd;
	memset(&nd, 0, sizeof(nd));
	nd.ndm_family = (unsigned char)family;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(nd)), &nd, sizeof(nd));

	memset(&s, 0, sizeof(s));
	s.family = family;
	s.addr = addr;
	s.alen = family == AF_INET ? 4 : 16;
	s.seq = nlh->nlmsg_seq;
	int r = pm_net_dump(NETLINK_ROUTE, 1, nlh, nlh->nlmsg_len, NEIGH_BUF_SIZE, &s.portid, neigh_step, &s);
	if (r < 0)
		return r;
	if (s.err < 0)
		return s.err;
	if (!s.found)
		return -ENOENT;
	if (len < s.ll_len * 3)
		return -ENOSPC;
	struct pm_text t;
	pm_text_init(&t, ret, len);
	for (size_t i = 0; i < s.ll_len; i++) {
		if (i)
			pm_text_str(&t, ":");
		pm_text_hex2(&t, s.ll[i]);
	}
	return 0;
}
