/* SPDX-License-Identifier: MIT */
/*
 * pcpmapd control protocol codec (doc/IPC.md). Pure: encode and decode over byte buffers, libc only, no
 * sockets, no clock. One message is one AF_UNIX SOCK_SEQPACKET datagram:
 *
 *   0      version (1)     1  type     2-3  flags (0)     4-7  seq     8-11  body length
 *   12...  attributes: type (16 bits), length (16 bits), value; big-endian, no padding
 *
 * Decoding checks every length, every string (UTF-8, no control characters) and every repeat count; any
 * violation is -EBADMSG. Encoding refuses (-EINVAL) what decoding would refuse, so the daemon never emits a
 * message its clients cannot read.
 *
 * Part of the library (hidden symbols): the client's daemon mode speaks it, and so do pcpmapd and its tools.
 */
#ifndef PCPMAP_CORE_IPC_H
#define PCPMAP_CORE_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PMD_IPC_VERSION       1
#define PMD_IPC_HDR_LEN       12
#define PMD_IPC_MAX_MSG       4096 /* whole datagram, header included */
#define PMD_IPC_ADDR_MAX      47   /* an address string, without its NUL (IPv6 with a zone fits) */
#define PMD_IPC_SERVER_MAX    63   /* "addr:port" */
#define PMD_IPC_DESC_MAX      512  /* PCP DESCRIPTION, as the engine bounds it */
#define PMD_IPC_TEXT_MAX      255  /* error messages, server detail */
#define PMD_IPC_MAX_FILTERS   40   /* PCPMAP_MAX_FILTERS */
#define PMD_IPC_MAX_SERVERS   3    /* one per protocol in a probe result */
#define PMD_IPC_NONCE_LEN     12
/* Attribute types with this bit set may be skipped by a reader that does not know them. */
#define PMD_IPC_ATTR_OPTIONAL 0x8000u

/* The longest the daemon takes to answer a DELETE: it answers once the gateway confirmed or refused, after
 * the engine's tries (three, about 21 s for PCP). */
#define PMD_IPC_DELETE_WAIT_MS 60000

/* Message types: requests below 128, replies and events from 128. */
enum pmd_ipc_type {
	PMD_MSG_CREATE = 1,         /* request attributes (+ PERSISTENT, WAIT_MS) -> MAPPING */
	PMD_MSG_DELETE = 2,         /* ID -> OK once the gateway confirmed, or ERROR */
	PMD_MSG_LIST = 3,           /* [ID] -> MAPPING per mapping, then OK with COUNT */
	PMD_MSG_PROBE = 4,          /* [TIMEOUT_MS] -> PROBE_RESULT */
	PMD_MSG_GET_EXTERNAL = 5,   /* [TIMEOUT_MS] -> EXTERNAL */
	PMD_MSG_SUBSCRIBE = 6,      /* [UNSUBSCRIBE flag] -> OK; then EVENT messages */
	PMD_MSG_STATS = 7,          /* -> STATS_RESULT */
	PMD_MSG_ERROR = 128,        /* ERRNO, MESSAGE, [RESULT_CODE, PROTO] */
	PMD_MSG_OK = 129,           /* [ID, COUNT] */
	PMD_MSG_MAPPING = 130,      /* one mapping's description */
	PMD_MSG_EVENT = 131,        /* EVENT + a mapping's description; seq 0 */
	PMD_MSG_PROBE_RESULT = 132, /* GATEWAY, PROTO (chosen), EXTERNAL_ADDR, SERVER_INFO x 0-3 */
	PMD_MSG_EXTERNAL = 133,     /* EXTERNAL_ADDR, PROTO, [EXTERNAL_PRIVATE] */
	PMD_MSG_STATS_RESULT = 134, /* STAT_* counters */
};

/* Attribute types. Every one appears at most once, except FILTER (up to 40) and SERVER_INFO (up to 3). */
enum pmd_ipc_attr {
	PMD_A_ID = 1,                /* u32 mapping id */
	PMD_A_KIND = 2,              /* u8: 1 MAP, 2 PEER */
	PMD_A_IP_PROTO = 3,          /* u8: 6 TCP, 17 UDP, 0 all */
	PMD_A_INTERNAL_PORT = 4,     /* u16 */
	PMD_A_FAMILY = 5,            /* u8: 4 or 6 (external family) */
	PMD_A_SUGGESTED_PORT = 6,    /* u16 */
	PMD_A_SUGGESTED_ADDR = 7,    /* string */
	PMD_A_LIFETIME = 8,          /* u32 seconds (requested in CREATE, granted in MAPPING) */
	PMD_A_PREFER_FAILURE = 9,    /* flag (empty value) */
	PMD_A_THIRD_PARTY = 10,      /* string */
	PMD_A_FILTER = 11,           /* prefix length u8, reserved u8 (0), peer port u16, address string */
	PMD_A_DESCRIPTION = 12,      /* string, at most 512 bytes */
	PMD_A_PORT_PAIR = 13,        /* flag */
	PMD_A_PEER_ADDR = 14,        /* string */
	PMD_A_PEER_PORT = 15,        /* u16 */
	PMD_A_PROTOCOLS = 16,        /* u32 mask of PCPMAP_PROTO_BIT() */
	PMD_A_DEADLINE_MS = 17,      /* u32 */
	PMD_A_NONCE = 18,            /* 12 bytes */
	PMD_A_PERSISTENT = 19,       /* flag */
	PMD_A_WAIT_MS = 20,          /* u32: CREATE replies after the first outcome, or after this long */
	PMD_A_STATE = 21,            /* u8 enum pcpmap_state */
	PMD_A_PROTO = 22,            /* u8 enum pcpmap_proto */
	PMD_A_SERVER = 23,           /* string "addr:port" */
	PMD_A_INTERNAL_ADDR = 24,    /* string */
	PMD_A_EXTERNAL_ADDR = 25,    /* string */
	PMD_A_EXTERNAL_PORT = 26,    /* u16 */
	PMD_A_EXTERNAL_PORT2 = 27,   /* u16 */
	PMD_A_PAIR_METHOD = 28,      /* u8 enum pcpmap_pair_method */
	PMD_A_EXPIRES_IN = 29,       /* u32 seconds until the granted lifetime ends */
	PMD_A_REFRESH_IN = 30,       /* u32 seconds until the next renewal */
	PMD_A_RETRY_IN = 31,         /* u32 seconds until the next try (ERROR_WAIT_RESEND) */
	PMD_A_EPOCH = 32,            /* u32 */
	PMD_A_ERRNO = 33,            /* u32 positive errno */
	PMD_A_RESULT_CODE = 34,      /* u16 protocol result code */
	PMD_A_OWNER_UID = 35,        /* u32 */
	PMD_A_EXTERNAL_PRIVATE = 36, /* flag */
	PMD_A_EVENT = 37,            /* u8 enum pcpmap_event */
	PMD_A_COUNT = 38,            /* u32 */
	PMD_A_MESSAGE = 39,          /* string, at most 255 bytes */
	PMD_A_GATEWAY = 40,          /* string */
	PMD_A_SERVER_INFO = 41,      /* see struct pmd_ipc_server and doc/IPC.md */
	PMD_A_TIMEOUT_MS = 42,       /* u32 */
	PMD_A_UNSUBSCRIBE = 43,      /* flag */
	PMD_A_STAT_WAKEUPS = 44,     /* u64 loop wakeups since start */
	PMD_A_STAT_TIMER = 45,       /* u64 timer expirations */
	PMD_A_STAT_ENGINE = 46,      /* u64 engine descriptor wakeups */
	PMD_A_STAT_UPTIME = 47,      /* u64 seconds */
	PMD_A_CONNECTIONS = 48,      /* u32 connections now */
	PMD_A_MAPPINGS = 49,         /* u32 mappings now */
	/* Added after the first release, mandatory on purpose: a daemon that does not know them refuses the
	 * CREATE (EBADMSG) rather than make a mapping that behaves otherwise than asked (doc/IPC.md). */
	PMD_A_ALLOW_DEGRADE = 50, /* flag: pcpmap_request::allow_degrade */
	PMD_A_NONCE2 = 51,        /* 12 bytes: a port pair's second half (pcpmap_request::nonce2) */
	PMD_A_MAX_ = 52,
};

struct pmd_ipc_filter {
	char addr[PMD_IPC_ADDR_MAX + 1];
	uint8_t prefix_len;
	uint16_t port;
};

/* One protocol's probe answer (struct pcpmap_server_info). Wire: proto u8, version u8, result code u16,
 * epoch u32, rtt u32, errno u32, then four strings each preceded by a u8 length: server, client address,
 * external address, detail. */
struct pmd_ipc_server {
	uint8_t proto;
	uint8_t version;
	uint16_t result_code;
	uint32_t epoch;
	uint32_t rtt_usec;
	uint32_t error; /* positive errno, 0 if none */
	char server[PMD_IPC_SERVER_MAX + 1];
	char client_addr[PMD_IPC_ADDR_MAX + 1];
	char external_addr[PMD_IPC_ADDR_MAX + 1];
	char detail[PMD_IPC_TEXT_MAX + 1];
};

/* The request fields of CREATE (struct pcpmap_request without callbacks); the state file stores them too. */
struct pmd_ipc_req {
	uint8_t kind;
	uint8_t ip_proto;
	uint16_t internal_port;
	uint8_t family; /* 4 or 6, 0 unset */
	uint16_t suggested_port;
	char suggested_addr[PMD_IPC_ADDR_MAX + 1];
	uint32_t lifetime;
	bool prefer_failure;
	char third_party[PMD_IPC_ADDR_MAX + 1];
	struct pmd_ipc_filter filters[PMD_IPC_MAX_FILTERS];
	size_t n_filters;
	char description[PMD_IPC_DESC_MAX + 1];
	bool port_pair;
	char peer_addr[PMD_IPC_ADDR_MAX + 1];
	uint16_t peer_port;
	uint32_t protocols;
	uint32_t deadline_ms;
	uint8_t nonce[PMD_IPC_NONCE_LEN];
	bool allow_degrade;
};

/*
 * A decoded message. `present` has bit (1 << attr) for every attribute carried; flags are carried when their
 * bool is true; FILTER and SERVER_INFO when their counts are non-zero. Other fields are meaningful only when
 * their bit is set.
 */
struct pmd_ipc_msg {
	uint8_t type;
	uint32_t seq;
	uint64_t present;
	uint32_t id;
	struct pmd_ipc_req req;
	uint8_t nonce2[PMD_IPC_NONCE_LEN]; /* with PMD_A_NONCE2 */
	bool persistent;
	uint32_t wait_ms;
	uint32_t timeout_ms;
	bool unsubscribe;
	uint8_t state;
	uint8_t proto;
	char server[PMD_IPC_SERVER_MAX + 1];
	char internal_addr[PMD_IPC_ADDR_MAX + 1];
	char external_addr[PMD_IPC_ADDR_MAX + 1];
	uint16_t external_port;
	uint16_t external_port2;
	uint8_t pair_method;
	uint32_t expires_in;
	uint32_t refresh_in;
	uint32_t retry_in;
	uint32_t epoch;
	uint32_t error; /* positive errno */
	uint16_t result_code;
	uint32_t owner_uid;
	bool external_private;
	uint8_t event;
	uint32_t count;
	char message[PMD_IPC_TEXT_MAX + 1];
	char gateway[PMD_IPC_SERVER_MAX + 1];
	struct pmd_ipc_server servers[PMD_IPC_MAX_SERVERS];
	size_t n_servers;
	uint64_t stat_wakeups;
	uint64_t stat_timer;
	uint64_t stat_engine;
	uint64_t stat_uptime;
	uint32_t connections;
	uint32_t mappings;
};

/* Clears m and sets its type and sequence number. */
void pmd_ipc_init(struct pmd_ipc_msg *m, uint8_t type, uint32_t seq);

/* Marks attribute a as carried (for every attribute except flags, FILTER and SERVER_INFO). */
static inline void pmd_ipc_set(struct pmd_ipc_msg *m, enum pmd_ipc_attr a)
{
	m->present |= (uint64_t)1 << (unsigned)a;
}

/* Whether attribute a was carried (flags, FILTER and SERVER_INFO included). */
static inline bool pmd_ipc_has(const struct pmd_ipc_msg *m, enum pmd_ipc_attr a)
{
	return (m->present >> (unsigned)a) & 1u;
}

/* Whether t is a message type this version knows. */
bool pmd_ipc_type_known(unsigned t);

/* Name of a message type ("CREATE"), "?" when unknown. */
const char *pmd_ipc_type_name(unsigned t);

/*
 * Reads only the header: version, type and sequence number, so that a reply can name the request even when
 * its body is malformed.
 * @return 0; -EBADMSG when shorter than a header or the body length disagrees; -EPROTONOSUPPORT for another
 *         version (type and seq still filled).
 */
int pmd_ipc_peek(const uint8_t *buf, size_t len, uint8_t *ret_type, uint32_t *ret_seq);

/*
 * Decodes one message.
 * @return 0; -EBADMSG for malformed input (lengths, unknown type or mandatory attribute, repeats, bad
 *         strings); -EPROTONOSUPPORT for another protocol version. ret is untouched on failure.
 */
int pmd_ipc_decode(const uint8_t *buf, size_t len, struct pmd_ipc_msg *ret);

/*
 * Encodes m into buf.
 * @return 0 and the length in *ret_len; -ENOSPC when cap is too small (or the message exceeds
 *         PMD_IPC_MAX_MSG); -EINVAL when a field breaks a rule the decoder checks.
 */
int pmd_ipc_encode(const struct pmd_ipc_msg *m, uint8_t *buf, size_t cap, size_t *ret_len);

/* Whether s (len bytes) is acceptable as a string value: valid UTF-8 without C0 controls, DEL or NUL. */
bool pmd_ipc_str_valid(const char *s, size_t len);

/*
 * Copies src into dst (cap bytes, cap >= 1) so that the result passes pmd_ipc_str_valid(): invalid bytes and
 * control characters become '?', and truncation never splits a character. For strings from the network.
 */
void pmd_ipc_copy_str(char *dst, size_t cap, const char *src);

/* Family as carried on the wire (4, 6) from AF_INET/AF_INET6 and back; 0 for anything else. */
uint8_t pmd_ipc_family_to_wire(int af);
int pmd_ipc_family_from_wire(uint8_t f);

#endif
