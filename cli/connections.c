// SPDX-License-Identifier: BSD-2-Clause
/* `pcpmap connections`: the listing and printing layer over cli/sockdiag.c. */
#include "connections.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sockdiag.h"

int cli_connections_list(struct cli_conn **ret, size_t *ret_n)
{
	struct pm_net_conn *pc;
	struct cli_conn *out = NULL;
	size_t n;
	int r;

	if (!ret || !ret_n)
		return -EINVAL;
	r = pm_net_connections(&pc, &n);
	if (r < 0)
		return r;
	if (n) {
		out = calloc(n, sizeof(*out));
		if (!out) {
			free(pc);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		out[i].family = pc[i].family;
		out[i].proto = pc[i].proto;
		memcpy(out[i].local, pc[i].local, sizeof(out[i].local));
		out[i].lport = pc[i].lport;
		memcpy(out[i].remote, pc[i].remote, sizeof(out[i].remote));
		out[i].rport = pc[i].rport;
		out[i].uid = pc[i].uid;
		out[i].state = pc[i].state;
		out[i].inode = pc[i].inode;
	}
	free(pc);
	*ret = out;
	*ret_n = n;
	return 0;
}

size_t cli_connections_filter(struct cli_conn *c, size_t n, uint8_t proto, int family)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if ((proto && c[i].proto != proto) || (family && c[i].family != family))
			continue;
		if (k != i)
			c[k] = c[i];
		k++;
	}
	return k;
}

int cli_conn_endpoint(int family, const char *addr, uint16_t port, char *buf, size_t len)
{
	int w = snprintf(buf, len, family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, (unsigned)port);

	if (w < 0 || (size_t)w >= len) {
		if (len)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return w;
}

static const char *proto_name(uint8_t p)
{
	return p == IPPROTO_TCP ? "tcp" : p == IPPROTO_UDP ? "udp" : "?";
}

/* Addresses are inet_ntop output and states are our own names: nothing to escape. */
static void print_json(FILE *f, size_t idx, const struct cli_conn *c)
{
	fprintf(f,
		"{\"event\":\"connection\",\"index\":%zu,\"transport\":\"%s\",\"family\":\"%s\","
		"\"local\":{\"address\":\"%s\",\"port\":%u},\"remote\":{\"address\":\"%s\",\"port\":%u},"
		"\"state\":\"%s\",\"uid\":%" PRIu32 ",\"inode\":%" PRIu32 "}\n",
		idx, proto_name(c->proto), c->family == AF_INET6 ? "ipv6" : "ipv4", c->local,
		(unsigned)c->lport, c->remote, (unsigned)c->rport, c->state, c->uid, c->inode);
}

void cli_connections_print(FILE *f, const struct cli_conn *c, size_t n, bool json)
{
	/* "[" + 45 + "]:" + 5 + NUL */
	char l[56], r[56];
	int wl = 0, wr = 0, wn = 1, wu = 1;

	if (json) {
		for (size_t i = 0; i < n; i++)
			print_json(f, i + 1, &c[i]);
		fflush(f);
		return;
	}
	if (n == 0) {
		fprintf(f, "no connections\n");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int a = cli_conn_endpoint(c[i].family, c[i].local, c[i].lport, l, sizeof(l));
		int b = cli_conn_endpoint(c[i].family, c[i].remote, c[i].rport, r, sizeof(r));

		int u = snprintf(NULL, 0, "%" PRIu32, c[i].uid);

		wl = a > wl ? a : wl;
		wr = b > wr ? b : wr;
		wu = u > wu ? u : wu;
	}
	for (size_t m = n; m >= 10; m /= 10)
		wn++;
	for (size_t i = 0; i < n; i++) {
		cli_conn_endpoint(c[i].family, c[i].local, c[i].lport, l, sizeof(l));
		cli_conn_endpoint(c[i].family, c[i].remote, c[i].rport, r, sizeof(r));
		fprintf(f, "%*zu. %-*s  %-*s  %s %-11s  uid %-*" PRIu32 "  inode %" PRIu32 "\n", wn, i + 1,
			wl, l, wr, r, proto_name(c[i].proto), c[i].state, wu, c[i].uid, c[i].inode);
	}
	fflush(f);
}
