/* Fake protocol backends (see fake_backend.h). */
#include <string.h>

#include "fake_backend.h"

struct fake_backend_log flog;

static int f_open(struct pm_server *s)
{
	flog.opens[s->ops->proto]++;
	flog.srv[s->ops->proto] = s;
	return 0;
}
static void f_close(struct pm_server *s)
{
	flog.srv[s->ops->proto] = NULL;
}
static int f_send(struct pm_server *s, struct pm_mapping *m, bool del)
{
	(void)m;
	if (del)
		flog.deletes[s->ops->proto]++;
	else
		flog.sends[s->ops->proto]++;
	flog.last_send_server = s;
	return 0;
}
static void f_readable(struct pm_server *s, int fd, uint64_t now)
{
	(void)s;
	(void)fd;
	(void)now;
}
static int f_announce(struct pm_server *s)
{
	(void)s;
	return 0;
}
static int f_probe(struct pm_server *s)
{
	flog.probes[s->ops->proto]++;
	return 0;
}

const struct pm_backend_ops fake_pcp = { .proto = PCPMAP_PROTO_PCP,
					 .name = "PCP",
					 .irt_us = 3000000,
					 .mrt_us = 1024000000,
					 .server_open = f_open,
					 .server_close = f_close,
					 .send = f_send,
					 .readable = f_readable,
					 .announce = f_announce };
const struct pm_backend_ops fake_natpmp = { .proto = PCPMAP_PROTO_NATPMP,
					    .name = "NAT-PMP",
					    .irt_us = 250000,
					    .mrt_us = 64000000,
					    .server_open = f_open,
					    .server_close = f_close,
					    .send = f_send,
					    .readable = f_readable,
					    .announce = f_announce,
					    .probe = f_probe };
const struct pm_backend_ops fake_upnp = { .proto = PCPMAP_PROTO_UPNP,
					  .name = "UPnP",
					  .irt_us = 3000000,
					  .mrt_us = 60000000,
					  .server_open = f_open,
					  .server_close = f_close,
					  .send = f_send,
					  .readable = f_readable,
					  .announce = f_announce,
					  .probe = f_probe };

void fake_backends_install(pcpmap_client *c)
{
	memset(&flog, 0, sizeof(flog));
	c->backends[PCPMAP_PROTO_PCP] = &fake_pcp;
	c->backends[PCPMAP_PROTO_NATPMP] = &fake_natpmp;
	c->backends[PCPMAP_PROTO_UPNP] = &fake_upnp;
}
