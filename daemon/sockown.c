/* SPDX-License-Identifier: MIT */
/* pcpmapd: socket ownership through SOCK_DIAG_BY_FAMILY dumps (linux/inet_diag.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "daemon/sockown.h"

#define ST_ESTABLISHED 1 /* the kernel's TCP state numbers (net/tcp_states.h) */
#define ST_CLOSE       7
#define ST_LISTEN      10

/* One dump of family and proto; 1 when a socket of uid on port shows up, 0 when none, -errno. */
static int dump_one(int family, uint8_t proto, uint32_t states, uint32_t uid, uint16_t port)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	union {
		struct nlmsghdr align;
		char b[32768];
	} rx;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 2 };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = 1;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = proto;
	req.r.idiag_states = states;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int found = 0;
	for (;;) {
		ssize_t n = recv(fd, rx.b, sizeof(rx.b), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno == EAGAIN ? ETIMEDOUT : errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		int len = (int)n;
		for (struct nlmsghdr *h = &rx.align; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_seq != 1)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				int e = 0;
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
					memcpy(&e, NLMSG_DATA(h), sizeof(e));
				close(fd);
				return e < 0 && !found ? e : found;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr err;
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(err))) {
					close(fd);
					return -EBADMSG;
				}
				memcpy(&err, NLMSG_DATA(h), sizeof(err));
				close(fd);
				return err.error < 0 ? err.error : -EBADMSG;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				continue;
			struct inet_diag_msg m;
			memcpy(&m, NLMSG_DATA(h), sizeof(m));
			if (m.idiag_uid == uid && ntohs(m.id.idiag_sport) == port &&
			    (states & (1u << m.idiag_state)))
				found = 1;
		}
	}
	close(fd);
	return found;
}

int pmd_sock_held(void *ud, uint32_t uid, uint8_t ip_proto, uint16_t port, bool connected)
{
	(void)ud;
	uint32_t states =
	    ip_proto == IPPROTO_UDP ? (1u << ST_CLOSE) | (1u << ST_ESTABLISHED) : 1u << ST_LISTEN;
	if (connected)
		states |= 1u << ST_ESTABLISHED;
	int first_err = 0;
	bool any_ok = false;
	if (ip_proto != IPPROTO_TCP && ip_proto != IPPROTO_UDP && ip_proto != IPPROTO_SCTP)
		return 0;
	/* An IPv6 socket without IPV6_V6ONLY serves IPv4 too: both families count. */
	static const int fams[] = { AF_INET, AF_INET6 };
	for (size_t i = 0; i < 2; i++) {
		int r = dump_one(fams[i], ip_proto, states, uid, port);
		if (r > 0)
			return 1;
		if (r == 0)
			any_ok = true;
		else if (!first_err && r != -EAFNOSUPPORT)
			first_err = r;
	}
	return any_ok ? 0 : first_err ? first_err : -EAFNOSUPPORT;
}
