// SPDX-License-Identifier: BSD-2-Clause
/*
 * `pcpmap top`: drawing and input (ncurses). One poll() loop over the terminal, the client's descriptor and a
 * signalfd; the library's events and the sock_diag listings feed the view model (top_model.c), which formats
 * every line this file draws.
 */
#include "top.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <pcpmap/pcpmap.h>

#include <curses.h>
#include <term.h>

#include "connections.h"
#include "top_model.h"
#ifdef PCPMAP_CLI_DAEMON
#include "daemon/ipc_client.h"
#endif

#define MIN_COLS          40
#define MIN_LINES         14
#define CONNS_INTERVAL_US 2000000u /* re-read the connection table */
#define LIST_INTERVAL_US  1000000u /* re-list the daemon's table */

enum mode {
	MODE_NORMAL,
	MODE_FORM,
	MODE_FILTER,
	MODE_HELP,
};

struct app {
	struct top_model m;
	pcpmap_client *c;
	bool daemon;
	const char *socket;
	const char *gateway;
#ifdef PCPMAP_CLI_DAEMON
	struct pmd_ctl *ctl;
	bool ctl_down_logged;
#endif
	enum mode mode;
	struct top_form form;
	char filter_before[TOP_FILTER_MAX];
	char filter_edit[TOP_FILTER_MAX];
	bool quit;
	bool conns_err_logged;
	uint64_t next_conns, next_list;
};

static void on_event(pcpmap_mapping *mp, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct app *a = ud;

	top_model_event(&a->m, pcpmap_now_usec(), mp, ev, info);
}

static void on_log(void *ud, enum pcpmap_log_level level, const char *msg)
{
	struct app *a = ud;

	top_model_log(&a->m, pcpmap_now_usec(), "%s: %s", level <= PCPMAP_LOG_ERR ? "error" : "warning", msg);
}

static void read_conns(struct app *a, uint64_t now)
{
	struct cli_conn *conns = NULL;
	size_t n = 0;
	int r = cli_connections_list(&conns, &n);

	a->next_conns = now + CONNS_INTERVAL_US;
	if (r < 0) {
		if (!a->conns_err_logged)
			top_model_log(&a->m, now, "cannot read the connection table (sock_diag): %s",
				      strerror(-r));
		a->conns_err_logged = true;
		return;
	}
	a->conns_err_logged = false;
	top_model_set_conns(&a->m, conns, n);
}

#ifdef PCPMAP_CLI_DAEMON
static void list_daemon(struct app *a, uint64_t now)
{
	struct pmd_ctl_mapping *ms = NULL;
	size_t n = 0;
	int r = -ENOTCONN;

	a->next_list = now + LIST_INTERVAL_US;
	if (!a->ctl && pmd_ctl_connect(a->socket, &a->ctl) == 0)
		pmd_ctl_set_timeout(a->ctl, 1000);
	if (a->ctl)
		r = pmd_ctl_list(a->ctl, &ms, &n);
	if (r < 0) {
		if (!a->ctl_down_logged)
			top_model_log(&a->m, now,
				      "pcpmapd does not list its mappings: %s (retrying every second)",
				      strerror(-r));
		a->ctl_down_logged = true;
		pmd_ctl_close(a->ctl);
		a->ctl = NULL;
		return;
	}
	if (a->ctl_down_logged)
		top_model_log(&a->m, now, "pcpmapd answers again");
	a->ctl_down_logged = false;
	struct top_daemon_row *rows = n ? calloc(n, sizeof(*rows)) : NULL;
	if (n && !rows) {
		free(ms);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		rows[i].id = ms[i].id;
		rows[i].owner_uid = ms[i].owner_uid;
		rows[i].persistent = ms[i].persistent;
		rows[i].info = ms[i].info;
		rows[i].description = ms[i].description;
	}
	top_model_sync_daemon(&a->m, now, rows, n);
	free(rows);
	free(ms);
}
#endif

/* ---- drawing ---- */

static void put_line(int y, const char *s, attr_t attr)
{
	attrset(attr);
	mvaddnstr(y, 0, s, COLS);
	attrset(A_NORMAL);
}

static void pane_title(int y, const char *name, size_t shown, size_t total, bool focus, char *buf, size_t w)
{
	char t[128];

	if (shown == total)
		snprintf(t, sizeof(t), "%s %s (%zu)", focus ? ">>" : "--", name, total);
	else
		snprintf(t, sizeof(t), "%s %s (%zu of %zu)", focus ? ">>" : "--", name, shown, total);
	snprintf(buf, w + 1, "%s", t);
	top_fit(buf, w);
	put_line(y, buf, focus ? A_REVERSE | A_BOLD : A_BOLD);
}

static void draw_form(struct app *a, char *buf)
{
	struct top_form *f = &a->form;
	int w = COLS - 4 < 70 ? COLS - 4 : 70;
	int h = (int)f->n + 6;
	int y0 = (LINES - h) / 2 < 1 ? 1 : (LINES - h) / 2;
	int x0 = (COLS - w) / 2;
	int cy = -1, cx = 0;

	for (int y = 0; y < h && y0 + y < LINES; y++) {
		memset(buf, ' ', (size_t)w);
		buf[w] = '\0';
		attrset(A_REVERSE);
		mvaddnstr(y0 + y, x0, buf, w);
	}
	snprintf(buf, (size_t)w + 1, " %s request: Enter sends, Esc cancels ",
		 f->kind == PCPMAP_KIND_PEER ? "PEER" : "MAP");
	attrset(A_REVERSE | A_BOLD);
	mvaddnstr(y0, x0 + 1, buf, w - 2);
	for (size_t i = 0; i < f->n && y0 + 2 + (int)i < LINES; i++) {
		const struct top_field *x = &f->f[i];
		char val[80];
		if (x->type == TOP_FIELD_TEXT)
			snprintf(val, sizeof(val), "[%s]", x->text);
		else if (x->type == TOP_FIELD_BOOL)
			snprintf(val, sizeof(val), "[%c]", x->on ? 'x' : ' ');
		else
			snprintf(val, sizeof(val), "<%s>", x->choices[x->choice]);
		snprintf(buf, (size_t)w + 1, " %-30s %s", x->label, val);
		top_fit(buf, (size_t)w - 2);
		attrset(i == f->cur ? A_NORMAL | A_BOLD : A_REVERSE);
		mvaddnstr(y0 + 2 + (int)i, x0 + 1, buf, w - 2);
		if (i == f->cur) {
			cy = y0 + 2 + (int)i;
			cx = x0 + 1 + 32 + (x->type == TOP_FIELD_TEXT ? 1 + (int)strlen(x->text) : 1);
		}
	}
	snprintf(buf, (size_t)w + 1, " Tab/arrows: field  Space: toggle  Backspace: erase");
	top_fit(buf, (size_t)w - 2);
	attrset(A_REVERSE);
	if (y0 + h - 3 < LINES)
		mvaddnstr(y0 + h - 3, x0 + 1, buf, w - 2);
	snprintf(buf, (size_t)w + 1, " %s", f->error);
	top_fit(buf, (size_t)w - 2);
	attrset(A_REVERSE | A_BOLD);
	if (y0 + h - 2 < LINES)
		mvaddnstr(y0 + h - 2, x0 + 1, buf, w - 2);
	attrset(A_NORMAL);
	if (cy >= 0 && cx < COLS) {
		move(cy, cx);
		curs_set(1);
	}
}

static const char *const help_lines[] = {
	"pcpmap top: keys",
	"",
	"  Up/Down, k/j    move the selection (PgUp/PgDn: by 10)",
	"  Tab             next pane: connections, mappings, event log",
	"  p               PEER request form from the selected connection",
	"  m               MAP request form",
	"  Enter           (in a form) send the request",
	"  d               delete the selected mapping",
	"  r               re-read the selected mapping and the tables now",
	"                  (renewals follow the protocol's schedule)",
	"  /               filter rows (Enter keeps it, Esc restores)",
	"  ?               this help",
	"  q               quit: mappings made here are deleted,",
	"                  except persistent ones kept by pcpmapd",
	"",
	"Connections: MAP column 'peer' or 'map' when a mapping covers it",
	"('?' while it is being requested). Press any key.",
};

static void draw_help(char *buf)
{
	size_t n = sizeof(help_lines) / sizeof(help_lines[0]);
	int w = COLS - 2 < 66 ? COLS - 2 : 66;
	int y0 = (LINES - (int)n - 2) / 2 < 0 ? 0 : (LINES - (int)n - 2) / 2;
	int x0 = (COLS - w) / 2;

	for (int i = -1; i <= (int)n && y0 + 1 + i < LINES; i++) {
		snprintf(buf, (size_t)w + 1, " %s", i >= 0 && i < (int)n ? help_lines[i] : "");
		top_fit(buf, (size_t)w);
		attrset(i == 0 ? A_REVERSE | A_BOLD : A_REVERSE);
		mvaddnstr(y0 + 1 + i, x0, buf, w);
	}
	attrset(A_NORMAL);
}

static void draw(struct app *a, uint64_t now)
{
	struct top_model *m = &a->m;
	size_t w = (size_t)COLS;
	char *buf = malloc(w + 600);

	if (!buf)
		return;
	erase();
	curs_set(0);
	if (COLS < MIN_COLS || LINES < MIN_LINES) {
		snprintf(buf, w + 1, "too small: %dx%d, needs %dx%d", COLS, LINES, MIN_COLS, MIN_LINES);
		put_line(0, buf, A_BOLD);
		snprintf(buf, w + 1, "q quits");
		if (LINES > 1)
			put_line(1, buf, A_NORMAL);
		refresh();
		free(buf);
		return;
	}
	int rows = LINES - 8;
	int hc = rows * 35 / 100, hm = rows * 35 / 100;
	int hl = rows - hc - hm;
	int y = 0;

	/* Title. */
	snprintf(buf, w + 1, " pcpmap top  %s%s%s  filter: %s", a->daemon ? "via pcpmapd" : "own client",
		 a->gateway ? ", gateway " : "", a->gateway ? a->gateway : "",
		 m->filter[0] ? m->filter : "-");
	size_t tl = strlen(buf);
	const char *keys = "? help  q quit ";
	if (tl + strlen(keys) + 1 < w)
		snprintf(buf + tl, w + 1 - tl, "%*s", (int)(w - tl), keys);
	top_fit(buf, w);
	put_line(y++, buf, A_REVERSE);

	/* Connections. */
	pane_title(y++, "Connections", m->n_vis[0], m->n_conns, m->focus == TOP_PANE_CONNS, buf, w);
	top_fmt_conn_header(m, buf, w);
	put_line(y++, buf, A_UNDERLINE);
	size_t first = top_model_scroll_for(m, TOP_PANE_CONNS, (size_t)hc);
	for (int i = 0; i < hc; i++, y++) {
		size_t k = first + (size_t)i;
		if (k >= m->n_vis[0])
			continue;
		top_fmt_conn(m, k, buf, w);
		put_line(y, buf,
			 k == m->sel[0] ? (m->focus == TOP_PANE_CONNS ? A_REVERSE : A_BOLD) : A_NORMAL);
	}

	/* Mappings. */
	pane_title(y++, "Mappings", m->n_vis[1], m->n_maps, m->focus == TOP_PANE_MAPS, buf, w);
	top_fmt_map_header(m, buf, w);
	put_line(y++, buf, A_UNDERLINE);
	first = top_model_scroll_for(m, TOP_PANE_MAPS, (size_t)hm);
	for (int i = 0; i < hm; i++, y++) {
		size_t k = first + (size_t)i;
		if (k >= m->n_vis[1])
			continue;
		top_fmt_map(m, k, now, buf, w);
		put_line(y, buf,
			 k == m->sel[1] ? (m->focus == TOP_PANE_MAPS ? A_REVERSE : A_BOLD) : A_NORMAL);
	}
	top_fmt_map_detail(m, now, buf, w);
	put_line(y++, buf, A_DIM);

	/* Event log: the newest entries at the bottom, or scrolled back. */
	pane_title(y++, "Events", m->log_n - m->log_back, m->log_n, m->focus == TOP_PANE_LOG, buf, w);
	size_t end = m->log_n - m->log_back; /* one past the last entry shown */
	size_t start = end > (size_t)hl ? end - (size_t)hl : 0;
	for (size_t k = start; k < end; k++, y++) {
		top_fmt_log(m, k, buf, w);
		put_line(y, buf, A_NORMAL);
	}

	/* Status line. */
	if (a->mode == MODE_FILTER)
		snprintf(buf, w + 1, "/%s", a->filter_edit);
	else
		snprintf(buf, w + 1, "%s", m->status);
	top_fit(buf, w);
	put_line(LINES - 1, buf, A_BOLD);
	if (a->mode == MODE_FILTER) {
		move(LINES - 1,
		     1 + (int)strlen(a->filter_edit) < COLS ? 1 + (int)strlen(a->filter_edit) : COLS - 1);
		curs_set(1);
	}
	if (a->mode == MODE_FORM)
		draw_form(a, buf);
	if (a->mode == MODE_HELP)
		draw_help(buf);
	refresh();
	free(buf);
}

/* ---- actions ---- */

static void send_form(struct app *a, uint64_t now)
{
	struct top_request r;
	pcpmap_mapping *mp = NULL;

	if (top_form_request(&a->form, &r) < 0)
		return; /* the form shows the error */
	r.req.callback = on_event;
	r.req.userdata = a;
	if (r.req.persistent && !a->daemon) {
		snprintf(a->form.error, sizeof(a->form.error), "persistent needs pcpmapd (--daemon)");
		return;
	}
	int e = pcpmap_mapping_new(a->c, &r.req, &mp);
	if (e < 0) {
		snprintf(a->form.error, sizeof(a->form.error), "the request was not accepted: %s",
			 pcpmap_strerror(e));
		return;
	}
	struct pcpmap_mapping_info info;
	pcpmap_mapping_get_info(mp, &info);
	uint32_t key = top_model_add_map(&a->m, mp, &info, r.options, r.req.persistent);
	if (!key) {
		pcpmap_mapping_free(mp);
		snprintf(a->form.error, sizeof(a->form.error), "out of memory");
		return;
	}
	char peer[80] = "";
	if (r.req.kind == PCPMAP_KIND_PEER)
		top_fmt_endpoint(r.req.peer_addr, r.req.peer_port, peer, sizeof(peer));
	top_model_log(&a->m, now, "sent %s %s %u%s%s", r.req.kind == PCPMAP_KIND_PEER ? "PEER" : "MAP",
		      r.req.ip_proto == 6    ? "tcp"
		      : r.req.ip_proto == 17 ? "udp"
					     : "all",
		      r.req.internal_port, peer[0] ? "->" : "", peer);
	a->m.focus = TOP_PANE_MAPS;
	a->m.sel_map_key = key;
	top_model_refilter(&a->m);
	a->mode = MODE_NORMAL;
}

static void delete_selected(struct app *a, uint64_t now)
{
	struct top_map_row *r = a->m.focus == TOP_PANE_MAPS ? top_model_sel_map(&a->m) : NULL;
	char label[96];

	if (!r) {
		top_model_log(&a->m, now, "d: select a mapping first (Tab to the mappings pane)");
		return;
	}
	snprintf(label, sizeof(label), "%s %u",
		 r->info.ip_proto == 6    ? "tcp"
		 : r->info.ip_proto == 17 ? "udp"
					  : "all",
		 r->info.internal_port);
	if (r->handle) {
		bool peer = r->info.kind == PCPMAP_KIND_PEER && !a->daemon;
		pcpmap_mapping_free(r->handle);
		if (peer)
			top_model_log(
			    &a->m, now,
			    "released PEER %s: PCP cannot delete a PEER mapping (RFC 6887 12), the gateway "
			    "drops it when its lifetime ends",
			    label);
		else
			top_model_log(&a->m, now, "deleting %s: the delete is sent%s", label,
				      a->daemon ? " to pcpmapd" : " to the gateway");
		top_model_remove_map(&a->m, r->key);
		return;
	}
#ifdef PCPMAP_CLI_DAEMON
	if (r->daemon_id && a->ctl) {
		uint32_t id = r->daemon_id;
		/* The daemon answers once the gateway did: not worth freezing the view for. */
		int e = pmd_ctl_delete_send(a->ctl, id);
		if (e < 0)
			top_model_log(&a->m, now, "cannot ask pcpmapd to delete #%u (%s): %s", id, label,
				      strerror(-e));
		else
			top_model_log(&a->m, now,
				      "asked pcpmapd to delete #%u (%s): DELETING until the gateway answers, "
				      "then gone (or kept, if the gateway refused)",
				      id, label);
		list_daemon(a, now);
		return;
	}
#endif
	top_model_log(&a->m, now, "d: %s is not this view's and pcpmapd is not reachable", label);
}

static void refresh_now(struct app *a, uint64_t now)
{
	const struct top_map_row *sel = top_model_sel_map(&a->m);
	uint32_t key = sel ? sel->key : 0;
	char cd[32];

	read_conns(a, now);
#ifdef PCPMAP_CLI_DAEMON
	if (a->daemon)
		list_daemon(a, now); /* may add rows: look the selected one up again */
#endif
	struct top_map_row *r = top_model_map_by_key(&a->m, key);
	if (r && r->handle) {
		struct pcpmap_mapping_info info;
		if (pcpmap_mapping_get_info(r->handle, &info) == 0)
			top_model_update_info(&a->m, r->key, &info);
		top_fmt_countdown(&r->info, now, cd, sizeof(cd));
		top_model_log(&a->m, now,
			      "r: re-read %s %u (%s); its renewal follows the protocol's schedule: next %s",
			      r->info.ip_proto == 6 ? "tcp" : "udp", r->info.internal_port,
			      pcpmap_state_name(r->info.state), cd);
	} else {
		top_model_log(&a->m, now, "r: connections%s re-read",
			      a->daemon ? " and pcpmapd's table" : "");
	}
}

static void key_normal(struct app *a, int ch, uint64_t now)
{
	switch (ch) {
	case 'q':
	case 'Q':
		a->quit = true;
		break;
	case KEY_UP:
	case 'k':
		top_model_move(&a->m, -1);
		break;
	case KEY_DOWN:
	case 'j':
		top_model_move(&a->m, 1);
		break;
	case KEY_PPAGE:
		top_model_move(&a->m, -10);
		break;
	case KEY_NPAGE:
		top_model_move(&a->m, 10);
		break;
	case '\t':
		top_model_next_pane(&a->m);
		break;
	case KEY_BTAB:
		top_model_next_pane(&a->m);
		top_model_next_pane(&a->m);
		break;
	case 'p': {
		const struct cli_conn *c = a->m.focus == TOP_PANE_CONNS ? top_model_sel_conn(&a->m) : NULL;
		if (!c) {
			top_model_log(&a->m, now,
				      "p: select a connection first (Tab to the connections pane)");
			break;
		}
		top_form_peer(&a->form, c);
		a->mode = MODE_FORM;
		break;
	}
	case 'm':
		top_form_map(&a->form, a->daemon);
		top_form_next(&a->form, 1); /* to the port: the first thing to type */
		a->mode = MODE_FORM;
		break;
	case 'd':
	case KEY_DC:
		delete_selected(a, now);
		break;
	case 'r':
		refresh_now(a, now);
		break;
	case '/':
		snprintf(a->filter_before, sizeof(a->filter_before), "%s", a->m.filter);
		snprintf(a->filter_edit, sizeof(a->filter_edit), "%s", a->m.filter);
		a->mode = MODE_FILTER;
		break;
	case '?':
	case 'h':
		a->mode = MODE_HELP;
		break;
	default:
		break;
	}
}

static bool is_enter(int ch)
{
	return ch == '\n' || ch == '\r' || ch == KEY_ENTER;
}

static bool is_backspace(int ch)
{
	return ch == KEY_BACKSPACE || ch == 127 || ch == 8;
}

static void key(struct app *a, int ch, uint64_t now)
{
	if (ch == KEY_RESIZE) {
		clear(); /* the next draw repaints everything at the new size */
		return;
	}
	switch (a->mode) {
	case MODE_NORMAL:
		key_normal(a, ch, now);
		break;
	case MODE_HELP:
		a->mode = MODE_NORMAL;
		break;
	case MODE_FILTER:
		if (ch == 27) {
			top_model_set_filter(&a->m, a->filter_before);
			a->mode = MODE_NORMAL;
		} else if (is_enter(ch)) {
			a->mode = MODE_NORMAL;
		} else {
			size_t n = strlen(a->filter_edit);
			if (is_backspace(ch) && n)
				a->filter_edit[n - 1] = '\0';
			else if (ch >= 0x20 && ch < 0x7f && n + 1 < sizeof(a->filter_edit)) {
				a->filter_edit[n] = (char)ch;
				a->filter_edit[n + 1] = '\0';
			}
			top_model_set_filter(&a->m, a->filter_edit); /* live */
		}
		break;
	case MODE_FORM:
		if (ch == 27)
			a->mode = MODE_NORMAL;
		else if (is_enter(ch))
			send_form(a, now);
		else if (ch == '\t' || ch == KEY_DOWN)
			top_form_next(&a->form, 1);
		else if (ch == KEY_BTAB || ch == KEY_UP)
			top_form_next(&a->form, -1);
		else if (is_backspace(ch))
			top_form_backspace(&a->form);
		else if (ch >= 0x20 && ch < 0x7f)
			top_form_char(&a->form, ch);
		break;
	}
}

/* ---- setup and loop ---- */

static void help(void)
{
	printf(
	    "Usage: pcpmap top [--daemon [--socket PATH]] [-g ADDR]\n"
	    "Full-screen view of this host's connections and of the mappings, with live refresh countdowns\n"
	    "and an event log. Keys: arrows or j/k move, Tab switches pane, p makes the selected "
	    "connection's\n"
	    "PEER mapping, m opens a MAP form, Enter sends, d deletes, r re-reads, / filters, ? help, q "
	    "quits\n"
	    "(mappings made in the view are deleted on quit, except persistent ones kept by pcpmapd).\n"
	    "Needs a terminal; for a plain listing that repeats use 'pcpmap list --watch'.\n\n"
	    "  -g, --gateway ADDR      gateway address (default: the default route's gateway)\n"
	    "      --daemon            make mappings through pcpmapd and show every mapping it lets us see\n"
	    "      --socket PATH       pcpmapd's control socket, with --daemon\n");
}

static int parse(int argc, char **argv, struct app *a)
{
	static const struct option opts[] = {
		{ "gateway", required_argument, NULL, 'g' },
		{ "daemon", no_argument, NULL, 'D' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "g:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'g':
			a->gateway = optarg;
			break;
		case 'D':
			a->daemon = true;
			break;
		case 'S':
			a->socket = optarg;
			break;
		case 'h':
			help();
			exit(0);
		default:
			fprintf(stderr, "Try 'pcpmap top --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pcpmap top: unexpected argument '%s'\nTry 'pcpmap top --help'.\n",
			argv[optind]);
		return 2;
	}
	if (a->socket && !a->daemon) {
		fprintf(stderr, "pcpmap top: --socket goes with --daemon\nTry 'pcpmap top --help'.\n");
		return 2;
	}
	return 0;
}

/* Whether this terminal can draw the view; says why not. */
static bool terminal_ok(void)
{
	const char *term = getenv("TERM");

	if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
		fprintf(
		    stderr,
		    "pcpmap top: %s is not a terminal: the full-screen view needs one. For a listing "
		    "that repeats, use 'pcpmap list --watch' (pcpmapd's mappings) or 'pcpmap connections'.\n",
		    isatty(STDOUT_FILENO) ? "standard input" : "standard output");
		return false;
	}
	int err = 0;
	if (!term || !*term || !strcmp(term, "dumb") || setupterm(NULL, STDOUT_FILENO, &err) != OK) {
		fprintf(
		    stderr,
		    "pcpmap top: the terminal (TERM=%s) cannot draw a full-screen view%s. Set TERM to your "
		    "terminal's type (e.g. xterm-256color), or use 'pcpmap list --watch' or "
		    "'pcpmap connections'.\n",
		    term && *term ? term : "(unset)",
		    err == 0 && term && strcmp(term, "dumb") ? " (unknown to terminfo)" : "");
		return false;
	}
	const char *cup = tigetstr("cup");
	bool can = cup && cup != (const char *)-1;
	del_curterm(cur_term);
	if (!can) {
		fprintf(stderr,
			"pcpmap top: the terminal (TERM=%s) cannot move the cursor, which a full-screen view "
			"needs; use 'pcpmap list --watch' or 'pcpmap connections'.\n",
			term);
		return false;
	}
	return true;
}

static int make_client(struct app *a)
{
	struct pcpmap_client_config cfg;

	pcpmap_client_config_init(&cfg);
	cfg.server = a->gateway;
	cfg.log = on_log;
	cfg.log_userdata = a;
	cfg.log_level = PCPMAP_LOG_WARNING;
	if (a->daemon) {
		cfg.mode = PCPMAP_MODE_DAEMON;
		cfg.daemon_socket = a->socket;
	}
	int r = pcpmap_client_new(&a->c, &cfg);
	if (r < 0) {
		if (a->daemon)
			fprintf(stderr,
				"pcpmap top: cannot reach pcpmapd%s%s: %s (is it running? 'systemctl start "
				"pcpmapd')\n",
				a->socket ? " at " : "", a->socket ? a->socket : "", pcpmap_strerror(r));
		else
			fprintf(stderr, "pcpmap top: cannot start: %s%s\n", pcpmap_strerror(r),
				r == -EINVAL
				    ? " (check --gateway: a numeric address, optionally [v6]:port or v4:port)"
				    : "");
	}
	return r;
}

static int open_signalfd(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Deletes what the view made (persistent mappings stay with pcpmapd): counts those the gateway held, those
 * it never granted and those left with the daemon. */
static void release_all(struct app *a, size_t *deleted, size_t *dropped, size_t *kept, size_t *peers)
{
	*deleted = *dropped = *kept = *peers = 0;
	for (size_t i = 0; i < a->m.n_maps; i++) {
		struct top_map_row *r = &a->m.maps[i];
		enum pcpmap_state st = r->info.state;
		if (!r->handle)
			continue;
		if (r->persistent && a->daemon) {
			pcpmap_mapping_abandon(r->handle);
			(*kept)++;
		} else {
			pcpmap_mapping_free(r->handle);
			bool held = st == PCPMAP_STATE_MAPPED || st == PCPMAP_STATE_REFRESHING;
			if (held && r->info.kind == PCPMAP_KIND_PEER && !a->daemon)
				(*peers)++; /* PCP cannot delete a PEER mapping (RFC 6887 12) */
			else if (st == PCPMAP_STATE_MAPPED || st == PCPMAP_STATE_REFRESHING)
				(*deleted)++;
			else
				(*dropped)++;
		}
		r->handle = NULL;
	}
}

int pcpmap_cli_top_v1(int argc, char **argv)
{
	struct app a;

	memset(&a, 0, sizeof(a));
	int r = parse(argc, argv, &a);
	if (r)
		return r;
#ifndef PCPMAP_CLI_DAEMON
	if (a.daemon) {
		fprintf(stderr, "pcpmap top: this pcpmap was built without pcpmapd support\n");
		return 3;
	}
#endif
	if (!terminal_ok())
		return 2;
	uint64_t now = pcpmap_now_usec();
	top_model_init(&a.m, now);
	if (make_client(&a) < 0) {
		top_model_free(&a.m);
		return a.daemon ? 3 : 1;
	}
	top_model_log(&a.m, now, "%s; Tab switches pane, p on a connection makes its PEER mapping, ? help",
		      a.daemon ? "mappings through pcpmapd" : "own client");
	read_conns(&a, now);
#ifdef PCPMAP_CLI_DAEMON
	if (a.daemon)
		list_daemon(&a, now);
#endif
	int sfd = open_signalfd();
	if (!newterm(NULL, stdout, stdin)) {
		fprintf(stderr, "pcpmap top: cannot initialise the terminal (TERM=%s)\n", getenv("TERM"));
		pcpmap_client_free(a.c);
		top_model_free(&a.m);
		return 2;
	}
	set_escdelay(25);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);

	while (!a.quit) {
		now = pcpmap_now_usec();
		if (now >= a.next_conns)
			read_conns(&a, now);
#ifdef PCPMAP_CLI_DAEMON
		if (a.daemon && now >= a.next_list)
			list_daemon(&a, now);
#endif
		for (size_t i = 0; i < a.m.n_maps; i++) {
			struct pcpmap_mapping_info info;
			if (a.m.maps[i].handle && pcpmap_mapping_get_info(a.m.maps[i].handle, &info) == 0)
				top_model_poll(&a.m, now, a.m.maps[i].key, &info);
		}
		/* Every wakeup redraws (ncurses sends only what changed); one comes just after the next
		 * countdown boundary, so countdowns move by exactly one a second. */
		draw(&a, now);
		int t = (int)((top_model_next_tick(&a.m, now) - now) / 1000u) + 2;
		int ct = pcpmap_client_get_timeout(a.c);
		if (ct >= 0 && ct < t)
			t = ct;
		struct pollfd pfd[3] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = pcpmap_client_get_fd(a.c), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		int n = poll(pfd, sfd >= 0 ? 3 : 2, t);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (pfd[0].revents & (POLLHUP | POLLERR)))
			break; /* the terminal went away */
		if (sfd >= 0 && n > 0 && (pfd[2].revents & POLLIN))
			break; /* Ctrl-C, SIGTERM, SIGHUP: quit as 'q' does */
		pcpmap_client_process(a.c);
		/* Keys, and KEY_RESIZE after SIGWINCH (which interrupted poll). */
		for (int ch; !a.quit && (ch = getch()) != ERR;)
			key(&a, ch, pcpmap_now_usec());
	}
	endwin();
	delscreen(set_term(NULL));
	size_t deleted, dropped, kept, peers;
	release_all(&a, &deleted, &dropped, &kept, &peers);
	int fr = pcpmap_client_flush(a.c, 2000);
	if (deleted)
		printf("pcpmap top: %zu mapping%s made in the view %s\n", deleted, deleted == 1 ? "" : "s",
		       fr == 0 ? (a.daemon ? "deleted by pcpmapd" : "deleted on the gateway")
			       : "asked to be deleted; not every delete was confirmed within 2 s");
	if (dropped)
		printf("pcpmap top: %zu request%s made in the view never granted, dropped\n", dropped,
		       dropped == 1 ? "" : "s");
	if (peers)
		printf("pcpmap top: %zu PEER mapping%s released: PCP cannot delete them, the gateway drops "
		       "them at "
		       "the end of their lifetime\n",
		       peers, peers == 1 ? "" : "s");
	if (kept)
		printf("pcpmap top: %zu persistent mapping%s left with pcpmapd\n", kept,
		       kept == 1 ? "" : "s");
	pcpmap_client_free(a.c);
#ifdef PCPMAP_CLI_DAEMON
	pmd_ctl_close(a.ctl);
#endif
	top_model_free(&a.m);
	if (sfd >= 0)
		close(sfd);
	return 0;
}
