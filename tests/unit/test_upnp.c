/* UPnP backend without a network: the worker queue and its eventfd hand-off, the error table, the lease
 * quirks, the presence check, pinholes, the escalating discovery windows, SSDP parsing, and the backend
 * inside the engine with a scripted IGD in place of miniupnpc. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_env.h"
#include "internal.h"
#include "upnp/upnp_int.h"

/* ---------------------------------------------------------------------------------------------------- */
/* A scripted IGD. The worker calls it; the test reads it after the result came back through the queue
 * (the queue's mutex orders the two), or directly when it runs jobs itself. */

#define MAX_CALLS 32

struct fake_igd {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool gate_closed; /* add() waits while set */
	bool in_add;
	bool del_gate_closed; /* del() waits while set */

	int discover_rc;
	int discover_calls;
	int forget_calls;
	bool v2, has_6fc;
	int status;
	const char *lan;

	/* add / add_any: result by script, calls recorded */
	int (*add_script)(uint16_t ext, uint32_t lease, bool any, uint16_t *got);
	int n_adds;
	struct {
		uint16_t ext;
		uint32_t lease;
		bool any;
		char client[UPNP_ADDR_LEN];
		char desc[UPNP_DESC_LEN];
	} adds[MAX_CALLS];

	int del_rc;
	int n_dels;
	uint16_t dels[MAX_CALLS];

	/* The IGD's table: what get_entry answers (714 when absent) unless entry_rc says otherwise. */
	struct {
		bool used;
		uint16_t ext;
		char client[UPNP_ADDR_LEN];
		uint16_t iport;
	} tab[MAX_CALLS];
	int entry_rc;
	int entry_fail_first; /* this many get_entry calls fail with entry_rc, then the table answers */
	int n_entries;
	int adopt_calls;
	unsigned discover_max_windows;

	int ext_rc;
	int n_ext;

	int pin_add_rc, pin_update_rc, pin_del_rc;
	int n_pin_adds, n_pin_updates, n_pin_dels;
	char pin_last_uid[UPNP_UID_LEN];
	uint32_t pin_last_lease;
};

static struct fake_igd fk = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int script_ok(uint16_t ext, uint32_t lease, bool any, uint16_t *got)
{
	(void)lease;
	(void)any;
	*got = ext; /* a free wish is what AddAnyPortMapping gives */
	return 0;
}

/* Between tests no worker runs (teardown joined it), so the fields can be reset; the lock stays. */
static void fake_reset(void)
{
	pthread_mutex_t lock = fk.lock;
	pthread_cond_t cond = fk.cond;
	memset(&fk, 0, sizeof(fk));
	fk.lock = lock;
	fk.cond = cond;
	fk.status = 1;
	fk.lan = "192.168.77.2";
	fk.add_script = script_ok;
}

static int tab_find(uint16_t ext)
{
	for (int i = 0; i < MAX_CALLS; i++)
		if (fk.tab[i].used && fk.tab[i].ext == ext)
			return i;
	return -1;
}

static void tab_set(uint16_t ext, const char *client, uint16_t iport)
{
	int i = tab_find(ext);
	for (int k = 0; i < 0 && k < MAX_CALLS; k++)
		if (!fk.tab[k].used)
			i = k;
	if (i < 0)
		return; /* full: the tests never get there */
	fk.tab[i].used = true;
	fk.tab[i].ext = ext;
	snprintf(fk.tab[i].client, UPNP_ADDR_LEN, "%s", client);
	fk.tab[i].iport = iport;
}

static void tab_del(uint16_t ext)
{
	int i = tab_find(ext);
	if (i >= 0)
		fk.tab[i].used = false;
}

static int f_discover(struct upnp_igd *g)
{
	fk.discover_calls++;
	fk.discover_max_windows = g->max_windows;
	if (fk.discover_rc)
		return fk.discover_rc;
	g->status = fk.status;
	g->v2 = fk.v2;
	g->has_6fc = fk.has_6fc;
	g->window_ms = 100;
	snprintf(g->url, sizeof(g->url), "http://192.168.77.1:5000/ctl/IPConn");
	snprintf(g->st, sizeof(g->st), "urn:schemas-upnp-org:service:WANIPConnection:%d", fk.v2 ? 2 : 1);
	snprintf(g->lan, sizeof(g->lan), "%s", fk.lan);
	return 0;
}

static int f_adopt(struct upnp_igd *g)
{
	(void)g;
	fk.adopt_calls++;
	return 0;
}

static void f_forget(struct upnp_igd *g)
{
	(void)g;
	fk.forget_calls++;
}

static int f_get_ext(struct upnp_igd *g, char ext[UPNP_ADDR_LEN])
{
	(void)g;
	fk.n_ext++;
	if (fk.ext_rc)
		return fk.ext_rc;
	snprintf(ext, UPNP_ADDR_LEN, "203.0.113.1");
	return 0;
}

static int record_add(const struct upnp_add_args *a, bool any, uint16_t *got)
{
	pthread_mutex_lock(&fk.lock);
	fk.in_add = true;
	pthread_cond_broadcast(&fk.cond);
	while (fk.gate_closed)
		pthread_cond_wait(&fk.cond, &fk.lock);
	pthread_mutex_unlock(&fk.lock);
	if (fk.n_adds < MAX_CALLS) {
		fk.adds[fk.n_adds].ext = a->ext_port;
		fk.adds[fk.n_adds].lease = a->lease;
		fk.adds[fk.n_adds].any = any;
		snprintf(fk.adds[fk.n_adds].client, UPNP_ADDR_LEN, "%s", a->client);
		snprintf(fk.adds[fk.n_adds].desc, UPNP_DESC_LEN, "%s", a->desc);
	}
	fk.n_adds++;
	int r = fk.add_script(a->ext_port, a->lease, any, got);
	if (r == 0)
		tab_set(*got, a->client, a->int_port);
	return r;
}

static int f_add(struct upnp_igd *g, const struct upnp_add_args *a)
{
	uint16_t got;
	(void)g;
	return record_add(a, false, &got);
}

static int f_add_any(struct upnp_igd *g, const struct upnp_add_args *a, uint16_t *ret_port)
{
	(void)g;
	return record_add(a, true, ret_port);
}

static int f_del(struct upnp_igd *g, uint16_t ext_port, const char *proto)
{
	(void)g;
	(void)proto;
	pthread_mutex_lock(&fk.lock);
	while (fk.del_gate_closed)
		pthread_cond_wait(&fk.cond, &fk.lock);
	pthread_mutex_unlock(&fk.lock);
	if (fk.n_dels < MAX_CALLS)
		fk.dels[fk.n_dels] = ext_port;
	fk.n_dels++;
	if (fk.del_rc == 0)
		tab_del(ext_port);
	return fk.del_rc;
}

static int f_get_entry(struct upnp_igd *g, uint16_t ext_port, const char *proto, char client[UPNP_ADDR_LEN],
		       uint16_t *ret_int_port)
{
	(void)g;
	(void)proto;
	fk.n_entries++;
	if (fk.entry_rc && (!fk.entry_fail_first || fk.n_entries <= fk.entry_fail_first))
		return fk.entry_rc;
	int i = tab_find(ext_port);
	if (i < 0)
		return 714;
	snprintf(client, UPNP_ADDR_LEN, "%s", fk.tab[i].client);
	*ret_int_port = fk.tab[i].iport;
	return 0;
}

static int f_add_pinhole(struct upnp_igd *g, const char *client, uint16_t port, uint8_t ip_proto,
			 uint32_t lease, char uid[UPNP_UID_LEN])
{
	(void)g;
	(void)client;
	(void)port;
	(void)ip_proto;
	fk.n_pin_adds++;
	fk.pin_last_lease = lease;
	if (fk.pin_add_rc)
		return fk.pin_add_rc;
	snprintf(uid, UPNP_UID_LEN, "%d", 40 + (fk.n_pin_adds & 0xff));
	return 0;
}

static int f_update_pinhole(struct upnp_igd *g, const char *uid, uint32_t lease)
{
	(void)g;
	fk.n_pin_updates++;
	fk.pin_last_lease = lease;
	snprintf(fk.pin_last_uid, sizeof(fk.pin_last_uid), "%s", uid);
	return fk.pin_update_rc;
}

static int f_del_pinhole(struct upnp_igd *g, const char *uid)
{
	(void)g;
	fk.n_pin_dels++;
	snprintf(fk.pin_last_uid, sizeof(fk.pin_last_uid), "%s", uid);
	return fk.pin_del_rc;
}

static const struct upnp_igd_ops fake_ops = {
	.discover = f_discover,
	.adopt = f_adopt,
	.forget = f_forget,
	.get_ext = f_get_ext,
	.add = f_add,
	.add_any = f_add_any,
	.del = f_del,
	.get_entry = f_get_entry,
	.add_pinhole = f_add_pinhole,
	.update_pinhole = f_update_pinhole,
	.del_pinhole = f_del_pinhole,
};

/* An IGD state run directly on the test thread. */
static atomic_bool never_stop;

static void igd_init(struct upnp_igd *g)
{
	memset(g, 0, sizeof(*g));
	g->ops = &fake_ops;
	atomic_init(&never_stop, false);
	g->stop = &never_stop;
}

static void job_map(struct upnp_job *j, uint64_t id, uint16_t internal, uint16_t ext, uint32_t lease)
{
	memset(j, 0, sizeof(*j));
	j->op = UPNP_OP_MAP;
	j->id = id;
	j->family = AF_INET;
	j->ip_proto = IPPROTO_TCP;
	j->internal_port = internal;
	j->ext_port = ext;
	j->lease = lease;
	snprintf(j->desc, sizeof(j->desc), "pcpmap");
}

static bool traced(const struct upnp_job *j, const char *needle)
{
	for (unsigned i = 0; i < j->n_trace && i < UPNP_TRACE_MAX; i++)
		if (strstr(j->trace[i], needle))
			return true;
	return false;
}

static int setup(void **state)
{
	(void)state;
	fake_reset();
	return 0;
}

static void open_fake_gates(void)
{
	pthread_mutex_lock(&fk.lock);
	fk.gate_closed = false;
	fk.del_gate_closed = false;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
}

/* The client of the running engine test, freed by the teardown when a failed assertion skipped
 * eng_fini() (joining its worker; no callback runs while a client is freed). */
static pcpmap_client *cur_client;

static int teardown(void **state)
{
	(void)state;
	open_fake_gates(); /* a failed test must not leave a worker blocked in the fake IGD */
	if (cur_client) {
		pcpmap_client_free(cur_client);
		cur_client = NULL;
	}
	upnp_igd_default_ops = &upnp_miniupnpc_ops;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Pure pieces. */

static void test_lease_rules(void **state)
{
	(void)state;
	assert_int_equal(upnp_lease_to_send(7200, false, false), 7200);
	assert_int_equal(upnp_lease_to_send(7200, true, false), 0);
	assert_int_equal(upnp_lease_to_send(0, false, true), PCPMAP_DEFAULT_LIFETIME);
	assert_int_equal(upnp_lease_to_send(10000000, false, false), 604800);
	/* Lease 0 is permanent on IGD:1: reported as 7200 s so the engine comes back (presence check). */
	assert_int_equal(upnp_reported_lifetime(0, false), 7200);
	/* IGD:2 turns 0 into 7 days. */
	assert_int_equal(upnp_reported_lifetime(0, true), 604800);
	assert_int_equal(upnp_reported_lifetime(3600, true), 3600);
	assert_int_equal(upnp_reported_lifetime(8, false), 8);
}

static void test_classify(void **state)
{
	(void)state;
	struct {
		int code;
		bool del, pf;
		enum pm_reply_kind kind;
		int error;
		uint32_t hold;
	} t[] = {
		{ 0, false, false, PM_REPLY_SUCCESS, 0, 0 },
		{ 606, false, false, PM_REPLY_FATAL, -EACCES, 0 },
		{ 718, false, false, PM_REPLY_RETRY, -EADDRINUSE, 30 },
		{ 718, false, true, PM_REPLY_FATAL, -EADDRINUSE, 0 },
		{ 729, false, false, PM_REPLY_RETRY, -EADDRINUSE, 30 },
		{ 725, false, false, PM_REPLY_FATAL, -EOPNOTSUPP, 0 },
		{ 501, false, false, PM_REPLY_RETRY, -EAGAIN, 30 },
		{ 728, false, false, PM_REPLY_RETRY, -EAGAIN, 30 },
		{ 401, false, false, PM_REPLY_FATAL, -EOPNOTSUPP, 0 },
		{ 402, false, false, PM_REPLY_FATAL, -EPROTO, 0 },
		{ 703, false, false, PM_REPLY_FATAL, -EACCES, 0 },
		{ 705, false, false, PM_REPLY_FATAL, -EPROTONOSUPPORT, 0 },
		{ 714, true, false, PM_REPLY_SUCCESS, 0, 0 }, /* deleting what is gone */
		{ 704, true, false, PM_REPLY_SUCCESS, 0, 0 }, /* pinhole gone */
		{ 714, false, false, PM_REPLY_FATAL, -ENOENT, 0 },
		{ 501, true, false, PM_REPLY_FATAL, -EAGAIN, 0 }, /* a delete is answered once */
		{ 899, false, false, PM_REPLY_FATAL, -EPROTO, 0 },
		{ -EPROTO, false, false, PM_REPLY_RETRY, -EPROTO, 30 },
		{ -EOPNOTSUPP, false, false, PM_REPLY_FATAL, -EOPNOTSUPP, 0 },
		{ -EINVAL, false, false, PM_REPLY_FATAL, -EINVAL, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct upnp_verdict v;
		upnp_classify(t[i].code, t[i].del, t[i].pf, &v);
		if (v.kind != t[i].kind || v.error != t[i].error || v.hold_s != t[i].hold)
			fail_msg("code %d del %d pf %d: kind %d error %d hold %u", t[i].code, t[i].del,
				 t[i].pf, v.kind, v.error, v.hold_s);
	}
	assert_string_equal(upnp_code_name(718), "ConflictInMappingEntry");
	assert_string_equal(upnp_code_name(725), "OnlyPermanentLeasesSupported");
	assert_string_equal(upnp_code_name(12345), "UNKNOWN");
}

struct windows_log {
	int calls[8];
	int n;
	int found_at; /* index that answers, -1 none */
	int error_at;
};

static int fake_search(void *ctx, int window_ms)
{
	struct windows_log *w = ctx;
	int i = w->n;
	w->calls[w->n++] = window_ms;
	if (i == w->error_at)
		return -ENETDOWN;
	return i == w->found_at ? 1 : 0;
}

static void test_discovery_windows(void **state)
{
	(void)state;
	/* The table itself: short first, then longer; at most ~2 s in all, like upnpc's fixed 2 s. */
	assert_int_equal(upnp_n_discovery_windows, 3);
	assert_int_equal(upnp_discovery_windows_ms[0], 100);
	assert_int_equal(upnp_discovery_windows_ms[1], 400);
	assert_int_equal(upnp_discovery_windows_ms[2], 1500);

	struct windows_log w = { .found_at = 0, .error_at = -1 };
	assert_int_equal(upnp_discover_escalating(fake_search, &w, upnp_discovery_windows_ms, 3), 0);
	assert_int_equal(w.n, 1); /* the first answer ends it: no further window */
	assert_int_equal(w.calls[0], 100);

	w = (struct windows_log){ .found_at = 1, .error_at = -1 };
	assert_int_equal(upnp_discover_escalating(fake_search, &w, upnp_discovery_windows_ms, 3), 1);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.calls[0], 100);
	assert_int_equal(w.calls[1], 400);

	w = (struct windows_log){ .found_at = -1, .error_at = -1 };
	assert_int_equal(upnp_discover_escalating(fake_search, &w, upnp_discovery_windows_ms, 3), -ETIMEDOUT);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.calls[2], 1500);

	w = (struct windows_log){ .found_at = -1, .error_at = 1 };
	assert_int_equal(upnp_discover_escalating(fake_search, &w, upnp_discovery_windows_ms, 3), -ENETDOWN);
	assert_int_equal(w.n, 2);
}

static void test_ssdp_parse(void **state)
{
	(void)state;
	char loc[128], st[96];
	const char ok[] = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
			  "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
			  "location:   http://192.168.77.1:5000/rootDesc.xml  \r\nEXT:\r\n\r\n";
	assert_int_equal(upnp_ssdp_parse(ok, strlen(ok), loc, sizeof(loc), st, sizeof(st)), 0);
	assert_string_equal(loc, "http://192.168.77.1:5000/rootDesc.xml");
	assert_string_equal(st, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");

	const char notify[] = "NOTIFY * HTTP/1.1\r\nLOCATION: http://192.168.77.1:5000/rootDesc.xml\r\n\r\n";
	assert_int_equal(upnp_ssdp_parse(notify, strlen(notify), loc, sizeof(loc), st, sizeof(st)), -EBADMSG);
	const char noloc[] = "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n";
	assert_int_equal(upnp_ssdp_parse(noloc, strlen(noloc), loc, sizeof(loc), st, sizeof(st)), -EBADMSG);
	const char ftp[] = "HTTP/1.1 200 OK\r\nLOCATION: ftp://x/\r\n\r\n";
	assert_int_equal(upnp_ssdp_parse(ftp, strlen(ftp), loc, sizeof(loc), st, sizeof(st)), -EBADMSG);
	/* "LOCATIONX:" is another header. */
	const char other[] = "HTTP/1.1 200 OK\r\nLOCATIONX: http://a/\r\n\r\n";
	assert_int_equal(upnp_ssdp_parse(other, strlen(other), loc, sizeof(loc), st, sizeof(st)), -EBADMSG);
	char small[8];
	assert_int_equal(upnp_ssdp_parse(ok, strlen(ok), small, sizeof(small), st, sizeof(st)), -ENOSPC);
	/* Truncated mid-header: no read past len. */
	assert_int_equal(upnp_ssdp_parse(ok, 20, loc, sizeof(loc), st, sizeof(st)), -EBADMSG);

	struct pm_sockaddr v4, v6, ll;
	assert_int_equal(pm_sockaddr_set(&v4, "192.168.77.1", 5351), 0);
	assert_int_equal(pm_sockaddr_set(&v6, "fd77:77::1", 5351), 0);
	assert_true(upnp_url_host_is("http://192.168.77.1:5000/rootDesc.xml", &v4));
	assert_true(upnp_url_host_is("HTTP://192.168.77.1/x", &v4));
	assert_false(upnp_url_host_is("http://192.168.77.10:5000/rootDesc.xml", &v4));
	assert_false(upnp_url_host_is("http://[fd77:77::1]:5000/rootDesc.xml", &v4));
	assert_true(upnp_url_host_is("http://[fd77:77::1]:5000/rootDesc.xml", &v6));
	assert_false(upnp_url_host_is("http://[fd77:77::2]:5000/", &v6));
	assert_int_equal(pm_sockaddr_set(&ll, "fe80::1", 5351), 0);
	assert_true(upnp_url_host_is("http://[fe80::1%25eth0]:5000/", &ll));
	assert_false(upnp_url_host_is("http://[fd77:77::1:5000/", &v6)); /* no closing bracket */
}

/* ---------------------------------------------------------------------------------------------------- */
/* One job at a time on the test thread. */

static int script_725(uint16_t ext, uint32_t lease, bool any, uint16_t *got)
{
	(void)any;
	*got = ext;
	return lease ? 725 : 0;
}

/* A warm start: the remembered control URL serves the first job without any discovery. */
static void test_remembered_igd_skips_discovery(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	assert_int_equal(upnp_igd_remember(&g, "http://192.168.77.1:5000/ctl/IPConn",
					   "urn:schemas-upnp-org:service:WANIPConnection:2", "192.168.77.2"),
			 0);
	assert_int_equal(fk.adopt_calls, 1);
	assert_true(g.v2);
	job_map(&j, 1, 4000, 4000, 600);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.discover_calls, 0);
	assert_false(j.notes & UPNP_NOTE_DISCOVERED);
	assert_int_equal(fk.n_adds, 1);
	assert_string_equal(fk.adds[0].client, "192.168.77.2");
	assert_string_equal(j.igd_st, "urn:schemas-upnp-org:service:WANIPConnection:2");
	assert_false(g.remembered); /* it answered: an ordinary IGD from now on */
	upnp_igd_fini(&g);
}

/* A remembered IGD that does not answer any more: the same job discovers and runs again, and its result is
 * the second run's (nothing of the failed try reaches the engine). */
static void test_remembered_igd_refuted_discovers(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	assert_int_equal(upnp_igd_remember(&g, "http://192.168.77.1:49152/old/ctl",
					   "urn:schemas-upnp-org:service:WANIPConnection:1", "192.168.77.2"),
			 0);
	fk.entry_rc = -ECONNREFUSED;
	fk.entry_fail_first = 1;
	job_map(&j, 1, 4001, 4001, 600);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.discover_calls, 1);
	assert_true(j.notes & UPNP_NOTE_DISCOVERED);
	assert_true(traced(&j, "remembered IGD http://192.168.77.1:49152/old/ctl did not serve"));
	assert_string_equal(j.igd_url, "http://192.168.77.1:5000/ctl/IPConn");
	assert_int_equal(fk.n_adds, 1);
	assert_int_equal(j.out_port, 4001);
	upnp_igd_fini(&g);
}

/* A refusal that is the IGD's answer (a conflict) is no reason to doubt the memory. */
static void test_remembered_igd_refusal_trusted(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	assert_int_equal(upnp_igd_remember(&g, "http://192.168.77.1:5000/ctl/IPConn",
					   "urn:schemas-upnp-org:service:WANIPConnection:1", "192.168.77.2"),
			 0);
	tab_set(4002, "192.168.77.9", 4002); /* another host holds the port */
	job_map(&j, 1, 4002, 4002, 600);
	j.prefer_failure = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 718);
	assert_int_equal(fk.discover_calls, 0);
	upnp_igd_fini(&g);
}

static void test_job_725_permanent_lease(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	fk.add_script = script_725;
	job_map(&j, 1, 8080, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_adds, 2);
	assert_int_equal(fk.adds[0].lease, 7200);
	assert_int_equal(fk.adds[1].lease, 0); /* the retry */
	assert_true(g.lease0_only);
	assert_true(j.notes & UPNP_NOTE_LEASE0);
	assert_int_equal(j.out_lease, 0);
	assert_int_equal(j.out_lifetime, 7200); /* permanent, reported as 7200 s */
	assert_int_equal(j.out_port, 8080);
	assert_string_equal(j.out_ext, "203.0.113.1");
	assert_string_equal(fk.adds[0].client, "192.168.77.2"); /* miniupnpc's lan address */
	assert_non_null(strstr(j.trace[0], "UPnP discovery"));
	assert_true(traced(&j, "GetSpecificPortMappingEntry TCP 8080 -> 714 NoSuchEntryInArray"));
	assert_true(traced(
	    &j, "AddPortMapping TCP 8080->192.168.77.2:8080 lease 7200 -> 725 OnlyPermanentLeasesSupported"));
	assert_true(traced(&j, "AddPortMapping TCP 8080->192.168.77.2:8080 lease 0 -> OK"));

	/* Remembered: the next mapping goes straight to lease 0, and the address is cached. */
	job_map(&j, 2, 8081, 0, 3600);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_adds, 3);
	assert_int_equal(fk.adds[2].lease, 0);
	assert_int_equal(fk.discover_calls, 1);
	assert_int_equal(fk.n_ext, 1);
	upnp_igd_fini(&g);
}

static void test_job_v2_lease0_and_add_any(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	fk.v2 = true;
	fk.add_script = script_725;
	/* No suggestion on IGD:2: AddAnyPortMapping; 725 then lease 0, which IGD:2 makes 7 days. */
	job_map(&j, 1, 8080, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_true(fk.adds[0].any);
	assert_int_equal(j.out_lease, 0);
	assert_int_equal(j.out_lifetime, 604800);
	upnp_igd_fini(&g);
}

static int script_conflict_7000(uint16_t ext, uint32_t lease, bool any, uint16_t *got)
{
	(void)lease;
	(void)any;
	*got = ext;
	return ext == 7000 ? 718 : 0;
}

static void test_job_conflict(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;

	/* IGD:1, another host holds the port: seen by the check, never overwritten; the next port. */
	igd_init(&g);
	tab_set(7000, "192.168.77.9", 7000);
	job_map(&j, 1, 7000, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_adds, 1);
	assert_int_equal(fk.adds[0].ext, 7001);
	assert_int_equal(j.out_port, 7001);
	assert_true(j.notes & UPNP_NOTE_PORT_MOVED);
	upnp_igd_fini(&g);

	/* Another application of this host (same internal client, other internal port): also someone else's,
	 * since an IGD would silently overwrite it. */
	fake_reset();
	igd_init(&g);
	tab_set(7000, "192.168.77.2", 7999);
	job_map(&j, 1, 7000, 7000, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.adds[0].ext, 7001);
	upnp_igd_fini(&g);

	/* IGD:1, the gateway itself answers 718 (the check could not see it). */
	fake_reset();
	igd_init(&g);
	fk.add_script = script_conflict_7000;
	job_map(&j, 1, 7000, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_adds, 2);
	assert_false(fk.adds[1].any);
	assert_int_equal(j.out_port, 7001);
	upnp_igd_fini(&g);

	/* IGD:2 with a suggestion: AddPortMapping first, AddAnyPortMapping after the conflict. */
	fake_reset();
	igd_init(&g);
	fk.v2 = true;
	fk.add_script = script_conflict_7000;
	job_map(&j, 1, 7000, 7000, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_adds, 2);
	assert_false(fk.adds[0].any);
	assert_true(fk.adds[1].any);
	assert_int_equal(j.out_port, 7001);
	upnp_igd_fini(&g);

	/* Pinned (PREFER_FAILURE): one try, the conflict is final; held by another: not even tried. */
	fake_reset();
	igd_init(&g);
	fk.v2 = true;
	fk.add_script = script_conflict_7000;
	job_map(&j, 1, 7000, 7000, 7200);
	j.prefer_failure = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 718);
	assert_int_equal(fk.n_adds, 1);
	struct upnp_verdict v;
	upnp_classify(j.code, false, true, &v);
	assert_int_equal(v.kind, PM_REPLY_FATAL);
	assert_int_equal(v.error, -EADDRINUSE);
	tab_set(7100, "192.168.77.9", 80);
	job_map(&j, 2, 7100, 7100, 7200);
	j.prefer_failure = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 718);
	assert_int_equal(fk.n_adds, 1);
	upnp_igd_fini(&g);
}

static int script_always_718(uint16_t ext, uint32_t lease, bool any, uint16_t *got)
{
	(void)lease;
	(void)any;
	*got = ext;
	return 718;
}

static int script_401_any(uint16_t ext, uint32_t lease, bool any, uint16_t *got)
{
	(void)lease;
	*got = ext;
	return any ? 401 : 0;
}

static void test_job_retries_bounded(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	fk.add_script = script_always_718;
	job_map(&j, 1, 7000, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 718);
	assert_int_equal(fk.n_adds, 1 + UPNP_PORT_TRIES);
	upnp_igd_fini(&g);

	/* An IGD:2 without AddAnyPortMapping (401): AddPortMapping, remembered. */
	fake_reset();
	igd_init(&g);
	fk.v2 = true;
	fk.add_script = script_401_any;
	job_map(&j, 1, 7000, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_adds, 2);
	assert_true(fk.adds[0].any);
	assert_false(fk.adds[1].any);
	assert_true(g.no_any);
	job_map(&j, 2, 7001, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(fk.n_adds, 3);
	assert_false(fk.adds[2].any);
	upnp_igd_fini(&g);
}

static void test_job_presence_check(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	job_map(&j, 1, 7005, 0, 8);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_ext, 1);
	assert_int_equal(fk.n_entries, 1); /* the port was checked free first */

	/* Renewal, the gateway still holds it: checked, re-added with the same values, address refreshed. */
	job_map(&j, 1, 7005, 7005, 8);
	j.renew = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_entries, 2);
	assert_int_equal(fk.n_adds, 2);
	assert_int_equal(fk.adds[1].ext, 7005);
	assert_false(j.notes & (UPNP_NOTE_FORGOTTEN | UPNP_NOTE_TAKEN | UPNP_NOTE_PORT_MOVED));
	assert_int_equal(fk.n_ext, 2);

	/* The gateway forgot it (714): noted, re-added on the same port, success. */
	tab_del(7005);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_true(j.notes & UPNP_NOTE_FORGOTTEN);
	assert_true(traced(&j, "GetSpecificPortMappingEntry TCP 7005 -> 714"));
	assert_int_equal(fk.n_adds, 3);
	assert_int_equal(fk.adds[2].ext, 7005);
	assert_int_equal(j.out_port, 7005);
	assert_int_equal(j.out_lifetime, 8);

	/* Another host took the port meanwhile: not overwritten, the mapping moves. */
	tab_set(7005, "192.168.77.9", 7005);
	job_map(&j, 1, 7005, 7005, 8);
	j.renew = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_true(j.notes & UPNP_NOTE_TAKEN);
	assert_int_equal(fk.adds[3].ext, 7006);
	assert_int_equal(j.out_port, 7006);
	upnp_igd_fini(&g);
}

static void test_job_delete_only_ours(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	job_map(&j, 1, 7005, 0, 60);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);

	memset(&j, 0, sizeof(j));
	j.op = UPNP_OP_UNMAP;
	j.del = true;
	j.id = 1;
	j.family = AF_INET;
	j.ip_proto = IPPROTO_TCP;
	j.internal_port = 7005;
	j.ext_port = 7005;
	j.renew = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_dels, 1);
	/* Gone already: success without a DeletePortMapping. */
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_dels, 1);
	/* Another application's mapping on that port is left alone. */
	tab_set(7005, "192.168.77.2", 9999);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_dels, 1);
	assert_true(traced(&j, "not ours, left alone"));
	/* An IGD that will not say who holds it: deleted only when the mapping was granted. */
	fk.entry_rc = 606;
	j.renew = false;
	upnp_igd_run(&g, &j);
	assert_int_equal(fk.n_dels, 1);
	j.renew = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(fk.n_dels, 2);
	upnp_igd_fini(&g);
}

/* A delete that names a mapping (pcpmap_unmap_sync) reports what it found: nothing there or another's is an
 * error with a detail, never a success. */
static void test_job_named_delete(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	memset(&j, 0, sizeof(j));
	j.op = UPNP_OP_UNMAP;
	j.del = true;
	j.named = true;
	j.id = 1;
	j.family = AF_INET;
	j.ip_proto = IPPROTO_TCP;
	j.internal_port = 9550;
	j.ext_port = 19550;
	/* Nothing at 19550. */
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -ENOENT);
	assert_int_equal(fk.n_dels, 0);
	assert_non_null(strstr(j.detail, "no TCP mapping on external port 19550"));
	/* Another client's (or another internal port's) mapping there: left alone, -EACCES. */
	tab_set(19550, "192.168.77.2", 9551);
	j.detail[0] = '\0';
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -EACCES);
	assert_int_equal(fk.n_dels, 0);
	assert_true(j.detail[0]);
	/* Ours: deleted. */
	tab_set(19550, "192.168.77.2", 9550);
	j.detail[0] = '\0';
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_dels, 1);
	assert_int_equal(fk.dels[0], 19550);
	assert_false(j.detail[0]);
	/* An IGD that will not say who holds it: asked to delete, and its 714 is "nothing there". */
	fk.entry_rc = 606;
	fk.del_rc = 714;
	upnp_igd_run(&g, &j);
	assert_int_equal(fk.n_dels, 2);
	assert_int_equal(j.code, -ENOENT);
	/* A pinhole this process did not make cannot be named: -ENOENT, not success. */
	j.family = AF_INET6;
	j.detail[0] = '\0';
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -ENOENT);
	assert_true(j.detail[0]);
	upnp_igd_fini(&g);
}

static void test_job_pinholes(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;

	/* No WANIPv6FirewallControl: not supported. */
	igd_init(&g);
	fk.lan = "fd77:77::2";
	job_map(&j, 7, 7002, 0, 7200);
	j.family = AF_INET6;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -EOPNOTSUPP);
	assert_int_equal(fk.n_pin_adds, 0);
	upnp_igd_fini(&g);

	fake_reset();
	igd_init(&g);
	fk.lan = "fd77:77::2";
	fk.has_6fc = true;
	job_map(&j, 7, 7002, 0, 200000);
	j.family = AF_INET6;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_pin_adds, 1);
	assert_int_equal(fk.pin_last_lease, UPNP_PINHOLE_MAX_S); /* 1..86400 */
	assert_string_equal(j.out_ext, "fd77:77::2");
	assert_int_equal(j.out_port, 7002);
	assert_int_equal(j.out_lifetime, 86400);

	/* Renewal: UpdatePinhole with the unique ID kept for this mapping id. */
	job_map(&j, 7, 7002, 7002, 3600);
	j.family = AF_INET6;
	j.renew = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_pin_updates, 1);
	assert_string_equal(fk.pin_last_uid, "41");
	assert_int_equal(fk.n_pin_adds, 1);

	/* The gateway forgot it (704): added again under a new ID. */
	fk.pin_update_rc = 704;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_true(j.notes & UPNP_NOTE_FORGOTTEN);
	assert_int_equal(fk.n_pin_adds, 2);

	/* Delete uses the newest ID; a second delete has nothing left to delete. */
	memset(&j, 0, sizeof(j));
	j.op = UPNP_OP_UNMAP;
	j.del = true;
	j.id = 7;
	j.family = AF_INET6;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_pin_dels, 1);
	assert_string_equal(fk.pin_last_uid, "42");
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.n_pin_dels, 1);

	/* A pinhole for an IPv4-only view of the IGD cannot be made. */
	fk.lan = "192.168.77.2";
	upnp_igd_fini(&g);
	igd_init(&g);
	job_map(&j, 8, 7003, 0, 60);
	j.family = AF_INET6;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -EOPNOTSUPP);
	upnp_igd_fini(&g);
}

static void test_job_transport_and_rediscovery(void **state)
{
	(void)state;
	struct upnp_igd g;
	struct upnp_job j;
	igd_init(&g);
	fk.discover_rc = -ETIMEDOUT;
	job_map(&j, 1, 7000, 0, 7200);
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -ETIMEDOUT);
	assert_true(j.notes & UPNP_NOTE_DISCOVERED);
	assert_int_equal(fk.n_adds, 0);

	fk.discover_rc = 0;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, 0);
	assert_int_equal(fk.discover_calls, 2);

	/* An HTTP failure forgets the IGD: the next job discovers again. */
	fk.del_rc = -ECONNREFUSED;
	memset(&j, 0, sizeof(j));
	j.op = UPNP_OP_UNMAP;
	j.del = true;
	j.id = 1;
	j.family = AF_INET;
	j.ip_proto = IPPROTO_TCP;
	j.internal_port = 7000;
	j.renew = true;
	upnp_igd_run(&g, &j);
	assert_int_equal(j.code, -ECONNREFUSED);
	assert_false(g.valid);
	assert_int_equal(fk.forget_calls, 1);
	fk.del_rc = 714;
	upnp_igd_run(&g, &j);
	assert_int_equal(fk.discover_calls, 3);
	assert_int_equal(j.code, 714); /* already gone: the table calls that a successful delete */
	assert_int_equal(fk.dels[1], 7000);
	upnp_igd_fini(&g);
}

/* ---------------------------------------------------------------------------------------------------- */
/* The queue and its worker. */

struct rec {
	pthread_mutex_t lock;
	uint64_t ran[64];
	int n;
	bool gate_closed;
	uint64_t entered;
	pthread_cond_t cond;
};

static void rec_run(void *ctx, struct upnp_job *j)
{
	struct rec *r = ctx;
	pthread_mutex_lock(&r->lock);
	r->entered = j->id;
	pthread_cond_broadcast(&r->cond);
	while (r->gate_closed && j->id == 1)
		pthread_cond_wait(&r->cond, &r->lock);
	if (r->n < 64)
		r->ran[r->n++] = j->id;
	pthread_mutex_unlock(&r->lock);
	j->code = (int)j->id * 10;
}

static bool keep_unmaps(const struct upnp_job *j)
{
	return j->op == UPNP_OP_UNMAP;
}

static struct upnp_job *new_job(enum upnp_op op, uint64_t id)
{
	struct upnp_job *j = calloc(1, sizeof(*j));
	assert_non_null(j);
	j->op = op;
	j->id = id;
	return j;
}

static bool wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1;
}

static void test_queue_order_and_once(void **state)
{
	(void)state;
	struct rec r = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct upnp_queue q;
	assert_int_equal(upnp_queue_start(&q, 64, rec_run, keep_unmaps, &r), 0);
	for (uint64_t i = 1; i <= 40; i++)
		assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, i)), 0);
	uint64_t next = 1;
	while (next <= 40) {
		assert_true(wait_readable(q.efd, 5000));
		upnp_queue_clear(&q);
		struct upnp_job *j;
		while ((j = upnp_queue_take(&q))) {
			assert_int_equal(j->id, next); /* in order */
			assert_int_equal(j->code, (int)next * 10);
			next++;
			free(j);
		}
	}
	/* Each exactly once: nothing more arrives, and the eventfd is quiet once drained. */
	upnp_queue_clear(&q);
	assert_null(upnp_queue_take(&q));
	assert_false(wait_readable(q.efd, 50));
	assert_int_equal(r.n, 40);
	upnp_queue_stop(&q);
}

static void open_gate(struct rec *r)
{
	pthread_mutex_lock(&r->lock);
	r->gate_closed = false;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void wait_entered(struct rec *r, uint64_t id)
{
	pthread_mutex_lock(&r->lock);
	while (r->entered != id)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

static void test_queue_bounded(void **state)
{
	(void)state;
	struct rec r = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct upnp_queue q;
	r.gate_closed = true;
	assert_int_equal(upnp_queue_start(&q, 3, rec_run, keep_unmaps, &r), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, 1)), 0); /* blocks the worker */
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, 2)), 0);
	assert_int_equal(upnp_queue_post_done(&q, new_job(UPNP_OP_FAIL, 3)), 0);
	/* Three in flight (running, waiting, undelivered result): the fourth is refused. */
	struct upnp_job *extra = new_job(UPNP_OP_MAP, 4);
	assert_int_equal(upnp_queue_post(&q, extra), -ENOBUFS);
	assert_int_equal(upnp_queue_post_done(&q, extra), -ENOBUFS);
	/* The result that needed no worker is delivered at once. */
	assert_true(wait_readable(q.efd, 5000));
	upnp_queue_clear(&q);
	struct upnp_job *j = upnp_queue_take(&q);
	assert_non_null(j);
	assert_int_equal(j->id, 3);
	free(j);
	assert_null(upnp_queue_take(&q));
	/* A delivery frees a slot. */
	assert_int_equal(upnp_queue_post(&q, extra), 0);
	open_gate(&r);
	uint64_t want[] = { 1, 2, 4 };
	for (size_t i = 0; i < 3;) {
		assert_true(wait_readable(q.efd, 5000));
		upnp_queue_clear(&q);
		while ((j = upnp_queue_take(&q))) {
			assert_int_equal(j->id, want[i++]);
			free(j);
		}
	}
	upnp_queue_stop(&q);
}

static bool match_id(const struct upnp_job *j, const void *arg)
{
	return j->id == *(const uint64_t *)arg;
}

static void test_queue_find_in_flight(void **state)
{
	(void)state;
	struct rec r = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct upnp_queue q;
	r.gate_closed = true;
	assert_int_equal(upnp_queue_start(&q, 4, rec_run, keep_unmaps, &r), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, 1)), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, 2)), 0);
	uint64_t id = 1, id2 = 2, id3 = 3;
	wait_entered(&r, 1);
	assert_true(upnp_queue_find(&q, match_id, &id));  /* running */
	assert_true(upnp_queue_find(&q, match_id, &id2)); /* waiting */
	assert_false(upnp_queue_find(&q, match_id, &id3));
	open_gate(&r);
	/* Done but not yet taken still counts as in flight. */
	for (int i = 0; i < 200 && r.n < 2; i++)
		usleep(5000);
	assert_true(upnp_queue_find(&q, match_id, &id2));
	assert_true(wait_readable(q.efd, 5000));
	upnp_queue_clear(&q);
	struct upnp_job *j;
	while ((j = upnp_queue_take(&q)))
		free(j);
	assert_false(upnp_queue_find(&q, match_id, &id2));
	upnp_queue_stop(&q);
}

struct opener {
	struct rec *r;
	useconds_t after;
};

static void *open_gate_later(void *arg)
{
	struct opener *o = arg;
	usleep(o->after);
	pthread_mutex_lock(&o->r->lock);
	o->r->gate_closed = false;
	pthread_cond_broadcast(&o->r->cond);
	pthread_mutex_unlock(&o->r->lock);
	return NULL;
}

static void test_queue_stop_runs_deletes_only(void **state)
{
	(void)state;
	struct rec r = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct upnp_queue q;
	r.gate_closed = true;
	assert_int_equal(upnp_queue_start(&q, 8, rec_run, keep_unmaps, &r), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, 1)), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_MAP, 2)), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_UNMAP, 3)), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_PROBE, 4)), 0);
	assert_int_equal(upnp_queue_post(&q, new_job(UPNP_OP_UNMAP, 5)), 0);
	pthread_t t;
	struct opener o = { &r, 50000 };
	assert_int_equal(pthread_create(&t, NULL, open_gate_later, &o), 0);
	wait_entered(&r, 1);
	upnp_queue_stop(&q); /* joins after the running job, the two deletes, nothing else */
	pthread_join(t, NULL);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.ran[0], 1);
	assert_int_equal(r.ran[1], 3);
	assert_int_equal(r.ran[2], 5);
	upnp_queue_stop(&q); /* idempotent */
}

/* ---------------------------------------------------------------------------------------------------- */
/* The backend inside the engine, with the scripted IGD. */

struct eng {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	pcpmap_client *c;
	int n_events;
	enum pcpmap_event ev[16];
	struct pcpmap_mapping_info info[16];
	int n_trace;
	char trace[64][UPNP_TRACE_LEN];
	int n_probe_info;
};

static void eng_cb(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info, void *ud)
{
	struct eng *e = ud;
	(void)m;
	if (e->n_events < 16) {
		e->ev[e->n_events] = ev;
		e->info[e->n_events] = *info;
	}
	e->n_events++;
}

static void eng_trace(void *ud, bool sent, enum pcpmap_proto proto, const char *peer, const uint8_t *bytes,
		      size_t len, const char *decoded)
{
	struct eng *e = ud;
	(void)sent;
	(void)peer;
	assert_int_equal(proto, PCPMAP_PROTO_UPNP);
	assert_null(bytes);
	assert_int_equal(len, 0);
	if (e->n_trace < 64)
		snprintf(e->trace[e->n_trace], UPNP_TRACE_LEN, "%s", decoded);
	e->n_trace++;
}

static void eng_init(struct eng *e)
{
	memset(e, 0, sizeof(*e));
	e->clk.now_us = 1000000000;
	e->rnd.unit = 0.5;
	fake_env_init(&e->env, &e->clk, &e->rnd);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = "127.0.0.1";
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP);
	cfg.trace = eng_trace;
	cfg.trace_userdata = e;
	upnp_igd_default_ops = &fake_ops;
	assert_int_equal(pm_client_new_env(&e->c, &cfg, &e->env), 0);
	cur_client = e->c;
}

static void eng_fini(struct eng *e)
{
	cur_client = NULL;
	open_fake_gates();
	pcpmap_client_free(e->c);
	upnp_igd_default_ops = &upnp_miniupnpc_ops;
}

/* Runs the loop until `n` events arrived (5 s at most). */
static void eng_wait_events(struct eng *e, int n)
{
	for (int i = 0; i < 500 && e->n_events < n; i++) {
		assert_int_equal(pcpmap_client_process(e->c), 0);
		if (e->n_events >= n)
			break;
		wait_readable(pcpmap_client_get_fd(e->c), 10);
	}
	assert_int_equal(e->n_events, n);
}

static pcpmap_mapping *eng_map(struct eng *e, uint8_t proto, uint16_t port, int family)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = proto;
	req.internal_port = port;
	req.external_family = family;
	req.callback = eng_cb;
	req.userdata = e;
	req.description = "test <&> app";
	assert_int_equal(pcpmap_mapping_new(e->c, &req, &m), 0);
	return m;
}

static void test_engine_map(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	pcpmap_mapping *m = eng_map(&e, IPPROTO_TCP, 8080, AF_INET);
	eng_wait_events(&e, 1);
	assert_int_equal(e.ev[0], PCPMAP_EVENT_MAPPED);
	assert_int_equal(e.info[0].proto, PCPMAP_PROTO_UPNP);
	assert_string_equal(e.info[0].external_addr, "203.0.113.1");
	assert_int_equal(e.info[0].external_port, 8080);
	assert_int_equal(e.info[0].lifetime, 7200);
	assert_int_equal(fk.discover_calls, 1); /* the probe found it; the mapping reused it */
	assert_int_equal(fk.n_adds, 1);
	assert_string_equal(fk.adds[0].desc, "test ___ app"); /* XML-safe */
	/* Decoded trace lines, without datagram bytes. */
	bool seen = false;
	for (int i = 0; i < e.n_trace && i < 64; i++)
		if (strstr(e.trace[i], "UPnP AddPortMapping TCP 8080->192.168.77.2:8080 lease 7200 -> OK ("))
			seen = true;
	assert_true(seen);

	/* Delete: DeletePortMapping on the granted port, DELETED event. */
	pcpmap_mapping_free(m);
	assert_int_equal(pcpmap_client_flush(e.c, 5000), 0);
	assert_int_equal(fk.n_dels, 1);
	assert_int_equal(fk.dels[0], 8080);

	/* A mapping still held when the client is freed: its delete still goes out before the worker joins. */
	eng_map(&e, IPPROTO_UDP, 8081, AF_INET);
	eng_wait_events(&e, 2);
	assert_int_equal(e.ev[1], PCPMAP_EVENT_MAPPED);
	eng_fini(&e);
	assert_int_equal(fk.n_dels, 2);
	assert_int_equal(fk.dels[1], 8081);
}

/* pcpmap_unmap_sync over UPnP in a fresh client (no IGD seen yet): it discovers the IGD, deletes the mapping
 * by its external port and returns 0; with nothing left to delete it returns -ENOENT. */
static void test_engine_unmap_sync(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	tab_set(19550, "192.168.77.2", 9550);
	struct pcpmap_request req;
	struct pcpmap_mapping_info info;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_TCP;
	req.internal_port = 9550;
	req.suggested_port = 19550;
	assert_int_equal(pcpmap_unmap_sync(e.c, &req, 5000, &info), 0);
	assert_true(fk.discover_calls >= 1);
	assert_int_equal(fk.n_dels, 1);
	assert_int_equal(fk.dels[0], 19550);
	assert_int_equal(tab_find(19550), -1);
	/* Again: nothing there. */
	assert_int_equal(pcpmap_unmap_sync(e.c, &req, 5000, &info), -ENOENT);
	assert_int_equal(info.error, -ENOENT);
	assert_non_null(strstr(info.detail, "no TCP mapping on external port 19550"));
	assert_int_equal(fk.n_dels, 1);
	eng_fini(&e);
}

static void test_engine_result_after_free(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	pcpmap_mapping *m1 = eng_map(&e, IPPROTO_TCP, 8080, AF_INET);
	eng_wait_events(&e, 1);
	(void)m1;

	/* The worker is inside AddPortMapping for the second mapping when the application abandons it. */
	pthread_mutex_lock(&fk.lock);
	fk.gate_closed = true;
	fk.in_add = false;
	pthread_mutex_unlock(&fk.lock);
	pcpmap_mapping *m2 = eng_map(&e, IPPROTO_UDP, 9000, AF_INET);
	pthread_mutex_lock(&fk.lock);
	while (!fk.in_add)
		pthread_cond_wait(&fk.cond, &fk.lock);
	pthread_mutex_unlock(&fk.lock);

	/* A retransmission while the job is in flight queues nothing new. */
	e.clk.now_us += 3500000;
	assert_int_equal(pcpmap_client_process(e.c), 0);

	pcpmap_mapping_abandon(m2);
	pthread_mutex_lock(&fk.lock);
	fk.gate_closed = false;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
	/* The result arrives and finds no mapping: dropped, no event, no crash (ASan would see a stale
	 * pointer). The retransmission above was not queued: one AddPortMapping for the second mapping. */
	assert_true(wait_readable(pcpmap_client_get_fd(e.c), 5000));
	usleep(100000);
	assert_int_equal(pcpmap_client_process(e.c), 0);
	assert_int_equal(e.n_events, 1);
	assert_int_equal(fk.n_adds, 2);
	assert_false(wait_readable(pcpmap_client_get_fd(e.c), 100));
	eng_fini(&e);
}

/* Maps TCP port with the fake IGD's gate closed: returns once the probe answered and the create blocks in
 * AddPortMapping on the worker. */
static pcpmap_mapping *eng_map_blocked_in_add(struct eng *e, uint16_t port)
{
	pthread_mutex_lock(&fk.lock);
	fk.gate_closed = true;
	pthread_mutex_unlock(&fk.lock);
	pcpmap_mapping *m = eng_map(e, IPPROTO_TCP, port, AF_INET);
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&fk.lock);
		bool in = fk.in_add;
		pthread_mutex_unlock(&fk.lock);
		if (in)
			break;
		pcpmap_client_process(e->c);
		wait_readable(pcpmap_client_get_fd(e->c), 10);
	}
	return m;
}

static void test_engine_delete_while_create_in_flight(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	pcpmap_mapping *m = eng_map_blocked_in_add(&e, 8080);
	pcpmap_mapping_free(m); /* DELETING: the delete queues behind the create */
	pthread_mutex_lock(&fk.lock);
	fk.del_gate_closed = true;
	fk.gate_closed = false;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
	/* The create's answer is stale: it must not pass for the delete's, which is still held. */
	assert_int_equal(pcpmap_client_flush(e.c, 300), -ETIMEDOUT);
	assert_int_equal(fk.n_adds, 1);
	pthread_mutex_lock(&fk.lock);
	fk.del_gate_closed = false;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
	/* The delete's answer ends the mapping. */
	assert_int_equal(pcpmap_client_flush(e.c, 5000), 0);
	assert_int_equal(fk.n_adds, 1);
	assert_int_equal(fk.n_dels, 1);
	eng_fini(&e);
}

/* The same, but another client of the IGD holds the mapping's port, so the create takes the next one: the
 * delete, queued before that port was known, targets the internal port and leaves it alone (not ours). The
 * port the create got is given back when its stale answer arrives; before, the IGD kept it for good. */
static void test_engine_delete_while_create_in_flight_moved_port(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	tab_set(8080, "192.168.77.9", 80);
	pcpmap_mapping *m = eng_map_blocked_in_add(&e, 8080);
	pcpmap_mapping_free(m);
	pthread_mutex_lock(&fk.lock);
	fk.gate_closed = false;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
	assert_int_equal(pcpmap_client_flush(e.c, 5000), 0);
	/* Let the give-back run (it is nobody's request, so flush does not wait for it). */
	for (int i = 0; i < 100 && fk.n_dels == 0; i++) {
		pcpmap_client_process(e.c);
		wait_readable(pcpmap_client_get_fd(e.c), 10);
	}
	assert_int_equal(fk.n_adds, 1);
	assert_int_equal(fk.n_dels, 1);
	assert_int_not_equal(fk.dels[0], 8080); /* the other client's mapping stays */
	assert_int_equal(tab_find(fk.dels[0]), -1);
	assert_int_not_equal(tab_find(8080), -1);
	eng_fini(&e);
}

static int script_606(uint16_t ext, uint32_t lease, bool any, uint16_t *got)
{
	(void)lease;
	(void)any;
	*got = ext;
	return 606;
}

static void test_engine_errors(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	fk.add_script = script_606;
	eng_map(&e, IPPROTO_TCP, 8080, AF_INET);
	eng_wait_events(&e, 1);
	assert_int_equal(e.ev[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(e.info[0].state, PCPMAP_STATE_FAILED);
	assert_int_equal(e.info[0].error, -EACCES);
	assert_int_equal(e.info[0].result_code, 606);

	/* Protocol 0 cannot be mapped over UPnP: refused for good without an IGD action. */
	fk.add_script = script_ok;
	int adds = fk.n_adds;
	eng_map(&e, 0, 0, AF_INET);
	eng_wait_events(&e, 2);
	assert_int_equal(e.ev[1], PCPMAP_EVENT_FAILED);
	assert_int_equal(e.info[1].state, PCPMAP_STATE_FAILED);
	assert_int_equal(e.info[1].error, -EOPNOTSUPP);
	assert_int_equal(fk.n_adds, adds);

	/* PEER neither. */
	struct pcpmap_request req;
	pcpmap_mapping *p;
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.ip_proto = IPPROTO_TCP;
	req.internal_port = 40000;
	req.peer_addr = "203.0.113.2";
	req.peer_port = 443;
	req.callback = eng_cb;
	req.userdata = &e;
	assert_int_equal(pcpmap_mapping_new(e.c, &req, &p), 0);
	eng_wait_events(&e, 3);
	assert_int_equal(e.ev[2], PCPMAP_EVENT_FAILED);
	assert_int_equal(e.info[2].error, -EOPNOTSUPP);
	eng_fini(&e);
}

static void test_engine_discovery_failure(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	fk.discover_rc = -ETIMEDOUT;
	eng_map(&e, IPPROTO_TCP, 8080, AF_INET);
	eng_wait_events(&e, 1);
	assert_int_equal(e.ev[0], PCPMAP_EVENT_FAILED);
	assert_int_equal(e.info[0].error, -ETIMEDOUT);
	assert_int_equal(fk.n_adds, 0);
	eng_fini(&e);
}

/* A gateway that refused PCP (and so NAT-PMP, same port) by ICMP is up: its discovery is shortened, since
 * the ICMP error for an absent SSDP listener is often rate-limited and silence would cost 2 s. Without
 * that evidence discovery gets every window. */
static void test_engine_discovery_short_after_refusal(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	struct pm_gw *gw;
	assert_int_equal(pm_client_gateway_for(e.c, AF_INET, &gw), 0);
	eng_map(&e, IPPROTO_TCP, 8081, AF_INET);
	eng_wait_events(&e, 1);
	assert_int_equal(fk.discover_max_windows, 0);
	eng_fini(&e);

	fake_reset();
	eng_init(&e);
	assert_int_equal(pm_client_gateway_for(e.c, AF_INET, &gw), 0);
	gw->status[PCPMAP_PROTO_PCP] = PM_P_NO;
	gw->err[PCPMAP_PROTO_PCP] = -ECONNREFUSED;
	eng_map(&e, IPPROTO_TCP, 8082, AF_INET);
	eng_wait_events(&e, 1);
	assert_int_equal(e.ev[0], PCPMAP_EVENT_MAPPED);
	assert_int_equal(fk.discover_max_windows, UPNP_REFUSED_WINDOWS);
	eng_fini(&e);

	/* Nothing answered the first time: the next attempt listens every window (a slow IGD is found then). */
	fake_reset();
	eng_init(&e);
	assert_int_equal(pm_client_gateway_for(e.c, AF_INET, &gw), 0);
	gw->status[PCPMAP_PROTO_PCP] = PM_P_NO;
	gw->err[PCPMAP_PROTO_PCP] = -ECONNREFUSED;
	gw->fail_count = 1;
	eng_map(&e, IPPROTO_TCP, 8083, AF_INET);
	eng_wait_events(&e, 1);
	assert_int_equal(fk.discover_max_windows, 0);
	eng_fini(&e);
}

static void test_engine_pinhole(void **state)
{
	(void)state;
	struct eng e;
	eng_init(&e);
	fk.lan = "fd77:77::2";
	fk.has_6fc = true;
	pcpmap_mapping *m = eng_map(&e, IPPROTO_TCP, 7002, AF_INET6);
	eng_wait_events(&e, 1);
	assert_int_equal(e.ev[0], PCPMAP_EVENT_MAPPED);
	assert_string_equal(e.info[0].external_addr, "fd77:77::2");
	assert_int_equal(e.info[0].external_port, 7002);
	pcpmap_mapping_free(m);
	assert_int_equal(pcpmap_client_flush(e.c, 5000), 0);
	assert_int_equal(fk.n_pin_dels, 1);
	eng_fini(&e);
}

struct ann_result {
	int calls;
	struct pcpmap_server_info info;
};

static void ann_cb(pcpmap_client *c, const struct pcpmap_server_info *info, void *ud)
{
	struct ann_result *r = ud;
	(void)c;
	r->calls++;
	r->info = *info;
}

static void no_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	(void)arg;
}

/* ops->announce: discovery if needed + GetExternalIPAddress, reported through pm_server_on_announce (the
 * public announce call picks PCP today, so the test points the client's announcement at the UPnP server). */
static void test_engine_announce(void **state)
{
	(void)state;
	struct eng e;
	struct ann_result res = { 0 };
	eng_init(&e);
	fk.v2 = true;
	pcpmap_mapping *m = eng_map(&e, IPPROTO_TCP, 8080, AF_INET);
	eng_wait_events(&e, 1);
	struct pm_server *s = ((struct pm_mapping *)(void *)m)->server;
	assert_non_null(s);
	assert_int_equal(s->ops->proto, PCPMAP_PROTO_UPNP);
	int ext_calls = fk.n_ext;
	sched_timer_init(&e.c->announce.timer, no_timer, NULL, "test-announce");
	e.c->announce.server = s;
	e.c->announce.cb = ann_cb;
	e.c->announce.userdata = &res;
	e.c->announce.sent_at = e.c->now;
	assert_int_equal(s->ops->announce(s), 0);
	assert_int_equal(s->ops->announce(s), 0); /* a retransmission while in flight: no second job */
	for (int i = 0; i < 500 && !res.calls; i++) {
		wait_readable(pcpmap_client_get_fd(e.c), 10);
		assert_int_equal(pcpmap_client_process(e.c), 0);
	}
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.info.error, 0);
	assert_int_equal(res.info.proto, PCPMAP_PROTO_UPNP);
	assert_int_equal(res.info.version, 2);
	assert_string_equal(res.info.client_addr, "192.168.77.2");
	assert_string_equal(res.info.server, "http://192.168.77.1:5000/ctl/IPConn");
	assert_int_equal(fk.n_ext, ext_calls + 1); /* a fresh GetExternalIPAddress */
	assert_int_equal(fk.discover_calls, 1);    /* the IGD was known */
	eng_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lease_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_classify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssdp_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_725_permanent_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_v2_lease0_and_add_any, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_retries_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_presence_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_delete_only_ours, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_named_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_pinholes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_transport_and_rediscovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_order_and_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_find_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_stop_runs_deletes_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_unmap_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_result_after_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_delete_while_create_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_delete_while_create_in_flight_moved_port, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_engine_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_discovery_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_pinhole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_discovery_short_after_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_announce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remembered_igd_skips_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remembered_igd_refuted_discovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remembered_igd_refusal_trusted, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
