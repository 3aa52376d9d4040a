// SPDX-License-Identifier: BSD-2-Clause
/*
 * UDP endpoints. The request socket is connected (RFC 6887 §8.1, §16.4): the kernel then picks our source
 * address (read back with getsockname for the Client IP field), drops datagrams from anyone but the server, and
 * reports ICMP port unreachable as ECONNREFUSED. Announcements (RFC 6886 §3.2.1, RFC 6887 §14.1) arrive on a
 * second, multicast socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "net/net.h"
#include "text/text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef IP_MULTICAST_ALL
#define IP_MULTICAST_ALL 49
#endif
#ifndef IPV6_MULTICAST_ALL
#define IPV6_MULTICAST_ALL 29
#endif

static bool sockaddr_valid(const struct pm_sockaddr *sa)
{
	if (!sa || sa->len > sizeof(sa->u))
		return false;
	if (sa->u.sa.sa_family == AF_INET)
		return sa->len >= sizeof(struct sockaddr_in);
	if (sa->u.sa.sa_family == AF_INET6)
		return sa->len >= sizeof(struct sockaddr_in6);
	return false;
}

static bool v6_needs_scope(const struct in6_addr *a)
{
	return IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_MC_LINKLOCAL(a);
}

/* Interface name first, then a decimal index, like getaddrinfo's scope handling. */
static int scope_parse(const char *s, uint32_t *ret)
{
	unsigned idx;
	size_t i, n = strlen(s);
	bool digits = n > 0;

	if (n == 0 || n >= IF_NAMESIZE)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] == '/' || s[i] == ':' || s[i] == '%' || s[i] <= ' ' || s[i] == 0x7f)
			return -EINVAL;
		if (s[i] < '0' || s[i] > '9')
			digits = false;
	}
	idx = if_nametoindex(s);
	if (idx != 0) {
		*ret = idx;
		return 0;
	}
	if (digits) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(s, &end, 10);
		if (errno || *end || v == 0 || v > INT_MAX)
			return -EINVAL;
		*ret = (uint32_t)v;
		return 0;
	}
	return -ENODEV;
}

int pm_sockaddr_set(struct pm_sockaddr *sa, const char *host, uint16_t port)
{
	struct pm_sockaddr tmp;
	char addr[INET6_ADDRSTRLEN];
	const char *pct;
	size_t alen;

	if (!sa || !host)
		return -EINVAL;
	memset(&tmp, 0, sizeof(tmp));
	if (inet_pton(AF_INET, host, &tmp.u.in.sin_addr) == 1) {
		tmp.u.in.sin_family = AF_INET;
		tmp.u.in.sin_port = htons(port);
		tmp.len = sizeof(tmp.u.in);
		*sa = tmp;
		return 0;
	}
	pct = strchr(host, '%');
	alen = pct ? (size_t)(pct - host) : strlen(host);
	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, host, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET6, addr, &tmp.u.in6.sin6_addr) != 1)
		return -EINVAL;
	if (pct) {
		int r;

		if (!v6_needs_scope(&tmp.u.in6.sin6_addr))
			return -EINVAL;
		r = scope_parse(pct + 1, &tmp.u.in6.sin6_scope_id);
		if (r < 0)
			return r;
	}
	tmp.u.in6.sin6_family = AF_INET6;
	tmp.u.in6.sin6_port = htons(port);
	tmp.len = sizeof(tmp.u.in6);
	*sa = tmp;
	return 0;
}

int pm_sockaddr_from_gateway(struct pm_sockaddr *sa, const struct pm_gateway *gw, uint16_t port)
{
	struct pm_sockaddr tmp;

	if (!sa || !gw)
		return -EINVAL;
	memset(&tmp, 0, sizeof(tmp));
	if (gw->family == AF_INET) {
		tmp.u.in.sin_family = AF_INET;
		tmp.u.in.sin_port = htons(port);
		tmp.u.in.sin_addr = gw->addr.v4;
		tmp.len = sizeof(tmp.u.in);
	} else if (gw->family == AF_INET6) {
		tmp.u.in6.sin6_family = AF_INET6;
		tmp.u.in6.sin6_port = htons(port);
		tmp.u.in6.sin6_addr = gw->addr.v6;
		if (v6_needs_scope(&gw->addr.v6)) {
			if (gw->ifindex <= 0)
				return -EINVAL;
			tmp.u.in6.sin6_scope_id = (uint32_t)gw->ifindex;
		}
		tmp.len = sizeof(tmp.u.in6);
	} else {
		return -EINVAL;
	}
	*sa = tmp;
	return 0;
}

int pm_sockaddr_to_string(const struct pm_sockaddr *sa, char *buf, size_t len)
{
	char a[PM_TEXT_ADDR_MAX], out[PM_SOCKADDR_STRLEN];
	struct pm_text t;

	if (!sockaddr_valid(sa) || (!buf && len))
		return -EINVAL;
	pm_text_init(&t, out, sizeof(out));
	if (sa->u.sa.sa_family == AF_INET) {
		if (pm_text_ntop(AF_INET, &sa->u.in.sin_addr, a, sizeof(a)) < 0)
			return -EINVAL;
		pm_text_str(&t, a);
		pm_text_str(&t, ":");
	} else {
		if (pm_text_ntop(AF_INET6, &sa->u.in6.sin6_addr, a, sizeof(a)) < 0)
			return -EINVAL;
		pm_text_str(&t, "[");
		pm_text_str(&t, a);
		if (sa->u.in6.sin6_scope_id) {
			char name[IF_NAMESIZE];

			pm_text_str(&t, "%");
			if (sa->u.in6.sin6_scope_id <= INT_MAX &&
			    pm_net_ifname((int)sa->u.in6.sin6_scope_id, name) == 0)
				pm_text_str(&t, name);
			else
				pm_text_u(&t, sa->u.in6.sin6_scope_id);
		}
		pm_text_str(&t, "]:");
	}
	pm_text_u(&t, ntohs(sa->u.sa.sa_family == AF_INET ? sa->u.in.sin_port : sa->u.in6.sin6_port));
	if (t.cut)
		return -EINVAL;
	if (t.len >= len)
		return -ENOSPC;
	memcpy(buf, out, t.len + 1);
	return (int)t.len;
}

int pm_udp_connect(const struct pm_sockaddr *server, int *ret_fd, struct pm_sockaddr *ret_local)
{
	struct pm_sockaddr local;
	int fd, r;

	if (!sockaddr_valid(server) || !ret_fd)
		return -EINVAL;
	fd = socket(server->u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	/* connect() binds an ephemeral port; Linux picks it at random in ip_local_port_range (RFC 6056). */
	if (connect(fd, &server->u.sa, server->len) < 0)
		goto fail;
	memset(&local, 0, sizeof(local));
	local.len = sizeof(local.u);
	if (getsockname(fd, &local.u.sa, &local.len) < 0)
		goto fail;
	*ret_fd = fd;
	if (ret_local)
		*ret_local = local;
	return 0;
fail:
	r = -errno;
	close(fd);
	return r;
}

int pm_udp_send(int fd, const void *buf, size_t len)
{
	ssize_t n;

	if (fd < 0 || (!buf && len))
		return -EINVAL;
	do
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EWOULDBLOCK) ? -EAGAIN : -errno;
	if ((size_t)n != len)
		return -EIO; /* UDP sends whole datagrams; never expected */
	return 0;
}

/* MSG_TRUNC makes recv return the real datagram length, so truncation is detected and the datagram dropped. */
static ssize_t recv_common(int fd, void *buf, size_t cap, struct pm_sockaddr *src)
{
	ssize_t n;

	if (fd < 0 || (!buf && cap) || cap > SSIZE_MAX)
		return -EINVAL;
	do {
		if (src) {
			src->len = sizeof(src->u);
			n = recvfrom(fd, buf, cap, MSG_TRUNC | MSG_DONTWAIT, &src->u.sa, &src->len);
		} else {
			n = recv(fd, buf, cap, MSG_TRUNC | MSG_DONTWAIT);
		}
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EWOULDBLOCK) ? -EAGAIN : -errno;
	if ((size_t)n > cap)
		return -EMSGSIZE;
	return n;
}

ssize_t pm_udp_recv(int fd, void *buf, size_t cap)
{
	return recv_common(fd, buf, cap, NULL);
}

ssize_t pm_udp_recvfrom(int fd, void *buf, size_t cap, struct pm_sockaddr *ret_src)
{
	struct pm_sockaddr src;
	ssize_t n;

	memset(&src, 0, sizeof(src));
	n = recv_common(fd, buf, cap, &src);
	if (n >= 0 && ret_src)
		*ret_src = src;
	return n;
}

static int setsockopt_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* RFC 6886 §3.2.1: 224.0.0.1; RFC 6887 §14.1.1: ff02::1. No IGMP/MLD report is sent for these groups. */
/* ff02::1, the link-local all-nodes group (RFC 4291 2.7.1), where PCP servers announce (RFC 6887 14.1.1). */
static const struct in6_addr all_nodes = { { { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 } } };

static int join_group(int fd, int family, int ifindex)
{
	int r;

	if (family == AF_INET) {
		struct ip_mreqn mr;

		memset(&mr, 0, sizeof(mr));
		mr.imr_multiaddr.s_addr = htonl(INADDR_ALLHOSTS_GROUP);
		mr.imr_ifindex = ifindex;
		r = setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
	} else {
		struct ipv6_mreq mr;

		memset(&mr, 0, sizeof(mr));
		mr.ipv6mr_multiaddr = all_nodes;
		mr.ipv6mr_interface = (unsigned)ifindex;
		r = setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof(mr));
	}
	return r < 0 ? -errno : 0;
}

struct join_state {
	int fd, family, first_err, joined;
};

static int join_link(int ifindex, unsigned flags, void *arg)
{
	struct join_state *j = arg;

	if (!(flags & IFF_UP) || !(flags & IFF_MULTICAST))
		return 0;
	int r = join_group(j->fd, j->family, ifindex);
	if (r == 0 || r == -EADDRINUSE) {
		j->joined++;
		return 0;
	}
	/* One bad interface (no IPv6, membership limit, just removed) must not cost the others. */
	if (!j->first_err)
		j->first_err = r;
	return 0;
}

static int join_all(int fd, int family)
{
	struct join_state j = { .fd = fd, .family = family };
	int r = pm_net_links(join_link, &j);

	if (r < 0 && !j.joined)
		return r;
	if (j.joined)
		return 0;
	return j.first_err ? j.first_err : -ENODEV;
}

int pm_udp_multicast_listener(int family, uint16_t port, int ifindex, int *ret_fd)
{
	struct pm_sockaddr sa;
	int fd, r;

	if ((family != AF_INET && family != AF_INET6) || ifindex < 0 || !ret_fd)
		return -EINVAL;
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	if ((r = setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0 ||
	    (r = setsockopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0)
		goto fail;

	memset(&sa, 0, sizeof(sa));
	if (family == AF_INET) {
		/* Only datagrams for the groups this socket joined, not for every group joined on the host. */
		r = setsockopt_int(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0);
		if (r < 0 && r != -ENOPROTOOPT)
			goto fail;
		/* Bound to the group address: unicast datagrams to the port are not ours. */
		sa.u.in.sin_family = AF_INET;
		sa.u.in.sin_port = htons(port);
		sa.u.in.sin_addr.s_addr = htonl(INADDR_ALLHOSTS_GROUP);
		sa.len = sizeof(sa.u.in);
	} else {
		if ((r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) < 0)
			goto fail;
		r = setsockopt_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0);
		if (r < 0 && r != -ENOPROTOOPT)
			goto fail;
		/* ff02::1 is link-scoped: binding to it would also bind the socket to one interface. */
		sa.u.in6.sin6_family = AF_INET6;
		sa.u.in6.sin6_port = htons(port);
		memset(&sa.u.in6.sin6_addr, 0,
		       sizeof(sa.u.in6.sin6_addr)); /* :: (not libc's in6addr_any, see text.h) */
		sa.len = sizeof(sa.u.in6);
	}
	if (bind(fd, &sa.u.sa, sa.len) < 0) {
		r = -errno;
		goto fail;
	}
	r = ifindex ? join_group(fd, family, ifindex) : join_all(fd, family);
	if (r < 0)
		goto fail;
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}
