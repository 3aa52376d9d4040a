/* SPDX-License-Identifier: MIT */
/*
 * The libnatpmp 20150609 API on pcpmap's public API. Each natpmp_t owns one pcpmap client. natpmp_t::s is an
 * epoll descriptor of this library holding the client's descriptor and a UDP socket for the few NAT-PMP
 * exchanges pcpmap's API does not express (the address request, which creates nothing; the deletion of a
 * mapping another NAT-PMP client made; "delete every mapping"), so the application's select()/poll() loop
 * wakes for both. Every call runs pcpmap_client_process(), and a thread per session (the keeper) does between
 * calls, until the lease the application asked for ends: gateways may grant less. A request is "pending" until
 * the state of its pcpmap mapping (or address query) answers it; nothing is sent twice for a re-request of a
 * live mapping. Since natpmp_t's layout is fixed, the session state lives in a registry keyed by the
 * descriptor.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define ENABLE_STRNATPMPERR
#include "natpmp.h"
#include "common/compat_common.h"
#include "natpmp/errmap.h"

/* libnatpmp gives up after nine sends, 0.25 s apart and doubling, at 127.75 s (doc/PROTOCOLS.md 2.3). */
#define NP_GIVE_UP_MS          127750u
/* Deleting a mapping this session does not hold (made by an earlier process) waits this long at most. */
#define NP_UNMAP_TIMEOUT_MS    3500
/* RFC 6886 3.1: first retransmission after 250 ms, doubling. */
#define NP_RAW_IRT_US          250000u
/* "Delete every mapping" and a NAT-PMP deletion after a PCP refusal: sends at 0, 0.25 and 0.75 s, 1.75 s in all. */
#define NP_RAW_SHORT_TRIES     3
/* The address request: RFC 6886's nine tries. */
#define NP_RAW_TRIES           9
/* The address mapping of a PCP-only gateway is deleted before the answer, unless that takes longer. */
#define NP_ADDR_DELETE_WAIT_US 1000000u

static char np_tag[] = "pcpmap-natpmp";

enum np_pend {
	NP_NONE = 0,
	NP_PUBLIC, /* waiting for the address (struct np_addr_query) */
	NP_MAP,    /* waiting for a mapping to be in place, or to fail */
	NP_DELETE, /* waiting for the deletions in flight */
	NP_READY,  /* the answer is already known */
};

struct np_inst;

/* One NAT-PMP exchange on the session's own socket (RFC 6886 3.1 retransmission). */
struct np_raw {
	int fd; /* connected to the gateway; -1 when NAT-PMP is not to be used */
	bool busy;
	uint8_t req[12];
	size_t len;
	unsigned tries, max_tries;
	uint64_t first_us, next_us; /* next_us: the next send, or the give-up time after the last */
};

struct np_map {
	struct np_map *next;
	struct np_inst *inst;
	pcpmap_mapping *m;
	uint8_t ip_proto;
	uint16_t privport;
	uint64_t lease_end; /* when the lifetime the application asked for ends (pcpmap_now_usec()) */
	bool ever_mapped;
	bool failed; /* a FAILED event arrived since the last request for it */
	int fail_err;
	int fail_rc;
	enum pcpmap_proto fail_proto;
	uint32_t epoch;
};

/* An address request in flight (issues 12, 13 of doc/COMPAT.md: nothing left on the gateway, no waiting for a
 * protocol that does not answer). */
struct np_addr_query {
	bool ann_busy, ann_done; /* PCP ANNOUNCE: is PCP there? */
	int ann_err;
	uint64_t ann_at;  /* when PCP answered */
	uint32_t ann_rtt; /* microseconds */
	bool np_done;     /* NAT-PMP answered (or refused, or gave up) */
	int np_err;
	uint16_t np_result;
	uint32_t np_epoch;
	struct in_addr np_addr;
	pcpmap_mapping *m; /* PCP only: the shortest mapping possible, deleted once answered */
	int m_sock;        /* the UDP port that mapping names, held so no one else's mapping is touched */
	bool m_done;
	int m_err, m_rc;
	uint32_t m_epoch;
	char m_addr[48];
	uint64_t m_done_at;
	enum pcpmap_proto src;
};

struct np_inst {
	struct np_inst *next;
	pthread_mutex_t lock; /* one thread at a time in the client: the application's or the keeper */
	int fd;               /* natpmp_t::s: our epoll descriptor */
	pcpmap_client *c;
	struct pmc_env env;
	struct np_map *maps;
	enum np_pend pend;
	enum np_pend pend_kind; /* what was asked (pend becomes NP_READY once answered) */
	uint16_t pend_type;
	uint16_t pend_privport;
	struct np_map *pend_map;
	uint64_t pend_deadline;
	uint64_t retransmits0;
	bool del_all;      /* NP_DELETE of every port: the NAT-PMP request is in raw */
	int del_all_count; /* mappings of the session deleted with it */
	int del_all_np;    /* NAT-PMP's part: 0 in flight, 1 answered (del_all_ans), or -errno */
	uint8_t del_all_ans[16];
	struct np_raw raw;
	struct np_addr_query q;
	uint32_t last_epoch;
	int ready_rc;
	natpmpresp_t ready;
	int wake_fd;
	/* In the epoll set of s: readable while an answer waits for readnatpmpresponseorretry(). The keeper may
	 * take the answer off the client's socket between the application's calls; s must still wake it. */
	int ready_fd;
	bool keeper; /* the keeper thread runs */
	bool
	    closed; /* closenatpmp() ran (guarded by reg_lock); the keeper frees the session once no lease is left */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct np_inst *reg_head;
/* Closed sessions whose keeper still renews mappings (guarded by reg_lock). */
static struct np_inst *closed_head;

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

/*
 * A session that was closed while it still renewed this mapping gives it up to the session asking for it now
 * (both use the same derived nonce): otherwise the old keeper would re-create what the new session deletes.
 * privport 0 ("delete every mapping") deletes them there. Returns how many were given up.
 */
static int take_over_closed(uint8_t ip_proto, uint16_t privport)
{
	int n_taken = 0;
	pthread_mutex_lock(&reg_lock);
	for (struct np_inst *o = closed_head; o; o = o->next) {
		pthread_mutex_lock(&o->lock);
		for (struct np_map *n, *e = o->maps; e; e = n) {
			n = e->next;
			if (e->ip_proto == ip_proto && (privport == 0 || e->privport == privport)) {
				map_drop(o, e, privport == 0);
				n_taken++;
			}
		}
		pthread_mutex_unlock(&o->lock);
		if (o->wake_fd >= 0) {
			uint64_t one = 1;
			(void)!write(o->wake_fd, &one, sizeof(one));
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return n_taken;
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
	if (inst->ready_fd >= 0) {
		uint64_t one = 1;
		(void)!write(inst->ready_fd, &one, sizeof(one));
	}
}

/* s stops showing an answer (reported, or replaced by a new request). */
static void ready_clear(struct np_inst *inst)
{
	uint64_t v;
	if (inst->ready_fd >= 0)
		(void)!read(inst->ready_fd, &v, sizeof(v));
}

static void begin_request(struct np_inst *inst, natpmp_t *p, enum np_pend pend, uint16_t type,
			  uint16_t privport)
{
	struct pcpmap_stats st;
	pcpmap_client_get_stats(inst->c, &st);
	inst->retransmits0 = st.retransmits;
	inst->pend = inst->pend_kind = pend;
	inst->pend_type = type;
	inst->pend_privport = privport;
	inst->pend_map = NULL;
	inst->pend_deadline = pcpmap_now_usec() + (uint64_t)NP_GIVE_UP_MS * 1000u;
	inst->del_all = false;
	ready_clear(inst);
	memset(&inst->ready, 0, sizeof(inst->ready));
	inst->ready.type = type;
	p->has_pending_request = 1;
	p->try_number = 1;
}

/* ---- NAT-PMP on the session's own socket ---- */

static void raw_send(struct np_raw *r)
{
	/* A lost datagram is what retransmission is for; ECONNREFUSED shows on the next recv. */
	(void)!send(r->fd, r->req, r->len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int raw_start(struct np_raw *r, const uint8_t *req, size_t len, unsigned max_tries)
{
	uint8_t junk[16];
	if (r->fd < 0)
		return -EPROTONOSUPPORT;
	/* Answers to an earlier exchange, and a pending ICMP error, belong to it. */
	while (recv(r->fd, junk, sizeof(junk), MSG_DONTWAIT) >= 0 || errno == ECONNREFUSED)
		;
	memcpy(r->req, req, len);
	r->len = len;
	r->busy = true;
	r->tries = 1;
	r->max_tries = max_tries;
	r->first_us = pcpmap_now_usec();
	r->next_us = r->first_us + NP_RAW_IRT_US;
	raw_send(r);
	return 0;
}

/*
 * Reads the answer of the exchange in flight and retransmits when due: 1 with the answer in ans (its length in
 * *alen), 0 while there is none, -ECONNREFUSED (ICMP: nothing on the port), -ETIMEDOUT after the last try.
 */
static int raw_poll(struct np_raw *r, uint8_t ans[16], size_t *alen)
{
	if (!r->busy)
		return -EINVAL;
	for (;;) {
		ssize_t n = recv(r->fd, ans, 16, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ECONNREFUSED) {
				r->busy = false;
				return -ECONNREFUSED;
			}
			break;
		}
		/* RFC 6886 3.2, 3.3: version 0, the request's opcode + 128, and for mappings its private port. */
		if (n < 8 || ans[0] != 0 || ans[1] != (uint8_t)(0x80 | r->req[1]))
			continue;
		if (r->req[1] != 0 && (n < 16 || memcmp(ans + 8, r->req + 4, 2) != 0))
			continue;
		*alen = (size_t)n;
		r->busy = false;
		return 1;
	}
	uint64_t now = pcpmap_now_usec();
	while (now >= r->next_us) {
		if (r->tries >= r->max_tries) {
			r->busy = false;
			return -ETIMEDOUT;
		}
		raw_send(r);
		r->tries++;
		r->next_us = r->first_us + NP_RAW_IRT_US * ((1ull << r->tries) - 1);
	}
	return 0;
}

/* One exchange, blocking (the application's call waits, as for the other deletions of this file). */
static int raw_exchange(struct np_raw *r, const uint8_t *req, size_t len, uint8_t ans[16], size_t *alen)
{
	int res = raw_start(r, req, len, NP_RAW_SHORT_TRIES);
	while (res == 0) {
		res = raw_poll(r, ans, alen);
		if (res != 0)
			break;
		uint64_t now = pcpmap_now_usec();
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
		poll(&pfd, 1, r->next_us > now ? (int)((r->next_us - now + 999) / 1000) : 0);
	}
	return res < 0 ? res : 0;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* RFC 6886 3.3: a mapping request; private port 0 with lifetime 0 deletes every mapping of the client. */
static size_t natpmp_map_request(uint8_t req[12], int protocol, uint16_t privport, uint16_t pubport,
				 uint32_t lifetime)
{
	req[0] = 0;
	req[1] = (uint8_t)protocol;
	req[2] = req[3] = 0;
	req[4] = (uint8_t)(privport >> 8);
	req[5] = (uint8_t)privport;
	req[6] = (uint8_t)(pubport >> 8);
	req[7] = (uint8_t)pubport;
	for (int i = 0; i < 4; i++)
		req[8 + i] = (uint8_t)(lifetime >> (24 - 8 * i));
	return 12;
}

/* ---- the keeper: renewals between the application's calls (issue 14 of doc/COMPAT.md) ---- */

static bool evaluate(struct np_inst *inst, int *ret_rc, natpmpresp_t *resp);

static void inst_destroy(struct np_inst *inst)
{
	if (inst->q.m)
		pcpmap_mapping_free(inst->q.m);
	pcpmap_client_free(inst->c);
	if (inst->fd >= 0)
		close(inst->fd);
	if (inst->raw.fd >= 0)
		close(inst->raw.fd);
	if (inst->q.m_sock >= 0)
		close(inst->q.m_sock);
	if (inst->wake_fd >= 0)
		close(inst->wake_fd);
	if (inst->ready_fd >= 0)
		close(inst->ready_fd);
	pthread_mutex_destroy(&inst->lock);
	free(inst);
}

/* Ends the mappings whose requested lease is over (the gateway would have removed them); the next end. */
static uint64_t expire_leases(struct np_inst *inst)
{
	uint64_t now = pcpmap_now_usec(), next = UINT64_MAX;
	for (struct np_map *n, *e = inst->maps; e; e = n) {
		n = e->next;
		if (e == inst->pend_map)
			continue;
		if (e->lease_end <= now) {
			if (inst->env.debug)
				pmc_debug(np_tag, "%s %u: the lifetime asked for ended, deleting",
					  e->ip_proto == IPPROTO_TCP ? "TCP" : "UDP", e->privport);
			map_drop(inst, e, true);
		} else if (e->lease_end < next) {
			next = e->lease_end;
		}
	}
	return next;
}

static void *keeper_run(void *arg)
{
	struct np_inst *inst = arg;
	for (;;) {
		pthread_mutex_lock(&inst->lock);
		int r = pcpmap_client_process(inst->c);
		uint64_t end = expire_leases(inst);
		/* An answer the processing brought is settled now, so s wakes the application. */
		if (inst->pend != NP_NONE && inst->pend != NP_READY) {
			int rc;
			natpmpresp_t scratch;
			(void)evaluate(inst, &rc, &scratch);
		}
		bool empty = !inst->maps;
		int t = pcpmap_client_get_timeout(inst->c);
		int cfd = pcpmap_client_get_fd(inst->c);
		pthread_mutex_unlock(&inst->lock);
		if (empty) {
			/* closenatpmp() sets closed under reg_lock as its last touch of the session: once we see it
			 * there, the session is ours alone to free. */
			bool gone = false;
			pthread_mutex_lock(&reg_lock);
			if (inst->closed) {
				for (struct np_inst **pp = &closed_head; *pp; pp = &(*pp)->next) {
					if (*pp == inst) {
						*pp = inst->next;
						break;
					}
				}
				gone = true;
			}
			pthread_mutex_unlock(&reg_lock);
			if (gone)
				break;
		}
		if (end != UINT64_MAX) {
			uint64_t now = pcpmap_now_usec();
			uint64_t ms = end > now ? (end - now + 999) / 1000 : 0;
			if (t < 0 || (uint64_t)t > ms)
				t = ms > 3600000 ? 3600000 : (int)ms;
		}
		if (r < 0 && (t < 0 || t < 100))
			t = 100; /* a client that fails to process must not spin */
		struct pollfd pfd[2] = { { .fd = cfd, .events = POLLIN },
					 { .fd = inst->wake_fd, .events = POLLIN } };
		if (poll(pfd, 2, t) > 0 && (pfd[1].revents & POLLIN)) {
			uint64_t v;
			(void)!read(inst->wake_fd, &v, sizeof(v));
		}
	}
	/* Deletions of ended leases still in flight get their chance before the client goes. */
	pcpmap_client_flush(inst->c, 2000);
	inst_destroy(inst);
	return NULL;
}

static void keeper_start(struct np_inst *inst)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	if (inst->keeper || inst->wake_fd < 0)
		return;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Every signal stays with the application's threads. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&th, &attr, keeper_run, inst);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	inst->keeper = r == 0;
	if (r != 0 && inst->env.debug)
		pmc_debug(np_tag,
			  "no renewal thread (%s): mappings are renewed only while the application calls",
			  strerror(r));
}

/* Finds and locks the session of p. */
static struct np_inst *inst_lock(const natpmp_t *p)
{
	struct np_inst *i = inst_find(p);
	if (i)
		pthread_mutex_lock(&i->lock);
	return i;
}

/* Unlocks and lets the keeper recompute its deadline. */
static void inst_unlock(struct np_inst *inst)
{
	pthread_mutex_unlock(&inst->lock);
	if (inst->keeper) {
		uint64_t one = 1;
		(void)!write(inst->wake_fd, &one, sizeof(one));
	}
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
	inst->fd = inst->raw.fd = inst->q.m_sock = inst->wake_fd = inst->ready_fd = -1;
	pthread_mutex_init(&inst->lock, NULL);
	pmc_env_read(&inst->env, PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) | PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP),
		     0);
	pmc_client_config(&cfg, &inst->env, np_tag);
	cfg.transport_family = AF_INET;
	char host[64] = "";
	uint16_t port = 0;
	if (cfg.server) {
		/* PCPMAP_GATEWAY overrides both the route and forcedgw; report it when it is an IPv4 address. */
		struct in_addr a;
		if (pmc_split_server(cfg.server, host, sizeof(host), &port) == 0 &&
		    inet_pton(AF_INET, host, &a) == 1)
			gw = a.s_addr;
		else
			host[0] = '\0';
	} else if (forcegw) {
		gw = forcedgw;
		cfg.server = inet_ntop(AF_INET, &gw, gwbuf, sizeof(gwbuf));
	} else if (default_gateway4(&gw) < 0) {
		inst_destroy(inst);
		return NATPMP_ERR_CANNOTGETGATEWAY;
	}
	if (!host[0] && gw)
		inet_ntop(AF_INET, &gw, host, sizeof(host));
	int r = pcpmap_client_new(&inst->c, &cfg);
	if (r < 0) {
		inst_destroy(inst);
		return r == -EINVAL ? NATPMP_ERR_INVALIDARGS : NATPMP_ERR_SOCKETERROR;
	}
	inst->fd = epoll_create1(EPOLL_CLOEXEC);
	inst->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	inst->ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	struct epoll_event rev = { .events = EPOLLIN };
	ev.data.fd = pcpmap_client_get_fd(inst->c);
	rev.data.fd = inst->ready_fd;
	if (inst->fd < 0 || inst->wake_fd < 0 || inst->ready_fd < 0 ||
	    epoll_ctl(inst->fd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0 ||
	    epoll_ctl(inst->fd, EPOLL_CTL_ADD, inst->ready_fd, &rev) < 0) {
		inst_destroy(inst);
		return NATPMP_ERR_SOCKETERROR;
	}
	/* Our own NAT-PMP socket, towards the gateway's NAT-PMP port (the PCP port: RFC 6887 shares 5351). */
	if ((inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP)) && host[0]) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port ? port : 5351) };
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ev.data.fd = s;
		if (s >= 0 && inet_pton(AF_INET, host, &sa.sin_addr) == 1 &&
		    connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    epoll_ctl(inst->fd, EPOLL_CTL_ADD, s, &ev) == 0) {
			inst->raw.fd = s;
		} else if (s >= 0) {
			close(s);
		}
	}
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

/* Ends the address query in flight: its mapping is deleted, its port released. */
static void query_reset(struct np_inst *inst)
{
	struct np_addr_query *q = &inst->q;
	bool ann_busy = q->ann_busy;
	if (q->m)
		pcpmap_mapping_free(q->m);
	if (q->m_sock >= 0)
		close(q->m_sock);
	memset(q, 0, sizeof(*q));
	q->m_sock = -1;
	q->ann_busy = ann_busy; /* its callback is still to come */
	inst->raw.busy = false;
}

PCPMAP_EXPORT_COMPAT int closenatpmp(natpmp_t *p)
{
	if (!p)
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_unregister(p);
	if (!inst)
		return NATPMP_ERR_CLOSEERR;
	pthread_mutex_lock(&inst->lock);
	query_reset(inst);
	inst->pend = NP_NONE;
	inst->pend_map = NULL;
	close(inst->fd);
	inst->fd = -1;
	/* Failed mappings go; live ones stay renewed until the lease asked for ends (libnatpmp leaves a mapping
	 * on the gateway for its lifetime; here the gateway may have granted less). */
	for (struct np_map *n, *e = inst->maps; e; e = n) {
		struct pcpmap_mapping_info info;
		n = e->next;
		pcpmap_mapping_get_info(e->m, &info);
		if (info.state == PCPMAP_STATE_FAILED || !e->ever_mapped)
			map_drop(inst, e, false);
	}
	p->has_pending_request = 0;
	if (inst->keeper) {
		/* The keeper frees the session once no lease is left; after reg_lock is released it may be gone. */
		pthread_mutex_unlock(&inst->lock);
		pthread_mutex_lock(&reg_lock);
		inst->next = closed_head;
		closed_head = inst;
		inst->closed = true;
		uint64_t one = 1;
		(void)!write(inst->wake_fd, &one, sizeof(one));
		pthread_mutex_unlock(&reg_lock);
		return 0;
	}
	while (inst->maps)
		map_drop(inst, inst->maps, false);
	pthread_mutex_unlock(&inst->lock);
	inst_destroy(inst);
	return 0;
}

static void announce_cb(pcpmap_client *c, const struct pcpmap_server_info *info, void *ud)
{
	struct np_inst *inst = ud;
	(void)c;
	inst->q.ann_busy = false;
	inst->q.ann_done = true;
	inst->q.ann_err = info->error ? info->error : info->proto != PCPMAP_PROTO_PCP ? -EPROTONOSUPPORT : 0;
	inst->q.ann_at = pcpmap_now_usec();
	inst->q.ann_rtt = info->rtt_usec;
}

static void addr_map_cb(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
			void *ud)
{
	struct np_inst *inst = ud;
	struct np_addr_query *q = &inst->q;
	(void)m;
	if (ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) {
		snprintf(q->m_addr, sizeof(q->m_addr), "%s", info->external_addr);
		q->m_epoch = info->epoch;
	} else if (ev == PCPMAP_EVENT_FAILED) {
		q->m_err = info->error ? info->error : -EPROTO;
		q->m_rc = info->result_code;
		q->m_epoch = info->epoch;
	} else {
		return;
	}
	q->m_done = true;
	q->m_done_at = pcpmap_now_usec();
	/* The mapping was only a question (RFC 6887 11.6): give it back at once. */
	pcpmap_mapping_free(q->m);
	q->m = NULL;
	if (q->m_sock >= 0) {
		close(q->m_sock);
		q->m_sock = -1;
	}
}

/*
 * PCP tells the external address only in a mapping's answer. The mapping names a UDP port this library holds
 * bound meanwhile (so it cannot be anyone else's mapping), asks the shortest lifetime (1 s; servers raise it
 * to their minimum) and is deleted as soon as it is answered.
 */
static void addr_map_start(struct np_inst *inst)
{
	struct np_addr_query *q = &inst->q;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	q->m_sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (q->m_sock < 0 || bind(q->m_sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(q->m_sock, (struct sockaddr *)&sa, &sl) < 0) {
		q->m_done = true;
		q->m_err = -errno;
		return;
	}
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_UDP;
	req.internal_port = ntohs(sa.sin_port);
	req.lifetime = 1;
	req.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	uint64_t now = pcpmap_now_usec();
	req.deadline_ms = inst->pend_deadline > now ? (uint32_t)((inst->pend_deadline - now) / 1000u) + 1 : 1;
	req.callback = addr_map_cb;
	req.userdata = inst;
	int r = pcpmap_mapping_new(inst->c, &req, &q->m);
	if (r < 0) {
		q->m = NULL;
		q->m_done = true;
		q->m_err = r;
	}
}

/* How long a NAT-PMP answer is awaited once PCP answered: the core's rule for a slower protocol. */
static uint64_t addr_grace_us(const struct np_addr_query *q)
{
	uint64_t g = 4u * (uint64_t)q->ann_rtt;
	return g < 20000u ? 20000u : g > 250000u ? 250000u : g;
}

PCPMAP_EXPORT_COMPAT int sendpublicaddressrequest(natpmp_t *p)
{
	struct np_inst *inst = inst_lock(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	begin_request(inst, p, NP_PUBLIC, NATPMP_RESPTYPE_PUBLICADDRESS, 0);
	p->pending_request[0] = 0;
	p->pending_request[1] = 0;
	p->pending_request_len = 2;
	query_reset(inst);
	/* A mapping of the session carries the address: nothing needs to be asked. */
	for (struct np_map *e = inst->maps; e; e = e->next) {
		struct pcpmap_mapping_info info;
		natpmpresp_t resp;
		pcpmap_mapping_get_info(e->m, &info);
		memset(&resp, 0, sizeof(resp));
		if ((info.state == PCPMAP_STATE_MAPPED || info.state == PCPMAP_STATE_REFRESHING) &&
		    inet_pton(AF_INET, info.external_addr, &resp.pnu.publicaddress.addr) == 1) {
			resp.type = NATPMP_RESPTYPE_PUBLICADDRESS;
			resp.epoch = info.epoch;
			inst->q.src = info.proto;
			set_ready(inst, 0, &resp);
			inst_unlock(inst);
			return 2;
		}
	}
	/* NAT-PMP's own request creates nothing; PCP's ANNOUNCE says whether PCP is there, in parallel. */
	static const uint8_t req[2] = { 0, 0 };
	if (raw_start(&inst->raw, req, sizeof(req), NP_RAW_TRIES) < 0) {
		inst->q.np_done = true;
		inst->q.np_err = -EPROTONOSUPPORT;
	}
	if (inst->env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP)) {
		int r =
		    inst->q.ann_busy ? 0 : pcpmap_client_announce(inst->c, NP_GIVE_UP_MS, announce_cb, inst);
		if (r == 0 || r == -EBUSY) {
			inst->q.ann_busy = true;
		} else {
			inst->q.ann_done = true;
			inst->q.ann_err = r;
		}
	} else {
		inst->q.ann_done = true;
		inst->q.ann_err = -EPROTONOSUPPORT;
	}
	inst_unlock(inst);
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
	/* NAT-PMP deletes by client and port: a mapping made over NAT-PMP (by the real library, another client),
	 * whose nonce PCP does not know and refuses (NOT_AUTHORIZED), or a gateway PCP did not answer. */
	if (r < 0 && inst->raw.fd >= 0 &&
	    ((info.proto == PCPMAP_PROTO_PCP && info.result_code == 2) || info.proto == PCPMAP_PROTO_NONE)) {
		uint8_t q[12], ans[16];
		size_t alen = 0;
		size_t n = natpmp_map_request(q, inst->pend_type, privport, 0, 0);
		if (raw_exchange(&inst->raw, q, n, ans, &alen) == 0) {
			info.proto = PCPMAP_PROTO_NATPMP;
			info.result_code = ans[2] << 8 | ans[3];
			info.epoch = get32(ans + 4);
			r = info.result_code ? -EPROTO : 0;
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
	/* A mapping of "every port" exists only for deletion (RFC 6886 3.4). */
	if (privateport == 0 && lifetime != 0)
		return NATPMP_ERR_INVALIDARGS;
	if (!inst_find(p))
		return NATPMP_ERR_INVALIDARGS;
	uint8_t ip_proto = ip_proto_of(protocol);
	/* Before taking our own lock: closed sessions are locked under reg_lock, never the other way round. */
	int taken = take_over_closed(ip_proto, privateport);
	struct np_inst *inst = inst_lock(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	begin_request(inst, p, NP_MAP, (uint16_t)protocol, privateport);
	query_reset(inst);
	/* The request as NAT-PMP would carry it (RFC 6886 3.3), for applications that look. */
	p->pending_request_len =
	    (int)natpmp_map_request(p->pending_request, protocol, privateport, publicport, lifetime);

	struct np_map *e = privateport ? map_find(inst, ip_proto, privateport) : NULL;
	if (lifetime == 0) {
		inst->pend = inst->pend_kind = NP_DELETE;
		inst->ready.pnu.newportmapping.privateport = privateport;
		if (privateport == 0) {
			/* Every mapping of this protocol that this session holds, each with its nonce; then
			 * NAT-PMP's own request for the rest (RFC 6886 3.4), which PCP cannot express. */
			inst->del_all = true;
			inst->del_all_count = taken;
			for (struct np_map *n, *x = inst->maps; x; x = n) {
				n = x->next;
				if (x->ip_proto == ip_proto) {
					map_drop(inst, x, true);
					inst->del_all_count++;
				}
			}
			inst->del_all_np = raw_start(&inst->raw, p->pending_request, 12, NP_RAW_SHORT_TRIES);
		} else if (e) {
			inst->ready.epoch = e->epoch;
			map_drop(inst, e, true);
		} else {
			delete_unknown(inst, ip_proto, privateport);
		}
		if (inst->env.debug && inst->pend == NP_DELETE)
			pmc_debug(np_tag, "%s %u: deletion sent", ip_proto == IPPROTO_TCP ? "TCP" : "UDP",
				  privateport);
		inst_unlock(inst);
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
			inst_unlock(inst);
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
			inst_unlock(inst);
			return 12;
		}
		e->next = inst->maps;
		inst->maps = e;
	}
	/* The lease the application asked for: renewed on its behalf until then (the gateway may grant less). */
	e->lease_end = pcpmap_now_usec() + (uint64_t)lifetime * 1000000u;
	e->failed = false;
	inst->pend_map = e;
	keeper_start(inst);
	inst_unlock(inst);
	return 12;
}

/* The address request: answered by NAT-PMP where it answers, else by PCP (issues 12, 13). */
static bool evaluate_public(struct np_inst *inst, int *ret_rc, natpmpresp_t *resp)
{
	struct np_addr_query *q = &inst->q;
	uint64_t now = pcpmap_now_usec();
	if (inst->raw.busy) {
		uint8_t a[16];
		size_t n = 0;
		int r = raw_poll(&inst->raw, a, &n);
		if (r == 1) {
			q->np_done = true;
			q->np_result = (uint16_t)(a[2] << 8 | a[3]);
			q->np_epoch = get32(a + 4);
			if (q->np_result == 0 && n >= 12)
				memcpy(&q->np_addr, a + 8, 4);
			else if (q->np_result == 0)
				q->np_err = -EPROTO;
		} else if (r < 0) {
			q->np_done = true;
			q->np_err = r;
		}
	}
	if (q->np_done && !q->np_err && q->np_result == 0) {
		resp->epoch = q->np_epoch;
		resp->pnu.publicaddress.addr = q->np_addr;
		q->src = PCPMAP_PROTO_NATPMP;
		*ret_rc = 0;
		return true;
	}
	if (q->m_done) {
		struct in_addr a;
		if (q->m_err || inet_pton(AF_INET, q->m_addr, &a) != 1) {
			*ret_rc = pmc_natpmp_error(q->m_err ? q->m_err : -EPROTO, PCPMAP_PROTO_PCP, q->m_rc);
			resp->epoch = q->m_epoch;
			resp->resultcode = pmc_natpmp_resultcode(*ret_rc, PCPMAP_PROTO_PCP, q->m_rc);
			return true;
		}
		/* Answer once the gateway confirmed the deletion: the question leaves nothing behind. */
		if (pcpmap_client_flush(inst->c, 0) == 0 || now >= q->m_done_at + NP_ADDR_DELETE_WAIT_US) {
			resp->epoch = q->m_epoch;
			resp->pnu.publicaddress.addr = a;
			q->src = PCPMAP_PROTO_PCP;
			*ret_rc = 0;
			return true;
		}
		return false;
	}
	/* NAT-PMP will not tell: refused, silent for its last try, or not to be used. */
	bool np_out = q->np_done;
	if (q->ann_done && !q->ann_err && !q->m && (np_out || now >= q->ann_at + addr_grace_us(q)))
		addr_map_start(inst);
	if (q->m_done)
		return evaluate_public(inst, ret_rc, resp);
	if (q->ann_done && q->ann_err && np_out) {
		if (!q->np_err && q->np_result != 0) {
			/* NAT-PMP answered with a refusal, and PCP is not there: that refusal is the answer. */
			*ret_rc = pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_NATPMP, q->np_result);
			resp->epoch = q->np_epoch;
			resp->resultcode = pmc_natpmp_resultcode(*ret_rc, PCPMAP_PROTO_NATPMP, q->np_result);
		} else {
			*ret_rc = NATPMP_ERR_NOGATEWAYSUPPORT;
		}
		return true;
	}
	return false;
}

/* "Delete every mapping": the session's deletions confirmed and NAT-PMP's request answered (issue 10). */
static bool evaluate_delete_all(struct np_inst *inst, int *ret_rc, natpmpresp_t *resp)
{
	const uint8_t *a = inst->del_all_ans;
	size_t n = 0;
	if (inst->del_all_np == 0)
		inst->del_all_np = raw_poll(&inst->raw, inst->del_all_ans, &n);
	int r = inst->del_all_np;
	if (r == 0 || pcpmap_client_flush(inst->c, 0) < 0)
		return false;
	resp->epoch = inst->last_epoch;
	if (r == 1) {
		uint16_t rc = (uint16_t)(a[2] << 8 | a[3]);
		resp->epoch = get32(a + 4);
		if (rc == 0 || inst->del_all_count) {
			*ret_rc = 0;
		} else {
			*ret_rc = pmc_natpmp_error(-EPROTO, PCPMAP_PROTO_NATPMP, rc);
			resp->resultcode = pmc_natpmp_resultcode(*ret_rc, PCPMAP_PROTO_NATPMP, rc);
		}
		return true;
	}
	if (inst->del_all_count) {
		*ret_rc = 0;
		return true;
	}
	/* Nothing of this session to delete and no NAT-PMP: PCP has no request for "every mapping" (a delete
	 * names one mapping and carries its nonce), so saying "done" would be a lie. */
	*ret_rc = NATPMP_ERR_UNSUPPORTEDOPCODE;
	resp->resultcode = 5;
	if (inst->env.debug)
		pmc_debug(np_tag,
			  "deleting every %s mapping: the gateway does not answer NAT-PMP (%s) and PCP can "
			  "only delete mappings this session made (none)",
			  inst->pend_type == NATPMP_PROTOCOL_TCP ? "TCP" : "UDP", pcpmap_strerror(r));
	return true;
}

/* Whether the pending request can be answered without waiting; fills resp and returns its code if so. */
static bool evaluate_pending(struct np_inst *inst, int *ret_rc, natpmpresp_t *resp)
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
		if (inst->del_all) {
			if (evaluate_delete_all(inst, ret_rc, resp))
				return true;
		} else if (pcpmap_client_flush(inst->c, 0) == 0) {
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
		if (evaluate_public(inst, ret_rc, resp))
			return true;
		break;
	}
	if (now >= inst->pend_deadline) {
		*ret_rc = NATPMP_ERR_NOGATEWAYSUPPORT;
		return true;
	}
	return false;
}

/*
 * evaluate_pending(), and an answer once found is kept (NP_READY): the keeper may bring it between the
 * application's calls, and getnatpmprequesttimeout() may see it before readnatpmpresponseorretry() reports it.
 */
static bool evaluate(struct np_inst *inst, int *ret_rc, natpmpresp_t *resp)
{
	bool done = evaluate_pending(inst, ret_rc, resp);
	if (done && inst->pend != NP_NONE && inst->pend != NP_READY)
		set_ready(inst, *ret_rc, resp);
	return done;
}

PCPMAP_EXPORT_COMPAT int getnatpmprequesttimeout(natpmp_t *p, struct timeval *timeout)
{
	if (!p || !timeout)
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_lock(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	if (inst->pend == NP_NONE) {
		inst_unlock(inst);
		return NATPMP_ERR_NOPENDINGREQ;
	}
	int rc;
	natpmpresp_t scratch;
	uint64_t wait_us = 0;
	if (!evaluate(inst, &rc, &scratch)) {
		const struct np_addr_query *q = &inst->q;
		uint64_t now = pcpmap_now_usec();
		uint64_t next = pcpmap_client_next_deadline(inst->c);
		if (inst->pend_deadline < next)
			next = inst->pend_deadline;
		/* Our own NAT-PMP retransmission, the end of the wait for NAT-PMP, the wait for a deletion. */
		if (inst->raw.busy && inst->raw.next_us < next)
			next = inst->raw.next_us;
		if (inst->pend == NP_PUBLIC && q->ann_done && !q->ann_err && !q->m && !q->m_done &&
		    q->ann_at + addr_grace_us(q) < next)
			next = q->ann_at + addr_grace_us(q);
		if (inst->pend == NP_PUBLIC && q->m_done && q->m_done_at + NP_ADDR_DELETE_WAIT_US < next)
			next = q->m_done_at + NP_ADDR_DELETE_WAIT_US;
		wait_us = next > now ? next - now : 0;
	}
	inst_unlock(inst);
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
	struct np_inst *inst = inst_lock(p);
	if (!inst)
		return NATPMP_ERR_INVALIDARGS;
	if (inst->pend == NP_NONE) {
		inst_unlock(inst);
		return NATPMP_ERR_NOPENDINGREQ;
	}
	int r = pcpmap_client_process(inst->c);
	if (r < 0 && inst->env.debug)
		pmc_debug(np_tag, "pcpmap_client_process: %s", pcpmap_strerror(r));
	struct pcpmap_stats st;
	pcpmap_client_get_stats(inst->c, &st);
	p->try_number =
	    1 + (int)(st.retransmits - inst->retransmits0) + (inst->raw.busy ? (int)inst->raw.tries - 1 : 0);
	int rc;
	natpmpresp_t resp;
	if (!evaluate(inst, &rc, &resp)) {
		inst_unlock(inst);
		return NATPMP_TRYAGAIN;
	}
	if (inst->env.debug && inst->pend_kind == NP_PUBLIC) {
		char a[INET_ADDRSTRLEN];
		if (rc == 0)
			pmc_debug(np_tag, "public address %s via %s",
				  inet_ntop(AF_INET, &resp.pnu.publicaddress.addr, a, sizeof(a)),
				  pcpmap_proto_name(inst->q.src));
		else
			pmc_debug(np_tag, "public address: %s", strnatpmperr(rc));
	}
	if (inst->env.debug && inst->pend_kind == NP_DELETE && rc == 0)
		pmc_debug(np_tag, "%s %u deleted", inst->pend_type == NATPMP_PROTOCOL_TCP ? "TCP" : "UDP",
			  inst->pend_privport);
	inst->pend = NP_NONE;
	inst->pend_map = NULL;
	inst->raw.busy = false;
	query_reset(inst);
	ready_clear(inst);
	p->has_pending_request = 0;
	inst_unlock(inst);
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

#if defined(PCPMAP_COMPAT_REAL_NAMES) && PCPMAP_COMPAT_REAL_NAMES
/*
 * libnatpmp 20150609 leaves four functions global without declaring them in natpmp.h (getgateway.h and
 * natpmp.c's helpers). A binary that calls them must find them in the drop-in too (doc/COMPAT.md, "Binary
 * drop-in"): for a session of the drop-in the request is pcpmap's, which sends and retransmits it itself.
 *
 * The real libnatpmp calls three of them through the PLT. When a program holding the drop-in also loads the
 * real library without RTLD_DEEPBIND (dlopen() with RTLD_LOCAL), the real library's calls land here, with a
 * natpmp_t the real library opened: those are handed to the real library's own functions.
 */
#include <dlfcn.h>

int getdefaultgateway(in_addr_t *addr);
int sendpendingrequest(natpmp_t *p);
int sendnatpmprequest(natpmp_t *p);
int readnatpmpresponse(natpmp_t *p, natpmpresp_t *response);

static struct {
	int (*sendpendingrequest)(natpmp_t *p);
	int (*sendnatpmprequest)(natpmp_t *p);
	int (*readnatpmpresponse)(natpmp_t *p, natpmpresp_t *response);
} real_np;
static pthread_once_t real_np_once = PTHREAD_ONCE_INIT;

static void *real_sym(void *h, const char *name)
{
	void *fn = h ? dlsym(h, name) : NULL;
	if (!fn && getenv("PCPMAP_DEBUG"))
		pmc_debug(np_tag, "real libnatpmp's %s: %s", name, h ? dlerror() : "library not loaded");
	return fn;
}

/* The real library, by the path pcpmap's NAT-PMP backend uses: the copy already in the process if there is
 * one (the same file is never loaded twice). RTLD_DEEPBIND keeps a fresh load's own calls inside it. */
static void real_np_load(void)
{
#ifdef PCPMAP_NATPMP_PATH
#if defined(__SANITIZE_ADDRESS__)
	void *h = dlopen(PCPMAP_NATPMP_PATH, RTLD_NOW | RTLD_LOCAL);
#else
	void *h = dlopen(PCPMAP_NATPMP_PATH, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
	if (!h && getenv("PCPMAP_DEBUG"))
		pmc_debug(np_tag, "cannot load the real libnatpmp (%s): %s", PCPMAP_NATPMP_PATH, dlerror());
	void *fn;
	if ((fn = real_sym(h, "sendpendingrequest")))
		memcpy(&real_np.sendpendingrequest, &fn, sizeof(fn));
	if ((fn = real_sym(h, "sendnatpmprequest")))
		memcpy(&real_np.sendnatpmprequest, &fn, sizeof(fn));
	if ((fn = real_sym(h, "readnatpmpresponse")))
		memcpy(&real_np.readnatpmpresponse, &fn, sizeof(fn));
#endif
}

/* libnatpmp: 0 and the default route's IPv4 gateway, or -1. Ours reads the same table the same way. */
PCPMAP_EXPORT_COMPAT int getdefaultgateway(in_addr_t *addr)
{
	in_addr_t gw;
	if (!addr || default_gateway4(&gw) < 0)
		return -1;
	*addr = gw;
	return 0;
}

/* libnatpmp sends the pending request again and returns its length. pcpmap already carries the request and
 * retransmits it itself, so nothing more goes out; the length tells the caller the request is in flight. */
PCPMAP_EXPORT_COMPAT int sendpendingrequest(natpmp_t *p)
{
	if (!p)
		return NATPMP_ERR_INVALIDARGS;
	struct np_inst *inst = inst_lock(p);
	if (!inst) {
		pthread_once(&real_np_once, real_np_load);
		return real_np.sendpendingrequest ? real_np.sendpendingrequest(p) : NATPMP_ERR_INVALIDARGS;
	}
	int r = inst->pend == NP_NONE ? NATPMP_ERR_NOPENDINGREQ : p->pending_request_len;
	inst_unlock(inst);
	return r;
}

/* libnatpmp's first send of the pending request: for a session of ours it left with the send function. */
PCPMAP_EXPORT_COMPAT int sendnatpmprequest(natpmp_t *p)
{
	if (p && !inst_find(p)) {
		pthread_once(&real_np_once, real_np_load);
		return real_np.sendnatpmprequest ? real_np.sendnatpmprequest(p) : NATPMP_ERR_INVALIDARGS;
	}
	return sendpendingrequest(p);
}

/* libnatpmp reads one answer without retransmitting; pcpmap's processing does both, on its own timers. */
PCPMAP_EXPORT_COMPAT int readnatpmpresponse(natpmp_t *p, natpmpresp_t *response)
{
	if (p && !inst_find(p)) {
		pthread_once(&real_np_once, real_np_load);
		return real_np.readnatpmpresponse ? real_np.readnatpmpresponse(p, response)
						  : NATPMP_ERR_INVALIDARGS;
	}
	return readnatpmpresponseorretry(p, response);
}
#endif
