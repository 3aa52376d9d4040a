/* SPDX-License-Identifier: MIT */
/*
 * A scripted PCP server on 127.0.0.1 for the compat API tests: answers ANNOUNCE and MAP (RFC 6887 7.2, 11.1)
 * with the result code, lifetime cap and port policy the test sets, and records what it saw. With natpmp set
 * it also answers NAT-PMP (RFC 6886 3.2, 3.3) on the same port, as miniupnpd does. Built by hand from the RFC
 * layout so it shares nothing with pcpmap's codec.
 */
#ifndef PCPMAP_TEST_FAKE_PCP_H
#define PCPMAP_TEST_FAKE_PCP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_EXT_ADDR "198.51.100.7"

struct fake_pcp {
	int fd;
	uint16_t port;
	pthread_t thread;
	atomic_int result;     /* result code of MAP answers (not deletions) */
	atomic_int silent;     /* answer nothing */
	atomic_int port_shift; /* assigned port = suggested (or internal) + shift */
	atomic_uint max_life;  /* lifetime cap, seconds */
	atomic_int maps;       /* MAP requests with a lifetime */
	atomic_int deletes;    /* MAP requests with lifetime 0 */
	atomic_int announces;
	atomic_int last_port;     /* internal port of the last MAP */
	atomic_int delete_result; /* result code of PCP deletions (2: the nonce of another client) */
	atomic_int natpmp;     /* answer NAT-PMP requests (else they are dropped, as by a PCP-only server) */
	atomic_int np_public;  /* NAT-PMP public address requests */
	atomic_int np_maps;    /* NAT-PMP mapping requests with a lifetime */
	atomic_int np_deletes; /* NAT-PMP deletions of one port */
	atomic_int np_delete_all; /* NAT-PMP deletions of every port (private port 0) */
	atomic_int np_last_port;  /* private port of the last NAT-PMP mapping request */
	pthread_mutex_t lock;     /* guards the nonces */
	uint8_t last_nonce[12];   /* nonce of the last MAP: read with fake_nonce() */
	uint8_t last_delete_nonce[12];
	atomic_int
	    late; /* MAPs for an internal port whose last grant had run out: a re-creation, not a renewal */
	uint16_t held_port[16];     /* granted internal ports (guarded by lock) ... */
	uint64_t held_until_ms[16]; /* ... and when their grant runs out (CLOCK_MONOTONIC) */
	atomic_int stop;
};

static uint64_t fake_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Records a grant of life seconds for port (0: deleted) and counts a request that came after the last grant
 * of that port had run out. Called with f->lock held. */
static void fake_track_grant(struct fake_pcp *f, uint16_t port, uint32_t life)
{
	uint64_t now = fake_now_ms();
	size_t k, free_k = 0;
	for (k = 0; k < 16 && f->held_port[k] != port; k++)
		if (!f->held_port[k])
			free_k = k;
	if (k < 16 && life && now > f->held_until_ms[k])
		atomic_fetch_add(&f->late, 1);
	if (k == 16)
		k = free_k;
	f->held_port[k] = life ? port : 0;
	f->held_until_ms[k] = now + (uint64_t)life * 1000u;
}

static void fake_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t fake_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* NAT-PMP: public address (opcode 0), UDP (1) and TCP (2) mappings, deletions of one or every port. */
static void fake_natpmp_answer(struct fake_pcp *f, const uint8_t *buf, size_t n,
			       const struct sockaddr_in *from, socklen_t fl, time_t start)
{
	uint8_t out[16];
	size_t len;
	memset(out, 0, sizeof(out));
	out[1] = (uint8_t)(0x80 | buf[1]);
	fake_put32(out + 4, (uint32_t)(time(NULL) - start) + 100);
	if (buf[1] == 0) {
		atomic_fetch_add(&f->np_public, 1);
		inet_pton(AF_INET, FAKE_EXT_ADDR, out + 8);
		len = 12;
	} else if ((buf[1] == 1 || buf[1] == 2) && n >= 12) {
		uint16_t priv = (uint16_t)(buf[4] << 8 | buf[5]);
		uint32_t life = fake_get32(buf + 8);
		memcpy(out + 8, buf + 4, 2);
		if (life == 0) {
			atomic_fetch_add(priv ? &f->np_deletes : &f->np_delete_all, 1);
		} else {
			atomic_fetch_add(&f->np_maps, 1);
			atomic_store(&f->np_last_port, priv);
			memcpy(out + 10, buf[6] || buf[7] ? buf + 6 : buf + 4, 2);
			unsigned cap = atomic_load(&f->max_life);
			fake_put32(out + 12, life < cap ? life : cap);
		}
		len = 16;
	} else {
		out[3] = 5; /* unsupported opcode */
		len = 8;
	}
	sendto(f->fd, out, len, 0, (const struct sockaddr *)from, fl);
}

static void *fake_pcp_run(void *arg)
{
	struct fake_pcp *f = arg;
	uint8_t buf[1100], out[60];
	time_t start = time(NULL);
	while (!atomic_load(&f->stop)) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(f->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n >= 2 && buf[0] == 0 && !(buf[1] & 0x80)) {
			if (atomic_load(&f->natpmp))
				fake_natpmp_answer(f, buf, (size_t)n, &from, fl, start);
			continue;
		}
		if (n < 24 || buf[0] != 2 || (buf[1] & 0x80))
			continue; /* timeouts, answers */
		uint8_t op = buf[1] & 0x7f;
		uint32_t life = fake_get32(buf + 4);
		size_t len = op == 1 ? 60 : 24;
		if ((size_t)n < len)
			continue;
		memcpy(out, buf, len);
		out[1] = (uint8_t)(0x80 | op);
		out[2] = 0;
		out[3] = 0;
		fake_put32(out + 8, (uint32_t)(time(NULL) - start) + 100);
		memset(out + 12, 0, 12);
		if (op == 0) {
			atomic_fetch_add(&f->announces, 1);
			fake_put32(out + 4, 0);
		} else if (op == 1) {
			uint16_t internal = (uint16_t)(buf[40] << 8 | buf[41]);
			uint16_t suggested = (uint16_t)(buf[42] << 8 | buf[43]);
			atomic_store(&f->last_port, internal);
			if (life == 0) {
				pthread_mutex_lock(&f->lock);
				memcpy(f->last_delete_nonce, buf + 24, 12);
				fake_track_grant(f, internal, 0);
				pthread_mutex_unlock(&f->lock);
				atomic_fetch_add(&f->deletes, 1);
				out[3] = (uint8_t)atomic_load(&f->delete_result);
				fake_put32(out + 4, out[3] ? 30 : 0);
				out[42] = out[43] = 0;
			} else {
				pthread_mutex_lock(&f->lock);
				memcpy(f->last_nonce, buf + 24, 12);
				pthread_mutex_unlock(&f->lock);
				atomic_fetch_add(&f->maps, 1);
				int result = atomic_load(&f->result);
				out[3] = (uint8_t)result;
				unsigned cap = atomic_load(&f->max_life);
				fake_put32(out + 4, result ? 30 : life < cap ? life : cap);
				if (!result && !atomic_load(&f->silent)) {
					pthread_mutex_lock(&f->lock);
					fake_track_grant(f, internal, life < cap ? life : cap);
					pthread_mutex_unlock(&f->lock);
				}
				if (!result) {
					uint16_t port = (uint16_t)((suggested ? suggested : internal) +
								   atomic_load(&f->port_shift));
					out[42] = (uint8_t)(port >> 8);
					out[43] = (uint8_t)port;
					memset(out + 44, 0, 10);
					out[54] = out[55] = 0xff;
					inet_pton(AF_INET, FAKE_EXT_ADDR, out + 56);
				}
			}
		} else {
			out[3] = 4; /* UNSUPP_OPCODE */
		}
		if (!atomic_load(&f->silent))
			sendto(f->fd, out, len, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

/* Starts the server on an ephemeral port of 127.0.0.1; 0 on success. */
static int fake_pcp_start(struct fake_pcp *f)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	atomic_store(&f->max_life, 3600);
	f->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (f->fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(f->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	f->port = ntohs(a.sin_port);
	return pthread_create(&f->thread, NULL, fake_pcp_run, f) == 0 ? 0 : -1;
}

static void fake_pcp_stop(struct fake_pcp *f)
{
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

/* The nonce of the last MAP (deletion: of the last delete). */
__attribute__((unused)) static void fake_nonce(struct fake_pcp *f, bool deletion, uint8_t ret[12])
{
	pthread_mutex_lock(&f->lock);
	memcpy(ret, deletion ? f->last_delete_nonce : f->last_nonce, 12);
	pthread_mutex_unlock(&f->lock);
}

/* A loopback UDP port nothing listens on (ICMP port unreachable). */
__attribute__((unused)) static uint16_t closed_udp_port(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	return ntohs(a.sin_port);
}

/* Waits until *counter reaches want, at most ms; returns its value. */
__attribute__((unused)) static int fake_wait_count(atomic_int *counter, int want, int ms)
{
	for (int i = 0; i < ms / 10 && atomic_load(counter) < want; i++)
		usleep(10000);
	return atomic_load(counter);
}

#endif
