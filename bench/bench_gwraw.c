/* What the gateway alone can do: N PCP MAP requests from one raw socket, as fast as the gateway answers
 * them, with at most W in flight (1: one after the other). Run inside the lab's client namespace on a
 * gateway with no mappings (bench/restore.sh does it, after a flushed restart), so it is the same work the
 * gateway does when pcpmap re-creates N mappings after losing its state: this is the floor pcpmap's
 * restoration is compared with. A request unanswered for 3 s is sent again (same nonce), as PCP does.
 * Prints the total, the mean per request, and the time of each tenth of the requests, so a cost that grows
 * with the number of rules the gateway already holds shows.
 *
 * usage: bench_gwraw GATEWAY COUNT [WINDOW] [FIRST_PORT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include "wire/pcp_wire.h"

#define RESEND_US 3000000u   /* PCP's first retransmission timer (RFC 6887 8.1.1) */
#define LIMIT_US  600000000u /* gives up after 10 minutes */

struct req {
	uint64_t sent_at; /* 0: not sent yet */
	unsigned sends;
	bool done;
};

static int send_map(int fd, const struct in_addr *me, uint16_t port, unsigned i)
{
	struct pcp_msg m;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_MAP;
	m.lifetime = 3600;
	pcp_addr_from_v4(&m.client_addr, me);
	memset(m.nonce, 0xa5, sizeof(m.nonce));
	memcpy(m.nonce, &i, sizeof(i)); /* the nonce names the request */
	m.protocol = IPPROTO_TCP;
	m.internal_port = port;
	m.ext_port = port;
	pcp_addr_any(&m.ext_addr, AF_INET);
	uint8_t buf[PCP_MAX_MSG];
	size_t n;
	if (pcp_encode(&m, NULL, buf, sizeof(buf), &n) < 0)
		return -EINVAL;
	return send(fd, buf, n, 0) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_gwraw GATEWAY COUNT [WINDOW] [FIRST_PORT]\n");
		return 2;
	}
	unsigned n = (unsigned)atoi(argv[2]);
	unsigned w = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
	unsigned first = argc > 4 ? (unsigned)atoi(argv[4]) : 40000;
	if (n < 1 || n > 20000 || w < 1 || first < 1024 || first + n > 65536) {
		fprintf(stderr, "bench_gwraw: COUNT 1-20000, WINDOW >= 1, ports within 1024-65535\n");
		return 2;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PCP_SERVER_PORT) };
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "bench_gwraw: %s is not an IPv4 address\n", argv[1]);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&me, &len) < 0) {
		perror("bench_gwraw: socket");
		return 1;
	}
	struct req *rq = calloc(n, sizeof(*rq));
	uint64_t *tenth = calloc(11, sizeof(*tenth));
	if (!rq || !tenth)
		return 1;
	unsigned next = 0, in_flight = 0, done = 0, resent = 0, refused = 0, max_flight = 0, oldest = 0;
	uint64_t t0 = pcpmap_now_usec();
	tenth[0] = t0;
	while (done < n) {
		uint64_t now = pcpmap_now_usec();
		if (now - t0 > LIMIT_US) {
			fprintf(stderr, "bench_gwraw: %u of %u answered in %u s\n", done, n,
				LIMIT_US / 1000000u);
			return 1;
		}
		while (in_flight < w && next < n) {
			if (send_map(fd, &me.sin_addr, (uint16_t)(first + next), next) < 0) {
				perror("bench_gwraw: send");
				return 1;
			}
			rq[next].sent_at = now;
			rq[next].sends = 1;
			next++;
			in_flight++;
		}
		max_flight = in_flight > max_flight ? in_flight : max_flight;
		/* Resends: every unanswered request whose timer ran out, from the oldest unanswered one on. */
		while (oldest < next && rq[oldest].done)
			oldest++;
		for (unsigned i = oldest; i < next; i++) {
			if (!rq[i].done && rq[i].sent_at && now - rq[i].sent_at >= RESEND_US) {
				if (send_map(fd, &me.sin_addr, (uint16_t)(first + i), i) < 0)
					return 1;
				rq[i].sent_at = now;
				rq[i].sends++;
				resent++;
			}
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		uint8_t buf[PCP_MAX_MSG];
		ssize_t got;
		while ((got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			struct pcp_msg r;
			if (pcp_decode(buf, (size_t)got, NULL, &r) < 0 || !r.response ||
			    r.opcode != PCP_OP_MAP)
				continue;
			unsigned i;
			memcpy(&i, r.nonce, sizeof(i));
			if (i >= n || rq[i].done)
				continue;
			rq[i].done = true;
			in_flight--;
			done++;
			if (r.result != PCP_RES_SUCCESS)
				refused++;
			if (done % (n / 10 ? n / 10 : 1) == 0 && done / (n / 10 ? n / 10 : 1) <= 10)
				tenth[done / (n / 10 ? n / 10 : 1)] = pcpmap_now_usec();
		}
	}
	uint64_t t1 = pcpmap_now_usec();
	printf(
	    "gateway alone: %u MAP requests answered in %.1f ms (%.2f ms each; window %u, most in flight %u, "
	    "%u resent, %u refused)\n",
	    n, (t1 - t0) / 1000.0, (t1 - t0) / 1000.0 / n, w, max_flight, resent, refused);
	if (n >= 10) {
		printf("gateway alone: ms per request in each tenth:");
		for (int k = 1; k <= 10; k++)
			printf(" %.1f",
			       tenth[k] > tenth[k - 1] ? (tenth[k] - tenth[k - 1]) / 1000.0 / (n / 10) : 0.0);
		printf("\n");
	}
	free(rq);
	free(tenth);
	close(fd);
	return refused ? 1 : 0;
}
