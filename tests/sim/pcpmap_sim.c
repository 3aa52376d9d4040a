/*
 * Deterministic simulation of the engine against a model gateway (doc/DESIGN.md, "Simulation test").
 *
 * The real engine and the real PCP and NAT-PMP backends talk over loopback UDP to a model gateway in this
 * process. The model keeps a mapping table (RFC 6887 MAP/PEER/ANNOUNCE with nonces and an epoch, RFC 6886
 * map/delete/public address) on the fake clock. Every datagram passes a fault injector (loss, duplication,
 * delay), and a schedule per seed adds closed ports (ICMP), silence, restarts with state loss, announcements,
 * a protocol switched off, an external address change and route loss. A stand-in for the UPnP worker hands
 * the model's answers to the engine's hooks. The driver advances the fake clock from event to event and checks
 * invariants after every step, at quiescence and after the client is freed.
 *
 * One seed is one scenario: the scenario, the faults and the client's randomness all come from it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SEC ((uint64_t)1000000)
#define MS  ((uint64_t)1000)
#define T0  (1000 * SEC) /* the fake clock starts here: 0 is special to some timers */

#define MAX_APP     6
#define MAX_ENTRIES 256
#define MAX_QUEUE   512
#define MAX_SCHED   32
#define MAX_STEPS   200000
#define TRACE_LINES 160
#define SETTLE_MAX  (3600 * SEC) /* quiescence must come within this after the faults stop */
#define GW_PORT     5351         /* libnatpmp only talks to 5351 */

/* Fault kinds; --faults picks a subset. */
enum fault {
	F_LOSS,
	F_DUP,
	F_REORDER,
	F_ICMP,
	F_SILENCE,
	F_RESTART,
	F_ANNOUNCE,
	F_SWITCH,
	F_EXTADDR,
	F_ROUTE,
	F_PFQUIRK,
	F__MAX
};
static const char *const fault_names[F__MAX] = { "loss",    "dup",     "reorder",  "icmp",
						 "silence", "restart", "announce", "switch",
						 "extaddr", "route",   "pfquirk" };

/* splitmix64: small, fast, and every stream is reproducible from its seed. */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi) /* [lo, hi] */
{
	return lo + rng_next(r) % (hi - lo + 1);
}

static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}

static bool rng_chance(struct rng *r, double p)
{
	return rng_unit(r) < p;
}

/* One mapping of the model gateway. Dead entries stay for the invariants' history. */
struct entry {
	bool used, alive, foreign;
	uint64_t uid;
	int proto; /* PCPMAP_PROTO_PCP or PCPMAP_PROTO_NATPMP */
	int op;    /* PCP_OP_MAP or PCP_OP_PEER */
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t ipp;
	uint16_t iport, eport;
	struct pcp_addr peer;
	uint16_t pport;
	uint32_t eaddr; /* host order */
	uint64_t expire;
	uint64_t created_at;
	uint64_t dead_at;
	const char *dead_why;
	/* What the client was told: the last grant delivered to one of its sockets. */
	uint64_t told_at;
	uint16_t told_port;
	uint32_t told_addr;
	uint64_t told_expiry;    /* when the client's own timer, started at delivery, runs out */
	uint64_t delete_seen_at; /* the client sent a delete for it (delivered or not) */
};

/* A datagram held by the injector. */
struct dgram {
	bool used;
	uint64_t at, seq;
	bool to_model;
	bool unsolicited; /* an announcement to the client's listener */
	size_t len;
	uint8_t b[PCP_MAX_MSG];
	struct sockaddr_in peer; /* client socket: source (to model) or destination (to client) */
	/* A grant this answer carries, for the "told" bookkeeping. */
	uint64_t grant_uid;
	uint16_t grant_port;
	uint32_t grant_addr;
	uint32_t grant_lifetime;
	int epoch_proto;      /* which server's epoch it carries, 0 for none */
	uint64_t made_at;     /* when the model wrote it: it carries the epoch of that time */
	uint32_t natpmp_addr; /* a NAT-PMP public address answer or notice */
	bool has_natpmp_addr;
	/* A job of the UPnP stand-in (no datagram: the worker's result goes straight to the engine). */
	int upnp_op; /* 0, or UPNP_JOB_* */
	uint64_t job_id;
	uint8_t job_ipp;
	uint16_t job_iport, job_eport;
	uint32_t job_lifetime;
	bool job_pf;
};

enum { UPNP_JOB_PROBE = 1, UPNP_JOB_MAP, UPNP_JOB_UNMAP };

enum sev {
	EV_ICMP_ON,
	EV_ICMP_OFF,
	EV_SILENT_ON,
	EV_SILENT_OFF,
	EV_RESTART,
	EV_ANNOUNCE_KEEP,
	EV_ANNOUNCE_LOSS,
	EV_SWITCH_OFF,
	EV_SWITCH_ON,
	EV_EXTADDR,
	EV_ROUTE_OFF,
	EV_ROUTE_ON,
	EV_STEAL, /* another host takes the ports of held mappings right after a restart */
};

struct sched_ev {
	uint64_t at;
	enum sev kind;
	int arg;
	bool done;
};

struct app {
	bool used, created, freed;
	uint64_t create_at, free_at;
	struct pcpmap_request req;
	char peer_addr[32];
	pcpmap_mapping *h;
	/* What the application was told. */
	unsigned n_events, n_outcomes, n_final;
	uint64_t mapped_at; /* the last MAPPED or CHANGED */
	bool believed;
	uint16_t believed_port;
	enum pcpmap_event last_ev;
};

struct sim {
	uint64_t seed;
	unsigned mask;   /* enabled fault kinds */
	unsigned active; /* kinds this seed uses */
	bool verbose;
	bool no_pairs; /* --no-pairs: plain mappings where the seed asks for pairs */
	const char *argv0;
	char faults_arg[128];

	struct rng scen, net, cli;
	uint64_t now;
	struct pm_env env;
	pcpmap_client *c;
	uint64_t sent_seen;

	/* Model gateway. */
	int fd;
	struct sockaddr_in gw;
	char gw_str[32];
	bool port_open;
	bool silent;
	bool route;
	bool pcp_off, natpmp_off;
	bool pcp_off_natpmp_style; /* PCP switched off: answer like a NAT-PMP-only server, else silently */
	bool pf_quirk;             /* like miniupnpd: PREFER_FAILURE ignored, another port granted */
	uint64_t epoch_start;
	uint32_t ext_addr;
	uint32_t natpmp_told_addr;
	uint64_t restart_at;
	/* Restarts, and the first answer carrying each server's new epoch that reached the client. */
	size_t n_restart;
	uint64_t restart_t[16];
	uint64_t first_ev[16][PM_NPROTO];
	/* The epoch checks (RFC 6887 8.5, RFC 6886 3.6) run over what reached the client: a restart counts as
	 * shown to the client once they flag it or an announcement arrives. A restart inside the checks' slack
	 * with no announcement is invisible to any client until a renewal. */
	struct pcp_epoch shadow[PM_NPROTO];
	uint32_t max_lifetime;
	uint64_t upnp_latency; /* one SOAP round trip of the stand-in worker */
	struct entry e[MAX_ENTRIES];
	uint64_t next_uid;

	/* Injector. */
	double p_loss, p_dup, p_delay;
	uint64_t max_delay;
	uint64_t max_hold;
	struct dgram q[MAX_QUEUE];
	uint64_t qseq;

	struct sched_ev sev[MAX_SCHED];
	size_t n_sev;
	uint64_t t_end; /* faults stop here */

	struct app app[MAX_APP];
	size_t n_app;

	unsigned steps;
	bool failed;
	char fail_inv[64];
	char fail_msg[512];

	char trace[TRACE_LINES][200];
	unsigned n_trace;
};

static struct sim *S; /* the client's default_gateway hook has no context pointer */

/* ---- Reporting ---------------------------------------------------------------------------------------- */

static void tracef(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tracef(struct sim *s, const char *fmt, ...)
{
	char *line = s->trace[s->n_trace % TRACE_LINES];
	int n = snprintf(line, 200, "t=%.3f ", (double)(s->now - T0) / 1e6);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, (size_t)(200 - n), fmt, ap);
	va_end(ap);
	s->n_trace++;
	if (s->verbose)
		printf("  %s\n", line);
}

static void violation(struct sim *s, const char *inv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void violation(struct sim *s, const char *inv, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	snprintf(s->fail_inv, sizeof(s->fail_inv), "%s", inv);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
	va_end(ap);
	tracef(s, "VIOLATION %s: %s", inv, s->fail_msg);
}

static const char *addr_str(uint32_t a, char *buf)
{
	struct in_addr in = { .s_addr = htonl(a) };
	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
	return buf;
}

static void nonce_str(const uint8_t *n, char *buf)
{
	for (int i = 0; i < 4; i++)
		sprintf(buf + 2 * i, "%02x", n[i]);
}

/* ---- Environment for the client ---------------------------------------------------------------------- */

static uint64_t sim_now(void *ctx)
{
	return ((struct sim *)ctx)->now;
}

static void sim_fill(void *ctx, void *buf, size_t len)
{
	struct sim *s = ctx;
	uint8_t *p = buf;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&s->cli);
		for (size_t j = 0; j < 8 && i + j < len; j++)
			p[i + j] = (uint8_t)(v >> (8 * j));
	}
}

static int sim_default_gateway(int family, struct pm_gateway *ret)
{
	if (family != AF_INET || !S->route)
		return -ENOENT;
	memset(ret, 0, sizeof(*ret));
	ret->family = AF_INET;
	ret->ifindex = 1;
	ret->addr.v4 = S->gw.sin_addr;
	return 0;
}

static void sim_log(void *ud, enum pcpmap_log_level level, const char *msg)
{
	(void)level;
	tracef(ud, "log: %s", msg);
}

static void note_delete(struct sim *s, const uint8_t *b, size_t len);

/* Every datagram the client sends passes here first, even one that a closed port refuses. */
static void sim_trace(void *ud, bool sent, enum pcpmap_proto proto, const char *peer, const uint8_t *bytes,
		      size_t len, const char *decoded)
{
	struct sim *s = ud;
	(void)peer;
	if (sent)
		note_delete(s, bytes, len);
	if (s->verbose)
		tracef(s, "client %s %s %s", sent ? "->" : "<-", pcpmap_proto_name(proto), decoded);
}

/* ---- Model gateway ------------------------------------------------------------------------------------- */

static int gw_open(struct sim *s)
{
	s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return -errno;
	if (bind(s->fd, (struct sockaddr *)&s->gw, sizeof(s->gw)) < 0) {
		int r = -errno;
		close(s->fd);
		s->fd = -1;
		return r;
	}
	s->port_open = true;
	return 0;
}

static void gw_close(struct sim *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->port_open = false;
}

/* An address of 127/8 of our own, so parallel runs never share a gateway. */
static int gw_pick(struct sim *s)
{
	unsigned pid = (unsigned)getpid();
	for (unsigned i = 0; i < 64; i++) {
		unsigned v = pid + i * 7919u;
		memset(&s->gw, 0, sizeof(s->gw));
		s->gw.sin_family = AF_INET;
		s->gw.sin_port = htons(GW_PORT);
		s->gw.sin_addr.s_addr = htonl(0x7f000000u | (128u + ((v >> 16) & 63u)) << 16 | (v & 0xffffu));
		if ((v & 0xffu) == 0 || (v & 0xffu) == 255)
			continue;
		if (gw_open(s) == 0) {
			inet_ntop(AF_INET, &s->gw.sin_addr, s->gw_str, sizeof(s->gw_str));
			return 0;
		}
	}
	return -EADDRINUSE;
}

static uint32_t gw_epoch(const struct sim *s)
{
	return (uint32_t)((s->now - s->epoch_start) / SEC);
}

static void model_expire(struct sim *s)
{
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (e->alive && e->expire <= s->now) {
			e->alive = false;
			e->dead_at = e->expire;
			e->dead_why = "expired";
		}
	}
}

static struct entry *entry_new(struct sim *s)
{
	struct entry *victim = NULL;
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (!e->used) {
			victim = e;
			break;
		}
		if (!e->alive && (!victim || e->uid < victim->uid))
			victim = e;
	}
	if (!victim)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->used = victim->alive = true;
	victim->uid = ++s->next_uid;
	victim->created_at = s->now;
	return victim;
}

static struct entry *find_map(struct sim *s, int proto, int op, uint8_t ipp, uint16_t iport,
			      const struct pcp_addr *peer, uint16_t pport)
{
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (!e->alive || e->foreign || e->proto != proto || e->op != op || e->ipp != ipp ||
		    e->iport != iport)
			continue;
		if (op == PCP_OP_PEER && (e->pport != pport || memcmp(&e->peer, peer, sizeof(*peer))))
			continue;
		return e;
	}
	return NULL;
}

static bool port_free(struct sim *s, uint8_t ipp, uint16_t port, const struct entry *self)
{
	if (!port)
		return false;
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		const struct entry *e = &s->e[i];
		if (e->alive && e != self && e->op == PCP_OP_MAP && e->ipp == ipp && e->eport == port)
			return false;
	}
	return true;
}

static uint16_t port_alloc(struct sim *s, uint8_t ipp)
{
	for (;;) {
		uint16_t p = (uint16_t)rng_range(&s->net, 20000, 60000);
		if (port_free(s, ipp, p, NULL))
			return p;
	}
}

static uint32_t grant_lifetime(const struct sim *s, uint32_t req)
{
	return req < s->max_lifetime ? req : s->max_lifetime;
}

/* Queues a datagram through the injector (faults apply in both directions). */
static void inject(struct sim *s, struct dgram *d);

static void reply_pcp(struct sim *s, const struct sockaddr_in *to, const struct pcp_msg *resp,
		      const struct entry *e)
{
	struct dgram d;
	memset(&d, 0, sizeof(d));
	if (pcp_encode(resp, NULL, d.b, sizeof(d.b), &d.len) < 0) {
		violation(s, "harness", "model cannot encode its PCP answer");
		return;
	}
	d.peer = *to;
	d.epoch_proto = PCPMAP_PROTO_PCP;
	if (e && resp->result == PCP_RES_SUCCESS && resp->lifetime) {
		d.grant_uid = e->uid;
		d.grant_port = e->eport;
		d.grant_addr = e->eaddr;
		d.grant_lifetime = resp->lifetime;
	}
	inject(s, &d);
}

static void pcp_error(struct sim *s, const struct sockaddr_in *to, const struct pcp_msg *req, uint8_t result,
		      uint32_t lifetime)
{
	struct pcp_msg r = *req;
	r.response = true;
	r.result = result;
	r.lifetime = lifetime;
	r.epoch = gw_epoch(s);
	memset(&r.client_addr, 0, sizeof(r.client_addr));
	memset(&r.opts, 0, sizeof(r.opts));
	reply_pcp(s, to, &r, NULL);
}

static void model_pcp(struct sim *s, const struct dgram *in)
{
	struct pcp_msg req;
	if (pcp_decode(in->b, in->len, NULL, &req) < 0 || req.response) {
		tracef(s, "model: undecodable PCP request dropped");
		return;
	}
	if (s->pcp_off) {
		if (s->pcp_off_natpmp_style) {
			/* A NAT-PMP-only gateway: version 0, result 1 (RFC 6887 9, RFC 6886 3.5). */
			struct dgram d;
			memset(&d, 0, sizeof(d));
			d.len = 8;
			d.b[1] = (uint8_t)(128 + req.opcode);
			d.b[3] = 1;
			uint32_t ep = gw_epoch(s);
			d.b[4] = (uint8_t)(ep >> 24);
			d.b[5] = (uint8_t)(ep >> 16);
			d.b[6] = (uint8_t)(ep >> 8);
			d.b[7] = (uint8_t)ep;
			d.peer = in->peer;
			/* Its SSSoE is NAT-PMP's epoch: the client's PCP server owes it no epoch check. */
			inject(s, &d);
		}
		return;
	}
	if (req.opcode == PCP_OP_ANNOUNCE) {
		struct pcp_msg r = req;
		r.response = true;
		r.result = PCP_RES_SUCCESS;
		r.epoch = gw_epoch(s);
		r.lifetime = 0;
		reply_pcp(s, &in->peer, &r, NULL);
		return;
	}
	struct entry *e = find_map(s, PCPMAP_PROTO_PCP, req.opcode, req.protocol, req.internal_port,
				   &req.peer_addr, req.peer_port);
	/* RFC 6887 11.3: a mapping is owned by the nonce that made it. */
	if (e && memcmp(e->nonce, req.nonce, PCP_NONCE_LEN)) {
		pcp_error(s, &in->peer, &req, PCP_RES_NOT_AUTHORIZED, 1800);
		return;
	}
	if (req.lifetime == 0) {
		if (req.opcode == PCP_OP_PEER) {
			pcp_error(s, &in->peer, &req, PCP_RES_MALFORMED_REQUEST, 1800);
			return;
		}
		if (e) {
			e->alive = false;
			e->dead_at = s->now;
			e->dead_why = "deleted";
		}
		struct pcp_msg r = req;
		r.response = true;
		r.result = PCP_RES_SUCCESS;
		r.epoch = gw_epoch(s);
		memset(&r.opts, 0, sizeof(r.opts));
		reply_pcp(s, &in->peer, &r, NULL);
		return;
	}
	uint32_t lt = grant_lifetime(s, req.lifetime);
	if (!e) {
		uint16_t port = 0;
		if (req.opcode == PCP_OP_PEER) {
			struct entry *m = find_map(s, PCPMAP_PROTO_PCP, PCP_OP_MAP, req.protocol,
						   req.internal_port, NULL, 0);
			port = m                                                ? m->eport
			       : port_free(s, req.protocol, req.ext_port, NULL) ? req.ext_port
										: 0;
		} else if (port_free(s, req.protocol, req.ext_port, NULL)) {
			port = req.ext_port;
		} else if (req.opts.prefer_failure && !s->pf_quirk) {
			pcp_error(s, &in->peer, &req, PCP_RES_CANNOT_PROVIDE_EXTERNAL, 30);
			return;
		}
		if (!port)
			port = port_alloc(s, req.protocol);
		e = entry_new(s);
		if (!e) {
			pcp_error(s, &in->peer, &req, PCP_RES_NO_RESOURCES, 30);
			return;
		}
		e->proto = PCPMAP_PROTO_PCP;
		e->op = req.opcode;
		memcpy(e->nonce, req.nonce, PCP_NONCE_LEN);
		e->ipp = req.protocol;
		e->iport = req.internal_port;
		e->peer = req.peer_addr;
		e->pport = req.peer_port;
		e->eport = port;
		e->eaddr = s->ext_addr;
		char nb[16];
		nonce_str(e->nonce, nb);
		tracef(s, "model: PCP %s created #%" PRIu64 " nonce %s %u -> %u for %u s",
		       req.opcode == PCP_OP_PEER ? "PEER" : "MAP", e->uid, nb, e->iport, e->eport, lt);
	}
	e->expire = s->now + (uint64_t)lt * SEC;
	struct pcp_msg r = req;
	r.response = true;
	r.result = PCP_RES_SUCCESS;
	r.lifetime = lt;
	r.epoch = gw_epoch(s);
	r.ext_port = e->eport;
	struct in_addr a = { .s_addr = htonl(e->eaddr) };
	pcp_addr_from_v4(&r.ext_addr, &a);
	bool pf = req.opts.prefer_failure;
	memset(&r.opts, 0, sizeof(r.opts));
	r.opts.prefer_failure = pf;
	reply_pcp(s, &in->peer, &r, e);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void natpmp_addr_dgram(struct sim *s, struct dgram *d)
{
	memset(d, 0, sizeof(*d));
	d->len = 12;
	d->b[1] = 128;
	put32(d->b + 4, gw_epoch(s));
	put32(d->b + 8, s->ext_addr);
	d->epoch_proto = PCPMAP_PROTO_NATPMP;
	d->has_natpmp_addr = true;
	d->natpmp_addr = s->ext_addr;
}

static void model_natpmp(struct sim *s, const struct dgram *in)
{
	if (s->natpmp_off)
		return;
	struct dgram d;
	if (in->len == 2 && in->b[1] == 0) {
		natpmp_addr_dgram(s, &d);
		d.peer = in->peer;
		inject(s, &d);
		return;
	}
	if (in->len != 12 || (in->b[1] != 1 && in->b[1] != 2)) {
		tracef(s, "model: NAT-PMP request of %zu bytes dropped", in->len);
		return;
	}
	uint8_t op = in->b[1];
	uint8_t ipp = op == 1 ? IPPROTO_UDP : IPPROTO_TCP;
	uint16_t iport = (uint16_t)(in->b[4] << 8 | in->b[5]);
	uint16_t suggest = (uint16_t)(in->b[6] << 8 | in->b[7]);
	uint32_t lifetime =
	    (uint32_t)in->b[8] << 24 | (uint32_t)in->b[9] << 16 | (uint32_t)in->b[10] << 8 | in->b[11];
	struct entry *e = find_map(s, PCPMAP_PROTO_NATPMP, PCP_OP_MAP, ipp, iport, NULL, 0);
	memset(&d, 0, sizeof(d));
	d.len = 16;
	d.b[1] = (uint8_t)(128 + op);
	put32(d.b + 4, gw_epoch(s));
	d.b[8] = (uint8_t)(iport >> 8);
	d.b[9] = (uint8_t)iport;
	d.peer = in->peer;
	d.epoch_proto = PCPMAP_PROTO_NATPMP;
	if (lifetime == 0) {
		/* RFC 6886 3.4: delete, answered with port 0 and lifetime 0. */
		if (e) {
			e->alive = false;
			e->dead_at = s->now;
			e->dead_why = "deleted";
		}
		inject(s, &d);
		return;
	}
	uint32_t lt = grant_lifetime(s, lifetime);
	if (!e) {
		e = entry_new(s);
		if (!e) {
			d.b[3] = 4; /* out of resources */
			inject(s, &d);
			return;
		}
		e->proto = PCPMAP_PROTO_NATPMP;
		e->op = PCP_OP_MAP;
		e->ipp = ipp;
		e->iport = iport;
		e->eport = port_free(s, ipp, suggest, e) ? suggest : port_alloc(s, ipp);
		tracef(s, "model: NAT-PMP created #%" PRIu64 " %u -> %u for %u s", e->uid, e->iport, e->eport,
		       lt);
	}
	e->eaddr = s->ext_addr;
	e->expire = s->now + (uint64_t)lt * SEC;
	d.b[10] = (uint8_t)(e->eport >> 8);
	d.b[11] = (uint8_t)e->eport;
	put32(d.b + 12, lt);
	d.grant_uid = e->uid;
	d.grant_port = e->eport;
	d.grant_addr = e->eaddr;
	d.grant_lifetime = lt;
	inject(s, &d);
}

/* The client sent a delete: remembered even if it never arrives (DELETE_MRC is a design limit). */
static void note_delete(struct sim *s, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (!e->used || e->foreign)
			continue;
		if (b[0] == PCP_VERSION && len >= PCP_MAP_LEN && b[1] == PCP_OP_MAP && get32(b + 4) == 0 &&
		    e->proto == PCPMAP_PROTO_PCP && !memcmp(e->nonce, b + PCP_HDR_LEN, PCP_NONCE_LEN))
			e->delete_seen_at = s->now;
		if (b[0] == 0 && len == 12 && e->proto == PCPMAP_PROTO_NATPMP &&
		    e->ipp == (b[1] == 1 ? IPPROTO_UDP : IPPROTO_TCP) && e->iport == (b[4] << 8 | b[5]) &&
		    !(b[8] | b[9] | b[10] | b[11]))
			e->delete_seen_at = s->now;
	}
}

/* ---- Injector and delivery ----------------------------------------------------------------------------- */

static bool faults_on(const struct sim *s, enum fault f)
{
	return (s->active & (1u << f)) && s->now < s->t_end;
}

static void enqueue(struct sim *s, const struct dgram *d, uint64_t at)
{
	for (size_t i = 0; i < MAX_QUEUE; i++) {
		if (!s->q[i].used) {
			s->q[i] = *d;
			s->q[i].used = true;
			s->q[i].at = at;
			s->q[i].seq = ++s->qseq;
			return;
		}
	}
	violation(s, "harness", "injector queue full");
}

static void inject(struct sim *s, struct dgram *d)
{
	/* The same draws for every datagram whatever the mask, so --faults keeps the rest of the run. */
	double u_loss = rng_unit(&s->net), u_dup = rng_unit(&s->net), u_delay = rng_unit(&s->net);
	uint64_t delay = rng_range(&s->net, MS, s->max_delay), delay2 = rng_range(&s->net, MS, s->max_delay);
	const char *dir = d->to_model ? "to model" : d->unsolicited ? "announcement" : "to client";
	d->made_at = s->now;
	if (!s->route && s->now < s->t_end) {
		tracef(s, "net: %s dropped (no route)", dir);
		return;
	}
	if (faults_on(s, F_LOSS) && u_loss < s->p_loss) {
		tracef(s, "net: %s lost", dir);
		return;
	}
	uint64_t at = s->now + MS;
	if (faults_on(s, F_REORDER) && u_delay < s->p_delay) {
		at += delay;
		tracef(s, "net: %s held %.3f s", dir, (double)delay / 1e6);
	}
	enqueue(s, d, at);
	if (faults_on(s, F_DUP) && u_dup < s->p_dup) {
		tracef(s, "net: %s duplicated (+%.3f s)", dir, (double)delay2 / 1e6);
		enqueue(s, d, at + delay2);
	}
}

/* Whether a client socket still exists at this loopback address. */
static bool client_socket_exists(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	bool exists = bind(fd, (const struct sockaddr *)a, sizeof(*a)) < 0 && errno == EADDRINUSE;
	close(fd);
	return exists;
}

static bool client_readable(struct sim *s, int timeout_ms)
{
	struct pollfd p = { .fd = pcpmap_client_get_fd(s->c), .events = POLLIN };
	return poll(&p, 1, timeout_ms) > 0;
}

static void check_step(struct sim *s);

/* Reads what the client sent since the last call and hands it to the injector. */
static void collect(struct sim *s)
{
	uint64_t want = s->c->stats.sent - s->sent_seen;
	s->sent_seen = s->c->stats.sent;
	if (!want)
		return;
	if (!s->port_open) {
		/* ICMP port unreachable comes back on loopback: let the client see it. */
		client_readable(s, 20);
		return;
	}
	for (uint64_t got = 0; got < want;) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (poll(&p, 1, 1000) <= 0) {
			violation(s, "harness",
				  "%" PRIu64 " of %" PRIu64 " client datagrams never reached the model",
				  want - got, want);
			return;
		}
		for (;;) {
			struct dgram d;
			memset(&d, 0, sizeof(d));
			socklen_t sl = sizeof(d.peer);
			ssize_t n = recvfrom(s->fd, d.b, sizeof(d.b), 0, (struct sockaddr *)&d.peer, &sl);
			if (n < 0)
				break;
			d.len = (size_t)n;
			d.to_model = true;
			got++;
			inject(s, &d);
		}
	}
}

static void proc(struct sim *s)
{
	for (int i = 0; i < 20; i++) {
		int r = pcpmap_client_process(s->c);
		if (r < 0) {
			violation(s, "process", "pcpmap_client_process: %s", strerror(-r));
			return;
		}
		collect(s);
		if (!client_readable(s, 0))
			break;
	}
	check_step(s);
}

static void deliver_upnp(struct sim *s, const struct dgram *d);

static void deliver(struct sim *s, struct dgram *d)
{
	if (d->upnp_op) {
		deliver_upnp(s, d);
		return;
	}
	if (d->to_model) {
		if (!s->port_open || (s->silent && s->now < s->t_end)) {
			tracef(s, "net: to model dropped (%s)", s->port_open ? "silent" : "port closed");
			return;
		}
		if (d->b[0] == PCP_VERSION)
			model_pcp(s, d);
		else if (d->b[0] == 0)
			model_natpmp(s, d);
		return;
	}
	if (d->unsolicited) {
		struct pm_sockaddr src;
		memset(&src, 0, sizeof(src));
		src.u.in = s->gw;
		src.len = sizeof(src.u.in);
		pm_client_on_unsolicited(s->c, d->b, d->len, &src, s->now);
	} else {
		if (!s->port_open)
			return;
		if (sendto(s->fd, d->b, d->len, 0, (struct sockaddr *)&d->peer, sizeof(d->peer)) < 0) {
			violation(s, "harness", "model cannot send: %s", strerror(errno));
			return;
		}
		if (!client_readable(s, 0)) {
			if (!client_socket_exists(&d->peer)) {
				tracef(s, "net: to client: socket %u is gone", ntohs(d->peer.sin_port));
				return;
			}
			if (!client_readable(s, 1000)) {
				violation(s, "harness",
					  "a datagram to a live client socket was not delivered");
				return;
			}
		}
	}
	/* Delivered: what the client now knows. */
	if (d->epoch_proto) {
		bool shown = d->unsolicited;
		size_t at = d->epoch_proto == PCPMAP_PROTO_PCP ? 8 : 4;
		if (d->len >= at + 4) {
			uint32_t ep = get32(d->b + at);
			uint64_t now_s = s->now / SEC;
			struct pcp_epoch *sh = &s->shadow[d->epoch_proto];
			shown |= d->epoch_proto == PCPMAP_PROTO_PCP ? !pcp_epoch_check(sh, ep, now_s)
								    : !natpmp_epoch_check(sh, ep, now_s);
		}
		for (size_t k = 0; k < s->n_restart && shown; k++)
			if (!s->first_ev[k][d->epoch_proto] && s->restart_t[k] <= d->made_at)
				s->first_ev[k][d->epoch_proto] = s->now;
	}
	if (d->has_natpmp_addr)
		s->natpmp_told_addr = d->natpmp_addr;
	if (d->grant_uid) {
		for (size_t i = 0; i < MAX_ENTRIES; i++) {
			struct entry *e = &s->e[i];
			if (e->used && e->uid == d->grant_uid) {
				e->told_at = s->now;
				e->told_port = d->grant_port;
				e->told_addr = d->grant_addr;
				e->told_expiry = s->now + (uint64_t)d->grant_lifetime * SEC;
			}
		}
	}
	proc(s);
}

/* ---- UPnP stand-in ------------------------------------------------------------------------------------ */

/* The real UPnP backend runs miniupnpc on a worker thread and hands results to the engine through an eventfd.
 * The stand-in keeps that contract without threads or HTTP: each job becomes an entry of the injector's queue
 * (in order, one SOAP round trip later, never lost: it is TCP) that the model serves and whose result goes to
 * the engine's hooks, stale results dropped as the real backend drops them. */
static int su_open(struct pm_server *sv)
{
	sv->local.u.in.sin_family = AF_INET;
	sv->local.u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sv->local.len = sizeof(sv->local.u.in);
	return 0;
}

static void su_close(struct pm_server *sv)
{
	(void)sv;
}

static void su_job(struct dgram *d)
{
	static const char *const names[] = { "", "discovery", "map", "unmap" };
	struct sim *s = S;
	tracef(s, "client -> UPnP %s job", names[d->upnp_op]);
	enqueue(s, d, s->now + s->upnp_latency);
}

static int su_send(struct pm_server *sv, struct pm_mapping *m, bool del)
{
	struct dgram d;
	(void)sv;
	memset(&d, 0, sizeof(d));
	d.upnp_op = del ? UPNP_JOB_UNMAP : UPNP_JOB_MAP;
	d.job_id = m->id;
	d.job_ipp = m->ip_proto;
	d.job_iport = m->internal_port;
	d.job_eport = del || m->have_grant ? m->ext_port : m->suggested_port;
	d.job_lifetime = m->req_lifetime;
	d.job_pf = m->prefer_failure;
	d.made_at = S->now;
	if (del)
		for (size_t i = 0; i < MAX_ENTRIES; i++) {
			struct entry *e = &S->e[i];
			if (e->used && !e->foreign && e->proto == PCPMAP_PROTO_UPNP && e->ipp == d.job_ipp &&
			    e->eport == d.job_eport)
				e->delete_seen_at = S->now;
		}
	su_job(&d);
	return 0;
}

static void su_readable(struct pm_server *sv, int fd, uint64_t now)
{
	(void)sv;
	(void)fd;
	(void)now;
}

static int su_probe(struct pm_server *sv)
{
	struct dgram d;
	(void)sv;
	memset(&d, 0, sizeof(d));
	d.upnp_op = UPNP_JOB_PROBE;
	d.made_at = S->now;
	su_job(&d);
	return 0;
}

static const struct pm_backend_ops sim_upnp = {
	.proto = PCPMAP_PROTO_UPNP,
	.name = "UPnP",
	.irt_us = 3000000u,
	.mrt_us = 60000000u,
	.server_open = su_open,
	.server_close = su_close,
	.send = su_send,
	.readable = su_readable,
	.probe = su_probe,
};

/* The model's side of a job: an IGD keyed by external port, one internal host. */
static void model_upnp(struct sim *s, const struct dgram *d, struct pm_reply *r, uint64_t *grant_uid)
{
	memset(r, 0, sizeof(*r));
	*grant_uid = 0;
	struct entry *e = find_map(s, PCPMAP_PROTO_UPNP, PCP_OP_MAP, d->job_ipp, d->job_iport, NULL, 0);
	if (d->upnp_op == UPNP_JOB_UNMAP) {
		if (e && e->eport == d->job_eport) {
			e->alive = false;
			e->dead_at = s->now;
			e->dead_why = "deleted";
		}
		r->kind = PM_REPLY_SUCCESS;
		return;
	}
	if (!e) {
		uint16_t port = d->job_eport;
		if (!port_free(s, d->job_ipp, port, NULL)) {
			if (d->job_pf && port) {
				r->kind = PM_REPLY_FATAL; /* 718 ConflictInMappingEntry */
				r->error = -EADDRINUSE;
				r->result_code = 718;
				return;
			}
			port = port_alloc(s, d->job_ipp);
		}
		if (!(e = entry_new(s))) {
			r->kind = PM_REPLY_RETRY;
			r->error = -EAGAIN;
			r->hold_s = 30;
			return;
		}
		e->proto = PCPMAP_PROTO_UPNP;
		e->op = PCP_OP_MAP;
		e->ipp = d->job_ipp;
		e->iport = d->job_iport;
		e->eport = port;
		tracef(s, "model: UPnP created #%" PRIu64 " %u -> %u", e->uid, e->iport, e->eport);
	}
	uint32_t lt = grant_lifetime(s, d->job_lifetime);
	e->eaddr = s->ext_addr;
	e->expire = s->now + (uint64_t)lt * SEC;
	r->kind = PM_REPLY_SUCCESS;
	r->lifetime = lt;
	r->ext_port = e->eport;
	struct in_addr a = { .s_addr = htonl(e->eaddr) };
	pcp_addr_from_v4(&r->ext_addr, &a);
	*grant_uid = e->uid;
}

static void deliver_upnp(struct sim *s, const struct dgram *d)
{
	pcpmap_client *c = s->c;
	struct pm_server *sv = NULL;
	for (struct pm_list *l = c->gateways.next; l != &c->gateways && !sv; l = l->next)
		sv = pm_container_of(l, struct pm_gw, link)->srv[PCPMAP_PROTO_UPNP];
	c->now = s->now;
	if (!s->route && s->now < s->t_end) {
		/* No route: the worker's connect (or its SSDP send) fails, and it says so, as upnp.c reports a
		 * transport error. A job is never lost without a word. */
		tracef(s, "net: UPnP job failed (no route)");
		if (sv && d->upnp_op == UPNP_JOB_PROBE)
			pm_server_on_probe(sv, -ENETUNREACH, NULL);
		else if (sv && pm_client_find_mapping(c, d->job_id))
			pm_server_on_unreachable(sv, -ENETUNREACH);
		proc(s);
		return;
	}
	if (d->upnp_op == UPNP_JOB_PROBE) {
		if (!sv)
			return;
		struct pcpmap_server_info info;
		memset(&info, 0, sizeof(info));
		info.proto = PCPMAP_PROTO_UPNP;
		snprintf(info.server, sizeof(info.server), "%s", sv->name);
		addr_str(s->ext_addr, info.external_addr);
		tracef(s, "client <- UPnP discovery answered");
		pm_server_on_probe(sv, 0, &info);
		proc(s);
		return;
	}
	struct pm_reply r;
	uint64_t uid;
	model_upnp(s, d, &r, &uid);
	for (size_t i = 0; uid && i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (e->used && e->uid == uid) {
			e->told_at = s->now;
			e->told_port = r.ext_port;
			e->told_addr = e->eaddr;
			e->told_expiry = s->now + (uint64_t)r.lifetime * SEC;
		}
	}
	struct pm_mapping *m = pm_client_find_mapping(c, d->job_id);
	bool stale = !m || !sv || m->server != sv ||
		     (m->state == PCPMAP_STATE_DELETING) != (d->upnp_op == UPNP_JOB_UNMAP);
	tracef(s, "client <- UPnP %s result: %s port %u lifetime %u%s",
	       d->upnp_op == UPNP_JOB_MAP ? "map" : "unmap", r.kind == PM_REPLY_SUCCESS ? "ok" : "refused",
	       r.ext_port, r.lifetime, stale ? " (stale, dropped)" : "");
	if (!stale) {
		pm_mapping_on_reply(m, &r);
	} else if (m && sv && d->upnp_op == UPNP_JOB_MAP && r.kind == PM_REPLY_SUCCESS) {
		/* The mapping moved to another protocol, or is being deleted, while its create was out: the
		 * grant it got is given back, as the real backend does (release job, its result ignored). */
		struct dgram rel;
		memset(&rel, 0, sizeof(rel));
		rel.upnp_op = UPNP_JOB_UNMAP;
		rel.job_ipp = d->job_ipp;
		rel.job_iport = d->job_iport;
		rel.job_eport = r.ext_port;
		rel.made_at = s->now;
		for (size_t i = 0; i < MAX_ENTRIES; i++) {
			struct entry *e = &s->e[i];
			if (e->used && !e->foreign && e->proto == PCPMAP_PROTO_UPNP &&
			    e->ipp == rel.job_ipp && e->eport == rel.job_eport)
				e->delete_seen_at = s->now;
		}
		su_job(&rel);
	}
	proc(s);
}

/* ---- Invariants --------------------------------------------------------------------------------------- */

static const char *st(enum pcpmap_state x)
{
	return pcpmap_state_name(x);
}

/* The model's newest entry for a mapping of the client (alive first). */
static struct entry *entry_for(struct sim *s, int proto, int kind, const uint8_t *nonce, uint8_t ipp,
			       uint16_t iport, bool alive_only)
{
	struct entry *best = NULL;
	int op = kind == PCPMAP_KIND_PEER ? PCP_OP_PEER : PCP_OP_MAP;
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (!e->used || e->foreign || e->proto != proto || e->op != op || e->ipp != ipp ||
		    e->iport != iport)
			continue;
		if (proto == PCPMAP_PROTO_PCP && memcmp(e->nonce, nonce, PCP_NONCE_LEN))
			continue;
		if (alive_only && !e->alive)
			continue;
		if (!best || (e->alive && !best->alive) || (e->alive == best->alive && e->uid > best->uid))
			best = e;
	}
	return best;
}

static bool held(const struct pm_mapping *m)
{
	return m->have_grant && (m->state == PCPMAP_STATE_MAPPED || m->state == PCPMAP_STATE_REFRESHING);
}

/* The first answer written after the restart at `at` that reached the client from that server; 0 if none. */
static uint64_t restart_evidence(const struct sim *s, int proto, uint64_t at)
{
	for (size_t k = 0; k < s->n_restart; k++)
		if (s->restart_t[k] == at && s->first_ev[k][proto])
			return s->first_ev[k][proto];
	return 0;
}

#define REACT_US (10 * SEC) /* announcements re-map after 0-5 s, paced: the client has this long to react */

/* A mapping the gateway lost in a restart that the client was shown (an answer with the new epoch reached
 * it) must not stay believed held. */
static bool ghost_after_restart(struct sim *s, const struct pm_mapping *m)
{
	if (entry_for(s, m->proto, m->kind, m->nonce, m->ip_proto, m->internal_port, true))
		return false;
	struct entry *d = entry_for(s, m->proto, m->kind, m->nonce, m->ip_proto, m->internal_port, false);
	if (!d || strcmp(d->dead_why, "restart"))
		return false;
	uint64_t ev = restart_evidence(s, m->proto, d->dead_at);
	if (!ev || s->now < ev + REACT_US)
		return false;
	char nb[16];
	nonce_str(m->nonce, nb);
	violation(s, "ghost",
		  "mapping %" PRIu64
		  " (internal %u, %s, nonce %s) still believed held on port %u: the model lost it in "
		  "a restart at t=%.3f and an answer with the new epoch reached the client at t=%.3f",
		  m->id, m->internal_port, pcpmap_proto_name(m->proto), nb, m->ext_port,
		  (double)(d->dead_at - T0) / 1e6, (double)(ev - T0) / 1e6);
	return true;
}

/* Every live mapping has an armed deadline or waits on a named event. */
static void check_step(struct sim *s)
{
	pcpmap_client *c = s->c;
	if (s->failed)
		return;
	for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		bool tm = sched_armed(&m->t_main), te = sched_armed(&m->t_expire);
		const char *why = NULL;
		switch (m->state) {
		case PCPMAP_STATE_NOT_SENT: {
			bool probing = false;
			for (int p = 0; m->gw && p < PM_NPROTO; p++)
				probing |= m->gw->status[p] == PM_P_PROBING;
			if (!tm && !probing)
				why = "unsent, no timer, no probe in flight";
			break;
		}
		case PCPMAP_STATE_WAIT_RESP:
		case PCPMAP_STATE_DELETING:
			if (!tm)
				why = "request in flight without a retransmission timer";
			else if (!m->server)
				why = "request in flight without a server";
			break;
		case PCPMAP_STATE_MAPPED:
		case PCPMAP_STATE_REFRESHING:
			if (!tm && !te)
				why = "held without renewal or expiry timer";
			break;
		case PCPMAP_STATE_ERROR_WAIT_RESEND:
			if (!tm)
				why = "waiting to retry without a timer";
			break;
		case PCPMAP_STATE_DELETED:
			why = "deleted but never released";
			break;
		case PCPMAP_STATE_FAILED:
			break;
		}
		if (!why && held(m) && !m->remap_pending && ghost_after_restart(s, m))
			return;
		if (why) {
			violation(s, "deadline", "mapping %" PRIu64 " (internal %u) in %s: %s", m->id,
				  m->internal_port, st(m->state), why);
			return;
		}
	}
}

static void on_event(pcpmap_mapping *h, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	struct app *a = ud;
	struct sim *s = S;
	char nb[16];
	(void)h;
	nonce_str(info->nonce, nb);
	char p2[16] = "";
	if (info->external_port2)
		snprintf(p2, sizeof(p2), "+%u", info->external_port2);
	tracef(s, "event: app %zu %s %s port %u%s state %s proto %s err %d nonce %s", (size_t)(a - s->app),
	       pcpmap_event_name(ev), info->external_addr, info->external_port, p2, st(info->state),
	       pcpmap_proto_name(info->proto), info->error, nb);
	if (a->freed) {
		violation(s, "outcome", "app mapping %zu: %s after pcpmap_mapping_free()",
			  (size_t)(a - s->app), pcpmap_event_name(ev));
		return;
	}
	if (a->n_final) {
		violation(s, "outcome", "app mapping %zu: %s after its final FAILED", (size_t)(a - s->app),
			  pcpmap_event_name(ev));
		return;
	}
	a->n_events++;
	a->last_ev = ev;
	size_t idx = (size_t)(a - s->app);
	switch (ev) {
	case PCPMAP_EVENT_MAPPED:
	case PCPMAP_EVENT_CHANGED: {
		a->n_outcomes++;
		a->believed = true;
		a->mapped_at = s->now;
		a->believed_port = info->external_port;
		if (a->req.prefer_failure && a->req.suggested_port &&
		    info->external_port != a->req.suggested_port) {
			violation(s, "prefer-failure",
				  "app mapping %zu asked port %u with PREFER_FAILURE, told %s %u", idx,
				  a->req.suggested_port, pcpmap_event_name(ev), info->external_port);
			return;
		}
		if (a->req.port_pair && info->external_port2 != info->external_port + 1) {
			violation(s, "pair", "app mapping %zu: pair reported as %u and %u", idx,
				  info->external_port, info->external_port2);
			return;
		}
		struct entry *e = entry_for(s, info->proto, a->req.kind, info->nonce, a->req.ip_proto,
					    a->req.internal_port, false);
		bool told = false;
		for (size_t i = 0; i < MAX_ENTRIES && !told; i++) {
			struct entry *x = &s->e[i];
			if (x->used && x->told_at && x->told_port == info->external_port && !x->foreign &&
			    x->op == (a->req.kind == PCPMAP_KIND_PEER ? PCP_OP_PEER : PCP_OP_MAP) &&
			    x->proto == (int)info->proto && x->ipp == a->req.ip_proto &&
			    x->iport == a->req.internal_port &&
			    (x->proto != PCPMAP_PROTO_PCP || !memcmp(x->nonce, info->nonce, PCP_NONCE_LEN)))
				told = true;
		}
		if (!told) {
			violation(s, "contradiction",
				  "app mapping %zu: %s port %u, but the model never granted it that port "
				  "(model: %s %u)",
				  idx, pcpmap_event_name(ev), info->external_port,
				  e ? (e->alive ? "holds" : e->dead_why) : "nothing", e ? e->eport : 0);
			return;
		}
		break;
	}
	case PCPMAP_EVENT_LOST: {
		/* A contradiction when the gateway holds it (each half of a pair) and has told the client so
		 * in a grant that still runs: a LOST that a later grant already refutes is a false alarm. */
		a->believed = false;
		struct entry *e = entry_for(s, info->proto, a->req.kind, info->nonce, a->req.ip_proto,
					    a->req.internal_port, true);
		struct entry *e2 = !a->req.port_pair
				       ? NULL
				       : entry_for(s, info->proto, a->req.kind, info->nonce2, a->req.ip_proto,
						   (uint16_t)(a->req.internal_port + 1), true);
		bool kept = e && e->told_at && e->eport == e->told_port && s->now + SEC < e->told_expiry;
		if (kept && a->req.port_pair)
			kept =
			    e2 && e2->told_at && e2->eport == e2->told_port && s->now + SEC < e2->told_expiry;
		if (kept) {
			violation(
			    s, "contradiction",
			    "app mapping %zu: LOST, but the model holds it (%s port %u since t=%.3f, told at "
			    "t=%.3f for %.0f s more)",
			    idx, pcpmap_proto_name(info->proto), e->eport, (double)(e->created_at - T0) / 1e6,
			    (double)(e->told_at - T0) / 1e6, (double)(e->told_expiry - s->now) / 1e6);
			return;
		}
		break;
	}
	case PCPMAP_EVENT_FAILED:
		a->n_outcomes++;
		if (info->state == PCPMAP_STATE_FAILED) {
			a->n_final++;
			a->believed = false;
		}
		break;
	case PCPMAP_EVENT_DELETED:
		break;
	}
}

/* At quiescence the model holds exactly what the client believes (no orphan, no ghost). */
static void check_quiescence(struct sim *s)
{
	pcpmap_client *c = s->c;
	char ab[INET_ADDRSTRLEN], ab2[INET_ADDRSTRLEN], nb[16];
	model_expire(s);
	for (struct pm_list *l = c->mappings.next; l != &c->mappings && !s->failed; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (!held(m))
			continue;
		struct entry *e =
		    entry_for(s, m->proto, m->kind, m->nonce, m->ip_proto, m->internal_port, true);
		nonce_str(m->nonce, nb);
		if (!e) {
			struct entry *d =
			    entry_for(s, m->proto, m->kind, m->nonce, m->ip_proto, m->internal_port, false);
			uint64_t ev = d && !strcmp(d->dead_why, "restart")
					  ? restart_evidence(s, m->proto, d->dead_at)
					  : 0;
			/* Unknowable to the client: an expiry its own timer has not reached yet, a restart nothing
			 * has shown it yet. */
			bool unknowable = d && (!strcmp(d->dead_why, "expired") ||
						(!strcmp(d->dead_why, "restart") && !ev));
			if (!unknowable && ev)
				violation(s, "ghost",
					  "mapping %" PRIu64
					  " (internal %u, %s, nonce %s) believed held on port %u; the model "
					  "lost it in a restart at t=%.3f, and an answer with the new epoch "
					  "reached the client at "
					  "t=%.3f",
					  m->id, m->internal_port, pcpmap_proto_name(m->proto), nb,
					  m->ext_port, (double)(d->dead_at - T0) / 1e6,
					  (double)(ev - T0) / 1e6);
			else if (!unknowable)
				violation(s, "ghost",
					  "mapping %" PRIu64
					  " (internal %u, %s, nonce %s) believed held on port %u; the model "
					  "%s",
					  m->id, m->internal_port, pcpmap_proto_name(m->proto), nb,
					  m->ext_port, d ? d->dead_why : "never held it");
			continue;
		}
		uint32_t believed_addr = 0;
		struct in_addr in;
		if (pcp_addr_to_v4(&m->ext_addr, &in) == 0)
			believed_addr = ntohl(in.s_addr);
		bool told_truth = e->told_port == e->eport &&
				  (m->proto == PCPMAP_PROTO_NATPMP ? s->natpmp_told_addr == e->eaddr
								   : e->told_addr == e->eaddr);
		if ((e->eport != m->ext_port || e->eaddr != believed_addr) && told_truth)
			violation(s, "ghost",
				  "mapping %" PRIu64
				  " (internal %u) believed on %s:%u; the model holds %s:%u and told "
				  "the client so",
				  m->id, m->internal_port, addr_str(believed_addr, ab), m->ext_port,
				  addr_str(e->eaddr, ab2), e->eport);
	}
	for (size_t i = 0; i < MAX_ENTRIES && !s->failed; i++) {
		struct entry *e = &s->e[i];
		if (!e->alive || e->foreign || !e->told_at || e->delete_seen_at >= e->told_at)
			continue;
		bool believed = false, known = false;
		for (struct pm_list *l = c->mappings.next; l != &c->mappings; l = l->next) {
			struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
			if (m->ip_proto != e->ipp || m->internal_port != e->iport ||
			    (e->proto == PCPMAP_PROTO_PCP && memcmp(m->nonce, e->nonce, PCP_NONCE_LEN)))
				continue;
			known = true;
			if (held(m) && (int)m->proto == e->proto &&
			    (e->op == PCP_OP_PEER) == (m->kind == PCPMAP_KIND_PEER))
				believed = true;
		}
		/* PEER cannot be deleted (RFC 6887 12): one the client gave up on can only expire. */
		if (believed || e->op == PCP_OP_PEER)
			continue;
		nonce_str(e->nonce, nb);
		violation(s, "orphan",
			  "the model holds %s #%" PRIu64
			  " (internal %u -> %u, nonce %s, expires in %.0f s), the client "
			  "was told at t=%.3f and %s",
			  pcpmap_proto_name(e->proto), e->uid, e->iport, e->eport,
			  e->proto == PCPMAP_PROTO_PCP ? nb : "-", (double)(e->expire - s->now) / 1e6,
			  (double)(e->told_at - T0) / 1e6,
			  known ? "does not believe it holds it"
				: "has no mapping for it, and never deleted it");
	}
	for (size_t i = 0; i < s->n_app && !s->failed; i++) {
		struct app *a = &s->app[i];
		if (!a->created || a->freed)
			continue;
		if (!a->n_outcomes) {
			violation(s, "outcome",
				  "app mapping %zu got no outcome (no MAPPED, no FAILED) by quiescence", i);
			break;
		}
		struct pm_mapping *m = (struct pm_mapping *)a->h;
		if (a->believed != held(m) || (a->believed && a->believed_port != m->ext_port))
			violation(s, "outcome",
				  "app mapping %zu: the application was told %s %u, the engine is %s on %u",
				  i, a->believed ? "held on" : "not held", a->believed_port, st(m->state),
				  m->ext_port);
	}
}

static bool settled(struct sim *s)
{
	for (size_t i = 0; i < MAX_QUEUE; i++)
		if (s->q[i].used)
			return false;
	if (s->c->ev_head)
		return false;
	for (struct pm_list *l = s->c->mappings.next; l != &s->c->mappings; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if ((m->state != PCPMAP_STATE_MAPPED && m->state != PCPMAP_STATE_FAILED) || m->remap_pending)
			return false;
	}
	return true;
}

/* ---- Scenario ----------------------------------------------------------------------------------------- */

static void add_ev(struct sim *s, uint64_t at, enum sev kind, int arg)
{
	if (s->n_sev < MAX_SCHED)
		s->sev[s->n_sev++] = (struct sched_ev){ .at = at, .kind = kind, .arg = arg };
}

static int cmp_ev(const void *a, const void *b)
{
	const struct sched_ev *x = a, *y = b;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* Draws the whole scenario from the seed. Every draw happens whatever --faults says, so restricting the fault
 * kinds keeps the mappings and the times of the remaining faults. */
static void scenario(struct sim *s)
{
	struct rng *r = &s->scen;
	static const uint32_t lifetimes[] = { 60, 120, 300, 600, 1800 };
	static const uint32_t req_lifetimes[] = { 0, 60, 120, 600, 3600 };
	uint64_t dur = rng_range(r, 5, 30) * 60 * SEC;
	s->t_end = T0 + dur;
	s->max_lifetime = lifetimes[rng_range(r, 0, 4)];
	s->upnp_latency = rng_range(r, 5, 300) * MS;
	bool fresh_boot = rng_chance(r, 0.3);
	uint64_t boot_ago = rng_range(r, 10, 1000000) * SEC, boot_lead = rng_range(r, 0, 1000) * MS;
	s->ext_addr = 0xcb007100u | (uint32_t)rng_range(r, 1, 99); /* 203.0.113.x */
	s->n_app = rng_range(r, 1, 5);
	uint64_t first_create = UINT64_MAX;
	for (size_t i = 0; i < s->n_app; i++) {
		struct app *a = &s->app[i];
		bool peer = rng_chance(r, 0.15), pair = rng_chance(r, 0.15), suggest = rng_chance(r, 0.5);
		bool pf = rng_chance(r, 0.25);
		bool udp = rng_chance(r, 0.5);
		uint32_t lt = req_lifetimes[rng_range(r, 0, 4)];
		uint64_t create = T0 + rng_range(r, 0, dur * 6 / 10 / MS) * MS;
		bool frees = rng_chance(r, 0.4);
		uint64_t life = rng_range(r, 1000, dur / MS) * MS;
		a->used = true;
		pcpmap_request_init(&a->req, peer ? PCPMAP_KIND_PEER : PCPMAP_KIND_MAP);
		a->req.ip_proto = udp ? IPPROTO_UDP : IPPROTO_TCP;
		a->req.internal_port = (uint16_t)(10000 + 10 * i);
		a->req.lifetime = lt;
		if (suggest)
			a->req.suggested_port = (uint16_t)(30000 + 10 * i);
		if (peer) {
			snprintf(a->peer_addr, sizeof(a->peer_addr), "198.51.100.%zu", 10 + i);
			a->req.peer_addr = a->peer_addr;
			a->req.peer_port = 443;
		} else if (pair && !s->no_pairs) {
			a->req.port_pair = true;
		} else if (pf && suggest) {
			a->req.prefer_failure = true;
		}
		a->req.callback = on_event;
		a->req.userdata = a;
		a->create_at = create;
		a->free_at = frees ? create + life : UINT64_MAX;
		if (a->free_at != UINT64_MAX && a->free_at > s->t_end)
			a->free_at = s->t_end;
		if (create < first_create)
			first_create = create;
	}

	/* A gateway that booted just before the client's first request (its epoch starts at 0), or long ago. */
	s->epoch_start = fresh_boot && first_create != UINT64_MAX ? first_create - boot_lead : T0 - boot_ago;

	/* Fault parameters and times, all drawn. */
	unsigned want = 0;
	for (int f = 0; f < F__MAX; f++)
		if (rng_chance(r, 0.5))
			want |= 1u << f;
	unsigned pick = (unsigned)rng_range(r, 0, F__MAX - 1);
	s->active = want & s->mask;
	if (!s->active && s->mask) {
		unsigned n = 0;
		for (int f = 0; f < F__MAX; f++)
			n += (s->mask >> f) & 1;
		unsigned k = pick % n;
		for (int f = 0; f < F__MAX; f++)
			if (((s->mask >> f) & 1) && k-- == 0)
				s->active = 1u << f;
	}
	s->p_loss = 0.05 + 0.35 * rng_unit(r);
	s->p_dup = 0.05 + 0.25 * rng_unit(r);
	s->p_delay = 0.1 + 0.4 * rng_unit(r);
	/* Held at most max_hold (1 s by default): RFC 6887 8.5 and RFC 6886 3.6 allow 2 s of epoch slack, which
	 * longer holds would use up on their own (--max-hold explores beyond). */
	s->max_delay = rng_range(r, 100, 5000) * s->max_hold / 5000;
	if (!(s->active & (1u << F_REORDER)))
		s->max_delay = 100 * MS; /* duplicates still come a little later */

	for (int k = 0, n = (int)rng_range(r, 1, 3); k < 3; k++) {
		uint64_t at = T0 + rng_range(r, 0, dur / SEC) * SEC, len = rng_range(r, 1, 120) * SEC;
		if (k < n && (s->active & (1u << F_ICMP))) {
			add_ev(s, at, EV_ICMP_ON, 0);
			add_ev(s, at + len, EV_ICMP_OFF, 0);
		}
	}
	for (int k = 0, n = (int)rng_range(r, 1, 3); k < 3; k++) {
		uint64_t at = T0 + rng_range(r, 0, dur / SEC) * SEC, len = rng_range(r, 1, 300) * SEC;
		if (k < n && (s->active & (1u << F_SILENCE))) {
			add_ev(s, at, EV_SILENT_ON, 0);
			add_ev(s, at + len, EV_SILENT_OFF, 0);
		}
	}
	bool early = rng_chance(r, 0.3);
	uint64_t early_at = (first_create == UINT64_MAX ? T0 : first_create) + rng_range(r, 200, 2000) * MS;
	for (int k = 0, n = (int)rng_range(r, 1, 3); k < 3; k++) {
		uint64_t at = k == 0 && early ? early_at : T0 + rng_range(r, 0, dur / MS) * MS;
		bool steal = rng_chance(r, 0.5);
		if (k < n && (s->active & (1u << F_RESTART)))
			add_ev(s, at, EV_RESTART, 0);
		if (k < n && (s->active & (1u << F_PFQUIRK)) && steal) {
			add_ev(s, at, EV_RESTART, 0);
			add_ev(s, at, EV_STEAL, 0);
		}
	}
	for (int k = 0, n = (int)rng_range(r, 1, 3); k < 3; k++) {
		uint64_t at = T0 + rng_range(r, 0, dur / MS) * MS;
		bool loss = rng_chance(r, 0.5);
		if (k < n && (s->active & (1u << F_ANNOUNCE)))
			add_ev(s, at, loss ? EV_ANNOUNCE_LOSS : EV_ANNOUNCE_KEEP, 0);
	}
	{
		uint64_t at = T0 + rng_range(r, 0, dur / MS) * MS,
			 back = at + rng_range(r, 1, dur / SEC) * SEC;
		int which = rng_chance(r, 0.7) ? PCPMAP_PROTO_PCP : PCPMAP_PROTO_NATPMP;
		s->pcp_off_natpmp_style = rng_chance(r, 0.5);
		if (s->active & (1u << F_SWITCH)) {
			add_ev(s, at, EV_SWITCH_OFF, which);
			add_ev(s, back < s->t_end ? back : s->t_end, EV_SWITCH_ON, which);
		}
	}
	for (int k = 0, n = (int)rng_range(r, 1, 2); k < 2; k++) {
		uint64_t at = T0 + rng_range(r, 0, dur / MS) * MS;
		if (k < n && (s->active & (1u << F_EXTADDR)))
			add_ev(s, at, EV_EXTADDR, 0);
	}
	for (int k = 0, n = (int)rng_range(r, 1, 2); k < 2; k++) {
		uint64_t at = T0 + rng_range(r, 0, dur / SEC) * SEC, len = rng_range(r, 1, 300) * SEC;
		if (k < n && (s->active & (1u << F_ROUTE))) {
			add_ev(s, at, EV_ROUTE_OFF, 0);
			add_ev(s, at + len, EV_ROUTE_ON, 0);
		}
	}
	s->pf_quirk = (s->active & (1u << F_PFQUIRK)) != 0;
	qsort(s->sev, s->n_sev, sizeof(s->sev[0]), cmp_ev);
}

static void announce(struct sim *s)
{
	struct dgram d;
	struct pcp_msg m;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_ANNOUNCE;
	m.result = PCP_RES_SUCCESS;
	m.epoch = gw_epoch(s);
	memset(&d, 0, sizeof(d));
	pcp_encode(&m, NULL, d.b, sizeof(d.b), &d.len);
	d.unsolicited = true;
	d.epoch_proto = PCPMAP_PROTO_PCP;
	inject(s, &d);
	natpmp_addr_dgram(s, &d);
	d.unsolicited = true;
	inject(s, &d);
}

static void restart(struct sim *s)
{
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		struct entry *e = &s->e[i];
		if (e->alive) {
			e->alive = false;
			e->dead_at = s->now;
			e->dead_why = "restart";
		}
	}
	s->epoch_start = s->now;
	s->restart_at = s->now;
	if (s->n_restart < 16) {
		memset(s->first_ev[s->n_restart], 0, sizeof(s->first_ev[0]));
		s->restart_t[s->n_restart++] = s->now;
	}
}

static void net_event(struct sim *s)
{
	pm_client_on_net_events(s->c, PM_NET_EV_ROUTE, s->now);
}

static void drain_client(struct sim *s)
{
	for (int i = 0; i < 20 && client_readable(s, 0); i++)
		proc(s);
}

static void run_sev(struct sim *s, struct sched_ev *e)
{
	static const char *const names[] = { "port closed (ICMP)",
					     "port open",
					     "gateway silent",
					     "gateway answers",
					     "restart",
					     "announcement (state kept)",
					     "restart + announcement",
					     "protocol off",
					     "protocol on",
					     "external address change",
					     "route lost",
					     "route back",
					     "ports taken by another host" };
	tracef(s, "fault: %s%s%s", names[e->kind], e->arg ? " " : "",
	       e->arg ? pcpmap_proto_name((enum pcpmap_proto)e->arg) : "");
	switch (e->kind) {
	case EV_ICMP_ON:
		drain_client(s);
		gw_close(s);
		break;
	case EV_ICMP_OFF:
		drain_client(s);
		if (!s->port_open && gw_open(s) < 0)
			violation(s, "harness", "cannot reopen the model's port");
		break;
	case EV_SILENT_ON:
		s->silent = true;
		break;
	case EV_SILENT_OFF:
		s->silent = false;
		break;
	case EV_RESTART:
		restart(s);
		break;
	case EV_ANNOUNCE_KEEP:
		announce(s);
		break;
	case EV_ANNOUNCE_LOSS:
		restart(s);
		announce(s);
		break;
	case EV_SWITCH_OFF:
	case EV_SWITCH_ON:
		if (e->arg == PCPMAP_PROTO_PCP)
			s->pcp_off = e->kind == EV_SWITCH_OFF;
		else
			s->natpmp_off = e->kind == EV_SWITCH_OFF;
		break;
	case EV_EXTADDR: {
		s->ext_addr = 0xc6336400u | ((s->ext_addr + 1) & 0x3f); /* 198.51.100.x */
		for (size_t i = 0; i < MAX_ENTRIES; i++)
			if (s->e[i].alive && !s->e[i].foreign)
				s->e[i].eaddr = s->ext_addr;
		/* RFC 6886 3.2.1: the gateway tells its clients. */
		struct dgram d;
		natpmp_addr_dgram(s, &d);
		d.unsolicited = true;
		inject(s, &d);
		break;
	}
	case EV_ROUTE_OFF:
	case EV_ROUTE_ON:
		s->route = e->kind == EV_ROUTE_ON;
		net_event(s);
		break;
	case EV_STEAL:
		for (struct pm_list *l = s->c->mappings.next; l != &s->c->mappings; l = l->next) {
			struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
			struct entry *x;
			if (!m->have_grant || m->kind != PCPMAP_KIND_MAP || !(x = entry_new(s)))
				continue;
			x->foreign = true;
			x->op = PCP_OP_MAP;
			x->ipp = m->ip_proto;
			x->eport = m->ext_port;
			x->expire = s->t_end + 2 * SETTLE_MAX;
		}
		break;
	}
	e->done = true;
}

static void stop_faults(struct sim *s)
{
	tracef(s, "faults stop");
	drain_client(s);
	if (!s->port_open && gw_open(s) < 0)
		violation(s, "harness", "cannot reopen the model's port");
	s->silent = false;
	s->pcp_off = s->natpmp_off = false;
	if (!s->route) {
		s->route = true;
		net_event(s);
	}
}

/* ---- Driver ------------------------------------------------------------------------------------------- */

static void app_create(struct sim *s, struct app *a)
{
	a->created = true;
	s->c->now = s->now;
	int r = pcpmap_mapping_new(s->c, &a->req, &a->h);
	tracef(s, "app %zu: new %s %s internal %u suggest %u%s%s lifetime %u: %s", (size_t)(a - s->app),
	       a->req.kind == PCPMAP_KIND_PEER ? "PEER" : "MAP",
	       a->req.ip_proto == IPPROTO_UDP ? "udp" : "tcp", a->req.internal_port, a->req.suggested_port,
	       a->req.prefer_failure ? " PREFER_FAILURE" : "", a->req.port_pair ? " pair" : "",
	       a->req.lifetime, r < 0 ? strerror(-r) : "ok");
	if (r < 0) {
		violation(s, "harness", "pcpmap_mapping_new: %s", strerror(-r));
		a->created = false;
		return;
	}
	collect(s);
}

static void app_free(struct sim *s, struct app *a)
{
	tracef(s, "app %zu: free", (size_t)(a - s->app));
	pcpmap_mapping_free(a->h);
	a->h = NULL;
	a->freed = true;
	collect(s);
}

/* One step: the earliest of a fault, an application action, a datagram, a client deadline. */
static bool step(struct sim *s, uint64_t until)
{
	if (++s->steps > MAX_STEPS) {
		violation(s, "livelock", "more than %d steps", MAX_STEPS);
		return false;
	}
	uint64_t t = pcpmap_client_next_deadline(s->c);
	if (t < s->now)
		t = s->now;
	struct sched_ev *ev = NULL;
	for (size_t i = 0; i < s->n_sev; i++)
		if (!s->sev[i].done) {
			ev = &s->sev[i];
			break;
		}
	struct app *act = NULL;
	uint64_t act_at = UINT64_MAX;
	for (size_t i = 0; i < s->n_app; i++) {
		struct app *a = &s->app[i];
		uint64_t at = !a->created ? a->create_at : !a->freed ? a->free_at : UINT64_MAX;
		if (at < act_at) {
			act_at = at;
			act = a;
		}
	}
	struct dgram *dg = NULL;
	for (size_t i = 0; i < MAX_QUEUE; i++)
		if (s->q[i].used &&
		    (!dg || s->q[i].at < dg->at || (s->q[i].at == dg->at && s->q[i].seq < dg->seq)))
			dg = &s->q[i];
	uint64_t tmin = t;
	if (ev && ev->at < tmin)
		tmin = ev->at;
	if (act_at < tmin)
		tmin = act_at;
	if (dg && dg->at < tmin)
		tmin = dg->at;
	if (tmin > until) {
		s->now = until;
		return false;
	}
	if (tmin > s->now)
		s->now = tmin;
	model_expire(s);
	if (ev && ev->at <= s->now) {
		run_sev(s, ev);
		proc(s);
	} else if (act && act_at <= s->now) {
		if (!act->created)
			app_create(s, act);
		else
			app_free(s, act);
		proc(s);
	} else if (dg && dg->at <= s->now) {
		struct dgram d = *dg;
		dg->used = false;
		deliver(s, &d);
	} else {
		proc(s);
	}
	return true;
}

/* Frees the client and checks that the gateway keeps nothing the client was told about. */
static void free_client(struct sim *s)
{
	unsigned expect = 0;
	uint64_t pre[MAX_ENTRIES];
	for (size_t i = 0; i < MAX_ENTRIES; i++)
		pre[i] = s->e[i].delete_seen_at;
	for (struct pm_list *l = s->c->mappings.next; l != &s->c->mappings; l = l->next) {
		struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
		if (m->server && m->server->ops->proto != PCPMAP_PROTO_UPNP && m->kind == PCPMAP_KIND_MAP &&
		    (m->state == PCPMAP_STATE_MAPPED || m->state == PCPMAP_STATE_REFRESHING ||
		     m->state == PCPMAP_STATE_WAIT_RESP ||
		     (m->state == PCPMAP_STATE_ERROR_WAIT_RESEND && m->have_grant)))
			expect++;
	}
	tracef(s, "client freed (%u best-effort deletes expected)", expect);
	s->c = pcpmap_client_free(s->c);
	for (unsigned got = 0; got < expect && !s->failed;) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (poll(&p, 1, 1000) <= 0) {
			violation(s, "free", "%u of %u best-effort deletes never left the client",
				  expect - got, expect);
			break;
		}
		struct dgram d;
		memset(&d, 0, sizeof(d));
		socklen_t sl = sizeof(d.peer);
		ssize_t n = recvfrom(s->fd, d.b, sizeof(d.b), 0, (struct sockaddr *)&d.peer, &sl);
		if (n < 0)
			continue;
		d.len = (size_t)n;
		got++;
		note_delete(s, d.b, d.len);
		/* Straight to the model: the answers go to closed sockets. */
		if (d.b[0] == PCP_VERSION)
			model_pcp(s, &d);
		else
			model_natpmp(s, &d);
	}
	/* The stand-in worker's deletes reach the model; their results have nobody to go to. */
	for (size_t i = 0; i < MAX_QUEUE; i++) {
		struct dgram *d = &s->q[i];
		if (d->used && d->upnp_op == UPNP_JOB_UNMAP && d->made_at == s->now) {
			struct pm_reply r;
			uint64_t uid;
			model_upnp(s, d, &r, &uid);
		}
		d->used = false;
	}
	model_expire(s);
	for (size_t i = 0; i < MAX_ENTRIES && !s->failed; i++) {
		struct entry *e = &s->e[i];
		if (e->alive && !e->foreign && e->op == PCP_OP_MAP && e->told_at && pre[i] < e->told_at) {
			char nb[16];
			nonce_str(e->nonce, nb);
			violation(s, "free",
				  "after pcpmap_client_free() the model still holds %s #%" PRIu64
				  " (internal %u -> %u, nonce %s) that the client was told about",
				  pcpmap_proto_name(e->proto), e->uid, e->iport, e->eport,
				  e->proto == PCPMAP_PROTO_PCP ? nb : "-");
		}
	}
}

static int run_seed(struct sim *s)
{
	memset(s->e, 0, sizeof(s->e));
	memset(s->q, 0, sizeof(s->q));
	memset(s->app, 0, sizeof(s->app));
	s->n_sev = s->n_app = s->n_restart = 0;
	s->steps = 0;
	s->failed = false;
	s->n_trace = 0;
	s->next_uid = 0;
	s->silent = s->pcp_off = s->natpmp_off = s->pf_quirk = false;
	s->route = true;
	s->natpmp_told_addr = 0;
	s->scen.s = s->seed * 3 + 1;
	s->net.s = s->seed * 3 + 2;
	s->cli.s = s->seed * 3 + 3;
	s->now = T0;
	if (!s->port_open && gw_open(s) < 0) {
		fprintf(stderr, "pcpmap-sim: cannot bind the model gateway %s:%d\n", s->gw_str, GW_PORT);
		return -1;
	}
	/* What the previous seed's client sent while being freed must not reach this seed's model. */
	uint8_t sink[PCP_MAX_MSG];
	while (recv(s->fd, sink, sizeof(sink), MSG_DONTWAIT) >= 0)
		;
	scenario(s);
	if (s->verbose) {
		printf("seed %" PRIu64 ": %zu mappings, faults until t=%.0f s, max lifetime %u s, faults:",
		       s->seed, s->n_app, (double)(s->t_end - T0) / 1e6, s->max_lifetime);
		for (int f = 0; f < F__MAX; f++)
			if (s->active & (1u << f))
				printf(" %s", fault_names[f]);
		printf("\n");
	}

	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.protocols = PCPMAP_PROTOS_ALL;
	cfg.no_announce_listener = true; /* announcements come through pm_client_on_unsolicited() */
	cfg.no_netlink_monitor = true;
	if (s->verbose) {
		cfg.log = sim_log;
		cfg.log_userdata = s;
		cfg.log_level = PCPMAP_LOG_DEBUG;
	}
	cfg.trace = sim_trace;
	cfg.trace_userdata = s;
	s->env.clock.now_us = sim_now;
	s->env.clock.ctx = s;
	s->env.rand.fill = sim_fill;
	s->env.rand.ctx = s;
	int r = pm_client_new_env(&s->c, &cfg, &s->env);
	if (r < 0) {
		fprintf(stderr, "pcpmap-sim: cannot create a client: %s\n", strerror(-r));
		return -1;
	}
	s->c->default_gateway = sim_default_gateway;
	s->c->backends[PCPMAP_PROTO_UPNP] = &sim_upnp;
	s->sent_seen = 0;

	while (!s->failed && step(s, s->t_end))
		;
	if (!s->failed) {
		s->now = s->t_end;
		stop_faults(s);
		proc(s);
	}
	bool quiet = false;
	while (!s->failed) {
		if (settled(s)) {
			quiet = true;
			break;
		}
		if (!step(s, s->t_end + SETTLE_MAX))
			break;
	}
	if (!s->failed && !quiet) {
		for (struct pm_list *l = s->c->mappings.next; l != &s->c->mappings; l = l->next) {
			struct pm_mapping *m = pm_container_of(l, struct pm_mapping, link);
			if (m->state != PCPMAP_STATE_MAPPED && m->state != PCPMAP_STATE_FAILED) {
				violation(s, "quiescence",
					  "no quiescence %u s after the faults stopped: mapping %" PRIu64
					  " (internal %u) still %s",
					  (unsigned)(SETTLE_MAX / SEC), m->id, m->internal_port,
					  st(m->state));
				break;
			}
		}
		if (!s->failed)
			violation(
			    s, "quiescence",
			    "no quiescence %u s after the faults stopped (confirmations in flight %u, window "
			    "%.1f)",
			    (unsigned)(SETTLE_MAX / SEC), s->c->remap.in_flight, s->c->remap.cwnd);
	}
	if (!s->failed) {
		tracef(s, "quiescent");
		check_quiescence(s);
	}
	if (s->c && !s->failed)
		free_client(s);
	if (s->c)
		s->c = pcpmap_client_free(s->c);
	if (!s->port_open)
		gw_open(s);
	return s->failed ? 1 : 0;
}

static int parse_faults(const char *arg, unsigned *ret)
{
	if (!strcmp(arg, "all")) {
		*ret = (1u << F__MAX) - 1;
		return 0;
	}
	*ret = 0;
	if (!strcmp(arg, "none"))
		return 0;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		int f;
		for (f = 0; f < F__MAX && strcmp(tok, fault_names[f]); f++)
			;
		if (f == F__MAX)
			return -1;
		*ret |= 1u << f;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pcpmap-sim [--seed N | --seeds A-B] [--faults all|none|KIND,...] [--no-pairs] "
		   "[--verbose]\n"
		   "  Runs the engine against a model gateway with a seeded fault schedule; prints a replay\n"
		   "  command for every failing seed. Fault kinds:");
	for (int k = 0; k < F__MAX; k++)
		fprintf(f, " %s", fault_names[k]);
	fprintf(f, "\n  --show N       print the first N failures (default 10)\n"
		   "  --max-hold MS  longest hold of a reordered datagram (default 1000)\n"
		   "  --no-pairs     plain mappings where a seed asks for port pairs\n");
}

int main(int argc, char **argv)
{
	static struct sim sim;
	struct sim *s = &sim;
	uint64_t first = 1, last = 1000;
	unsigned show = 10;
	S = s;
	s->argv0 = argv[0];
	s->mask = (1u << F__MAX) - 1;
	snprintf(s->faults_arg, sizeof(s->faults_arg), "all");
	s->fd = -1;
	s->max_hold = SEC;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--seed") && v) {
			first = last = strtoull(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--seeds") && v) {
			if (sscanf(v, "%" SCNu64 "-%" SCNu64, &first, &last) != 2 || last < first) {
				fprintf(stderr, "pcpmap-sim: --seeds wants A-B, got '%s'\n", v);
				return 2;
			}
			i++;
		} else if (!strcmp(a, "--faults") && v) {
			if (parse_faults(v, &s->mask) < 0) {
				fprintf(stderr, "pcpmap-sim: unknown fault kind in '%s'\n", v);
				usage(stderr);
				return 2;
			}
			snprintf(s->faults_arg, sizeof(s->faults_arg), "%s", v);
			i++;
		} else if (!strcmp(a, "--max-hold") && v) {
			s->max_hold = strtoull(v, NULL, 10) * MS;
			if (s->max_hold < MS)
				s->max_hold = MS;
			i++;
		} else if (!strcmp(a, "--show") && v) {
			show = (unsigned)strtoul(v, NULL, 10);
			i++;
		} else if (!strcmp(a, "--no-pairs")) {
			s->no_pairs = true;
		} else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
			s->verbose = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "pcpmap-sim: unknown argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (gw_pick(s) < 0) {
		fprintf(stderr,
			"pcpmap-sim: no free loopback address for the model gateway (127.128-191.x.y:%d)\n",
			GW_PORT);
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned long fails = 0, per_inv_n = 0;
	char inv_names[16][sizeof(s->fail_inv)];
	unsigned long inv_count[16] = { 0 };
	uint64_t inv_first[16] = { 0 };
	for (uint64_t seed = first; seed <= last; seed++) {
		s->seed = seed;
		int r = run_seed(s);
		if (r < 0)
			return 2;
		if (r == 0)
			continue;
		fails++;
		size_t k;
		for (k = 0; k < per_inv_n && strcmp(inv_names[k], s->fail_inv); k++)
			;
		if (k == per_inv_n && per_inv_n < 16) {
			memcpy(inv_names[k], s->fail_inv, sizeof(s->fail_inv));
			inv_first[k] = seed;
			per_inv_n++;
		}
		if (k < 16)
			inv_count[k]++;
		if (fails <= show || s->verbose) {
			printf("FAIL seed %" PRIu64 ": %s: %s\n", seed, s->fail_inv, s->fail_msg);
			if (!s->verbose) {
				printf("  last steps:\n");
				unsigned n = s->n_trace < 12 ? s->n_trace : 12;
				for (unsigned i = s->n_trace - n; i < s->n_trace; i++)
					printf("    %s\n", s->trace[i % TRACE_LINES]);
			}
			printf("  replay: %s --seed %" PRIu64 "%s%s", s->argv0, seed,
			       strcmp(s->faults_arg, "all") ? " --faults " : "",
			       strcmp(s->faults_arg, "all") ? s->faults_arg : "");
			if (s->max_hold != SEC)
				printf(" --max-hold %" PRIu64, s->max_hold / MS);
			if (s->no_pairs)
				printf(" --no-pairs");
			printf(" --verbose\n");
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("pcpmap-sim: seeds %" PRIu64 "-%" PRIu64 " (faults %s): %lu failed, %.1f s\n", first, last,
	       s->faults_arg, fails, secs);
	for (size_t k = 0; k < per_inv_n; k++)
		printf("  %-15s %lu seeds, first %" PRIu64 "\n", inv_names[k], inv_count[k], inv_first[k]);
	gw_close(s);
	return fails ? 1 : 0;
}
