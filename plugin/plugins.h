/* The backends built into the library, and the pieces of them the engine and the tests call. */
#ifndef PCPMAP_PLUGINS_H
#define PCPMAP_PLUGINS_H

#include "backend.h"

extern const struct pm_backend_ops pm_pcp_backend;
/* PCP backend pieces shared with tests and fakes. */
void pm_pcp_build_request(const struct pm_server *s, const struct pm_mapping *m, bool del,
			  struct pcp_msg *msg);
void pm_pcp_reply_from_msg(const struct pcp_msg *resp, const struct pm_mapping *m, struct pm_reply *r);
#ifdef PCPMAP_HAVE_NATPMP
extern const struct pm_backend_ops pm_natpmp_backend;
/* NAT-PMP's per-protocol delete-all (internal port 0, lifetime 0; RFC 6886 3.4). */
int pm_natpmp_delete_all(struct pm_server *s, uint8_t ip_proto);
#endif
#ifdef PCPMAP_HAVE_UPNP
extern const struct pm_backend_ops pm_upnp_backend;
#endif

#endif
