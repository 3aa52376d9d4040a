/* SPDX-License-Identifier: MIT */
/*
 * The IGD commands as pcpmap mappings. Adding blocks in pcpmap_map_sync() as a SOAP call would; the
 * mapping then stays with the library's client, renewed by the background thread until its lease ends or it
 * is deleted. UPnP keys a mapping by external port and protocol, PCP by internal address, port, protocol and
 * nonce: the table below holds both views, and the nonce is derived (pmc_nonce()), so the same application
 * started again renews the same mapping.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "miniupnpc/upnpcommands.h"
#include "miniupnpc/portlistingparse.h"
#include "miniupnpc/errmap.h"
#include "miniupnpc/miniupnpc.h"
#include "miniupnpc/upnpreplyparse.h"
#include "daemon_list.h"
#include "records.h"
#include "upnp_compat.h"

/* UPnP error codes used here. */
#define UE_INVALID_ACTION    401
#define UE_INVALID_ARGS      402
#define UE_NO_SUCH_PINHOLE   704
#define UE_PROTO_UNSUPPORTED 705
#define UE_INT_PORT_WILDCARD 706
#define UE_BAD_INDEX         713
#define UE_NO_SUCH_ENTRY     714
#define UE_EXT_PORT_WILDCARD 716
#define UE_CONFLICT          718
#define UE_NOT_AUTHORIZED    606
#define UE_NOT_FOUND         730

/* "Permanent" leases (0): pcpmapd keeps them when it runs; otherwise they last as long as the process and the
 * gateway drops them a day after it ends. */
#define PERMANENT_LIFETIME 86400u
#define MAX_PINHOLE_LEASE  86400u

static int parse_proto(const char *s, uint8_t *ret)
{
	if (!strcasecmp(s, "TCP"))
		*ret = IPPROTO_TCP;
	else if (!strcasecmp(s, "UDP"))
		*ret = IPPROTO_UDP;
	else
		return -EINVAL;
	return 0;
}

static struct upc_entry *find_ext(uint8_t ip_proto, uint16_t ext)
{
	for (struct upc_entry *e = pmc_upc.head; e; e = e->next)
		if (!e->pinhole && e->ip_proto == ip_proto && e->ext_port == ext)
			return e;
	return NULL;
}

static struct upc_entry *find_int(uint8_t ip_proto, uint16_t port, const char *client)
{
	for (struct upc_entry *e = pmc_upc.head; e; e = e->next)
		if (!e->pinhole && e->ip_proto == ip_proto && e->int_port == port &&
		    !strcmp(e->int_client, client))
			return e;
	return NULL;
}

static struct upc_entry *find_pinhole(const char *id)
{
	uint32_t v;
	if (pmc_parse_u32(id, &v) < 0)
		return NULL;
	for (struct upc_entry *e = pmc_upc.head; e; e = e->next)
		if (e->pinhole && e->id == v)
			return e;
	return NULL;
}

static bool entry_live(const struct upc_entry *e, struct pcpmap_mapping_info *info)
{
	pcpmap_mapping_get_info(e->m, info);
	return info->state == PCPMAP_STATE_MAPPED || info->state == PCPMAP_STATE_REFRESHING;
}

static void set_lease(struct upc_entry *e, uint32_t lease)
{
	e->lease = lease;
	e->lease_end = lease ? pcpmap_now_usec() + (uint64_t)lease * 1000000u : 0;
}

/* An address of this host (IPv6 pinholes for another host need THIRD_PARTY). */
static bool is_local_address(const char *addr)
{
	struct ifaddrs *ifa, *i;
	struct in6_addr want, have;
	bool found = false;
	if (inet_pton(AF_INET6, addr, &want) != 1 || getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6)
			continue;
		memcpy(&have, &((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr,
		       sizeof(have));
		found = !memcmp(&have, &want, sizeof(want));
	}
	freeifaddrs(ifa);
	return found;
}

/* Copies into a fixed-size output buffer of the API, truncating as miniupnpc does. */
static void put(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Truncates a description to what PCP carries (512 bytes), never inside a UTF-8 sequence. */
static void copy_description(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(src);
	if (n >= dstlen) {
		n = dstlen - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/*
 * After a refusal for PREFER_FAILURE, pcpmap gives back the port it did not want with one delete it does not
 * track. The next request for the same internal port carries the same derived nonce, and PCP matches answers
 * by nonce, protocol and port: that delete's answer (lifetime 0) would be taken for the new request's. So
 * wait, 1 s at most, until every datagram sent since s0/r0 was answered. Lock held.
 */
static void drain_answers(uint64_t sent0, uint64_t received0)
{
	uint64_t end = pcpmap_now_usec() + 1000000u;
	for (;;) {
		struct pcpmap_stats st;
		pcpmap_client_get_stats(pmc_upc.c, &st);
		uint64_t now = pcpmap_now_usec();
		if (st.received - received0 >= st.sent - sent0 || now >= end)
			return;
		int t = pcpmap_client_get_timeout(pmc_upc.c);
		int left = (int)((end - now + 999) / 1000);
		struct pollfd pfd = { .fd = pcpmap_client_get_fd(pmc_upc.c), .events = POLLIN };
		poll(&pfd, 1, t < 0 || t > left ? left : t);
		pcpmap_client_process(pmc_upc.c);
	}
}

/* Leaves a record of a mapping for later processes of the user (records.c): `upnpc -d` deletes what `upnpc -a`
 * made. A record that cannot be written only costs that. */
static void remember(const struct upc_entry *e, bool third_party, const struct pcpmap_mapping_info *info)
{
	struct upc_record rec;
	memset(&rec, 0, sizeof(rec));
	rec.ip_proto = e->ip_proto;
	rec.ext_port = e->ext_port;
	rec.int_port = e->int_port;
	rec.third_party = third_party;
	rec.lease = e->lease;
	/* Without a process renewing it, the mapping lasts what the gateway granted last. */
	rec.expires = time(NULL) + (time_t)(info->lifetime ? info->lifetime : 1);
	put(rec.int_client, sizeof(rec.int_client), e->int_client);
	put(rec.gateway, sizeof(rec.gateway), info->server);
	put(rec.desc, sizeof(rec.desc), e->desc);
	int r = pmc_upc_record_put(&rec);
	if (r < 0 && pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag, "%s %u: no record for later processes: %s",
			  pmc_upc_proto_name(e->ip_proto), e->ext_port, strerror(-r));
}

static int add_mapping(const char *extPort, const char *inPort, const char *inClient, const char *desc,
		       const char *proto, const char *remoteHost, const char *leaseDuration, bool any,
		       char *reservedPort)
{
	uint16_t ext, in;
	uint8_t ip_proto;
	uint32_t lease = 0;
	struct in_addr a;

	if (!extPort || !inPort || !inClient || !proto || (any && !reservedPort))
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_port(extPort, true, &ext) < 0 || pmc_parse_port(inPort, false, &in) < 0 ||
	    parse_proto(proto, &ip_proto) < 0 || inet_pton(AF_INET, inClient, &a) != 1)
		return UE_INVALID_ARGS;
	if (ext == 0 && !any)
		return UE_EXT_PORT_WILDCARD;
	if (leaseDuration && *leaseDuration && pmc_parse_u32(leaseDuration, &lease) < 0)
		return UE_INVALID_ARGS;
	bool filtered = remoteHost && *remoteHost;
	if (filtered && inet_pton(AF_INET, remoteHost, &a) != 1)
		return UE_INVALID_ARGS;
	if (!desc)
		desc = "libminiupnpc";

	int r = pmc_upc_lock();
	if (r < 0)
		return r == -ENOMEM ? UPNPCOMMAND_MEM_ALLOC_ERROR : UPNPCOMMAND_UNKNOWN_ERROR;
	/* Our address towards the gateway tells whether inClient is us or a THIRD_PARTY. */
	if (!pmc_upc.lanaddr[0])
		pmc_upc_probe(pmc_upc.env.timeout_ms, false);

	struct pcpmap_mapping_info info;
	struct upc_entry *e = any ? NULL : find_ext(ip_proto, ext);
	if (e && !strcmp(e->int_client, inClient) && e->int_port != in) {
		/* The same client moves the external port to another internal port: UPnP overwrites. */
		pmc_upc_entry_remove(e, true);
		pcpmap_client_flush(pmc_upc.c, pmc_upc.env.timeout_ms);
		e = NULL;
	}
	if (!e)
		e = find_int(ip_proto, in, inClient);
	if (e) {
		if (strcmp(e->int_client, inClient) || e->int_port != in || (!any && e->ext_port != ext)) {
			/* UPnP: another client holds the port. PCP: one external port per internal port. */
			pmc_upc_unlock();
			return UE_CONFLICT;
		}
		if (entry_live(e, &info)) {
			/* Adding again what exists updates it (a lease refresh). */
			set_lease(e, lease);
			copy_description(e->desc, sizeof(e->desc), desc);
			if (any)
				snprintf(reservedPort, 6, "%u", e->ext_port);
			pmc_upc_unlock();
			return UPNPCOMMAND_SUCCESS;
		}
		pmc_upc_entry_remove(e, true);
	}

	e = calloc(1, sizeof(*e));
	if (!e) {
		pmc_upc_unlock();
		return UPNPCOMMAND_MEM_ALLOC_ERROR;
	}
	e->ip_proto = ip_proto;
	e->int_port = in;
	put(e->int_client, sizeof(e->int_client), inClient);
	if (filtered)
		put(e->remote_host, sizeof(e->remote_host), remoteHost);
	copy_description(e->desc, sizeof(e->desc), desc);

	char pcp_desc[513];
	struct pcpmap_request req;
	struct pcpmap_filter filter = { .peer_addr = remoteHost, .prefix_len = 32, .peer_port = 0 };
	uint8_t nonce[12];
	bool third_party = pmc_upc.lanaddr[0] && strcmp(inClient, pmc_upc.lanaddr) != 0;
	copy_description(pcp_desc, sizeof(pcp_desc), desc);
	pmc_nonce(nonce, ip_proto, in, third_party ? inClient : NULL);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = ip_proto;
	req.internal_port = in;
	req.suggested_port = ext;
	req.prefer_failure = !any;
	req.lifetime = lease ? lease : PERMANENT_LIFETIME;
	req.third_party = third_party ? inClient : NULL;
	req.description = pcp_desc;
	if (filtered) {
		req.filters = &filter;
		req.n_filters = 1;
	}
	req.nonce = nonce;
	req.callback = pmc_upc_event;
	req.userdata = e;
	memset(&info, 0, sizeof(info));
	struct pcpmap_stats st0;
	pcpmap_client_get_stats(pmc_upc.c, &st0);
	/* A permanent lease outlives this process only in pcpmapd: hand it over as persistent when the daemon
	 * runs (AUTO mode); a daemon that refuses persistence to this user gets an ordinary mapping. */
	req.persistent = !lease && pcpmap_client_uses_daemon(pmc_upc.c);
	r = pcpmap_map_sync(pmc_upc.c, &req, pmc_upc.env.timeout_ms, &e->m, &info);
	if (r == -EPERM && req.persistent) {
		req.persistent = false;
		memset(&info, 0, sizeof(info));
		r = pcpmap_map_sync(pmc_upc.c, &req, pmc_upc.env.timeout_ms, &e->m, &info);
	}
	if (r == -EADDRINUSE)
		drain_answers(st0.sent, st0.received);
	if (r < 0) {
		int rc = pmc_upnp_error(r, info.proto, info.result_code, third_party);
		if (pmc_upc.env.debug)
			pmc_debug(pmc_upc_tag, "%s %s -> %s:%u refused via %s: %s (%s %d) -> %d %s",
				  pmc_upc_proto_name(ip_proto), extPort, inClient, in,
				  pcpmap_proto_name(info.proto), pcpmap_strerror(r),
				  pcpmap_result_name(info.proto, info.result_code), info.result_code, rc,
				  rc > 0 ? "(UPnP error)" : "");
		free(e);
		pmc_upc_unlock();
		return rc;
	}
	e->ext_port = info.external_port;
	set_lease(e, lease);
	pmc_upc_entry_add(e);
	remember(e, third_party, &info);
	if (any)
		snprintf(reservedPort, 6, "%u", e->ext_port);
	if (pmc_upc.env.debug)
		pmc_debug(
		    pmc_upc_tag, "%s %s:%u -> %s:%u (lease %s s, granted %u s) mapped via %s (gateway %s)",
		    pmc_upc_proto_name(ip_proto), inClient, in, info.external_addr, info.external_port,
		    lease ? leaseDuration : "0", info.lifetime, pcpmap_proto_name(info.proto), info.server);
	pmc_upc_unlock();
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_AddPortMapping(const char *controlURL, const char *servicetype,
					     const char *extPort, const char *inPort, const char *inClient,
					     const char *desc, const char *proto, const char *remoteHost,
					     const char *leaseDuration)
{
	(void)controlURL;
	(void)servicetype;
	return add_mapping(extPort, inPort, inClient, desc, proto, remoteHost, leaseDuration, false, NULL);
}

PCPMAP_EXPORT_COMPAT int UPNP_AddAnyPortMapping(const char *controlURL, const char *servicetype,
						const char *extPort, const char *inPort, const char *inClient,
						const char *desc, const char *proto, const char *remoteHost,
						const char *leaseDuration, char *reservedPort)
{
	(void)controlURL;
	(void)servicetype;
	return add_mapping(extPort, inPort, inClient, desc, proto, remoteHost, leaseDuration, true,
			   reservedPort);
}

/* Deletes entries (lock held) and waits for the gateway's confirmations. */
static int delete_and_wait(void)
{
	int r = pcpmap_client_flush(pmc_upc.c, pmc_upc.env.timeout_ms);
	return r == 0 ? UPNPCOMMAND_SUCCESS : UPNPCOMMAND_HTTP_ERROR;
}

/* Deletes one mapping and waits for the gateway's answer about it alone, so another deletion still in flight
 * (one a silent gateway never answered, say) does not hold it up. 0 when the gateway confirmed it. */
static int delete_entry_and_wait(struct upc_entry *e)
{
	pcpmap_client *c = pmc_upc.c;
	pcpmap_mapping *m = e->m;
	int r = pcpmap_mapping_delete(m);
	if (r < 0) {
		/* No outcome of its own here (a PEER, or the daemon holds it): the client's deletions at large. */
		pmc_upc_entry_remove(e, true);
		return delete_and_wait();
	}
	pmc_upc_entry_unlink(e);
	pmc_upc_record_del(e->ip_proto, e->ext_port);
	int rc = UPNPCOMMAND_SUCCESS;
	if (r == 0) {
		uint64_t end = pcpmap_now_usec() + (uint64_t)pmc_upc.env.timeout_ms * 1000u;
		struct pcpmap_mapping_info info;
		for (;;) {
			if (pcpmap_mapping_get_info(m, &info) < 0 || info.state == PCPMAP_STATE_DELETED)
				break;
			uint64_t now = pcpmap_now_usec();
			if (now >= end) {
				rc = UPNPCOMMAND_HTTP_ERROR;
				break;
			}
			int t = pcpmap_client_get_timeout(c);
			int left = (int)((end - now + 999) / 1000);
			struct pollfd p = { .fd = pcpmap_client_get_fd(c), .events = POLLIN };
			poll(&p, 1, t < 0 || t > left ? left : t);
			pcpmap_client_process(c);
		}
		if (rc == UPNPCOMMAND_SUCCESS && info.error)
			rc = UPNPCOMMAND_HTTP_ERROR; /* refused or unanswered: nothing was deleted */
	}
	pcpmap_mapping_free(m); /* still deleting after the timeout: the deletion goes on */
	free(e);
	return rc;
}

/* pcpmapd's socket when the library's client goes through it (AUTO mode found it), else NULL. Lock held. */
static const char *daemon_socket(void)
{
	if (!pmc_upc.started || !pcpmap_client_uses_daemon(pmc_upc.c))
		return NULL;
	const char *p = getenv("PCPMAPD_SOCKET");
	return p && *p ? p : PCPMAP_DEFAULT_DAEMON_SOCKET;
}

/* The daemon's row for that protocol and external port, if it holds one for this user. Lock held. */
static bool daemon_find(uint8_t ip_proto, uint16_t ext, struct upc_daemon_row *ret)
{
	const char *path = daemon_socket();
	struct upc_daemon_row *v;
	size_t n;
	bool found = false;
	if (!path || pmc_upc_daemon_list(path, &v, &n) < 0)
		return false;
	for (size_t i = 0; i < n && !found; i++) {
		if (v[i].ip_proto == ip_proto && v[i].ext_port == ext) {
			*ret = v[i];
			found = true;
		}
	}
	free(v);
	return found;
}

/* A record made through another gateway (the network changed) is not about this one. Where either side is not
 * an address (a UPnP control URL), it is taken as this gateway's. Lock held. */
static bool record_here(const struct upc_record *rec)
{
	char a[64], b[64];
	struct in6_addr x, y;
	if (!pmc_upc.have_probe || !rec->gateway[0] ||
	    pmc_split_server(rec->gateway, a, sizeof(a), NULL) < 0 ||
	    pmc_split_server(pmc_upc.probe.gateway, b, sizeof(b), NULL) < 0)
		return true;
	int fa = strchr(a, ':') ? AF_INET6 : AF_INET, fb = strchr(b, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(fa, a, &x) != 1 || inet_pton(fb, b, &y) != 1)
		return true;
	return fa == fb && !memcmp(&x, &y, fa == AF_INET ? 4 : 16);
}

static bool igd_serves(char *ctl, size_t ctllen, char *st, size_t stlen);
static int igd_call(const char *action, struct UPNParg *args, struct NameValueParserData *pdata);

/* Where UPnP serves, a mapping this process does not hold is the IGD's to delete, as with miniupnpc. Lock
 * held. */
static int igd_delete(uint8_t ip_proto, uint16_t ext)
{
	char port[8];
	struct NameValueParserData p;
	struct UPNParg args[] = { { "NewRemoteHost", "" },
				  { "NewExternalPort", port },
				  { "NewProtocol", pmc_upc_proto_name(ip_proto) },
				  { NULL, NULL } };
	snprintf(port, sizeof(port), "%u", ext);
	int rc = igd_call("DeletePortMapping", args, &p);
	if (rc == UPNPCOMMAND_SUCCESS)
		ClearNameValueList(&p);
	if (rc == UPNPCOMMAND_SUCCESS || rc == UE_NO_SUCH_ENTRY)
		pmc_upc_record_del(ip_proto, ext);
	if (pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag, "%s %u (not made by this process): DeletePortMapping at the IGD: %d",
			  pmc_upc_proto_name(ip_proto), ext, rc);
	return rc;
}

/*
 * Deletes a mapping an earlier process made (its record): PCP deletes by internal port and nonce, and the nonce
 * is derived, so the gateway accepts it from this process of the same user. Lock held. 714 when the gateway no
 * longer holds it (miniupnpd answers NO_RESOURCES to deleting what does not exist).
 */
static int delete_recorded(const struct upc_record *rec)
{
	struct pcpmap_request req;
	struct pcpmap_mapping_info info;
	uint8_t nonce[12];
	if (!pmc_upc.lanaddr[0])
		pmc_upc_probe(pmc_upc.env.timeout_ms, false);
	pmc_nonce(nonce, rec->ip_proto, rec->int_port, rec->third_party ? rec->int_client : NULL);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = rec->ip_proto;
	req.internal_port = rec->int_port;
	req.third_party = rec->third_party ? rec->int_client : NULL;
	req.nonce = nonce;
	memset(&info, 0, sizeof(info));
	int r = pcpmap_unmap_sync(pmc_upc.c, &req, pmc_upc.env.timeout_ms, &info);
	int rc = r == 0                                                    ? UPNPCOMMAND_SUCCESS
		 : info.proto == PCPMAP_PROTO_PCP && info.result_code == 8 ? UE_NO_SUCH_ENTRY
		 : r == -ENOENT                                            ? UE_NO_SUCH_ENTRY
				: pmc_upnp_error(r, info.proto, info.result_code, rec->third_party);
	if (rc == UPNPCOMMAND_SUCCESS || rc == UE_NO_SUCH_ENTRY)
		pmc_upc_record_del(rec->ip_proto, rec->ext_port);
	if (pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag, "%s %u -> %s:%u (made by an earlier process): %s via %s",
			  pmc_upc_proto_name(rec->ip_proto), rec->ext_port, rec->int_client, rec->int_port,
			  rc == 0 ? "deleted" : pcpmap_strerror(r), pcpmap_proto_name(info.proto));
	return rc;
}

PCPMAP_EXPORT_COMPAT int UPNP_DeletePortMapping(const char *controlURL, const char *servicetype,
						const char *extPort, const char *proto,
						const char *remoteHost)
{
	uint16_t ext;
	uint8_t ip_proto;
	(void)controlURL;
	(void)servicetype;
	(void)remoteHost;
	if (!extPort || !proto)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_port(extPort, false, &ext) < 0 || parse_proto(proto, &ip_proto) < 0)
		return UE_INVALID_ARGS;
	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	struct upc_entry *e = find_ext(ip_proto, ext);
	struct upc_record rec;
	struct upc_daemon_row drow;
	char ctl[256], st[96];
	int rc = UE_NO_SUCH_ENTRY;
	if (e) {
		if (pmc_upc.env.debug)
			pmc_debug(pmc_upc_tag, "%s %u: deleting", pmc_upc_proto_name(ip_proto), ext);
		rc = delete_entry_and_wait(e);
		if (pmc_upc.env.debug)
			pmc_debug(pmc_upc_tag, "%s %u: %s", pmc_upc_proto_name(ip_proto), ext,
				  rc == 0 ? "deleted" : "deletion not confirmed by the gateway");
	} else if (igd_serves(ctl, sizeof(ctl), st, sizeof(st))) {
		rc = igd_delete(ip_proto, ext);
	} else if (daemon_find(ip_proto, ext, &drow)) {
		/* pcpmapd holds it for this user (a persistent mapping of an earlier process, another program's). */
		int r = pmc_upc_daemon_delete(daemon_socket(), drow.id);
		rc = r == 0 ? UPNPCOMMAND_SUCCESS : r == -EPROTO ? UE_NOT_AUTHORIZED : UPNPCOMMAND_HTTP_ERROR;
		if (rc == UPNPCOMMAND_SUCCESS)
			pmc_upc_record_del(ip_proto, ext);
		if (pmc_upc.env.debug)
			pmc_debug(pmc_upc_tag, "%s %u: pcpmapd's mapping %u %s", pmc_upc_proto_name(ip_proto),
				  ext, drow.id, rc == 0 ? "deleted" : pcpmap_strerror(r));
	} else if (pmc_upc_record_get(ip_proto, ext, &rec) == 0 && record_here(&rec)) {
		rc = delete_recorded(&rec);
	}
	pmc_upc_unlock();
	return rc;
}

PCPMAP_EXPORT_COMPAT int UPNP_DeletePortMappingRange(const char *controlURL, const char *servicetype,
						     const char *extPortStart, const char *extPortEnd,
						     const char *proto, const char *manage)
{
	uint16_t lo, hi;
	uint8_t ip_proto;
	(void)controlURL;
	(void)servicetype;
	(void)manage;
	if (!extPortStart || !extPortEnd || !proto)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_port(extPortStart, true, &lo) < 0 || pmc_parse_port(extPortEnd, true, &hi) < 0 ||
	    lo > hi || parse_proto(proto, &ip_proto) < 0)
		return UE_INVALID_ARGS;
	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	int n = 0;
	for (struct upc_entry *next, *e = pmc_upc.head; e; e = next) {
		next = e->next;
		if (!e->pinhole && e->ip_proto == ip_proto && e->ext_port >= lo && e->ext_port <= hi) {
			pmc_upc_entry_remove(e, true);
			n++;
		}
	}
	int rc = n ? delete_and_wait() : UE_NOT_FOUND;
	/* Then what earlier processes of the user recorded in the range. */
	struct upc_record *recs = NULL;
	size_t nrec = 0;
	if (pmc_upc_record_list(&recs, &nrec) == 0) {
		for (size_t i = 0; i < nrec; i++) {
			if (recs[i].ip_proto != ip_proto || recs[i].ext_port < lo || recs[i].ext_port > hi ||
			    !record_here(&recs[i]))
				continue;
			int r = delete_recorded(&recs[i]);
			if (r == UPNPCOMMAND_SUCCESS && rc == UE_NOT_FOUND)
				rc = UPNPCOMMAND_SUCCESS;
			else if (r != UPNPCOMMAND_SUCCESS && r != UE_NO_SUCH_ENTRY)
				rc = r;
		}
		free(recs);
	}
	pmc_upc_unlock();
	return rc;
}

/*
 * What the lookups and listings see: the mappings this process made through the library (in the order they
 * were made), then those earlier processes of the user made and recorded, still within the gateway's grant
 * (by protocol and port). PCP and NAT-PMP have no request that lists a gateway's table.
 */
struct view_row {
	uint8_t ip_proto;
	uint16_t ext_port;
	uint16_t int_port;
	bool enabled;
	char int_client[48];
	char remote_host[64];
	char desc[80];
	char lease[16]; /* seconds left, "0" for a permanent lease of this process */
};

/* Seconds left of a lease as UPnP reports it ("0": permanent). */
static void lease_left(const struct upc_entry *e, char *buf, size_t len)
{
	if (!e->lease) {
		snprintf(buf, len, "0");
		return;
	}
	uint32_t s = pmc_seconds_until(e->lease_end);
	snprintf(buf, len, "%u", s ? s : 1);
}

static void row_of_entry(const struct upc_entry *e, struct view_row *r)
{
	struct pcpmap_mapping_info info;
	memset(r, 0, sizeof(*r));
	r->ip_proto = e->ip_proto;
	r->ext_port = e->ext_port;
	r->int_port = e->int_port;
	r->enabled = entry_live(e, &info);
	put(r->int_client, sizeof(r->int_client), e->int_client);
	put(r->remote_host, sizeof(r->remote_host), e->remote_host);
	put(r->desc, sizeof(r->desc), e->desc);
	lease_left(e, r->lease, sizeof(r->lease));
}

static void row_of_record(const struct upc_record *rec, struct view_row *r)
{
	time_t now = time(NULL);
	memset(r, 0, sizeof(*r));
	r->ip_proto = rec->ip_proto;
	r->ext_port = rec->ext_port;
	r->int_port = rec->int_port;
	r->enabled = true;
	put(r->int_client, sizeof(r->int_client), rec->int_client);
	put(r->desc, sizeof(r->desc), rec->desc);
	/* Nobody renews it any more: what is left of the gateway's grant, never "0" (permanent). */
	uint32_t left = rec->expires > now ? (uint32_t)(rec->expires - now) : 1;
	snprintf(r->lease, sizeof(r->lease), "%u", left);
}

static void row_of_daemon(const struct upc_daemon_row *d, struct view_row *r)
{
	memset(r, 0, sizeof(*r));
	r->ip_proto = d->ip_proto;
	r->ext_port = d->ext_port;
	r->int_port = d->int_port;
	r->enabled = d->state == PCPMAP_STATE_MAPPED || d->state == PCPMAP_STATE_REFRESHING;
	put(r->int_client, sizeof(r->int_client), d->int_addr);
	put(r->desc, sizeof(r->desc), d->desc);
	/* A persistent mapping is renewed for as long as it is not deleted: IGD:1's permanent lease. */
	if (d->persistent)
		snprintf(r->lease, sizeof(r->lease), "0");
	else
		snprintf(r->lease, sizeof(r->lease), "%u", d->expires_in ? d->expires_in : 1);
}

static bool row_listed(const struct view_row *v, size_t n, uint8_t ip_proto, uint16_t ext)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].ip_proto == ip_proto && v[i].ext_port == ext)
			return true;
	return false;
}

static int cmp_record(const void *a, const void *b)
{
	const struct upc_record *x = a, *y = b;
	return x->ip_proto != y->ip_proto ? x->ip_proto - y->ip_proto : x->ext_port - y->ext_port;
}

/*
 * Where UPnP serves, the IGD's own table is the answer, as with miniupnpc: the same SOAP actions, sent with
 * this library's small HTTP client to the control URL pcpmap's UPnP backend found (the probe's detail,
 * "IGD:N URL"). Lock held.
 */
static bool igd_serves(char *ctl, size_t ctllen, char *st, size_t stlen)
{
	int v;
	char url[256];
	if (!pmc_upc.have_probe || pmc_upc.probe.chosen != PCPMAP_PROTO_UPNP ||
	    sscanf(pmc_upc.probe.upnp.detail, "IGD:%d %255s", &v, url) != 2 ||
	    strncmp(url, "http://", 7) != 0)
		return false;
	put(ctl, ctllen, url);
	snprintf(st, stlen, "urn:schemas-upnp-org:service:WANIPConnection:%d", v == 2 ? 2 : 1);
	return true;
}

/* One SOAP action: the answer's pairs (clear them) and 0, the IGD's error code, or -3 (no answer). */
static int igd_call(const char *action, struct UPNParg *args, struct NameValueParserData *pdata)
{
	char ctl[256], st[96];
	int size = 0;
	if (!igd_serves(ctl, sizeof(ctl), st, sizeof(st)))
		return UPNPCOMMAND_HTTP_ERROR;
	char *buf = simpleUPnPcommand(-1, ctl, st, action, args, &size);
	if (!buf)
		return UPNPCOMMAND_HTTP_ERROR;
	ParseNameValue(buf, size, pdata);
	free(buf);
	const char *err = GetValueFromNameValueList(pdata, "errorCode");
	if (err) {
		int code = atoi(err);
		ClearNameValueList(pdata);
		return code > 0 ? code : UPNPCOMMAND_UNKNOWN_ERROR;
	}
	return UPNPCOMMAND_SUCCESS;
}

static const char *nv(struct NameValueParserData *p, const char *name)
{
	const char *v = GetValueFromNameValueList(p, name);
	return v ? v : "";
}

/* A row from an answer of Get{Generic,Specific}PortMappingEntry (the latter lacks port and protocol). */
static int igd_row(struct NameValueParserData *p, uint8_t ip_proto, uint16_t ext, struct view_row *r)
{
	memset(r, 0, sizeof(*r));
	if (!ext && (pmc_parse_port(nv(p, "NewExternalPort"), true, &ext) < 0 ||
		     parse_proto(nv(p, "NewProtocol"), &ip_proto) < 0))
		return UPNPCOMMAND_INVALID_RESPONSE;
	uint16_t in = 0;
	pmc_parse_port(nv(p, "NewInternalPort"), true, &in);
	r->ip_proto = ip_proto;
	r->ext_port = ext;
	r->int_port = in;
	r->enabled = !strcmp(nv(p, "NewEnabled"), "1");
	put(r->int_client, sizeof(r->int_client), nv(p, "NewInternalClient"));
	put(r->remote_host, sizeof(r->remote_host), nv(p, "NewRemoteHost"));
	put(r->desc, sizeof(r->desc), nv(p, "NewPortMappingDescription"));
	put(r->lease, sizeof(r->lease), *nv(p, "NewLeaseDuration") ? nv(p, "NewLeaseDuration") : "0");
	return UPNPCOMMAND_SUCCESS;
}

static int igd_generic(uint32_t idx, struct view_row *r)
{
	char index[16];
	struct NameValueParserData p;
	struct UPNParg args[] = { { "NewPortMappingIndex", index }, { NULL, NULL } };
	snprintf(index, sizeof(index), "%u", idx);
	int rc = igd_call("GetGenericPortMappingEntry", args, &p);
	if (rc != UPNPCOMMAND_SUCCESS)
		return rc;
	rc = igd_row(&p, 0, 0, r);
	ClearNameValueList(&p);
	return rc;
}

static int igd_specific(uint8_t ip_proto, uint16_t ext, struct view_row *r)
{
	char port[8];
	struct NameValueParserData p;
	struct UPNParg args[] = { { "NewRemoteHost", "" },
				  { "NewExternalPort", port },
				  { "NewProtocol", pmc_upc_proto_name(ip_proto) },
				  { NULL, NULL } };
	snprintf(port, sizeof(port), "%u", ext);
	int rc = igd_call("GetSpecificPortMappingEntry", args, &p);
	if (rc != UPNPCOMMAND_SUCCESS)
		return rc;
	rc = igd_row(&p, ip_proto, ext, r);
	ClearNameValueList(&p);
	return rc;
}

/* The IGD's whole table, by index until it says 713 (SpecifiedArrayIndexInvalid). */
static int igd_collect(struct view_row **ret, size_t *ret_n)
{
	struct view_row *v = NULL, row;
	size_t n = 0, cap = 0;
	int rc;
	for (uint32_t i = 0; i < 65536; i++) {
		rc = igd_generic(i, &row);
		if (rc != UPNPCOMMAND_SUCCESS)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct view_row *nvv = realloc(v, nc * sizeof(*nvv));
			if (!nvv) {
				free(v);
				return UPNPCOMMAND_MEM_ALLOC_ERROR;
			}
			v = nvv;
			cap = nc;
		}
		v[n++] = row;
	}
	if (rc != UE_BAD_INDEX && rc != UE_NO_SUCH_ENTRY && n == 0) {
		free(v);
		return rc;
	}
	*ret = v;
	*ret_n = n;
	return UPNPCOMMAND_SUCCESS;
}

/* The whole view (malloc'ed; *ret NULL when empty). Lock held. 0 or -ENOMEM. */
static int collect(struct view_row **ret, size_t *ret_n)
{
	struct upc_record *recs = NULL;
	struct upc_daemon_row *drows = NULL;
	size_t nrec = 0, nd = 0, n = 0, cap = 0;
	const char *dsock = daemon_socket();
	if (pmc_upc_record_list(&recs, &nrec) < 0)
		nrec = 0;
	if (!dsock || pmc_upc_daemon_list(dsock, &drows, &nd) < 0)
		nd = 0;
	for (struct upc_entry *e = pmc_upc.head; e; e = e->next)
		cap += !e->pinhole;
	cap += nrec + nd;
	struct view_row *v = cap ? calloc(cap, sizeof(*v)) : NULL;
	if (cap && !v) {
		free(recs);
		free(drows);
		return -ENOMEM;
	}
	for (struct upc_entry *e = pmc_upc.head; e; e = e->next)
		if (!e->pinhole)
			row_of_entry(e, &v[n++]);
	/* What pcpmapd holds for this user, then the records of earlier processes, each port once. */
	for (size_t i = 0; i < nd; i++)
		if (!row_listed(v, n, drows[i].ip_proto, drows[i].ext_port))
			row_of_daemon(&drows[i], &v[n++]);
	if (nrec)
		qsort(recs, nrec, sizeof(*recs), cmp_record);
	for (size_t i = 0; i < nrec; i++)
		if (record_here(&recs[i]) && !row_listed(v, n, recs[i].ip_proto, recs[i].ext_port))
			row_of_record(&recs[i], &v[n++]);
	free(recs);
	free(drows);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The view: the IGD's table where UPnP serves, else collect(). A UPNPCOMMAND_* or UPnP code. Lock held. */
static int view(struct view_row **ret, size_t *ret_n)
{
	char ctl[256], st[96];
	if (igd_serves(ctl, sizeof(ctl), st, sizeof(st)))
		return igd_collect(ret, ret_n);
	return collect(ret, ret_n) < 0 ? UPNPCOMMAND_MEM_ALLOC_ERROR : UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetPortMappingNumberOfEntries(const char *controlURL, const char *servicetype,
							    unsigned int *numEntries)
{
	struct view_row *v;
	size_t n;
	(void)controlURL;
	(void)servicetype;
	if (!numEntries)
		return UPNPCOMMAND_INVALID_ARGS;
	pthread_mutex_lock(&pmc_upc.lock);
	int r = view(&v, &n);
	pthread_mutex_unlock(&pmc_upc.lock);
	if (r != UPNPCOMMAND_SUCCESS)
		return r;
	free(v);
	*numEntries = (unsigned)n;
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetSpecificPortMappingEntry(const char *controlURL, const char *servicetype,
							  const char *extPort, const char *proto,
							  const char *remoteHost, char *intClient,
							  char *intPort, char *desc, char *enabled,
							  char *leaseDuration)
{
	uint16_t ext;
	uint8_t ip_proto;
	struct view_row row;
	struct upc_record rec;
	struct upc_daemon_row drow;
	(void)controlURL;
	(void)servicetype;
	(void)remoteHost;
	if (!extPort || !proto || !intClient || !intPort)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_port(extPort, false, &ext) < 0 || parse_proto(proto, &ip_proto) < 0)
		return UE_INVALID_ARGS;
	char ctl[256], st[96];
	pthread_mutex_lock(&pmc_upc.lock);
	struct upc_entry *e = find_ext(ip_proto, ext);
	int rc = UPNPCOMMAND_SUCCESS;
	if (igd_serves(ctl, sizeof(ctl), st, sizeof(st)))
		rc = igd_specific(ip_proto, ext, &row);
	else if (e)
		row_of_entry(e, &row);
	else if (daemon_find(ip_proto, ext, &drow))
		row_of_daemon(&drow, &row);
	else if (pmc_upc_record_get(ip_proto, ext, &rec) == 0 && record_here(&rec))
		row_of_record(&rec, &row);
	else
		rc = UE_NO_SUCH_ENTRY;
	pthread_mutex_unlock(&pmc_upc.lock);
	if (rc != UPNPCOMMAND_SUCCESS)
		return rc;
	put(intClient, 16, row.int_client);
	snprintf(intPort, 6, "%u", row.int_port);
	if (desc)
		put(desc, 80, row.desc);
	if (enabled)
		snprintf(enabled, 4, "%d", row.enabled);
	if (leaseDuration)
		put(leaseDuration, 16, row.lease);
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetGenericPortMappingEntry(const char *controlURL, const char *servicetype,
							 const char *index, char *extPort, char *intClient,
							 char *intPort, char *protocol, char *desc,
							 char *enabled, char *rHost, char *duration)
{
	uint32_t idx;
	struct view_row *v;
	size_t n;
	(void)controlURL;
	(void)servicetype;
	if (!index)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_u32(index, &idx) < 0)
		return UE_INVALID_ARGS;
	char ctl[256], st[96];
	struct view_row one;
	pthread_mutex_lock(&pmc_upc.lock);
	int r = UPNPCOMMAND_SUCCESS;
	if (igd_serves(ctl, sizeof(ctl), st, sizeof(st))) {
		r = igd_generic(idx, &one);
		v = NULL;
		n = idx + 1u;
	} else {
		r = view(&v, &n);
	}
	pthread_mutex_unlock(&pmc_upc.lock);
	if (r != UPNPCOMMAND_SUCCESS)
		return r;
	if (idx >= n) {
		free(v);
		return UE_BAD_INDEX;
	}
	const struct view_row *row = v ? &v[idx] : &one;
	if (extPort)
		snprintf(extPort, 6, "%u", row->ext_port);
	if (intClient)
		put(intClient, 16, row->int_client);
	if (intPort)
		snprintf(intPort, 6, "%u", row->int_port);
	if (protocol)
		put(protocol, 4, pmc_upc_proto_name(row->ip_proto));
	if (desc)
		put(desc, 80, row->desc);
	if (enabled)
		snprintf(enabled, 4, "%d", row->enabled);
	if (rHost)
		put(rHost, 64, row->remote_host);
	if (duration)
		put(duration, 16, row->lease);
	free(v);
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetListOfPortMappings(const char *controlURL, const char *servicetype,
						    const char *startPort, const char *endPort,
						    const char *protocol, const char *numberOfPorts,
						    struct PortMappingParserData *data)
{
	uint16_t lo, hi;
	uint8_t ip_proto;
	uint32_t max = 0;
	struct view_row *v;
	size_t n;
	(void)controlURL;
	(void)servicetype;
	if (!startPort || !endPort || !protocol || !data)
		return UPNPCOMMAND_INVALID_ARGS;
	memset(data, 0, sizeof(*data));
	if (pmc_parse_port(startPort, true, &lo) < 0 || pmc_parse_port(endPort, true, &hi) < 0 || lo > hi ||
	    parse_proto(protocol, &ip_proto) < 0 || (numberOfPorts && pmc_parse_u32(numberOfPorts, &max) < 0))
		return UE_INVALID_ARGS;
	pthread_mutex_lock(&pmc_upc.lock);
	int r = view(&v, &n);
	pthread_mutex_unlock(&pmc_upc.lock);
	if (r != UPNPCOMMAND_SUCCESS)
		return r;
	struct PortMapping **tail = &data->l_head;
	uint32_t got = 0;
	for (size_t i = 0; i < n && (!max || got < max); i++) {
		const struct view_row *row = &v[i];
		if (row->ip_proto != ip_proto || row->ext_port < lo || row->ext_port > hi)
			continue;
		struct PortMapping *pm = calloc(1, sizeof(*pm));
		if (!pm) {
			free(v);
			FreePortListing(data);
			return UPNPCOMMAND_MEM_ALLOC_ERROR;
		}
		pm->leaseTime = strtoull(row->lease, NULL, 10);
		pm->externalPort = row->ext_port;
		pm->internalPort = row->int_port;
		put(pm->remoteHost, sizeof(pm->remoteHost), row->remote_host);
		put(pm->internalClient, sizeof(pm->internalClient), row->int_client);
		put(pm->description, sizeof(pm->description), row->desc);
		put(pm->protocol, sizeof(pm->protocol), pmc_upc_proto_name(row->ip_proto));
		pm->enabled = row->enabled;
		*tail = pm;
		tail = &pm->l_next;
		got++;
	}
	free(v);
	return got ? UPNPCOMMAND_SUCCESS : UE_NOT_FOUND;
}

PCPMAP_EXPORT_COMPAT void FreePortListing(struct PortMappingParserData *pdata)
{
	if (!pdata)
		return;
	while (pdata->l_head) {
		struct PortMapping *next = pdata->l_head->l_next;
		free(pdata->l_head);
		pdata->l_head = next;
	}
}

/* Not every probe reports the external address (pcpmap's UPnP probe does not): a short mapping of an unused
 * high port does, as RFC 6887 11.6 suggests for PCP. It is deleted at once. Lock held. */
static void learn_external(char *addr, size_t len)
{
	struct pcpmap_request req;
	struct pcpmap_mapping_info info;
	pcpmap_mapping *m;
	struct in_addr a;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = IPPROTO_TCP;
	req.internal_port = (uint16_t)(49152u + (uint32_t)(pcpmap_now_usec() ^ (uint64_t)getpid()) % 16384u);
	req.lifetime = 120;
	req.description = "pcpmap-miniupnpc address";
	memset(&info, 0, sizeof(info));
	if (pcpmap_map_sync(pmc_upc.c, &req, pmc_upc.env.timeout_ms, &m, &info) < 0)
		return;
	if (inet_pton(AF_INET, info.external_addr, &a) == 1)
		put(addr, len, info.external_addr);
	pcpmap_mapping_free(m);
	pcpmap_client_flush(pmc_upc.c, pmc_upc.env.timeout_ms);
	if (pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag, "external address %s learned with a mapping via %s",
			  addr[0] ? addr : "unknown", pcpmap_proto_name(info.proto));
}

PCPMAP_EXPORT_COMPAT int UPNP_GetExternalIPAddress(const char *controlURL, const char *servicetype,
						   char *extIpAdd)
{
	(void)controlURL;
	(void)servicetype;
	if (!extIpAdd)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	char addr[48] = "";
	struct in_addr a;
	/* A live mapping knows the freshest address; else the probe. */
	for (struct upc_entry *e = pmc_upc.head; e && !addr[0]; e = e->next) {
		struct pcpmap_mapping_info info;
		if (!e->pinhole && entry_live(e, &info) && inet_pton(AF_INET, info.external_addr, &a) == 1)
			put(addr, sizeof(addr), info.external_addr);
	}
	if (!addr[0] && pmc_upc_probe(pmc_upc.env.timeout_ms, false) == 0) {
		if (inet_pton(AF_INET, pmc_upc.probe.external_addr, &a) == 1)
			put(addr, sizeof(addr), pmc_upc.probe.external_addr);
		else if (pmc_upc.probe.chosen != PCPMAP_PROTO_NONE)
			learn_external(addr, sizeof(addr));
	}
	pmc_upc_unlock();
	if (!addr[0])
		return UPNPCOMMAND_HTTP_ERROR;
	put(extIpAdd, 16, addr);
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetStatusInfo(const char *controlURL, const char *servicetype, char *status,
					    unsigned int *uptime, char *lastconnerror)
{
	(void)controlURL;
	(void)servicetype;
	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	bool up =
	    pmc_upc_probe(pmc_upc.env.timeout_ms, false) == 0 && pmc_upc.probe.chosen != PCPMAP_PROTO_NONE;
	const struct pcpmap_probe_result *r = &pmc_upc.probe;
	uint32_t epoch = !up                                ? 0
			 : r->chosen == PCPMAP_PROTO_PCP    ? r->pcp.epoch
			 : r->chosen == PCPMAP_PROTO_NATPMP ? r->natpmp.epoch
							    : r->upnp.epoch;
	pmc_upc_unlock();
	if (status)
		put(status, 64, up ? "Connected" : "Disconnected");
	if (uptime)
		*uptime = epoch;
	if (lastconnerror)
		put(lastconnerror, 64, "ERROR_NONE");
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetConnectionTypeInfo(const char *controlURL, const char *servicetype,
						    char *connectionType)
{
	(void)controlURL;
	(void)servicetype;
	if (!connectionType)
		return UPNPCOMMAND_INVALID_ARGS;
	put(connectionType, 64, "IP_Routed");
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetLinkLayerMaxBitRates(const char *controlURL, const char *servicetype,
						      unsigned int *bitrateDown, unsigned int *bitrateUp)
{
	(void)controlURL;
	(void)servicetype;
	(void)bitrateDown;
	(void)bitrateUp;
	return UE_INVALID_ACTION;
}

PCPMAP_EXPORT_COMPAT UNSIGNED_INTEGER UPNP_GetTotalBytesSent(const char *controlURL, const char *servicetype)
{
	(void)controlURL;
	(void)servicetype;
	return 0;
}

PCPMAP_EXPORT_COMPAT UNSIGNED_INTEGER UPNP_GetTotalBytesReceived(const char *controlURL,
								 const char *servicetype)
{
	(void)controlURL;
	(void)servicetype;
	return 0;
}

PCPMAP_EXPORT_COMPAT UNSIGNED_INTEGER UPNP_GetTotalPacketsSent(const char *controlURL,
							       const char *servicetype)
{
	(void)controlURL;
	(void)servicetype;
	return 0;
}

PCPMAP_EXPORT_COMPAT UNSIGNED_INTEGER UPNP_GetTotalPacketsReceived(const char *controlURL,
								   const char *servicetype)
{
	(void)controlURL;
	(void)servicetype;
	return 0;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetFirewallStatus(const char *controlURL, const char *servicetype,
						int *firewallEnabled, int *inboundPinholeAllowed)
{
	(void)controlURL;
	(void)servicetype;
	if (!firewallEnabled || !inboundPinholeAllowed)
		return UPNPCOMMAND_INVALID_ARGS;
	*firewallEnabled = 1;
	*inboundPinholeAllowed = 1;
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetOutboundPinholeTimeout(const char *controlURL, const char *servicetype,
							const char *remoteHost, const char *remotePort,
							const char *intClient, const char *intPort,
							const char *proto, int *opTimeout)
{
	(void)controlURL;
	(void)servicetype;
	(void)remoteHost;
	(void)remotePort;
	(void)intClient;
	(void)intPort;
	(void)proto;
	(void)opTimeout;
	return UE_INVALID_ACTION;
}

PCPMAP_EXPORT_COMPAT int UPNP_AddPinhole(const char *controlURL, const char *servicetype,
					 const char *remoteHost, const char *remotePort,
					 const char *intClient, const char *intPort, const char *proto,
					 const char *leaseTime, char *uniqueID)
{
	uint16_t in, rport = 0;
	uint32_t lease, pnum;
	struct in6_addr a6;
	(void)controlURL;
	(void)servicetype;
	if (!intClient || !intPort || !proto || !leaseTime || !uniqueID)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_u32(proto, &pnum) < 0 || (pnum != IPPROTO_TCP && pnum != IPPROTO_UDP))
		return UE_PROTO_UNSUPPORTED;
	if (pmc_parse_port(intPort, true, &in) < 0 || pmc_parse_u32(leaseTime, &lease) < 0 || lease == 0 ||
	    lease > MAX_PINHOLE_LEASE || inet_pton(AF_INET6, intClient, &a6) != 1)
		return UE_INVALID_ARGS;
	if (in == 0)
		return UE_INT_PORT_WILDCARD;
	bool filtered = remoteHost && *remoteHost && strcmp(remoteHost, "empty");
	if (filtered && (inet_pton(AF_INET6, remoteHost, &a6) != 1 ||
			 (remotePort && *remotePort && pmc_parse_port(remotePort, true, &rport) < 0)))
		return UE_INVALID_ARGS;

	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	struct upc_entry *e = calloc(1, sizeof(*e));
	if (!e) {
		pmc_upc_unlock();
		return UPNPCOMMAND_MEM_ALLOC_ERROR;
	}
	e->pinhole = true;
	e->id = ++pmc_upc.next_id % 10000000u;
	e->ip_proto = (uint8_t)pnum;
	e->int_port = in;
	put(e->int_client, sizeof(e->int_client), intClient);
	if (filtered)
		put(e->remote_host, sizeof(e->remote_host), remoteHost);
	snprintf(e->desc, sizeof(e->desc), "pinhole");

	struct pcpmap_request req;
	struct pcpmap_filter filter = { .peer_addr = remoteHost, .prefix_len = 128, .peer_port = rport };
	struct pcpmap_mapping_info info;
	uint8_t nonce[12];
	bool third_party = !is_local_address(intClient);
	/* The client string keeps the nonce of an IPv6 pinhole apart from the IPv4 mapping of the same port. */
	pmc_nonce(nonce, e->ip_proto, in, intClient);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.ip_proto = e->ip_proto;
	req.internal_port = in;
	req.external_family = AF_INET6;
	req.lifetime = lease;
	req.third_party = third_party ? intClient : NULL;
	if (filtered) {
		req.filters = &filter;
		req.n_filters = 1;
	}
	req.nonce = nonce;
	req.callback = pmc_upc_event;
	req.userdata = e;
	memset(&info, 0, sizeof(info));
	int r = pcpmap_map_sync(pmc_upc.c, &req, pmc_upc.env.timeout_ms, &e->m, &info);
	if (r < 0) {
		int rc = pmc_upnp_error(r, info.proto, info.result_code, third_party);
		if (pmc_upc.env.debug)
			pmc_debug(pmc_upc_tag, "pinhole %s [%s]:%u refused via %s: %s -> %d",
				  pmc_upc_proto_name(e->ip_proto), intClient, in,
				  pcpmap_proto_name(info.proto), pcpmap_strerror(r), rc);
		free(e);
		pmc_upc_unlock();
		return rc;
	}
	e->ext_port = info.external_port;
	set_lease(e, lease);
	pmc_upc_entry_add(e);
	snprintf(uniqueID, 8, "%u", e->id);
	if (pmc_upc.env.debug)
		pmc_debug(pmc_upc_tag, "pinhole %s [%s]:%u (id %u, lease %u s) open via %s (gateway %s)",
			  pmc_upc_proto_name(e->ip_proto), info.external_addr, info.external_port, e->id,
			  lease, pcpmap_proto_name(info.proto), info.server);
	pmc_upc_unlock();
	return UPNPCOMMAND_SUCCESS;
}

PCPMAP_EXPORT_COMPAT int UPNP_UpdatePinhole(const char *controlURL, const char *servicetype,
					    const char *uniqueID, const char *leaseTime)
{
	uint32_t lease;
	(void)controlURL;
	(void)servicetype;
	if (!uniqueID || !leaseTime)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_parse_u32(leaseTime, &lease) < 0 || lease == 0 || lease > MAX_PINHOLE_LEASE)
		return UE_INVALID_ARGS;
	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	struct upc_entry *e = find_pinhole(uniqueID);
	if (e)
		set_lease(e, lease);
	pmc_upc_unlock();
	return e ? UPNPCOMMAND_SUCCESS : UE_NO_SUCH_PINHOLE;
}

PCPMAP_EXPORT_COMPAT int UPNP_DeletePinhole(const char *controlURL, const char *servicetype,
					    const char *uniqueID)
{
	(void)controlURL;
	(void)servicetype;
	if (!uniqueID)
		return UPNPCOMMAND_INVALID_ARGS;
	if (pmc_upc_lock() < 0)
		return UPNPCOMMAND_UNKNOWN_ERROR;
	struct upc_entry *e = find_pinhole(uniqueID);
	int rc = UE_NO_SUCH_PINHOLE;
	if (e) {
		pmc_upc_entry_remove(e, true);
		rc = delete_and_wait();
	}
	pmc_upc_unlock();
	return rc;
}

PCPMAP_EXPORT_COMPAT int UPNP_CheckPinholeWorking(const char *controlURL, const char *servicetype,
						  const char *uniqueID, int *isWorking)
{
	(void)controlURL;
	(void)servicetype;
	if (!uniqueID || !isWorking)
		return UPNPCOMMAND_INVALID_ARGS;
	pthread_mutex_lock(&pmc_upc.lock);
	struct upc_entry *e = find_pinhole(uniqueID);
	struct pcpmap_mapping_info info;
	if (e)
		*isWorking = entry_live(e, &info);
	pthread_mutex_unlock(&pmc_upc.lock);
	return e ? UPNPCOMMAND_SUCCESS : UE_NO_SUCH_PINHOLE;
}

PCPMAP_EXPORT_COMPAT int UPNP_GetPinholePackets(const char *controlURL, const char *servicetype,
						const char *uniqueID, int *packets)
{
	(void)controlURL;
	(void)servicetype;
	(void)uniqueID;
	(void)packets;
	return UE_INVALID_ACTION;
}
