/* Fake protocol backends: they record what the engine asks of them and never touch the network. Tests play
 * the gateway through fake_gw_*(): what they queue reaches the engine from inside pcpmap_client_process(),
 * the way a real backend's answers do (each fake server watches an eventfd the queue rings), so the engine
 * runs it at its own clock. */
#ifndef PCPMAP_FAKE_BACKEND_H
#define PCPMAP_FAKE_BACKEND_H

#include "internal.h"

#define FAKE_SEND_LOG 2048

struct fake_backend_log {
	unsigned opens[PM_NPROTO];
	unsigned probes[PM_NPROTO];
	unsigned sends[PM_NPROTO];
	unsigned deletes[PM_NPROTO];
	struct pm_server *srv[PM_NPROTO];
	struct pm_server *last_send_server;
	/* Every request (not delete) in order: the mapping, the protocol, and what the request carried. */
	struct fake_send {
		const pcpmap_mapping *m;
		struct pm_server *server;
		enum pcpmap_proto proto;
		size_t n_filters;
		bool has_description;
		uint64_t at_us; /* the client's clock when it went out */
	} send_log[FAKE_SEND_LOG];
	size_t n_send_log;
	bool epoch_ok; /* what the last fake_gw_epoch() got back from the engine */
};

extern struct fake_backend_log flog;
extern const struct pm_backend_ops fake_pcp, fake_natpmp, fake_upnp;

/* Clears the log and the queue and puts the three fakes in the client's backend table. */
void fake_backends_install(pcpmap_client *c);

/* The last request sent for m (NULL when none was). */
const struct fake_send *fake_last_send(const pcpmap_mapping *m);
/* The server m's last request went to (NULL when none went out). */
struct pm_server *fake_server_of(const pcpmap_mapping *m);
/* How many different mappings had a request sent since send_log entry `since`. */
size_t fake_sent_distinct(size_t since);

/* The gateway, queued until the next pcpmap_client_process(). */
#define FAKE_REACHABLE_FIRST 1u /* the answer first proves the server reachable (a PCP answer does) */
#define FAKE_EPOCH_FIRST     2u /* and its epoch (r->epoch) goes through the epoch check first */
/* An answer to m's request, from the server its last request went to. */
void fake_gw_reply(pcpmap_mapping *m, const struct pm_reply *r, unsigned flags);
void fake_gw_unreachable(enum pcpmap_proto p, int err);
/* The outcome of a probe of protocol p (info may be NULL). */
void fake_gw_probe(enum pcpmap_proto p, int err, const struct pcpmap_server_info *info);
/* The PCP server answers with NAT-PMP's "unsupported version". */
void fake_gw_natpmp_only(void);
/* An answer of protocol p's server carries epoch (the result lands in flog.epoch_ok). */
void fake_gw_epoch(enum pcpmap_proto p, uint32_t epoch);

#endif
