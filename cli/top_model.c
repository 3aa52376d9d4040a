// SPDX-License-Identifier: BSD-2-Clause
/* `pcpmap top`: the pure view model (see top_model.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include "top_model.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *tr_name(uint8_t p)
{
	return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : p == 0 ? "all" : "?";
}

void top_fit(char *s, size_t width)
{
	size_t n = strlen(s);

	if (n > width) {
		s[width] = '\0';
		if (width)
			s[width - 1] = '>';
		return;
	}
	memset(s + n, ' ', width - n);
	s[width] = '\0';
}

/* Copies text into buf as exactly width columns: padded, or cut with '>' (top_fit). */
static void fit_into(char *buf, size_t width, const char *text)
{
	size_t n = strlen(text);

	if (n > width) {
		memcpy(buf, text, width);
		buf[width] = '\0';
		if (width)
			buf[width - 1] = '>';
		return;
	}
	memcpy(buf, text, n + 1);
	top_fit(buf, width);
}

void top_fmt_endpoint(const char *addr, uint16_t port, char *buf, size_t len)
{
	if (!addr[0])
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, (unsigned)port);
}

void top_fmt_countdown(const struct pcpmap_mapping_info *i, uint64_t now, char *buf, size_t len)
{
	bool held = i->state == PCPMAP_STATE_MAPPED || i->state == PCPMAP_STATE_REFRESHING;

	if (held && i->refresh_usec > now)
		snprintf(buf, len, "in %" PRIu64 " s", (i->refresh_usec - now + 999999) / 1000000u);
	else if (held && i->refresh_usec)
		snprintf(buf, len, "now");
	else if (i->state == PCPMAP_STATE_ERROR_WAIT_RESEND && i->retry_usec > now)
		snprintf(buf, len, "retry %" PRIu64 " s", (i->retry_usec - now + 999999) / 1000000u);
	else
		snprintf(buf, len, "-");
}

/* Time from now until the ceil-to-seconds countdown to t drops by one: in (0, 1 s]. */
static uint64_t until_tick(uint64_t t, uint64_t now)
{
	uint64_t d = t - now;
	uint64_t c = (d + 999999) / 1000000u;

	return d - (c - 1) * 1000000u;
}

uint64_t top_model_next_tick(const struct top_model *m, uint64_t now)
{
	uint64_t best = 1000000u;

	for (size_t i = 0; i < m->n_maps; i++) {
		const struct pcpmap_mapping_info *x = &m->maps[i].info;
		uint64_t t = x->state == PCPMAP_STATE_ERROR_WAIT_RESEND ? x->retry_usec : x->refresh_usec;
		if (t > now) {
			uint64_t u = until_tick(t, now);
			best = u < best ? u : best;
		}
	}
	return now + best;
}

void top_model_init(struct top_model *m, uint64_t now)
{
	memset(m, 0, sizeof(*m));
	m->t0_usec = now;
	m->next_key = 1;
}

void top_model_free(struct top_model *m)
{
	free(m->conns);
	free(m->maps);
	free(m->vis[0]);
	free(m->vis[1]);
	memset(m, 0, sizeof(*m));
}

/* ---- rows ---- */

static void conn_identity(const struct cli_conn *c, char *buf, size_t len)
{
	snprintf(buf, len, "%u|%s|%u|%s|%u", c->proto, c->local, c->lport, c->remote, c->rport);
}

void top_model_set_conns(struct top_model *m, struct cli_conn *conns, size_t n)
{
	free(m->conns);
	m->conns = conns;
	m->n_conns = conns ? n : 0;
	top_model_refilter(m);
}

uint32_t top_model_add_map(struct top_model *m, void *handle, const struct pcpmap_mapping_info *info,
			   const char *options, bool persistent)
{
	if (m->n_maps == m->cap_maps) {
		size_t cap = m->cap_maps ? 2 * m->cap_maps : 16;
		struct top_map_row *p = realloc(m->maps, cap * sizeof(*p));
		if (!p)
			return 0;
		m->maps = p;
		m->cap_maps = cap;
	}
	struct top_map_row *r = &m->maps[m->n_maps++];
	memset(r, 0, sizeof(*r));
	r->key = m->next_key++;
	r->handle = handle;
	r->persistent = persistent;
	if (info)
		r->info = *info;
	snprintf(r->options, sizeof(r->options), "%s", options ? options : "");
	top_model_refilter(m);
	return r->key;
}

struct top_map_row *top_model_map_by_key(struct top_model *m, uint32_t key)
{
	for (size_t i = 0; i < m->n_maps; i++)
		if (m->maps[i].key == key)
			return &m->maps[i];
	return NULL;
}

struct top_map_row *top_model_map_by_handle(struct top_model *m, const void *handle)
{
	if (!handle)
		return NULL;
	for (size_t i = 0; i < m->n_maps; i++)
		if (m->maps[i].handle == handle)
			return &m->maps[i];
	return NULL;
}

void top_model_remove_map(struct top_model *m, uint32_t key)
{
	for (size_t i = 0; i < m->n_maps; i++) {
		if (m->maps[i].key != key)
			continue;
		memmove(&m->maps[i], &m->maps[i + 1], (m->n_maps - i - 1) * sizeof(m->maps[0]));
		m->n_maps--;
		break;
	}
	top_model_refilter(m);
}

void top_model_update_info(struct top_model *m, uint32_t key, const struct pcpmap_mapping_info *info)
{
	struct top_map_row *r = top_model_map_by_key(m, key);

	if (r && info)
		r->info = *info;
}

/* ---- log ---- */

static void log_v(struct top_model *m, uint64_t now, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void log_v(struct top_model *m, uint64_t now, const char *fmt, va_list ap)
{
	struct top_log_entry *e = &m->log[m->log_head];

	e->t_usec = now;
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	/* Control characters would move the terminal's cursor. */
	for (char *p = e->text; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	snprintf(m->status, sizeof(m->status), "%s", e->text);
	m->log_head = (m->log_head + 1) % TOP_LOG_CAP;
	if (m->log_n < TOP_LOG_CAP)
		m->log_n++;
	/* A reader scrolled back keeps looking at the same entries. */
	if (m->log_back && m->log_back + 1 < m->log_n)
		m->log_back++;
}

void top_model_log(struct top_model *m, uint64_t now, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(m, now, fmt, ap);
	va_end(ap);
}

const struct top_log_entry *top_model_log_at(const struct top_model *m, size_t k)
{
	if (k >= m->log_n)
		return NULL;
	return &m->log[(m->log_head + TOP_LOG_CAP - m->log_n + k) % TOP_LOG_CAP];
}

void top_model_log_scroll(struct top_model *m, long delta)
{
	long back = (long)m->log_back + delta;
	long max = m->log_n ? (long)m->log_n - 1 : 0;

	m->log_back = (size_t)(back < 0 ? 0 : back > max ? max : back);
}

/* ---- events ---- */

static void map_label(const struct pcpmap_mapping_info *i, char *buf, size_t len)
{
	char peer[64];

	if (i->kind == PCPMAP_KIND_PEER) {
		top_fmt_endpoint(i->peer_addr, i->peer_port, peer, sizeof(peer));
		snprintf(buf, len, "%s %u->%s", tr_name(i->ip_proto), i->internal_port, peer);
	} else {
		snprintf(buf, len, "%s %u", tr_name(i->ip_proto), i->internal_port);
	}
}

static void error_text(const struct pcpmap_mapping_info *i, uint64_t now, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "%s", pcpmap_strerror(i->error ? i->error : -EPROTO));

	if (n < len && i->result_code && i->proto != PCPMAP_PROTO_NONE) {
		const char *adv = pcpmap_result_advice(i->proto, i->result_code);
		n += (size_t)snprintf(buf + n, len - n, " [%s %s]%s%s", pcpmap_proto_name(i->proto),
				      pcpmap_result_name(i->proto, i->result_code), *adv ? ": " : "", adv);
	}
	if (n < len && i->detail[0])
		n += (size_t)snprintf(buf + n, len - n, " (%s)", i->detail);
	if (n < len && i->state == PCPMAP_STATE_FAILED)
		snprintf(buf + n, len - n, "; final");
	else if (n < len && i->retry_usec > now)
		snprintf(buf + n, len - n, "; retrying in %" PRIu64 " s",
			 (i->retry_usec - now + 999999) / 1000000u);
}

struct top_map_row *top_model_event(struct top_model *m, uint64_t now, const void *handle,
				    enum pcpmap_event ev, const struct pcpmap_mapping_info *info)
{
	struct top_map_row *r = top_model_map_by_handle(m, handle);
	char label[96], ext[64], old[64], err[TOP_TEXT_MAX];

	if (!r || !info)
		return r;
	enum pcpmap_proto was = r->info.proto;
	top_fmt_endpoint(r->info.external_addr, r->info.external_port, old, sizeof(old));
	r->info = *info;
	map_label(info, label, sizeof(label));
	top_fmt_endpoint(info->external_addr, info->external_port, ext, sizeof(ext));
	if (was != PCPMAP_PROTO_NONE && info->proto != PCPMAP_PROTO_NONE && was != info->proto)
		top_model_log(m, now, "fallback: %s moved from %s to %s", label, pcpmap_proto_name(was),
			      pcpmap_proto_name(info->proto));
	switch (ev) {
	case PCPMAP_EVENT_MAPPED:
		top_model_log(m, now, "%s %s -> %s via %s, lifetime %" PRIu32 " s",
			      r->lost ? "re-created after LOST:" : "MAPPED", label, ext,
			      pcpmap_proto_name(info->proto), info->lifetime);
		r->lost = false;
		break;
	case PCPMAP_EVENT_CHANGED:
		top_model_log(m, now, "CHANGED %s: external %s (was %s)%s", label, ext, old,
			      r->lost ? ", re-created after LOST" : "");
		r->lost = false;
		break;
	case PCPMAP_EVENT_LOST:
		top_model_log(m, now, "LOST %s (was %s): the gateway no longer holds it; re-creating", label,
			      old);
		r->lost = true;
		break;
	case PCPMAP_EVENT_FAILED:
		error_text(info, now, err, sizeof(err));
		top_model_log(m, now, "FAILED %s: %s", label, err);
		break;
	case PCPMAP_EVENT_DELETED:
		top_model_log(m, now, "DELETED %s", label);
		break;
	}
	top_model_refilter(m);
	return r;
}

void top_model_poll(struct top_model *m, uint64_t now, uint32_t key, const struct pcpmap_mapping_info *info)
{
	struct top_map_row *r = top_model_map_by_key(m, key);
	char label[96], ext[64];

	if (!r || !info)
		return;
	/* Held, or being confirmed after an announcement or an epoch reset (WAIT_RESP with its grant). */
	bool was_held =
	    r->info.state == PCPMAP_STATE_MAPPED || r->info.state == PCPMAP_STATE_REFRESHING ||
	    (r->info.state == PCPMAP_STATE_WAIT_RESP && r->info.external_port && r->info.expires_usec);
	bool same = info->proto == r->info.proto && !strcmp(info->server, r->info.server);
	if (info->state == PCPMAP_STATE_MAPPED && was_held && same) {
		map_label(info, label, sizeof(label));
		top_fmt_endpoint(info->external_addr, info->external_port, ext, sizeof(ext));
		/* An epoch that went back is that server's restart (RFC 6887 8.5). */
		if (info->epoch < r->info.epoch)
			top_model_log(m, now,
				      "gateway %s restarted (epoch %" PRIu32 " s -> %" PRIu32
				      " s): %s renewed, %s again",
				      info->server, r->info.epoch, info->epoch, label, ext);
		/* A lifetime extended before the renewal was due: the gateway announced itself (a restart
		 * within the epoch's slack, RFC 6887 14.1.1) and the mapping was confirmed. */
		else if (info->expires_usec > r->info.expires_usec + 1000000u && r->info.expires_usec &&
			 (r->info.refresh_usec > now + 1000000u || r->info.state == PCPMAP_STATE_WAIT_RESP))
			top_model_log(
			    m, now,
			    "gateway %s announced itself: %s re-verified ahead of its renewal, %s again",
			    info->server, label, ext);
	}
	r->info = *info;
}

static bool nonce_zero(const uint8_t n[12])
{
	for (int i = 0; i < 12; i++)
		if (n[i])
			return false;
	return true;
}

void top_model_sync_daemon(struct top_model *m, uint64_t now, const struct top_daemon_row *rows, size_t n)
{
	char label[96];

	for (size_t i = 0; i < m->n_maps; i++)
		m->maps[i].seen = false;
	for (size_t k = 0; k < n; k++) {
		const struct top_daemon_row *d = &rows[k];
		struct top_map_row *r = NULL;
		for (size_t i = 0; i < m->n_maps && !r; i++) {
			struct top_map_row *x = &m->maps[i];
			if (x->handle
				? !nonce_zero(d->info.nonce) && !memcmp(x->info.nonce, d->info.nonce, 12)
				: x->daemon_id == d->id)
				r = x;
		}
		if (r && r->handle) {
			/* Made in this view: the library's events keep it current. */
			r->daemon_id = d->id;
			r->has_owner = true;
			r->owner_uid = d->owner_uid;
			r->seen = true;
			continue;
		}
		if (!r) {
			char opts[96];
			snprintf(opts, sizeof(opts), "%s%s%s", d->persistent ? "persistent" : "",
				 d->persistent && d->description && d->description[0] ? " " : "",
				 d->description ? d->description : "");
			uint32_t key = top_model_add_map(m, NULL, &d->info, opts, d->persistent);
			r = top_model_map_by_key(m, key);
			if (!r)
				continue;
			r->daemon_id = d->id;
		} else if (r->info.state != d->info.state) {
			map_label(&d->info, label, sizeof(label));
			top_model_log(m, now, "pcpmapd #%" PRIu32 " (uid %" PRIu32 ") %s: %s -> %s", d->id,
				      d->owner_uid, label, pcpmap_state_name(r->info.state),
				      pcpmap_state_name(d->info.state));
		}
		r->info = d->info;
		r->has_owner = true;
		r->owner_uid = d->owner_uid;
		r->persistent = d->persistent;
		r->seen = true;
	}
	for (size_t i = 0; i < m->n_maps;) {
		struct top_map_row *x = &m->maps[i];
		if (!x->handle && !x->seen) {
			map_label(&x->info, label, sizeof(label));
			top_model_log(m, now, "pcpmapd #%" PRIu32 " %s left the daemon's table", x->daemon_id,
				      label);
			top_model_remove_map(m, x->key);
			continue;
		}
		i++;
	}
	top_model_refilter(m);
}

/* ---- filter and selection ---- */

static void conn_filter_text(const struct cli_conn *c, char cover, char *buf, size_t len)
{
	char l[64], r[64];

	top_fmt_endpoint(c->local, c->lport, l, sizeof(l));
	top_fmt_endpoint(c->remote, c->rport, r, sizeof(r));
	snprintf(buf, len, "%s %s %s %s uid %" PRIu32 " %s", tr_name(c->proto), l, r, c->state, c->uid,
		 cover == 'P' || cover == 'p'   ? "peer"
		 : cover == 'M' || cover == 'm' ? "map"
						: "");
}

static void map_filter_text(const struct top_map_row *r, char *buf, size_t len)
{
	const struct pcpmap_mapping_info *i = &r->info;
	char in[64], ex[64], peer[64];

	top_fmt_endpoint(i->internal_addr, i->internal_port, in, sizeof(in));
	top_fmt_endpoint(i->external_addr, i->external_port, ex, sizeof(ex));
	top_fmt_endpoint(i->peer_addr, i->peer_port, peer, sizeof(peer));
	snprintf(
	    buf, len, "%s %s %s %s %s %s %s %s %s", pcpmap_state_name(i->state), pcpmap_proto_name(i->proto),
	    tr_name(i->ip_proto), i->kind == PCPMAP_KIND_PEER ? "peer" : "map", in, ex,
	    i->kind == PCPMAP_KIND_PEER ? peer : "", r->options, i->error ? pcpmap_strerror(i->error) : "");
}

static int grow_vis(struct top_model *m, int pane, size_t n)
{
	if (n <= m->cap_vis[pane])
		return 0;
	size_t *p = realloc(m->vis[pane], n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	m->vis[pane] = p;
	m->cap_vis[pane] = n;
	return 0;
}

static void remember_sel(struct top_model *m)
{
	const struct cli_conn *c = top_model_sel_conn(m);
	const struct top_map_row *r = top_model_sel_map(m);

	if (c)
		conn_identity(c, m->sel_conn, sizeof(m->sel_conn));
	if (r)
		m->sel_map_key = r->key;
}

void top_model_refilter(struct top_model *m)
{
	char text[512], id[128];
	bool want = m->filter[0] != '\0';

	/* Connections. */
	m->n_vis[0] = 0;
	if (grow_vis(m, 0, m->n_conns) == 0) {
		for (size_t i = 0; i < m->n_conns; i++) {
			if (want) {
				conn_filter_text(&m->conns[i], top_model_coverage(m, &m->conns[i]), text,
						 sizeof(text));
				if (!strcasestr(text, m->filter))
					continue;
			}
			m->vis[0][m->n_vis[0]++] = i;
		}
	}
	/* Mappings. */
	m->n_vis[1] = 0;
	if (grow_vis(m, 1, m->n_maps) == 0) {
		for (size_t i = 0; i < m->n_maps; i++) {
			if (want) {
				map_filter_text(&m->maps[i], text, sizeof(text));
				if (!strcasestr(text, m->filter))
					continue;
			}
			m->vis[1][m->n_vis[1]++] = i;
		}
	}
	/* The selection follows its row; a row that went away leaves it at the same position, clamped. */
	for (size_t k = 0; k < m->n_vis[0] && m->sel_conn[0]; k++) {
		conn_identity(&m->conns[m->vis[0][k]], id, sizeof(id));
		if (!strcmp(id, m->sel_conn)) {
			m->sel[0] = k;
			break;
		}
	}
	for (size_t k = 0; k < m->n_vis[1] && m->sel_map_key; k++) {
		if (m->maps[m->vis[1][k]].key == m->sel_map_key) {
			m->sel[1] = k;
			break;
		}
	}
	for (int p = 0; p < 2; p++)
		if (m->sel[p] >= m->n_vis[p])
			m->sel[p] = m->n_vis[p] ? m->n_vis[p] - 1 : 0;
	remember_sel(m);
}

void top_model_set_filter(struct top_model *m, const char *filter)
{
	snprintf(m->filter, sizeof(m->filter), "%s", filter ? filter : "");
	top_model_refilter(m);
}

void top_model_move(struct top_model *m, long delta)
{
	if (m->focus == TOP_PANE_LOG) {
		top_model_log_scroll(m, -delta);
		return;
	}
	int p = m->focus;
	if (!m->n_vis[p])
		return;
	long s = (long)m->sel[p] + delta;
	long max = (long)m->n_vis[p] - 1;
	m->sel[p] = (size_t)(s < 0 ? 0 : s > max ? max : s);
	remember_sel(m);
}

void top_model_next_pane(struct top_model *m)
{
	m->focus = m->focus == TOP_PANE_CONNS  ? TOP_PANE_MAPS
		   : m->focus == TOP_PANE_MAPS ? TOP_PANE_LOG
					       : TOP_PANE_CONNS;
}

const struct cli_conn *top_model_sel_conn(const struct top_model *m)
{
	return m->n_vis[0] ? &m->conns[m->vis[0][m->sel[0]]] : NULL;
}

struct top_map_row *top_model_sel_map(struct top_model *m)
{
	return m->n_vis[1] ? &m->maps[m->vis[1][m->sel[1]]] : NULL;
}

size_t top_model_scroll_for(struct top_model *m, enum top_pane pane, size_t rows)
{
	if (pane == TOP_PANE_LOG || !rows)
		return 0;
	size_t *s = &m->scroll[pane];
	size_t sel = m->sel[pane];
	if (sel < *s)
		*s = sel;
	else if (sel >= *s + rows)
		*s = sel - rows + 1;
	/* No empty lines at the bottom while rows are hidden above. */
	if (m->n_vis[pane] > rows && *s > m->n_vis[pane] - rows)
		*s = m->n_vis[pane] - rows;
	if (m->n_vis[pane] <= rows)
		*s = 0;
	return *s;
}

char top_model_coverage(const struct top_model *m, const struct cli_conn *c)
{
	char best = ' ';

	for (size_t i = 0; i < m->n_maps; i++) {
		const struct pcpmap_mapping_info *x = &m->maps[i].info;
		if (x->state == PCPMAP_STATE_DELETED || x->state == PCPMAP_STATE_FAILED)
			continue;
		bool held = x->state == PCPMAP_STATE_MAPPED || x->state == PCPMAP_STATE_REFRESHING;
		if (x->kind == PCPMAP_KIND_PEER && x->ip_proto == c->proto && x->internal_port == c->lport &&
		    x->peer_port == c->rport && !strcmp(x->peer_addr, c->remote))
			return held ? 'P' : 'p';
		if (x->kind == PCPMAP_KIND_MAP && (x->ip_proto == c->proto || x->ip_proto == 0) &&
		    (x->internal_port == c->lport || x->internal_port == 0) && best != 'M')
			best = held ? 'M' : 'm';
	}
	return best;
}

/* ---- lines ---- */

/* Endpoint columns as wide as the longest endpoint listed (at least the heading). */
static void conn_cols(const struct top_model *m, int *wl, int *wr)
{
	char l[64], r[64];

	*wl = 5;
	*wr = 6;
	for (size_t k = 0; k < m->n_conns; k++) {
		top_fmt_endpoint(m->conns[k].local, m->conns[k].lport, l, sizeof(l));
		top_fmt_endpoint(m->conns[k].remote, m->conns[k].rport, r, sizeof(r));
		*wl = (int)strlen(l) > *wl ? (int)strlen(l) : *wl;
		*wr = (int)strlen(r) > *wr ? (int)strlen(r) : *wr;
	}
}

void top_fmt_conn_header(const struct top_model *m, char *buf, size_t width)
{
	char tmp[256];
	int wl, wr;

	conn_cols(m, &wl, &wr);
	snprintf(tmp, sizeof(tmp), "  %-5s %-3s %-*s  %-*s  %-11s %s", "MAP", "TR", wl, "LOCAL", wr, "REMOTE",
		 "STATE", "UID");
	fit_into(buf, width, tmp);
}

void top_fmt_conn(const struct top_model *m, size_t k, char *buf, size_t width)
{
	const struct cli_conn *c = &m->conns[m->vis[0][k]];
	char l[64], r[64];
	char cov = top_model_coverage(m, c);
	char tmp[512];
	int wl, wr;

	conn_cols(m, &wl, &wr);
	top_fmt_endpoint(c->local, c->lport, l, sizeof(l));
	top_fmt_endpoint(c->remote, c->rport, r, sizeof(r));
	snprintf(tmp, sizeof(tmp), "  %-5s %-3s %-*s  %-*s  %-11s %" PRIu32,
		 cov == 'P'   ? "peer"
		 : cov == 'p' ? "peer?"
		 : cov == 'M' ? "map"
		 : cov == 'm' ? "map?"
			      : "-",
		 tr_name(c->proto), wl, l, wr, r, c->state, c->uid);
	fit_into(buf, width, tmp);
}

static bool any_owner(const struct top_model *m)
{
	for (size_t i = 0; i < m->n_maps; i++)
		if (m->maps[i].has_owner)
			return true;
	return false;
}

/* Column widths of the mapping pane: as wide as the longest state and endpoints of any row, so rows stay
 * aligned and narrow terminals keep the countdown in view. */
struct map_cols {
	int state, in, ex;
};

static void endpoints_of(const struct pcpmap_mapping_info *i, char *in, char *ex, size_t len)
{
	top_fmt_endpoint(i->internal_addr, i->internal_port, in, len);
	if (!i->internal_addr[0])
		snprintf(in, len, "*:%u", i->internal_port);
	top_fmt_endpoint(i->external_addr, i->external_port, ex, len);
}

static struct map_cols map_cols(const struct top_model *m)
{
	struct map_cols c = { 5, 8, 8 }; /* "STATE", "INTERNAL", "EXTERNAL" */
	char in[64], ex[64];

	for (size_t k = 0; k < m->n_maps; k++) {
		const struct pcpmap_mapping_info *i = &m->maps[k].info;
		int s = (int)strlen(pcpmap_state_name(i->state));
		endpoints_of(i, in, ex, sizeof(in));
		c.state = s > c.state ? s : c.state;
		c.in = (int)strlen(in) > c.in ? (int)strlen(in) : c.in;
		c.ex = (int)strlen(ex) > c.ex ? (int)strlen(ex) : c.ex;
	}
	return c;
}

void top_fmt_map_header(const struct top_model *m, char *buf, size_t width)
{
	char tmp[256];
	struct map_cols c = map_cols(m);

	snprintf(tmp, sizeof(tmp), "  %s%-*s %-7s %-8s %-*s %-*s %-10s %-8s %-6s %s",
		 any_owner(m) ? "OWNER " : "", c.state, "STATE", "VIA", "KIND", c.in, "INTERNAL", c.ex,
		 "EXTERNAL", "REFRESH", "LIFETIME", "PAIR", "OPTIONS / LAST ERROR");
	fit_into(buf, width, tmp);
}

void top_fmt_map(const struct top_model *m, size_t k, uint64_t now, char *buf, size_t width)
{
	const struct top_map_row *r = &m->maps[m->vis[1][k]];
	const struct pcpmap_mapping_info *i = &r->info;
	char owner[16] = "", kind[16], in[64], ex[64], pair[16], lt[16], cd[24], rest[256], peer[64],
	     tmp[1024];

	if (any_owner(m)) {
		if (r->has_owner)
			snprintf(owner, sizeof(owner), "%-5" PRIu32 " ", r->owner_uid);
		else
			snprintf(owner, sizeof(owner), "%-5s ", "-");
	}
	snprintf(kind, sizeof(kind), "%s %s", tr_name(i->ip_proto),
		 i->kind == PCPMAP_KIND_PEER ? "peer" : "map");
	struct map_cols c = map_cols(m);
	endpoints_of(i, in, ex, sizeof(in));
	if (i->external_port2)
		snprintf(pair, sizeof(pair), "+%u", i->external_port2);
	else
		snprintf(pair, sizeof(pair), "-");
	if (i->lifetime)
		snprintf(lt, sizeof(lt), "%" PRIu32 " s", i->lifetime);
	else
		snprintf(lt, sizeof(lt), "-");
	top_fmt_countdown(i, now, cd, sizeof(cd));
	size_t n = 0;
	rest[0] = '\0';
	if (i->kind == PCPMAP_KIND_PEER) {
		top_fmt_endpoint(i->peer_addr, i->peer_port, peer, sizeof(peer));
		n += (size_t)snprintf(rest + n, sizeof(rest) - n, "peer %s ", peer);
	}
	if (n < sizeof(rest) && r->options[0])
		n += (size_t)snprintf(rest + n, sizeof(rest) - n, "%s ", r->options);
	if (n < sizeof(rest) && i->error)
		snprintf(rest + n, sizeof(rest) - n, "! %s", pcpmap_strerror(i->error));
	snprintf(tmp, sizeof(tmp), "  %s%-*s %-7s %-8s %-*s %-*s %-10s %-8s %-6s %s", owner, c.state,
		 pcpmap_state_name(i->state), pcpmap_proto_name(i->proto), kind, c.in, in, c.ex, ex, cd, lt,
		 pair, rest);
	fit_into(buf, width, tmp);
}

void top_fmt_map_detail(const struct top_model *m, uint64_t now, char *buf, size_t width)
{
	const struct top_map_row *r = m->n_vis[1] ? &m->maps[m->vis[1][m->sel[1]]] : NULL;
	char err[TOP_TEXT_MAX], nonce[25], tmp[2 * TOP_TEXT_MAX];

	if (!r) {
		snprintf(tmp, sizeof(tmp),
			 "  no mapping: 'm' makes one, 'p' on a connection makes its PEER mapping");
	} else if (r->info.error) {
		error_text(&r->info, now, err, sizeof(err));
		snprintf(tmp, sizeof(tmp), "  last error: %s", err);
	} else {
		for (int i = 0; i < 12; i++)
			snprintf(nonce + 2 * i, 3, "%02x", r->info.nonce[i]);
		snprintf(tmp, sizeof(tmp), "  server %s, epoch %" PRIu32 " s, nonce %s%s%s%s%s",
			 r->info.server[0] ? r->info.server : "-", r->info.epoch,
			 nonce_zero(r->info.nonce) ? "-" : nonce, r->handle ? ", made here" : "",
			 r->persistent ? ", persistent" : "", r->info.detail[0] ? ", " : "", r->info.detail);
	}
	fit_into(buf, width, tmp);
}

void top_fmt_log(const struct top_model *m, size_t k, char *buf, size_t width)
{
	const struct top_log_entry *e = top_model_log_at(m, k);
	char tmp[TOP_TEXT_MAX + 32];

	if (!e) {
		tmp[0] = '\0';
	} else {
		uint64_t d = e->t_usec > m->t0_usec ? e->t_usec - m->t0_usec : 0;
		snprintf(tmp, sizeof(tmp), "  +%" PRIu64 ".%" PRIu64 "s  %s", d / 1000000u, d / 100000u % 10,
			 e->text);
	}
	fit_into(buf, width, tmp);
}

/* ---- forms ---- */

static const char *const peer_protos[] = { "tcp", "udp", NULL };
static const char *const map_protos[] = { "tcp", "udp", "all", NULL };

static struct top_field *add_field(struct top_form *f, enum top_field_id id, enum top_field_type type,
				   const char *label)
{
	struct top_field *x = &f->f[f->n++];

	memset(x, 0, sizeof(*x));
	x->id = id;
	x->type = type;
	x->label = label;
	return x;
}

void top_form_peer(struct top_form *f, const struct cli_conn *c)
{
	memset(f, 0, sizeof(*f));
	f->kind = PCPMAP_KIND_PEER;
	struct top_field *x = add_field(f, TOP_F_PROTO, TOP_FIELD_CHOICE, "protocol");
	x->choices = peer_protos;
	x->choice = c && c->proto == IPPROTO_UDP ? 1 : 0;
	x = add_field(f, TOP_F_PORT, TOP_FIELD_TEXT, "internal port");
	if (c)
		snprintf(x->text, sizeof(x->text), "%u", c->lport);
	x = add_field(f, TOP_F_PEER_ADDR, TOP_FIELD_TEXT, "remote peer address");
	if (c)
		snprintf(x->text, sizeof(x->text), "%s", c->remote);
	x = add_field(f, TOP_F_PEER_PORT, TOP_FIELD_TEXT, "remote peer port");
	if (c)
		snprintf(x->text, sizeof(x->text), "%u", c->rport);
	x = add_field(f, TOP_F_LIFETIME, TOP_FIELD_TEXT, "lifetime (s)");
	snprintf(x->text, sizeof(x->text), "%u", PCPMAP_DEFAULT_LIFETIME);
	add_field(f, TOP_F_EXT_PORT, TOP_FIELD_TEXT, "suggested external port");
}

void top_form_map(struct top_form *f, bool daemon)
{
	memset(f, 0, sizeof(*f));
	f->kind = PCPMAP_KIND_MAP;
	struct top_field *x = add_field(f, TOP_F_PROTO, TOP_FIELD_CHOICE, "protocol");
	x->choices = map_protos;
	add_field(f, TOP_F_PORT, TOP_FIELD_TEXT, "internal port");
	x = add_field(f, TOP_F_LIFETIME, TOP_FIELD_TEXT, "lifetime (s)");
	snprintf(x->text, sizeof(x->text), "%u", PCPMAP_DEFAULT_LIFETIME);
	add_field(f, TOP_F_EXT_PORT, TOP_FIELD_TEXT, "suggested external port");
	add_field(f, TOP_F_PREFER_FAILURE, TOP_FIELD_BOOL, "PREFER_FAILURE");
	add_field(f, TOP_F_FILTER, TOP_FIELD_TEXT, "FILTER addr[/prefix][,port]");
	add_field(f, TOP_F_PAIR, TOP_FIELD_BOOL, "port pair (RTP/RTCP)");
	add_field(f, TOP_F_IPV6, TOP_FIELD_BOOL, "IPv6 pinhole");
	if (daemon)
		add_field(f, TOP_F_PERSISTENT, TOP_FIELD_BOOL, "persistent (kept by pcpmapd)");
}

void top_form_next(struct top_form *f, long delta)
{
	if (!f->n)
		return;
	long c = ((long)f->cur + delta) % (long)f->n;
	f->cur = (size_t)(c < 0 ? c + (long)f->n : c);
}

void top_form_char(struct top_form *f, int ch)
{
	struct top_field *x = f->n ? &f->f[f->cur] : NULL;

	if (!x)
		return;
	if (x->type == TOP_FIELD_BOOL) {
		if (ch == ' ')
			x->on = !x->on;
		return;
	}
	if (x->type == TOP_FIELD_CHOICE) {
		if (ch == ' ')
			x->choice = x->choices[x->choice + 1] ? x->choice + 1 : 0;
		return;
	}
	size_t n = strlen(x->text);
	if (ch > 0x20 && ch < 0x7f && n + 1 < sizeof(x->text)) {
		x->text[n] = (char)ch;
		x->text[n + 1] = '\0';
	}
}

void top_form_backspace(struct top_form *f)
{
	if (!f->n || f->f[f->cur].type != TOP_FIELD_TEXT)
		return;
	size_t n = strlen(f->f[f->cur].text);
	if (n)
		f->f[f->cur].text[n - 1] = '\0';
}

static const struct top_field *field(const struct top_form *f, enum top_field_id id)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->f[i].id == id)
			return &f->f[i];
	return NULL;
}

static int form_u32(struct top_form *f, enum top_field_id id, uint32_t min, uint32_t max, uint32_t *ret)
{
	const struct top_field *x = field(f, id);
	char *end;

	*ret = 0;
	if (!x || !x->text[0]) {
		if (min == 0)
			return 0;
		snprintf(f->error, sizeof(f->error), "%s: needs a number (%" PRIu32 "-%" PRIu32 ")",
			 x ? x->label : "?", min, max);
		return -EINVAL;
	}
	errno = 0;
	unsigned long long v = strtoull(x->text, &end, 10);
	if (errno || *end || !isdigit((unsigned char)x->text[0]) || v < min || v > max) {
		snprintf(f->error, sizeof(f->error), "%s: '%s' is not a number from %" PRIu32 " to %" PRIu32,
			 x->label, x->text, min, max);
		return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

static bool is_addr(const char *s, int *family)
{
	struct in6_addr a;

	if (inet_pton(AF_INET, s, &a) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &a) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

static bool flag(const struct top_form *f, enum top_field_id id)
{
	const struct top_field *x = field(f, id);
	return x && x->on;
}

static void add_opt(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf);
	snprintf(buf + n, len - n, "%s%s", n ? " " : "", s);
}

/* ADDR[/PREFIX][,PORT], as 'pcpmap map --filter' takes it. */
static int parse_filter(const char *text, struct top_request *out)
{
	char buf[64], *end;
	unsigned long v;
	int fam;

	snprintf(buf, sizeof(buf), "%s", text);
	char *comma = strrchr(buf, ',');
	out->filter.peer_port = 0;
	if (comma) {
		*comma = '\0';
		errno = 0;
		v = strtoul(comma + 1, &end, 10);
		if (errno || *end || !comma[1] || v > 65535)
			return -EINVAL;
		out->filter.peer_port = (uint16_t)v;
	}
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (!is_addr(buf, &fam))
		return -EINVAL;
	out->filter.prefix_len = fam == AF_INET6 ? 128 : 32;
	if (slash) {
		errno = 0;
		v = strtoul(slash + 1, &end, 10);
		if (errno || *end || !slash[1] || v > out->filter.prefix_len)
			return -EINVAL;
		out->filter.prefix_len = (uint8_t)v;
	}
	snprintf(out->filter_addr, sizeof(out->filter_addr), "%s", buf);
	out->filter.peer_addr = out->filter_addr;
	return 0;
}

int top_form_request(struct top_form *f, struct top_request *out)
{
	const struct top_field *proto = field(f, TOP_F_PROTO);
	uint32_t port, lt, ext, pport;
	int fam;

	memset(out, 0, sizeof(*out));
	f->error[0] = '\0';
	pcpmap_request_init(&out->req, f->kind);
	const char *pname = proto ? proto->choices[proto->choice] : "tcp";
	out->req.ip_proto = !strcmp(pname, "udp") ? IPPROTO_UDP : !strcmp(pname, "all") ? 0 : IPPROTO_TCP;
	if (form_u32(f, TOP_F_PORT, out->req.ip_proto == 0 ? 0 : 1, 65535, &port) < 0 ||
	    form_u32(f, TOP_F_LIFETIME, 0, UINT32_MAX, &lt) < 0 ||
	    form_u32(f, TOP_F_EXT_PORT, 0, 65535, &ext) < 0)
		return -EINVAL;
	out->req.internal_port = (uint16_t)port;
	out->req.lifetime = lt;
	out->req.suggested_port = (uint16_t)ext;
	out->req.external_family = flag(f, TOP_F_IPV6) ? AF_INET6 : AF_INET;
	if (f->kind == PCPMAP_KIND_PEER) {
		const struct top_field *a = field(f, TOP_F_PEER_ADDR);
		if (!a || !is_addr(a->text, &fam)) {
			snprintf(f->error, sizeof(f->error),
				 "remote peer address: '%s' is not an IPv4 or IPv6 address",
				 a ? a->text : "");
			return -EINVAL;
		}
		if (form_u32(f, TOP_F_PEER_PORT, 1, 65535, &pport) < 0)
			return -EINVAL;
		snprintf(out->peer, sizeof(out->peer), "%s", a->text);
		out->req.peer_addr = out->peer;
		out->req.peer_port = (uint16_t)pport;
		out->req.external_family = fam;
		return 0;
	}
	if (flag(f, TOP_F_PREFER_FAILURE)) {
		if (!ext) {
			snprintf(f->error, sizeof(f->error),
				 "PREFER_FAILURE needs a suggested external port (it fails rather than take "
				 "another)");
			return -EINVAL;
		}
		out->req.prefer_failure = true;
		add_opt(out->options, sizeof(out->options), "prefer-failure");
	}
	const struct top_field *flt = field(f, TOP_F_FILTER);
	if (flt && flt->text[0]) {
		if (parse_filter(flt->text, out) < 0) {
			snprintf(f->error, sizeof(f->error), "FILTER: '%s' is not ADDR[/PREFIX][,PORT]",
				 flt->text);
			return -EINVAL;
		}
		out->req.filters = &out->filter;
		out->req.n_filters = 1;
		add_opt(out->options, sizeof(out->options), "filter ");
		size_t n = strlen(out->options);
		snprintf(out->options + n, sizeof(out->options) - n, "%s", flt->text);
	}
	if (flag(f, TOP_F_PAIR)) {
		out->req.port_pair = true;
		add_opt(out->options, sizeof(out->options), "pair");
	}
	if (flag(f, TOP_F_PERSISTENT)) {
		out->req.persistent = true;
		add_opt(out->options, sizeof(out->options), "persistent");
	}
	return 0;
}
