/* SPDX-License-Identifier: MIT */
/* pcpmapd configuration file: `key = value` lines and `#` comments (doc/pcpmapd.conf.md). */
#ifndef PCPMAP_DAEMON_CONFIG_H
#define PCPMAP_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PMD_CFG_PATH_MAX   4096
#define PMD_CFG_SOCKET_MAX 107 /* sun_path without its NUL */
#define PMD_CFG_MAX_FILE   (1u << 20)
#define PMD_CFG_GRANTS_MAX 64

/* One entry of user_port_grants: ports a uid may map without holding a socket on them. */
struct pmd_port_grant {
	bool any_uid; /* `*` */
	uint32_t uid;
	uint8_t ip_proto; /* 0 = tcp, udp (and sctp when user_sctp) alike */
	uint16_t low, high;
};

struct pmd_cfg {
	char server[128];          /* "" = the default gateway */
	int transport_family;      /* 0, AF_INET or AF_INET6 */
	uint32_t protocols;        /* PCPMAP_PROTO_BIT() mask; 0 = every protocol built in */
	uint8_t protocol_order[3]; /* as written, for the warning that the engine's order is fixed */
	size_t n_protocol_order;
	uint32_t remap_interval_ms;    /* 0 = the engine's default (50 ms) */
	uint8_t port_reservation_code; /* 0 = the engine's default (132) */
	uint32_t max_mappings;
	uint32_t max_mappings_per_uid;
	uint32_t max_connections;
	uint32_t max_connections_per_uid;
	uint32_t default_lifetime;
	uint32_t max_lifetime;
	int log_level;                            /* 3 (err) .. 7 (debug) */
	char socket_path[PMD_CFG_SOCKET_MAX + 1]; /* "" = $RUNTIME_DIRECTORY/pcpmapd.sock or the default */
	char state_dir[PMD_CFG_PATH_MAX];         /* "" = $STATE_DIRECTORY or the default */
	bool announce_listener;
	bool netlink_monitor;
	uint16_t user_min_port; /* lowest internal port a uid other than root may map */
	bool user_persistent;   /* uids other than root may create persistent mappings */
	bool user_third_party;  /* uids other than root may name one of this host's own addresses */
	bool user_sctp;         /* uids other than root may map SCTP ports (TCP and UDP always) */
	struct pmd_port_grant port_grants[PMD_CFG_GRANTS_MAX]; /* user_port_grants */
	size_t n_port_grants;
	unsigned server_line; /* line of `server`, 0 when not set */
};

/* Fills cfg with the defaults. */
void pmd_cfg_defaults(struct pmd_cfg *cfg);

/*
 * Parses configuration text over the values already in cfg. On failure err receives "line N: what is
 * wrong" and cfg may be partly updated (callers parse into a copy).
 * @return 0; -EINVAL for a bad line (err says which).
 */
int pmd_cfg_parse(const char *text, size_t len, struct pmd_cfg *cfg, char *err, size_t errlen);

/*
 * Reads and parses a file. err receives "PATH: line N: ..." or "PATH: <errno text>".
 * @return 0; -EINVAL for bad content; -errno when the file cannot be read; -EFBIG above 1 MiB.
 */
int pmd_cfg_load(const char *path, struct pmd_cfg *cfg, char *err, size_t errlen);

/* Parses a log level name (err, warning, notice, info, debug) or number 3-7. @return 0 or -EINVAL. */
int pmd_cfg_parse_log_level(const char *s, int *ret);

/*
 * Parses a user_port_grants list: comma-separated `UID:PORT[-PORT][/tcp|/udp|/sctp]`, UID a number or `*`.
 * @return 0 or -EINVAL (err says which entry).
 */
int pmd_cfg_parse_grants(const char *s, struct pmd_port_grant *ret, size_t *ret_n, char *err, size_t errlen);

/* Parses a protocol list ("pcp,natpmp,upnp"): mask and order. @return 0 or -EINVAL. */
int pmd_cfg_parse_protocols(const char *s, uint32_t *ret_mask, uint8_t ret_order[3], size_t *ret_n);

#endif
