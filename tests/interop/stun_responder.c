/*
 * Minimal STUN Binding responder (RFC 5389) for the interop lab.
 *
 * miniupnpd refuses to map while its WAN address lies in a reserved range unless a STUN server confirms
 * that address; this responder runs in the lab's WAN namespace and answers every Binding request with
 * XOR-MAPPED-ADDRESS = the request's source (RFC 5389 section 15.2). Anything that is not a well-formed
 * Binding request is ignored (section 7.3). One dual-stack socket serves IPv4 and IPv6.
 *
 * Usage: stun_responder PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STUN_HDR_LEN            20
#define STUN_MAGIC_COOKIE       0x2112A442u
#define STUN_BINDING_REQUEST    0x0001u
#define STUN_BINDING_SUCCESS    0x0101u
#define STUN_XOR_MAPPED_ADDRESS 0x0020u
#define STUN_FAMILY_IPV4        0x01u
#define STUN_FAMILY_IPV6        0x02u
#define STUN_MAX_MSG            1500

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * Checks the fixed header (RFC 5389 section 6): top two bits zero, Binding request, length matches the
 * datagram and is a multiple of 4, magic cookie present. Returns 0 if the message deserves an answer.
 */
static int stun_check_request(const uint8_t *msg, size_t len)
{
	if (len < STUN_HDR_LEN)
		return -EBADMSG;
	if (get_be16(msg) != STUN_BINDING_REQUEST)
		return -EBADMSG;
	if ((size_t)get_be16(msg + 2) != len - STUN_HDR_LEN || (len % 4) != 0)
		return -EBADMSG;
	if (get_be32(msg + 4) != STUN_MAGIC_COOKIE)
		return -EBADMSG;
	return 0;
}

/*
 * Builds a Binding success response for request msg from peer into out (STUN_MAX_MSG bytes).
 * Returns the response length or a negative errno.
 */
static int stun_build_response(const uint8_t *msg, const struct sockaddr_in6 *peer, uint8_t *out,
			       size_t out_len)
{
	const uint8_t *addr = peer->sin6_addr.s6_addr;
	uint16_t port = ntohs(peer->sin6_port);
	int is_v4 = IN6_IS_ADDR_V4MAPPED(&peer->sin6_addr);
	size_t addr_len = is_v4 ? 4 : 16;
	size_t attr_len = 4 + addr_len;
	size_t total = STUN_HDR_LEN + 4 + attr_len;
	uint8_t *attr;
	size_t i;

	if (out_len < total)
		return -ENOSPC;
	put_be16(out, STUN_BINDING_SUCCESS);
	put_be16(out + 2, (uint16_t)(4 + attr_len));
	/* cookie and transaction ID are copied from the request (section 7.3.1) */
	memcpy(out + 4, msg + 4, 16);

	attr = out + STUN_HDR_LEN;
	put_be16(attr, STUN_XOR_MAPPED_ADDRESS);
	put_be16(attr + 2, (uint16_t)attr_len);
	attr[4] = 0;
	attr[5] = is_v4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
	/* X-Port: port XOR the cookie's high 16 bits; X-Address: address XOR cookie || transaction ID */
	put_be16(attr + 6, (uint16_t)(port ^ (STUN_MAGIC_COOKIE >> 16)));
	if (is_v4) {
		for (i = 0; i < 4; i++)
			attr[8 + i] = (uint8_t)(addr[12 + i] ^ out[4 + i]);
	} else {
		for (i = 0; i < 16; i++)
			attr[8 + i] = (uint8_t)(addr[i] ^ out[4 + i]);
	}
	return (int)total;
}

static int parse_port(const char *s, uint16_t *ret_port)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535)
		return -EINVAL;
	*ret_port = (uint16_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in6 local;
	uint16_t port;
	int off = 0;
	int fd;

	if (argc != 2 || parse_port(argv[1], &port) < 0) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}

	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	/* dual-stack: IPv4 peers show up as ::ffff:a.b.c.d */
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) {
		perror("setsockopt(IPV6_V6ONLY)");
		return 1;
	}
	memset(&local, 0, sizeof(local));
	local.sin6_family = AF_INET6;
	local.sin6_addr = in6addr_any;
	local.sin6_port = htons(port);
	if (bind(fd, (const struct sockaddr *)&local, sizeof(local)) < 0) {
		perror("bind");
		return 1;
	}

	for (;;) {
		uint8_t msg[STUN_MAX_MSG];
		uint8_t resp[STUN_MAX_MSG];
		struct sockaddr_in6 peer;
		socklen_t peer_len = sizeof(peer);
		ssize_t n;
		int rlen;

		n = recvfrom(fd, msg, sizeof(msg), 0, (struct sockaddr *)&peer, &peer_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("recvfrom");
			return 1;
		}
		if (peer_len < sizeof(peer) || peer.sin6_family != AF_INET6)
			continue;
		if (stun_check_request(msg, (size_t)n) < 0)
			continue;
		rlen = stun_build_response(msg, &peer, resp, sizeof(resp));
		if (rlen < 0)
			continue;
		if (sendto(fd, resp, (size_t)rlen, 0, (const struct sockaddr *)&peer, peer_len) < 0)
			perror("sendto");
	}
}
