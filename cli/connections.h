/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * `pcpmap connections`: this host's established TCP and connected UDP sockets (IPv4 and IPv6), read through
 * NETLINK_SOCK_DIAG by cli/sockdiag.c, listed as a numbered table (or JSON lines) so that one can be
 * picked for a PEER mapping. The numbering is stable: the list is sorted by protocol, family, local and
 * remote endpoint.
 */
#ifndef PCPMAP_CLI_CONNECTIONS_H
#define PCPMAP_CLI_CONNECTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cli_conn {
	int family;     /* AF_INET or AF_INET6 (a dual-stack socket talking IPv4 is AF_INET) */
	uint8_t proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	char local[48]; /* numeric address, no brackets */
	uint16_t lport;
	char remote[48]; /* numeric address, no brackets */
	uint16_t rport;
	uint32_t uid;      /* owner of the socket */
	const char *state; /* static: "established" (TCP) or "connected" (UDP) */
	uint32_t inode;    /* socket inode (socket:[N] in /proc/PID/fd) */
};

/*
 * Every connection of this host's network namespace, sorted (see above). On success *ret is a malloc'd array
 * of *ret_n entries that the caller frees with free() (NULL when there is none). Returns 0 or -errno (e.g.
 * -EPROTONOSUPPORT/-ENOENT without sock_diag support in the kernel); ret and ret_n untouched on failure.
 */
int cli_connections_list(struct cli_conn **ret, size_t *ret_n);

/*
 * Keeps only the connections of proto (IPPROTO_TCP, IPPROTO_UDP; 0 for both) and family (AF_INET, AF_INET6;
 * 0 for both), in order, in place. Returns the new count.
 */
size_t cli_connections_filter(struct cli_conn *c, size_t n, uint8_t proto, int family);

/*
 * "addr:port", with brackets around an IPv6 address ("[2001:db8::1]:443"). Returns the length, or -ENOSPC
 * when len is too small (buf then holds "").
 */
int cli_conn_endpoint(int family, const char *addr, uint16_t port, char *buf, size_t len);

/*
 * Prints the list: a numbered table, one connection a line, numbered from 1 as --pick counts,
 *   "1. 10.80.30.128:58962  199.59.149.200:80  tcp established  uid 1000  inode 123456"
 * or with json one object a line (doc/JSON.md, "connection"). Prints "no connections" (text) or nothing
 * (JSON) for an empty list.
 */
void cli_connections_print(FILE *f, const struct cli_conn *c, size_t n, bool json);

#endif /* PCPMAP_CLI_CONNECTIONS_H */
