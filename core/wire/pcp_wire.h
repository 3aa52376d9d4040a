/*
 * PCP (RFC 6887) wire codec: message structs, encode/decode, client-side response validation and the
 * result-code table. Pure: no clock, no sockets, no randomness. Extensions: DESCRIPTION (RFC 7220),
 * PREFIX64 (RFC 7225), PORT_SET (RFC 7753), PORT_RESERVATION (draft-boucadair-pcp-rtp-rtcp, code set by cfg).
 */
#ifndef PCPMAP_WIRE_PCP_WIRE_H
#define PCPMAP_WIRE_PCP_WIRE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PCP_VERSION                  2
#define PCP_SERVER_PORT              5351
#define PCP_CLIENT_PORT              5350
#define PCP_MAX_MSG                  1100
#define PCP_HDR_LEN                  24
#define PCP_MAP_LEN                  60
#define PCP_PEER_LEN                 80
#define PCP_NONCE_LEN                12
#define PCP_MAX_FILTERS              40
#define PCP_MAX_DESCRIPTION          512 /* bytes of text kept, decode rejects longer with -EBADMSG */
#define PCP_MAX_PREFIX64             4
#define PCP_MAX_PREFIX64_V4          8
#define PCP_PORT_RESERVATION_DEFAULT 132

/* Additions (not in the original API sketch). */
#define PCP_OPT_HDR_LEN  4 /* code(1) reserved(1) length(2), RFC 6887 7.3 */
#define PCP_R_BIT        0x80
#define PCP_ADDR_STRLEN  46 /* INET6_ADDRSTRLEN: enough for pcp_addr_to_string */
#define PCP_HOLD_SHORT_S 30 /* RFC 6887 7.4: "short lifetime" errors, used when the server gave 0 */
#define PCP_HOLD_LONG_S  1800
#define PCP_HOLD_MAX_S   86400 /* RFC 6887 15: treat longer lifetimes as 24 h */

enum pcp_opcode { PCP_OP_ANNOUNCE = 0, PCP_OP_MAP = 1, PCP_OP_PEER = 2 };
enum pcp_result {
	PCP_RES_SUCCESS = 0,
	PCP_RES_UNSUPP_VERSION,
	PCP_RES_NOT_AUTHORIZED,
	PCP_RES_MALFORMED_REQUEST,
	PCP_RES_UNSUPP_OPCODE,
	PCP_RES_UNSUPP_OPTION,
	PCP_RES_MALFORMED_OPTION,
	PCP_RES_NETWORK_FAILURE,
	PCP_RES_NO_RESOURCES,
	PCP_RES_UNSUPP_PROTOCOL,
	PCP_RES_USER_EX_QUOTA,
	PCP_RES_CANNOT_PROVIDE_EXTERNAL,
	PCP_RES_ADDRESS_MISMATCH,
	PCP_RES_EXCESSIVE_REMOTE_PEERS
};
enum pcp_option_code {
	PCP_OPT_THIRD_PARTY = 1,
	PCP_OPT_PREFER_FAILURE = 2,
	PCP_OPT_FILTER = 3,
	PCP_OPT_DESCRIPTION = 128,
	PCP_OPT_PREFIX64 = 129,
	PCP_OPT_PORT_SET = 130
};

struct pcp_addr {
	uint8_t b[16];
}; /* always 16-byte form, IPv4 as ::ffff:a.b.c.d */
void pcp_addr_from_v4(struct pcp_addr *a, const struct in_addr *v4);
void pcp_addr_from_v6(struct pcp_addr *a, const struct in6_addr *v6);
bool pcp_addr_is_v4(const struct pcp_addr *a);     /* IPv4-mapped: all of bytes 0-11 checked (RFC 6887 5) */
void pcp_addr_any(struct pcp_addr *a, int family); /* ::ffff:0.0.0.0 for AF_INET, :: for AF_INET6 */
/* Dotted quad for mapped v4, RFC 5952 text otherwise. Returns the string length, -ENOSPC if len is too small. */
int pcp_addr_to_string(const struct pcp_addr *a, char *buf, size_t len);
int pcp_addr_from_string(const char *s, struct pcp_addr *ret); /* -EINVAL if not an address */
/* Addition: the IPv4 address of a mapped pcp_addr (-EINVAL if it is not IPv4-mapped). */
int pcp_addr_to_v4(const struct pcp_addr *a, struct in_addr *ret);

struct pcp_filter {
	uint8_t prefix_len;
	uint16_t peer_port;
	struct pcp_addr peer_addr;
};
struct pcp_port_set {
	uint16_t size;
	uint16_t first_port;
	bool parity;
};
struct pcp_prefix64 {
	uint16_t prefix_len; /* octets: 4, 5, 6, 7, 8 or 12; the suffix is 12 - prefix_len octets */
	uint8_t prefix[12];
	uint8_t suffix[12];
	uint16_t n_v4;
	struct {
		uint16_t len; /* bits, <= 32 */
		uint8_t prefix[4];
	} v4[PCP_MAX_PREFIX64_V4];
};
struct pcp_options {
	bool has_third_party;
	struct pcp_addr third_party;
	bool prefer_failure;
	size_t n_filters;
	struct pcp_filter filters[PCP_MAX_FILTERS];
	bool has_description;
	size_t description_len;
	char description[PCP_MAX_DESCRIPTION + 1]; /* NUL-terminated */
	bool has_port_set;
	struct pcp_port_set port_set;
	bool port_reservation; /* zero-length option with code cfg port_reservation_code */
	size_t n_prefix64;
	struct pcp_prefix64 prefix64[PCP_MAX_PREFIX64];
	size_t n_unknown_optional; /* decode: optional (>=128) options skipped */
};
struct pcp_msg {
	uint8_t version;
	bool response;
	uint8_t opcode;
	uint8_t result;
	uint32_t lifetime;
	uint32_t epoch;              /* result/epoch: responses only */
	struct pcp_addr client_addr; /* requests only */
	uint8_t nonce[PCP_NONCE_LEN];
	uint8_t protocol;
	uint16_t internal_port;
	uint16_t ext_port;
	struct pcp_addr ext_addr; /* suggested (request) / assigned (response) */
	uint16_t peer_port;
	struct pcp_addr peer_addr; /* PEER only */
	struct pcp_options opts;
};
struct pcp_codec_cfg {
	uint8_t port_reservation_code;
}; /* 0 means PCP_PORT_RESERVATION_DEFAULT; cfg may be NULL */

/*
 * Encodes requests and responses (fake servers in tests encode responses). Fields that the message kind does
 * not carry are ignored (result/epoch of a request, client_addr of a response, the MAP/PEER payload of an
 * ANNOUNCE, the peer of a MAP). Options go out in a fixed order: THIRD_PARTY, PREFER_FAILURE, FILTERs,
 * DESCRIPTION, PREFIX64s, PORT_SET, PORT_RESERVATION. -EINVAL on a rule violation: version != 2, unknown
 * opcode, an option not valid for the opcode (THIRD_PARTY, DESCRIPTION, PREFIX64: MAP/PEER; PREFER_FAILURE,
 * FILTER, PORT_SET, PORT_RESERVATION: MAP only; ANNOUNCE: none), a count over its PCP_MAX_*, FILTER prefix > 128
 * (IPv4-mapped peer: 0 or 96..128), PREFIX64 length not 4-8/12 or IPv4 prefix > 32 bits, DESCRIPTION not UTF-8
 * or holding a NUL, MAP request with protocol 0 and internal port != 0, PEER request or success response with
 * protocol, internal port or remote peer port 0, more than PCP_MAX_MSG bytes, a cfg code that collides with a
 * known option. -ENOSPC if cap is too small. *ret_len untouched on failure.
 */
int pcp_encode(const struct pcp_msg *m, const struct pcp_codec_cfg *cfg, uint8_t *buf, size_t cap,
	       size_t *ret_len);
/*
 * Full structural decode of a version-2 message (request or response) with opcode ANNOUNCE, MAP or PEER.
 * Decoded messages obey every encode rule above. -EBADMSG on malformed input,
 * -EPROTONOSUPPORT when the message is otherwise well-formed but carries an unknown mandatory (<128) option,
 * -EINVAL on bad arguments (including a cfg whose port_reservation_code collides with a known option).
 * Everything decode accepts, encode accepts. *ret untouched on failure.
 */
int pcp_decode(const uint8_t *buf, size_t len, const struct pcp_codec_cfg *cfg, struct pcp_msg *ret);
/*
 * Addition: true when a and b encode to the same message (fields the kind of message does not carry, unused
 * array slots, bytes past description_len and n_unknown_optional are ignored).
 */
bool pcp_msg_equal(const struct pcp_msg *a, const struct pcp_msg *b);

enum pcp_verdict {
	PCP_V_ACCEPT = 0,
	PCP_V_NATPMP_SERVER,
	PCP_V_UNSUPP_VERSION,
	PCP_V_DROP_SHORT,
	PCP_V_DROP_LONG,
	PCP_V_DROP_ALIGN,
	PCP_V_DROP_NOT_RESPONSE,
	PCP_V_DROP_VERSION,
	PCP_V_DROP_OPCODE,
	PCP_V_DROP_MALFORMED,
	PCP_V_DROP_NONCE,
	PCP_V_DROP_MISMATCH,
	PCP_V_DROP_BAD_PORT,
	PCP_V__MAX
};
const char *pcp_verdict_name(enum pcp_verdict v);
struct pcp_validate_out {
	struct pcp_msg msg;
	uint8_t server_version;
};
/*
 * Classifies a datagram received from the server for the outstanding request req (RFC 6887 8.3 / doc/PROTOCOLS.md
 * 1.2). ret (may be NULL) is written only for ACCEPT, NATPMP_SERVER (version 0, opcode, result 1, epoch =
 * the NAT-PMP SSSoE) and UNSUPP_VERSION (header fields present in the reply; server_version = byte 0).
 */
enum pcp_verdict pcp_validate_response(const struct pcp_msg *req, const uint8_t *buf, size_t len,
				       const struct pcp_codec_cfg *cfg, struct pcp_validate_out *ret);

enum pcp_err_class { PCP_ERR_NONE = 0, PCP_ERR_SHORT, PCP_ERR_LONG };
enum pcp_client_action {
	PCP_ACT_USE = 0,
	PCP_ACT_NEGOTIATE_VERSION,
	PCP_ACT_FALLBACK,
	PCP_ACT_FAIL,
	PCP_ACT_DROP_OPCODE,
	PCP_ACT_RETRY_WITHOUT_OPTION,
	PCP_ACT_RETRY_LATER,
	PCP_ACT_RETRY_OTHER_SUGGESTION,
	PCP_ACT_FIX_CLIENT_ADDR,
	PCP_ACT_FEWER_FILTERS
};
struct pcp_result_info {
	uint8_t code;
	const char *name;
	enum pcp_err_class cls;
	enum pcp_client_action action;
	uint32_t default_hold_s;
	const char *advice;
};
/* The entry of code; unknown codes get an "UNKNOWN" fatal long-class entry (with their own code number). */
struct pcp_result_info pcp_result_info(uint8_t code);
const char *pcp_result_name(uint8_t code);
/* Server lifetime capped at 86400; if 0, the default: 30 s short, 1800 s long (0 for SUCCESS). */
uint32_t pcp_error_hold(uint8_t code, uint32_t lifetime_from_server);

#endif
