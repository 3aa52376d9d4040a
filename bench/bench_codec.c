/*
 * Codec throughput: encode and decode a MAP request (DESCRIPTION + 2 FILTERs + PREFER_FAILURE) and a PEER
 * request (THIRD_PARTY + DESCRIPTION), each for about 0.5 s, and print messages per second.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire/pcp_wire.h"

#define RUN_NS 500000000LL
#define BATCH  1024

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static volatile size_t sink; /* keeps the optimiser from dropping the work */

static void set_description(struct pcp_options *o, const char *s)
{
	o->has_description = true;
	o->description_len = strlen(s);
	memcpy(o->description, s, o->description_len + 1);
}

static void build_map(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_MAP;
	m->lifetime = 7200;
	pcp_addr_from_string("192.168.77.2", &m->client_addr);
	for (int i = 0; i < PCP_NONCE_LEN; i++)
		m->nonce[i] = (uint8_t)(0x30 + i);
	m->protocol = 6;
	m->internal_port = 8080;
	m->ext_port = 8080;
	pcp_addr_any(&m->ext_addr, AF_INET);
	set_description(&m->opts, "pcpmap bench: web server on 8080");
	m->opts.n_filters = 2;
	m->opts.filters[0].prefix_len = 120;
	m->opts.filters[0].peer_port = 443;
	pcp_addr_from_string("198.51.100.0", &m->opts.filters[0].peer_addr);
	m->opts.filters[1].prefix_len = 64;
	pcp_addr_from_string("2001:db8::", &m->opts.filters[1].peer_addr);
	m->opts.prefer_failure = true;
}

static void build_peer(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_PEER;
	m->lifetime = 600;
	pcp_addr_from_string("192.168.77.2", &m->client_addr);
	for (int i = 0; i < PCP_NONCE_LEN; i++)
		m->nonce[i] = (uint8_t)(0x50 + i);
	m->protocol = 17;
	m->internal_port = 40000;
	pcp_addr_any(&m->ext_addr, AF_INET);
	m->peer_port = 3478;
	pcp_addr_from_string("198.51.100.7", &m->peer_addr);
	m->opts.has_third_party = true;
	pcp_addr_from_string("192.168.77.3", &m->opts.third_party);
	set_description(&m->opts, "pcpmap bench: peer");
}

static double bench_encode(const struct pcp_msg *m, size_t *ret_len)
{
	uint8_t buf[PCP_MAX_MSG];
	size_t len = 0;
	uint64_t n = 0;
	int64_t t0 = now_ns(), t;

	do {
		for (int i = 0; i < BATCH; i++) {
			if (pcp_encode(m, NULL, buf, sizeof(buf), &len) < 0) {
				fprintf(stderr, "encode failed\n");
				exit(1);
			}
			sink += buf[len - 1];
		}
		n += BATCH;
		t = now_ns();
	} while (t - t0 < RUN_NS);
	*ret_len = len;
	return (double)n * 1e9 / (double)(t - t0);
}

static double bench_decode(const uint8_t *buf, size_t len)
{
	static struct pcp_msg m;
	uint64_t n = 0;
	int64_t t0 = now_ns(), t;

	do {
		for (int i = 0; i < BATCH; i++) {
			if (pcp_decode(buf, len, NULL, &m) < 0) {
				fprintf(stderr, "decode failed\n");
				exit(1);
			}
			sink += m.opts.description_len;
		}
		n += BATCH;
		t = now_ns();
	} while (t - t0 < RUN_NS);
	return (double)n * 1e9 / (double)(t - t0);
}

static void run(const char *name, const struct pcp_msg *m)
{
	uint8_t buf[PCP_MAX_MSG];
	size_t len = 0;

	double enc = bench_encode(m, &len);
	if (pcp_encode(m, NULL, buf, sizeof(buf), &len) < 0)
		exit(1);
	double dec = bench_decode(buf, len);
	printf("%-4s encode: %12.0f msg/s  (%zu bytes)\n", name, enc, len);
	printf("%-4s decode: %12.0f msg/s\n", name, dec);
}

int main(void)
{
	static struct pcp_msg map, peer;

	build_map(&map);
	build_peer(&peer);
	run("MAP", &map);
	run("PEER", &peer);
	return 0;
}
