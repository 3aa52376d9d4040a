/* SPDX-License-Identifier: MIT */
/*
 * pcpmap's libnatpmp-compatible API (the interface of libnatpmp 20150609 as Debian 12 ships it).
 *
 * Build an unchanged libnatpmp application against it with
 *     cc app.c $(pkg-config --cflags --libs pcpmap-natpmp)
 * and its requests go out as PCP (RFC 6887) first, falling back to NAT-PMP through pcpmap, which also keeps
 * the mappings alive while the application keeps calling these functions. Differences: doc/COMPAT.md.
 *
 * Every function below is linked under the name pcpmap_compat_<name> (an asm label), so libpcpmap-natpmp
 * installs beside the real libnatpmp and stands in for nothing: applications opt in by being rebuilt. The same
 * sources built with PCPMAP_COMPAT_REAL_NAMES=1 are the drop-in libnatpmp.so.1 for programs that are not
 * rebuilt (pcpmap-run; doc/COMPAT.md, "Binary drop-in").
 */
#ifndef PCPMAP_COMPAT_NATPMP_H
#define PCPMAP_COMPAT_NATPMP_H

/** Marks this header as pcpmap's; the value is the version of the emulated libnatpmp. */
#define PCPMAP_COMPAT_NATPMP 20150609

/** UDP port of NAT-PMP and PCP servers (RFC 6886, RFC 6887). */
#define NATPMP_PORT (5351)

#include <stdint.h>
#include <time.h>
#include <sys/time.h>
#include <netinet/in.h>

#if !defined(__GNUC__)
#error "pcpmap's natpmp.h needs GCC or Clang (asm labels)"
#endif
/* PCPMAP_COMPAT_REAL_NAMES=1 builds the drop-in libnatpmp.so.1, whose functions carry libnatpmp's own names
 * (doc/COMPAT.md, "Binary drop-in"); applications never define it. */
#if defined(PCPMAP_COMPAT_REAL_NAMES) && PCPMAP_COMPAT_REAL_NAMES
#define PCPMAP_COMPAT_NATPMP_LINK(name)
#else
#define PCPMAP_COMPAT_NATPMP_LINK(name) __asm__("pcpmap_compat_" #name)
#endif

/**
 * One NAT-PMP "session". s is the descriptor to wait on for readability (select(), poll()); here it is an
 * epoll descriptor holding the pcpmap client's descriptor and the library's NAT-PMP socket. gateway is the IPv4 gateway in network byte order. The other members mirror
 * libnatpmp's bookkeeping of the pending request; applications only read them.
 */
typedef struct {
	int s;
	in_addr_t gateway;
	int has_pending_request;
	unsigned char pending_request[12];
	int pending_request_len;
	int try_number;
	struct timeval retry_time;
} natpmp_t;

/** A response. type says which member of pnu is valid. */
typedef struct {
	uint16_t type; /**< NATPMP_RESPTYPE_* */
	uint16_t
	    resultcode; /**< NAT-PMP result code (0 success; see doc/COMPAT.md for PCP-carried answers) */
	uint32_t epoch; /**< seconds since the server's state began */
	union {
		struct {
			struct in_addr addr; /**< external address, network byte order */
		} publicaddress;
		struct {
			uint16_t privateport;
			uint16_t mappedpublicport;
			uint32_t lifetime; /**< granted lifetime, seconds */
		} newportmapping;
	} pnu;
} natpmpresp_t;

/* Values of natpmpresp_t::type. */
#define NATPMP_RESPTYPE_PUBLICADDRESS  (0)
#define NATPMP_RESPTYPE_UDPPORTMAPPING (1)
#define NATPMP_RESPTYPE_TCPPORTMAPPING (2)

/* protocol argument of sendnewportmappingrequest(). */
#define NATPMP_PROTOCOL_UDP (1)
#define NATPMP_PROTOCOL_TCP (2)

/* Return codes. */
#define NATPMP_ERR_INVALIDARGS        (-1)   /* a NULL or out-of-range argument */
#define NATPMP_ERR_SOCKETERROR        (-2)   /* the client could not be created */
#define NATPMP_ERR_CANNOTGETGATEWAY   (-3)   /* no IPv4 default gateway */
#define NATPMP_ERR_CLOSEERR           (-4)   /* closenatpmp() of something not open */
#define NATPMP_ERR_RECVFROM           (-5)   /* receiving failed */
#define NATPMP_ERR_NOPENDINGREQ       (-6)   /* nothing was asked */
#define NATPMP_ERR_NOGATEWAYSUPPORT   (-7)   /* neither PCP nor NAT-PMP answers at the gateway */
#define NATPMP_ERR_CONNECTERR         (-8)   /* connecting the socket failed */
#define NATPMP_ERR_WRONGPACKETSOURCE  (-9)   /* a packet came from elsewhere than the gateway */
#define NATPMP_ERR_SENDERR            (-10)  /* sending failed (no route to the gateway) */
#define NATPMP_ERR_FCNTLERROR         (-11)  /* fcntl() failed */
#define NATPMP_ERR_GETTIMEOFDAYERR    (-12)  /* gettimeofday() failed */
#define NATPMP_ERR_UNSUPPORTEDVERSION (-14)  /* the server does not speak this version */
#define NATPMP_ERR_UNSUPPORTEDOPCODE  (-15)  /* the server does not know this request */
#define NATPMP_ERR_UNDEFINEDERROR     (-49)  /* the server refused for a reason NAT-PMP has no code for */
#define NATPMP_ERR_NOTAUTHORIZED      (-51)  /* the server refused: not allowed */
#define NATPMP_ERR_NETWORKFAILURE     (-52)  /* the server has no working external network */
#define NATPMP_ERR_OUTOFRESOURCES     (-53)  /* the server has no mapping or port left */
#define NATPMP_TRYAGAIN               (-100) /* no answer yet: wait on s and call again */

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Opens a session. forcegw = 1 uses forcedgw (IPv4, network byte order) as the gateway instead of the default
 * route's. Returns 0, NATPMP_ERR_INVALIDARGS, NATPMP_ERR_CANNOTGETGATEWAY or NATPMP_ERR_SOCKETERROR.
 */
int initnatpmp(natpmp_t *p, int forcegw, in_addr_t forcedgw) PCPMAP_COMPAT_NATPMP_LINK(initnatpmp);

/**
 * Closes a session. Mappings stay on the gateway (as with libnatpmp) and are renewed by the session's thread
 * until the lifetime asked for ends, while the process runs; delete them first with lifetime 0 if they must go. Returns 0, NATPMP_ERR_INVALIDARGS or NATPMP_ERR_CLOSEERR.
 */
int closenatpmp(natpmp_t *p) PCPMAP_COMPAT_NATPMP_LINK(closenatpmp);

/**
 * Asks for the external address: from a mapping the session holds, else NAT-PMP's address request, else (PCP
 * only) a short PCP mapping deleted before the answer. Nothing stays on the gateway. Returns 2 (a request is
 * pending) or a negative NATPMP_ERR_*.
 */
int sendpublicaddressrequest(natpmp_t *p) PCPMAP_COMPAT_NATPMP_LINK(sendpublicaddressrequest);

/**
 * Asks for a mapping of privateport (protocol NATPMP_PROTOCOL_TCP or _UDP), suggesting publicport, for
 * lifetime seconds, renewed on the application's behalf until then (the gateway may grant less). lifetime 0
 * deletes the mapping (over NAT-PMP when PCP refuses the nonce of a mapping made over NAT-PMP); lifetime 0
 * with both ports 0 deletes every mapping of that protocol this session made and sends NAT-PMP's request for
 * the host's others (NATPMP_ERR_UNSUPPORTEDOPCODE when neither deleted anything: PCP cannot express it). Returns 12 (a request is pending) or a negative NATPMP_ERR_*.
 */
int sendnewportmappingrequest(natpmp_t *p, int protocol, uint16_t privateport, uint16_t publicport,
			      uint32_t lifetime) PCPMAP_COMPAT_NATPMP_LINK(sendnewportmappingrequest);

/**
 * How long to wait on p->s before calling readnatpmpresponseorretry(): pcpmap's next deadline, never negative.
 * Returns 0, NATPMP_ERR_INVALIDARGS or NATPMP_ERR_NOPENDINGREQ.
 */
int getnatpmprequesttimeout(natpmp_t *p, struct timeval *timeout)
    PCPMAP_COMPAT_NATPMP_LINK(getnatpmprequesttimeout);

/**
 * Runs pcpmap (answers, retransmissions, renewals of every mapping of the session) and reports the pending
 * request's answer: 0 with *response filled, NATPMP_TRYAGAIN while there is none yet, or a negative
 * NATPMP_ERR_* (response->resultcode and epoch are filled for refusals by the server).
 */
int readnatpmpresponseorretry(natpmp_t *p, natpmpresp_t *response)
    PCPMAP_COMPAT_NATPMP_LINK(readnatpmpresponseorretry);

#ifdef ENABLE_STRNATPMPERR
/** A short English description of a return code; never NULL. */
const char *strnatpmperr(int t) PCPMAP_COMPAT_NATPMP_LINK(strnatpmperr);
#endif

#ifdef __cplusplus
}
#endif

#endif
