/* Test doubles: a fake clock, scripted randomness and a PCP server on loopback. */
#ifndef PCPMAP_FAKE_ENV_H
#define PCPMAP_FAKE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* A clock the test moves by hand. */
struct fake_clock {
	uint64_t now_us;
};

/* Randomness: 8-byte draws (pm_rand_unit) return `unit` (0.5 = RAND 0, the nominal value); other sizes
 * (nonces) get a counter so every nonce differs. */
struct fake_rand {
	double unit;
	uint32_t counter;
};

void fake_env_init(struct pm_env *env, struct fake_clock *clk, struct fake_rand *rnd);

/* A UDP "PCP server" on 127.0.0.1 with a kernel-chosen port. */
struct fake_server {
	int fd;
	uint16_t port;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	char addr[32]; /* "127.0.0.1:PORT" for the client config */
};

int fake_server_open(struct fake_server *s);
void fake_server_close(struct fake_server *s);
/* Waits up to timeout_ms for one datagram; returns its length or -ETIMEDOUT. */
ssize_t fake_server_recv_raw(struct fake_server *s, uint8_t *buf, size_t cap, int timeout_ms);
/* Receives and decodes one PCP request; returns 0 or a negative errno. */
int fake_server_recv(struct fake_server *s, struct pcp_msg *req, int timeout_ms);
/* True when nothing is waiting (the client sent nothing). */
bool fake_server_idle(struct fake_server *s, int timeout_ms);
/* Sends raw bytes / an encoded response to the last peer. */
int fake_server_send_raw(struct fake_server *s, const uint8_t *buf, size_t len);
int fake_server_reply(struct fake_server *s, const struct pcp_msg *resp);
/* Builds the success response to req: assigned ext addr/port, lifetime, epoch. */
void fake_server_success(const struct pcp_msg *req, struct pcp_msg *resp, const char *ext_addr,
			 uint16_t ext_port, uint32_t lifetime, uint32_t epoch);

#endif
