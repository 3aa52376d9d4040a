// SPDX-License-Identifier: BSD-2-Clause
/*
 * Default gateway lookup and network change monitor over rtnetlink (libmnl).
 *
 * The default router of a family is the PCP server when none is configured (RFC 6887 §8.1). The pure parsers
 * take untrusted byte buffers: every message and attribute is bounds-checked (mnl_nlmsg_ok, mnl_attr_ok through
 * mnl_attr_parse_payload, mnl_attr_validate) against the exact message end, and fixed headers are copied out with
 * memcpy after a length check.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "net/nlattr.h"
#include "net/net.h"

#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* Kernel dumps fill at most 32 KiB per datagram; notifications are smaller. */
#define NL_BUF_SIZE   32768
#define DUMP_ATTEMPTS 3

/* net/if.h (needed for if_indextoname) lacks the RFC 2863 operstate flags of linux/if.h. */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif
#ifndef IFF_DORMANT
#define IFF_DORMANT 0x20000
#endif

union nl_buf {
	struct nlmsghdr align;
	char b[NL_BUF_SIZE];
};

/* ---------------------------------------------------------------------------------------------------------- */
/* Buffer and attribute walking */

/* Copy out the fixed family header after nlmsghdr and parse the attributes behind it. */
static int msg_parse(const struct nlmsghdr *nlh, void *hdr, size_t hdrlen, const struct nlattr **tb,
		     unsigned max)
{
	size_t off = MNL_NLMSG_HDRLEN + MNL_ALIGN(hdrlen);

	if (nlh->nlmsg_len < off)
		return -EBADMSG;
	memcpy(hdr, mnl_nlmsg_get_payload(nlh), hdrlen);
	return pm_net_attrs_parse((const char *)nlh + off, nlh->nlmsg_len - off, tb, max);
}

static int u32_attr(const struct nlattr *a, uint32_t *ret)
{
	if (mnl_attr_validate(a, MNL_TYPE_U32) < 0)
		return -EBADMSG;
	*ret = mnl_attr_get_u32(a);
	return 0;
}

static size_t family_addr_len(int family)
{
	return family == AF_INET ? sizeof(struct in_addr) : family == AF_INET6 ? sizeof(struct in6_addr) : 0;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Routes */

struct route_info {
	struct rtmsg rtm;
	uint32_t table;
	uint32_t metric;
	uint32_t oif;
	bool has_gw;
	uint32_t gw_ifindex;
	unsigned char gw[16];
};

static int gateway_attr(const struct nlattr *a, size_t alen, unsigned char *ret)
{
	if (alen == 0 || mnl_attr_validate2(a, MNL_TYPE_BINARY, alen) < 0)
		return -EBADMSG;
	memcpy(ret, mnl_attr_get_payload(a), alen);
	return 0;
}

/* RTA_MULTIPATH: an array of struct rtnexthop, each followed by its own attributes (rtnetlink.h). Takes the
 * first live nexthop that has a gateway. */
static int multipath_parse(const struct nlattr *mp, size_t alen, struct route_info *ri)
{
	const char *p = mnl_attr_get_payload(mp);
	size_t size = mnl_attr_get_payload_len(mp), off = 0;

	while (off < size) {
		const struct nlattr *tb[RTA_MAX + 1];
		struct rtnexthop nh;
		int r;

		if (size - off < sizeof(nh))
			return -EBADMSG;
		memcpy(&nh, p + off, sizeof(nh));
		if (nh.rtnh_len < sizeof(nh) || nh.rtnh_len > size - off)
			return -EBADMSG;
		r = pm_net_attrs_parse(p + off + RTNH_ALIGN(sizeof(nh)), nh.rtnh_len - RTNH_ALIGN(sizeof(nh)),
				       tb, RTA_MAX);
		if (r < 0)
			return r;
		if (tb[RTA_GATEWAY]) {
			unsigned char gw[16];

			r = gateway_attr(tb[RTA_GATEWAY], alen, gw);
			if (r < 0)
				return r;
			if (!ri->has_gw && !(nh.rtnh_flags & RTNH_F_DEAD) && nh.rtnh_ifindex > 0) {
				memcpy(ri->gw, gw, alen);
				ri->has_gw = true;
				ri->gw_ifindex = (uint32_t)nh.rtnh_ifindex;
			}
		}
		off += RTNH_ALIGN((size_t)nh.rtnh_len);
	}
	return 0;
}

static int route_parse(const struct nlmsghdr *nlh, struct route_info *ri)
{
	const struct nlattr *tb[RTA_MAX + 1];
	size_t alen;
	int r;

	memset(ri, 0, sizeof(*ri));
	r = msg_parse(nlh, &ri->rtm, sizeof(ri->rtm), tb, RTA_MAX);
	if (r < 0)
		return r;
	ri->table = ri->rtm.rtm_table;
	alen = family_addr_len(ri->rtm.rtm_family);
	if (alen == 0)
		return 0; /* not ours; framing checked above */
	/* rtm_table is 8 bits; RTA_TABLE carries the full id. */
	if (tb[RTA_TABLE] && (r = u32_attr(tb[RTA_TABLE], &ri->table)) < 0)
		return r;
	if (tb[RTA_PRIORITY] && (r = u32_attr(tb[RTA_PRIORITY], &ri->metric)) < 0)
		return r;
	if (tb[RTA_OIF] && (r = u32_attr(tb[RTA_OIF], &ri->oif)) < 0)
		return r;
	if (tb[RTA_GATEWAY]) {
		r = gateway_attr(tb[RTA_GATEWAY], alen, ri->gw);
		if (r < 0)
			return r;
		ri->has_gw = !(ri->rtm.rtm_flags & RTNH_F_DEAD);
		ri->gw_ifindex = ri->oif;
	} else if (tb[RTA_MULTIPATH]) {
		r = multipath_parse(tb[RTA_MULTIPATH], alen, ri);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A change to this route can move the PCP server (RFC 6887 §8.1): a main-table unicast default route. */
static bool route_is_default(const struct route_info *ri)
{
	return (ri->rtm.rtm_family == AF_INET || ri->rtm.rtm_family == AF_INET6) &&
	       ri->rtm.rtm_dst_len == 0 && ri->table == RT_TABLE_MAIN && ri->rtm.rtm_type == RTN_UNICAST &&
	       !(ri->rtm.rtm_flags & RTM_F_CLONED);
}

struct route_scan {
	int family;
	uint32_t seq, portid; /* 0: accept any */
	bool found, done, intr;
	int err; /* kernel error carried in the buffer */
	struct pm_gateway best;
};

static int route_scan_msg(const struct nlmsghdr *nlh, void *ctx)
{
	struct route_scan *s = ctx;
	struct route_info ri;
	int r;

	if (!mnl_nlmsg_seq_ok(nlh, s->seq) || !mnl_nlmsg_portid_ok(nlh, s->portid))
		return 0;
	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		s->intr = true;
	r = pm_net_dump_control(nlh, &s->done, &s->err);
	if (r != 0)
		return r < 0 ? r : r == 2;
	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return 0;
	r = route_parse(nlh, &ri);
	if (r < 0)
		return r;
	if (ri.rtm.rtm_family != s->family || !route_is_default(&ri) || ri.rtm.rtm_src_len != 0 || !ri.has_gw)
		return 0;
	if (s->family == AF_INET6 && ri.gw_ifindex == 0) {
		struct in6_addr a;

		memcpy(&a, ri.gw, sizeof(a));
		if (IN6_IS_ADDR_LINKLOCAL(&a))
			return 0; /* unusable without a scope */
	}
	if (ri.gw_ifindex > INT_MAX)
		return -EBADMSG;
	if (s->found && ri.metric >= s->best.metric)
		return 0;
	memset(&s->best, 0, sizeof(s->best));
	s->best.family = s->family;
	s->best.ifindex = (int)ri.gw_ifindex;
	s->best.metric = ri.metric;
	memcpy(&s->best.addr, ri.gw, family_addr_len(s->family));
	s->found = true;
	return 0;
}

static int route_scan_buf(const void *buf, size_t len, struct route_scan *s)
{
	if (len > INT_MAX)
		return -EINVAL;
	return pm_net_walk(buf, len, route_scan_msg, s);
}

int pm_net_parse_default_route(const void *buf, size_t len, int family, struct pm_gateway *ret)
{
	struct route_scan s = { .family = family };
	int r;

	if ((!buf && len) || !ret || (family != AF_INET && family != AF_INET6))
		return -EINVAL;
	r = route_scan_buf(buf, len, &s);
	if (r < 0)
		return r;
	if (s.err < 0)
		return s.err;
	if (!s.found)
		return 0;
	*ret = s.best;
	return 1;
}

static int route_step(const void *buf, size_t len, void *arg)
{
	struct route_scan *s = arg;
	int r = route_scan_buf(buf, len, s);
	return r < 0 ? r : s->done;
}

/* One RTM_GETROUTE dump on a fresh socket. */
static int dump_once(int family, struct route_scan *s)
{
	union {
		struct nlmsghdr align;
		char b[MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct rtmsg))];
	} req;
	struct nlmsghdr *nlh;
	struct rtmsg rtm;

	memset(&req, 0, sizeof(req));
	nlh = mnl_nlmsg_put_header(req.b);
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = 1;
	memset(&rtm, 0, sizeof(rtm));
	rtm.rtm_family = (unsigned char)family;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(rtm)), &rtm, sizeof(rtm));

	memset(s, 0, sizeof(*s));
	s->family = family;
	s->seq = nlh->nlmsg_seq;
	int r = pm_net_dump(NETLINK_ROUTE, 2, nlh, nlh->nlmsg_len, NL_BUF_SIZE, &s->portid, route_step, s);
	if (r == 0 && s->err < 0)
		r = s->err;
	return r;
}

int pm_net_default_gateway(int family, struct pm_gateway *ret)
{
	int attempt;

	if (!ret || (family != AF_INET && family != AF_INET6))
		return -EINVAL;
	for (attempt = 0; attempt < DUMP_ATTEMPTS; attempt++) {
		struct route_scan s;
		char name[IF_NAMESIZE] = "";
		int r = dump_once(family, &s);

		if (r < 0)
			return r;
		if (s.intr)
			continue; /* table changed under the dump (NLM_F_DUMP_INTR) */
		if (!s.found)
			return -ENOENT;
		if (s.best.ifindex > 0 && (r = pm_net_ifname(s.best.ifindex, name)) < 0) {
			if (r == -ENXIO || r == -ENODEV)
				continue; /* interface went away: its routes did too */
			return r;
		}
		memcpy(s.best.ifname, name, sizeof(s.best.ifname));
		*ret = s.best;
		return 0;
	}
	return -EAGAIN;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Change monitor */

int pm_net_monitor_open(int *ret_fd)
{
	struct sockaddr_nl sa;
	int fd, rcvbuf = 1 << 20, r;

	if (!ret_fd)
		return -EINVAL;
	/* Plain socket()+bind(): the descriptor itself is the API, libmnl's wrapper would own it. */
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	/* Best effort: a bigger queue makes ENOBUFS overruns rarer (they are still handled). */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups =
	    RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_LINK;
	if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int event_route(const struct nlmsghdr *nlh, unsigned *mask)
{
	struct route_info ri;
	int r = route_parse(nlh, &ri);

	if (r < 0)
		return r;
	if (route_is_default(&ri))
		*mask |= PM_NET_EV_ROUTE;
	return 0;
}

static int event_addr(const struct nlmsghdr *nlh, unsigned *mask)
{
	const struct nlattr *tb[IFA_MAX + 1];
	struct ifaddrmsg ifa;
	uint32_t flags;
	int r;

	r = msg_parse(nlh, &ifa, sizeof(ifa), tb, IFA_MAX);
	if (r < 0)
		return r;
	if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6)
		return 0;
	flags = ifa.ifa_flags;
	/* IFA_FLAGS extends the 8-bit ifa_flags (if_addr.h). */
	if (tb[IFA_FLAGS] && (r = u32_attr(tb[IFA_FLAGS], &flags)) < 0)
		return r;
	/* A tentative address is not usable as a source yet; the kernel notifies again once DAD is done. */
	if (ifa.ifa_scope == RT_SCOPE_UNIVERSE && !(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)))
		*mask |= PM_NET_EV_ADDR;
	return 0;
}

static int event_link(const struct nlmsghdr *nlh, unsigned *mask)
{
	const struct nlattr *tb[IFLA_MAX + 1];
	struct ifinfomsg ifi;
	int r;

	r = msg_parse(nlh, &ifi, sizeof(ifi), tb, IFLA_MAX);
	if (r < 0)
		return r;
	/* AF_BRIDGE and other per-family link messages share the group; they say nothing about up/down. */
	if (ifi.ifi_family != AF_UNSPEC || (ifi.ifi_flags & IFF_LOOPBACK))
		return 0;
	if (nlh->nlmsg_type == RTM_DELLINK || ifi.ifi_change == 0 ||
	    (ifi.ifi_change & (IFF_UP | IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT)))
		*mask |= PM_NET_EV_LINK;
	return 0;
}

static int event_msg(const struct nlmsghdr *nlh, void *ctx)
{
	unsigned *mask = ctx;

	switch (nlh->nlmsg_type) {
	case RTM_NEWROUTE:
	case RTM_DELROUTE:
		return event_route(nlh, mask);
	case RTM_NEWADDR:
	case RTM_DELADDR:
		return event_addr(nlh, mask);
	case RTM_NEWLINK:
	case RTM_DELLINK:
		return event_link(nlh, mask);
	default:
		return 0;
	}
}

int pm_net_parse_events(const void *buf, size_t len, unsigned *ret_mask)
{
	unsigned mask = 0;

	if ((!buf && len) || !ret_mask)
		return -EINVAL;
	if (len > INT_MAX)
		return -EINVAL;
	int r = pm_net_walk(buf, len, event_msg, &mask);
	if (r < 0)
		return r;
	*ret_mask = mask;
	return 0;
}

int pm_net_monitor_read(int fd, unsigned *ret_mask)
{
	union nl_buf *rx;
	unsigned mask = 0;
	int r = 0;

	if (fd < 0 || !ret_mask)
		return -EINVAL;
	rx = malloc(sizeof(*rx));
	if (!rx)
		return -ENOMEM;
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = rx->b, .iov_len = sizeof(rx->b) };
		struct msghdr msg = {
			.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1
		};
		unsigned m = 0;
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ENOBUFS) {
				mask |= PM_NET_EV_ALL; /* queue overrun: notifications were lost */
				continue;
			}
			r = -errno;
			break;
		}
		if (msg.msg_namelen < sizeof(from) || from.nl_family != AF_NETLINK || from.nl_pid != 0)
			continue; /* only the kernel speaks for the routing table */
		if (msg.msg_flags & MSG_TRUNC) {
			mask |= PM_NET_EV_ALL;
			continue;
		}
		if (pm_net_parse_events(rx->b, (size_t)n, &m) < 0)
			m = PM_NET_EV_ALL;
		mask |= m;
	}
	free(rx);
	if (r < 0)
		return r;
	*ret_mask = mask;
	return 0;
}
