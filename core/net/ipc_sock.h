/* SPDX-License-Identifier: MIT */
/*
 * The control socket's one send and one receive (doc/IPC.md: one message per SOCK_SEQPACKET datagram), for
 * every side that speaks the protocol: the library's daemon mode, pcpmapd's client helpers and tools. Neither
 * ever waits: a caller that may wait polls first.
 */
#ifndef PCPMAP_CORE_NET_IPC_SOCK_H
#define PCPMAP_CORE_NET_IPC_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/ipc.h"

/*
 * Sends one encoded message (len bytes) as one datagram, without waiting.
 * @return 0 once sent; -EAGAIN when the socket has no room now (nothing sent: keep it and send it when the
 *         descriptor is writable); -ECONNRESET when the peer is gone; another -errno of send().
 */
int pm_ipc_send(int fd, const uint8_t *buf, size_t len);

/*
 * Receives one datagram without waiting and decodes it. buf has room for PMD_IPC_MAX_MSG + 1 bytes, so a
 * longer datagram is seen as such.
 * @return 1 with *ret set; 0 when nothing is queued; -ECONNRESET at the end of the stream; -EBADMSG for a
 *         datagram that is not one message (consumed, the next may be fine); -EPROTONOSUPPORT for another
 *         version; another -errno of recvmsg(). *ret_len (may be NULL) receives the datagram's length
 *         whenever one was read.
 */
int pm_ipc_recv(int fd, uint8_t *buf, struct pmd_ipc_msg *ret, size_t *ret_len);

#endif
