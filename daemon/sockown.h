/* SPDX-License-Identifier: MIT */
/* pcpmapd: who holds a bound socket on a port, read from the kernel with NETLINK_SOCK_DIAG. */
#ifndef PCPMAP_DAEMON_SOCKOWN_H
#define PCPMAP_DAEMON_SOCKOWN_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Whether uid holds a socket bound to port in this network namespace, IPv4 or IPv6: a listening TCP or SCTP
 * socket, or a UDP socket (connected or not); with connected, an established TCP or SCTP one as well. ud is
 * unused (the signature of pmd_sock_lookup_fn).
 * @return 1 yes, 0 no, -errno when the kernel cannot be asked (-ENOENT: no sock_diag handler for ip_proto).
 */
int pmd_sock_held(void *ud, uint32_t uid, uint8_t ip_proto, uint16_t port, bool connected);

#endif
