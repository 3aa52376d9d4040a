/* The fallback policy with fake backends and a fake clock: PCP first, NAT-PMP and UPnP probed in parallel,
 * a grace window for a better protocol, NAT-PMP on the PCP "unsupported version" reply, UPnP only after the
 * UDP protocols failed or 50 ms passed, learned protocols reused, everything re-learned after failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "fake_backend.h"
#include "fake_env.h"

#define MS 1000ull
#define T0 (5000000ull)

struct ctx {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	pcpmap_client *c;
	enum pcpmap_event evs[16];
	struct pcpmap_mapping_info infos[16];
	size_t n;
};

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct ctx *x = ud;
	(void)m;
	if (x->n < 16) {
		x->infos[x->n] = *info;
		x->evs[x->n++] = ev;
	}
}

static int setup(void **state)
{
	static struct ctx x;
	memset(&x, 0, sizeof(x));
	memset(&flog, 0, sizeof(flog));
	x.clk.now_us = T0;
	x.rnd.unit = 0.5;
	fake_env_init(&x.env, &x.clk, &x.rnd);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = "127.0.0.1"; /* the fakes never send anything */
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	assert_int_equal(pm_client_new_env(&x.c, &cfg, &x.env), 0);
	fake_backends_install(x.c);
	*state = &x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	return 0;
}

static pcpmap_mapping *start(struct ctx *x, uint16_t port, uint32_t protocols)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = port;
	req.protocols = protocols;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	return m;
}

static void at(struct ctx *x, uint64_t t)
{
	x->clk.now_us = t;
	assert_int_equal(pcpmap_client_process(x->c), 0);
}

/* Delivers what the fake gateway was told to say, now. */
static void deliver(struct ctx *x)
{
	at(x, x->clk.now_us);
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

/* The protocol m's last request went out over (NONE when none did). */
static enum pcpmap_proto sent_over(pcpmap_mapping *m)
{
	const struct fake_send *f = fake_last_send(m);
	return f ? f->proto : PCPMAP_PROTO_NONE;
}

/* The gateway grants m's last request. */
static void grant(struct ctx *x, pcpmap_mapping *m)
{
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	r.kind = PM_REPLY_SUCCESS;
	r.lifetime = 600;
	r.ext_port = info_of(m).internal_port;
	pcp_addr_from_string("203.0.113.1", &r.ext_addr);
	fake_gw_reply(m, &r, sent_over(m) == PCPMAP_PROTO_PCP ? FAKE_REACHABLE_FIRST : 0);
	deliver(x);
}

static void test_pcp_answers_first(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1000, 0);
	/* PCP request and NAT-PMP probe leave together; UPnP waits 50 ms. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 1);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 0);
	at(x, T0 + 2 * MS);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	assert_int_equal(x->infos[0].proto, PCPMAP_PROTO_PCP);
	at(x, T0 + 100 * MS);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 0); /* a PCP gateway never pays for UPnP */
	/* The second mapping goes straight to the learned protocol: no new probes. */
	pcpmap_mapping *m2 = start(x, 1001, 0);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 2);
	assert_int_equal(sent_over(m2), PCPMAP_PROTO_PCP);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 1);
}

static void test_icmp_on_5351_starts_upnp_at_once(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1002, 0);
	at(x, T0 + 1 * MS);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	deliver(x);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	assert_int_equal(state_of(m), PCPMAP_STATE_NOT_SENT); /* parked, not failed */
	at(x, T0 + 30 * MS);
	assert_int_equal(x->n, 0);
	struct pcpmap_server_info info = { .rtt_usec = 20000 };
	fake_gw_probe(PCPMAP_PROTO_UPNP, 0, &info);
	deliver(x);
	/* No better protocol is pending: UPnP at once. */
	assert_int_equal(sent_over(m), PCPMAP_PROTO_UPNP);
	assert_int_equal(state_of(m), PCPMAP_STATE_WAIT_RESP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_UPNP], 1);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	assert_int_equal(x->infos[0].proto, PCPMAP_PROTO_UPNP);
}

static void test_natpmp_only_reply_switches_at_once(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1003, 0);
	at(x, T0 + 1 * MS);
	fake_gw_natpmp_only();
	deliver(x);
	assert_int_equal(sent_over(m), PCPMAP_PROTO_NATPMP);
	assert_ptr_equal(fake_server_of(m), flog.srv[PCPMAP_PROTO_NATPMP]);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 1);
	assert_int_equal(state_of(m), PCPMAP_STATE_WAIT_RESP);
}

static void test_silent_pcp_grace_then_natpmp(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1004, 0);
	at(x, T0 + 2 * MS);
	struct pcpmap_server_info info = { .rtt_usec = 2000 };
	fake_gw_probe(PCPMAP_PROTO_NATPMP, 0, &info);
	deliver(x);
	/* PCP may still answer: wait max(20 ms, 4 x RTT) after the NAT-PMP answer. */
	assert_int_equal(sent_over(m), PCPMAP_PROTO_PCP);
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + 22 * MS);
	at(x, T0 + 22 * MS);
	assert_int_equal(sent_over(m), PCPMAP_PROTO_NATPMP);
	assert_ptr_equal(fake_server_of(m), flog.srv[PCPMAP_PROTO_NATPMP]);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 1);
}

/* The grace a better protocol gets grows with the requests it has in flight: a single-threaded server answers
 * a burst one by one, so 20 PCP requests wait (4 + 20) x the NAT-PMP RTT, not a fixed 4 x RTT. */
static void test_grace_scales_with_requests_in_flight(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m[20];
	for (int i = 0; i < 20; i++)
		m[i] = start(x, (uint16_t)(1100 + i), 0);
	at(x, T0 + 2 * MS);
	struct pcpmap_server_info info = { .rtt_usec = 2000 };
	fake_gw_probe(PCPMAP_PROTO_NATPMP, 0, &info);
	deliver(x);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 0);
	assert_int_equal(pcpmap_client_next_deadline(x->c), T0 + 2 * MS + 24 * 2 * MS);
	at(x, T0 + 49 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 0);
	at(x, T0 + 50 * MS);
	/* The gateway settles on NAT-PMP: every waiting mapping moves there. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 20);
	assert_int_equal(sent_over(m[0]), PCPMAP_PROTO_NATPMP);
	assert_int_equal(sent_over(m[19]), PCPMAP_PROTO_NATPMP);
}

static void test_better_protocol_within_grace_wins(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1005, 0);
	at(x, T0 + 2 * MS);
	struct pcpmap_server_info info = { .rtt_usec = 2000 };
	fake_gw_probe(PCPMAP_PROTO_NATPMP, 0, &info);
	deliver(x);
	at(x, T0 + 10 * MS);
	grant(x, m); /* PCP answers inside the window */
	assert_int_equal(info_of(m).proto, PCPMAP_PROTO_PCP);
	at(x, T0 + 30 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 0);
	assert_int_equal(state_of(m), PCPMAP_STATE_MAPPED);
	/* PCP is the gateway's protocol now: the next mapping goes there without a probe. */
	pcpmap_mapping *m2 = start(x, 1025, 0);
	assert_int_equal(sent_over(m2), PCPMAP_PROTO_PCP);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 1);
}

static void test_upnp_after_50ms_when_udp_silent(void **state)
{
	struct ctx *x = *state;
	start(x, 1006, 0);
	at(x, T0 + 49 * MS);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 0);
	at(x, T0 + 50 * MS);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
}

static void test_nothing_answers_fails_then_relearns(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1007, 0);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	fake_gw_probe(PCPMAP_PROTO_UPNP, -ETIMEDOUT, NULL);
	at(x, T0);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(x->infos[0].state, PCPMAP_STATE_ERROR_WAIT_RESEND);
	assert_int_equal(x->infos[0].error, -ECONNREFUSED);
	assert_int_equal(x->infos[0].retry_usec, T0 + 3000 * MS);
	/* After the hold the gateway is probed from scratch. */
	at(x, T0 + 3000 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 2);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 2);
	assert_int_equal(state_of(m), PCPMAP_STATE_WAIT_RESP);
}

static void test_mapping_protocol_mask(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1008, PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP));
	/* PCP is not allowed for this mapping: nothing goes out over it, the mapping waits for UPnP. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
	assert_int_equal(state_of(m), PCPMAP_STATE_NOT_SENT);
	at(x, T0 + 50 * MS);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	struct pcpmap_server_info info = { .rtt_usec = 5000 };
	fake_gw_probe(PCPMAP_PROTO_UPNP, 0, &info);
	deliver(x);
	/* PCP (probing for the gateway) may still win the gateway, but this mapping may only use UPnP. */
	at(x, T0 + 300 * MS);
	assert_ptr_equal(fake_server_of(m), flog.srv[PCPMAP_PROTO_UPNP]);
	assert_int_equal(flog.sends[PCPMAP_PROTO_UPNP], 1);
}

static void test_parked_mapping_deadline(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *mh;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 1009;
	req.deadline_ms = 1000;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &mh), 0);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	deliver(x);
	at(x, T0 + 999 * MS);
	assert_int_equal(x->n, 0);
	at(x, T0 + 1000 * MS);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(x->infos[0].state, PCPMAP_STATE_FAILED);
	assert_int_equal(x->infos[0].error, -ETIMEDOUT);
}

static void test_learned_protocol_lost_relearns(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1010, 0);
	grant(x, m);
	assert_int_equal(info_of(m).proto, PCPMAP_PROTO_PCP);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	deliver(x);
	/* A mapping already held stays held until its renewal tells otherwise. */
	assert_int_equal(state_of(m), PCPMAP_STATE_MAPPED);
	/* But the gateway's protocol is forgotten (PCP and NAT-PMP, which share the port, are ruled out): the
	 * gateway is probed for UPnP, and the next mapping waits for it instead of going to PCP. */
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	unsigned pcp_sends = flog.sends[PCPMAP_PROTO_PCP];
	pcpmap_mapping *m2 = start(x, 1026, 0);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], pcp_sends);
	assert_int_equal(state_of(m2), PCPMAP_STATE_NOT_SENT);
}

static void test_peer_cannot_go_over_natpmp(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_request req;
	pcpmap_mapping *mh;
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.internal_port = 1011;
	req.peer_addr = "198.51.100.1";
	req.peer_port = 80;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &mh), 0);
	fake_gw_natpmp_only();
	deliver(x);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(x->infos[0].state, PCPMAP_STATE_FAILED);
	assert_int_equal(x->infos[0].error, -EOPNOTSUPP);
	assert_non_null(strstr(x->infos[0].detail, "NAT-PMP"));
	assert_non_null(strstr(x->infos[0].detail, "PEER"));
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 0);
}

static void test_filter_degrades_only_when_allowed(void **state)
{
	struct ctx *x = *state;
	struct pcpmap_filter f = { .peer_addr = "198.51.100.0", .prefix_len = 24 };
	struct pcpmap_request req;
	pcpmap_mapping *a, *b;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = 1012;
	req.filters = &f;
	req.n_filters = 1;
	req.description = "advice only";
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &a), 0);
	req.internal_port = 1013;
	req.allow_degrade = true;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &b), 0);
	/* Over PCP both carry the filter and the description. */
	assert_int_equal(fake_last_send(b)->n_filters, 1);
	assert_true(fake_last_send(b)->has_description);
	fake_gw_natpmp_only();
	deliver(x);
	/* Without permission: refused, naming the protocol and the option. */
	assert_int_equal(x->evs[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(x->infos[0].internal_port, 1012);
	assert_int_equal(x->infos[0].error, -EOPNOTSUPP);
	assert_non_null(strstr(x->infos[0].detail, "FILTER"));
	/* With it: sent over NAT-PMP without the filter and the description, and said so. */
	struct pcpmap_mapping_info ib = info_of(b);
	assert_int_equal(ib.state, PCPMAP_STATE_WAIT_RESP);
	const struct fake_send *fb = fake_last_send(b);
	assert_int_equal(fb->proto, PCPMAP_PROTO_NATPMP);
	assert_int_equal(fb->n_filters, 0);
	assert_false(fb->has_description);
	assert_non_null(strstr(ib.detail, "FILTER"));
	assert_non_null(strstr(ib.detail, "DESCRIPTION"));
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 1);
}

static void test_failure_says_what_was_tried(void **state)
{
	struct ctx *x = *state;
	start(x, 1014, 0);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	fake_gw_probe(PCPMAP_PROTO_UPNP, -ETIMEDOUT, NULL);
	at(x, T0);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_FAILED);
	assert_string_equal(x->infos[0].detail,
			    "tried PCP (port unreachable), NAT-PMP (port unreachable), UPnP (no answer)");
}

static void test_configured_order_prefers_upnp(void **state)
{
	struct ctx *x = *state;
	pcpmap_client_free(x->c);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = "127.0.0.1";
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	cfg.protocol_order[0] = PCPMAP_PROTO_UPNP;
	assert_int_equal(pm_client_new_env(&x->c, &cfg, &x->env), 0);
	fake_backends_install(x->c);
	pcpmap_mapping *m = start(x, 1015, 0);
	/* UPnP first: its probe leaves at once, and nothing goes out over PCP before it has had its chance. */
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
	struct pcpmap_server_info info = { .rtt_usec = 3000 };
	fake_gw_probe(PCPMAP_PROTO_UPNP, 0, &info);
	at(x, T0 + 3 * MS);
	assert_int_equal(sent_over(m), PCPMAP_PROTO_UPNP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_UPNP], 1);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
}

/* The gateway is off: every protocol refused by ICMP port unreachable. Freeing the failed mapping sends no
 * delete: the server refused its request, nothing of it can be held there, and a delete would only make
 * pcpmap_client_flush() (and the CLI's exit) wait for an answer that never comes when the gateway's ICMP is
 * rate-limited. */
static void test_free_after_refusal_sends_no_delete(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1010, 0);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	fake_gw_probe(PCPMAP_PROTO_UPNP, -ECONNREFUSED, NULL);
	at(x, T0 + 1 * MS);
	at(x, T0 + 2 * MS);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(x->infos[0].error, -ECONNREFUSED);
	pcpmap_mapping_free(m);
	assert_int_equal(flog.deletes[PCPMAP_PROTO_PCP], 0);
	assert_int_equal(pcpmap_client_flush(x->c, 0), 0); /* nothing left in flight */
}

/* A grant, then the gateway refuses a renewal by ICMP: the grant may still be there (only the daemon
 * stopped), so freeing still tries to delete it. */
static void test_free_after_grant_still_deletes(void **state)
{
	struct ctx *x = *state;
	pcpmap_mapping *m = start(x, 1011, 0);
	at(x, T0 + 2 * MS);
	grant(x, m);
	fake_gw_unreachable(PCPMAP_PROTO_PCP, -ECONNREFUSED);
	at(x, T0 + 3 * MS);
	pcpmap_mapping_free(m);
	assert_int_equal(flog.deletes[PCPMAP_PROTO_PCP], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pcp_answers_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_on_5351_starts_upnp_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_natpmp_only_reply_switches_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_pcp_grace_then_natpmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_better_protocol_within_grace_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grace_scales_with_requests_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upnp_after_50ms_when_udp_silent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_answers_fails_then_relearns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapping_protocol_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parked_mapping_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_learned_protocol_lost_relearns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_cannot_go_over_natpmp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filter_degrades_only_when_allowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_says_what_was_tried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configured_order_prefers_upnp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_after_refusal_sends_no_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_after_grant_still_deletes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
