/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cli/sockdiag: this host's TCP and UDP connections, read from the kernel through NETLINK_SOCK_DIAG
 * (SOCK_DIAG_BY_FAMILY dumps of struct inet_diag_req_v2, linux/inet_diag.h) with libmnl. The tool lists them
 * so that a user can pick one and give it a PEER mapping (RFC 6887 §12).
 * Conventions: int results, >= 0 success, -errno failure. Connections only: established TCP sockets and
 * connected UDP sockets (non-zero remote port); listeners, unconnected UDP and TIME_WAIT are left out.
 */
#ifndef PCPMAP_CLI_SOCKDIAG_H
#define PCPMAP_CLI_SOCKDIAG_H

#include <stddef.h>
#include <stdint.h>

struct pm_net_conn {
	int family;        /* AF_INET or AF_INET6; a socket whose two ends are v4-mapped IPv6 is AF_INET */
	uint8_t proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	char local[48];    /* numeric (inet_ntop), no brackets, no scope */
	uint16_t lport;    /* host order */
	char remote[48];   /* numeric */
	uint16_t rport;    /* host order, never 0 */
	uint32_t uid;      /* owner, as seen from our user namespace */
	uint32_t inode;    /* socket inode (the number behind /proc/PID/fd/N -> socket:[N]) */
	uint32_t ifindex;  /* bound device (SO_BINDTODEVICE or a link-local scope), 0 for none */
	const char *state; /* static: "established" (TCP) or "connected" (UDP) */
};

/* Size of the dump request pm_net_sockdiag_request() builds: nlmsghdr + inet_diag_req_v2. */
#define PM_NET_SOCKDIAG_REQ_LEN 72

/* TCP_ESTABLISHED in the kernel's state numbering (net/tcp_states.h); a connected UDP socket has it too. */
#define PM_NET_SOCKDIAG_ESTABLISHED 1

/*
 * Pure: builds a SOCK_DIAG_BY_FAMILY dump request (NLM_F_REQUEST | NLM_F_DUMP, port id 0) for family
 * (AF_INET/AF_INET6) and proto (IPPROTO_TCP/IPPROTO_UDP), asking for the sockets whose state bit is set in
 * states (bit N = kernel state N) and no extensions. Returns PM_NET_SOCKDIAG_REQ_LEN, -ENOSPC when len is
 * smaller (buf untouched), -EINVAL on bad arguments.
 */
int pm_net_sockdiag_request(void *buf, size_t len, int family, uint8_t proto, uint32_t states, uint32_t seq);

/*
 * Pure: parses a buffer of SOCK_DIAG_BY_FAMILY reply messages (one or more datagrams of one dump, as the kernel
 * sent them, any port id and sequence) that answer a request for proto (IPPROTO_TCP or IPPROTO_UDP) and appends
 * a record for each connection to the growable array *arr of *n used and *cap allocated entries (NULL/0/0 to
 * start; the caller frees *arr). Sockets that are not connections, of a family other than AF_INET/AF_INET6, or
 * whose INET_DIAG_PROTOCOL attribute names another protocol are skipped. Parsing stops at NLMSG_DONE.
 * Returns 1 when the buffer ended the dump (NLMSG_DONE with status 0), 0 when more is to come, the kernel's
 * -errno carried by NLMSG_ERROR or NLMSG_DONE, -EBADMSG on malformed input (truncated messages, headers or
 * attributes; a wrong-sized INET_DIAG_PROTOCOL), -EINVAL on bad arguments, -ENOMEM. On failure *n is as on
 * entry (*arr and *cap may have grown). A buffer that is not 4-byte aligned is copied first. Never reads out of
 * bounds.
 */
int pm_net_sockdiag_parse(const void *buf, size_t len, uint8_t proto, struct pm_net_conn **arr, size_t *n,
			  size_t *cap);

/*
 * One dump of the current network namespace through libmnl: appends the connections of family and proto to the
 * array as pm_net_sockdiag_parse() does. Returns 0, -ENOENT when the kernel has no sock_diag handler for proto
 * (module not loaded), -ETIMEDOUT when the kernel did not finish within 2 s, -errno on socket errors. On
 * failure *n is as on entry.
 */
int pm_net_sockdiag_dump(int family, uint8_t proto, struct pm_net_conn **arr, size_t *n, size_t *cap);

/*
 * Every connection of this network namespace: TCP and UDP, IPv4 and IPv6, sorted by protocol (TCP first),
 * family (IPv4 first), local address and port, remote address and port, so that two listings of the same
 * connections number them alike. A dump that fails with -ENOENT or -EAFNOSUPPORT (no handler for that protocol
 * or family) is skipped; if every dump fails the first error is returned. On success *ret is a malloc'd array
 * the caller frees (NULL when *ret_n is 0). Returns 0 or -errno; ret and ret_n untouched on failure.
 */
int pm_net_connections(struct pm_net_conn **ret, size_t *ret_n);

/* Sorts an array in the order pm_net_connections() returns. */
void pm_net_connections_sort(struct pm_net_conn *arr, size_t n);

#endif /* PCPMAP_CLI_SOCKDIAG_H */
