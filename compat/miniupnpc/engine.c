/* SPDX-License-Identifier: MIT */
/*
 * The process-wide pcpmap client of the miniupnpc compat library and the thread that keeps its mappings
 * alive. miniupnpc applications call blocking commands and expect a mapping to last for its lease, with no
 * event loop of theirs to drive renewals; the thread is that loop: it waits on the client's descriptor until
 * pcpmap's next deadline (or the next end of a lease), processes, and ends leases. It never exits; it blocks
 * every signal, so the application's handlers run in its own threads.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "records.h"
#include "upnp_compat.h"

/* Commands wait this long for the gateway by default (PCPMAP_COMPAT_TIMEOUT_MS). */
#define UPC_DEFAULT_TIMEOUT_MS 8000
/* A probe is reused for this long. */
#define UPC_PROBE_TTL_US       30000000u

struct upc_state pmc_upc = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake_fd = -1 };
char pmc_upc_tag[] = "pcpmap-miniupnpc";

const char *pmc_upc_proto_name(uint8_t ip_proto)
{
	return ip_proto == 17 ? "UDP" : "TCP";
}

void pmc_upc_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info, void *ud)
{
	struct upc_entry *e = ud;
	(void)m;
	if (!pmc_upc.env.debug)
		return;
	switch (ev) {
	case PCPMAP_EVENT_MAPPED:
	case PCPMAP_EVENT_CHANGED:
		pmc_debug(pmc_upc_tag, "%s %s -> %s:%u %s via %s (gateway %s)",
			  pmc_upc_proto_name(e->ip_proto), e->pinhole ? "pinhole" : "mapping",
			  info->external_addr, info->external_port,
			  ev == PCPMAP_EVENT_CHANGED ? "changed" : "restored", pcpmap_proto_name(info->proto),
			  info->server);
		break;
	case PCPMAP_EVENT_LOST:
		pmc_debug(pmc_upc_tag, "%s %u lost on the gateway, re-creating",
			  pmc_upc_proto_name(e->ip_proto), e->ext_port);
		break;
	case PCPMAP_EVENT_FAILED:
		pmc_debug(pmc_upc_tag, "%s %u: %s (%s %d) via %s", pmc_upc_proto_name(e->ip_proto),
			  e->ext_port, pcpmap_strerror(info->error),
			  pcpmap_result_name(info->proto, info->result_code), info->result_code,
			  pcpmap_proto_name(info->proto));
		break;
	case PCPMAP_EVENT_DELETED:
		break;
	}
}

void pmc_upc_entry_add(struct upc_entry *e)
{
	struct upc_entry **pp = &pmc_upc.head;
	while (*pp)
		pp = &(*pp)->next;
	e->next = NULL;
	*pp = e;
}

void pmc_upc_entry_unlink(struct upc_entry *e)
{
	for (struct upc_entry **pp = &pmc_upc.head; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
}

void pmc_upc_entry_remove(struct upc_entry *e, bool delete)
{
	pmc_upc_entry_unlink(e);
	if (delete &&!e->pinhole)
		pmc_upc_record_del(e->ip_proto, e->ext_port);
	if (delete)
		pcpmap_mapping_free(e->m);
	else
		pcpmap_mapping_abandon(e->m);
	free(e);
}

/* Ends the leases that ran out (the IGD would have removed those mappings) and returns the next end. */
static uint64_t expire_leases(void)
{
	uint64_t now = pcpmap_now_usec(), next = UINT64_MAX;
	for (struct upc_entry *n, *e = pmc_upc.head; e; e = n) {
		n = e->next;
		if (!e->lease_end)
			continue;
		if (e->lease_end <= now) {
			if (pmc_upc.env.debug)
				pmc_debug(pmc_upc_tag, "%s %u: lease of %u s ended, deleting",
					  pmc_upc_proto_name(e->ip_proto), e->ext_port, e->lease);
			pmc_upc_entry_remove(e, true);
		} else if (e->lease_end < next) {
			next = e->lease_end;
		}
	}
	return next;
}

static void *loop(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&pmc_upc.lock);
		int r = pcpmap_client_process(pmc_upc.c);
		uint64_t lease_end = expire_leases();
		int t = pcpmap_client_get_timeout(pmc_upc.c);
		int fd = pcpmap_client_get_fd(pmc_upc.c);
		pthread_mutex_unlock(&pmc_upc.lock);
		if (lease_end != UINT64_MAX) {
			uint64_t now = pcpmap_now_usec();
			uint64_t ms = lease_end > now ? (lease_end - now + 999) / 1000 : 0;
			if (t < 0 || (uint64_t)t > ms)
				t = ms > 3600000 ? 3600000 : (int)ms;
		}
		/* A client that fails to process must not spin. */
		if (r < 0 && (t < 0 || t < 100))
			t = 100;
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = pmc_upc.wake_fd, .events = POLLIN } };
		if (poll(pfd, 2, t) > 0 && (pfd[1].revents & POLLIN)) {
			uint64_t v;
			if (read(pmc_upc.wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				pmc_debug(pmc_upc_tag, "wake-up descriptor: %s", strerror(errno));
		}
	}
	return NULL;
}

static int start(void)
{
	struct pcpmap_client_config cfg;
	pmc_env_read(&pmc_upc.env, PCPMAP_PROTOS_ALL, UPC_DEFAULT_TIMEOUT_MS);
	pmc_client_config(&cfg, &pmc_upc.env, pmc_upc_tag);
	/* pcpmapd, when it runs, holds what must outlive this process (permanent leases). */
	if (!getenv("PCPMAP_COMPAT_NO_DAEMON"))
		cfg.mode = PCPMAP_MODE_AUTO;
	int r = pcpmap_client_new(&pmc_upc.c, &cfg);
	if (r < 0)
		return r;
	pmc_upc.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pmc_upc.wake_fd < 0) {
		r = -errno;
		pmc_upc.c = pcpmap_client_free(pmc_upc.c);
		return r;
	}
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&th, &attr, loop, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		close(pmc_upc.wake_fd);
		pmc_upc.wake_fd = -1;
		pmc_upc.c = pcpmap_client_free(pmc_upc.c);
		return r;
	}
	pmc_upc.started = true;
	if (pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag, "client started (protocols:%s%s%s; gateway %s)",
			  pmc_upc.env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP) ? " PCP" : "",
			  pmc_upc.env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_NATPMP) ? " NAT-PMP" : "",
			  pmc_upc.env.protocols & PCPMAP_PROTO_BIT(PCPMAP_PROTO_UPNP) ? " UPnP" : "",
			  pmc_upc.env.gateway[0] ? pmc_upc.env.gateway : "from the routing table");
	return 0;
}

int pmc_upc_lock(void)
{
	pthread_mutex_lock(&pmc_upc.lock);
	if (pmc_upc.started)
		return 0;
	int r = start();
	if (r < 0)
		pthread_mutex_unlock(&pmc_upc.lock);
	return r;
}

void pmc_upc_unlock(void)
{
	int fd = pmc_upc.wake_fd;
	pthread_mutex_unlock(&pmc_upc.lock);
	if (fd >= 0) {
		uint64_t one = 1;
		if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			pmc_debug(pmc_upc_tag, "wake-up descriptor: %s", strerror(errno));
	}
}

static const char *status_of(const struct pcpmap_server_info *si)
{
	if (si->proto == PCPMAP_PROTO_NONE)
		return "not tried";
	return si->error ? pcpmap_strerror(si->error) : "answers";
}

int pmc_upc_probe(int timeout_ms, bool fresh)
{
	struct pcpmap_probe_result res;
	uint64_t now = pcpmap_now_usec();
	if (!fresh && pmc_upc.have_probe && pmc_upc.probe.chosen != PCPMAP_PROTO_NONE &&
	    now - pmc_upc.probe_usec < UPC_PROBE_TTL_US)
		return 0;
	memset(&res, 0, sizeof(res));
	int r = pcpmap_probe_sync(pmc_upc.c, timeout_ms > 0 ? timeout_ms : 2000, &res);
	if (r < 0) {
		if (pmc_upc.env.debug)
			pmc_debug(pmc_upc_tag, "probe: %s", pcpmap_strerror(r));
		return r;
	}
	pmc_upc.probe = res;
	pmc_upc.have_probe = true;
	pmc_upc.probe_usec = pcpmap_now_usec();
	char host[64];
	if (pmc_split_server(res.gateway, host, sizeof(host), NULL) < 0 ||
	    pmc_local_addr_for(host, pmc_upc.lanaddr, sizeof(pmc_upc.lanaddr)) < 0)
		pmc_upc.lanaddr[0] = '\0';
	if (pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag,
			  "gateway %s: PCP %s, NAT-PMP %s, UPnP %s; using %s, external address %s%s",
			  res.gateway, status_of(&res.pcp), status_of(&res.natpmp), status_of(&res.upnp),
			  pcpmap_proto_name(res.chosen), res.external_addr[0] ? res.external_addr : "unknown",
			  res.external_is_private ? " (private: another NAT is likely upstream)" : "");
	return 0;
}
