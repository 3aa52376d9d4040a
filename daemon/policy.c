/* SPDX-License-Identifier: MIT */
/* pcpmapd policy: authorisation and quotas as pure functions (daemon/policy.h). */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/policy.h"

static void whyf(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void whyf(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static const char *proto_name(uint8_t p)
{
	switch (p) {
	case 0:
		return "all";
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_SCTP:
		return "sctp";
	default:
		return "protocol";
	}
}

static const char *addr_or_host(const char *a)
{
	return a && a[0] ? a : "";
}

bool pmd_policy_granted(const struct pmd_cfg *cfg, uint32_t uid, uint8_t ip_proto, uint16_t port)
{
	for (size_t i = 0; i < cfg->n_port_grants; i++) {
		const struct pmd_port_grant *g = &cfg->port_grants[i];
		if ((g->any_uid || g->uid == uid) && (!g->ip_proto || g->ip_proto == ip_proto) &&
		    port >= g->low && port <= g->high)
			return true;
	}
	return false;
}

/* Protocol 0 and port 0 cover every protocol and port. */
static bool overlaps(uint8_t pa, uint16_t porta, const char *aa, uint8_t pb, uint16_t portb, const char *ab)
{
	if (pa && pb && pa != pb)
		return false;
	if (porta && portb && porta != portb)
		return false;
	return !strcmp(addr_or_host(aa), addr_or_host(ab));
}

static bool user_proto_ok(const struct pmd_cfg *cfg, uint8_t p)
{
	return p == IPPROTO_TCP || p == IPPROTO_UDP || (p == IPPROTO_SCTP && cfg->user_sctp);
}

int pmd_policy_create(const struct pmd_cfg *cfg, const struct pmd_policy_req *q,
		      const struct pmd_owner *owners, size_t n_owners, pmd_sock_lookup_fn lookup,
		      void *lookup_ud, char *why, size_t whylen)
{
	const bool root = q->uid == 0;
	const char *pn = proto_name(q->ip_proto);
	if (why && whylen)
		why[0] = '\0';
	if (!root) {
		if (q->ip_proto == 0) {
			whyf(why, whylen, "protocol 0 (every protocol and port) is for root only");
			return -EPERM;
		}
		if (!user_proto_ok(cfg, q->ip_proto)) {
			whyf(why, whylen, "IP protocol %u is for root only: other uids may map tcp and udp%s",
			     q->ip_proto, cfg->user_sctp ? " and sctp" : " (sctp with user_sctp = yes)");
			return -EPROTONOSUPPORT;
		}
		if (q->internal_port < cfg->user_min_port) {
			whyf(why, whylen, "internal port %u is below user_min_port %u: only root may map it",
			     q->internal_port, cfg->user_min_port);
			return -EPERM;
		}
		if (q->third_party && !cfg->user_third_party) {
			whyf(why, whylen, "THIRD_PARTY is for root only (user_third_party = no)");
			return -EPERM;
		}
		if (q->third_party && !q->third_party_local) {
			whyf(why, whylen,
			     "THIRD_PARTY %s is not an address of this host: only root may map for another "
			     "host",
			     addr_or_host(q->internal_addr));
			return -EPERM;
		}
		if (q->persistent && !cfg->user_persistent) {
			whyf(why, whylen, "persistent mappings are for root only (user_persistent = no)");
			return -EPERM;
		}
		if (!pmd_policy_granted(cfg, q->uid, q->ip_proto, q->internal_port)) {
			int held =
			    lookup ? lookup(lookup_ud, q->uid, q->ip_proto, q->internal_port, q->peer) : 0;
			if (held < 0) {
				whyf(why, whylen,
				     "cannot tell whether uid %u holds a %s socket on port %u (sock_diag: "
				     "%s); "
				     "user_port_grants can allow the port without the check",
				     q->uid, pn, q->internal_port, strerror(-held));
				return held;
			}
			if (!held) {
				whyf(why, whylen,
				     "uid %u holds no %s socket bound to port %u (%s): a uid other than root "
				     "may "
				     "map only its own ports, or those user_port_grants gives it",
				     q->uid, pn, q->internal_port,
				     q->ip_proto == IPPROTO_TCP && !q->peer ? "listen on it first"
									    : "bind it first");
				return -EPERM;
			}
		}
	}
	uint32_t total = 0, mine = 0;
	for (size_t i = 0; i < n_owners; i++) {
		const struct pmd_owner *o = &owners[i];
		if (o->uid != q->uid && overlaps(o->ip_proto, o->internal_port, o->internal_addr, q->ip_proto,
						 q->internal_port, q->internal_addr)) {
			const char *a = addr_or_host(o->internal_addr);
			whyf(why, whylen,
			     "%s port %u%s%s is mapped by uid %u (mapping %u): one owner per port",
			     proto_name(o->ip_proto), o->internal_port, a[0] ? " of " : "", a, o->uid, o->id);
			return -EADDRINUSE;
		}
		if (o->leftover)
			continue;
		total++;
		mine += o->uid == q->uid;
	}
	if (total >= cfg->max_mappings) {
		whyf(why, whylen, "the daemon holds %u mappings, its limit (max_mappings)", total);
		return -ENOSPC;
	}
	if (!root && mine >= cfg->max_mappings_per_uid) {
		whyf(why, whylen, "uid %u holds %u mappings, the per-uid limit (max_mappings_per_uid)",
		     q->uid, mine);
		return -EDQUOT;
	}
	return 0;
}

const char *pmd_restore_verdict_str(enum pmd_restore_verdict v)
{
	switch (v) {
	case PMD_RESTORE_OK:
		return "restored";
	case PMD_RESTORE_OVER_TOTAL:
		return "max_mappings reached";
	case PMD_RESTORE_OVER_UID:
		return "max_mappings_per_uid reached";
	case PMD_RESTORE_PORT_TAKEN:
		return "another uid holds the port";
	case PMD_RESTORE_ENGINE_FULL:
		return "the engine's table is full";
	}
	return "?";
}

static bool rec_overlaps(const struct pmd_state_rec *a, const struct pmd_state_rec *b)
{
	return overlaps(a->req.ip_proto, a->req.internal_port, a->req.third_party, b->req.ip_proto,
			b->req.internal_port, b->req.third_party);
}

size_t pmd_policy_restore(const struct pmd_cfg *cfg, const struct pmd_state_rec *recs, size_t n,
			  uint32_t engine_slots, enum pmd_restore_verdict *verdicts)
{
	uint32_t used = 0, total = 0;
	size_t aside = 0;
	/* Two passes: persistent records are what users asked to keep, so they come first. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			const struct pmd_state_rec *r = &recs[i];
			if (r->persistent != (pass == 0))
				continue;
			enum pmd_restore_verdict v = PMD_RESTORE_OK;
			uint32_t slots = r->persistent && r->req.port_pair ? 2 : 1;
			if (r->persistent) {
				uint32_t mine = 0;
				for (size_t j = 0; j < i && v == PMD_RESTORE_OK; j++) {
					if (!recs[j].persistent || verdicts[j] != PMD_RESTORE_OK)
						continue;
					if (recs[j].uid != r->uid && rec_overlaps(&recs[j], r))
						v = PMD_RESTORE_PORT_TAKEN;
					mine += recs[j].uid == r->uid;
				}
				if (v == PMD_RESTORE_OK && total >= cfg->max_mappings)
					v = PMD_RESTORE_OVER_TOTAL;
				else if (v == PMD_RESTORE_OK && r->uid != 0 &&
					 mine >= cfg->max_mappings_per_uid)
					v = PMD_RESTORE_OVER_UID;
			}
			if (v == PMD_RESTORE_OK && (used > engine_slots || engine_slots - used < slots))
				v = PMD_RESTORE_ENGINE_FULL;
			verdicts[i] = v;
			if (v != PMD_RESTORE_OK) {
				aside++;
				continue;
			}
			used += slots;
			total += r->persistent;
		}
	}
	return aside;
}
