/* What one UPnP job does on the worker thread: discovery when needed, then the IGD actions with their
 * retries and quirks. Everything goes through struct upnp_igd_ops, so the tests can play the IGD. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upnp/upnp_int.h"

/* miniupnpc 2.2.4 (API 17) turns any upnpDiscover() delay below 1000 ms into 1000 ms and then waits that
 * long after the last answer, so a discovery through it never takes less than ~1.05 s. Our own search
 * stops at the first usable answer; the windows only bound how long we listen when nothing answers. */
const int upnp_discovery_windows_ms[] = { 100, 400, 1500 };
const size_t upnp_n_discovery_windows =
    sizeof(upnp_discovery_windows_ms) / sizeof(upnp_discovery_windows_ms[0]);

uint32_t upnp_lease_to_send(uint32_t req_lifetime, bool lease0_only, bool v2)
{
	(void)v2;
	if (lease0_only)
		return 0;
	if (req_lifetime == 0)
		return PCPMAP_DEFAULT_LIFETIME;
	/* IGD:2 caps leases at 7 days; an IGD:1 gains nothing from a longer one either. */
	return req_lifetime > UPNP_V2_PERMANENT_S ? UPNP_V2_PERMANENT_S : req_lifetime;
}

uint32_t upnp_reported_lifetime(uint32_t sent_lease, bool v2)
{
	if (sent_lease)
		return sent_lease;
	/* Permanent on IGD:1: the engine must still come back (UPnP has no epoch, so the renewal is the only
	 * way to notice a gateway that forgot the mapping). IGD:2 grants 7 days instead. */
	return v2 ? UPNP_V2_PERMANENT_S : UPNP_PERMANENT_AS_S;
}

int upnp_discover_escalating(int (*search)(void *ctx, int window_ms), void *ctx, const int *windows_ms,
			     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = search(ctx, windows_ms[i]);
		if (r < 0)
			return r;
		if (r > 0)
			return (int)i;
	}
	return -ETIMEDOUT;
}

const char *upnp_code_name(int code)
{
	return pcpmap_result_name(PCPMAP_PROTO_UPNP, code);
}

#define HOLD_S 30 /* retry delay after a transient refusal (PCP uses the server's 30 s for the same cases) */

void upnp_classify(int code, bool del, bool prefer_failure, struct upnp_verdict *ret)
{
	struct upnp_verdict v = { PM_REPLY_FATAL, -EPROTO, 0 };
	switch (code) {
	case 0:
		v.kind = PM_REPLY_SUCCESS;
		v.error = 0;
		break;
	case 704: /* NoSuchEntry (pinhole) */
	case 714: /* NoSuchEntryInArray */
	case 730: /* PortMappingNotFound */
		/* Deleting what is gone is success; anywhere else the job already re-added it. */
		if (del) {
			v.kind = PM_REPLY_SUCCESS;
			v.error = 0;
		} else {
			v.error = -ENOENT;
		}
		break;
	case 401: /* InvalidAction: the IGD does not implement it */
	case 702: /* FirewallDisabled */
	case 725: /* OnlyPermanentLeasesSupported, even after the retry with lease 0 */
	case 726: /* RemoteHostOnlySupportsWildcard */
	case 727: /* ExternalPortOnlySupportsWildcard */
		v.error = -EOPNOTSUPP;
		break;
	case 402: /* InvalidArgs */
	case 706:
	case 707:
	case 708:
	case 715:
	case 716:
	case 732:
	case 733:
		v.error = -EPROTO;
		break;
	case 606: /* ActionNotAuthorized */
	case 703: /* InboundPinholeNotAllowed */
		v.error = -EACCES;
		break;
	case 705: /* ProtocolNotSupported */
		v.error = -EPROTONOSUPPORT;
		break;
	case 501: /* ActionFailed: generic, retry later */
	case 701: /* PinholeSpaceExhausted */
	case 709: /* NoPacketSent */
	case 728: /* NoPortMapsAvailable */
		v.kind = PM_REPLY_RETRY;
		v.error = -EAGAIN;
		v.hold_s = HOLD_S;
		break;
	case 718: /* ConflictInMappingEntry, after the other ports */
	case 724: /* SamePortValuesRequired, and that port is taken */
	case 729: /* ConflictWithOtherMechanisms */
		v.error = -EADDRINUSE;
		/* Pinned: exactly this port or nothing. Otherwise the port may be freed later. */
		v.kind = prefer_failure ? PM_REPLY_FATAL : PM_REPLY_RETRY;
		v.hold_s = prefer_failure ? 0 : HOLD_S;
		break;
	default:
		if (code < 0) {
			v.error = code;
			/* A garbled answer or no memory may pass; a request we cannot express will not. */
			if (code == -EPROTO || code == -ENOMEM || code == -ETIMEDOUT ||
			    code == -ECONNREFUSED) {
				v.kind = PM_REPLY_RETRY;
				v.hold_s = HOLD_S;
			}
		}
		break;
	}
	if (del && v.kind == PM_REPLY_RETRY) {
		v.kind = PM_REPLY_FATAL; /* a delete is answered once; the engine retries it by itself */
		v.hold_s = 0;
	}
	*ret = v;
}

/* ---- worker side ---- */

static void trace(struct upnp_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(struct upnp_job *j, const char *fmt, ...)
{
	if (j->n_trace >= UPNP_TRACE_MAX)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->trace[j->n_trace++], UPNP_TRACE_LEN, fmt, ap);
	va_end(ap);
}

static const char *code_text(int code, char *buf, size_t len)
{
	if (code == 0)
		snprintf(buf, len, "OK");
	else if (code > 0)
		snprintf(buf, len, "%d %s", code, upnp_code_name(code));
	else /* the bare errno text: pcpmap_strerror() adds PCP-flavoured advice */
		snprintf(buf, len, "%s", strerrordesc_np(-code) ? strerrordesc_np(-code) : "error");
	return buf;
}

static double ms_since(uint64_t t0)
{
	return (double)(pcpmap_now_usec() - t0) / 1000.0;
}

static bool transport_error(int code)
{
	return code == -ECONNREFUSED || code == -ETIMEDOUT;
}

static void invalidate(struct upnp_igd *g)
{
	/* The IGD went away or moved (a restarted one may listen on another port): discover again. */
	if (g->valid && g->ops->forget)
		g->ops->forget(g);
	g->valid = false;
	g->have_ext = false;
	g->remembered = false;
}

static void copy_igd(const struct upnp_igd *g, struct upnp_job *j)
{
	snprintf(j->igd_url, sizeof(j->igd_url), "%s", g->url);
	snprintf(j->igd_lan, sizeof(j->igd_lan), "%s", g->lan);
	snprintf(j->igd_st, sizeof(j->igd_st), "%s", g->st);
	j->igd_version = g->v2 ? 2 : 1;
	j->igd_status = g->status;
	j->igd_window_ms = g->window_ms;
}

static int ensure_igd(struct upnp_igd *g, struct upnp_job *j, bool force)
{
	char t[64];
	if (g->valid && !force) {
		copy_igd(g, j);
		return 0;
	}
	invalidate(g);
	uint64_t t0 = pcpmap_now_usec();
	g->max_windows = j->max_windows;
	int r = g->ops->discover(g);
	uint64_t dt = pcpmap_now_usec() - t0;
	j->notes |= UPNP_NOTE_DISCOVERED;
	j->igd_discovery_us = dt;
	if (r < 0) {
		trace(j, "UPnP discovery -> %s (%.1f ms)", code_text(r, t, sizeof(t)), (double)dt / 1000.0);
		return r == -ECANCELED || r == -ECONNREFUSED ? r : -ETIMEDOUT;
	}
	g->valid = true;
	g->discovery_us = dt;
	if (g->status == 2)
		j->notes |= UPNP_NOTE_DOUBLE_NAT;
	copy_igd(g, j);
	trace(j, "UPnP discovery: IGD:%d %s (GetValidIGD %d%s), lan %s -> OK (%.1f ms, window %d ms)",
	      g->v2 ? 2 : 1, g->url, g->status, g->status == 2 ? " not connected" : "", g->lan,
	      (double)dt / 1000.0, g->window_ms);
	return 0;
}

static int refresh_ext(struct upnp_igd *g, struct upnp_job *j)
{
	char ext[UPNP_ADDR_LEN] = "", t[64];
	uint64_t t0 = pcpmap_now_usec();
	int r = g->ops->get_ext(g, ext);
	trace(j, "UPnP GetExternalIPAddress -> %s%s%s (%.1f ms)", code_text(r, t, sizeof(t)), r ? "" : " ",
	      r ? "" : ext, ms_since(t0));
	if (r == 0) {
		snprintf(g->ext, sizeof(g->ext), "%s", ext);
		g->have_ext = true;
	} else if (transport_error(r)) {
		invalidate(g);
	}
	return r;
}

static uint16_t next_port(uint16_t port)
{
	return port >= 65535 ? 1024 : (uint16_t)(port + 1);
}

static bool is_v4(const char *s)
{
	struct in_addr a;
	return inet_pton(AF_INET, s, &a) == 1;
}

static bool is_v6(const char *s)
{
	struct in6_addr a;
	return inet_pton(AF_INET6, s, &a) == 1;
}

/* Who holds an external port on the IGD. */
enum holder { HOLDER_UNKNOWN = 0, HOLDER_NONE, HOLDER_US, HOLDER_OTHER };

/* GetSpecificPortMappingEntry: UPnP mappings are keyed by (external port, protocol) only, and an IGD
 * overwrites a mapping of the same internal client without a word (miniupnpd 2.3.1 does), so a port is
 * checked before it is added to or deleted from: another application of this host may hold it. */
static int check_port(struct upnp_igd *g, struct upnp_job *j, const char *proto, uint16_t ext,
		      const char *client, enum holder *ret)
{
	char who[UPNP_ADDR_LEN] = "", t[64];
	uint16_t iport = 0;
	uint64_t t0 = pcpmap_now_usec();
	int r = g->ops->get_entry(g, ext, proto, who, &iport);
	if (r == 0)
		trace(j, "UPnP GetSpecificPortMappingEntry %s %u -> %s:%u (%.1f ms)", proto, ext, who, iport,
		      ms_since(t0));
	else
		trace(j, "UPnP GetSpecificPortMappingEntry %s %u -> %s (%.1f ms)", proto, ext,
		      code_text(r, t, sizeof(t)), ms_since(t0));
	if (transport_error(r)) {
		invalidate(g);
		return r;
	}
	if (r == 0)
		*ret = strcmp(who, client) == 0 && iport == j->internal_port ? HOLDER_US : HOLDER_OTHER;
	else if (r == 714 || r == 730)
		*ret = HOLDER_NONE;
	else
		*ret = HOLDER_UNKNOWN; /* the IGD will not say: rely on AddPortMapping's answer */
	return 0;
}

/* One AddPortMapping / AddAnyPortMapping on a port known not to be someone else's, with the retries that
 * keep the port: 725 (permanent leases only), 401 (no AddAnyPortMapping). */
static int add_once(struct upnp_igd *g, struct upnp_job *j, const char *proto, const char *client,
		    uint16_t ext, bool use_any, uint32_t *lease, uint16_t *ret_port, bool *ret_used_any)
{
	char t[64];
	int r = -EPROTO;
	for (int i = 0; i < 3; i++) {
		struct upnp_add_args a = {
			.ext_port = ext,
			.int_port = j->internal_port,
			.client = client,
			.desc = j->desc,
			.proto = proto,
			.lease = *lease,
		};
		uint16_t got = ext;
		uint64_t t0 = pcpmap_now_usec();
		r = use_any ? g->ops->add_any(g, &a, &got) : g->ops->add(g, &a);
		if (r == 0 && use_any)
			trace(j, "UPnP AddAnyPortMapping %s %u->%s:%u lease %u -> OK port %u (%.1f ms)",
			      proto, ext, client, j->internal_port, *lease, got, ms_since(t0));
		else
			trace(j, "UPnP %s %s %u->%s:%u lease %u -> %s (%.1f ms)",
			      use_any ? "AddAnyPortMapping" : "AddPortMapping", proto, ext, client,
			      j->internal_port, *lease, code_text(r, t, sizeof(t)), ms_since(t0));
		if (r == 0) {
			*ret_port = got;
			*ret_used_any = use_any;
			return 0;
		}
		if (transport_error(r)) {
			invalidate(g);
			return r;
		}
		if (r == 725 && *lease != 0) {
			/* Permanent leases only: remembered for this IGD; the delete at exit matters now. */
			g->lease0_only = true;
			j->notes |= UPNP_NOTE_LEASE0;
			*lease = 0;
			continue;
		}
		if (r == 401 && use_any) {
			g->no_any = true;
			j->notes |= UPNP_NOTE_NO_ANY;
			use_any = false;
			continue;
		}
		break;
	}
	return r;
}

static void run_map4(struct upnp_igd *g, struct upnp_job *j)
{
	const char *proto = j->ip_proto == IPPROTO_UDP ? "UDP" : "TCP";
	const char *client = j->client[0] ? j->client : g->lan;
	int r;

	if (!is_v4(client)) {
		trace(j, "UPnP AddPortMapping %s %u: internal client %s is not an IPv4 address", proto,
		      j->internal_port, client);
		j->code = -EOPNOTSUPP;
		return;
	}
	uint32_t lease = upnp_lease_to_send(j->lease, g->lease0_only, g->v2);
	uint16_t asked = j->ext_port ? j->ext_port : j->internal_port;
	uint16_t ext = asked, got = asked;
	bool used_any = false, moved = false;
	unsigned port_tries = 0;

	for (;;) {
		enum holder h;
		/* Presence check on renewals (UPnP has no epoch), ownership check on new mappings. */
		r = check_port(g, j, proto, ext, client, &h);
		if (r < 0)
			break;
		if (j->renew && !moved) {
			if (h == HOLDER_NONE)
				j->notes |= UPNP_NOTE_FORGOTTEN;
			else if (h == HOLDER_OTHER)
				j->notes |= UPNP_NOTE_TAKEN;
		}
		if (h != HOLDER_OTHER) {
			/* IGD:2 without a wish, or after a conflict: AddAnyPortMapping, wishing for a port just
			 * checked free (which the IGD then grants as is). */
			bool any =
			    g->v2 && !g->no_any && h == HOLDER_NONE && (moved || (!j->ext_port && !j->renew));
			r = add_once(g, j, proto, client, ext, any, &lease, &got, &used_any);
			if (r == 724 && ext != j->internal_port && !j->prefer_failure) {
				ext = j->internal_port; /* SamePortValuesRequired */
				moved = true;
				continue;
			}
			if ((r != 718 && r != 729) || j->prefer_failure)
				break;
		} else if (j->prefer_failure) {
			r = 718; /* pinned and held by another: ConflictInMappingEntry without asking */
			break;
		}
		/* Conflict: the next port, a few times. */
		if (port_tries++ >= UPNP_PORT_TRIES) {
			r = 718;
			break;
		}
		ext = next_port(ext);
		moved = true;
	}
	j->code = r;
	if (r != 0)
		return;
	j->out_port = got;
	j->out_lease = lease;
	j->out_lifetime = upnp_reported_lifetime(lease, g->v2 || used_any);
	if (got != asked)
		j->notes |= UPNP_NOTE_PORT_MOVED;
	/* Once per server, and again whenever a mapping is re-added (the WAN address may have changed). */
	if (!g->have_ext || j->renew)
		refresh_ext(g, j);
	if (g->have_ext)
		snprintf(j->out_ext, sizeof(j->out_ext), "%s", g->ext);
}

static struct upnp_pinhole *find_pinhole(struct upnp_igd *g, uint64_t id)
{
	for (size_t i = 0; i < g->n_pinholes; i++)
		if (g->pinholes[i].id == id)
			return &g->pinholes[i];
	return NULL;
}

static void drop_pinhole(struct upnp_igd *g, struct upnp_pinhole *ph)
{
	size_t i = (size_t)(ph - g->pinholes);
	g->pinholes[i] = g->pinholes[--g->n_pinholes];
}

static int keep_pinhole(struct upnp_igd *g, uint64_t id, const char *uid)
{
	struct upnp_pinhole *ph = find_pinhole(g, id);
	if (!ph) {
		ph = realloc(g->pinholes, (g->n_pinholes + 1) * sizeof(*ph));
		if (!ph)
			return -ENOMEM;
		g->pinholes = ph;
		ph = &g->pinholes[g->n_pinholes++];
		ph->id = id;
	}
	snprintf(ph->uid, sizeof(ph->uid), "%s", uid);
	return 0;
}

static void run_map6(struct upnp_igd *g, struct upnp_job *j)
{
	const char *client = j->client[0] ? j->client : g->lan;
	char t[64];
	int r;

	if (!g->has_6fc) {
		trace(j, "UPnP AddPinhole: the IGD offers no WANIPv6FirewallControl service");
		j->code = -EOPNOTSUPP;
		return;
	}
	if (!is_v6(client)) {
		trace(j,
		      "UPnP AddPinhole: internal client %s is not an IPv6 address (reach the IGD over IPv6)",
		      client);
		j->code = -EOPNOTSUPP;
		return;
	}
	uint32_t lease = j->lease == 0 ? PCPMAP_DEFAULT_LIFETIME : j->lease;
	if (lease > UPNP_PINHOLE_MAX_S)
		lease = UPNP_PINHOLE_MAX_S;
	struct upnp_pinhole *ph = find_pinhole(g, j->id);
	r = -ENOENT;
	if (ph) {
		uint64_t t0 = pcpmap_now_usec();
		r = g->ops->update_pinhole(g, ph->uid, lease);
		trace(j, "UPnP UpdatePinhole %s lease %u -> %s (%.1f ms)", ph->uid, lease,
		      code_text(r, t, sizeof(t)), ms_since(t0));
		if (transport_error(r)) {
			invalidate(g);
			j->code = r;
			return;
		}
		if (r != 0) {
			if (r == 704)
				j->notes |= UPNP_NOTE_FORGOTTEN;
			drop_pinhole(g, ph);
		}
	}
	if (r != 0) {
		char uid[UPNP_UID_LEN] = "";
		uint64_t t0 = pcpmap_now_usec();
		r = g->ops->add_pinhole(g, client, j->internal_port, j->ip_proto, lease, uid);
		trace(j, "UPnP AddPinhole %s [%s]:%u lease %u -> %s%s%s (%.1f ms)",
		      j->ip_proto == IPPROTO_UDP ? "UDP" : "TCP", client, j->internal_port, lease,
		      code_text(r, t, sizeof(t)), r ? "" : " id ", r ? "" : uid, ms_since(t0));
		if (transport_error(r))
			invalidate(g);
		if (r == 0)
			r = keep_pinhole(g, j->id, uid);
	}
	j->code = r;
	if (r != 0)
		return;
	/* A pinhole opens our own address: no translation. */
	j->out_port = j->internal_port;
	j->out_lease = lease;
	j->out_lifetime = lease;
	snprintf(j->out_ext, sizeof(j->out_ext), "%s", client);
}

static void run_unmap(struct upnp_igd *g, struct upnp_job *j)
{
	char t[64];
	uint64_t t0 = pcpmap_now_usec();
	if (j->family == AF_INET6) {
		struct upnp_pinhole *ph = find_pinhole(g, j->id);
		if (!ph) {
			trace(j, "UPnP DeletePinhole: no pinhole known for mapping %llu",
			      (unsigned long long)j->id);
			/* The IGD names a pinhole by the ID it gave its creator: another process cannot find
			 * it. */
			j->code = j->named ? -ENOENT : 0;
			if (j->named)
				snprintf(
				    j->detail, sizeof(j->detail),
				    "UPnP names a pinhole by the ID only its creator got; it closes when its "
				    "lease ends");
			return;
		}
		j->code = g->ops->del_pinhole(g, ph->uid);
		trace(j, "UPnP DeletePinhole %s -> %s (%.1f ms)", ph->uid, code_text(j->code, t, sizeof(t)),
		      ms_since(t0));
		if (transport_error(j->code))
			invalidate(g);
		else
			drop_pinhole(g, ph);
		return;
	}
	const char *proto = j->ip_proto == IPPROTO_UDP ? "UDP" : "TCP";
	const char *client = j->client[0] ? j->client : g->lan;
	uint16_t ext = j->ext_port ? j->ext_port : j->internal_port;
	enum holder h;
	int r = check_port(g, j, proto, ext, client, &h);
	if (r < 0) {
		j->code = r;
		return;
	}
	if (j->named && h != HOLDER_US && h != HOLDER_UNKNOWN) {
		/* unmap named this mapping: not finding it (or finding another's) is the answer. */
		trace(j, "UPnP DeletePortMapping %s %u: %s, nothing deleted", proto, ext,
		      h == HOLDER_NONE ? "no such mapping" : "held by another client");
		j->code = h == HOLDER_NONE ? -ENOENT : -EACCES;
		if (h == HOLDER_NONE)
			snprintf(j->detail, sizeof(j->detail),
				 "the IGD holds no %s mapping on external port %u", proto, ext);
		else
			snprintf(j->detail, sizeof(j->detail),
				 "external port %s %u maps to another client or port", proto, ext);
		return;
	}
	/* Only what is provably ours goes: the same external port may be another application's now. */
	if (!j->named && (h == HOLDER_NONE || h == HOLDER_OTHER || (h == HOLDER_UNKNOWN && !j->renew))) {
		trace(j, "UPnP DeletePortMapping %s %u: %s", proto, ext,
		      h == HOLDER_NONE ? "already gone" : "not ours, left alone");
		j->code = 0;
		return;
	}
	t0 = pcpmap_now_usec();
	j->code = g->ops->del(g, ext, proto);
	trace(j, "UPnP DeletePortMapping %s %u -> %s (%.1f ms)", proto, ext, code_text(j->code, t, sizeof(t)),
	      ms_since(t0));
	if (transport_error(j->code))
		invalidate(g);
	if (j->named && (j->code == 714 || j->code == 730)) {
		j->code = -ENOENT;
		snprintf(j->detail, sizeof(j->detail), "the IGD holds no %s mapping on external port %u",
			 proto, ext);
	}
}

bool upnp_igd_keep(const struct upnp_job *j)
{
	return j->op == UPNP_OP_UNMAP;
}

int upnp_igd_remember(struct upnp_igd *g, const char *url, const char *st, const char *lan)
{
	if (!g->ops->adopt)
		return -EOPNOTSUPP;
	snprintf(g->url, sizeof(g->url), "%s", url);
	snprintf(g->st, sizeof(g->st), "%s", st);
	snprintf(g->lan, sizeof(g->lan), "%s", lan);
	g->v2 = strlen(st) > 2 && strcmp(st + strlen(st) - 2, ":2") == 0;
	g->status = 1;
	g->has_6fc = false;
	int r = g->ops->adopt(g);
	if (r < 0)
		return r;
	g->valid = true;
	g->remembered = true;
	return 0;
}

/* A remembered IGD that fails its first job (unreachable, or the URL no longer serves that action): the
 * answer says the memory is stale, not that the gateway lacks UPnP. */
static bool memory_refuted(int code)
{
	return transport_error(code) || code == -EPROTO || code == 401 || code == 404 || code == 501;
}

static void run_op(struct upnp_igd *g, struct upnp_job *j);

void upnp_igd_run(void *ctx, struct upnp_job *j)
{
	struct upnp_igd *g = ctx;
	if (g->remembered && j->family == AF_INET6)
		invalidate(g); /* pinholes need the firewall service, which is not remembered */
	bool remembered = g->remembered && j->op != UPNP_OP_PROBE && j->op != UPNP_OP_FAIL;
	run_op(g, j);
	if (!remembered)
		return;
	if (!memory_refuted(j->code) || atomic_load(g->stop)) {
		g->remembered = false;
		return;
	}
	char t[64];
	trace(j, "UPnP: the remembered IGD %s did not serve the request (%s): discovering", g->url,
	      code_text(j->code, t, sizeof(t)));
	invalidate(g);
	/* Run again from scratch: nothing of the first try is kept but its trace. */
	j->code = 0;
	j->notes = 0;
	j->out_port = 0;
	j->out_lifetime = 0;
	j->out_lease = 0;
	j->out_ext[0] = '\0';
	j->detail[0] = '\0';
	run_op(g, j);
}

static void run_op(struct upnp_igd *g, struct upnp_job *j)
{
	int r;

	if (j->op == UPNP_OP_FAIL)
		return;
	if (atomic_load(g->stop) && (j->op != UPNP_OP_UNMAP || !g->valid)) {
		/* Closing: best-effort deletes on a known IGD only, never a discovery. */
		j->notes |= UPNP_NOTE_SKIPPED;
		j->code = -ECANCELED;
		return;
	}
	r = ensure_igd(g, j, j->op == UPNP_OP_PROBE);
	if (r < 0) {
		j->code = r;
		return;
	}
	switch (j->op) {
	case UPNP_OP_PROBE:
		/* A probe reports the external address too (one more SOAP call, about a millisecond). */
		j->code = 0;
		if (refresh_ext(g, j) == 0)
			snprintf(j->out_ext, sizeof(j->out_ext), "%s", g->ext);
		break;
	case UPNP_OP_ANNOUNCE:
		j->code = refresh_ext(g, j);
		if (j->code == 0)
			snprintf(j->out_ext, sizeof(j->out_ext), "%s", g->ext);
		break;
	case UPNP_OP_MAP:
		if (j->family == AF_INET6)
			run_map6(g, j);
		else
			run_map4(g, j);
		break;
	case UPNP_OP_UNMAP:
		run_unmap(g, j);
		break;
	case UPNP_OP_FAIL:
		break;
	}
}

void upnp_igd_fini(struct upnp_igd *g)
{
	if (g->ops && g->ops->forget)
		g->ops->forget(g);
	g->valid = false;
	free(g->pinholes);
	g->pinholes = NULL;
	g->n_pinholes = 0;
}
