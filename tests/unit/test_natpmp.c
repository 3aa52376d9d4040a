/* The NAT-PMP backend end to end: the engine with a fake clock, libnatpmp's real sockets, and a fake NAT-PMP
 * server on 127.77.X.1:5351 (libnatpmp always talks to port 5351; the whole of 127/8 is loopback, so every
 * test gets its own address). Covers the request bytes, the public address, our retransmission ladder,
 * renewal, deletion, result codes, validation drops, the epoch rule and ICMP errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_env.h"

#ifdef PCPMAP_HAVE_NATPMP

#define SEC 1000000ull
#define MS  1000ull
#define T0  (1000 * SEC)

#define OP_UDP 1
#define OP_TCP 2

int pm_natpmp_delete_all(struct pm_server *s, uint8_t ip_proto);

struct rec {
	enum pcpmap_event ev;
	struct pcpmap_mapping_info info;
};

/* One datagram the fake server received. */
struct dgram {
	uint8_t b[64];
	size_t len;
	struct sockaddr_in from;
};

struct ctx {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	pcpmap_client *c;
	int srv;
	char srv_addr[32];
	struct dgram q[32];
	size_t nq;
	struct rec evs[32];
	size_t n_evs;
	char traces[64][192];
	size_t n_traces;
};

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct ctx *x = ud;
	(void)m;
	if (x->n_evs < 32) {
		x->evs[x->n_evs].ev = ev;
		x->evs[x->n_evs].info = *info;
		x->n_evs++;
	}
}

static void on_trace(void *ud, bool sent, enum pcpmap_proto proto, const char *peer, const uint8_t *bytes,
		     size_t len, const char *decoded)
{
	struct ctx *x = ud;
	(void)peer;
	(void)bytes;
	(void)len;
	assert_int_equal(proto, PCPMAP_PROTO_NATPMP);
	if (x->n_traces < 64)
		snprintf(x->traces[x->n_traces++], sizeof(x->traces[0]), "%s %s", sent ? "->" : "<-",
			 decoded);
}

static bool traced(const struct ctx *x, const char *line)
{
	for (size_t i = 0; i < x->n_traces; i++)
		if (!strcmp(x->traces[i], line))
			return true;
	return false;
}

/* The fake server: 127.77.X.1:5351, X varied per test and per process so parallel runs do not collide. */
static int fake_natpmp_open(struct ctx *x)
{
	static unsigned next;
	for (unsigned i = 0; i < 250; i++) {
		unsigned n = ((unsigned)getpid() + next++) % 250 + 1;
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(5351) };
		snprintf(x->srv_addr, sizeof(x->srv_addr), "127.77.%u.1", n);
		inet_pton(AF_INET, x->srv_addr, &sin.sin_addr);
		x->srv = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (x->srv < 0)
			return -errno;
		if (bind(x->srv, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			return 0;
		close(x->srv);
		x->srv = -1;
		if (errno != EADDRINUSE)
			return -errno;
	}
	return -EADDRINUSE;
}

static void fake_natpmp_close(struct ctx *x)
{
	if (x->srv >= 0)
		close(x->srv);
	x->srv = -1;
}

static struct pcpmap_client_config base_cfg(struct ctx *x)
{
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = x->srv_addr;
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP); /* this backend only */
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	cfg.trace = on_trace;
	cfg.trace_userdata = x;
	return cfg;
}

static int setup(void **state)
{
	static struct ctx x;
	memset(&x, 0, sizeof(x));
	x.srv = -1;
	x.clk.now_us = T0;
	x.rnd.unit = 0.5; /* RAND = 0: nominal times */
	fake_env_init(&x.env, &x.clk, &x.rnd);
	assert_int_equal(fake_natpmp_open(&x), 0);
	struct pcpmap_client_config cfg = base_cfg(&x);
	assert_int_equal(pm_client_new_env(&x.c, &cfg, &x.env), 0);
	*state = &x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	fake_natpmp_close(x);
	return 0;
}

static void advance_to(struct ctx *x, uint64_t t)
{
	x->clk.now_us = t;
	assert_int_equal(pcpmap_client_process(x->c), 0);
}

/* Lets loopback deliver what was just sent (ICMP errors included), then processes. */
static void settle(struct ctx *x)
{
	usleep(2000);
	advance_to(x, x->clk.now_us);
}

static bool recv_one(struct ctx *x, int timeout_ms)
{
	struct pollfd pfd = { .fd = x->srv, .events = POLLIN };
	if (x->nq >= 32 || poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	struct dgram *d = &x->q[x->nq];
	socklen_t fl = sizeof(d->from);
	ssize_t n = recvfrom(x->srv, d->b, sizeof(d->b), 0, (struct sockaddr *)&d->from, &fl);
	if (n < 0)
		return false;
	d->len = (size_t)n;
	x->nq++;
	return true;
}

/* The next datagram of `len` bytes (2: public address request, 12: map request), in arrival order. */
static struct dgram next_req(struct ctx *x, size_t len)
{
	for (;;) {
		for (size_t i = 0; i < x->nq; i++) {
			if (x->q[i].len != len)
				continue;
			struct dgram d = x->q[i];
			memmove(&x->q[i], &x->q[i + 1], (x->nq - i - 1) * sizeof(x->q[0]));
			x->nq--;
			return d;
		}
		if (!recv_one(x, 1000))
			fail_msg("no %zu-byte request reached the fake server", len);
	}
}

static bool srv_idle(struct ctx *x)
{
	return x->nq == 0 && !recv_one(x, 0);
}

static void srv_send(struct ctx *x, const struct sockaddr_in *to, const uint8_t *b, size_t len)
{
	assert_int_equal(sendto(x->srv, b, len, 0, (const struct sockaddr *)to, sizeof(*to)), (ssize_t)len);
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* A gateway that booted 100 s before T0: its SSSoE follows the fake clock. */
static uint32_t sssoe(const struct ctx *x)
{
	return (uint32_t)(100 + (x->clk.now_us - T0) / SEC);
}

static void reply_addr(struct ctx *x, const struct dgram *req, uint16_t result, uint32_t epoch,
		       const char *ext)
{
	uint8_t b[12] = { 0, 128 };
	put16(b + 2, result);
	put32(b + 4, epoch);
	inet_pton(AF_INET, ext, b + 8);
	srv_send(x, &req->from, b, sizeof(b));
}

static void reply_map(struct ctx *x, const struct dgram *req, uint16_t result, uint32_t epoch,
		      uint16_t ext_port, uint32_t lifetime)
{
	uint8_t b[16] = { 0, (uint8_t)(128 + req->b[1]) };
	put16(b + 2, result);
	put32(b + 4, epoch);
	memcpy(b + 8, req->b + 4, 2); /* internal port */
	put16(b + 10, ext_port);
	put32(b + 12, lifetime);
	srv_send(x, &req->from, b, sizeof(b));
}

static pcpmap_mapping *start_map(struct ctx *x, uint8_t proto, uint16_t port, uint32_t lifetime)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = proto;
	req.internal_port = port;
	req.lifetime = lifetime;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	return m;
}

/* The first contact: the engine probes with a public address request before any mapping is sent. */
static void answer_probe(struct ctx *x, uint32_t epoch, const char *ext)
{
	struct dgram a = next_req(x, 2);
	reply_addr(x, &a, 0, epoch, ext);
	settle(x);
}

/* A TCP mapping granted ext_port, on a client whose gateway is already known to speak NAT-PMP. */
static pcpmap_mapping *mapped(struct ctx *x, uint16_t port, uint16_t ext_port, uint32_t lifetime,
			      uint32_t epoch, struct dgram *ret_req)
{
	size_t before = x->n_evs;
	pcpmap_mapping *m = start_map(x, IPPROTO_TCP, port, lifetime);
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, epoch, ext_port, lifetime);
	settle(x);
	assert_int_equal(x->n_evs, before + 1);
	assert_int_equal(x->evs[before].ev, PCPMAP_EVENT_MAPPED);
	if (ret_req)
		*ret_req = r;
	return m;
}

static unsigned open_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_request_bytes_and_public_address(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 5000, 0);

	/* The probe first: version 0, opcode 0, nothing else (RFC 6886 3.2). No mapping request yet. */
	struct dgram a = next_req(x, 2);
	assert_int_equal(a.b[0], 0);
	assert_int_equal(a.b[1], 0);
	assert_true(srv_idle(x));
	reply_addr(x, &a, 0, 100, "198.51.100.7");
	settle(x);

	/* Then the map request (RFC 6886 3.3): version 0, opcode 2 (TCP), reserved 0, internal 5000,
	 * suggested 0 (none), lifetime 7200 (the default). */
	struct dgram r = next_req(x, 12);
	const uint8_t want[12] = { 0, 2, 0, 0, 0x13, 0x88, 0, 0, 0, 0, 0x1c, 0x20 };
	assert_memory_equal(r.b, want, 12);
	assert_true(traced(x, "-> NAT-PMP public address request"));
	assert_true(
	    traced(x, "<- NAT-PMP public address response result=Success epoch=100 external=198.51.100.7"));
	assert_true(traced(x, "-> NAT-PMP map tcp request internal=5000 suggest=0 lifetime=7200"));

	reply_map(x, &r, 0, 100, 40000, 3600);
	settle(x);
	assert_true(
	    traced(x, "<- NAT-PMP map tcp response result=Success epoch=100 internal=5000 external=40000 "
		      "lifetime=3600"));
	assert_int_equal(x->n_evs, 1);
	const struct pcpmap_mapping_info *i = &x->evs[0].info;
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(i->state, PCPMAP_STATE_MAPPED);
	assert_int_equal(i->proto, PCPMAP_PROTO_NATPMP);
	assert_int_equal(i->ip_proto, IPPROTO_TCP);
	/* The map answer carries no address: the public address answer's. */
	assert_string_equal(i->external_addr, "198.51.100.7");
	assert_int_equal(i->external_port, 40000);
	assert_int_equal(i->internal_port, 5000);
	assert_int_equal(i->lifetime, 3600);
	assert_int_equal(i->epoch, 100);
	assert_int_equal(i->error, 0);

	/* A UDP mapping: opcode 1, and the address is known already: no second address request. */
	start_map(x, IPPROTO_UDP, 5001, 60);
	r = next_req(x, 12);
	const uint8_t want_udp[12] = { 0, 1, 0, 0, 0x13, 0x89, 0, 0, 0, 0, 0, 60 };
	assert_memory_equal(r.b, want_udp, 12);
	assert_true(srv_idle(x));
	reply_map(x, &r, 0, 100, 40001, 60);
	settle(x);
	assert_int_equal(x->evs[1].ev, PCPMAP_EVENT_MAPPED);
	assert_string_equal(x->evs[1].info.external_addr, "198.51.100.7");
	assert_int_equal(x->evs[1].info.ip_proto, IPPROTO_UDP);
}

static void test_our_retransmission_ladder(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 6000, 600);
	answer_probe(x, 10, "198.51.100.7");
	struct dgram first = next_req(x, 12);

	/* Real time passes with the engine's clock standing still: nothing may go out on a timer of
	 * libnatpmp's (gettimeofday, 250 ms); the engine's clock alone drives retransmission. */
	for (int k = 0; k < 4; k++) {
		usleep(100000);
		advance_to(x, T0);
	}
	assert_true(srv_idle(x));

	/* RFC 6886 3.1 on the engine's ladder (RAND 0): waits of 250 ms doubling, the same request each
	 * time; capped at 64 s after the 9th send. */
	const uint64_t at_ms[] = { 250, 750, 1750, 3750, 7750, 15750, 31750, 63750, 127750, 191750 };
	for (size_t k = 0; k < sizeof(at_ms) / sizeof(at_ms[0]); k++) {
		advance_to(x, T0 + at_ms[k] * MS - 1);
		assert_true(srv_idle(x));
		advance_to(x, T0 + at_ms[k] * MS);
		struct dgram again = next_req(x, 12);
		assert_memory_equal(again.b, first.b, 12);
	}
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.sent, 2 + 10); /* probe, first map request, 10 retransmissions */
	assert_int_equal(st.retransmits, 10);
	assert_int_equal(x->n_evs, 0);

	/* A late answer still lands. */
	reply_map(x, &first, 0, 200, 6000, 600);
	settle(x);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
}

static void test_probe_ladder_gives_up_after_nine(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 6001, 600);
	/* The public address request is the probe: RFC 6886 3.1's schedule, 9 tries, then no NAT-PMP. */
	const uint64_t at_ms[] = { 0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750 };
	for (size_t k = 0; k < sizeof(at_ms) / sizeof(at_ms[0]); k++) {
		if (k) {
			advance_to(x, T0 + at_ms[k] * MS - 1);
			assert_true(srv_idle(x));
			advance_to(x, T0 + at_ms[k] * MS);
		}
		struct dgram a = next_req(x, 2);
		assert_int_equal(a.b[1], 0);
	}
	advance_to(x, T0 + 127750 * MS - 1);
	assert_int_equal(x->n_evs, 0);
	assert_true(srv_idle(x));
	advance_to(x, T0 + 127750 * MS);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[0].info.error, -ETIMEDOUT);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_ERROR_WAIT_RESEND);
}

static void test_renewal_suggests_assigned_port(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 7000, 1000);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 17000, 1000);
	settle(x);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(x->evs[0].info.refresh_usec, T0 + 562500 * MS); /* 9/16 of 1000 s, RAND 0.5 */

	advance_to(x, T0 + 562500 * MS - 1);
	assert_true(srv_idle(x));
	advance_to(x, T0 + 562500 * MS);
	/* The renewal suggests the assigned port, and the public address is fetched again with it. */
	struct dgram ren = next_req(x, 12);
	const uint8_t want[12] = { 0, 2, 0, 0, 0x1b, 0x58, 0x42, 0x68, 0, 0, 0x03, 0xe8 };
	assert_memory_equal(ren.b, want, 12);
	struct dgram a = next_req(x, 2);
	/* The map answer first: the grant counts at once with the address known so far (a grant held back
	 * for the refresh could expire unreported when the address request is lost). */
	reply_map(x, &ren, 0, 662, 17000, 1000);
	settle(x);
	struct pcpmap_mapping_info i;
	pcpmap_mapping_get_info(
	    (pcpmap_mapping *)pm_container_of(x->c->mappings.next, struct pm_mapping, link), &i);
	assert_int_equal(i.state, PCPMAP_STATE_MAPPED);
	assert_int_equal(i.refresh_usec, T0 + 562500 * MS + 562500 * MS);
	reply_addr(x, &a, 0, 662, "198.51.100.7");
	settle(x);
	assert_int_equal(x->n_evs, 1); /* same address and port: no event */
}

static void test_address_change_reaches_every_mapping(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 7100, 1000);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 17100, 1000);
	settle(x);
	mapped(x, 7101, 17101, 4000, 100, NULL);
	assert_int_equal(x->n_evs, 2);

	/* At the first mapping's renewal the gateway has a new public address. */
	advance_to(x, T0 + 562500 * MS);
	struct dgram ren = next_req(x, 12);
	struct dgram a = next_req(x, 2);
	reply_map(x, &ren, 0, 662, 17100, 1000);
	settle(x);
	assert_int_equal(x->n_evs, 2); /* renewed with the address known so far: nothing changed yet */
	reply_addr(x, &a, 0, 662, "192.0.2.33");
	settle(x);
	/* The new address renews both mappings at once (each suggesting its port); their answers carry it. */
	struct dgram ren1 = next_req(x, 12);
	assert_int_equal(get16(ren1.b + 4), 7100);
	assert_int_equal(get16(ren1.b + 6), 17100);
	struct dgram ren2 = next_req(x, 12);
	assert_int_equal(get16(ren2.b + 4), 7101);
	assert_int_equal(get16(ren2.b + 6), 17101);
	reply_map(x, &ren1, 0, 662, 17100, 1000);
	settle(x);
	assert_int_equal(x->n_evs, 3);
	assert_int_equal(x->evs[2].ev, PCPMAP_EVENT_CHANGED);
	assert_int_equal(x->evs[2].info.internal_port, 7100);
	assert_string_equal(x->evs[2].info.external_addr, "192.0.2.33");
	reply_map(x, &ren2, 0, 662, 17101, 4000);
	settle(x);
	assert_int_equal(x->n_evs, 4);
	assert_int_equal(x->evs[3].ev, PCPMAP_EVENT_CHANGED);
	assert_int_equal(x->evs[3].info.internal_port, 7101);
	assert_string_equal(x->evs[3].info.external_addr, "192.0.2.33");
}

static void test_free_deletes_with_lifetime_zero(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_UDP, 7200, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 17200, 600);
	settle(x);
	unsigned fds_mapped = open_fds();
	pcpmap_mapping *m = (pcpmap_mapping *)pm_container_of(x->c->mappings.next, struct pm_mapping, link);
	pcpmap_mapping_free(m);
	/* RFC 6886 3.4: same opcode and internal port, suggested port 0, lifetime 0. */
	struct dgram del = next_req(x, 12);
	const uint8_t want[12] = { 0, 1, 0, 0, 0x1c, 0x20, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(del.b, want, 12);
	assert_true(traced(x, "-> NAT-PMP map udp request internal=7200 suggest=0 lifetime=0"));
	/* Retransmitted on the ladder while unanswered, then confirmed. */
	advance_to(x, T0 + 250 * MS);
	del = next_req(x, 12);
	assert_memory_equal(del.b, want, 12);
	reply_map(x, &del, 0, 100, 0, 0);
	settle(x);
	assert_true(pm_list_empty(&x->c->mappings));
	assert_int_equal(x->n_evs, 1); /* no callback after free */
	/* Its socket is closed (from a timer, outside the event batch). */
	settle(x);
	assert_int_equal(open_fds(), fds_mapped - 1);
}

static void test_sockets_are_reused_not_leaked(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 7300, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 17300, 600);
	settle(x);
	unsigned base = open_fds();
	for (int k = 1; k <= 20; k++) {
		pcpmap_mapping *m = mapped(x, (uint16_t)(7300 + k), (uint16_t)(17300 + k), 600, 100, NULL);
		if (k % 2 && k < 10) {
			pcpmap_mapping_free(m);
			struct dgram del = next_req(x, 12);
			reply_map(x, &del, 0, 100, 0, 0);
		} else {
			pcpmap_mapping_abandon(m); /* gone without a word to the backend */
		}
		settle(x);
		settle(x);
	}
	/* Each new socket found one more socket than mappings and reaped the orphan: only the last
	 * abandoned mapping's socket is left. */
	assert_int_equal(open_fds(), base + 1);
	/* That one goes with the periodic look on the next send (the first mapping's renewal, 337.5 s). */
	advance_to(x, T0 + 337500 * MS);
	next_req(x, 12);
	settle(x);
	assert_int_equal(open_fds(), base);
}

static void test_socket_bound(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	struct pcpmap_client_config cfg = base_cfg(x);
	cfg.max_mappings = 2;
	assert_int_equal(pm_client_new_env(&x->c, &cfg, &x->env), 0);
	unsigned base = open_fds();
	start_map(x, IPPROTO_TCP, 7400, 600);
	answer_probe(x, 100, "198.51.100.7");
	next_req(x, 12);
	start_map(x, IPPROTO_TCP, 7401, 600);
	next_req(x, 12);
	/* Two mappings in flight: two sockets, plus the public-address one, plus epoll's nothing new. */
	assert_int_equal(open_fds(), base + 3);
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 7402;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -ENOSPC);
}

struct code_case {
	uint16_t code;
	int err;
	enum pcpmap_state state;
};

static void test_result_codes(void **state)
{
	struct ctx *x = *state;
	const struct code_case cases[] = {
		{ 1, -EPROTONOSUPPORT, PCPMAP_STATE_FAILED },
		{ 2, -EACCES, PCPMAP_STATE_FAILED },
		{ 3, -EAGAIN, PCPMAP_STATE_ERROR_WAIT_RESEND },
		{ 4, -EAGAIN, PCPMAP_STATE_ERROR_WAIT_RESEND },
		{ 5, -EOPNOTSUPP, PCPMAP_STATE_FAILED },
		{ 99, -EPROTO, PCPMAP_STATE_FAILED },
	};
	start_map(x, IPPROTO_TCP, 8000, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 18000, 600);
	settle(x);
	size_t n = x->n_evs;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint16_t port = (uint16_t)(8001 + k);
		start_map(x, IPPROTO_TCP, port, 600);
		r = next_req(x, 12);
		reply_map(x, &r, cases[k].code, sssoe(x), port, 0);
		settle(x);
		assert_int_equal(x->n_evs, n + 1);
		const struct pcpmap_mapping_info *i = &x->evs[n].info;
		assert_int_equal(x->evs[n].ev, PCPMAP_EVENT_FAILED);
		assert_int_equal(i->proto, PCPMAP_PROTO_NATPMP);
		assert_int_equal(i->result_code, cases[k].code);
		assert_int_equal(i->error, cases[k].err);
		assert_int_equal(i->state, cases[k].state);
		n++;
		/* A copy of the error answer: after a transient error it finds nothing in flight (dropped);
		 * after a final one the mapping's socket is closed already. No second event either way. */
		struct pcpmap_stats st0, st1;
		pcpmap_client_get_stats(x->c, &st0);
		reply_map(x, &r, cases[k].code, sssoe(x), port, 0);
		settle(x);
		pcpmap_client_get_stats(x->c, &st1);
		bool transient = cases[k].state == PCPMAP_STATE_ERROR_WAIT_RESEND;
		assert_int_equal(st1.received, st0.received + transient);
		assert_int_equal(st1.dropped, st0.dropped + transient);
		assert_int_equal(x->n_evs, n);
		if (cases[k].state == PCPMAP_STATE_ERROR_WAIT_RESEND) {
			/* Results 3 and 4 are transient: the same request again after 30 s. */
			assert_int_equal(i->retry_usec, x->clk.now_us + 30 * SEC);
			advance_to(x, x->clk.now_us + 30 * SEC - 1);
			assert_true(srv_idle(x));
			advance_to(x, x->clk.now_us + 1);
			struct dgram again = next_req(x, 12);
			assert_memory_equal(again.b, r.b, 12);
			reply_map(x, &again, 0, sssoe(x), port, 600);
			settle(x);
			assert_int_equal(x->evs[n].ev, PCPMAP_EVENT_MAPPED);
			n++;
		} else {
			/* Final: nothing more is sent for it. */
			advance_to(x, x->clk.now_us + 10 * SEC);
			assert_true(srv_idle(x));
		}
	}
}

static void test_unsupported_version_short_answer(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 8100, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	/* The 8-byte form with opcode 0 (RFC 6886 text): libnatpmp calls it "unsupported opcode". */
	uint8_t b[8] = { 0, 0, 0, 1, 0, 0, 0, 100 };
	srv_send(x, &r.from, b, sizeof(b));
	settle(x);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].info.error, -EPROTONOSUPPORT);
	assert_int_equal(x->evs[0].info.result_code, 1);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_FAILED);
}

static void test_mismatched_answers_dropped(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 8200, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	struct pcpmap_stats st0;
	pcpmap_client_get_stats(x->c, &st0);

	uint8_t b[16] = { 0, 130, 0, 0, 0, 0, 0, 100, 0x20, 0x08, 0x47, 0x18, 0, 0, 2, 0x58 };
	uint8_t t[16];
	memcpy(t, b, 16);
	t[1] = 129; /* a UDP answer to a TCP request */
	srv_send(x, &r.from, t, 16);
	memcpy(t, b, 16);
	t[9] = 0x09; /* internal port 8201 */
	srv_send(x, &r.from, t, 16);
	memcpy(t, b, 16);
	memset(t + 10, 0, 6); /* success with lifetime 0: a delete's answer */
	srv_send(x, &r.from, t, 16);
	memcpy(t, b, 16);
	t[0] = 1; /* not version 0 */
	srv_send(x, &r.from, t, 16);
	srv_send(x, &r.from, b, 6);  /* too short for any answer */
	srv_send(x, &r.from, b, 12); /* a success cut short */
	uint8_t addr_answer[12] = { 0, 128, 0, 0, 0, 0, 0, 100, 192, 0, 2, 1 };
	srv_send(x, &r.from, addr_answer, 12); /* a public address answer on a mapping's socket */
	settle(x);
	assert_int_equal(x->n_evs, 0);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.received - st0.received, 7);
	assert_int_equal(st.dropped - st0.dropped, 7);
	assert_true(traced(x, "<- NAT-PMP dropped: opcode 129 answers no tcp request"));
	assert_true(traced(x, "<- NAT-PMP dropped: internal port 8201, asked 8200"));
	assert_true(traced(x, "<- NAT-PMP dropped: lifetime 0 answers a delete"));

	/* The right one is taken, a copy of it afterwards is a late duplicate. */
	srv_send(x, &r.from, b, 16);
	settle(x);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(x->evs[0].info.external_port, 18200);
	srv_send(x, &r.from, b, 16);
	settle(x);
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.dropped - st0.dropped, 8);
	assert_int_equal(x->n_evs, 1);
}

static void test_epoch_state_loss_recreates(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 8300, 1000);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 18300, 1000);
	settle(x);
	struct dgram first_b;
	mapped(x, 8301, 18301, 7200, 100, &first_b);

	/* At the first mapping's renewal, 562.5 s later, the gateway says SSSoE 3 instead of about 660: it
	 * rebooted (RFC 6886 3.6). The other mapping is re-created at once, asking for its port back. */
	advance_to(x, T0 + 562500 * MS);
	struct dgram ren = next_req(x, 12);
	struct dgram a = next_req(x, 2);
	reply_map(x, &ren, 0, 3, 18300, 1000);
	settle(x);
	struct dgram again = next_req(x, 12);
	assert_int_equal(get16(again.b + 4), 8301);
	assert_int_equal(get16(again.b + 6), 18301);
	assert_int_equal(get32(again.b + 8), 7200);
	/* A reboot seen through the epoch is confirmed, not reported: no LOST. */
	for (size_t k = 0; k < x->n_evs; k++)
		assert_int_not_equal(x->evs[k].ev, PCPMAP_EVENT_LOST);
	size_t n_before = x->n_evs;
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.epoch_resets, 1);
	/* The renewed mapping had waited for the address; both are mapped again. */
	reply_addr(x, &a, 0, 3, "198.51.100.7");
	settle(x);
	reply_map(x, &again, 0, 3, 18301, 7200);
	settle(x);
	/* The same ports came back: nothing changed for the application. */
	assert_int_equal(x->n_evs, n_before);
	assert_true(srv_idle(x));
}

static void test_epoch_consistent_keeps_mappings(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 8400, 1000);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 18400, 1000);
	settle(x);
	mapped(x, 8401, 18401, 7200, 100, NULL);
	advance_to(x, T0 + 562500 * MS);
	struct dgram ren = next_req(x, 12);
	struct dgram a = next_req(x, 2);
	/* 562 s later, 7/8 of that is the slowest gateway clock allowed: expected 100 + 562 - 70 = 592, and
	 * 590 is within the 2 s slack. */
	reply_map(x, &ren, 0, 590, 18400, 1000);
	settle(x);
	reply_addr(x, &a, 0, 590, "198.51.100.7");
	settle(x);
	assert_true(srv_idle(x));
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.epoch_resets, 0);
	assert_int_equal(x->n_evs, 2);
}

static void test_icmp_unreachable_fails_at_once(void **state)
{
	struct ctx *x = *state;
	fake_natpmp_close(x); /* nobody on 5351: ICMP port unreachable */
	start_map(x, IPPROTO_TCP, 8500, 600);
	settle(x);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[0].info.error, -ECONNREFUSED);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_ERROR_WAIT_RESEND);
	/* Not given up on: tried again later. */
	assert_true(x->evs[0].info.retry_usec > T0);
}

static void test_icmp_unreachable_after_mapping(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 8600, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 18600, 600);
	settle(x);
	start_map(x, IPPROTO_TCP, 8601, 600);
	next_req(x, 12);
	fake_natpmp_close(x);
	advance_to(x, T0 + 250 * MS); /* its retransmission draws ICMP */
	settle(x);
	assert_int_equal(x->n_evs, 2);
	assert_int_equal(x->evs[1].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[1].info.internal_port, 8601);
	assert_int_equal(x->evs[1].info.error, -ECONNREFUSED);
}

static void test_unsupported_requests_refused(void **state)
{
	struct ctx *x = *state;
	start_map(x, IPPROTO_TCP, 8700, 600);
	answer_probe(x, 100, "198.51.100.7");
	struct dgram r = next_req(x, 12);
	reply_map(x, &r, 0, 100, 18700, 600);
	settle(x);

	struct pcpmap_request req;
	pcpmap_mapping *m;
	/* Every protocol (0, all ports): NAT-PMP maps TCP or UDP only. */
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = 0;
	req.internal_port = 0;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	/* PEER does not exist in NAT-PMP. */
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.internal_port = 8701;
	req.peer_addr = "203.0.113.9";
	req.peer_port = 443;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	/* A FILTER cannot be expressed: refused rather than silently widened. */
	struct pcpmap_filter f = { .peer_addr = "203.0.113.9", .prefix_len = 32 };
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 8702;
	req.filters = &f;
	req.n_filters = 1;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	settle(x);
	assert_int_equal(x->n_evs, 4);
	for (size_t k = 1; k < 4; k++) {
		assert_int_equal(x->evs[k].ev, PCPMAP_EVENT_FAILED);
		assert_int_equal(x->evs[k].info.error, -EOPNOTSUPP);
		assert_int_equal(x->evs[k].info.state, PCPMAP_STATE_FAILED);
	}
	assert_true(srv_idle(x));
}

static void test_ipv6_server_is_not_natpmp(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	struct pcpmap_client_config cfg = base_cfg(x);
	cfg.server = "::1";
	assert_int_equal(pm_client_new_env(&x->c, &cfg, &x->env), 0);
	struct pm_gw *gw;
	struct pm_server *s;
	assert_int_equal(pm_client_gateway_for(x->c, AF_INET6, &gw), 0);
	assert_int_equal(pm_gw_server(gw, PCPMAP_PROTO_NATPMP, &s), -EAFNOSUPPORT);
}

static void on_probe(pcpmap_client *c, const struct pcpmap_probe_result *r, void *ud)
{
	(void)c;
	*(struct pcpmap_probe_result *)ud = *r;
}

static void test_gateway_probe_reports_natpmp(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_probe_result res;
	memset(&res, 0, sizeof(res));
	assert_int_equal(pcpmap_client_probe(x->c, 2000, on_probe, &res), 0);
	struct dgram a = next_req(x, 2);
	advance_to(x, T0 + 3 * MS);
	reply_addr(x, &a, 0, 4242, "198.51.100.7");
	settle(x);
	assert_int_equal(res.natpmp.proto, PCPMAP_PROTO_NATPMP);
	assert_int_equal(res.natpmp.error, 0);
	assert_int_equal(res.natpmp.version, 0);
	assert_int_equal(res.natpmp.epoch, 4242);
	assert_int_equal(res.natpmp.rtt_usec, 3000);
	assert_string_equal(res.natpmp.external_addr, "198.51.100.7");
	assert_int_equal(res.chosen, PCPMAP_PROTO_NATPMP);
	assert_string_equal(res.external_addr, "198.51.100.7");
}

static void test_gateway_probe_reports_refusal(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_probe_result res;
	memset(&res, 0, sizeof(res));
	fake_natpmp_close(x);
	assert_int_equal(pcpmap_client_probe(x->c, 2000, on_probe, &res), 0);
	settle(x);
	/* At once, not at the probe's deadline, and saying why. */
	assert_int_equal(res.natpmp.proto, PCPMAP_PROTO_NATPMP);
	assert_int_equal(res.natpmp.error, -ECONNREFUSED);
	assert_int_equal(res.chosen, PCPMAP_PROTO_NONE);
}

static void test_delete_all(void **state)
{
	struct ctx *x = *state;
	struct pm_server *s;
	assert_int_equal(pm_client_server_for(x->c, AF_INET, PCPMAP_PROTO_NATPMP, &s), 0);
	assert_int_equal(pm_natpmp_delete_all(s, 0), -EINVAL);
	assert_int_equal(pm_natpmp_delete_all(s, IPPROTO_UDP), 0);
	/* RFC 6886 3.4: opcode of the protocol, internal port 0, suggested 0, lifetime 0. */
	struct dgram d = next_req(x, 12);
	const uint8_t want[12] = { 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(d.b, want, 12);
	assert_true(traced(x, "-> NAT-PMP map udp request internal=0 suggest=0 lifetime=0 (delete all)"));
	reply_map(x, &d, 0, 100, 0, 0);
	settle(x);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.received, 1);
	assert_int_equal(st.dropped, 0);
	assert_true(traced(x, "<- NAT-PMP map udp response result=Success epoch=100 internal=0 external=0 "
			      "lifetime=0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_bytes_and_public_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_our_retransmission_ladder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_ladder_gives_up_after_nine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal_suggests_assigned_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_change_reaches_every_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_deletes_with_lifetime_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sockets_are_reused_not_leaked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_result_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_version_short_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatched_answers_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_state_loss_recreates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_consistent_keeps_mappings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_unreachable_fails_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_unreachable_after_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_requests_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_server_is_not_natpmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_probe_reports_natpmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_probe_reports_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_all, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
	printf("NAT-PMP backend not built (PCPMAP_WITH_NATPMP=OFF): nothing to test\n");
	return 0;
}

#endif
