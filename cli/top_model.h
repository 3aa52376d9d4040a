/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * `pcpmap top`: the view model. Pure (no terminal, no clock, no sockets): it holds the rows of the two panes
 * (the host's connections and the mappings), the selection, the filter, the request forms and the event log,
 * and formats each line for a given width. Every time-dependent value (countdowns, log ages) is computed from
 * a `now` the caller passes in, on the pcpmap_now_usec() clock, so tests drive it with a fake clock.
 * cli/top.c feeds it with library events and sock_diag listings and draws what it formats.
 */
#ifndef PCPMAP_CLI_TOP_MODEL_H
#define PCPMAP_CLI_TOP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pcpmap/pcpmap.h>

#include "connections.h"

#define TOP_LOG_CAP    256 /* events kept in the log ring; older ones are dropped */
#define TOP_TEXT_MAX   512 /* one log line or status line, NUL included */
#define TOP_FILTER_MAX 64

enum top_pane {
	TOP_PANE_CONNS = 0,
	TOP_PANE_MAPS = 1,
	TOP_PANE_LOG = 2,
};

/* A mapping row: one made in this view (handle set), or one the daemon listed (daemon_id set, handle NULL). */
struct top_map_row {
	uint32_t key;       /* unique in this model, never reused */
	void *handle;       /* the view's pcpmap_mapping, NULL for a row only the daemon listed */
	uint32_t daemon_id; /* pcpmapd's id, 0 when unknown */
	bool has_owner;     /* owner_uid is known (daemon rows) */
	uint32_t owner_uid;
	bool persistent;
	bool lost; /* LOST was the last loss: the next MAPPED is a re-creation */
	bool seen; /* scratch for top_model_sync_daemon() */
	char options[96];
	struct pcpmap_mapping_info info;
};

struct top_log_entry {
	uint64_t t_usec;
	char text[TOP_TEXT_MAX];
};

struct top_model {
	struct cli_conn *conns; /* owned, as cli_connections_list() returns them */
	size_t n_conns;
	struct top_map_row *maps;
	size_t n_maps, cap_maps;
	uint32_t next_key;
	uint64_t t0_usec; /* log times are shown relative to this */

	enum top_pane focus;
	char filter[TOP_FILTER_MAX]; /* case-insensitive substring of a row's line; "" shows every row */
	/* Rows that pass the filter, as indexes into conns/maps, and the selection among them. */
	size_t *vis[2];
	size_t n_vis[2], cap_vis[2];
	size_t sel[2];
	size_t scroll[2];   /* first visible row the drawing shows */
	char sel_conn[128]; /* identity of the selected connection, kept across listings */
	uint32_t sel_map_key;

	struct top_log_entry log[TOP_LOG_CAP];
	size_t log_head, log_n; /* ring: the oldest entry is log[(log_head + TOP_LOG_CAP - log_n) % CAP] */
	size_t log_back;        /* log pane scrolled back this many entries from the newest */
	char status[TOP_TEXT_MAX];
};

void top_model_init(struct top_model *m, uint64_t now);
void top_model_free(struct top_model *m);

/* Takes ownership of conns (malloc'd, n entries, may be NULL when n is 0): replaces the connection list. */
void top_model_set_conns(struct top_model *m, struct cli_conn *conns, size_t n);

/*
 * Adds a row for a mapping made in this view; info may be NULL (nothing known yet). options is a short text
 * of what the request asked for ("prefer-failure filter pair"). Returns the row's key (0 on -ENOMEM).
 */
uint32_t top_model_add_map(struct top_model *m, void *handle, const struct pcpmap_mapping_info *info,
			   const char *options, bool persistent);

/* The row with this key or handle, NULL when none. */
struct top_map_row *top_model_map_by_key(struct top_model *m, uint32_t key);
struct top_map_row *top_model_map_by_handle(struct top_model *m, const void *handle);

/* Removes a row (its handle is the caller's to free first). */
void top_model_remove_map(struct top_model *m, uint32_t key);

/*
 * A library event of the mapping with this handle: updates its row and logs a line (LOST, CHANGED,
 * re-creation after a loss, a change of the protocol that carries it, failures with their advice).
 * Returns the row, NULL when the handle is unknown.
 */
struct top_map_row *top_model_event(struct top_model *m, uint64_t now, const void *handle,
				    enum pcpmap_event ev, const struct pcpmap_mapping_info *info);

/* Replaces the info of a row without an event (a re-read of the handle). */
void top_model_update_info(struct top_model *m, uint32_t key, const struct pcpmap_mapping_info *info);

/*
 * A re-read of a row's handle (the view does it every second): updates the row and logs what no event
 * reports, a gateway that restarted (its epoch went back) and confirmed the mapping with a renewal.
 */
void top_model_poll(struct top_model *m, uint64_t now, uint32_t key, const struct pcpmap_mapping_info *info);

/* A mapping as pcpmapd lists it. */
struct top_daemon_row {
	uint32_t id;
	uint32_t owner_uid;
	bool persistent;
	struct pcpmap_mapping_info info;
	const char *description;
};

/*
 * One listing of the daemon's table: rows of this view are matched by nonce (the daemon shows it to the
 * owner) and get the daemon's id; others are added, updated (a state change is logged) or removed when they
 * left the table.
 */
void top_model_sync_daemon(struct top_model *m, uint64_t now, const struct top_daemon_row *rows, size_t n);

/* Appends a line to the event log and makes it the status line. */
void top_model_log(struct top_model *m, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The k-th entry of the log, 0 = the oldest kept; NULL past the end. */
const struct top_log_entry *top_model_log_at(const struct top_model *m, size_t k);

/* Scrolls the log pane: delta > 0 goes back in time. Clamped to what is kept. */
void top_model_log_scroll(struct top_model *m, long delta);

/* Sets the filter ("" for none) and recomputes the visible rows, keeping the selection on its row. */
void top_model_set_filter(struct top_model *m, const char *filter);

/* Recomputes the visible rows (after rows changed), keeping the selection on its row when it is still there. */
void top_model_refilter(struct top_model *m);

/* Moves the selection of the focused pane by delta rows (clamped), or scrolls the log pane. */
void top_model_move(struct top_model *m, long delta);

/* Tab: connections -> mappings -> log -> connections. */
void top_model_next_pane(struct top_model *m);

/* The selected connection / mapping of their panes, NULL when the pane shows nothing. */
const struct cli_conn *top_model_sel_conn(const struct top_model *m);
struct top_map_row *top_model_sel_map(struct top_model *m);

/*
 * Keeps the selection of a pane inside a window of `rows` lines: adjusts m->scroll[pane] and returns it (the
 * first visible row to draw).
 */
size_t top_model_scroll_for(struct top_model *m, enum top_pane pane, size_t rows);

/* Which mapping covers a connection: 'P' a PEER mapping of that connection, 'M' a MAP of its local port,
 * ' ' none. */
char top_model_coverage(const struct top_model *m, const struct cli_conn *c);

/*
 * Lines, formatted for a terminal `width` columns wide: exactly that wide when there is room (padded), cut
 * with a '>' in the last column when the text is longer. buf must hold width + 1 bytes. k is a position
 * among the visible rows.
 */
void top_fmt_conn_header(const struct top_model *m, char *buf, size_t width);
void top_fmt_conn(const struct top_model *m, size_t k, char *buf, size_t width);
void top_fmt_map_header(const struct top_model *m, char *buf, size_t width);
void top_fmt_map(const struct top_model *m, size_t k, uint64_t now, char *buf, size_t width);
/* The selected mapping's details: its last error with the protocol's advice, else server, epoch, nonce. */
void top_fmt_map_detail(const struct top_model *m, uint64_t now, char *buf, size_t width);
/* The k-th log entry, "+12.3s  text". */
void top_fmt_log(const struct top_model *m, size_t k, char *buf, size_t width);

/*
 * The countdown of a row at now: "in 57 s" to the next renewal, "retry 3 s" while waiting to resend after
 * an error, "-" when nothing is scheduled. Rounded up to whole seconds, so it moves once a second.
 */
void top_fmt_countdown(const struct pcpmap_mapping_info *i, uint64_t now, char *buf, size_t len);

/*
 * When the next countdown shown changes (the earliest whole-second boundary of any row's renewal or retry
 * time after now), at most now + 1 s. Drawing just after it moves every countdown by exactly one: a fixed
 * one-second beat whose phase sits on a boundary would show some values twice and skip others.
 */
uint64_t top_model_next_tick(const struct top_model *m, uint64_t now);

/* "addr:port", "[v6]:port" for an IPv6 address. */
void top_fmt_endpoint(const char *addr, uint16_t port, char *buf, size_t len);

/* Truncates or pads s in place to exactly width columns ('>' marks a cut). s holds width + 1 bytes. */
void top_fit(char *s, size_t width);

/* ---- request forms ---- */

enum top_field_type {
	TOP_FIELD_TEXT,
	TOP_FIELD_BOOL,
	TOP_FIELD_CHOICE,
};

enum top_field_id {
	TOP_F_PROTO,
	TOP_F_PORT,
	TOP_F_PEER_ADDR,
	TOP_F_PEER_PORT,
	TOP_F_LIFETIME,
	TOP_F_EXT_PORT,
	TOP_F_PREFER_FAILURE,
	TOP_F_FILTER,
	TOP_F_PAIR,
	TOP_F_IPV6,
	TOP_F_PERSISTENT,
};

struct top_field {
	enum top_field_id id;
	enum top_field_type type;
	const char *label;
	char text[64];              /* TEXT */
	bool on;                    /* BOOL */
	const char *const *choices; /* CHOICE: NULL-terminated */
	size_t choice;
};

struct top_form {
	enum pcpmap_kind kind;
	struct top_field f[12];
	size_t n, cur;
	char error[TOP_TEXT_MAX]; /* why the last top_form_request() failed */
};

/* A request parsed from a form, with the storage its pointers use. */
struct top_request {
	struct pcpmap_request req;
	struct pcpmap_filter filter;
	char peer[64];
	char filter_addr[64];
	char options[96];
};

/* The PEER form, prefilled from a connection (protocol, local port, remote address and port, family). */
void top_form_peer(struct top_form *f, const struct cli_conn *c);
/* The MAP form: protocol, port, lifetime, suggested external port, PREFER_FAILURE, FILTER, pair, IPv6, and
 * with a daemon, persistent. */
void top_form_map(struct top_form *f, bool daemon);
/* Moves between fields (wraps). */
void top_form_next(struct top_form *f, long delta);
/* Typing into the current field: a printable character is appended to a text field, ' ' toggles a boolean
 * or cycles a choice. */
void top_form_char(struct top_form *f, int ch);
void top_form_backspace(struct top_form *f);
/* Parses the form. Returns 0, or -EINVAL with f->error naming the field and the value. */
int top_form_request(struct top_form *f, struct top_request *out);

#endif /* PCPMAP_CLI_TOP_MODEL_H */
