/* The engine end to end with a fake clock and a PCP server on loopback: RFC 6887 timing (retransmission,
 * renewal windows, error hold times), deletion, validation drops, epoch loss, ICMP errors, PREFER_FAILURE
 * and port pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_backend.h"
#include "fake_env.h"

#define SEC 1000000ull
#define T0  (1000 * SEC)

struct rec {
	enum pcpmap_event ev;
	struct pcpmap_mapping_info info;
};

struct ctx {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	struct fake_server srv;
	pcpmap_client *c;
	struct rec evs[32];
	size_t n_evs;
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
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP); /* no NAT-PMP or UPnP probes off loopback */
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	assert_int_equal(pm_client_new_env(&x.c, &cfg, &x.env), 0);
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

/* Runs the first exchange: request out, success back. */
static pcpmap_mapping *mapped(struct ctx *x, uint16_t port, uint32_t lifetime, struct pcp_msg *ret_req)
{
	struct pcp_msg req, resp;
	pcpmap_mapping *m = start_map(x, IPPROTO_TCP, port, lifetime);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	fake_server_success(&req, &resp, "203.0.113.1", (uint16_t)(port + 1000), lifetime, 100);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, x->clk.now_us);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	if (ret_req)
		*ret_req = req;
	return m;
}

static void test_map_request_fields_and_mapped_event(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp;
	pcpmap_mapping *m = start_map(x, IPPROTO_UDP, 5000, 0);

	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	assert_int_equal(req.version, 2);
	assert_false(req.response);
	assert_int_equal(req.opcode, PCP_OP_MAP);
	assert_int_equal(req.lifetime, PCPMAP_DEFAULT_LIFETIME); /* 0 asks for the 7200 s default */
	assert_int_equal(req.protocol, IPPROTO_UDP);
	assert_int_equal(req.internal_port, 5000);
	assert_int_equal(req.ext_port, 0);
	/* Client IP = our source address (getsockname), IPv4-mapped; no preference = ::ffff:0.0.0.0. */
	char a[48];
	pcp_addr_to_string(&req.client_addr, a, sizeof(a));
	assert_string_equal(a, "127.0.0.1");
	assert_true(pcp_addr_is_v4(&req.ext_addr));

	fake_server_success(&req, &resp, "203.0.113.1", 40000, 7200, 55);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 2000);
	assert_int_equal(x->n_evs, 1);
	const struct pcpmap_mapping_info *i = &x->evs[0].info;
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(i->state, PCPMAP_STATE_MAPPED);
	assert_int_equal(i->proto, PCPMAP_PROTO_PCP);
	assert_string_equal(i->external_addr, "203.0.113.1");
	assert_int_equal(i->external_port, 40000);
	assert_int_equal(i->lifetime, 7200);
	assert_int_equal(i->epoch, 55);
	assert_false(i->external_is_private);
	assert_memory_equal(i->nonce, req.nonce, 12);
	/* RAND 0.5 of the [1/2, 5/8] window: renewal at 9/16 of 7200 s = 4050 s after the grant. */
	assert_int_equal(i->refresh_usec, T0 + 2000 + 4050 * SEC);
	assert_int_equal(i->expires_usec, T0 + 2000 + 7200 * SEC);
	(void)m;
}

static void test_retransmission_ladder(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, again;
	start_map(x, IPPROTO_TCP, 6000, 600);
	assert_int_equal(fake_server_recv(&x->srv, &first, 1000), 0);

	/* RFC 6887 8.1.1 with RAND = 0: waits of 3, 6, 12, 24, 48 s (IRT 3 s, doubling). */
	const uint64_t at[] = { 3, 9, 21, 45, 93 };
	for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		advance_to(x, T0 + at[k] * SEC - 1);
		assert_true(fake_server_idle(&x->srv, 0));
		advance_to(x, T0 + at[k] * SEC);
		assert_int_equal(fake_server_recv(&x->srv, &again, 1000), 0);
		/* Retransmissions are the same request: same nonce. */
		assert_memory_equal(again.nonce, first.nonce, 12);
		assert_int_equal(again.internal_port, 6000);
	}
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + (93 + 96) * SEC);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.sent, 6);
	assert_int_equal(st.retransmits, 5);
	assert_int_equal(x->n_evs, 0); /* MRC and MRD unbounded: no failure, it keeps trying */
}

static void test_mrt_caps_retransmission_at_1024s(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg r;
	start_map(x, IPPROTO_TCP, 6001, 600);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	uint64_t t = T0, rt = 3;
	for (int k = 0; k < 12; k++) {
		t += rt * SEC;
		advance_to(x, t);
		assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
		rt = rt * 2 > 1024 ? 1024 : rt * 2;
	}
	/* 3 .. 768, then MRT: the wait stays at 1024 s. */
	assert_int_equal(pcpmap_client_next_deadline(x->c) - t, 1024 * SEC);
}

static void test_jitter_bounds(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg r;
	x->rnd.unit = 0.0; /* RAND = -0.1 */
	start_map(x, IPPROTO_TCP, 6002, 600);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	advance_to(x, T0); /* the loop's next turn opens the listeners, after the request went out */
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + 2700000); /* 0.9 * 3 s */
}

static void test_deadline_bounds_first_contact(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *m;
	struct pcp_msg r;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 6003;
	req.deadline_ms = 5000;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	advance_to(x, T0 + 3 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	/* The next wait (6 s) is cut at the 5 s deadline, then the mapping fails. */
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + 5 * SEC);
	advance_to(x, T0 + 5 * SEC);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_FAILED);
	assert_int_equal(x->evs[0].info.error, -ETIMEDOUT);
	assert_true(fake_server_idle(&x->srv, 0));
	pcpmap_mapping_free(m);
	/* Nothing was granted: a failed mapping is released without a delete. */
	assert_true(fake_server_idle(&x->srv, 0));
}

static void test_renewal_suggests_assigned_and_stays_quiet(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, ren, resp;
	mapped(x, 7000, 1000, &first);
	/* First renewal at 9/16 of 1000 s. */
	advance_to(x, T0 + 562 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	advance_to(x, T0 + 562500000);
	assert_int_equal(fake_server_recv(&x->srv, &ren, 1000), 0);
	assert_memory_equal(ren.nonce, first.nonce, 12);
	assert_int_equal(ren.ext_port, 8000); /* suggests what was assigned */
	char a[48];
	pcp_addr_to_string(&ren.ext_addr, a, sizeof(a));
	assert_string_equal(a, "203.0.113.1");
	fake_server_success(&ren, &resp, "203.0.113.1", 8000, 1000, 662);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 562500000);
	/* Same values: no second MAPPED event. */
	assert_int_equal(x->n_evs, 1);
	struct pcpmap_mapping_info i;
	pcpmap_mapping_get_info(
	    (pcpmap_mapping *)pm_container_of(x->c->mappings.next, struct pm_mapping, link), &i);
	assert_int_equal(i.state, PCPMAP_STATE_MAPPED);
	assert_int_equal(i.refresh_usec, T0 + 562500000 + 562500000);
}

/* Held mappings ask for no wakeup before their first renewal slot: the loop that drives the engine (pcpmapd's
 * timerfd, an application's poll) sleeps until then. The interop case daemon idle_wakeups checks the daemon's
 * side of this against miniupnpd. */
static void test_held_mappings_sleep_until_first_renewal(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp;
	for (uint16_t k = 0; k < 10; k++)
		start_map(x, IPPROTO_TCP, (uint16_t)(7100 + k), 1000);
	for (int k = 0; k < 10; k++) {
		assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
		fake_server_success(&req, &resp, "203.0.113.1", req.internal_port, 1000, 100);
		assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	}
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 10);
	/* RFC 6887 11.2.1 with RAND 0.5: the first renewal is 9/16 of the 1000 s granted. */
	assert_int_equal(pcpmap_client_get_timeout(x->c), 562500);
	advance_to(x, T0 + 562499 * 1000ull);
	assert_true(fake_server_idle(&x->srv, 0));
	assert_int_equal(pcpmap_client_get_timeout(x->c), 1);
	advance_to(x, T0 + 562500 * 1000ull);
	for (int k = 0; k < 10; k++) {
		assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
		assert_int_equal(req.lifetime, 1000);
	}
}

static void test_unanswered_renewal_slots_then_lost(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg r;
	mapped(x, 7001, 1000, NULL);
	/* Slots (RFC 6887 11.2.1) with RAND 0.5: 9/16, then 3/4 + 1/32, then 7/8 + 1/64, ... of 1000 s. */
	const uint64_t slots_us[] = { 562500000, 781250000, 890625000, 945312500, 972656250, 986328125 };
	for (size_t k = 0; k < sizeof(slots_us) / sizeof(slots_us[0]); k++) {
		advance_to(x, T0 + slots_us[k]);
		assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
		assert_int_equal(r.lifetime, 1000);
	}
	/* The next slot would be closer than 4 s to the last one; 993.16 s still fits. Then expiry. */
	advance_to(x, T0 + 1000 * SEC);
	size_t lost = 0;
	for (size_t k = 0; k < x->n_evs; k++)
		lost += x->evs[k].ev == PCPMAP_EVENT_LOST;
	assert_int_equal(lost, 1);
	assert_int_equal(x->evs[x->n_evs - 1].info.state, PCPMAP_STATE_WAIT_RESP);
}

static void test_short_error_holds_then_retries(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp;
	start_map(x, IPPROTO_TCP, 7002, 600);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	resp = req;
	resp.response = true;
	resp.result = PCP_RES_NO_RESOURCES;
	resp.lifetime = 30;
	resp.epoch = 5;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_ERROR_WAIT_RESEND);
	assert_int_equal(x->evs[0].info.error, -EAGAIN);
	assert_int_equal(x->evs[0].info.result_code, PCP_RES_NO_RESOURCES);
	assert_int_equal(x->evs[0].info.retry_usec, T0 + 30 * SEC);
	/* Nothing during the hold, the same request after it. */
	advance_to(x, T0 + 29 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	advance_to(x, T0 + 30 * SEC);
	struct pcp_msg again;
	assert_int_equal(fake_server_recv(&x->srv, &again, 1000), 0);
	assert_memory_equal(again.nonce, req.nonce, 12);
}

static void test_short_error_zero_lifetime_uses_default_hold(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp;
	start_map(x, IPPROTO_TCP, 7003, 600);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	resp = req;
	resp.response = true;
	resp.result = PCP_RES_NETWORK_FAILURE;
	resp.lifetime = 0;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->evs[0].info.retry_usec, T0 + 30 * SEC);
}

static void test_long_error_is_final(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp;
	start_map(x, IPPROTO_TCP, 80, 600);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	resp = req;
	resp.response = true;
	resp.result = PCP_RES_NOT_AUTHORIZED;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_FAILED);
	assert_int_equal(x->evs[0].info.error, -EACCES);
	assert_int_equal(x->evs[0].info.result_code, PCP_RES_NOT_AUTHORIZED);
	assert_int_equal(pcpmap_client_next_deadline(x->c), UINT64_MAX);
}

static void test_free_deletes_with_same_nonce(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, del, resp;
	pcpmap_mapping *m = mapped(x, 7004, 600, &first);
	pcpmap_mapping_free(m);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	assert_memory_equal(del.nonce, first.nonce, 12);
	assert_int_equal(del.internal_port, 7004);
	assert_int_equal(del.ext_port, 0);
	/* Retransmitted while unanswered, then confirmed. */
	advance_to(x, T0 + 3 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	resp = del;
	resp.response = true;
	resp.result = PCP_RES_SUCCESS;
	resp.lifetime = 0;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 3 * SEC);
	assert_true(pm_list_empty(&x->c->mappings));
	/* No callback after free. */
	assert_int_equal(x->n_evs, 1);
}

static void test_delete_gives_up_after_three_tries(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg del;
	pcpmap_mapping *m = mapped(x, 7005, 600, NULL);
	pcpmap_mapping_free(m);
	assert_int_equal(pcpmap_client_flush(x->c, 0), -ETIMEDOUT);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
		assert_int_equal(del.lifetime, 0);
		advance_to(x, pcpmap_client_next_deadline(x->c));
	}
	assert_true(pm_list_empty(&x->c->mappings));
	assert_true(fake_server_idle(&x->srv, 0));
}

static void test_drops_foreign_nonce_and_garbage(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp;
	start_map(x, IPPROTO_TCP, 7006, 600);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	fake_server_success(&req, &resp, "203.0.113.1", 1, 600, 1);
	resp.nonce[0] ^= 0xff;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	const uint8_t junk[] = { 2, 0x81, 0, 0, 1, 2, 3 };
	assert_int_equal(fake_server_send_raw(&x->srv, junk, sizeof(junk)), 0);
	fake_server_success(&req, &resp, "203.0.113.1", 1, 600, 1);
	resp.internal_port = 7007; /* right nonce, wrong port */
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 0);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.received, 3);
	assert_int_equal(st.dropped, 3);
}

static void test_epoch_loss_recreates_mapping(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, again, resp;
	mapped(x, 7008, 3600, &first);
	/* 100 s later an answer (an ANNOUNCE) says epoch 3 instead of about 200: the server lost its state. */
	x->clk.now_us = T0 + 100 * SEC;
	struct pcp_msg ann;
	memset(&ann, 0, sizeof(ann));
	ann.version = 2;
	ann.response = true;
	ann.opcode = PCP_OP_ANNOUNCE;
	ann.epoch = 3;
	assert_int_equal(fake_server_reply(&x->srv, &ann), 0);
	advance_to(x, T0 + 100 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &again, 1000), 0);
	assert_memory_equal(again.nonce, first.nonce, 12);
	assert_int_equal(again.ext_port, 8008); /* asks for the same port back */
	/* An epoch says the state may be gone, not that it is: nothing reported until the answer. */
	assert_int_equal(x->evs[x->n_evs - 1].ev, PCPMAP_EVENT_MAPPED);
	/* The gateway gives another port: CHANGED. */
	fake_server_success(&again, &resp, "203.0.113.1", 9999, 3600, 4);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 100 * SEC);
	assert_int_equal(x->evs[x->n_evs - 1].ev, PCPMAP_EVENT_CHANGED);
	assert_int_equal(x->evs[x->n_evs - 1].info.external_port, 9999);
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.epoch_resets, 1);
}

static void test_epoch_consistent_keeps_mapping(void **state)
{
	struct ctx *x = *state;
	mapped(x, 7009, 3600, NULL);
	x->clk.now_us = T0 + 100 * SEC;
	struct pcp_msg ann;
	memset(&ann, 0, sizeof(ann));
	ann.version = 2;
	ann.response = true;
	ann.opcode = PCP_OP_ANNOUNCE;
	ann.epoch = 200; /* 100 + 100 s */
	assert_int_equal(fake_server_reply(&x->srv, &ann), 0);
	advance_to(x, T0 + 100 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	assert_int_equal(x->n_evs, 1);
}

static void test_icmp_unreachable_reports_at_once(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg r;
	start_map(x, IPPROTO_TCP, 7010, 600);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	fake_server_close(&x->srv);  /* the next datagram draws ICMP port unreachable */
	advance_to(x, T0 + 3 * SEC); /* retransmission */
	usleep(20000);
	advance_to(x, T0 + 3 * SEC);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[0].info.error, -ECONNREFUSED);
	assert_int_equal(x->evs[0].info.state, PCPMAP_STATE_ERROR_WAIT_RESEND);
	/* Re-probed later, not given up on. */
	assert_true(x->evs[0].info.retry_usec > T0 + 3 * SEC);
}

static void test_prefer_failure_mismatch_released(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *m;
	struct pcp_msg r, resp, del;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 7011;
	req.suggested_port = 7011;
	req.prefer_failure = true;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	assert_true(r.opts.prefer_failure);
	assert_int_equal(r.ext_port, 7011);
	/* miniupnpd's bug: SUCCESS on another port despite PREFER_FAILURE. */
	fake_server_success(&r, &resp, "203.0.113.1", 7012, 600, 1);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[0].info.error, -EADDRINUSE);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	assert_memory_equal(del.nonce, r.nonce, 12);
	pcpmap_mapping_free(m);
}

static void test_port_pair_two_maps(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *m;
	struct pcp_msg r1, r2, resp;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_UDP;
	req.internal_port = 7020;
	req.port_pair = true;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	assert_int_equal(fake_server_recv(&x->srv, &r1, 1000), 0);
	assert_true(r1.opts.port_reservation);
	/* An odd port cannot start a pair: the owner is rolled back and retried with PORT_SET. */
	fake_server_success(&r1, &resp, "203.0.113.1", 31001, 600, 1);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	struct pcp_msg del;
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	assert_memory_equal(del.nonce, r1.nonce, 12);
	assert_int_equal(fake_server_recv(&x->srv, &r1, 1000), 0);
	assert_true(r1.opts.has_port_set);
	assert_int_equal(r1.opts.port_set.size, 2);
	assert_true(r1.opts.port_set.parity);
	assert_int_equal(r1.ext_port, 31002);
	assert_int_equal(x->n_evs, 0);
	fake_server_success(&r1, &resp, "203.0.113.1", 31002, 600, 1);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	/* The companion: N + 1, pinned to E + 1. */
	assert_int_equal(fake_server_recv(&x->srv, &r2, 1000), 0);
	assert_int_equal(r2.internal_port, 7021);
	assert_int_equal(r2.ext_port, 31003);
	assert_true(r2.opts.prefer_failure);
	assert_int_equal(x->n_evs, 0);
	fake_server_success(&r2, &resp, "203.0.113.1", 31003, 600, 1);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 1);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_int_equal(x->evs[0].info.external_port, 31002);
	assert_int_equal(x->evs[0].info.external_port2, 31003);
	assert_int_equal(x->evs[0].info.pair_method, PCPMAP_PAIR_PORT_SET);
	/* Freeing the pair deletes both halves. */
	pcpmap_mapping_free(m);
	struct pcp_msg d1, d2;
	assert_int_equal(fake_server_recv(&x->srv, &d1, 1000), 0);
	assert_int_equal(fake_server_recv(&x->srv, &d2, 1000), 0);
	assert_int_equal(d1.lifetime, 0);
	assert_int_equal(d2.lifetime, 0);
	assert_int_equal(d1.internal_port + d2.internal_port, 7020 + 7021);
}

static void test_invalid_requests_rejected(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *m = NULL;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = 0;
	req.internal_port = 80; /* protocol 0 needs port 0 */
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -EINVAL);
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.internal_port = 80;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -EINVAL); /* no peer */
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 81;
	req.port_pair = true; /* odd */
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -EINVAL);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 82;
	req.prefer_failure = true; /* without a suggested port */
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -EINVAL);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 83;
	req.suggested_addr = "fd00::1"; /* IPv6 for an IPv4 mapping */
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -EINVAL);
	assert_null(m);
	assert_true(fake_server_idle(&x->srv, 0));
}

static void test_table_full(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = x->srv.addr;
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	cfg.max_mappings = 2;
	assert_int_equal(pm_client_new_env(&x->c, &cfg, &x->env), 0);
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 9000;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	req.internal_port = 9001;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	req.internal_port = 9002;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), -ENOSPC);
}

static void test_peer_request(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *m;
	struct pcp_msg r, resp;
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.ip_proto = IPPROTO_TCP;
	req.internal_port = 40000;
	req.peer_addr = "198.51.100.7";
	req.peer_port = 443;
	req.description = "test peer";
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	assert_int_equal(r.opcode, PCP_OP_PEER);
	assert_int_equal(r.peer_port, 443);
	char a[48];
	pcp_addr_to_string(&r.peer_addr, a, sizeof(a));
	assert_string_equal(a, "198.51.100.7");
	/* Padded with spaces to a multiple of 4 (miniupnpd refuses other lengths). */
	assert_string_equal(r.opts.description, "test peer   ");
	fake_server_success(&r, &resp, "203.0.113.1", 40000, 600, 1);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	assert_string_equal(x->evs[0].info.peer_addr, "198.51.100.7");
	/* PEER cannot delete (RFC 6887 12): freeing sends nothing. */
	pcpmap_mapping_free(m);
	assert_true(fake_server_idle(&x->srv, 0));
}

static void test_late_delete_answer_for_reused_nonce_dropped(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, del, again, resp;
	pcpmap_mapping *m = mapped(x, 7030, 600, &first);
	pcpmap_mapping_free(m);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	/* The application maps the port again with the same (derived) nonce before the delete is answered. */
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 7030;
	req.lifetime = 600;
	req.nonce = first.nonce;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	assert_int_equal(fake_server_recv(&x->srv, &again, 1000), 0);
	assert_int_equal(again.lifetime, 600);
	/* The delete's answer arrives now: it must not be taken for the new request's. */
	resp = del;
	resp.response = true;
	resp.result = PCP_RES_SUCCESS;
	resp.lifetime = 0;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	x->n_evs = 0;
	advance_to(x, T0);
	assert_int_equal(x->n_evs, 0);
	struct pcpmap_mapping_info i;
	pcpmap_mapping_get_info(m, &i);
	assert_int_equal(i.state, PCPMAP_STATE_WAIT_RESP);
	fake_server_success(&again, &resp, "203.0.113.1", 7030, 600, 101);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
}

/* Delivers a datagram as if it came to the announcement listener (port 5350) from `port` of the server's
 * host (0: the server's own port). */
static void unsolicited(struct ctx *x, const struct pcp_msg *msg, uint16_t port)
{
	uint8_t buf[PCP_MAX_MSG];
	size_t len;
	char who[48];
	struct pm_sockaddr src;
	assert_int_equal(pcp_encode(msg, &x->c->codec, buf, sizeof(buf), &len), 0);
	snprintf(who, sizeof(who), "127.0.0.1:%u", port ? port : x->srv.port);
	assert_int_equal(pm_parse_server(who, &src), 0);
	pm_client_on_unsolicited(x->c, buf, len, &src, x->clk.now_us);
}

static void announce_msg(struct pcp_msg *ann, uint32_t epoch)
{
	memset(ann, 0, sizeof(*ann));
	ann->version = 2;
	ann->response = true;
	ann->opcode = PCP_OP_ANNOUNCE;
	ann->epoch = epoch;
}

/* Defect: an announcement whose epoch says "reset" while the gateway kept its mappings (miniupnpd on
 * SIGUSR1) made the client report LOST then MAPPED. Re-verifying is not losing: no event when the
 * gateway confirms the same mapping. */
static void test_announce_reset_kept_state_no_lost(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, again, resp, ann;
	mapped(x, 7040, 3600, &first); /* epoch 100 at T0 */
	x->clk.now_us = T0 + 100 * SEC;
	announce_msg(&ann, 0);
	unsolicited(x, &ann, 0);
	advance_to(x, T0 + 100 * SEC);
	/* The RFC's random 0-5 s before re-verifying (RAND = 0.5 here: 2.5 s). */
	advance_to(x, T0 + 106 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &again, 1000), 0);
	assert_memory_equal(again.nonce, first.nonce, 12);
	assert_int_equal(again.ext_port, 8040);
	fake_server_success(&again, &resp, "203.0.113.1", 8040, 3600, 6);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 106 * SEC);
	for (size_t i = 0; i < x->n_evs; i++)
		assert_int_not_equal(x->evs[i].ev, PCPMAP_EVENT_LOST);
	assert_int_equal(x->n_evs, 1); /* MAPPED, once */
}

/* Defect: a restart within ~2 s of the previous start shows epoch 0 then 0, which the RFC 6887 8.5 check
 * accepts; an unsolicited ANNOUNCE from our server must still make every mapping re-verify. */
static void test_announce_same_epoch_still_reverifies(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp, again, ann;
	start_map(x, IPPROTO_TCP, 7041, 3600);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	fake_server_success(&req, &resp, "203.0.113.1", 8041, 3600, 0);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	x->clk.now_us = T0 + 1 * SEC;
	announce_msg(&ann, 0);
	unsolicited(x, &ann, 0);
	advance_to(x, T0 + 1 * SEC);
	advance_to(x, T0 + 7 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &again, 1000), 0);
	assert_memory_equal(again.nonce, req.nonce, 12);
	assert_int_equal(again.ext_port, 8041);
	assert_int_not_equal(again.lifetime, 0);
}

/* Announcements count only from the server's address and port (RFC 6887 14.1: the server sends from its
 * port 5351); a spoofed source port on the same host is ignored. */
static void test_announce_from_other_port_ignored(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg ann;
	mapped(x, 7042, 3600, NULL);
	x->clk.now_us = T0 + 100 * SEC;
	announce_msg(&ann, 0);
	unsolicited(x, &ann, (uint16_t)(x->srv.port + 1));
	advance_to(x, T0 + 100 * SEC);
	advance_to(x, T0 + 106 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	struct pcpmap_stats st;
	pcpmap_client_get_stats(x->c, &st);
	assert_int_equal(st.epoch_resets, 0);
}

/* RFC 6887 14.2: a server may send an unsolicited MAP response (say, after its external address changed);
 * one whose nonce matches a mapping updates it: CHANGED. */
static void test_unsolicited_map_response_changes_mapping(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, resp;
	mapped(x, 7043, 3600, &first);
	x->clk.now_us = T0 + 10 * SEC;
	fake_server_success(&first, &resp, "198.51.100.9", 8043, 3600, 110);
	unsolicited(x, &resp, 0);
	advance_to(x, T0 + 10 * SEC);
	assert_int_equal(x->n_evs, 2);
	assert_int_equal(x->evs[1].ev, PCPMAP_EVENT_CHANGED);
	assert_string_equal(x->evs[1].info.external_addr, "198.51.100.9");
	/* One with a nonce we never sent changes nothing. */
	first.nonce[0] ^= 0xff;
	fake_server_success(&first, &resp, "198.51.100.10", 8043, 3600, 111);
	unsolicited(x, &resp, 0);
	advance_to(x, T0 + 10 * SEC);
	assert_int_equal(x->n_evs, 2);
}

/* Defect: PREFER_FAILURE was checked on creation only; a renewal answered with another port was accepted
 * as CHANGED. The other port is released and the mapping fails with EADDRINUSE. */
static void test_prefer_failure_checked_on_renewal(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *m;
	struct pcp_msg r, resp, renew, del;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 7044;
	req.suggested_port = 7044;
	req.prefer_failure = true;
	req.lifetime = 600;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	assert_int_equal(fake_server_recv(&x->srv, &r, 1000), 0);
	fake_server_success(&r, &resp, "203.0.113.1", 7044, 600, 1);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->evs[0].ev, PCPMAP_EVENT_MAPPED);
	/* The first renewal is due by 5/8 of the lifetime. */
	advance_to(x, T0 + 376 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &renew, 1000), 0);
	assert_int_equal(renew.ext_port, 7044);
	fake_server_success(&renew, &resp, "203.0.113.1", 7046, 600, 377);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 376 * SEC);
	assert_int_equal(x->n_evs, 2);
	assert_int_equal(x->evs[1].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[1].info.error, -EADDRINUSE);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	assert_memory_equal(del.nonce, r.nonce, 12);
	pcpmap_mapping_free(m);
}

/* Defect: with every protocol on, PCP requests still in flight when the gateway was switched to NAT-PMP were
 * dropped as "unknown nonce" when their answers came, though the gateway had granted them: orphans held for
 * their whole lifetime. A late grant for a nonce we sent is deleted with that nonce. */
static void test_late_pcp_grant_after_switch_is_deleted(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg req, resp, del;
	/* NAT-PMP as a fake that answers its probe; PCP is the real backend on the loopback server. */
	x->c->backends[PCPMAP_PROTO_NATPMP] = &fake_natpmp;
	x->c->cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) | PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP);
	memset(&flog, 0, sizeof(flog));
	pcpmap_mapping *mh = start_map(x, IPPROTO_TCP, 7045, 600);
	assert_int_equal(fake_server_recv(&x->srv, &req, 1000), 0);
	struct pcpmap_server_info info = { .rtt_usec = 2000 };
	x->clk.now_us = T0 + 2000;
	x->c->now = x->clk.now_us;
	pm_server_on_probe(flog.srv[PCPMAP_PROTO_NATPMP], 0, &info);
	advance_to(x, T0 + 1 * SEC); /* the grace is over: NAT-PMP chosen, the mapping moved */
	struct pm_mapping *m = (struct pm_mapping *)mh;
	assert_ptr_equal(m->server, flog.srv[PCPMAP_PROTO_NATPMP]);
	/* The PCP answer to the first request arrives late. */
	fake_server_success(&req, &resp, "203.0.113.1", 8045, 600, 50);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 1 * SEC);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	assert_memory_equal(del.nonce, req.nonce, 12);
	assert_int_equal(del.internal_port, 7045);
	/* The mapping stays where it went, with another nonce: the retired one names nothing live. */
	assert_ptr_equal(m->server, flog.srv[PCPMAP_PROTO_NATPMP]);
	assert_memory_not_equal(m->nonce, req.nonce, 12);
	/* The delete's answer releases the orphan; nothing more goes out for it. */
	fake_server_success(&del, &resp, "203.0.113.1", 0, 0, 51);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 1 * SEC);
	advance_to(x, T0 + 20 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));
	pcpmap_mapping_abandon(mh);
}

static uint64_t mono_now_us(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Plays a gateway that refuses every delete (NOT_AUTHORIZED: a foreign nonce) from another thread while the
 * client blocks in pcpmap_unmap_sync(). */
static void *refuse_delete(void *arg)
{
	struct fake_server *srv = arg;
	struct pcp_msg req, resp;
	if (fake_server_recv(srv, &req, 2000) == 0) {
		fake_server_success(&req, &resp, "0.0.0.0", 0, 0, 5);
		resp.result = PCP_RES_NOT_AUTHORIZED;
		resp.lifetime = 1800;
		fake_server_reply(srv, &resp);
	}
	return NULL;
}

/* A delete the gateway refused is not a delete: no DELETED, and unmap says why. */
static void test_refused_delete_is_not_deleted(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	struct pcpmap_mapping_info info;
	pthread_t th;
	uint8_t nonce[12] = { 1, 2, 3 };
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 7046;
	req.nonce = nonce;
	/* The real clock from here: unmap_sync waits with poll(). */
	x->c->env.clock.now_us = mono_now_us;
	x->c->env.clock.ctx = NULL;
	assert_int_equal(pthread_create(&th, NULL, refuse_delete, &x->srv), 0);
	int r = pcpmap_unmap_sync(x->c, &req, 2000, &info);
	pthread_join(th, NULL);
	assert_int_equal(r, -EACCES);
	assert_int_equal(info.result_code, PCP_RES_NOT_AUTHORIZED);
}

/* The nonce index survives its growth: 200 mappings (the table grows 64 -> 256), answered in reverse order,
 * each reaches its own mapping. */
static void test_nonce_index_many_mappings(void **state)
{
	struct ctx *x = *state;
	enum { N = 200 };
	static struct pcp_msg reqs[N];
	pcpmap_mapping *ms[N];
	struct pcp_msg resp;
	for (int i = 0; i < N; i++) {
		ms[i] = start_map(x, IPPROTO_UDP, (uint16_t)(20000 + i), 600);
		assert_int_equal(fake_server_recv(&x->srv, &reqs[i], 1000), 0);
	}
	for (int i = N - 1; i >= 0; i--) {
		fake_server_success(&reqs[i], &resp, "203.0.113.1", (uint16_t)(40000 + i), 600, 7);
		assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
		advance_to(x, T0);
	}
	for (int i = 0; i < N; i++) {
		struct pcpmap_mapping_info info;
		pcpmap_mapping_get_info(ms[i], &info);
		assert_int_equal(info.state, PCPMAP_STATE_MAPPED);
		assert_int_equal(info.external_port, 40000 + i);
	}
}

/* pcpmap_mapping_delete(): the delete goes out with the same nonce, the outcome comes as an event, and the
 * handle stays until freed; a refused delete is FAILED, never DELETED. */
static void test_mapping_delete_reports_outcome(void **state)
{
	struct ctx *x = *state;
	struct pcp_msg first, del, resp;
	pcpmap_mapping *a = mapped(x, 7050, 600, &first);
	assert_int_equal(pcpmap_mapping_delete(a), 0);
	assert_int_equal(pcpmap_mapping_delete(a), -EALREADY);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	assert_int_equal(del.lifetime, 0);
	assert_memory_equal(del.nonce, first.nonce, 12);
	fake_server_success(&del, &resp, "203.0.113.1", 0, 0, 101);
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0);
	assert_int_equal(x->evs[x->n_evs - 1].ev, PCPMAP_EVENT_DELETED);
	struct pcpmap_mapping_info info;
	assert_int_equal(pcpmap_mapping_get_info(a, &info), 0);
	assert_int_equal(info.state, PCPMAP_STATE_DELETED);
	pcpmap_mapping_free(a);
	advance_to(x, T0 + 10 * SEC);
	assert_true(fake_server_idle(&x->srv, 0));

	/* Refused: FAILED with the reason. */
	x->n_evs = 0;
	pcpmap_mapping *b = mapped(x, 7051, 600, &first);
	assert_int_equal(pcpmap_mapping_delete(b), 0);
	assert_int_equal(fake_server_recv(&x->srv, &del, 1000), 0);
	fake_server_success(&del, &resp, "203.0.113.1", 0, 0, 102);
	resp.result = PCP_RES_NOT_AUTHORIZED;
	resp.lifetime = 600;
	assert_int_equal(fake_server_reply(&x->srv, &resp), 0);
	advance_to(x, T0 + 10 * SEC);
	assert_int_equal(x->evs[x->n_evs - 1].ev, PCPMAP_EVENT_FAILED);
	assert_int_equal(x->evs[x->n_evs - 1].info.error, -EACCES);
	for (size_t i = 0; i < x->n_evs; i++)
		assert_int_not_equal(x->evs[i].ev, PCPMAP_EVENT_DELETED);
	pcpmap_mapping_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_map_request_fields_and_mapped_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retransmission_ladder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mrt_caps_retransmission_at_1024s, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jitter_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_bounds_first_contact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal_suggests_assigned_and_stays_quiet, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_held_mappings_sleep_until_first_renewal, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unanswered_renewal_slots_then_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_error_holds_then_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_error_zero_lifetime_uses_default_hold, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_error_is_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_deletes_with_same_nonce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_gives_up_after_three_tries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drops_foreign_nonce_and_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_loss_recreates_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_consistent_keeps_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_unreachable_reports_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefer_failure_mismatch_released, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_pair_two_maps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_requests_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_delete_answer_for_reused_nonce_dropped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_announce_reset_kept_state_no_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_announce_same_epoch_still_reverifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_announce_from_other_port_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsolicited_map_response_changes_mapping, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prefer_failure_checked_on_renewal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_pcp_grant_after_switch_is_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_delete_is_not_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nonce_index_many_mappings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapping_delete_reports_outcome, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
