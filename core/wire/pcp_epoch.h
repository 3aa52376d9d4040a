/*
 * Pure epoch state-loss checks: PCP (RFC 6887 8.5, doc/PROTOCOLS.md 1.7) and NAT-PMP (RFC 6886 3.6,
 * doc/PROTOCOLS.md 2.5). The caller supplies its monotonic seconds; nothing here reads a clock.
 */
#ifndef PCPMAP_WIRE_PCP_EPOCH_H
#define PCPMAP_WIRE_PCP_EPOCH_H

#include <stdbool.h>
#include <stdint.h>

struct pcp_epoch {
	bool have;         /* a previous value was seen */
	uint32_t server;   /* previous server epoch (PCP) or SSSoE (NAT-PMP) */
	uint64_t client_s; /* client monotonic seconds when it was seen */
};

/* Returns true if the server kept its state; always records the new pair. */
bool pcp_epoch_check(struct pcp_epoch *e, uint32_t server_epoch, uint64_t client_now_s);
bool natpmp_epoch_check(struct pcp_epoch *e, uint32_t sssoe, uint64_t client_now_s);

#endif
