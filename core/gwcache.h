/* Warm starts: what each gateway spoke last time (doc/DESIGN.md, "Warm starts").
 *
 * A small text file, one line per gateway, keyed by the gateway's address and link-layer address: the
 * protocol that answered, whether PCP was silent there, and for UPnP the IGD's control URL, service type
 * and the LAN address it saw. The engine trusts an entry only after one request to the remembered place
 * answers; any failure, or a gateway with another link-layer address, probes as a cold start does.
 *
 * The codec (parse, format, upsert) is pure and fuzzed; load and store do the file I/O (atomic rename,
 * mode 0600, owner and size checked); the pm_gw_memo_* calls are the engine's side. */
#ifndef PCPMAP_GWCACHE_H
#define PCPMAP_GWCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pcpmap/types.h>

#include "sched/sched.h"

#define PM_GWC_MAX       16    /* gateways remembered; the oldest is forgotten first */
#define PM_GWC_FILE_MAX  16384 /* a longer file is not ours: ignored */
#define PM_GWC_TRUST_S   3600u /* an entry is used for this long after a full probe learned it */
#define PM_GWC_FILE_NAME "gateways"
#define PM_GWC_ADDR_LEN  48
#define PM_GWC_MAC_LEN   48
#define PM_GWC_URL_LEN   128
#define PM_GWC_ST_LEN    128

/* What PCP did at the gateway when the entry was learned. */
enum pm_gwc_pcp { PM_GWC_PCP_UNKNOWN = 0, PM_GWC_PCP_YES, PM_GWC_PCP_SILENT, PM_GWC_PCP_REFUSED };

struct pm_gwc_entry {
	char gw[PM_GWC_ADDR_LEN];  /* numeric address, no port */
	char mac[PM_GWC_MAC_LEN];  /* "02:77:00:00:00:01"; "" when it was not known */
	enum pcpmap_proto proto;   /* the protocol chosen */
	enum pm_gwc_pcp pcp;       /* what PCP did */
	uint64_t learned;          /* wall-clock seconds of the full probe that learned it */
	uint32_t rtt_us;           /* round trip of the chosen protocol then (0: unknown) */
	char url[PM_GWC_URL_LEN];  /* UPnP: the IGD's control URL ("" for the other protocols) */
	char st[PM_GWC_ST_LEN];    /* UPnP: its service type (WANIPConnection:1 or :2, WANPPPConnection:1) */
	char lan[PM_GWC_ADDR_LEN]; /* UPnP: our address as the IGD saw it */
};

struct pm_gwcache {
	size_t n;
	struct pm_gwc_entry e[PM_GWC_MAX];
};

/* Pure. Parses a cache file. Any malformed line, unknown version, field too long, duplicate gateway or
 * more than PM_GWC_MAX lines rejects the whole file (-EBADMSG): a cache is worth less than the doubt.
 * Returns 0 and fills ret; ret is untouched on failure. */
int pm_gwcache_parse(const char *buf, size_t len, struct pm_gwcache *ret);
/* Pure. Writes the file's text into buf (NUL-terminated). Returns its length or -ENOSPC. -EINVAL when an
 * entry holds a field the parser would refuse. */
int pm_gwcache_format(const struct pm_gwcache *c, char *buf, size_t cap);
/* Pure. Replaces the entry of e->gw, or adds it (forgetting the oldest when full). */
void pm_gwcache_upsert(struct pm_gwcache *c, const struct pm_gwc_entry *e);
/* Pure. The entry of a gateway address, or NULL. */
const struct pm_gwc_entry *pm_gwcache_find(const struct pm_gwcache *c, const char *gw);
/* Pure. Whether a field value can be stored: 1..cap-1 printable ASCII characters other than space. */
bool pm_gwcache_token_ok(const char *s, size_t cap);

/* Reads dir/gateways. 0; -ENOENT when there is none; -EBADMSG (a corrupt or foreign file: why says what),
 * -EPERM (not a regular file owned by us), -EFBIG, or the errno of reading it. */
int pm_gwcache_load(const char *dir, struct pm_gwcache *ret, char *why, size_t why_len);
/* Writes dir/gateways atomically (a temporary file in dir renamed over it), mode 0600, creating dir (0700)
 * when it is missing. 0 or a negative errno. */
int pm_gwcache_store(const char *dir, const struct pm_gwcache *c);
/* The default directory: $XDG_RUNTIME_DIR/pcpmap, else /run/pcpmap for root. -ENOENT when neither applies. */
int pm_gwcache_default_dir(char *buf, size_t len);

/* ---- engine side ---- */
struct pm_gw;
struct pm_server;
struct pcpmap_client;

/* Per gateway: the entry found at its creation and the verification in progress. */
struct pm_gw_memo {
	bool have;                 /* entry holds a usable memory of this gateway */
	bool warm;                 /* the mappings went straight to entry.proto, not verified yet */
	bool verified;             /* the remembered protocol answered */
	bool dirty;                /* UPnP details changed: store at the next choice */
	struct pm_gwc_entry entry; /* what was remembered (or, after learning, what will be stored) */
	struct sched_timer t_verify;
};

/* A new gateway: looks its memory up (address, then link-layer address). Never fails the gateway. */
void pm_gw_memo_open(struct pm_gw *gw);
void pm_gw_memo_close(struct pm_gw *gw);
/* The first mapping on a gateway nothing is known about: when the memory holds a protocol, it is chosen
 * at once (returns true) and verified by that mapping's request. */
bool pm_gw_memo_warm_start(struct pm_gw *gw);
/* An answer came from server s (any valid one): the remembered protocol is confirmed. */
void pm_gw_memo_answered(struct pm_server *s);
/* Server s reported itself unreachable: a remembered protocol that fails is not verified any more. */
void pm_gw_memo_failed(struct pm_server *s);
/* The gateway chose protocol p (learned or confirmed): stored when it is news. */
void pm_gw_memo_chosen(struct pm_gw *gw, enum pcpmap_proto p);
/* The UPnP backend found (or rediscovered) an IGD at this gateway. */
void pm_gw_memo_upnp(struct pm_server *s, const char *url, const char *st, const char *lan);
/* The remembered IGD for a UPnP server being opened during a warm start, or NULL: its control URL is used
 * without discovery (and discovery follows when it does not answer). */
const struct pm_gwc_entry *pm_gw_memo_upnp_hint(const struct pm_server *s);

#endif
