/* Gateway probe: every enabled protocol asked at once (PCP ANNOUNCE, NAT-PMP public address, UPnP
 * discovery), with round-trip times, epoch and external address. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "text/text.h"

/* The result slot of a protocol (p is PCP, NAT-PMP or UPnP). */
__attribute__((returns_nonnull)) static struct pcpmap_server_info *slot(pcpmap_client *c, enum pcpmap_proto p)
{
	if (p == PCPMAP_PROTO_NATPMP)
		return &c->probe.res.natpmp;
	if (p == PCPMAP_PROTO_UPNP)
		return &c->probe.res.upnp;
	return &c->probe.res.pcp;
}

static void finish(pcpmap_client *c)
{
	struct pcpmap_probe_result *r = &c->probe.res;
	struct pm_gw *gw = c->probe.gw;
	if (!c->probe.active)
		return;
	c->probe.active = false;
	sched_cancel(&c->sched, &c->probe.timer);
	if (c->probe.ext_map) {
		pcpmap_mapping_free(c->probe.ext_map);
		c->probe.ext_map = NULL;
	}
	/* Timed-out protocols say so. */
	static const enum pcpmap_proto all[] = { PCPMAP_PROTO_PCP, PCPMAP_PROTO_NATPMP, PCPMAP_PROTO_UPNP };
	for (size_t i = 0; i < 3; i++) {
		struct pcpmap_server_info *si = slot(c, all[i]);
		if (c->probe.pending & PCPMAP_PROTO_BIT(all[i])) {
			si->proto = all[i];
			if (!si->error && !si->version && !si->rtt_usec)
				si->error = -ETIMEDOUT;
		}
	}
	r->chosen = gw ? gw->chosen : PCPMAP_PROTO_NONE;
	if (r->chosen == PCPMAP_PROTO_NONE) {
		/* Nothing chosen yet (no mapping ever asked): the best protocol that answered. */
		for (size_t i = 0; i < 3; i++) {
			const struct pcpmap_server_info *si = slot(c, all[i]);
			if (si->proto != PCPMAP_PROTO_NONE && !si->error) {
				r->chosen = all[i];
				break;
			}
		}
	}
	const struct pcpmap_server_info *ci = r->chosen != PCPMAP_PROTO_NONE ? slot(c, r->chosen) : NULL;
	for (size_t i = 0; i < 3 && ci && !ci->external_addr[0]; i++) {
		const struct pcpmap_server_info *si = slot(c, all[i]);
		if (!si->error && si->external_addr[0])
			ci = si;
	}
	if (ci && ci->external_addr[0]) {
		pm_text_copy(r->external_addr, sizeof(r->external_addr), ci->external_addr);
		struct pcp_addr a;
		r->external_is_private = pcp_addr_from_string(r->external_addr, &a) == 0 &&
					 pcp_addr_is_v4(&a) && pm_addr_is_private(&a);
	}
	struct pm_event *e = calloc(1, sizeof(*e));
	struct pcpmap_probe_result *copy = malloc(sizeof(*copy));
	if (!e || !copy) {
		free(e);
		free(copy);
		return;
	}
	*copy = *r;
	e->kind = PM_EVENT_PROBE;
	e->probe_cb = c->probe.cb;
	e->userdata = c->probe.userdata;
	e->probe_result = copy;
	pm_client_queue_event(c, e);
}

static void answered(pcpmap_client *c, enum pcpmap_proto p)
{
	c->probe.pending &= ~PCPMAP_PROTO_BIT(p);
	if (!c->probe.pending)
		finish(c);
}

void pm_probe_on_answer(struct pm_server *s, enum pcpmap_proto proto, int err,
			const struct pcpmap_server_info *info)
{
	pcpmap_client *c = s->client;
	if (!c->probe.active || s->gw != c->probe.gw || !(c->probe.pending & PCPMAP_PROTO_BIT(proto)))
		return;
	struct pcpmap_server_info *si = slot(c, proto);
	if (info)
		*si = *info;
	si->proto = proto;
	if (!si->server[0])
		pm_text_copy(si->server, sizeof(si->server), s->name);
	si->error = err;
	if (!err && !si->rtt_usec)
		si->rtt_usec = (uint32_t)(c->now - c->probe.started);
	if (proto == PCPMAP_PROTO_PCP)
		return; /* the external address comes from the discard-port MAP (ext_map_cb) */
	answered(c, proto);
}

static void ext_map_cb(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		       void *ud)
{
	pcpmap_client *c = ud;
	(void)m;
	if (!c->probe.active)
		return;
	if (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) {
		snprintf(c->probe.res.pcp.external_addr, sizeof(c->probe.res.pcp.external_addr), "%s",
			 info->external_addr);
	} else if (ev != PCPMAP_EVENT_FAILED) {
		return;
	}
	/* RFC 6887 11.6: the mapping was only a question; give it back at once. */
	if (c->probe.ext_map) {
		pcpmap_mapping_free(c->probe.ext_map);
		c->probe.ext_map = NULL;
	}
	answered(c, PCPMAP_PROTO_PCP);
}

static void announce_cb(pcpmap_client *c, const struct pcpmap_server_info *info, void *ud)
{
	(void)ud;
	if (!c->probe.active)
		return;
	struct pcpmap_server_info *si = &c->probe.res.pcp;
	*si = *info;
	si->proto = PCPMAP_PROTO_PCP;
	if (info->error || info->proto != PCPMAP_PROTO_PCP) {
		if (!si->error)
			si->error = -EPROTONOSUPPORT;
		answered(c, PCPMAP_PROTO_PCP);
		return;
	}
	/* The external address: a short MAP of an unused high port (routers often deny the discard port 9 that
	 * RFC 6887 11.6 suggests), deleted as soon as it is answered. */
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_TCP;
	req.internal_port = (uint16_t)(49152 + pm_rand_u32(&c->env.rand) % 16384);
	req.lifetime = 120;
	req.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	req.description = "pcpmap probe";
	req.callback = ext_map_cb;
	req.userdata = c;
	uint64_t left = c->probe.deadline > c->now ? c->probe.deadline - c->now : 0;
	req.deadline_ms = (uint32_t)(left / 1000u) + 1;
	if (pcpmap_mapping_new(c, &req, &c->probe.ext_map) < 0) {
		c->probe.ext_map = NULL;
		answered(c, PCPMAP_PROTO_PCP);
	}
}

static void probe_timer(struct sched_timer *t, uint64_t now, void *arg)
{
	(void)t;
	(void)now;
	finish(arg);
}

PCPMAP_EXPORT int pcpmap_client_probe(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata)
{
	return c && timeout_ms > 0 ? c->ops->probe(c, timeout_ms, cb, userdata) : -EINVAL;
}

int pm_engine_probe(pcpmap_client *c, int timeout_ms, pcpmap_probe_fn cb, void *userdata)
{
	struct pm_gw *gw;
	if (c->probe.active)
		return -EBUSY;
	c->now = c->env.clock.now_us(c->env.clock.ctx);
	int r = pm_client_gateway_for(c, AF_INET, &gw);
	if (r < 0)
		return r;
	memset(&c->probe.res, 0, sizeof(c->probe.res));
	pm_text_copy(c->probe.res.gateway, sizeof(c->probe.res.gateway), gw->name);
	c->probe.active = true;
	c->probe.cb = cb;
	c->probe.userdata = userdata;
	c->probe.gw = gw;
	c->probe.started = c->now;
	c->probe.deadline = c->now + (uint64_t)timeout_ms * 1000u;
	c->probe.pending = 0;
	sched_arm(&c->sched, &c->probe.timer, c->probe.deadline);

	static const enum pcpmap_proto all[] = { PCPMAP_PROTO_PCP, PCPMAP_PROTO_NATPMP, PCPMAP_PROTO_UPNP };
	for (size_t i = 0; i < 3; i++) {
		enum pcpmap_proto p = all[i];
		if (!(c->cfg.protocols & PCPMAP_PROTO_BIT(p)) || !c->backends[p])
			continue;
		c->probe.pending |= PCPMAP_PROTO_BIT(p);
	}
	if (c->probe.pending & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP)) {
		struct pm_server *s;
		r = pm_gw_server(gw, PCPMAP_PROTO_PCP, &s);
		if (r == 0)
			r = pm_client_announce_on(c, s, timeout_ms, announce_cb, NULL);
		if (r < 0) {
			c->probe.res.pcp.proto = PCPMAP_PROTO_PCP;
			c->probe.res.pcp.error = r;
			c->probe.pending &= ~PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
		}
	}
	for (size_t i = 1; i < 3; i++) {
		enum pcpmap_proto p = all[i];
		if (!(c->probe.pending & PCPMAP_PROTO_BIT(p)))
			continue;
		struct pm_server *s;
		r = pm_gw_server(gw, p, &s);
		if (r == 0)
			r = c->backends[p]->probe ? c->backends[p]->probe(s) : -EOPNOTSUPP;
		if (r < 0) {
			struct pcpmap_server_info *si = slot(c, p);
			si->proto = p;
			si->error = r;
			c->probe.pending &= ~PCPMAP_PROTO_BIT(p);
		}
	}
	if (!c->probe.pending)
		finish(c);
	return 0;
}

struct probe_wait {
	bool done;
	struct pcpmap_probe_result *ret;
};

static bool probe_done(pcpmap_client *c, void *ud)
{
	(void)c;
	return ((struct probe_wait *)ud)->done;
}

static void sync_cb(pcpmap_client *c, const struct pcpmap_probe_result *r, void *ud)
{
	struct probe_wait *w = ud;
	(void)c;
	*w->ret = *r;
	w->done = true;
}

int pm_engine_probe_sync(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret)
{
	struct probe_wait w = { .ret = ret };
	int r = pm_engine_probe(c, timeout_ms, sync_cb, &w);
	if (r < 0)
		return r;
	r = pm_client_wait(c, probe_done, &w, -1);
	if (r < 0)
		return r;
	/* The probe's own MAP is being deleted: let that finish briefly so it leaves nothing behind. */
	pcpmap_client_flush(c, 1000);
	return 0;
}

PCPMAP_EXPORT int pcpmap_probe_sync_sized(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret,
					  size_t size)
{
	struct pcpmap_probe_result full;
	if (!c || !ret || size < PM_PROBE_SIZE_V0 || timeout_ms <= 0)
		return -EINVAL;
	memset(&full, 0, sizeof(full));
	int r = c->ops->probe_sync(c, timeout_ms, &full);
	if (r == 0)
		memcpy(ret, &full, size < sizeof(full) ? size : sizeof(full));
	return r;
}

PCPMAP_EXPORT int(pcpmap_probe_sync)(pcpmap_client *c, int timeout_ms, struct pcpmap_probe_result *ret)
{
	return pcpmap_probe_sync_sized(c, timeout_ms, ret, PM_PROBE_SIZE_V0);
}

void pm_probe_init(pcpmap_client *c)
{
	sched_timer_init(&c->probe.timer, probe_timer, c, "probe");
}

void pm_probe_fini(pcpmap_client *c)
{
	c->probe.active = false;
	c->probe.ext_map = NULL;
	sched_cancel(&c->sched, &c->probe.timer);
}
