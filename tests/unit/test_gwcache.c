/* The gateway cache (warm starts): the file codec against its vectors, the file's atomic write and
 * defensive read, and the engine with fake backends and a fake clock: a remembered UPnP gateway is used
 * without discovery, a remembered protocol that stays silent or fails falls back to a full probe without
 * losing the mapping, a corrupt file is ignored with a log line, another link-layer address is not trusted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake_backend.h"
#include "fake_env.h"
#include "gwcache.h"

#define MS 1000ull
#define T0 (5000000ull)

#define UPNP_URL "http://192.0.2.1:5000/ctl/IPConn"
#define UPNP_ST  "urn:schemas-upnp-org:service:WANIPConnection:2"

static size_t read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* ---- the codec ---- */

static void test_vectors(void **state)
{
	(void)state;
	char dir[512], path[1024];
	static char buf[PM_GWC_FILE_MAX + 1];
	snprintf(dir, sizeof(dir), "%s/gwcache", PCPMAP_VECTOR_DIR);
	DIR *d = opendir(dir);
	assert_non_null(d);
	unsigned ok = 0, bad = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		size_t n = read_file(path, buf, sizeof(buf));
		struct pm_gwcache c;
		int r = pm_gwcache_parse(buf, n, &c);
		if (strncmp(e->d_name, "ok-", 3) == 0) {
			if (r != 0)
				fail_msg("%s: %d, expected 0", e->d_name, r);
			/* What parses formats back to something that parses the same. */
			static char out[PM_GWC_FILE_MAX + 1];
			int len = pm_gwcache_format(&c, out, sizeof(out));
			assert_true(len > 0);
			struct pm_gwcache c2;
			assert_int_equal(pm_gwcache_parse(out, (size_t)len, &c2), 0);
			assert_int_equal(c2.n, c.n);
			assert_memory_equal(c2.e, c.e, c.n * sizeof(c.e[0]));
			ok++;
		} else {
			if (r != -EBADMSG)
				fail_msg("%s: %d, expected -EBADMSG", e->d_name, r);
			bad++;
		}
	}
	closedir(d);
	assert_true(ok >= 5);
	assert_true(bad >= 20);
}

static void test_parse_fields(void **state)
{
	(void)state;
	static const char f[] =
	    "pcpmap-gwcache 1\n"
	    "gw=192.0.2.1 mac=02:77:00:00:00:01 proto=upnp pcp=refused learned=1764777600 "
	    "rtt=52277 url=" UPNP_URL " st=" UPNP_ST " lan=192.0.2.2\n";
	struct pm_gwcache c;
	assert_int_equal(pm_gwcache_parse(f, sizeof(f) - 1, &c), 0);
	assert_int_equal(c.n, 1);
	const struct pm_gwc_entry *e = pm_gwcache_find(&c, "192.0.2.1");
	assert_non_null(e);
	assert_string_equal(e->mac, "02:77:00:00:00:01");
	assert_int_equal(e->proto, PCPMAP_PROTO_UPNP);
	assert_int_equal(e->pcp, PM_GWC_PCP_REFUSED);
	assert_int_equal(e->learned, 1764777600u);
	assert_int_equal(e->rtt_us, 52277);
	assert_string_equal(e->url, UPNP_URL);
	assert_string_equal(e->st, UPNP_ST);
	assert_string_equal(e->lan, "192.0.2.2");
	assert_null(pm_gwcache_find(&c, "192.0.2.9"));
}

static void test_upsert_forgets_oldest(void **state)
{
	(void)state;
	struct pm_gwcache c;
	memset(&c, 0, sizeof(c));
	for (unsigned i = 0; i < PM_GWC_MAX; i++) {
		struct pm_gwc_entry e = { .proto = PCPMAP_PROTO_PCP, .learned = 100 + (i == 5 ? 0 : i + 1) };
		snprintf(e.gw, sizeof(e.gw), "10.0.0.%u", i);
		pm_gwcache_upsert(&c, &e);
	}
	assert_int_equal(c.n, PM_GWC_MAX);
	struct pm_gwc_entry n = { .gw = "10.9.9.9", .proto = PCPMAP_PROTO_NATPMP, .learned = 500 };
	pm_gwcache_upsert(&c, &n);
	assert_int_equal(c.n, PM_GWC_MAX);
	assert_null(pm_gwcache_find(&c, "10.0.0.5")); /* the oldest */
	assert_non_null(pm_gwcache_find(&c, "10.9.9.9"));
	n.proto = PCPMAP_PROTO_PCP;
	pm_gwcache_upsert(&c, &n); /* replaced in place */
	assert_int_equal(c.n, PM_GWC_MAX);
	assert_int_equal(pm_gwcache_find(&c, "10.9.9.9")->proto, PCPMAP_PROTO_PCP);
}

static void test_format_refuses_unstorable(void **state)
{
	(void)state;
	struct pm_gwcache c;
	char buf[512];
	memset(&c, 0, sizeof(c));
	c.n = 1;
	snprintf(c.e[0].gw, sizeof(c.e[0].gw), "10.0.0.1 proto=upnp"); /* a space would forge a field */
	c.e[0].proto = PCPMAP_PROTO_PCP;
	assert_int_equal(pm_gwcache_format(&c, buf, sizeof(buf)), -EINVAL);
	snprintf(c.e[0].gw, sizeof(c.e[0].gw), "10.0.0.1");
	assert_true(pm_gwcache_format(&c, buf, sizeof(buf)) > 0);
	assert_int_equal(pm_gwcache_format(&c, buf, 20), -ENOSPC);
}

/* ---- the file ---- */

static char tmpdir[64];

static int dir_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pcpmap-gwcache-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int dir_teardown(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/sub/%s", tmpdir, PM_GWC_FILE_NAME);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub", tmpdir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, PM_GWC_FILE_NAME);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

static void test_store_load(void **state)
{
	(void)state;
	char dir[128], path[256], why[160] = "";
	struct pm_gwcache c, back;
	memset(&c, 0, sizeof(c));
	struct pm_gwc_entry e = { .gw = "192.0.2.1",
				  .proto = PCPMAP_PROTO_NATPMP,
				  .pcp = PM_GWC_PCP_SILENT,
				  .learned = 7,
				  .rtt_us = 2500 };
	pm_gwcache_upsert(&c, &e);
	snprintf(dir, sizeof(dir), "%s/sub", tmpdir);
	assert_int_equal(pm_gwcache_load(dir, &back, why, sizeof(why)), -ENOENT);
	assert_int_equal(pm_gwcache_store(dir, &c), 0); /* creates the directory */
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/%s", dir, PM_GWC_FILE_NAME);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(pm_gwcache_load(dir, &back, why, sizeof(why)), 0);
	assert_int_equal(back.n, 1);
	assert_memory_equal(&back.e[0], &e, sizeof(e));
	/* No temporary file is left behind. */
	DIR *d = opendir(dir);
	assert_non_null(d);
	unsigned files = 0;
	for (struct dirent *de; (de = readdir(d));)
		files += de->d_name[0] != '.' || strncmp(de->d_name, ".gateways", 9) == 0;
	closedir(d);
	assert_int_equal(files, 1);
	/* A file others may write is not trusted. */
	assert_int_equal(chmod(path, 0622), 0);
	assert_int_equal(pm_gwcache_load(dir, &back, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "not a regular file of ours"));
}

/* ---- the engine ---- */

struct ctx {
	struct fake_clock clk;
	struct fake_rand rnd;
	struct pm_env env;
	pcpmap_client *c;
	enum pcpmap_event evs[16];
	size_t n;
	char log[4096];
};

static struct ctx X;
static const char *fake_mac = "02:77:00:00:00:01";

static int fake_neighbour(int family, const void *addr, char *ret, size_t len)
{
	(void)family;
	(void)addr;
	if (!fake_mac)
		return -ENOENT;
	snprintf(ret, len, "%s", fake_mac);
	return 0;
}

static void on_log(void *ud, enum pcpmap_log_level level, const char *msg)
{
	struct ctx *x = ud;
	(void)level;
	size_t l = strlen(x->log);
	snprintf(x->log + l, sizeof(x->log) - l, "%s\n", msg);
}

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct ctx *x = ud;
	(void)m;
	(void)info;
	if (x->n < 16)
		x->evs[x->n++] = ev;
}

/* A client as a fresh process would make it: same cache directory, nothing else carried over. */
static void client_new(struct ctx *x, bool no_cache)
{
	x->n = 0;
	x->log[0] = '\0';
	x->rnd.unit = 0.5;
	fake_env_init(&x->env, &x->clk, &x->rnd);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = "192.0.2.1"; /* the fakes never send anything */
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	cfg.cache_dir = tmpdir;
	cfg.no_gw_cache = no_cache;
	cfg.log = on_log;
	cfg.log_userdata = x;
	cfg.log_level = PCPMAP_LOG_DEBUG;
	assert_int_equal(pm_client_new_env(&x->c, &cfg, &x->env), 0);
	x->c->neighbour_lladdr = fake_neighbour;
	fake_backends_install(x->c);
}

static void client_free(struct ctx *x)
{
	x->c = pcpmap_client_free(x->c);
}

static int eng_setup(void **state)
{
	dir_setup(state);
	memset(&X, 0, sizeof(X));
	X.clk.now_us = T0;
	fake_mac = "02:77:00:00:00:01";
	*state = &X;
	return 0;
}

static int eng_teardown(void **state)
{
	struct ctx *x = *state;
	if (x->c)
		client_free(x);
	return dir_teardown(state);
}

static struct pm_mapping *start(struct ctx *x, uint16_t port)
{
	struct pcpmap_request req;
	pcpmap_mapping *m;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = port;
	req.callback = on_event;
	req.userdata = x;
	assert_int_equal(pcpmap_mapping_new(x->c, &req, &m), 0);
	return (struct pm_mapping *)m;
}

static void at(struct ctx *x, uint64_t t)
{
	x->clk.now_us = t;
	assert_int_equal(pcpmap_client_process(x->c), 0);
}

static void grant(struct ctx *x, struct pm_mapping *m)
{
	struct pm_reply r;
	memset(&r, 0, sizeof(r));
	r.kind = PM_REPLY_SUCCESS;
	r.lifetime = 600;
	r.ext_port = m->internal_port;
	pcp_addr_from_string("203.0.113.1", &r.ext_addr);
	x->c->now = x->clk.now_us;
	pm_mapping_on_reply(m, &r);
	at(x, x->clk.now_us);
}

static void cache_text(char *buf, size_t cap)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, PM_GWC_FILE_NAME);
	size_t n = read_file(path, buf, cap - 1);
	buf[n] = '\0';
}

/* The cold start of a UPnP-only gateway, as the real backends report it: PCP and NAT-PMP port unreachable,
 * then UPnP discovery finds the IGD. */
static void learn_upnp(struct ctx *x)
{
	client_new(x, false);
	struct pm_mapping *m = start(x, 1000);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	at(x, T0 + 1 * MS);
	x->c->now = x->clk.now_us;
	pm_server_on_unreachable(flog.srv[PCPMAP_PROTO_PCP], -ECONNREFUSED);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	at(x, T0 + 55 * MS);
	x->c->now = x->clk.now_us;
	pm_gw_memo_upnp(flog.srv[PCPMAP_PROTO_UPNP], UPNP_URL, UPNP_ST, "192.0.2.2");
	struct pcpmap_server_info info = { .rtt_usec = 52000 };
	pm_server_on_probe(flog.srv[PCPMAP_PROTO_UPNP], 0, &info);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_UPNP);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	client_free(x);
}

static void test_cold_upnp_is_remembered(void **state)
{
	struct ctx *x = *state;
	char text[1024];
	learn_upnp(x);
	cache_text(text, sizeof(text));
	assert_non_null(strstr(text, "gw=192.0.2.1 mac=02:77:00:00:00:01 proto=upnp pcp=refused"));
	assert_non_null(strstr(text, "url=" UPNP_URL " st=" UPNP_ST " lan=192.0.2.2"));
}

/* The second start goes to UPnP at once: no PCP request, no NAT-PMP probe, no discovery, and the UPnP
 * server is handed the remembered IGD (what makes the real backend skip SSDP). */
static void test_warm_upnp_skips_discovery(void **state)
{
	struct ctx *x = *state;
	learn_upnp(x);
	client_new(x, false);
	x->clk.now_us = T0 + 10000 * MS;
	struct pm_mapping *m = start(x, 1001);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_UPNP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_UPNP], 1);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 0);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 0);
	assert_int_equal(flog.opens[PCPMAP_PROTO_NATPMP], 0);
	/* The fakes do not set the local address; the hint wants the remembered one. */
	struct pm_server *s = flog.srv[PCPMAP_PROTO_UPNP];
	assert_int_equal(pm_sockaddr_set(&s->local, "192.0.2.2", 0), 0);
	const struct pm_gwc_entry *h = pm_gw_memo_upnp_hint(s);
	assert_non_null(h);
	assert_string_equal(h->url, UPNP_URL);
	assert_string_equal(h->st, UPNP_ST);
	assert_int_equal(pm_sockaddr_set(&s->local, "192.0.2.3", 0), 0);
	assert_null(pm_gw_memo_upnp_hint(s)); /* another address of ours: discover */
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	assert_non_null(strstr(x->log, "using UPnP as remembered"));
}

/* A gateway that drops PCP and answers NAT-PMP: remembered as such, the next start asks NAT-PMP only. */
static void test_warm_natpmp_when_pcp_silent(void **state)
{
	struct ctx *x = *state;
	char text[1024];
	client_new(x, false);
	struct pm_mapping *m = start(x, 1002);
	at(x, T0 + 3 * MS);
	x->c->now = x->clk.now_us;
	struct pcpmap_server_info info = { .rtt_usec = 2500 };
	pm_server_on_probe(flog.srv[PCPMAP_PROTO_NATPMP], 0, &info);
	at(x, T0 + 30 * MS); /* the grace PCP gets */
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_NATPMP);
	grant(x, m);
	client_free(x);
	cache_text(text, sizeof(text));
	assert_non_null(strstr(text, "proto=natpmp pcp=silent"));

	client_new(x, false);
	m = start(x, 1003);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 1);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 0);
	at(x, x->clk.now_us + 3 * MS);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	/* Verified: the silence timer is gone, nothing changes later. */
	at(x, x->clk.now_us + 1000 * MS);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_NATPMP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
}

static void remember_natpmp(struct ctx *x)
{
	struct pm_gwcache c;
	memset(&c, 0, sizeof(c));
	struct pm_gwc_entry e = { .gw = "192.0.2.1",
				  .mac = "02:77:00:00:00:01",
				  .proto = PCPMAP_PROTO_NATPMP,
				  .pcp = PM_GWC_PCP_SILENT,
				  .learned = (uint64_t)time(NULL),
				  .rtt_us = 2500 };
	pm_gwcache_upsert(&c, &e);
	assert_int_equal(pm_gwcache_store(tmpdir, &c), 0);
	(void)x;
}

/* The remembered NAT-PMP stays silent (the gateway changed): after the verification wait the gateway is
 * probed as on a cold start, and the mapping is made over what answers now; the cache learns it. */
static void test_warm_silent_falls_back(void **state)
{
	struct ctx *x = *state;
	char text[1024];
	remember_natpmp(x);
	client_new(x, false);
	struct pm_mapping *m = start(x, 1004);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 1);
	at(x, T0 + 199 * MS);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
	at(x, T0 + 200 * MS);
	assert_non_null(strstr(x->log, "remembered NAT-PMP did not answer within 200 ms: probing"));
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 1);
	assert_int_equal(m->server->ops->proto, PCPMAP_PROTO_PCP);
	at(x, T0 + 202 * MS);
	pm_server_on_reachable(m->server);
	grant(x, m);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_PCP);
	assert_int_equal(x->n, 1);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	cache_text(text, sizeof(text));
	assert_non_null(strstr(text, "proto=pcp pcp=yes"));
}

/* The remembered protocol's port is closed now: the probe starts at once (UPnP, the UDP ones failed). */
static void test_warm_unreachable_falls_back(void **state)
{
	struct ctx *x = *state;
	remember_natpmp(x);
	client_new(x, false);
	struct pm_mapping *m = start(x, 1005);
	at(x, T0 + 1 * MS);
	x->c->now = x->clk.now_us;
	pm_server_on_unreachable(flog.srv[PCPMAP_PROTO_NATPMP], -ECONNREFUSED);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	assert_int_equal(x->n, 0); /* not failed: waiting for UPnP */
	at(x, T0 + 60 * MS);
	x->c->now = x->clk.now_us;
	struct pcpmap_server_info info = { .rtt_usec = 50000 };
	pm_gw_memo_upnp(flog.srv[PCPMAP_PROTO_UPNP], UPNP_URL, UPNP_ST, "192.0.2.2");
	pm_server_on_probe(flog.srv[PCPMAP_PROTO_UPNP], 0, &info);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_UPNP);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	/* The verification timer of the failed memory does not fire into the new choice. */
	at(x, T0 + 2000 * MS);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_UPNP);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 0);
}

static void test_corrupt_cache_ignored(void **state)
{
	struct ctx *x = *state;
	char path[128], text[1024];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, PM_GWC_FILE_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static const char junk[] = "pcpmap-gwcache 1\ngw=192.0.2.1 proto=upnp learned=1\n"; /* no IGD */
	assert_int_equal(write(fd, junk, sizeof(junk) - 1), (ssize_t)(sizeof(junk) - 1));
	close(fd);
	client_new(x, false);
	struct pm_mapping *m = start(x, 1006);
	assert_non_null(strstr(x->log, "gateway cache ignored:"));
	assert_non_null(strstr(x->log, "is not a gateway cache this version understands"));
	/* A cold start. */
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 1);
	at(x, T0 + 2 * MS);
	pm_server_on_reachable(m->server);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	/* and the file is good again */
	cache_text(text, sizeof(text));
	assert_non_null(strstr(text, "proto=pcp pcp=yes"));
}

/* Same address, another router: the memory is not used. */
static void test_other_mac_probes(void **state)
{
	struct ctx *x = *state;
	remember_natpmp(x);
	fake_mac = "02:99:00:00:00:01";
	client_new(x, false);
	start(x, 1007);
	assert_non_null(strstr(x->log, "link-layer address 02:99:00:00:00:01, not the remembered"));
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 0);
	assert_int_equal(flog.probes[PCPMAP_PROTO_NATPMP], 1);
}

static void test_old_entry_probes(void **state)
{
	struct ctx *x = *state;
	struct pm_gwcache c;
	memset(&c, 0, sizeof(c));
	struct pm_gwc_entry e = { .gw = "192.0.2.1",
				  .proto = PCPMAP_PROTO_NATPMP,
				  .learned = (uint64_t)time(NULL) - PM_GWC_TRUST_S - 1 };
	pm_gwcache_upsert(&c, &e);
	assert_int_equal(pm_gwcache_store(tmpdir, &c), 0);
	client_new(x, false);
	start(x, 1008);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1); /* PCP is tried again */
	assert_int_equal(flog.sends[PCPMAP_PROTO_NATPMP], 0);
}

static void test_disabled_neither_reads_nor_writes(void **state)
{
	struct ctx *x = *state;
	char path[128];
	remember_natpmp(x);
	client_new(x, true);
	struct pm_mapping *m = start(x, 1009);
	assert_int_equal(flog.sends[PCPMAP_PROTO_PCP], 1);
	at(x, T0 + 2 * MS);
	pm_server_on_reachable(m->server);
	grant(x, m);
	client_free(x);
	char text[1024];
	cache_text(text, sizeof(text));
	assert_non_null(strstr(text, "proto=natpmp")); /* untouched */
	snprintf(path, sizeof(path), "%s/%s", tmpdir, PM_GWC_FILE_NAME);
}

/* A client limited to UPnP learns nothing about PCP there: its choice is not remembered for others. */
static void test_narrowed_choice_not_remembered(void **state)
{
	struct ctx *x = *state;
	char path[128];
	x->n = 0;
	x->rnd.unit = 0.5;
	fake_env_init(&x->env, &x->clk, &x->rnd);
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = "192.0.2.1";
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	cfg.cache_dir = tmpdir;
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP);
	assert_int_equal(pm_client_new_env(&x->c, &cfg, &x->env), 0);
	x->c->neighbour_lladdr = fake_neighbour;
	fake_backends_install(x->c);
	struct pm_mapping *m = start(x, 1010);
	assert_int_equal(flog.probes[PCPMAP_PROTO_UPNP], 1);
	x->c->now = x->clk.now_us;
	pm_gw_memo_upnp(flog.srv[PCPMAP_PROTO_UPNP], UPNP_URL, UPNP_ST, "192.0.2.2");
	struct pcpmap_server_info info = { .rtt_usec = 50000 };
	pm_server_on_probe(flog.srv[PCPMAP_PROTO_UPNP], 0, &info);
	assert_int_equal(m->gw->chosen, PCPMAP_PROTO_UPNP);
	grant(x, m);
	assert_int_equal(x->evs[0], PCPMAP_EVENT_MAPPED);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, PM_GWC_FILE_NAME);
	assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_upsert_forgets_oldest),
		cmocka_unit_test(test_format_refuses_unstorable),
		cmocka_unit_test_setup_teardown(test_store_load, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_cold_upnp_is_remembered, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_warm_upnp_skips_discovery, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_warm_natpmp_when_pcp_silent, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_warm_silent_falls_back, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_warm_unreachable_falls_back, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_cache_ignored, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_other_mac_probes, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_old_entry_probes, eng_setup, eng_teardown),
		cmocka_unit_test_setup_teardown(test_disabled_neither_reads_nor_writes, eng_setup,
						eng_teardown),
		cmocka_unit_test_setup_teardown(test_narrowed_choice_not_remembered, eng_setup, eng_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
