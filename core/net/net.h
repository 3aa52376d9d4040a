/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * core/net: the only socket code in core.
 *  - route.c: default gateway lookup (rtnetlink dump via libmnl) and the route/address/link event monitor.
 *  - udp.c:   UDP endpoints: connected request socket (RFC 6887 §8.1, §16.4 connect + getsockname) and the
 *             announcement listener on 5350 (RFC 6886 §3.2.1, RFC 6887 §14.1).
 * Conventions: int results, >= 0 success, -errno failure; ret_* out-parameters last, untouched on failure.
 * Every descriptor is opened with SOCK_CLOEXEC; those meant for the event loop also with SOCK_NONBLOCK.
 */
#ifndef PCPMAP_CORE_NET_H
#define PCPMAP_CORE_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct pm_gateway {
	int family;      /* AF_INET or AF_INET6 */
	int ifindex;     /* outgoing interface (RTA_OIF); needed as scope of an fe80::/10 gateway */
	char ifname[16]; /* IF_NAMESIZE; "" when unknown (the pure parser never fills it) */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint32_t metric; /* RTA_PRIORITY, 0 when absent */
};

/*
 * Pure: parse a buffer of rtnetlink messages (a route dump reply, possibly several nlmsghdr, possibly
 * NLMSG_DONE) and pick the default route (dst_len 0, src_len 0, table main, type unicast, not cloned, nexthop
 * not dead, with a gateway of the requested family, lowest RTA_PRIORITY; the first one wins a tie) of `family`.
 * The gateway is RTA_GATEWAY, or for an RTA_MULTIPATH route the first live nexthop that has one.
 * Returns 1 if found (fills ret), 0 if none in this buffer, -EBADMSG on malformed input (truncated headers or
 * attributes, wrong attribute sizes), -EINVAL on bad arguments, the kernel's -errno if the buffer carries an
 * NLMSG_ERROR (non-zero) or a failed NLMSG_DONE. Parsing stops at NLMSG_DONE. A buffer that is not 4-byte
 * aligned is copied first (-ENOMEM possible). Never reads out of bounds.
 */
int pm_net_parse_default_route(const void *buf, size_t len, int family, struct pm_gateway *ret);

/*
 * Real dump through libmnl (NETLINK_ROUTE, RTM_GETROUTE, NLM_F_DUMP), fills ifname via if_indextoname.
 * Retried (at most 3 dumps) when the kernel flags the dump as interrupted (NLM_F_DUMP_INTR) or the interface
 * vanished. Returns 0 and fills ret, -ENOENT when there is no default route of that family, -EAGAIN if the
 * table kept changing, -ETIMEDOUT if the kernel did not finish the dump within 2 s, -errno on socket errors.
 */
int pm_net_default_gateway(int family, struct pm_gateway *ret);

/* The link-layer address of neighbour addr (4 or 16 bytes of family) as "02:77:00:00:00:01", from the
 * kernel's neighbour table (an entry being resolved or failed does not count). 0; -ENOENT when the table
 * holds none; -ENOSPC when len is short; -ETIMEDOUT or -errno of the netlink socket. */
int pm_net_neighbour_lladdr(int family, const void *addr, char *ret, size_t len);

/* The name of interface ifindex into name (IF_NAMESIZE bytes, net/if.h), as if_indextoname() gives it.
 * 0; -ENXIO when no interface has that index (-ENODEV for an index <= 0); -errno of the socket. */
int pm_net_ifname(int ifindex, char *name);

/* Calls cb once per link of the host (rtnetlink RTM_GETLINK dump) with its index and IFF_* flags; a negative
 * return of cb stops the dump and is returned. 0; -ETIMEDOUT or -errno of the netlink socket. */
int pm_net_links(int (*cb)(int ifindex, unsigned flags, void *arg), void *arg);

/* Event monitor: a non-blocking NETLINK_ROUTE socket subscribed to
 * RTMGRP_IPV4_ROUTE|RTMGRP_IPV6_ROUTE|RTMGRP_IPV4_IFADDR|RTMGRP_IPV6_IFADDR|RTMGRP_LINK. */
enum pm_net_event { PM_NET_EV_ROUTE = 1, PM_NET_EV_ADDR = 2, PM_NET_EV_LINK = 4 };
#define PM_NET_EV_ALL (PM_NET_EV_ROUTE | PM_NET_EV_ADDR | PM_NET_EV_LINK)

/* Returns 0 and the descriptor (CLOEXEC, NONBLOCK) in *ret_fd, or -errno. The caller closes it. */
int pm_net_monitor_open(int *ret_fd);

/*
 * Pure: classify a buffer of rtnetlink notifications into a bitmask of pm_net_event, only counting changes that
 * can matter to a port-mapping client:
 *  ROUTE: RTM_NEWROUTE/RTM_DELROUTE of an AF_INET/AF_INET6 default route (dst_len 0) in table main, unicast,
 *         not cloned (with or without a gateway);
 *  ADDR:  RTM_NEWADDR/RTM_DELADDR of an AF_INET/AF_INET6 address of global scope that is not tentative or
 *         DAD-failed;
 *  LINK:  RTM_DELLINK, or RTM_NEWLINK whose ifi_change touches IFF_UP/IFF_RUNNING/IFF_LOWER_UP/IFF_DORMANT or
 *         is 0 (the kernel reports carrier changes with ifi_change 0, indistinguishable from e.g. an MTU change),
 *         of a non-loopback AF_UNSPEC link.
 * Returns 0 and sets *ret_mask (possibly 0), -EBADMSG if malformed, -EINVAL on bad arguments.
 */
int pm_net_parse_events(const void *buf, size_t len, unsigned *ret_mask);

/*
 * Reads everything pending on the monitor fd (non-blocking; returns 0 with mask 0 on EAGAIN), classifies it.
 * Lost notifications (ENOBUFS overrun, a truncated datagram) and unparseable kernel messages yield
 * PM_NET_EV_ALL so that the caller re-checks everything. Datagrams not sent by the kernel are ignored.
 * Returns 0 and sets *ret_mask, or -errno on other socket errors.
 */
int pm_net_monitor_read(int fd, unsigned *ret_mask);

/* UDP endpoints */
struct pm_sockaddr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
	socklen_t len;
};

/* Numeric IPv4/IPv6 literal, optional %scope (interface name or number) for a v6 link-local unicast or
 * multicast address. -EINVAL on anything else, -ENODEV for a well-formed but unknown interface name. */
int pm_sockaddr_set(struct pm_sockaddr *sa, const char *host, uint16_t port);
/* Sets sin6_scope_id from ifindex for link-local (-EINVAL if a link-local gateway has no ifindex). */
int pm_sockaddr_from_gateway(struct pm_sockaddr *sa, const struct pm_gateway *gw, uint16_t port);
/* "1.2.3.4:5351", "[2001:db8::1]:5351" or "[fe80::1%eth0]:5351" (numeric scope when the index has no name).
 * Returns the string length, -ENOSPC if len is too small (buf untouched), -EINVAL on a bad address. */
int pm_sockaddr_to_string(const struct pm_sockaddr *sa, char *buf, size_t len);
/* Longest string pm_sockaddr_to_string can produce, including the NUL. */
#define PM_SOCKADDR_STRLEN (1 + 46 + 1 + 16 + 2 + 5 + 1)

/*
 * Non-blocking, CLOEXEC UDP socket connected to server, bound to an ephemeral port chosen by the kernel (random
 * per RFC 6056 on Linux); on success *ret_local (may be NULL) holds getsockname()'s address (our client IP for
 * PCP's Client IP field). Returns 0 or -errno.
 */
int pm_udp_connect(const struct pm_sockaddr *server, int *ret_fd, struct pm_sockaddr *ret_local);
/* Send on a connected socket: 0 or -errno (ECONNREFUSED from an earlier ICMP port unreachable surfaces here or on
 * recv; -EAGAIN when the send buffer is full). */
int pm_udp_send(int fd, const void *buf, size_t len);
/* Receive one datagram from a connected socket: returns length, -EAGAIN when empty, -ECONNREFUSED after ICMP
 * port unreachable, -errno otherwise. Truncated datagrams (MSG_TRUNC) are reported as -EMSGSIZE and consumed. */
ssize_t pm_udp_recv(int fd, void *buf, size_t cap);

/*
 * Multicast listener for unsolicited announcements: UDP port `port` (5350), SO_REUSEADDR and SO_REUSEPORT so
 * several clients on a host coexist (multicast datagrams are delivered to every socket of a reuseport group).
 * AF_INET binds 224.0.0.1:port and joins 224.0.0.1; AF_INET6 binds [::]:port (IPV6_V6ONLY) and joins ff02::1.
 * IP(V6)_MULTICAST_ALL is cleared so groups joined by other sockets are not received (the AF_INET6 socket still
 * gets unicast to the port: check the source, RFC 6886 §3.2.1). ifindex != 0: join on that interface
 * (errors returned). ifindex 0: join on every interface that is up and multicast-capable (if_nameindex),
 * skipping per-interface failures (EADDRINUSE, vanished interface, membership limit); fails with the first
 * error, or -ENODEV when there was no candidate, if no join succeeded. Non-blocking, CLOEXEC.
 */
int pm_udp_multicast_listener(int family, uint16_t port, int ifindex, int *ret_fd);
/* recvfrom for the listener: returns length and source address (ret_src may be NULL); -EAGAIN when empty,
 * -EMSGSIZE for a truncated (consumed) datagram, -errno otherwise. */
ssize_t pm_udp_recvfrom(int fd, void *buf, size_t cap, struct pm_sockaddr *ret_src);

#endif /* PCPMAP_CORE_NET_H */
