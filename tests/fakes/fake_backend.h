/* Fake protocol backends: they record what the engine asks of them and never touch the network; tests
 * play the gateway by calling the engine's backend hooks directly. */
#ifndef PCPMAP_FAKE_BACKEND_H
#define PCPMAP_FAKE_BACKEND_H

#include "internal.h"

struct fake_backend_log {
	unsigned opens[PM_NPROTO];
	unsigned probes[PM_NPROTO];
	unsigned sends[PM_NPROTO];
	unsigned deletes[PM_NPROTO];
	struct pm_server *srv[PM_NPROTO];
	struct pm_server *last_send_server;
};

extern struct fake_backend_log flog;
extern const struct pm_backend_ops fake_pcp, fake_natpmp, fake_upnp;

/* Clears the log and puts the three fakes in the client's backend table. */
void fake_backends_install(pcpmap_client *c);

#endif
