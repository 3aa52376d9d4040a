/* SPDX-License-Identifier: MIT */
/*
 * pcpmapd policy: who may map what, and how many. Pure functions over the request, the caller's uid, the
 * table of current owners, the configuration and a socket-ownership lookup handed in by the caller; no I/O
 * of their own, so every rule is unit-tested (doc/pcpmapd.conf.md, "Authorization").
 */
#ifndef PCPMAP_DAEMON_POLICY_H
#define PCPMAP_DAEMON_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"
#include "daemon/state.h"

/* One mapping the daemon holds, as the policy sees it. */
struct pmd_owner {
	uint32_t id;
	uint32_t uid;
	uint8_t ip_proto;       /* 0 = every protocol (root only) */
	uint16_t internal_port; /* 0 = every port (with protocol 0) */
	const char
	    *internal_addr; /* "" or NULL = this host (the daemon normalises its own addresses to "") */
	bool leftover;      /* a record of an earlier run being deleted: owns the port, not counted */
};

/* A CREATE as the policy sees it. */
struct pmd_policy_req {
	uint32_t uid; /* from SO_PEERCRED */
	uint8_t ip_proto;
	uint16_t internal_port;
	const char *internal_addr; /* "" or NULL = this host; else the THIRD_PARTY address as asked */
	bool third_party;          /* THIRD_PARTY was given */
	bool third_party_local;    /* ... and it is one of this host's addresses (the caller looked) */
	bool persistent;
	bool peer; /* a PEER request: the port may be that of a connection (RFC 6887 section 12) */
};

/*
 * Asks whether uid holds a bound socket on port: a listening TCP socket, a bound UDP socket (connected or
 * not), an SCTP listener; for a PEER mapping (connected) an established TCP connection counts too.
 * @return 1 yes, 0 no, -errno when it cannot be told.
 */
typedef int (*pmd_sock_lookup_fn)(void *ud, uint32_t uid, uint8_t ip_proto, uint16_t port, bool connected);

/*
 * Whether cfg's user_port_grants let uid map ip_proto port without holding a socket on it.
 */
bool pmd_policy_granted(const struct pmd_cfg *cfg, uint32_t uid, uint8_t ip_proto, uint16_t port);

/*
 * Decides a CREATE. Rules, in order:
 *  1. uids other than root: TCP and UDP only (SCTP too with user_sctp), no port below user_min_port, a
 *     THIRD_PARTY only with user_third_party and only for this host's addresses, PERSISTENT only with
 *     user_persistent; then the port must be granted (user_port_grants) or the uid must hold a bound socket
 *     on it (lookup, called only here; NULL counts as "no socket").
 *  2. one owner per (protocol, internal address, port): another uid's mapping, leftovers included, on the
 *     same triple refuses it, root's requests too (NAT-PMP and UPnP carry no nonce: two owners would renew
 *     and delete each other's gateway mapping).
 *  3. quotas: max_mappings in total, max_mappings_per_uid for uids other than root; leftovers not counted.
 * @return 0 allowed; -EPERM, -EPROTONOSUPPORT, -EADDRINUSE, -EDQUOT, -ENOSPC, or the lookup's -errno; why
 *         (may be NULL) receives a sentence for the client.
 */
int pmd_policy_create(const struct pmd_cfg *cfg, const struct pmd_policy_req *q,
		      const struct pmd_owner *owners, size_t n_owners, pmd_sock_lookup_fn lookup,
		      void *lookup_ud, char *why, size_t whylen);

/* What pmd_policy_restore() decided for one record. */
enum pmd_restore_verdict {
	PMD_RESTORE_OK = 0,
	PMD_RESTORE_OVER_TOTAL,  /* max_mappings reached */
	PMD_RESTORE_OVER_UID,    /* max_mappings_per_uid reached for its uid */
	PMD_RESTORE_PORT_TAKEN,  /* another uid's record on the same (protocol, address, port) came first */
	PMD_RESTORE_ENGINE_FULL, /* no room left in the engine's table */
};

/* A short phrase for a verdict ("max_mappings reached", ...). */
const char *pmd_restore_verdict_str(enum pmd_restore_verdict v);

/*
 * Plans the restore of state records at start: persistent records first, in file order, bounded by
 * max_mappings, max_mappings_per_uid (root exempt) and one owner per port; leftovers (not persistent, to be
 * deleted) are not held for anyone and pass the limits, but like persistent ones need room in the engine's
 * table of engine_slots entries (a port pair takes two). No socket check: the programs may not run yet.
 * verdicts[i] receives the decision for recs[i].
 * @return the number of records set aside (not PMD_RESTORE_OK).
 */
size_t pmd_policy_restore(const struct pmd_cfg *cfg, const struct pmd_state_rec *recs, size_t n,
			  uint32_t engine_slots, enum pmd_restore_verdict *verdicts);

#endif
