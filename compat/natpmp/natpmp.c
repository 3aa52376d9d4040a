/* SPDX-License-Identifier: MIT */
/*
 * The libnatpmp 20150609 API on pcpmap's public API. Each natpmp_t owns one pcpmap client; its descriptor is
 * natpmp_t::s, so the application's select()/poll() loop drives pcpmap, and every call here runs
 * pcpmap_client_process(), which retransmits, renews and re-creates every mapping of the session. A request
 * is "pending" until the state of its pcpmap mapping (or probe) answers it; nothing is sent twice for a
 * re-request of a live mapping. Since natpmp_t's layout is fixed, the session state lives in a registry keyed
 * by the descriptor.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define ENABLE_STRNATPMPERR
#include "natpmp.h"
#include "common/compat_common.h"
#include "natpmp/errmap.h"

/* libnatpmp gives up after nine sends, 0.25 s apart and doubling, at 127.75 s (doc/PROTOCOLS.md 2.3). */
#define NP_GIVE_UP_MS       127750u
/* The external address comes from pcpmap probes of this length, repeated until the give-up time. */
#define NP_PROBE_SLICE_MS   4000
/* Deleting a mapping this session does not hold (made by an earlier process) waits this long at most. */
#define NP_UNMAP_TIMEOUT_MS 3500

static char np_tag[] = "pcpmap-natpmp";

enum np_pend {
	NP_NONE = 0,
	NP_PUBLIC, /* waiting for a probe */
	NP_MAP,    /* waiting for a mapping to be in place, or to fail */
	NP_DELETE, /* waiting for the deletions in flight */
	NP_READY,  /* the answer is already known */
};

struct np_inst;

struct np_map {
	struct np_map *next;
	struct np_inst *inst;
	pcpmap_mapping *m;
	uint8_t ip_proto;
	uint16_t privport;
	bool ever_mapped;
	bool failed; /* a FAILED event arrived since the last request for it */
	int fail_err;
	int fail_rc;
	enum pcpmap_proto fail_proto;
	uint32_t epoch;
};

struct np_inst {
	struct np_inst *next;
	int fd;
	pcpmap_client *c;
	struct pmc_env env;
	struct np_map *maps;
	enum np_pend pend;
	uint16_t pend_type;
	uint16_t pend_privport;
	struct np_map *pend_map;
	uint64_t pend_deadline;
	uint64_t retransmits0;
	bool probing;
	bool probe_done;
	struct pcpmap_probe_result probe;
	uint32_t last_epoch;
	int ready_rc;
	natpmpresp_t ready;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct np_inst *reg_head;

static struct np_inst *inst_find(const natpmp_t *p)
{
	struct np_inst *i;
	if (!p)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	for (i = reg_head; i && i->fd != p->s; i = i->next)
		;
	pthread_mutex_unlock(&reg_lock);
	return i;
}

static struct np_inst *inst_unregister(const natpmp_t *p)
{
	struct np_inst **pp, *i = NULL;
	pthread_mutex_lock(&reg_lock);
	for (pp = &reg_head; *pp; pp = &(*pp)->next) {
		if ((*pp)->fd == p->s) {
			i = *pp;
			*pp = i->next;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return i;
}

/* The IPv4 default gateway from /proc/net/route (what libnatpmp does on Linux), network byte order. */
static int default_gateway4(in_addr_t *ret)
{
	char line[256];
	FILE *fp = fopen("/proc/net/route", "re");
	int r = -ENOENT;
	unsigned best_metric = ~0u;
	if (!fp)
		return -errno;
	while (fgets(line, sizeof(line), fp)) {
		char ifname[64];
		unsigned dest, gw, flags, refcnt, use, metric, mask;
		if (sscanf(line, "%63s %x %x %x %u %u %u %x", ifname, &dest, &gw, &flags, &refcnt, &use,
			   &metric, &mask) != 8)
			continue;
		/* RTF_UP | RTF_GATEWAY, destination and mask 0: a default route. The kernel prints the
		 * big-endian words as host integers, so the value is already in network byte order in memory. */
		if (dest == 0 && mask == 0 && (flags & 0x3) == 0x3 && metric < best_metric) {
			best_metric = metric;
			*ret = (in_addr_t)gw;
			r = 0;
		}
	}
	fclose(fp);
	return r;
}

static void map_cb(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info, void *ud)
{
	struct np_map *e = ud;
	(void)m;
	e->epoch = info->epoch;
	e->inst->last_epoch = info->epoch;
	switch (ev) {
	case PCPMAP_EVENT_MAPPED:
	case PCPMAP_EVENT_CHANGED:
		e->ever_mapped = true;
		if (e->inst->env.debug)
			pmc_debug(np_tag, "%s %u -> %s:%u lifetime %u s %s via %s (gateway %s)",
				  e->ip_proto == IPPROTO_TCP ? "TCP" : "UDP", e->privport,
				  info->external_addr, info->external_port, info->lifetime,
				  ev == PCPMAP_EVENT_CHANGED ? "changed" : "mapped",
				  pcpmap_proto_name(info->proto), info->server);
		break;
	case PCPMAP_EVENT_FAILED:
		e->failed = true;
		e->fail_err = info->error;
		e->fail_rc = info->result_code;
		e->fail_proto = info->proto;
		if (e->inst->env.debug)
			pmc_debug(np_tag, "%s %u failed via %s: %s (%s %d)",
				  e->ip_proto == IPPROTO_TCP ? "TCP" : "UDP", e->privport,
				  pcpmap_proto_name(info->proto), pcpmap_strerror(info->error),
				  pcpmap_result_name(info->proto, info->result_code), info->result_code);
		break;
	case PCPMAP_EVENT_LOST:
		if (e->inst->env.debug)
			pmc_debug(np_tag, "%s %u lost on the gateway, re-creating",
				  e->ip_proto == IPPROTO_TCP ? "TCP" : "UDP", e->privport);
		break;
	case PCPMAP_EVENT_DELETED:
		break;
	}
}

static void probe_cb(pcpmap_client *c, const struct pcpmap_probe_result *r, void *ud)
{
	struct np_inst *inst = ud;
	(void)c;
	inst->probing = false;
	inst->probe_done = true;
	inst->probe = *r;
}

static struct np_map *map_find(struct np_inst *inst, uint8_t ip_proto, uint16_t privport)
{
	for (struct np_map *e = inst->maps; e; e = e->next)
		if (e->ip_proto == ip_proto && e->privport == privport)
			return e;
	return NULL;
}

/* Removes an entry: deletes it on the gateway (delete) or leaves it to expire. */
static void map_drop(struct np_inst *inst, struct np_map *e, bool delete)
{
	for (struct np_map **pp = &inst->maps; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	if (inst->pend_map == e)
		inst->pend_map = NULL;
	if (delete)
		pcpmap_mapping_free(e->m);
	else
		pcpmap_mapping_abandon(e->m);
	free(e);
}

static uint8_t ip_proto_of(int protocol)
{
	return protocol == NATPMP_PROTOCOL_TCP ? IPPROTO_TCP : IPPROTO_UDP;
}

static void set_ready(struct np_inst *inst, int rc, const natpmpresp_t *resp)
{
	inst->pend = NP_READY;
	inst->ready_rc = rc;
	if (resp)
		inst->ready = *resp;
}

static void begin_request(struct np_inst *inst, natpmp_t *p, enum np_pend pend, uint16_t type,
			  uint16_t privport)
{
	struct pcpmap_stats st;
	pcpmap_client_get_stats(inst->c, &st);
	inst->retransmits0 = st.retransmits;
	inst->pend = pend;
	inst->pend_type = type;
	inst->pend_privport = privport;
	inst->pend_map = NULL;
	inst->pend_deadline = pcpmap_now_usec() + (uint64_t)NP_GIVE_UP_MS * 1000u;
	memset(&inst->ready, 0, sizeof(inst->ready));
	inst->ready.type = type;
	p->has_pending_request = 1;
	p->try_number = 1;
}

PCPMAP_EXPORT_COMPAT int initnatpmp(natpmp_t *p, int forcegw, in_addr_t forcedgw)
{
	struct pcpmap_client_config cfg;
	char gwbuf[INET_ADDRSTRLEN];
	in_addr_t gw = 0;

	if (!p)
		return NATPMP_ERR_INVALIDARGS;
	memset(p, 0, sizeof(*p));
	p->s = -1;
	struct np_inst *inst = calloc(1, sizeof(*inst));
	if (!inst)
		return NATPMP_ERR_SOCKETERROR;
	pmc_env_read(&inst->env, PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) | PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP),
		     0);
	pmc_client_config(&cfg, &inst->env, np_tag);
	cfg.transport_family = AF_INET;
	if (cfg.server) {
		/* PCPMAP_GATEWAY overrides both the route and forcedgw; report it when it is an IPv4 address. */
		char host[64];
		struct in_addr a;
		if (pmc_split_server(cfg.server, host, sizeof(host), NULL) == 0 &&
		    inet_pton(AF_INET, host, &a) == 1)
			gw = a.s_addr;
	} else if (forcegw) {
		gw = forcedgw;
		cfg.server = inet_ntop(AF_INET, &gw, gwbuf, sizeof(gwbuf));
	} else if (default_gateway4(&gw) < 0) {
		free(inst);
		return NATPMP_ERR_CANNOTGETGATEWAY;
	}
	int r = pcpmap_client_new(&inst->c, &cfg);
	if (r < 0) {
		free(inst);
		return r == -EINVAL ? NATPMP_ERR_INVALIDARGS : NATPMP_ERR_SOCKETERROR;
	}
	inst->fd = pcpmap_client_get_fd(inst->c);
	p->s = inst->fd;
	p->gateway = gw;
	pthread_mutex_lock(&reg_lock);
	inst->next = reg_head;
	reg_head = inst;
	pthread_mutex_unlock(&reg_lock);
	if (inst->env.debug)
		pmc_debug(np_tag, "session on gateway %s (protocols:%s%s%s)",
			  cfg.server ? cfg.server : inet_ntop(AF_INET, &gw, gwbuf, sizeof(gwbuf)),
			  inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) ? " PCP" : "",
			  inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP) ? " NAT-PMP" : "",
			  inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP) ? " UPnP" : "");
	return 0;
}

PCPMAP_EXPORT_COMPAT int closenatpmp(natpmp_t *p)
{
	if (!p)
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_unregister(p);
	if (!inst)
		return NATPMP_ERR_CLOSEERR;
	/* libnatpmp leaves mappings to their lifetime; so do we (deletions already asked for went out). */
	while (inst->maps)
		map_drop(inst, inst->maps, false);
	pcpmap_client_free(inst->c);
	free(inst);
	p->has_pending_request = 0;
	return 0;
}

PCPMAP_EXPORT_COMPAT int sendpublicaddressrequest(natpmp_t *p)
{
	struct np_inst *inst = inst_find(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	begin_request(inst, p, NP_PUBLIC, NATPMP_RESPTYPE_PUBLICADDRESS, 0);
	p->pending_request[0] = 0;
	p->pending_request[1] = 0;
	p->pending_request_len = 2;
	if (!inst->probing) {
		inst->probe_done = false;
		int r = pcpmap_client_probe(inst->c, NP_PROBE_SLICE_MS, probe_cb, inst);
		if (r < 0) {
			inst->pend = NP_NONE;
			p->has_pending_request = 0;
			return r == -EINVAL ? NATPMP_ERR_INVALIDARGS : NATPMP_ERR_SENDERR;
		}
		inst->probing = true;
	}
	return 2;
}

/* A mapping this session does not hold: an earlier process made it. The derived nonce lets PCP delete it. */
static void delete_unknown(struct np_inst *inst, uint8_t ip_proto, uint16_t privport)
{
	struct pcpmap_request req;
	struct pcpmap_mapping_info info;
	uint8_t nonce[12];
	natpmpresp_t resp;

	pmc_nonce(nonce, ip_proto, privport, NULL);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = ip_proto;
	req.internal_port = privport;
	req.nonce = nonce;
	memset(&info, 0, sizeof(info));
	int r = pcpmap_unmap_sync(inst->c, &req, NP_UNMAP_TIMEOUT_MS, &info);
	/* A fresh client deletes through PCP; a gateway that does not speak it is probed (which teaches pcpmap
	 * its protocol) and asked again. */
	if (r < 0 && !(info.proto == PCPMAP_PROTO_PCP && info.result_code > 1)) {
		struct pcpmap_probe_result pr;
		if (pcpmap_probe_sync(inst->c, NP_PROBE_SLICE_MS, &pr) == 0 &&
		    pr.chosen != PCPMAP_PROTO_NONE && pr.chosen != PCPMAP_PROTO_PCP) {
			memset(&info, 0, sizeof(info));
			r = pcpmap_unmap_sync(inst->c, &req, NP_UNMAP_TIMEOUT_MS, &info);
		}
	}
	/* Deleting what does not exist succeeds in NAT-PMP (RFC 6886 3.4); miniupnpd answers PCP with
	 * NO_RESOURCES there. */
	if (r < 0 && info.proto == PCPMAP_PROTO_PCP && info.result_code == 8)
		r = 0;
	memset(&resp, 0, sizeof(resp));
	resp.type = inst->pend_type;
	resp.epoch = info.epoch;
	resp.pnu.newportmapping.privateport = privport;
	int rc = r < 0 ? pmc_natpmp_error(r, info.proto, info.result_code) : 0;
	if (rc < 0)
		resp.resultcode = pmc_natpmp_resultcode(rc, info.proto, info.result_code);
	if (inst->env.debug)
		pmc_debug(np_tag, "%s %u (not made by this session) %s via %s",
			  ip_proto == IPPROTO_TCP ? "TCP" : "UDP", privport,
			  rc == 0 ? "deleted" : strnatpmperr(rc), pcpmap_proto_name(info.proto));
	set_ready(inst, rc, &resp);
}

PCPMAP_EXPORT_COMPAT int sendnewportmappingrequest(natpmp_t *p, int protocol, uint16_t privateport,
						   uint16_t publicport, uint32_t lifetime)
{
	if (!p || (protocol != NATPMP_PROTOCOL_TCP && protocol != NATPMP_PROTOCOL_UDP))
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_find(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	/* A mapping of "every port" exists only for deletion (RFC 6886 3.4). */
	if (privateport == 0 && lifetime != 0)
		return NATPMP_ERR_INVALIDARGS;
	uint8_t ip_proto = ip_proto_of(protocol);
	begin_request(inst, p, NP_MAP, (uint16_t)protocol, privateport);
	/* The request as NAT-PMP would carry it (RFC 6886 3.3), for applications that look. */
	unsigned char *q = p->pending_request;
	q[0] = 0;
	q[1] = (unsigned char)protocol;
	q[2] = q[3] = 0;
	q[4] = (unsigned char)(privateport >> 8);
	q[5] = (unsigned char)privateport;
	q[6] = (unsigned char)(publicport >> 8);
	q[7] = (unsigned char)publicport;
	for (int i = 0; i < 4; i++)
		q[8 + i] = (unsigned char)(lifetime >> (24 - 8 * i));
	p->pending_request_len = 12;

	struct np_map *e = privateport ? map_find(inst, ip_proto, privateport) : NULL;
	if (lifetime == 0) {
		inst->pend = NP_DELETE;
		inst->ready.pnu.newportmapping.privateport = privateport;
		if (privateport == 0) {
			/* Every mapping of this protocol that this session holds. */
			for (struct np_map *n, *x = inst->maps; x; x = n) {
				n = x->next;
				if (x->ip_proto == ip_proto)
					map_drop(inst, x, true);
			}
		} else if (e) {
			inst->ready.epoch = e->epoch;
			map_drop(inst, e, true);
		} else {
			delete_unknown(inst, ip_proto, privateport);
		}
		if (inst->env.debug && inst->pend == NP_DELETE)
			pmc_debug(np_tag, "%s %u: deletion sent", ip_proto == IPPROTO_TCP ? "TCP" : "UDP",
				  privateport);
		return 12;
	}

	if (e) {
		struct pcpmap_mapping_info info;
		pcpmap_mapping_get_info(e->m, &info);
		if (info.state == PCPMAP_STATE_FAILED) {
			map_drop(inst, e, false);
			e = NULL;
		}
	}
	if (!e) {
		struct pcpmap_request req;
		uint8_t nonce[12];
		e = calloc(1, sizeof(*e));
		if (!e) {
			set_ready(inst, NATPMP_ERR_OUTOFRESOURCES, NULL);
			return 12;
		}
		e->inst = inst;
		e->ip_proto = ip_proto;
		e->privport = privateport;
		pmc_nonce(nonce, ip_proto, privateport, NULL);
		pcpmap_request_init(&req, PCPMAP_KIND_MAP);
		req.ip_proto = ip_proto;
		req.internal_port = privateport;
		req.suggested_port = publicport;
		req.lifetime = lifetime;
		req.deadline_ms = NP_GIVE_UP_MS;
		req.nonce = nonce;
		req.callback = map_cb;
		req.userdata = e;
		int r = pcpmap_mapping_new(inst->c, &req, &e->m);
		if (r < 0) {
			free(e);
			set_ready(inst, pmc_natpmp_error(r, PCPMAP_PROTO_NONE, 0), NULL);
			return 12;
		}
		e->next = inst->maps;
		inst->maps = e;
	}
	e->failed = false;
	inst->pend_map = e;
	return 12;
}

/* Whether the pending request can be answered without waiting; fills resp and returns its code if so. */
static bool evaluate(struct np_inst *inst, bool start_probe, int *ret_rc, natpmpresp_t *resp)
{
	uint64_t now = pcpmap_now_usec();
	*resp = inst->ready;
	switch (inst->pend) {
	case NP_NONE:
		*ret_rc = NATPMP_ERR_NOPENDINGREQ;
		return true;
	case NP_READY:
		*ret_rc = inst->ready_rc;
		return true;
	case NP_DELETE:
		if (pcpmap_client_flush(inst->c, 0) == 0) {
			resp->epoch = inst->last_epoch;
			*ret_rc = 0;
			return true;
		}
		break;
	case NP_MAP: {
		struct np_map *e = inst->pend_map;
		struct pcpmap_mapping_info info;
		if (!e) {
			*ret_rc = NATPMP_ERR_UNDEFINEDERROR;
			return true;
		}
		pcpmap_mapping_get_info(e->m, &info);
		if ((info.state == PCPMAP_STATE_MAPPED || info.state == PCPMAP_STATE_REFRESHING) &&
		    info.external_port) {
			resp->epoch = info.epoch;
			resp->pnu.newportmapping.privateport = e->privport;
			resp->pnu.newportmapping.mappedpublicport = info.external_port;
			resp->pnu.newportmapping.lifetime = info.lifetime;
			*ret_rc = 0;
			return true;
		}
		if (e->failed) {
			*ret_rc =
			    pmc_natpmp_error(e->fail_err ? e->fail_err : -EPROTO, e->fail_proto, e->fail_rc);
			resp->epoch = info.epoch;
			resp->resultcode = pmc_natpmp_resultcode(*ret_rc, e->fail_proto, e->fail_rc);
			resp->pnu.newportmapping.privateport = e->privport;
			/* A mapping that never existed is not retried behind the application's back. */
			if (!e->ever_mapped)
				map_drop(inst, e, false);
			return true;
		}
		break;
	}
	case NP_PUBLIC:
		if (inst->probe_done) {
			const struct pcpmap_probe_result *r = &inst->probe;
			struct in_addr a;
			const struct pcpmap_server_info *si =
			    r->chosen == PCPMAP_PROTO_NATPMP ? &r->natpmp : &r->pcp;
			if (r->chosen != PCPMAP_PROTO_NONE && inet_pton(AF_INET, r->external_addr, &a) == 1) {
				resp->epoch = si->epoch;
				resp->pnu.publicaddress.addr = a;
				*ret_rc = 0;
				return true;
			}
			/* A server that answered with a refusal decides; so does ICMP from both. */
			const struct pcpmap_server_info *refusal = r->pcp.result_code      ? &r->pcp
								   : r->natpmp.result_code ? &r->natpmp
											   : NULL;
			if (refusal) {
				*ret_rc =
				    pmc_natpmp_error(refusal->error, refusal->proto, refusal->result_code);
				resp->epoch = refusal->epoch;
				resp->resultcode =
				    pmc_natpmp_resultcode(*ret_rc, refusal->proto, refusal->result_code);
				return true;
			}
			bool pcp_off = !(inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP));
			bool np_off = !(inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP));
			if ((pcp_off || r->pcp.error == -ECONNREFUSED) &&
			    (np_off || r->natpmp.error == -ECONNREFUSED)) {
				*ret_rc = NATPMP_ERR_NOGATEWAYSUPPORT;
				return true;
			}
			if (now < inst->pend_deadline && start_probe) {
				inst->probe_done = false;
				if (pcpmap_client_probe(inst->c, NP_PROBE_SLICE_MS, probe_cb, inst) == 0) {
					inst->probing = true;
					return false;
				}
			}
			if (now >= inst->pend_deadline) {
				*ret_rc = NATPMP_ERR_NOGATEWAYSUPPORT;
				return true;
			}
		}
		break;
	}
	if (now >= inst->pend_deadline) {
		*ret_rc = NATPMP_ERR_NOGATEWAYSUPPORT;
		return true;
	}
	return false;
}

PCPMAP_EXPORT_COMPAT int getnatpmprequesttimeout(natpmp_t *p, struct timeval *timeout)
{
	if (!p || !timeout)
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_find(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	if (inst->pend == NP_NONE)
		return NATPMP_ERR_NOPENDINGREQ;
	int rc;
	natpmpresp_t scratch;
	uint64_t wait_us = 0;
	/* A finished probe that must be repeated is repeated by the next read: come back at once. */
	if (inst->pend == NP_PUBLIC && !inst->probing) {
		wait_us = 0;
	} else if (!evaluate(inst, false, &rc, &scratch)) {
		uint64_t now = pcpmap_now_usec();
		uint64_t next = pcpmap_client_next_deadline(inst->c);
		if (inst->pend_deadline < next)
			next = inst->pend_deadline;
		wait_us = next > now ? next - now : 0;
	}
	timeout->tv_sec = (time_t)(wait_us / 1000000u);
	timeout->tv_usec = (suseconds_t)(wait_us % 1000000u);
	struct timeval now_tv;
	gettimeofday(&now_tv, NULL);
	timeradd(&now_tv, timeout, &p->retry_time);
	return 0;
}

PCPMAP_EXPORT_COMPAT int readnatpmpresponseorretry(natpmp_t *p, natpmpresp_t *response)
{
	if (!p || !response)
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_find(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	if (inst->pend == NP_NONE)
		return NATPMP_ERR_NOPENDINGREQ;
	int r = pcpmap_client_process(inst->c);
	if (r < 0 && inst->env.debug)
		pmc_debug(np_tag, "pcpmap_client_process: %s", pcpmap_strerror(r));
	struct pcpmap_stats st;
	pcpmap_client_get_stats(inst->c, &st);
	p->try_number = 1 + (int)(st.retransmits - inst->retransmits0);
	int rc;
	natpmpresp_t resp;
	if (!evaluate(inst, true, &rc, &resp))
		return NATPMP_TRYAGAIN;
	if (inst->env.debug && inst->pend == NP_PUBLIC) {
		char a[INET_ADDRSTRLEN];
		if (rc == 0)
			pmc_debug(np_tag, "public address %s via %s",
				  inet_ntop(AF_INET, &resp.pnu.publicaddress.addr, a, sizeof(a)),
				  pcpmap_proto_name(inst->probe.chosen));
		else
			pmc_debug(np_tag, "public address: %s", strnatpmperr(rc));
	}
	if (inst->env.debug && inst->pend == NP_DELETE && rc == 0)
		pmc_debug(np_tag, "%s %u deleted", inst->pend_type == NATPMP_PROTOCOL_TCP ? "TCP" : "UDP",
			  inst->pend_privport);
	inst->pend = NP_NONE;
	inst->pend_map = NULL;
	p->has_pending_request = 0;
	*response = resp;
	return rc;
}

PCPMAP_EXPORT_COMPAT const char *strnatpmperr(int t)
{
	switch (t) {
	case 0:
		return "success";
	case NATPMP_ERR_INVALIDARGS:
		return "invalid arguments";
	case NATPMP_ERR_SOCKETERROR:
		return "cannot create the port-mapping client";
	case NATPMP_ERR_CANNOTGETGATEWAY:
		return "no IPv4 default gateway";
	case NATPMP_ERR_CLOSEERR:
		return "closing a session that is not open";
	case NATPMP_ERR_RECVFROM:
		return "receiving from the gateway failed";
	case NATPMP_ERR_NOPENDINGREQ:
		return "no request is pending";
	case NATPMP_ERR_NOGATEWAYSUPPORT:
		return "the gateway answers neither PCP nor NAT-PMP";
	case NATPMP_ERR_CONNECTERR:
		return "connecting to the gateway failed";
	case NATPMP_ERR_WRONGPACKETSOURCE:
		return "a packet came from another host than the gateway";
	case NATPMP_ERR_SENDERR:
		return "sending to the gateway failed";
	case NATPMP_ERR_FCNTLERROR:
		return "fcntl() failed";
	case NATPMP_ERR_GETTIMEOFDAYERR:
		return "gettimeofday() failed";
	case NATPMP_ERR_UNSUPPORTEDVERSION:
		return "the gateway does not support this protocol version";
	case NATPMP_ERR_UNSUPPORTEDOPCODE:
		return "the gateway does not support this request";
	case NATPMP_ERR_UNDEFINEDERROR:
		return "the gateway refused for an unlisted reason";
	case NATPMP_ERR_NOTAUTHORIZED:
		return "the gateway refused: not authorized";
	case NATPMP_ERR_NETWORKFAILURE:
		return "the gateway has no working external network";
	case NATPMP_ERR_OUTOFRESOURCES:
		return "the gateway is out of mappings or ports";
	case NATPMP_TRYAGAIN:
		return "no answer yet, try again";
	default:
		return "unknown error";
	}
}
