/* The clock-bound halves of two interop cases, on a fake clock with a PCP server on loopback: many mappings
 * across a lossy link (RFC 6887 8.1.1 retransmission: every request is retried on the ladder until answered,
 * nothing is sent twice once answered) and a server that goes away and comes back (renewals stop at the
 * RFC's pace, the loss is reported at expiry, the mapping returns once the server answers again). The
 * interop cases lossy_link_100 and server_down_then_up keep a short real-time run of each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_backend.h"
#include "fake_env.h"

#define SEC 1000000ull
#define T0  (1000 * SEC)

struct slot {
	unsigned mapped, changed, lost, failed, deleted;
	int last_error;
	uint64_t mapped_at;
};

struct ctx {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	struct fake_server srv;
	pcpmap_client *c;
};

static struct ctx *cur;

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct slot *s = ud;
	(void)m;
	switch (ev) {
	case PCPMAP_EVENT_MAPPED:
		s->mapped++;
		s->mapped_at = cur->clk.now_us;
		break;
	case PCPMAP_EVENT_CHANGED:
		s->changed++;
		break;
	case PCPMAP_EVENT_LOST:
		s->lost++;
		break;
	case PCPMAP_EVENT_FAILED:
		s->failed++;
		s->last_error = info->error;
		break;
	default:
		s->deleted++;
		break;
	}
}

static int setup(void **state)
{
	static struct ctx x;
	memset(&x, 0, sizeof(x));
	x.clk.now_us = T0;
	x.rnd.unit = 0.5; /* RAND = 0: the RFC's nominal times */
	fake_env_init(&x.env, &x.clk, &x.rnd);
	assert_int_equal(fake_server_open(&x.srv), 0);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = x.srv.addr;
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	assert_int_equal(pm_client_new_env(&x.c, &cfg, &x.env), 0);
	cur = &x;
	*state = &x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	fake_server_close(&x->srv);
	return 0;
}

static void advance_to(struct ctx *x, uint64_t t)
{
	x->clk.now_us = t;
	assert_int_equal(pcpmap_client_process(x->c), 0);
}

static pcpmap_mapping *start_map(struct ctx *x, uint16_t port, uint32_t lifetime, struct slot *s)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_UDP;
	req.internal_port = port;
	req.lifetime = lifetime;
	req.callback = on_event;
	req.userdata = s;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	return m;
}

/* The server's epoch: it started 100 s before T0 and never restarts. */
static uint32_t server_epoch(const struct ctx *x)
{
	return (uint32_t)(100 + (x->clk.now_us - T0) / SEC);
}

/* A small deterministic generator for the loss pattern (xorshift32). */
static uint32_t loss_rng(uint32_t *st)
{
	uint32_t v = *st;
	v ^= v << 13;
	v ^= v >> 17;
	v ^= v << 5;
	*st = v;
	return v;
}

/* ---- lossy_link_100: 100 mappings, 30 % of requests lost for the first 60 s ---- */

enum { N_MAPS = 100, BASE_PORT = 31000, MAX_SENDS = 16 };

struct lossy_rec {
	uint64_t sent_at[MAX_SENDS];
	unsigned n_sent;
	unsigned n_answered;
};

static void test_lossy_link_every_mapping_once(void **state)
{
	struct ctx *x = *state;
	static struct slot slots[N_MAPS];
	static struct lossy_rec rec[N_MAPS];
	pcpmap_mapping *ms[N_MAPS];
	uint32_t rng = 0x9e3779b9u;
	/* RFC 6887 8.1.1 at RAND = 0: sends at 0, 3, 9, 21, 45, 93 s. */
	const uint64_t ladder[] = { 0, 3, 9, 21, 45, 93 };
	const uint64_t loss_end = T0 + 60 * SEC;

	memset(slots, 0, sizeof(slots));
	memset(rec, 0, sizeof(rec));
	for (int i = 0; i < N_MAPS; i++)
		ms[i] = start_map(x, (uint16_t)(BASE_PORT + i), 600, &slots[i]);

	for (int round = 0; round < 1000; round++) {
		struct pcp_msg req, resp;
		/* The gateway: every request that crosses the link is answered at once. */
		while (fake_server_recv(&x->srv, &req, 0) == 0) {
			int i = req.internal_port - BASE_PORT;
			assert_true(i >= 0 && i < N_MAPS);
			assert_int_not_equal(req.lifetime, 0); /* nothing is deleted here */
			struct lossy_rec *r = &rec[i];
			assert_true(r->n_sent < MAX_SENDS);
			r->sent_at[r->n_sent++] = x->clk.now_us;
			/* Every tenth mapping loses everything sent in the lossy minute: five sends in a row; the
			 * others lose 30 % at random. */
			bool lost = x->clk.now_us < loss_end && (i % 10 == 0 || loss_rng(&rng) % 100 < 30);
			if (lost)
				continue;
			r->n_answered++;
			fake_server_success(&req, &resp, "203.0.113.1", (uint16_t)(41000 + i), 600,
					    server_epoch(x));
			assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
		}
		advance_to(x, x->clk.now_us); /* deliver the answers */
		unsigned done = 0;
		for (int i = 0; i < N_MAPS; i++)
			done += slots[i].mapped != 0;
		if (done == N_MAPS)
			break;
		uint64_t next = pcpmap_client_next_deadline(x->c);
		assert_true(next > x->clk.now_us);
		assert_true(next <= T0 + 150 * SEC); /* the interop case's limit */
		advance_to(x, next);
	}

	unsigned retried_past_loss = 0;
	for (int i = 0; i < N_MAPS; i++) {
		struct lossy_rec *r = &rec[i];
		struct pcpmap_mapping_info info;
		pcpmap_mapping_get_info(ms[i], &info);
		/* Client and gateway agree: one grant, one MAPPED, that port, nothing else reported. */
		assert_int_equal(info.state, PCPMAP_STATE_MAPPED);
		assert_int_equal(info.external_port, 41000 + i);
		assert_int_equal(r->n_answered, 1);
		assert_int_equal(slots[i].mapped, 1);
		assert_int_equal(slots[i].changed + slots[i].lost + slots[i].failed + slots[i].deleted, 0);
		/* Every send on the ladder, the same request each time, none after the answer. */
		assert_true(r->n_sent >= 1 && r->n_sent <= 6);
		for (unsigned k = 0; k < r->n_sent; k++)
			assert_int_equal(r->sent_at[k], T0 + ladder[k] * SEC);
		assert_int_equal(slots[i].mapped_at, r->sent_at[r->n_sent - 1]);
		if (i % 10 == 0) {
			/* Five sends lost: the sixth, after the loss ended, is answered. */
			assert_int_equal(r->n_sent, 6);
			retried_past_loss++;
		}
	}
	assert_int_equal(retried_past_loss, N_MAPS / 10);
	/* Nothing more goes out until the first renewal slot (9/16 of 600 s at RAND 0). */
	advance_to(x, T0 + 300 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	for (int i = 0; i < N_MAPS; i++)
		pcpmap_mapping_abandon(ms[i]);
}

/* ---- server_down_then_up: lifetime 8 s, the server stops 3 s in and comes back 20 s later ---- */

/* Binds the fake server again on the port the client talks to (it was closed: ICMP port unreachable). */
static void server_reopen(struct fake_server *s)
{
	struct sockaddr_in a;
	int one = 1;
	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(s->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

/* Runs the client from deadline to deadline until `until`; returns how many requests it sent. */
static uint64_t run_until(struct ctx *x, uint64_t until, uint64_t *ret_sends, unsigned n_max)
{
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	uint64_t before = st.sent;
	unsigned n = 0;
	for (;;) {
		uint64_t next = pcpmap_client_next_deadline(x->c);
		if (next > until)
			break;
		pcpmap_client_get_stats(x->c, &st);
		uint64_t sent0 = st.sent;
		advance_to(x, next);
		/* The ICMP error of a send to the closed port arrives asynchronously. */
		usleep(2000);
		advance_to(x, next);
		pcpmap_client_get_stats(x->c, &st);
		if (st.sent > sent0 && n < n_max)
			ret_sends[n++] = next;
	}
	x->clk.now_us = until;
	pcpmap_client_get_stats(x->c, &st);
	return st.sent - before;
}

static void test_server_down_then_up(void **state)
{
	struct ctx *x = *state;
	struct slot s;
	struct pcp_msg req, resp;
	uint64_t sends[32];

	memset(&s, 0, sizeof(s));
	pcpmap_mapping *m = start_map(x, 7023, 8, &s);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	fake_server_success(&req, &resp, "203.0.113.1", 17023, 8, server_epoch(x));
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(s.mapped, 1);

	/* Nothing is due before the first renewal slot (9/16 of 8 s): the server stops 3 s in. */
	advance_to(x, T0 + 3 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	fake_server_close(&x->srv);

	uint64_t n = run_until(x, T0 + 23 * SEC, sends, 32);
	/* RFC 6887 11.2.1 and 8.1.1: renewal slots at least 4 s apart until expiry, then the ladder (3, 6, 12 s)
	 * and the unreachable server's backoff: never faster than every 3 s, so at most 7 in 20 s. */
	assert_true(n >= 2);
	assert_true(n <= 7);
	for (uint64_t k = 1; k < n && k < 32; k++)
		assert_true(sends[k] - sends[k - 1] >= 3 * SEC);
	/* The loss is reported once, at the end of the granted lifetime, and the refusal says why. */
	assert_int_equal(s.lost, 1);
	assert_true(s.failed >= 1);
	assert_int_equal(s.last_error, -ECONNREFUSED);
	assert_int_equal(s.mapped, 1);

	/* The server comes back; the next attempt (within the 12 s step of the backoff) maps again. */
	server_reopen(&x->srv);
	uint64_t back = x->clk.now_us;
	for (int round = 0; round < 10 && s.mapped < 2; round++) {
		uint64_t next = pcpmap_client_next_deadline(x->c);
		assert_true(next <= back + 12 * SEC);
		advance_to(x, next);
		if (fake_server_recv(&x->srv, &req, 100) == 0) {
			assert_int_equal(req.internal_port, 7023);
			assert_int_not_equal(req.lifetime, 0);
			fake_server_success(&req, &resp, "203.0.113.1", 17023, 8, server_epoch(x));
			assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
			advance_to(x, next);
		}
	}
	assert_int_equal(s.mapped, 2);
	assert_true(s.mapped_at <= back + 12 * SEC);
	struct pcpmap_mapping_info info;
	pcpmap_mapping_get_info(m, &info);
	assert_int_equal(info.state, PCPMAP_STATE_MAPPED);
	assert_int_equal(info.external_port, 17023);
	pcpmap_mapping_abandon(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lossy_link_every_mapping_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_down_then_up, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
