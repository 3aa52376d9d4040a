/* Fake protocol backends (see fake_backend.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fake_backend.h"

struct fake_backend_log flog;

enum fake_act_kind { FA_REPLY = 0, FA_UNREACHABLE, FA_PROBE, FA_NATPMP_ONLY, FA_EPOCH };

struct fake_act {
	enum fake_act_kind kind;
	enum pcpmap_proto proto;
	pcpmap_mapping *m;
	struct pm_reply r;
	unsigned flags;
	int err;
	bool has_info;
	struct pcpmap_server_info info;
	uint32_t epoch;
};

#define FAKE_QUEUE 64
static struct fake_act queue[FAKE_QUEUE];
static size_t n_queue;
/* One eventfd per fake server, by protocol: the queue rings them all, the first to be read runs it. */
static int efd[PM_NPROTO] = { -1, -1, -1, -1 };

static int f_open(struct pm_server *s)
{
	enum pcpmap_proto p = pm_server_ops(s)->proto;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = pm_server_watch_fd(s, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	pm_server_set_priv(s, (void *)(intptr_t)(fd + 1));
	flog.opens[p]++;
	flog.srv[p] = s;
	efd[p] = fd;
	return 0;
}

static void f_close(struct pm_server *s)
{
	enum pcpmap_proto p = pm_server_ops(s)->proto;
	int fd = (int)(intptr_t)pm_server_priv(s) - 1;
	if (fd >= 0) {
		pm_server_unwatch_fd(s, fd);
		close(fd);
	}
	pm_server_set_priv(s, NULL);
	if (flog.srv[p] == s) {
		flog.srv[p] = NULL;
		efd[p] = -1;
	}
}

static int f_send(struct pm_server *s, struct pm_mapping *m, bool del)
{
	enum pcpmap_proto p = pm_server_ops(s)->proto;
	if (del) {
		flog.deletes[p]++;
	} else {
		struct pm_req v;
		pm_mapping_req(m, &v);
		flog.sends[p]++;
		if (flog.n_send_log < FAKE_SEND_LOG)
			flog.send_log[flog.n_send_log++] = (struct fake_send){
				.m = (const pcpmap_mapping *)m,
				.server = s,
				.proto = p,
				.n_filters = v.n_filters,
				.has_description = v.description != NULL,
				.at_us = pm_client_now(pm_server_client(s)),
			};
	}
	flog.last_send_server = s;
	return 0;
}

const struct fake_send *fake_last_send(const pcpmap_mapping *m)
{
	for (size_t i = flog.n_send_log; i-- > 0;)
		if (flog.send_log[i].m == m)
			return &flog.send_log[i];
	return NULL;
}

struct pm_server *fake_server_of(const pcpmap_mapping *m)
{
	const struct fake_send *f = fake_last_send(m);
	return f ? f->server : NULL;
}

size_t fake_sent_distinct(size_t since)
{
	size_t n = 0;
	for (size_t i = since; i < flog.n_send_log; i++) {
		bool seen = false;
		for (size_t j = since; j < i && !seen; j++)
			seen = flog.send_log[j].m == flog.send_log[i].m;
		n += !seen;
	}
	return n;
}

static void run(const struct fake_act *a)
{
	struct pm_server *s = flog.srv[a->proto];
	switch (a->kind) {
	case FA_REPLY:
		s = fake_server_of(a->m);
		if (s && (a->flags & FAKE_REACHABLE_FIRST))
			pm_server_on_reachable(s);
		if (s && (a->flags & FAKE_EPOCH_FIRST))
			pm_server_on_epoch(s, a->r.epoch, false, (struct pm_mapping *)a->m);
		pm_mapping_on_reply((struct pm_mapping *)a->m, &a->r);
		break;
	case FA_UNREACHABLE:
		if (s)
			pm_server_on_unreachable(s, a->err);
		break;
	case FA_PROBE:
		if (s)
			pm_server_on_probe(s, a->err, a->has_info ? &a->info : NULL);
		break;
	case FA_NATPMP_ONLY:
		if (s)
			pm_server_on_natpmp_only(s);
		break;
	case FA_EPOCH:
		if (s)
			flog.epoch_ok = pm_server_on_epoch(s, a->epoch, false, NULL);
		break;
	}
}

static void f_readable(struct pm_server *s, int fd, uint64_t now)
{
	uint64_t v;
	(void)s;
	(void)now;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	/* In the order queued; an action may queue no more (the queue is the test's). */
	size_t n = n_queue;
	struct fake_act acts[FAKE_QUEUE];
	memcpy(acts, queue, n * sizeof(acts[0]));
	n_queue = 0;
	for (size_t i = 0; i < n; i++)
		run(&acts[i]);
}

static void push(const struct fake_act *a)
{
	if (n_queue == FAKE_QUEUE)
		return;
	queue[n_queue++] = *a;
	uint64_t one = 1;
	for (int p = 0; p < PM_NPROTO; p++)
		if (efd[p] >= 0 && write(efd[p], &one, sizeof(one)) < 0)
			continue;
}

void fake_gw_reply(pcpmap_mapping *m, const struct pm_reply *r, unsigned flags)
{
	push(&(struct fake_act){ .kind = FA_REPLY, .m = m, .r = *r, .flags = flags });
}

void fake_gw_unreachable(enum pcpmap_proto p, int err)
{
	push(&(struct fake_act){ .kind = FA_UNREACHABLE, .proto = p, .err = err });
}

void fake_gw_probe(enum pcpmap_proto p, int err, const struct pcpmap_server_info *info)
{
	struct fake_act a = { .kind = FA_PROBE, .proto = p, .err = err, .has_info = info != NULL };
	if (info)
		a.info = *info;
	push(&a);
}

void fake_gw_natpmp_only(void)
{
	push(&(struct fake_act){ .kind = FA_NATPMP_ONLY, .proto = PCPMAP_PROTO_PCP });
}

void fake_gw_epoch(enum pcpmap_proto p, uint32_t epoch)
{
	push(&(struct fake_act){ .kind = FA_EPOCH, .proto = p, .epoch = epoch });
}

static int f_announce(struct pm_server *s)
{
	(void)s;
	return 0;
}
static int f_probe(struct pm_server *s)
{
	flog.probes[pm_server_ops(s)->proto]++;
	return 0;
}

const struct pm_backend_ops fake_pcp = { .proto = PCPMAP_PROTO_PCP,
					 .name = "PCP",
					 .irt_us = 3000000,
					 .mrt_us = 1024000000,
					 .server_open = f_open,
					 .server_close = f_close,
					 .send = f_send,
					 .readable = f_readable,
					 .announce = f_announce };
const struct pm_backend_ops fake_natpmp = { .proto = PCPMAP_PROTO_NATPMP,
					    .name = "NAT-PMP",
					    .irt_us = 250000,
					    .mrt_us = 64000000,
					    .server_open = f_open,
					    .server_close = f_close,
					    .send = f_send,
					    .readable = f_readable,
					    .announce = f_announce,
					    .probe = f_probe };
const struct pm_backend_ops fake_upnp = { .proto = PCPMAP_PROTO_UPNP,
					  .name = "UPnP",
					  .irt_us = 3000000,
					  .mrt_us = 60000000,
					  .server_open = f_open,
					  .server_close = f_close,
					  .send = f_send,
					  .readable = f_readable,
					  .announce = f_announce,
					  .probe = f_probe };

void fake_backends_install(pcpmap_client *c)
{
	memset(&flog, 0, sizeof(flog));
	n_queue = 0;
	for (int p = 0; p < PM_NPROTO; p++)
		efd[p] = -1;
	c->backends[PCPMAP_PROTO_PCP] = &fake_pcp;
	c->backends[PCPMAP_PROTO_NATPMP] = &fake_natpmp;
	c->backends[PCPMAP_PROTO_UPNP] = &fake_upnp;
}
