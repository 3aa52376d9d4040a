/*
 * PCP result codes (RFC 6887 7.4) with the client's reaction to each (doc/PROTOCOLS.md 1.3). The 14 known
 * codes have a table entry each; every other code gets the same fatal long-class entry with its own number.
 * (A full 256-entry table of pointers cost 12 KiB of relocations and 10 KiB of relocated data that every
 * process loading the library kept resident.)
 */
#include "wire/pcp_wire.h"

#define KNOWN(c, n, k, a, h, adv) [c] = { (c), (n), (k), (a), (h), (adv) }

static const struct pcp_result_info results[] = {
	KNOWN(PCP_RES_SUCCESS, "SUCCESS", PCP_ERR_NONE, PCP_ACT_USE, 0,
	      "use the assigned port, address and lifetime; renew in time"),
	KNOWN(PCP_RES_UNSUPP_VERSION, "UNSUPP_VERSION", PCP_ERR_LONG, PCP_ACT_NEGOTIATE_VERSION,
	      PCP_HOLD_LONG_S, "server speaks another version: negotiate (version 0 means NAT-PMP)"),
	KNOWN(PCP_RES_NOT_AUTHORIZED, "NOT_AUTHORIZED", PCP_ERR_LONG, PCP_ACT_FALLBACK, PCP_HOLD_LONG_S,
	      "denied by policy or nonce mismatch: fall back to the next protocol"),
	KNOWN(PCP_RES_MALFORMED_REQUEST, "MALFORMED_REQUEST", PCP_ERR_LONG, PCP_ACT_FAIL, PCP_HOLD_LONG_S,
	      "the server could not parse our request: client bug, stop"),
	KNOWN(PCP_RES_UNSUPP_OPCODE, "UNSUPP_OPCODE", PCP_ERR_LONG, PCP_ACT_DROP_OPCODE, PCP_HOLD_LONG_S,
	      "server lacks this opcode: stop using it with this server"),
	KNOWN(PCP_RES_UNSUPP_OPTION, "UNSUPP_OPTION", PCP_ERR_LONG, PCP_ACT_RETRY_WITHOUT_OPTION,
	      PCP_HOLD_LONG_S, "a mandatory option is unsupported: resend without it if acceptable"),
	KNOWN(PCP_RES_MALFORMED_OPTION, "MALFORMED_OPTION", PCP_ERR_LONG, PCP_ACT_FAIL, PCP_HOLD_LONG_S,
	      "the server rejected an option as malformed: client bug, stop"),
	KNOWN(PCP_RES_NETWORK_FAILURE, "NETWORK_FAILURE", PCP_ERR_SHORT, PCP_ACT_RETRY_LATER,
	      PCP_HOLD_SHORT_S, "gateway has no external address yet: retry after the hold time"),
	KNOWN(PCP_RES_NO_RESOURCES, "NO_RESOURCES", PCP_ERR_SHORT, PCP_ACT_RETRY_LATER, PCP_HOLD_SHORT_S,
	      "server out of resources: retry after the hold time"),
	KNOWN(PCP_RES_UNSUPP_PROTOCOL, "UNSUPP_PROTOCOL", PCP_ERR_LONG, PCP_ACT_FAIL, PCP_HOLD_LONG_S,
	      "transport protocol not supported by the server"),
	KNOWN(PCP_RES_USER_EX_QUOTA, "USER_EX_QUOTA", PCP_ERR_SHORT, PCP_ACT_RETRY_LATER, PCP_HOLD_SHORT_S,
	      "per-subscriber quota exceeded: free mappings or retry later"),
	/* RFC 6887 gives this one no lifetime class; the port may free up, so treat it as short. */
	KNOWN(PCP_RES_CANNOT_PROVIDE_EXTERNAL, "CANNOT_PROVIDE_EXTERNAL", PCP_ERR_SHORT,
	      PCP_ACT_RETRY_OTHER_SUGGESTION, PCP_HOLD_SHORT_S,
	      "suggested port/address unavailable: suggest another or drop PREFER_FAILURE"),
	KNOWN(PCP_RES_ADDRESS_MISMATCH, "ADDRESS_MISMATCH", PCP_ERR_LONG, PCP_ACT_FIX_CLIENT_ADDR,
	      PCP_HOLD_LONG_S,
	      "client address field differs from the source: fix it, else a NAT is in the way"),
	KNOWN(PCP_RES_EXCESSIVE_REMOTE_PEERS, "EXCESSIVE_REMOTE_PEERS", PCP_ERR_LONG, PCP_ACT_FEWER_FILTERS,
	      PCP_HOLD_LONG_S, "too many FILTER options: use fewer"),
};

static const struct pcp_result_info unknown = { 0,
						"UNKNOWN",
						PCP_ERR_LONG,
						PCP_ACT_FAIL,
						PCP_HOLD_LONG_S,
						"unknown result code: fatal for this request" };

static const struct pcp_result_info *entry(uint8_t code)
{
	return code < sizeof(results) / sizeof(results[0]) ? &results[code] : &unknown;
}

struct pcp_result_info pcp_result_info(uint8_t code)
{
	struct pcp_result_info ri = *entry(code);
	ri.code = code;
	return ri;
}

const char *pcp_result_name(uint8_t code)
{
	return entry(code)->name;
}

uint32_t pcp_error_hold(uint8_t code, uint32_t lifetime_from_server)
{
	/* RFC 6887 8.3: honour the server's hold, capped per 15; miniupnpd sends 0 for long errors. */
	if (lifetime_from_server)
		return lifetime_from_server > PCP_HOLD_MAX_S ? PCP_HOLD_MAX_S : lifetime_from_server;
	return entry(code)->default_hold_s;
}
