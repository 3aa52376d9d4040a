/* SPDX-License-Identifier: MIT */
/*
 * pcpmapd state file: one line per mapping the daemon holds (persistent or not) with the request, the PCP
 * nonce and the last grant, so that after a crash or restart persistent mappings are renewed with their old
 * nonce and the others are deleted instead of orphaned on the gateway. Written atomically (temp file, fsync,
 * rename, fsync of the directory). Text format in doc/pcpmapd.conf.md ("State directory").
 */
#ifndef PCPMAP_DAEMON_STATE_H
#define PCPMAP_DAEMON_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/ipc.h"

#define PMD_STATE_FILE       "mappings.state"
#define PMD_STATE_UNRESTORED "mappings.state.unrestored"
#define PMD_STATE_JOURNAL    "mappings.journal"
#define PMD_STATE_MAX_RECS   65536u
#define PMD_STATE_MAX_BYTES  (32u << 20)

struct pmd_state_rec {
	uint32_t id;
	uint32_t uid;
	bool persistent;
	struct pmd_ipc_req req;            /* req.nonce is the mapping's PCP nonce */
	uint8_t nonce2[PMD_IPC_NONCE_LEN]; /* a port pair's second half (internal port + 1); zero: none */
	char external_addr[PMD_IPC_ADDR_MAX + 1];
	uint16_t external_port;
	int64_t expires; /* wall-clock second the last grant runs out; 0 unknown */
};

/* Supplies records one at a time: fills *out and returns 1, or returns 0 when there are no more. */
typedef int (*pmd_state_next_fn)(void *ud, struct pmd_state_rec *out);

/* Receives one complaint about the text: its line number and what is wrong. */
typedef void (*pmd_state_err_fn)(void *ud, unsigned line, const char *msg);

/*
 * Formats records as the state file's text (malloc'd, NUL-terminated; free() it).
 * @return 0; -EINVAL when a record cannot be represented; -ENOMEM.
 */
int pmd_state_format(const struct pmd_state_rec *recs, size_t n, char **ret_text, size_t *ret_len);

/*
 * Parses state text. Bad lines are reported through err (may be NULL) and skipped; good ones are returned
 * (malloc'd array; free() it).
 * @return the number of bad lines (0 = clean), or -ENOMEM. A wrong or missing header counts as one bad line
 *         and yields no record.
 */
int pmd_state_parse(const char *text, size_t len, pmd_state_err_fn err, void *ud, struct pmd_state_rec **ret,
		    size_t *ret_n);

/*
 * Writes the records to DIR/mappings.state atomically: DIR/mappings.state.tmp, fsync, rename, fsync DIR.
 * @return 0 or -errno.
 */
int pmd_state_save(const char *dir, const struct pmd_state_rec *recs, size_t n);

/*
 * Keeps records that could not be restored in DIR/mappings.state.unrestored (same format, written like the
 * state file), added to the records an earlier start left there (the same id and nonce only once). Its path
 * goes to ret_path when not NULL.
 * @return 0 or -errno.
 */
int pmd_state_set_aside(const char *dir, const struct pmd_state_rec *recs, size_t n, char *ret_path,
			size_t path_len);

/*
 * Loads DIR/mappings.state, then replays DIR/mappings.journal over it. A missing file is an empty state. A file with bad lines is reported through err,
 * moved aside to DIR/mappings.state.corrupt-<unix time> (its path in ret_moved when not NULL, else "") and
 * its good lines are still returned.
 * @return the number of bad lines (0 = clean), or -errno when the file cannot be read.
 */
int pmd_state_load(const char *dir, pmd_state_err_fn err, void *ud, struct pmd_state_rec **ret, size_t *ret_n,
		   char *ret_moved, size_t moved_len);

/*
 * The journal (DIR/mappings.journal) holds the changes since the last snapshot, one line each: a whole
 * record ("mapping ...", replacing one with the same id) or a removal ("delete id=N"). A line counts once its
 * newline is on disk, so the torn last line of a crash is ignored. Compaction writes a new snapshot and
 * empties the journal.
 */
struct pmd_journal {
	int fd;        /* -1 when closed */
	uint64_t size; /* bytes in the file */
};

/*
 * Applies journal text to records (a malloc'd array of *n, which may grow). A torn last line is reported
 * through err and ignored; other bad lines are reported and skipped.
 * @return the number of bad lines (the torn one not counted), or -ENOMEM.
 */
int pmd_journal_replay(const char *text, size_t len, pmd_state_err_fn err, void *ud,
		       struct pmd_state_rec **recs, size_t *n);

/* Opens DIR/mappings.journal for appending (created with its header). @return 0 or -errno. */
int pmd_journal_open(const char *dir, struct pmd_journal *j);

void pmd_journal_close(struct pmd_journal *j);

/*
 * Appends records and removals in one write (not synced: see pmd_journal_sync()). A write that fails is cut
 * back to the previous end.
 * @return 0; -EINVAL when a record cannot be represented; -EBADF when closed; -ENOMEM; -errno.
 */
int pmd_journal_append(struct pmd_journal *j, const struct pmd_state_rec *const *puts, size_t n_puts,
		       const uint32_t *dels, size_t n_dels);

/* pmd_journal_append() with the records from an iterator (may be NULL: removals only). */
int pmd_journal_append_iter(struct pmd_journal *j, pmd_state_next_fn next, void *ud, const uint32_t *dels,
			    size_t n_dels);

/* fdatasync() of the journal. @return 0 or -errno. */
int pmd_journal_sync(struct pmd_journal *j);

/*
 * Writes the records as the new snapshot (atomically, as pmd_state_save()) and empties the journal (opened
 * when closed).
 * @return 0 or -errno.
 */
int pmd_state_compact(const char *dir, struct pmd_journal *j, const struct pmd_state_rec *recs, size_t n);

/* pmd_state_compact() with the records from an iterator: one full record in memory at a time. */
int pmd_state_compact_iter(const char *dir, struct pmd_journal *j, pmd_state_next_fn next, void *ud);

#endif
