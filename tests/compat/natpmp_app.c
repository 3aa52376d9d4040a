/* SPDX-License-Identifier: MIT */
/*
 * A small libnatpmp application, written against the libnatpmp API only: the same source is built with the
 * real libnatpmp (cc natpmp_app.c -lnatpmp) and with pcpmap's (pkg-config pcpmap-natpmp), see build-both.sh.
 *
 *   natpmp_app [-g GATEWAY] map tcp|udp PRIVATE PUBLIC LIFETIME [STOPFILE]
 *       prints the public address, maps PRIVATE; with STOPFILE keeps the mapping (asking again every few
 *       seconds, as libnatpmp applications renew) until STOPFILE exists, then deletes it.
 *   natpmp_app [-g GATEWAY] hold tcp|udp PRIVATE PUBLIC LIFETIME STOPFILE
 *       the same without asking again: the library alone keeps the mapping until STOPFILE exists; the
 *       mapping is left on the gateway (as a BitTorrent client between its rare checks).
 *   natpmp_app [-g GATEWAY] unmap tcp|udp PRIVATE
 *       deletes a mapping (lifetime 0), e.g. one an earlier run made; PRIVATE 0 deletes every mapping.
 *   natpmp_app [-g GATEWAY] address
 *       prints the public address only.
 * Exit status: 0 success, 1 usage or local error, 2 the gateway refused or did not answer.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define ENABLE_STRNATPMPERR
#include <natpmp.h>

#define RENEW_EVERY_S 2

/* The classic loop: wait on the socket for the library's timeout, then let it read or retransmit. */
static int wait_response(natpmp_t *n, natpmpresp_t *resp, int type, uint16_t privateport)
{
	int r;
	for (;;) {
		fd_set fds;
		struct timeval timeout;
		FD_ZERO(&fds);
		FD_SET(n->s, &fds);
		r = getnatpmprequesttimeout(n, &timeout);
		if (r < 0) {
			fprintf(stderr, "getnatpmprequesttimeout: %d (%s)\n", r, strnatpmperr(r));
			return r;
		}
		/* libnatpmp can hand back a negative timeout once the retry time has passed. */
		if (timeout.tv_sec < 0 || timeout.tv_usec < 0)
			timeout.tv_sec = timeout.tv_usec = 0;
		if (select(FD_SETSIZE, &fds, NULL, NULL, &timeout) < 0) {
			perror("select");
			return NATPMP_ERR_RECVFROM;
		}
		r = readnatpmpresponseorretry(n, resp);
		if (r == NATPMP_TRYAGAIN)
			continue;
		if (r < 0)
			return r;
		/* Older libnatpmp does not match answers to requests: do it here. */
		if (resp->type != type || (type != NATPMP_RESPTYPE_PUBLICADDRESS &&
					   resp->pnu.newportmapping.privateport != privateport))
			continue;
		return 0;
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: natpmp_app [-g GATEWAY] map tcp|udp PRIVATE PUBLIC LIFETIME [STOPFILE]\n"
			"       natpmp_app [-g GATEWAY] hold tcp|udp PRIVATE PUBLIC LIFETIME STOPFILE\n"
			"       natpmp_app [-g GATEWAY] unmap tcp|udp PRIVATE\n"
			"       natpmp_app [-g GATEWAY] address\n");
	return 1;
}

int main(int argc, char **argv)
{
	natpmp_t natpmp;
	natpmpresp_t response;
	int forcegw = 0;
	in_addr_t gateway = 0;
	int r;

	if (argc > 2 && !strcmp(argv[1], "-g")) {
		forcegw = 1;
		gateway = inet_addr(argv[2]);
		argc -= 2;
		argv += 2;
	}
	if (argc == 2 && !strcmp(argv[1], "address")) {
		r = initnatpmp(&natpmp, forcegw, gateway);
		if (r < 0) {
			fprintf(stderr, "initnatpmp: %d (%s)\n", r, strnatpmperr(r));
			return 1;
		}
		r = sendpublicaddressrequest(&natpmp);
		if (r >= 0)
			r = wait_response(&natpmp, &response, NATPMP_RESPTYPE_PUBLICADDRESS, 0);
		if (r < 0) {
			printf("public address failed %d (%s)\n", r, strnatpmperr(r));
			closenatpmp(&natpmp);
			return 2;
		}
		printf("public address %s epoch %u\n", inet_ntoa(response.pnu.publicaddress.addr),
		       response.epoch);
		closenatpmp(&natpmp);
		return 0;
	}
	if (argc < 4)
		return usage();
	const char *cmd = argv[1];
	bool hold = !strcmp(cmd, "hold");
	if (hold)
		cmd = "map";
	int protocol;
	if (!strcmp(argv[2], "tcp"))
		protocol = NATPMP_PROTOCOL_TCP;
	else if (!strcmp(argv[2], "udp"))
		protocol = NATPMP_PROTOCOL_UDP;
	else
		return usage();
	const char *pname = protocol == NATPMP_PROTOCOL_TCP ? "TCP" : "UDP";
	uint16_t privateport = (uint16_t)atoi(argv[3]);
	int type =
	    protocol == NATPMP_PROTOCOL_TCP ? NATPMP_RESPTYPE_TCPPORTMAPPING : NATPMP_RESPTYPE_UDPPORTMAPPING;

	r = initnatpmp(&natpmp, forcegw, gateway);
	if (r < 0) {
		fprintf(stderr, "initnatpmp: %d (%s)\n", r, strnatpmperr(r));
		return 1;
	}
	printf("gateway %s\n", inet_ntoa(*((struct in_addr *)&natpmp.gateway)));

	if (!strcmp(cmd, "unmap")) {
		r = sendnewportmappingrequest(&natpmp, protocol, privateport, 0, 0);
		if (r < 0) {
			fprintf(stderr, "sendnewportmappingrequest: %d (%s)\n", r, strnatpmperr(r));
			return 1;
		}
		r = wait_response(&natpmp, &response, type, privateport);
		if (r < 0) {
			printf("unmap failed %d (%s) resultcode %u\n", r, strnatpmperr(r),
			       response.resultcode);
			closenatpmp(&natpmp);
			return 2;
		}
		printf("deleted %s %u\n", pname, privateport);
		closenatpmp(&natpmp);
		return 0;
	}
	if (strcmp(cmd, "map") || argc < 6)
		return usage();
	uint16_t publicport = (uint16_t)atoi(argv[4]);
	uint32_t lifetime = (uint32_t)strtoul(argv[5], NULL, 10);
	const char *stopfile = argc > 6 ? argv[6] : NULL;

	r = sendpublicaddressrequest(&natpmp);
	if (r < 0) {
		fprintf(stderr, "sendpublicaddressrequest: %d (%s)\n", r, strnatpmperr(r));
		return 1;
	}
	r = wait_response(&natpmp, &response, NATPMP_RESPTYPE_PUBLICADDRESS, 0);
	if (r < 0) {
		printf("public address failed %d (%s)\n", r, strnatpmperr(r));
		closenatpmp(&natpmp);
		return 2;
	}
	printf("public address %s epoch %u\n", inet_ntoa(response.pnu.publicaddress.addr), response.epoch);

	r = sendnewportmappingrequest(&natpmp, protocol, privateport, publicport, lifetime);
	if (r < 0) {
		fprintf(stderr, "sendnewportmappingrequest: %d (%s)\n", r, strnatpmperr(r));
		return 1;
	}
	r = wait_response(&natpmp, &response, type, privateport);
	if (r < 0) {
		printf("map failed %d (%s) resultcode %u\n", r, strnatpmperr(r), response.resultcode);
		closenatpmp(&natpmp);
		return 2;
	}
	uint16_t mapped = response.pnu.newportmapping.mappedpublicport;
	printf("mapped %s %u -> public %u lifetime %u\n", pname, privateport, mapped,
	       response.pnu.newportmapping.lifetime);
	fflush(stdout);

	if (stopfile && hold) {
		/* No call into the library until told to stop: renewals are the library's business. */
		while (access(stopfile, F_OK) != 0)
			usleep(100000);
		printf("stopped, mapping left on the gateway\n");
	} else if (stopfile) {
		/* Keep it: ask again now and then (the gateway renews), until told to stop. */
		time_t last = time(NULL);
		while (access(stopfile, F_OK) != 0) {
			usleep(100000);
			if (time(NULL) - last < RENEW_EVERY_S)
				continue;
			last = time(NULL);
			r = sendnewportmappingrequest(&natpmp, protocol, privateport, mapped, lifetime);
			if (r >= 0)
				r = wait_response(&natpmp, &response, type, privateport);
			if (r < 0) {
				printf("renewal failed %d (%s)\n", r, strnatpmperr(r));
				closenatpmp(&natpmp);
				return 2;
			}
			printf("renewed %s %u -> public %u lifetime %u\n", pname, privateport,
			       response.pnu.newportmapping.mappedpublicport,
			       response.pnu.newportmapping.lifetime);
			fflush(stdout);
		}
		r = sendnewportmappingrequest(&natpmp, protocol, privateport, 0, 0);
		if (r >= 0)
			r = wait_response(&natpmp, &response, type, privateport);
		if (r < 0) {
			printf("delete failed %d (%s)\n", r, strnatpmperr(r));
			closenatpmp(&natpmp);
			return 2;
		}
		printf("deleted %s %u\n", pname, privateport);
	}
	closenatpmp(&natpmp);
	return 0;
}
