/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_COMPAT_UPNP_COMPAT_H
#define PCPMAP_COMPAT_UPNP_COMPAT_H

/*
 * State of the miniupnpc compat library: one pcpmap client per process, driven by a background thread
 * (pmc_upc_start()). A mutex serialises every use of the client: the thread holds it while it processes, the
 * API functions while they run (blocking ones run pcpmap's loop themselves, e.g. pcpmap_map_sync()).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/compat_common.h"

/* One mapping or pinhole made through the library. */
struct upc_entry {
	struct upc_entry *next;
	pcpmap_mapping *m;
	bool pinhole;
	unsigned id; /* pinhole UniqueID */
	uint8_t ip_proto;
	uint16_t ext_port;
	uint16_t int_port;
	char int_client[48];
	char remote_host[64];
	char desc[80];
	uint32_t lease;     /* seconds asked, 0 for no end */
	uint64_t lease_end; /* pcpmap_now_usec() time the lease ends, 0 for never */
};

struct upc_state {
	pthread_mutex_t lock;
	bool started;
	pcpmap_client *c;
	int wake_fd;
	struct pmc_env env;
	struct upc_entry *head; /* in creation order */
	bool have_probe;
	uint64_t probe_usec;
	struct pcpmap_probe_result probe;
	char lanaddr[48]; /* our address towards the gateway */
	unsigned next_id;
};

extern struct upc_state pmc_upc;
extern char pmc_upc_tag[];

/* Locks the state and starts the client and its thread if needed; -errno (and unlocked) on failure. */
int pmc_upc_lock(void);
/* Unlocks and wakes the thread so it recomputes its deadline. */
void pmc_upc_unlock(void);

/* Probes the gateway unless a probe younger than 30 s is known (fresh forces one). Lock held. */
int pmc_upc_probe(int timeout_ms, bool fresh);

void pmc_upc_entry_add(struct upc_entry *e);
/* Unlinks and frees an entry; delete asks the gateway to delete the mapping, else it is left to expire. */
void pmc_upc_entry_remove(struct upc_entry *e, bool delete);
/* Takes the entry out of the list only: its mapping and memory stay the caller's. */
void pmc_upc_entry_unlink(struct upc_entry *e);

/* The callback of every mapping of the library (debug lines). */
void pmc_upc_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info, void *ud);

/* "TCP"/"UDP" for an IP protocol number. */
const char *pmc_upc_proto_name(uint8_t ip_proto);

#endif
