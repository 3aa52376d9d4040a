// SPDX-License-Identifier: BSD-2-Clause
/* `pcpmap top`'s view model (cli/top_model.c), driven with a fake clock: every `now` is made up here. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "top_model.h"

#define SEC   1000000ull
#define T0    (1000 * SEC) /* the fake clock's start */
#define WIDTH 160

static struct cli_conn conn(uint8_t proto, const char *local, uint16_t lport, const char *remote,
			    uint16_t rport)
{
	struct cli_conn c;

	memset(&c, 0, sizeof(c));
	c.family = strchr(local, ':') ? AF_INET6 : AF_INET;
	c.proto = proto;
	snprintf(c.local, sizeof(c.local), "%s", local);
	c.lport = lport;
	snprintf(c.remote, sizeof(c.remote), "%s", remote);
	c.rport = rport;
	c.uid = 1000;
	c.state = proto == IPPROTO_TCP ? "established" : "connected";
	return c;
}

static void set_conns(struct top_model *m, const struct cli_conn *c, size_t n)
{
	struct cli_conn *copy = malloc(n * sizeof(*copy));

	assert_non_null(copy);
	memcpy(copy, c, n * sizeof(*copy));
	top_model_set_conns(m, copy, n);
}

static struct pcpmap_mapping_info mapped_info(uint16_t port, uint16_t ext, uint64_t refresh)
{
	struct pcpmap_mapping_info i;

	memset(&i, 0, sizeof(i));
	i.state = PCPMAP_STATE_MAPPED;
	i.proto = PCPMAP_PROTO_PCP;
	i.kind = PCPMAP_KIND_MAP;
	i.ip_proto = IPPROTO_TCP;
	snprintf(i.server, sizeof(i.server), "192.168.77.1:5351");
	snprintf(i.internal_addr, sizeof(i.internal_addr), "192.168.77.2");
	i.internal_port = port;
	snprintf(i.external_addr, sizeof(i.external_addr), "203.0.113.1");
	i.external_port = ext;
	i.lifetime = 120;
	i.refresh_usec = refresh;
	i.nonce[0] = (uint8_t)port;
	i.nonce[11] = 1;
	return i;
}

static const char *last_log(const struct top_model *m)
{
	const struct top_log_entry *e = top_model_log_at(m, m->log_n - 1);
	return e ? e->text : "";
}

static void countdown_moves_with_the_clock(void **state)
{
	(void)state;
	struct pcpmap_mapping_info i = mapped_info(7000, 7000, T0 + 60 * SEC);
	char buf[32];

	top_fmt_countdown(&i, T0, buf, sizeof(buf));
	assert_string_equal(buf, "in 60 s");
	top_fmt_countdown(&i, T0 + SEC / 2, buf, sizeof(buf));
	assert_string_equal(buf, "in 60 s"); /* rounded up: it moves on whole seconds */
	top_fmt_countdown(&i, T0 + SEC, buf, sizeof(buf));
	assert_string_equal(buf, "in 59 s");
	top_fmt_countdown(&i, T0 + 59 * SEC + 1, buf, sizeof(buf));
	assert_string_equal(buf, "in 1 s");
	top_fmt_countdown(&i, T0 + 60 * SEC, buf, sizeof(buf));
	assert_string_equal(buf, "now");
	i.state = PCPMAP_STATE_ERROR_WAIT_RESEND;
	i.retry_usec = T0 + 3 * SEC;
	top_fmt_countdown(&i, T0 + SEC, buf, sizeof(buf));
	assert_string_equal(buf, "retry 2 s");
	i.state = PCPMAP_STATE_DELETED;
	top_fmt_countdown(&i, T0 + SEC, buf, sizeof(buf));
	assert_string_equal(buf, "-");

	/* The next change of the countdown, and what it shows just after. */
	struct top_model t;
	int th;
	top_model_init(&t, T0);
	assert_int_equal(top_model_next_tick(&t, T0), T0 + SEC); /* nothing to count: once a second */
	struct pcpmap_mapping_info k = mapped_info(7000, 7000, T0 + 10 * SEC + 300000);
	top_model_add_map(&t, &th, &k, "", false);
	uint64_t now = T0, prev = 0;
	for (int n = 0; n < 5; n++) {
		uint64_t tick = top_model_next_tick(&t, now);
		assert_int_equal(tick, T0 + 300000 + (uint64_t)n * SEC);
		top_fmt_countdown(&k, tick + 1000, buf, sizeof(buf));
		unsigned v;
		assert_int_equal(sscanf(buf, "in %u s", &v), 1);
		if (prev)
			assert_int_equal(v, prev - 1); /* one a second, none skipped */
		assert_int_equal(v, 10 - n);
		prev = v;
		now = tick + 1000;
	}
	top_model_free(&t);

	/* The mapping pane's line shows it too, one second apart. */
	struct top_model m;
	top_model_init(&m, T0);
	int handle;
	struct pcpmap_mapping_info j = mapped_info(7000, 7000, T0 + 60 * SEC);
	top_model_add_map(&m, &handle, &j, "", false);
	char line[WIDTH + 1];
	top_fmt_map(&m, 0, T0, line, WIDTH);
	assert_non_null(strstr(line, "in 60 s"));
	top_fmt_map(&m, 0, T0 + 2 * SEC, line, WIDTH);
	assert_non_null(strstr(line, "in 58 s"));
	top_model_free(&m);
}

static void selection_and_filter(void **state)
{
	(void)state;
	struct top_model m;
	struct cli_conn c[3] = {
		conn(IPPROTO_TCP, "192.168.77.2", 40100, "203.0.113.2", 8081),
		conn(IPPROTO_TCP, "192.168.77.2", 40200, "203.0.113.3", 443),
		conn(IPPROTO_UDP, "192.168.77.2", 5060, "203.0.113.4", 5060),
	};

	top_model_init(&m, T0);
	set_conns(&m, c, 3);
	assert_int_equal(m.n_vis[0], 3);
	assert_int_equal(m.focus, TOP_PANE_CONNS);
	top_model_move(&m, -5); /* clamped at the top */
	assert_int_equal(m.sel[0], 0);
	top_model_move(&m, 10); /* clamped at the bottom */
	assert_int_equal(m.sel[0], 2);
	top_model_move(&m, -1);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40200);

	/* A filter that keeps the selected row keeps the selection on it. */
	top_model_set_filter(&m, "TCP");
	assert_int_equal(m.n_vis[0], 2);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40200);
	top_model_set_filter(&m, "8081");
	assert_int_equal(m.n_vis[0], 1);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40100);
	top_model_set_filter(&m, "no such thing");
	assert_int_equal(m.n_vis[0], 0);
	assert_null(top_model_sel_conn(&m));
	top_model_set_filter(&m, "");
	assert_int_equal(m.n_vis[0], 3);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40100);

	/* A new listing with a connection before the selected one: the selection stays on its connection. */
	struct cli_conn d[4] = { conn(IPPROTO_TCP, "192.168.77.2", 30000, "203.0.113.9", 22), c[0], c[1],
				 c[2] };
	set_conns(&m, d, 4);
	assert_int_equal(m.sel[0], 1);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40100);
	/* The selected connection closed: the selection stays at its position. */
	struct cli_conn e[3] = { d[0], c[1], c[2] };
	set_conns(&m, e, 3);
	assert_int_equal(m.sel[0], 1);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40200);

	/* Tab cycles the panes; moving in the mappings pane does not move the connections'. */
	top_model_next_pane(&m);
	assert_int_equal(m.focus, TOP_PANE_MAPS);
	int h1, h2;
	struct pcpmap_mapping_info i1 = mapped_info(7000, 7000, 0), i2 = mapped_info(7001, 7001, 0);
	top_model_add_map(&m, &h1, &i1, "", false);
	top_model_add_map(&m, &h2, &i2, "", false);
	top_model_move(&m, 1);
	assert_int_equal(top_model_sel_map(&m)->info.internal_port, 7001);
	assert_int_equal(top_model_sel_conn(&m)->lport, 40200);
	top_model_set_filter(&m, "7000");
	assert_int_equal(m.n_vis[1], 1);
	assert_int_equal(top_model_sel_map(&m)->info.internal_port, 7000);
	top_model_next_pane(&m);
	assert_int_equal(m.focus, TOP_PANE_LOG);
	top_model_next_pane(&m);
	assert_int_equal(m.focus, TOP_PANE_CONNS);
	top_model_free(&m);
}

static void scroll_keeps_selection_visible(void **state)
{
	(void)state;
	struct top_model m;
	struct cli_conn c[20];

	top_model_init(&m, T0);
	for (int i = 0; i < 20; i++)
		c[i] = conn(IPPROTO_TCP, "192.168.77.2", (uint16_t)(40000 + i), "203.0.113.2", 80);
	set_conns(&m, c, 20);
	assert_int_equal(top_model_scroll_for(&m, TOP_PANE_CONNS, 5), 0);
	top_model_move(&m, 7);
	assert_int_equal(top_model_scroll_for(&m, TOP_PANE_CONNS, 5), 3);
	top_model_move(&m, -6);
	assert_int_equal(top_model_scroll_for(&m, TOP_PANE_CONNS, 5), 1);
	top_model_move(&m, 100);
	assert_int_equal(top_model_scroll_for(&m, TOP_PANE_CONNS, 5), 15);
	top_model_free(&m);
}

static void events_are_logged(void **state)
{
	(void)state;
	struct top_model m;
	int h;

	top_model_init(&m, T0);
	struct pcpmap_mapping_info i = mapped_info(7000, 7000, T0 + 60 * SEC);
	uint32_t key = top_model_add_map(&m, &h, NULL, "prefer-failure", false);
	assert_int_not_equal(key, 0);
	assert_non_null(top_model_event(&m, T0 + SEC, &h, PCPMAP_EVENT_MAPPED, &i));
	assert_string_equal(last_log(&m), "MAPPED tcp 7000 -> 203.0.113.1:7000 via PCP, lifetime 120 s");
	assert_string_equal(m.status, last_log(&m));

	i.state = PCPMAP_STATE_WAIT_RESP;
	top_model_event(&m, T0 + 2 * SEC, &h, PCPMAP_EVENT_LOST, &i);
	assert_non_null(strstr(last_log(&m), "LOST tcp 7000 (was 203.0.113.1:7000)"));
	i.state = PCPMAP_STATE_MAPPED;
	top_model_event(&m, T0 + 3 * SEC, &h, PCPMAP_EVENT_MAPPED, &i);
	assert_non_null(strstr(last_log(&m), "re-created after LOST: tcp 7000"));
	i.external_port = 7005;
	top_model_event(&m, T0 + 4 * SEC, &h, PCPMAP_EVENT_CHANGED, &i);
	assert_string_equal(last_log(&m),
			    "CHANGED tcp 7000: external 203.0.113.1:7005 (was 203.0.113.1:7000)");

	/* The protocol that carries it changed: a fallback line before the event's own. */
	size_t before = m.log_n;
	i.proto = PCPMAP_PROTO_NATPMP;
	top_model_event(&m, T0 + 5 * SEC, &h, PCPMAP_EVENT_CHANGED, &i);
	assert_int_equal(m.log_n, before + 2);
	assert_string_equal(top_model_log_at(&m, before)->text,
			    "fallback: tcp 7000 moved from PCP to NAT-PMP");

	/* A failure carries the protocol's name of the result and its advice, and the retry countdown. */
	i.proto = PCPMAP_PROTO_PCP;
	i.state = PCPMAP_STATE_ERROR_WAIT_RESEND;
	i.error = -EACCES;
	i.result_code = 2; /* NOT_AUTHORIZED */
	i.retry_usec = T0 + 36 * SEC;
	top_model_event(&m, T0 + 6 * SEC, &h, PCPMAP_EVENT_FAILED, &i);
	char want[TOP_TEXT_MAX];
	snprintf(want, sizeof(want), "FAILED tcp 7000: %s [PCP %s]: %s; retrying in 30 s",
		 pcpmap_strerror(-EACCES), pcpmap_result_name(PCPMAP_PROTO_PCP, 2),
		 pcpmap_result_advice(PCPMAP_PROTO_PCP, 2));
	assert_string_equal(last_log(&m), want);
	char line[TOP_TEXT_MAX + 1];
	top_fmt_map_detail(&m, T0 + 16 * SEC, line, TOP_TEXT_MAX);
	assert_non_null(strstr(line, "last error: "));
	assert_non_null(strstr(line, "retrying in 20 s"));

	/* An unknown handle changes nothing. */
	int other;
	before = m.log_n;
	assert_null(top_model_event(&m, T0, &other, PCPMAP_EVENT_MAPPED, &i));
	assert_int_equal(m.log_n, before);

	/* Log times are relative to the start. */
	top_fmt_log(&m, 0, line, WIDTH);
	assert_memory_equal(line, "  +1.0s  MAPPED", 15);
	top_model_remove_map(&m, key);
	assert_int_equal(m.n_maps, 0);
	assert_null(top_model_sel_map(&m));
	top_model_free(&m);
}

static void gateway_restart_seen_by_polling(void **state)
{
	(void)state;
	struct top_model m;
	int h;

	top_model_init(&m, T0);
	struct pcpmap_mapping_info i = mapped_info(7301, 7301, T0 + 60 * SEC);
	i.epoch = 40;
	uint32_t key = top_model_add_map(&m, &h, &i, "", false);
	size_t n = m.log_n;
	i.epoch = 41; /* time goes on: nothing to say */
	top_model_poll(&m, T0 + SEC, key, &i);
	i.state = PCPMAP_STATE_REFRESHING;
	top_model_poll(&m, T0 + 2 * SEC, key, &i);
	assert_int_equal(m.log_n, n);
	i.state = PCPMAP_STATE_MAPPED;
	i.epoch = 2; /* renewed by a server that started again */
	top_model_poll(&m, T0 + 3 * SEC, key, &i);
	assert_int_equal(m.log_n, n + 1);
	assert_string_equal(last_log(&m), "gateway 192.168.77.1:5351 restarted (epoch 41 s -> 2 s): tcp 7301 "
					  "renewed, 203.0.113.1:7301 again");
	assert_int_equal(m.maps[0].info.epoch, 2);
	/* The scheduled renewal extends the lifetime: nothing to say. One before it was due is a re-check. */
	i.expires_usec = T0 + 120 * SEC;
	i.refresh_usec = T0 + 60 * SEC;
	top_model_poll(&m, T0 + 3 * SEC, key, &i);
	i.expires_usec = T0 + 180 * SEC;
	i.refresh_usec = T0 + 120 * SEC;
	top_model_poll(&m, T0 + 60 * SEC, key, &i);
	assert_int_equal(m.log_n, n + 1);
	i.expires_usec = T0 + 190 * SEC;
	i.refresh_usec = T0 + 130 * SEC;
	top_model_poll(&m, T0 + 70 * SEC, key, &i);
	assert_int_equal(m.log_n, n + 2);
	assert_string_equal(last_log(&m),
			    "gateway 192.168.77.1:5351 announced itself: tcp 7301 re-verified ahead of "
			    "its renewal, 203.0.113.1:7301 again");
	/* Another server's lower epoch (a move to another gateway) is not a restart. */
	snprintf(i.server, sizeof(i.server), "192.168.78.1:5351");
	i.epoch = 1;
	top_model_poll(&m, T0 + 74 * SEC, key, &i);
	assert_int_equal(m.log_n, n + 2);
	top_model_free(&m);
}

static void log_ring_and_scrolling(void **state)
{
	(void)state;
	struct top_model m;

	top_model_init(&m, T0);
	for (int k = 0; k < 300; k++)
		top_model_log(&m, T0 + (uint64_t)k * SEC, "event %d", k);
	assert_int_equal(m.log_n, TOP_LOG_CAP);
	assert_string_equal(top_model_log_at(&m, 0)->text, "event 44");
	assert_string_equal(last_log(&m), "event 299");
	assert_null(top_model_log_at(&m, TOP_LOG_CAP));
	/* Scrolling back is clamped to what is kept, and new entries keep a scrolled reader in place. */
	m.focus = TOP_PANE_LOG;
	top_model_move(&m, -10);
	assert_int_equal(m.log_back, 10);
	top_model_log(&m, T0, "event 300");
	assert_int_equal(m.log_back, 11);
	top_model_move(&m, -100000);
	assert_int_equal(m.log_back, TOP_LOG_CAP - 1);
	top_model_move(&m, 100000);
	assert_int_equal(m.log_back, 0);
	/* Control characters never reach the terminal. */
	top_model_log(&m, T0, "a\033[2Jb\nc");
	assert_string_equal(last_log(&m), "a [2Jb c");
	top_model_free(&m);
}

static void narrow_widths_truncate(void **state)
{
	(void)state;
	struct top_model m;
	int h;
	struct cli_conn c = conn(IPPROTO_TCP, "fd77:77::2", 8301, "fd77:78::1", 443);

	top_model_init(&m, T0);
	set_conns(&m, &c, 1);
	struct pcpmap_mapping_info i = mapped_info(8301, 8301, T0 + 30 * SEC);
	snprintf(i.external_addr, sizeof(i.external_addr), "fd77:77::2");
	top_model_add_map(&m, &h, &i, "prefer-failure filter 203.0.113.0/24,443 pair", false);
	top_model_log(&m, T0, "a long line of the event log that goes on and on past any narrow terminal");
	char buf[301];
	for (size_t w = 1; w <= 300; w++) {
		top_fmt_conn_header(&m, buf, w);
		assert_int_equal(strlen(buf), w);
		top_fmt_conn(&m, 0, buf, w);
		assert_int_equal(strlen(buf), w);
		top_fmt_map_header(&m, buf, w);
		assert_int_equal(strlen(buf), w);
		top_fmt_map(&m, 0, T0, buf, w);
		assert_int_equal(strlen(buf), w);
		top_fmt_map_detail(&m, T0, buf, w);
		assert_int_equal(strlen(buf), w);
		top_fmt_log(&m, 0, buf, w);
		assert_int_equal(strlen(buf), w);
	}
	top_fmt_map(&m, 0, T0, buf, 40);
	assert_int_equal(buf[39], '>');
	top_fmt_map(&m, 0, T0, buf, 300);
	assert_int_equal(buf[299], ' '); /* padded, not cut */
	/* IPv6 endpoints are bracketed. */
	assert_non_null(strstr(buf, "[fd77:77::2]:8301"));
	top_fmt_conn(&m, 0, buf, 300);
	assert_non_null(strstr(buf, "[fd77:77::2]:8301"));
	assert_non_null(strstr(buf, "[fd77:78::1]:443"));
	char s[8] = "abcdefg";
	top_fit(s, 3);
	assert_string_equal(s, "ab>");
	top_model_free(&m);
}

static void coverage_of_connections(void **state)
{
	(void)state;
	struct top_model m;
	int hp, hm;
	struct cli_conn c[2] = {
		conn(IPPROTO_TCP, "192.168.77.2", 40100, "203.0.113.2", 8081),
		conn(IPPROTO_TCP, "192.168.77.2", 7000, "203.0.113.5", 50000),
	};

	top_model_init(&m, T0);
	set_conns(&m, c, 2);
	assert_int_equal(top_model_coverage(&m, &c[0]), ' ');
	struct pcpmap_mapping_info p = mapped_info(40100, 40100, 0);
	p.kind = PCPMAP_KIND_PEER;
	snprintf(p.peer_addr, sizeof(p.peer_addr), "203.0.113.2");
	p.peer_port = 8081;
	p.state = PCPMAP_STATE_WAIT_RESP;
	top_model_add_map(&m, &hp, &p, "", false);
	assert_int_equal(top_model_coverage(&m, &c[0]), 'p');
	p.state = PCPMAP_STATE_MAPPED;
	top_model_event(&m, T0, &hp, PCPMAP_EVENT_MAPPED, &p);
	assert_int_equal(top_model_coverage(&m, &c[0]), 'P');
	assert_int_equal(top_model_coverage(&m, &c[1]), ' ');
	struct pcpmap_mapping_info mi = mapped_info(7000, 7000, 0);
	top_model_add_map(&m, &hm, &mi, "", false);
	assert_int_equal(top_model_coverage(&m, &c[1]), 'M');
	char buf[WIDTH + 1];
	top_fmt_conn(&m, 0, buf, WIDTH);
	assert_memory_equal(buf, "  peer", 6);
	/* The filter sees the coverage too. */
	top_model_set_filter(&m, "peer");
	assert_int_equal(m.n_vis[0], 1);
	mi.state = PCPMAP_STATE_DELETED;
	top_model_event(&m, T0, &hm, PCPMAP_EVENT_DELETED, &mi);
	assert_int_equal(top_model_coverage(&m, &c[1]), ' ');
	top_model_free(&m);
}

static void peer_form_from_a_connection(void **state)
{
	(void)state;
	struct top_form f;
	struct top_request r;
	struct cli_conn c = conn(IPPROTO_TCP, "192.168.77.2", 40100, "203.0.113.2", 8081);

	top_form_peer(&f, &c);
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_int_equal(r.req.kind, PCPMAP_KIND_PEER);
	assert_int_equal(r.req.ip_proto, IPPROTO_TCP);
	assert_int_equal(r.req.internal_port, 40100);
	assert_string_equal(r.req.peer_addr, "203.0.113.2");
	assert_int_equal(r.req.peer_port, 8081);
	assert_int_equal(r.req.lifetime, PCPMAP_DEFAULT_LIFETIME);
	assert_int_equal(r.req.external_family, AF_INET);

	/* Editing: to the address field, erase it, type something that is not an address. */
	top_form_next(&f, 2);
	assert_int_equal(f.f[f.cur].id, TOP_F_PEER_ADDR);
	for (int k = 0; k < 20; k++)
		top_form_backspace(&f);
	for (const char *p = "notanip"; *p; p++)
		top_form_char(&f, *p);
	assert_int_equal(top_form_request(&f, &r), -EINVAL);
	assert_non_null(strstr(f.error, "'notanip' is not an IPv4 or IPv6 address"));
	for (int k = 0; k < 20; k++)
		top_form_backspace(&f);
	for (const char *p = "fd77:78::1"; *p; p++)
		top_form_char(&f, *p);
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_int_equal(r.req.external_family, AF_INET6);
	/* Wraps around; the protocol cycles with space. */
	top_form_next(&f, -2);
	assert_int_equal(f.f[f.cur].id, TOP_F_PROTO);
	top_form_char(&f, ' ');
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_int_equal(r.req.ip_proto, IPPROTO_UDP);
	top_form_char(&f, ' ');
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_int_equal(r.req.ip_proto, IPPROTO_TCP);
	top_form_next(&f, -1);
	assert_int_equal(f.f[f.cur].id, TOP_F_EXT_PORT);
	top_form_char(&f, '9');
	top_form_char(&f, '9');
	top_form_char(&f, '9');
	top_form_char(&f, '9');
	top_form_char(&f, '9');
	assert_int_equal(top_form_request(&f, &r), -EINVAL);
	assert_non_null(strstr(f.error, "'99999'"));
}

static void map_form(void **state)
{
	(void)state;
	struct top_form f;
	struct top_request r;

	top_form_map(&f, false);
	for (size_t k = 0; k < f.n; k++)
		assert_int_not_equal(f.f[k].id, TOP_F_PERSISTENT);
	assert_int_equal(top_form_request(&f, &r), -EINVAL); /* no port yet */
	assert_non_null(strstr(f.error, "internal port"));
	top_form_next(&f, 1);
	top_form_char(&f, '7');
	top_form_char(&f, '0');
	top_form_char(&f, '0');
	top_form_char(&f, '0');
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_int_equal(r.req.kind, PCPMAP_KIND_MAP);
	assert_int_equal(r.req.internal_port, 7000);
	assert_false(r.req.prefer_failure);
	assert_string_equal(r.options, "");
	/* PREFER_FAILURE without a suggested port is refused with a reason. */
	while (f.f[f.cur].id != TOP_F_PREFER_FAILURE)
		top_form_next(&f, 1);
	top_form_char(&f, ' ');
	assert_int_equal(top_form_request(&f, &r), -EINVAL);
	assert_non_null(strstr(f.error, "PREFER_FAILURE"));
	top_form_next(&f, -1);
	assert_int_equal(f.f[f.cur].id, TOP_F_EXT_PORT);
	top_form_char(&f, '8');
	top_form_char(&f, '0');
	top_form_char(&f, '0');
	top_form_char(&f, '0');
	top_form_next(&f, 2);
	assert_int_equal(f.f[f.cur].id, TOP_F_FILTER);
	for (const char *p = "203.0.113.0/24,443"; *p; p++)
		top_form_char(&f, *p);
	top_form_next(&f, 1);
	top_form_char(&f, ' '); /* pair */
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_true(r.req.prefer_failure);
	assert_int_equal(r.req.suggested_port, 8000);
	assert_int_equal(r.req.n_filters, 1);
	assert_string_equal(r.req.filters[0].peer_addr, "203.0.113.0");
	assert_int_equal(r.req.filters[0].prefix_len, 24);
	assert_int_equal(r.req.filters[0].peer_port, 443);
	assert_true(r.req.port_pair);
	assert_string_equal(r.options, "prefer-failure filter 203.0.113.0/24,443 pair");
	/* A bad filter names itself. */
	top_form_next(&f, -1);
	top_form_backspace(&f);
	top_form_backspace(&f);
	top_form_backspace(&f);
	top_form_backspace(&f);
	top_form_char(&f, 'x');
	assert_int_equal(top_form_request(&f, &r), -EINVAL);
	assert_non_null(strstr(f.error, "FILTER"));

	/* With a daemon: persistent. */
	top_form_map(&f, true);
	assert_int_equal(f.f[f.n - 1].id, TOP_F_PERSISTENT);
	top_form_next(&f, 1);
	top_form_char(&f, '1');
	top_form_next(&f, -2);
	top_form_char(&f, ' ');
	assert_int_equal(top_form_request(&f, &r), 0);
	assert_true(r.req.persistent);
	assert_string_equal(r.options, "persistent");
}

static void daemon_listing(void **state)
{
	(void)state;
	struct top_model m;
	int mine;

	top_model_init(&m, T0);
	struct pcpmap_mapping_info own = mapped_info(7000, 7000, 0);
	top_model_add_map(&m, &mine, &own, "", false);
	struct top_daemon_row rows[2];
	memset(rows, 0, sizeof(rows));
	rows[0].id = 4;
	rows[0].owner_uid = 0;
	rows[0].info = own; /* the same nonce: ours */
	rows[1].id = 9;
	rows[1].owner_uid = 1000;
	rows[1].persistent = true;
	rows[1].info = mapped_info(9000, 9000, 0);
	memset(rows[1].info.nonce, 0, 12); /* another user's: no nonce shown */
	top_model_sync_daemon(&m, T0, rows, 2);
	assert_int_equal(m.n_maps, 2);
	assert_int_equal(m.maps[0].daemon_id, 4);
	assert_true(m.maps[0].has_owner);
	assert_int_equal(m.maps[1].daemon_id, 9);
	assert_null(m.maps[1].handle);
	assert_true(m.maps[1].persistent);
	char buf[WIDTH + 1];
	top_fmt_map_header(&m, buf, WIDTH);
	assert_memory_equal(buf, "  OWNER STATE", 13);
	top_fmt_map(&m, 1, T0, buf, WIDTH);
	assert_memory_equal(buf, "  1000  MAPPED", 14);

	/* A state change of another's mapping is logged; one that left the table is removed. */
	rows[1].info.state = PCPMAP_STATE_ERROR_WAIT_RESEND;
	top_model_sync_daemon(&m, T0 + SEC, rows, 2);
	assert_string_equal(last_log(&m), "pcpmapd #9 (uid 1000) tcp 9000: MAPPED -> ERROR_WAIT_RESEND");
	top_model_sync_daemon(&m, T0 + 2 * SEC, rows, 1);
	assert_int_equal(m.n_maps, 1);
	assert_string_equal(last_log(&m), "pcpmapd #9 tcp 9000 left the daemon's table");
	/* Our own row stays even when the daemon no longer lists it (its events say what happened). */
	top_model_sync_daemon(&m, T0 + 3 * SEC, rows, 0);
	assert_int_equal(m.n_maps, 1);
	top_model_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(countdown_moves_with_the_clock),
		cmocka_unit_test(selection_and_filter),
		cmocka_unit_test(scroll_keeps_selection_visible),
		cmocka_unit_test(events_are_logged),
		cmocka_unit_test(gateway_restart_seen_by_polling),
		cmocka_unit_test(log_ring_and_scrolling),
		cmocka_unit_test(narrow_widths_truncate),
		cmocka_unit_test(coverage_of_connections),
		cmocka_unit_test(peer_form_from_a_connection),
		cmocka_unit_test(map_form),
		cmocka_unit_test(daemon_listing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
