/* SPDX-License-Identifier: MIT */
/* The control socket's send and receive, never waiting (ipc_sock.h). */
#include <errno.h>
#include <sys/socket.h>

#include "net/ipc_sock.h"

int pm_ipc_send(int fd, const uint8_t *buf, size_t len)
{
	for (;;) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return 0; /* SOCK_SEQPACKET: all of it or nothing */
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return -EAGAIN;
		return errno == EPIPE ? -ECONNRESET : -errno;
	}
}

int pm_ipc_recv(int fd, uint8_t *buf, struct pmd_ipc_msg *ret, size_t *ret_len)
{
	for (;;) {
		struct iovec iov = { .iov_base = buf, .iov_len = PMD_IPC_MAX_MSG + 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		if (ret_len)
			*ret_len = (size_t)n;
		/* Nobody sends more than one message's worth: anything longer is not the protocol. */
		if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > PMD_IPC_MAX_MSG)
			return -EBADMSG;
		int r = pmd_ipc_decode(buf, (size_t)n, ret);
		return r < 0 ? r : 1;
	}
}
