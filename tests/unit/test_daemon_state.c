/*
 * pcpmapd state file (daemon/state.c): text round trips of every field, line-numbered complaints with the
 * good records kept, atomic saves, and a corrupt file moved aside on load.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "daemon/state.h"

struct complaints {
	unsigned n;
	unsigned lines[16];
	char last[160];
};

static void collect(void *ud, unsigned line, const char *msg)
{
	struct complaints *c = ud;
	if (c->n < 16)
		c->lines[c->n] = line;
	c->n++;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static void full_record(struct pmd_state_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->id = 7;
	r->uid = 65534;
	r->persistent = true;
	r->req.kind = 1;
	r->req.ip_proto = 17;
	r->req.internal_port = 5004;
	r->req.family = 6;
	for (int i = 0; i < 12; i++)
		r->req.nonce[i] = (uint8_t)(0xf0 + i);
	r->req.lifetime = 3600;
	r->req.suggested_port = 5004;
	strcpy(r->req.suggested_addr, "fd03:113::1");
	r->req.prefer_failure = true;
	strcpy(r->req.third_party, "fe80::2%eth0");
	r->req.n_filters = 2;
	strcpy(r->req.filters[0].addr, "198.51.100.0");
	r->req.filters[0].prefix_len = 24;
	r->req.filters[0].port = 0;
	strcpy(r->req.filters[1].addr, "2001:db8::");
	r->req.filters[1].prefix_len = 32;
	r->req.filters[1].port = 443;
	strcpy(r->req.description, "RTP 100% caf\xc3\xa9 a=b/c,d");
	r->req.port_pair = true;
	for (int i = 0; i < 12; i++)
		r->nonce2[i] = (uint8_t)(0xa0 + i);
	r->req.protocols = 2;
	strcpy(r->external_addr, "fd77:77::2");
	r->external_port = 5004;
	r->expires = 1700000000;
}

static void test_round_trip(void **state)
{
	(void)state;
	struct pmd_state_rec in[2], *out;
	size_t n, len;
	char *text;
	full_record(&in[0]);
	memset(&in[1], 0, sizeof(in[1]));
	in[1].id = 8;
	in[1].req.kind = 2;
	in[1].req.ip_proto = 6;
	in[1].req.internal_port = 40000;
	in[1].req.family = 4;
	strcpy(in[1].req.peer_addr, "203.0.113.2");
	in[1].req.peer_port = 443;
	assert_int_equal(pmd_state_format(in, 2, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	/* Values never hold a space: every record is one line of space-separated KEY=VALUE. */
	assert_non_null(strstr(text, "description=RTP%20100%25%20caf%C3%A9%20a%3Db%2Fc%2Cd"));
	assert_non_null(strstr(text, "third_party=fe80::2%25eth0"));
	assert_non_null(strstr(text, "filter=2001:db8::/32,443"));
	assert_non_null(strstr(text, "nonce=f0f1f2f3f4f5f6f7f8f9fafb"));
	/* A pair keeps both halves' nonces, so a crash does not orphan the second half. */
	assert_non_null(strstr(text, "nonce2=a0a1a2a3a4a5a6a7a8a9aaab"));
	struct complaints c = { 0 };
	assert_int_equal(pmd_state_parse(text, len, collect, &c, &out, &n), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(n, 2);
	assert_memory_equal(&out[0], &in[0], sizeof(in[0]));
	assert_memory_equal(&out[1], &in[1], sizeof(in[1]));
	free(out);
	free(text);
	/* An empty state is just the header. */
	assert_int_equal(pmd_state_format(NULL, 0, &text, &len), 0);
	assert_string_equal(text, "pcpmapd-state 1\n");
	free(text);
	/* Records the format cannot represent are refused. */
	in[1].req.family = 5;
	assert_int_equal(pmd_state_format(in, 2, &text, &len), -EINVAL);
}

static const char good[] = "mapping id=1 uid=0 persistent=no kind=map ip_proto=6 internal_port=7000 family=4 "
			   "nonce=000102030405060708090a0b lifetime=7200";

static void test_bad_lines_are_named_and_skipped(void **state)
{
	(void)state;
	char text[4096];
	snprintf(text, sizeof(text),
		 "pcpmapd-state 1\n"
		 "# comment\n"
		 "%s\n"                 /* 3 good */
		 "mapping id=2 uid=0\n" /* 4 incomplete */
		 "%s bogus=1\n"         /* 5 unknown key */
		 "%s\n"                 /* 6 duplicate id 1 */
		 "mapping id=3 uid=0 persistent=maybe kind=map ip_proto=6 internal_port=1 family=4 nonce=00 "
		 "lifetime=1\n" /* 7 bad value */
		 "garbage\n"    /* 8 */
		 "mapping id=4 uid=0 persistent=no kind=map ip_proto=6 internal_port=1 family=4 "
		 "nonce=000102030405060708090a0b lifetime=1 description=%%zz\n" /* 9 bad escape */
		 "mapping id=5 uid=0 persistent=no kind=map ip_proto=6 internal_port=1 family=4 "
		 "nonce=000102030405060708090a0b lifetime=1 description=%%0a\n" /* 10 control char */
		 "mapping id=6 uid=0 persistent=no kind=map ip_proto=6 internal_port=70000 family=4 "
		 "nonce=000102030405060708090a0b lifetime=1\n" /* 11 port range */
		 "mapping id=0 uid=0 persistent=no kind=map ip_proto=6 internal_port=1 family=4 "
		 "nonce=000102030405060708090a0b lifetime=1\n" /* 12 id 0 */
		 "mapping id=9 uid=0 persistent=no kind=map ip_proto=6 internal_port=1 family=4 "
		 "nonce=000102030405060708090a0b lifetime=1 lifetime=2\n" /* 13 repeated */
		 "mapping id=10 uid=0 persistent=no kind=map ip_proto=6 internal_port=1 family=4 "
		 "nonce=000102030405060708090a0b lifetime=1 filter=1.2.3.4,5\n" /* 14 filter without prefix */
		 "mapping id=11 uid=0 persistent=yes kind=peer ip_proto=17 internal_port=1 family=6 "
		 "nonce=000102030405060708090a0b lifetime=1", /* 15 good, no final newline */
		 good, good, good);
	struct pmd_state_rec *out;
	size_t n;
	struct complaints c = { 0 };
	assert_int_equal(pmd_state_parse(text, strlen(text), collect, &c, &out, &n), 11);
	assert_int_equal(c.n, 11);
	const unsigned want[] = { 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
	for (size_t i = 0; i < 11; i++)
		assert_int_equal(c.lines[i], want[i]);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].id, 1);
	assert_int_equal(out[1].id, 11);
	assert_true(out[1].persistent);
	assert_int_equal(out[1].req.kind, 2);
	free(out);
	/* Without the header nothing is trusted. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(pmd_state_parse(good, strlen(good), collect, &c, &out, &n), 1);
	assert_int_equal(c.lines[0], 1);
	assert_int_equal(n, 0);
	assert_null(out);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pmd_state_parse("pcpmapd-state 2\n", 16, collect, &c, &out, &n), 1);
	assert_int_equal(n, 0);
	/* An empty file is an empty state. */
	assert_int_equal(pmd_state_parse("", 0, collect, &c, &out, &n), 0);
	assert_int_equal(n, 0);
	free(out);
}

static int count_entries(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static void test_save_load(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpmapd-state-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct pmd_state_rec in[3], *out;
	size_t n;
	char moved[512];
	struct complaints c = { 0 };
	/* No file yet: empty, clean. */
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, moved, sizeof(moved)), 0);
	assert_int_equal(n, 0);
	for (int i = 0; i < 3; i++) {
		full_record(&in[i]);
		in[i].id = (uint32_t)(i + 1);
	}
	assert_int_equal(pmd_state_save(dir, in, 3), 0);
	/* The temporary file is gone; the state file is private. */
	assert_int_equal(count_entries(dir, "mappings.state.tmp"), 0);
	char path[600];
	snprintf(path, sizeof(path), "%s/mappings.state", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, moved, sizeof(moved)), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, in, sizeof(in));
	assert_string_equal(moved, "");
	free(out);
	/* Replacing keeps one file. */
	assert_int_equal(pmd_state_save(dir, in, 1), 0);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 1);
	free(out);
	/* Corrupt: reported by line, moved aside, good records still returned. */
	FILE *f = fopen(path, "a");
	assert_non_null(f);
	fputs("mapping id=99 torn", f);
	fclose(f);
	memset(&c, 0, sizeof(c));
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, moved, sizeof(moved)), 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.lines[0], 3);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].id, 1);
	free(out);
	assert_non_null(strstr(moved, "mappings.state.corrupt-"));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(access(moved, F_OK), 0);
	assert_int_equal(count_entries(dir, "mappings.state.corrupt-"), 1);
	/* Next load: nothing there, clean. */
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 0);
	unlink(moved);
	/* A directory that does not exist cannot be saved to. */
	char missing[600];
	snprintf(missing, sizeof(missing), "%s/none", dir);
	assert_int_equal(pmd_state_save(missing, in, 1), -ENOENT);
	rmdir(dir);
}

/* Records a start could not restore go beside the state file, added to any an earlier start left there. */
static void test_set_aside(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpmapd-state-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct pmd_state_rec in[3], *out;
	size_t n;
	char path[600], want[600];
	for (int i = 0; i < 3; i++) {
		full_record(&in[i]);
		in[i].id = (uint32_t)(i + 1);
		in[i].req.nonce[0] = (uint8_t)i;
	}
	assert_int_equal(pmd_state_set_aside(dir, in, 2, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/mappings.state.unrestored", dir);
	assert_string_equal(path, want);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The state file itself is not touched. */
	assert_int_equal(count_entries(dir, "mappings.state.tmp"), 0);
	assert_int_equal(access(path, F_OK), 0);
	/* A second start adds record 3; record 2 (same id and nonce) is not written twice. */
	assert_int_equal(pmd_state_set_aside(dir, in + 1, 2, NULL, 0), 0);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char text[8192];
	size_t len = fread(text, 1, sizeof(text), f);
	fclose(f);
	assert_int_equal(pmd_state_parse(text, len, NULL, NULL, &out, &n), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++)
		assert_memory_equal(&out[i], &in[i], sizeof(in[i]));
	free(out);
	unlink(path);
	rmdir(dir);
}

static void rec_id(struct pmd_state_rec *r, uint32_t id)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->req.kind = 1;
	r->req.ip_proto = 17;
	r->req.internal_port = (uint16_t)(1000 + id);
	r->req.family = 4;
	r->req.lifetime = 7200;
	r->req.nonce[0] = (uint8_t)id;
}

static void write_raw(const char *dir, const char *name, const char *text, size_t len, const char *mode)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, mode);
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void rm_state(const char *dir)
{
	static const char *const names[] = { "mappings.state", "mappings.journal", "mappings.state.tmp" };
	char path[600];
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* The journal replaces, adds and removes records over the snapshot; a pair record comes back whole. */
static void test_journal_replay(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpmapd-state-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct pmd_state_rec in[3], *out;
	size_t n;
	struct complaints c = { 0 };
	for (uint32_t i = 0; i < 3; i++)
		rec_id(&in[i], i + 1);
	assert_int_equal(pmd_state_save(dir, in, 3), 0);
	struct pmd_journal j;
	assert_int_equal(pmd_journal_open(dir, &j), 0);
	struct pmd_state_rec two = in[1], four, pair;
	two.external_port = 4242;
	rec_id(&four, 4);
	full_record(&pair);
	pair.id = 5;
	const struct pmd_state_rec *puts[] = { &two, &four };
	uint32_t dels[] = { 1 };
	assert_int_equal(pmd_journal_append(&j, puts, 2, dels, 1), 0);
	const struct pmd_state_rec *more[] = { &pair };
	assert_int_equal(pmd_journal_append(&j, more, 1, NULL, 0), 0);
	pmd_journal_close(&j);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(n, 4);
	/* Order: the snapshot's survivors, then the journal's additions. */
	assert_memory_equal(&out[0], &two, sizeof(two));
	assert_memory_equal(&out[1], &in[2], sizeof(in[2]));
	assert_memory_equal(&out[2], &four, sizeof(four));
	assert_memory_equal(&out[3], &pair, sizeof(pair));
	assert_memory_equal(out[3].nonce2, pair.nonce2, sizeof(pair.nonce2));
	free(out);
	/* A removed id may come back: the later record wins. */
	assert_int_equal(pmd_journal_open(dir, &j), 0);
	const struct pmd_state_rec *again[] = { &in[0] };
	assert_int_equal(pmd_journal_append(&j, again, 1, NULL, 0), 0);
	pmd_journal_close(&j);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 5);
	free(out);
	/* Only a journal (no snapshot yet) is a state too. */
	char path[600];
	snprintf(path, sizeof(path), "%s/mappings.state", dir);
	unlink(path);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 4); /* each journal line is a whole record: 2 (changed), 4, 5 and 1 (back) */
	free(out);
	rm_state(dir);
}

/* Compaction leaves a snapshot with everything and an empty journal; a crash between the snapshot's rename
 * and the journal's truncation replays the journal over the new snapshot to the same state. */
static void test_journal_compaction(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpmapd-state-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct pmd_state_rec r[50], *out;
	size_t n;
	struct complaints c = { 0 };
	struct pmd_journal j = { .fd = -1 };
	assert_int_equal(pmd_state_compact(dir, &j, NULL, 0), 0);
	uint64_t empty = j.size;
	for (uint32_t i = 0; i < 50; i++) {
		rec_id(&r[i], i + 1);
		const struct pmd_state_rec *p[] = { &r[i] };
		uint32_t del = i;
		assert_int_equal(pmd_journal_append(&j, p, 1, i % 5 == 4 ? &del : NULL, i % 5 == 4), 0);
	}
	assert_true(j.size > empty);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 40); /* ids 4, 9, ... 49 removed */
	/* The crash case first: the new snapshot written, the journal not yet emptied. */
	assert_int_equal(pmd_state_save(dir, out, n), 0);
	struct pmd_state_rec *again;
	size_t n2;
	assert_int_equal(pmd_state_load(dir, collect, &c, &again, &n2, NULL, 0), 0);
	assert_int_equal(n2, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(again[i].id, out[i].id);
	free(again);
	/* Then the whole compaction. */
	assert_int_equal(pmd_state_compact(dir, &j, out, n), 0);
	assert_int_equal(j.size, empty);
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mappings.journal", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, empty);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(pmd_state_load(dir, collect, &c, &again, &n2, NULL, 0), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(again, out, n * sizeof(*out));
	free(again);
	free(out);
	/* Appends go after the truncation point. */
	const struct pmd_state_rec *p[] = { &r[3] };
	assert_int_equal(pmd_journal_append(&j, p, 1, NULL, 0), 0);
	pmd_journal_close(&j);
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 41);
	assert_int_equal(c.n, 0);
	free(out);
	rm_state(dir);
}

/* A record cut short by a crash (no newline, or the zeros a file system may leave) is ignored; the records
 * before it stay and the journal is not treated as corrupt. */
static void test_journal_torn_last_record(void **state)
{
	(void)state;
	char dir[] = "/tmp/pcpmapd-state-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct pmd_state_rec a, b, *out;
	size_t n;
	struct complaints c = { 0 };
	struct pmd_journal j;
	rec_id(&a, 1);
	rec_id(&b, 2);
	assert_int_equal(pmd_journal_open(dir, &j), 0);
	const struct pmd_state_rec *p[] = { &a, &b };
	assert_int_equal(pmd_journal_append(&j, p, 2, NULL, 0), 0);
	pmd_journal_close(&j);
	static const char torn[] = "mapping id=3 uid=0 persistent=no kind=map ip_pr";
	write_raw(dir, "mappings.journal", torn, strlen(torn), "a");
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 2);
	assert_int_equal(c.n, 1);
	assert_non_null(strstr(c.last, "torn"));
	assert_memory_equal(&out[0], &a, sizeof(a));
	assert_memory_equal(&out[1], &b, sizeof(b));
	free(out);
	/* The journal was not moved aside. */
	assert_int_equal(count_entries(dir, "mappings.journal.corrupt-"), 0);
	/* Zeros after the last newline. */
	char zeros[64] = { 0 };
	char path[600];
	snprintf(path, sizeof(path), "%s/mappings.journal", dir);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(pmd_journal_open(dir, &j), 0);
	assert_int_equal(pmd_journal_append(&j, p, 1, NULL, 0), 0);
	pmd_journal_close(&j);
	write_raw(dir, "mappings.journal", zeros, sizeof(zeros), "a");
	memset(&c, 0, sizeof(c));
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
	assert_int_equal(n, 1);
	free(out);
	/* A bad line in the middle is corruption: named, skipped, the journal moved aside. */
	static const char bad[] = "mapping id=7 nonsense\n";
	assert_int_equal(pmd_journal_open(dir, &j), 0);
	assert_int_equal(truncate(path, (off_t)strlen("pcpmapd-journal 1\n")), 0);
	pmd_journal_close(&j);
	write_raw(dir, "mappings.journal", bad, strlen(bad), "a");
	assert_int_equal(pmd_journal_open(dir, &j), 0);
	assert_int_equal(pmd_journal_append(&j, p, 2, NULL, 0), 0);
	pmd_journal_close(&j);
	memset(&c, 0, sizeof(c));
	char moved[600];
	assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, moved, sizeof(moved)), 1);
	assert_int_equal(c.lines[0], 2);
	assert_int_equal(n, 2);
	free(out);
	assert_non_null(strstr(moved, "mappings.journal.corrupt-"));
	unlink(moved);
	rm_state(dir);
}

/* A writer killed at random moments (appending one record per write, compacting now and then) always leaves
 * a state that loads cleanly and holds exactly the records 1..K written before the kill. */
static void test_journal_crash_consistency(void **state)
{
	(void)state;
	size_t most = 0;
	srand((unsigned)time(NULL));
	for (int round = 0; round < 20; round++) {
		char dir[] = "/tmp/pcpmapd-state-XXXXXX";
		assert_non_null(mkdtemp(dir));
		int pfd[2];
		assert_int_equal(pipe(pfd), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct pmd_journal j = { .fd = -1 };
			struct pmd_state_rec *all = calloc(100000, sizeof(*all));
			close(pfd[0]);
			if (!all || pmd_state_compact(dir, &j, NULL, 0) < 0)
				_exit(1);
			for (uint32_t i = 0; i < 100000; i++) {
				rec_id(&all[i], i + 1);
				const struct pmd_state_rec *p[] = { &all[i] };
				if (pmd_journal_append(&j, p, 1, NULL, 0) < 0)
					_exit(1);
				if (i % 97 == 96) {
					if (pmd_state_compact(dir, &j, all, i + 1) < 0)
						_exit(1);
					/* Tells the parent a compaction is done, so kills land after some too. */
					if (write(pfd[1], "c", 1) < 0)
						_exit(1);
				}
			}
			_exit(0);
		}
		close(pfd[1]);
		/* Kills land before the first compaction, after a few, and anywhere in between. */
		char ch;
		for (int k = 0; k < round % 4; k++)
			assert_int_equal(read(pfd[0], &ch, 1), 1);
		struct timespec ts = { 0, (long)(rand() % 5000) * 1000 };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		close(pfd[0]);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		struct pmd_state_rec *out;
		size_t n;
		struct complaints c = { 0 };
		assert_int_equal(pmd_state_load(dir, collect, &c, &out, &n, NULL, 0), 0);
		for (size_t i = 0; i < n; i++) {
			struct pmd_state_rec want;
			rec_id(&want, (uint32_t)(i + 1));
			assert_memory_equal(&out[i], &want, sizeof(want));
		}
		if (n > most)
			most = n;
		free(out);
		rm_state(dir);
	}
	/* The kills did land after compactions, not only before the first write. */
	assert_true(most > 97);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_lines_are_named_and_skipped),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_set_aside),
		cmocka_unit_test(test_journal_replay),
		cmocka_unit_test(test_journal_compaction),
		cmocka_unit_test(test_journal_torn_last_record),
		cmocka_unit_test(test_journal_crash_consistency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
