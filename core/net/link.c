// SPDX-License-Identifier: BSD-2-Clause
/*
 * The host's interfaces: a name from an index (SIOCGIFNAME) and the list of links (rtnetlink RTM_GETLINK
 * dump). Done here rather than with if_indextoname() and if_nameindex(): those pull another 64 KiB of libc
 * into every process holding a mapping (doc/PERFORMANCE.md), and the dump is the one route.c and neigh.c use.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "net/nlattr.h"
#include "net/net.h"

#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define LINK_BUF_SIZE 32768

int pm_net_ifname(int ifindex, char *name)
{
	struct ifreq ifr;
	int fd, r = 0;

	if (ifindex <= 0)
		return -ENODEV;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = ifindex;
	if (ioctl(fd, SIOCGIFNAME, &ifr) < 0)
		r = errno == ENODEV ? -ENXIO : -errno;
	else
		memcpy(name, ifr.ifr_name, IF_NAMESIZE);
	close(fd);
	if (r == 0)
		name[IF_NAMESIZE - 1] = '\0';
	return r;
}

struct link_scan {
	uint32_t seq, portid;
	bool done;
	int err;
	int (*cb)(int ifindex, unsigned flags, void *arg);
	void *arg;
};

static int scan_msg(const struct nlmsghdr *nlh, void *arg)
{
	struct link_scan *s = arg;
	if (nlh->nlmsg_seq != s->seq || nlh->nlmsg_pid != s->portid)
		return 0;
	int r = pm_net_dump_control(nlh, &s->done, &s->err);
	if (r != 0)
		return r < 0 ? r : r == 2;
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return 0;
	struct ifinfomsg ifi;
	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + sizeof(ifi))
		return -EBADMSG;
	memcpy(&ifi, mnl_nlmsg_get_payload(nlh), sizeof(ifi));
	if (ifi.ifi_index <= 0)
		return 0;
	r = s->cb(ifi.ifi_index, ifi.ifi_flags, s->arg);
	return r < 0 ? r : 0;
}

static int link_step(const void *buf, size_t len, void *arg)
{
	struct link_scan *s = arg;
	int r = pm_net_walk(buf, len, scan_msg, s);
	return r < 0 ? r : s->done;
}

int pm_net_links(int (*cb)(int ifindex, unsigned flags, void *arg), void *arg)
{
	union {
		struct nlmsghdr align;
		char b[MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct ifinfomsg))];
	} req;
	struct link_scan s;

	if (!cb)
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req.b);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = 1;
	struct ifinfomsg ifi;
	memset(&ifi, 0, sizeof(ifi));
	ifi.ifi_family = AF_UNSPEC;
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(ifi)), &ifi, sizeof(ifi));

	memset(&s, 0, sizeof(s));
	s.seq = nlh->nlmsg_seq;
	s.cb = cb;
	s.arg = arg;
	int r = pm_net_dump(NETLINK_ROUTE, 1, nlh, nlh->nlmsg_len, LINK_BUF_SIZE, &s.portid, link_step, &s);
	if (r < 0)
		return r;
	return s.err < 0 ? s.err : 0;
}
