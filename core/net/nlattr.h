/* SPDX-License-Identifier: BSD-2-Clause */
/* Netlink helpers shared by the rtnetlink and sock_diag parsers (core/net). */
#ifndef PCPMAP_CORE_NET_NLATTR_H
#define PCPMAP_CORE_NET_NLATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

/*
 * Parses the attributes in [payload, payload + size) into tb[0..max] (tb is cleared first; types above max are
 * skipped). mnl_attr_parse_payload stops silently at the first attribute that does not fit: that is reported
 * as truncation. Returns 0 or -EBADMSG.
 */
int pm_net_attrs_parse(const void *payload, size_t size, const struct nlattr **tb, unsigned max);

/*
 * Calls fn for each message in [buf, buf + len) (read through an aligned copy when buf is not aligned for
 * struct nlmsghdr). fn returns < 0 to fail, 0 to go on, > 0 to stop. Trailing bytes that do not form a whole
 * message are malformed (-EBADMSG); the last message may omit its alignment padding. Returns 0, the first
 * error, or -ENOMEM.
 */
int pm_net_walk(const void *buf, size_t len, int (*fn)(const struct nlmsghdr *nlh, void *arg), void *arg);

/* libmnl reads headers in place: *ret_view is buf when it is aligned for struct nlmsghdr, else a malloc'ed
 * copy, also returned in *ret_copy for the caller to free (NULL when no copy was made). 0 or -ENOMEM. */
int pm_net_aligned_view(const void *buf, size_t len, const void **ret_view, void **ret_copy);

/* The kernel errno in an NLMSG_ERROR or NLMSG_DONE payload (0 or negative); -EBADMSG when the payload is
 * short or holds anything but a negative errno. */
int pm_net_kernel_errno(const struct nlmsghdr *nlh, int *ret);

/*
 * A dump's control messages. NLMSG_DONE ends the dump (*done) with the status it may carry (*err);
 * NLMSG_ERROR ends it with the kernel's error, or is an acknowledgement when that is 0. Returns 2 when the dump
 * is over, 1 for an acknowledgement, 0 for any other message (the caller's to parse), -EBADMSG for a
 * malformed status.
 */
int pm_net_dump_control(const struct nlmsghdr *nlh, bool *done, int *err);

/*
 * One request-and-dump exchange on a fresh netlink socket of the given bus (NETLINK_ROUTE, NETLINK_SOCK_DIAG):
 * close-on-exec, bound, its receives giving up after timeout_s seconds. *ret_portid is set to the socket's
 * port id before req (len bytes) goes out, for the parser's checks; then every datagram received (at most
 * bufsize bytes) goes to step until step returns non-zero. 0 when step returned > 0; step's negative errno;
 * -ETIMEDOUT when the kernel went quiet, -EPIPE when the socket closed, -ENOMEM, or the socket's errno.
 */
int pm_net_dump(int bus, unsigned timeout_s, const void *req, size_t len, size_t bufsize,
		uint32_t *ret_portid, int (*step)(const void *buf, size_t len, void *arg), void *arg);

#endif
