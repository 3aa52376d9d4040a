/* Resilience with a fake clock and fake backends: paced re-creation after state loss (unicast at once,
 * multicast after the RFC's random delay, visible mappings first), announcements from strangers ignored,
 * default-gateway and source-address changes re-home mappings, a lost default route suspends sending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_backend.h"
#include "fake_env.h"
#include "vectors.h"

#define MS 1000ull
#define T0 (5000000ull)

struct ctx {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	pcpmap_client *c;
	enum pcpmap_event evs[32];
	uint16_t ports[32];
	size_t n;
};

/* The default route the fake kernel reports: 127.0.0.<gw_octet>, or none when 0. */
static int gw_octet = 2;

static int fake_default_gateway(int family, struct pm_gateway *ret)
{
	if (family != AF_INET || !gw_octet)
		return -ENOENT;
	memset(ret, 0, sizeof(*ret));
	ret->family = AF_INET;
	ret->addr.v4.s_addr = htonl(0x7f000000u | (uint32_t)gw_octet);
	return 0;
}

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct ctx *x = ud;
	(void)m;
	if (x->n < 32) {
		x->ports[x->n] = info->internal_port;
		x->evs[x->n++] = ev;
	}
}

static void dbg_log(void *ud, enum pcpmap_log_level l, const char *msg)
{
	(void)ud;
	(void)l;
	fprintf(stderr, "  log: %s\n", msg);
}

static int setup_cfg(void **state, unsigned remap_interval_ms, unsigned remap_max_in_flight)
{
	static struct ctx x;
	memset(&x, 0, sizeof(x));
	gw_octet = 2;
	x.clk.now_us = T0;
	x.rnd.unit = 0.5;
	fake_env_init(&x.env, &x.clk, &x.rnd);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	if (remap_interval_ms)
		cfg.remap_interval_ms = remap_interval_ms;
	if (remap_max_in_flight)
		cfg.remap_max_in_flight = remap_max_in_flight;
	if (getenv("DBG")) {
		cfg.log = dbg_log;
		cfg.log_level = PCPMAP_LOG_DEBUG;
	}
	assert_int_equal(pm_client_new_env(&x.c, &cfg, &x.env), 0);
	fake_backends_install(x.c);
	x.c->default_gateway = fake_default_gateway; /* the fake kernel's routing table */
	*state = &x;
	return 0;
}

static int setup(void **state)
{
	return setup_cfg(state, 0, 0);
}

/* Re-creations at a fixed spacing of 50 ms. */
static int setup_spaced(void **state)
{
	return setup_cfg(state, 50, 0);
}

/* The default window, with a ceiling of 10. */
static int setup_ceiling(void **state)
{
	return setup_cfg(state, 0, 10);
}

/* Announcement listeners and the route monitor on, as in an application. */
static int setup_listening(void **state)
{
	int r = setup_cfg(state, 0, 0);
	struct ctx *x = *state;
	x->c->cfg.no_announce_listener = false;
	x->c->cfg.no_netlink_monitor = false;
	return r;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	return 0;
}

static void at(struct ctx *x, uint64_t t)
{
	x->clk.now_us = t;
	assert_int_equal(pcpmap_client_process(x->c), 0);
}

static struct pcpmap_mapping_info info_of(pcpmap_mapping *m)
{
	struct pcpmap_mapping_info info;
	assert_int_equal(pcpmap_mapping_get_info(m, &info), 0);
	return info;
}

static enum pcpmap_state state_of(pcpmap_mapping *m)
{
	return info_of(m).state;
}

static pcpmap_mapping *held_mapping(struct ctx *x, uint16_t port, bool with_cb)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = port;
	req.lifetime = 3600;
	if (with_cb) {
		req.callback = on_event;
		req.userdata = x;
	}
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	r.kind = PM_REPLY_SUCCESS;
	r.lifetime = 3600;
	r.ext_port = port;
	r.has_epoch = true;
	r.epoch = 1000;
	pcp_addr_from_string("203.0.113.1", &r.ext_addr);
	fake_gw_reply(m, &r, FAKE_REACHABLE_FIRST | FAKE_EPOCH_FIRST);
	at(x, x->clk.now_us);
	assert_int_equal(state_of(m), PCPMAP_STATE_MAPPED);
	return m;
}

/* A mapping asked for and not answered yet. */
static pcpmap_mapping *asked_mapping(struct ctx *x, uint16_t port)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = port;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	return m;
}

static void test_unicast_loss_paced_visible_first(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *a = held_mapping(x, 2000, false);
	pcpmap_mapping *b = held_mapping(x, 2001, true);
	pcpmap_mapping *c = held_mapping(x, 2002, true);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	x->n = 0;
	/* 10 s later an answer carries epoch 3: the server lost its state. */
	fake_gw_epoch(PCPMAP_PROTO_PCP, 3);
	at(x, T0 + 10000 * MS);
	assert_false(flog.epoch_ok);
	/* Confirmed at once (unicast), the mapping with a callback first: a renewal, not a re-creation. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 1);
	assert_int_equal(state_of(b), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(state_of(a), PCPMAP_STATE_MAPPED);
	assert_int_equal(state_of(c), PCPMAP_STATE_MAPPED);
	/* Then one every 50 ms. */
	at(x, T0 + 10049 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 1);
	at(x, T0 + 10050 * MS);
	assert_int_equal(state_of(c), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(state_of(a), PCPMAP_STATE_MAPPED);
	at(x, T0 + 10100 * MS);
	assert_int_equal(state_of(a), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 3);
	/* An epoch proves nothing was lost: no LOST; the grants stay live (their expiry armed) until answers
	 * or expiry. */
	assert_int_equal(x->n, 0);
	assert_int_equal(info_of(b).expires_usec, T0 + 3600000 * MS);
	assert_int_equal(info_of(c).expires_usec, T0 + 3600000 * MS);
}

/* The default: confirmations go out in a window that starts at 4, grows by one per answer (slow start),
 * halves (once per flight) when requests go a whole RT unanswered, and never puts more than the ceiling out: a confirmation
 * retransmitted outside the window still counts under it until it is answered. */
static void answer(pcpmap_mapping *m)
{
	struct pcpmap_mapping_info info = info_of(m);
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	r.kind = PM_REPLY_SUCCESS;
	r.lifetime = 3600;
	r.ext_port = info.external_port;
	assert_int_equal(pcp_addr_from_string(info.external_addr, &r.ext_addr), 0);
	fake_gw_reply(m, &r, 0);
}

static unsigned count_state(pcpmap_mapping **ms, size_t from, size_t to, enum pcpmap_state st)
{
	unsigned k = 0;
	for (size_t i = from; i < to; i++)
		k += state_of(ms[i]) == st;
	return k;
}

static void test_remap_window_grows_and_halves(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *ms[40];
	for (int i = 0; i < 40; i++)
		ms[i] = held_mapping(x, (uint16_t)(2100 + i), false);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	fake_gw_epoch(PCPMAP_PROTO_PCP, 3);
	at(x, T0 + 10000 * MS);
	assert_false(flog.epoch_ok);
	/* Window 4: four confirmations out at once, the oldest first. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 4);
	assert_int_equal(count_state(ms, 0, 40, PCPMAP_STATE_WAIT_RESP), 4);
	assert_int_equal(state_of(ms[0]), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(state_of(ms[4]), PCPMAP_STATE_MAPPED);
	/* Four answers: window 8, eight out. */
	for (int i = 0; i < 4; i++)
		answer(ms[i]);
	at(x, x->clk.now_us + 1 * MS);
	assert_int_equal(count_state(ms, 0, 40, PCPMAP_STATE_WAIT_RESP), 8);
	/* Eight answers: window 16, but the ceiling holds it at 10 (ms[12] to ms[21] out). */
	for (int i = 4; i < 12; i++)
		answer(ms[i]);
	at(x, x->clk.now_us + 1 * MS);
	assert_int_equal(count_state(ms, 0, 40, PCPMAP_STATE_WAIT_RESP), 10);
	assert_int_equal(count_state(ms, 12, 22, PCPMAP_STATE_WAIT_RESP), 10);
	/* Nothing answers for a whole RT (3 s): the window halves, once for the whole flight. The ten leave it
	 * but are retransmitted, and still count under the ceiling: nothing more goes out. */
	at(x, x->clk.now_us + 3300 * MS);
	at(x, x->clk.now_us); /* a refill the losses armed would run on the loop's next turn */
	at(x, x->clk.now_us + 1 * MS);
	assert_int_equal(count_state(ms, 0, 40, PCPMAP_STATE_WAIT_RESP), 10);
	assert_int_equal(count_state(ms, 22, 40, PCPMAP_STATE_WAIT_RESP), 0);
	/* One of them answered: one new confirmation takes its place, no more. */
	answer(ms[12]);
	at(x, x->clk.now_us + 1 * MS);
	assert_int_equal(count_state(ms, 0, 40, PCPMAP_STATE_WAIT_RESP), 10);
	assert_int_equal(state_of(ms[22]), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(state_of(ms[23]), PCPMAP_STATE_MAPPED);
	/* The new one freed by the application while in the window: the window refills without it. */
	pcpmap_mapping_free(ms[22]);
	ms[22] = ms[39]; /* not counted twice below */
	at(x, x->clk.now_us + 1 * MS);
	assert_int_equal(state_of(ms[23]), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(count_state(ms, 0, 39, PCPMAP_STATE_WAIT_RESP), 10);
	/* No LOST anywhere: those mappings are still held as far as anyone knows. */
	assert_int_equal(x->n, 0);
}

/* A gateway that handles one request at a time, the oldest first, and takes base_ms plus step_ms for each
 * rule it already holds (miniupnpd's nftables backend: 12 ms when empty, over 100 ms at 1,000 rules). A
 * window that grows while answers come back queues requests behind each other until the last ones wait
 * longer than PCP's first retransmission timer (3 s); each retransmission is then one more request for the
 * gateway to work through. The window must follow the answers' delay instead: every mapping confirmed with
 * one request. */
static uint64_t last_send_of(pcpmap_mapping *m)
{
	const struct fake_send *f = fake_last_send(m);
	assert_non_null(f);
	return f->at_us;
}

static void confirm_through_queueing_gateway(struct ctx *x, int n, uint64_t base_us, uint64_t step_us)
{
	pcpmap_mapping **ms = calloc((size_t)n, sizeof(*ms));
	assert_non_null(ms);
	for (int i = 0; i < n; i++)
		ms[i] = held_mapping(x, (uint16_t)(2200 + i), false);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	/* 10 s later an answer carries epoch 3: the server lost its state. */
	fake_gw_epoch(PCPMAP_PROTO_PCP, 3);
	at(x, T0 + 10000 * MS);
	assert_false(flog.epoch_ok);
	uint64_t busy_until = x->clk.now_us;
	for (int rules = 0; rules < 10 * n && count_state(ms, 0, (size_t)n, PCPMAP_STATE_WAIT_RESP);) {
		pcpmap_mapping *oldest = NULL;
		uint64_t oldest_at = 0;
		for (int i = 0; i < n; i++) {
			if (state_of(ms[i]) != PCPMAP_STATE_WAIT_RESP)
				continue;
			uint64_t t = last_send_of(ms[i]);
			if (!oldest || t < oldest_at) {
				oldest = ms[i];
				oldest_at = t;
			}
		}
		/* Its turn comes when the gateway is done with the one before and the request has arrived. */
		uint64_t start = busy_until > oldest_at ? busy_until : oldest_at;
		uint64_t done = start + base_us + step_us * (uint64_t)rules;
		/* Timers due before then (retransmissions) run first. */
		while (x->clk.now_us < done) {
			uint64_t next = pcpmap_client_next_deadline(x->c);
			at(x, next > x->clk.now_us && next < done ? next : done);
		}
		busy_until = done;
		if (state_of(oldest) == PCPMAP_STATE_WAIT_RESP) {
			answer(oldest);
			rules++;
		}
		at(x, x->clk.now_us);
	}
	assert_int_equal(count_state(ms, 0, (size_t)n, PCPMAP_STATE_MAPPED), n);
	/* One request per mapping: none waited past its retransmission timer. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP] - sent, n);
	free(ms);
}

static void test_remap_window_follows_a_slow_gateway(void **state)
{
	confirm_through_queueing_gateway(*state, 60, 200 * MS, 0);
}

static void test_remap_window_follows_a_slowing_gateway(void **state)
{
	confirm_through_queueing_gateway(*state, 300, 10 * MS, 300);
}

/* The same one-at-a-time gateway, but the answer to the first request of every tenth mapping is lost (it
 * did the work; the answer never arrived). A lost answer frees its window slot only at the retransmission
 * timer, 3 s later, so a window that halves for every such loss is soon 1, and then each loss stops
 * re-creation for 3 s. Halving once per round trip, as TCP does for one loss event, keeps the gateway busy:
 * every mapping is back within its work plus one retransmission timer (and the timers' jitter), each lost
 * one asked exactly twice. Returns the fake time from the loss to the last confirmation. */
static uint64_t confirm_through_lossy_gateway(struct ctx *x, int n, uint64_t service_us)
{
	pcpmap_mapping **ms = calloc((size_t)n, sizeof(*ms));
	uint64_t *served = calloc((size_t)n, sizeof(*served));
	int *asked = calloc((size_t)n, sizeof(*asked));
	assert_true(ms && served && asked);
	for (int i = 0; i < n; i++)
		ms[i] = held_mapping(x, (uint16_t)(2600 + i), false);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	fake_gw_epoch(PCPMAP_PROTO_PCP, 3);
	uint64_t t_loss = T0 + 10000 * MS;
	at(x, t_loss);
	uint64_t busy_until = x->clk.now_us, last_back = 0;
	for (int guard = 0; guard < 100 * n && count_state(ms, 0, (size_t)n, PCPMAP_STATE_WAIT_RESP);
	     guard++) {
		/* The oldest request not yet worked on. */
		int oldest = -1;
		uint64_t oldest_at = 0;
		for (int i = 0; i < n; i++) {
			if (state_of(ms[i]) != PCPMAP_STATE_WAIT_RESP || last_send_of(ms[i]) == served[i])
				continue;
			uint64_t t = last_send_of(ms[i]);
			if (oldest < 0 || t < oldest_at) {
				oldest = i;
				oldest_at = t;
			}
		}
		if (oldest < 0) {
			/* Only lost ones are out: their retransmission timers run. */
			at(x, pcpmap_client_next_deadline(x->c));
			continue;
		}
		uint64_t start = busy_until > oldest_at ? busy_until : oldest_at;
		uint64_t done = start + service_us;
		while (x->clk.now_us < done) {
			uint64_t next = pcpmap_client_next_deadline(x->c);
			at(x, next > x->clk.now_us && next < done ? next : done);
		}
		busy_until = done;
		if (state_of(ms[oldest]) != PCPMAP_STATE_WAIT_RESP)
			continue;
		served[oldest] = last_send_of(ms[oldest]);
		if (oldest % 10 == 3 && asked[oldest]++ == 0)
			continue; /* the answer is lost */
		answer(ms[oldest]);
		at(x, x->clk.now_us);
		last_back = x->clk.now_us;
	}
	assert_int_equal(count_state(ms, 0, (size_t)n, PCPMAP_STATE_MAPPED), n);
	/* One request per mapping, two for each lost answer: nothing sent twice for nothing. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP] - sent, n + n / 10);
	free(ms);
	free(served);
	free(asked);
	return last_back - t_loss;
}

static void test_remap_window_survives_random_loss(void **state)
{
	/* 400 mappings at 25 ms each (miniupnpd at about 1,000 rules): 11 s of work with the retransmissions,
	 * plus one timer of 3 s (and up to 10 % jitter on it) for the last lost answer. */
	uint64_t took = confirm_through_lossy_gateway(*state, 400, 25 * MS);
	fprintf(stderr, "  400 mappings back in %.1f s of fake time\n", (double)took / 1e6);
	assert_true(took <= 16000 * MS);
}

static unsigned open_sockets(void)
{
	unsigned n = 0;
	char path[64], target[256];
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = '\0';
			n += strncmp(target, "socket:", 7) == 0;
		}
	}
	return n;
}

/* The first request goes out before the announcement listeners and the route monitor are opened: they cost
 * about 45 system calls (two sockets joined to the all-hosts groups on every interface, a netlink monitor),
 * 150-250 us that a cold start spent before its first packet. They open on the loop's next turn, while the
 * answer is on its way. */
static void test_first_request_before_listeners(void **state)
{
	struct ctx *x = *state;
	unsigned socks = open_sockets();
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	pcpmap_mapping *m = asked_mapping(x, 2900);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 1);
	assert_int_equal(open_sockets(), socks);
	at(x, x->clk.now_us);
	/* Two announcement listeners (IPv4 and IPv6) and the route monitor. */
	assert_int_equal(open_sockets(), socks + 3);
	pcpmap_mapping_free(m);
}

static void test_multicast_announce_random_delay(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = held_mapping(x, 2003, true);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	uint8_t buf[64];
	struct pcp_msg ann;
	size_t len;
	memset(&ann, 0, sizeof(ann));
	ann.version = 2;
	ann.response = true;
	ann.opcode = PCP_OP_ANNOUNCE;
	ann.epoch = 0;
	assert_int_equal(pcp_encode(&ann, NULL, buf, sizeof(buf), &len), 0);
	struct pm_sockaddr src;
	assert_int_equal(pm_sockaddr_set(&src, "127.0.0.2", 5351), 0);
	x->clk.now_us = T0 + 60000 * MS;
	pm_client_on_unsolicited(x->c, buf, len, &src, x->clk.now_us);
	/* RAND 0.5 of the 0-5 s spread: 2.5 s. */
	at(x, T0 + 62499 * MS);
	assert_int_equal(state_of(m), PCPMAP_STATE_MAPPED);
	at(x, T0 + 62500 * MS);
	assert_int_equal(state_of(m), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 1);
}

static void test_announce_from_stranger_ignored(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = held_mapping(x, 2004, true);
	uint8_t buf[64];
	struct pcp_msg ann;
	size_t len;
	memset(&ann, 0, sizeof(ann));
	ann.version = 2;
	ann.response = true;
	ann.opcode = PCP_OP_ANNOUNCE;
	assert_int_equal(pcp_encode(&ann, NULL, buf, sizeof(buf), &len), 0);
	struct pm_sockaddr src;
	assert_int_equal(pm_sockaddr_set(&src, "127.0.0.99", 5351), 0);
	x->clk.now_us = T0 + 60000 * MS;
	pm_client_on_unsolicited(x->c, buf, len, &src, x->clk.now_us);
	/* Garbage from the gateway is dropped too. */
	const uint8_t junk[] = { 2, 0x80, 0, 0 };
	assert_int_equal(pm_sockaddr_set(&src, "127.0.0.2", 5351), 0);
	pm_client_on_unsolicited(x->c, junk, sizeof(junk), &src, x->clk.now_us);
	at(x, T0 + 70000 * MS);
	assert_int_equal(state_of(m), PCPMAP_STATE_MAPPED);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.dropped, 2);
	assert_int_equal(st.epoch_resets, 0);
}

static void test_gateway_change_rehomes(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = held_mapping(x, 2005, true);
	struct pm_server *old = fake_server_of(m);
	size_t mark = flog.n_send_log;
	x->n = 0;
	gw_octet = 3;
	x->clk.now_us = T0 + 1000 * MS;
	pm_client_net_check(x->c, x->clk.now_us);
	at(x, x->clk.now_us);
	/* Released on the old gateway (best effort), requested on the new one, LOST reported. */
	assert_int_equal(flog.deletes[PCPMAP_PROTO_PCP], 1);
	assert_int_equal(fake_sent_distinct(mark), 1);
	assert_ptr_not_equal(fake_server_of(m), old);
	struct pcpmap_mapping_info info = info_of(m);
	assert_string_equal(info.server, "127.0.0.3:5351");
	assert_int_equal(info.state, PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_LOST);
}

static void test_route_lost_suspends_then_resumes(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *mh;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 2006;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &mh), 0);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	gw_octet = 0;
	x->clk.now_us = T0 + 100 * MS;
	pm_client_net_check(x->c, x->clk.now_us);
	/* Retransmissions come due but nothing goes out. */
	for (uint64_t t = 3; t < 200; t *= 2)
		at(x, T0 + t * 1000 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent);
	gw_octet = 2;
	x->clk.now_us = T0 + 300000 * MS;
	pm_client_net_check(x->c, x->clk.now_us);
	/* The route is back: the request goes out at once. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 1);
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + 303000 * MS);
}

/* Captured rtnetlink notifications replayed through the parser into the engine. */
static void replay(struct ctx *x, const char *vector)
{
	struct vec v = load(vector);
	unsigned mask = 0;
	assert_int_equal(pm_net_parse_events(v.b, v.len, &mask), 0);
	free(v.b);
	pm_client_on_net_events(x->c, mask, x->clk.now_us);
}

static void test_route_events_from_captured_netlink(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = held_mapping(x, 2007, true);
	/* An irrelevant notification schedules nothing. */
	x->clk.now_us = T0 + 1000 * MS;
	uint64_t before = pcpmap_client_next_deadline(x->c);
	replay(x, "netlink-ev-irrelevant.hex");
	assert_int_equal(pcpmap_client_next_deadline(x->c), before);
	/* The default route goes away: 200 ms later (debounce) the gateway is suspended: a new mapping through
	 * it is not sent but held back to retry. */
	gw_octet = 0;
	replay(x, "netlink-ev-v4-route-del.hex");
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + 1200 * MS);
	at(x, T0 + 1200 * MS);
	unsigned sent = flog.sends[PCPMAP_PROTO_PCP];
	pcpmap_mapping *fresh = asked_mapping(x, 2008);
	at(x, T0 + 1300 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent);
	assert_int_equal(state_of(fresh), PCPMAP_STATE_ERROR_WAIT_RESEND);
	/* It comes back: the held mapping is renewed at once. */
	gw_octet = 2;
	x->clk.now_us = T0 + 5000 * MS;
	replay(x, "netlink-ev-v4-route-add.hex");
	at(x, T0 + 5200 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], sent + 1);
	assert_int_equal(state_of(m), PCPMAP_STATE_REFRESHING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unicast_loss_paced_visible_first, setup_spaced,
						teardown),
		cmocka_unit_test_setup_teardown(test_multicast_announce_random_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_request_before_listeners, setup_listening,
						teardown),
		cmocka_unit_test_setup_teardown(test_remap_window_grows_and_halves, setup_ceiling, teardown),
		cmocka_unit_test_setup_teardown(test_remap_window_follows_a_slow_gateway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remap_window_follows_a_slowing_gateway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remap_window_survives_random_loss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_announce_from_stranger_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_change_rehomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_lost_suspends_then_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_events_from_captured_netlink, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
