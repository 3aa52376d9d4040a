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
#include <sys/stat.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad_lines_are_named_and_skipped),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_set_aside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
