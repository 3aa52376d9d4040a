/* Test doubles: a fake clock, scripted randomness and a PCP server on loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fake_env.h"

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now_us;
}

static void fake_fill(void *ctx, void *buf, size_t len)
{
	struct fake_rand *r = ctx;
	uint8_t *p = buf;
	if (len == 8) {
		/* pm_rand_unit reads the top 53 bits of 8 big-endian bytes. */
		uint64_t v = (uint64_t)(r->unit * 9007199254740992.0) << 11;
		for (int i = 0; i < 8; i++)
			p[i] = (uint8_t)(v >> (56 - 8 * i));
		return;
	}
	/* The first four bytes carry a draw counter: no two nonces of a run are equal. */
	uint32_t n = ++r->counter;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i < 4 ? n >> (8 * i) : n * 37u + i);
}

void fake_env_init(struct pm_env *env, struct fake_clock *clk, struct fake_rand *rnd)
{
	env->clock.now_us = fake_now;
	env->clock.ctx = clk;
	env->rand.fill = fake_fill;
	env->rand.ctx = rnd;
}

int fake_server_open(struct fake_server *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	memset(s, 0, sizeof(*s));
	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	if (bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&sin, &len) < 0) {
		int r = -errno;
		close(s->fd);
		return r;
	}
	s->port = ntohs(sin.sin_port);
	snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);
	return 0;
}

void fake_server_close(struct fake_server *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

ssize_t fake_server_recv_raw(struct fake_server *s, uint8_t *buf, size_t cap, int timeout_ms)
{
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	s->peer_len = sizeof(s->peer);
	ssize_t n = recvfrom(s->fd, buf, cap, 0, (struct sockaddr *)&s->peer, &s->peer_len);
	return n < 0 ? -errno : n;
}

int fake_server_recv(struct fake_server *s, struct pcp_msg *req, int timeout_ms)
{
	uint8_t buf[PCP_MAX_MSG];
	ssize_t n = fake_server_recv_raw(s, buf, sizeof(buf), timeout_ms);
	if (n < 0)
		return (int)n;
	return pcp_decode(buf, (size_t)n, NULL, req);
}

bool fake_server_idle(struct fake_server *s, int timeout_ms)
{
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	return poll(&pfd, 1, timeout_ms) == 0;
}

int fake_server_send_raw(struct fake_server *s, const uint8_t *buf, size_t len)
{
	if (sendto(s->fd, buf, len, 0, (struct sockaddr *)&s->peer, s->peer_len) < 0)
		return -errno;
	return 0;
}

int fake_server_reply(struct fake_server *s, const struct pcp_msg *resp)
{
	uint8_t buf[PCP_MAX_MSG];
	size_t len;
	int r = pcp_encode(resp, NULL, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	return fake_server_send_raw(s, buf, len);
}

void fake_server_success(const struct pcp_msg *req, struct pcp_msg *resp, const char *ext_addr,
			 uint16_t ext_port, uint32_t lifetime, uint32_t epoch)
{
	*resp = *req;
	resp->response = true;
	resp->result = PCP_RES_SUCCESS;
	resp->lifetime = lifetime;
	resp->epoch = epoch;
	memset(&resp->client_addr, 0, sizeof(resp->client_addr));
	resp->ext_port = ext_port;
	pcp_addr_from_string(ext_addr, &resp->ext_addr);
}
