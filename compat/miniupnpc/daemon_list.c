/* SPDX-License-Identifier: MIT */
/*
 * What pcpmapd holds for this user, for the listings: its control protocol's LIST and DELETE (doc/IPC.md),
 * spoken on a connection of their own. pcpmap's public API has no call that lists the daemon's table, and the
 * compat library uses nothing but that API; the few bytes of LIST are simpler than a new public call. The
 * daemon shows a uid its own mappings (root: everyone's; only this uid's are kept).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon_list.h"

#define IPC_VERSION     1
#define IPC_LIST        3
#define IPC_DELETE      2
#define IPC_ERROR       128
#define IPC_OK          129
#define IPC_MAPPING     130
#define A_ID            1
#define A_KIND          2
#define A_IP_PROTO      3
#define A_INTERNAL_PORT 4
#define A_FAMILY        5
#define A_THIRD_PARTY   10
#define A_DESCRIPTION   12
#define A_STATE         21
#define A_INTERNAL_ADDR 24
#define A_EXTERNAL_PORT 26
#define A_EXPIRES_IN    29
#define A_OWNER_UID     35
#define A_PERSISTENT    19
#define IPC_MAX         4096
#define IPC_TIMEOUT_MS  2000

static uint32_t get_be(const uint8_t *p, size_t n)
{
	uint32_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be(uint8_t *p, uint32_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static int connect_daemon(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(s);
		return r;
	}
	return s;
}

/* One request with its attributes (already encoded), sequence number seq. */
static int send_request(int s, uint8_t type, uint32_t seq, const uint8_t *attrs, size_t alen)
{
	uint8_t m[64];
	if (alen > sizeof(m) - 12)
		return -EINVAL;
	m[0] = IPC_VERSION;
	m[1] = type;
	put_be(m + 2, 0, 2);
	put_be(m + 4, seq, 4);
	put_be(m + 8, (uint32_t)alen, 4);
	memcpy(m + 12, attrs, alen);
	return send(s, m, 12 + alen, MSG_NOSIGNAL) == (ssize_t)(12 + alen) ? 0 : -errno;
}

/* The next reply to seq (events, sequence number 0, are skipped): its type and length, or -errno. */
static int next_reply(int s, uint32_t seq, uint8_t *buf, size_t *ret_len)
{
	for (;;) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		int r = poll(&p, 1, IPC_TIMEOUT_MS);
		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		ssize_t n = recv(s, buf, IPC_MAX, 0);
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		if (n < 12 || buf[0] != IPC_VERSION || get_be(buf + 8, 4) != (uint32_t)n - 12)
			return -EBADMSG;
		if (get_be(buf + 4, 4) == seq) {
			*ret_len = (size_t)n;
			return buf[1];
		}
		if (get_be(buf + 4, 4) == 0 && buf[1] == IPC_ERROR)
			return -ECONNREFUSED; /* refused at connect time */
	}
}

static void copy_str(char *dst, size_t size, const uint8_t *v, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* A MAPPING message to a row; false for what a listing of IPv4 port mappings does not show. */
static bool parse_mapping(const uint8_t *m, size_t len, struct upc_daemon_row *r)
{
	uint32_t owner = UINT32_MAX;
	uint8_t kind = 1, family = 4;
	memset(r, 0, sizeof(*r));
	for (size_t o = 12; o + 4 <= len;) {
		uint16_t type = (uint16_t)(get_be(m + o, 2) & 0x7fff);
		size_t n = get_be(m + o + 2, 2);
		const uint8_t *v = m + o + 4;
		if (o + 4 + n > len)
			return false;
		o += 4 + n;
		switch (type) {
		case A_ID:
			r->id = n == 4 ? get_be(v, 4) : 0;
			break;
		case A_KIND:
			kind = n == 1 ? v[0] : 0;
			break;
		case A_FAMILY:
			family = n == 1 ? v[0] : 0;
			break;
		case A_IP_PROTO:
			r->ip_proto = n == 1 ? v[0] : 0;
			break;
		case A_INTERNAL_PORT:
			r->int_port = n == 2 ? (uint16_t)get_be(v, 2) : 0;
			break;
		case A_EXTERNAL_PORT:
			r->ext_port = n == 2 ? (uint16_t)get_be(v, 2) : 0;
			break;
		case A_STATE:
			r->state = n == 1 ? v[0] : 0;
			break;
		case A_EXPIRES_IN:
			r->expires_in = n == 4 ? get_be(v, 4) : 0;
			break;
		case A_OWNER_UID:
			owner = n == 4 ? get_be(v, 4) : UINT32_MAX;
			break;
		case A_PERSISTENT:
			r->persistent = true;
			break;
		case A_INTERNAL_ADDR:
			if (!r->third_party) /* a THIRD_PARTY already named the internal client */
				copy_str(r->int_addr, sizeof(r->int_addr), v, n);
			break;
		case A_THIRD_PARTY:
			copy_str(r->int_addr, sizeof(r->int_addr), v, n);
			r->third_party = true;
			break;
		case A_DESCRIPTION:
			copy_str(r->desc, sizeof(r->desc), v, n);
			break;
		default:
			break;
		}
	}
	return r->id && kind == 1 && family == 4 && (r->ip_proto == 6 || r->ip_proto == 17) && r->ext_port &&
	       owner == (uint32_t)getuid();
}

int pmc_upc_daemon_list(const char *path, struct upc_daemon_row **ret, size_t *ret_n)
{
	uint8_t *buf = malloc(IPC_MAX);
	if (!buf)
		return -ENOMEM;
	int s = connect_daemon(path);
	if (s < 0) {
		free(buf);
		return s;
	}
	struct upc_daemon_row *v = NULL;
	size_t n = 0, cap = 0, len;
	int r = send_request(s, IPC_LIST, 1, NULL, 0);
	while (r == 0) {
		int t = next_reply(s, 1, buf, &len);
		if (t < 0) {
			r = t;
		} else if (t == IPC_OK) {
			break;
		} else if (t == IPC_ERROR) {
			r = -EPROTO;
		} else if (t == IPC_MAPPING) {
			struct upc_daemon_row row;
			if (!parse_mapping(buf, len, &row))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 8;
				struct upc_daemon_row *nv = realloc(v, nc * sizeof(*nv));
				if (!nv) {
					r = -ENOMEM;
					break;
				}
				v = nv;
				cap = nc;
			}
			v[n++] = row;
		}
	}
	close(s);
	free(buf);
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int pmc_upc_daemon_delete(const char *path, uint32_t id)
{
	uint8_t attr[8], buf[IPC_MAX];
	size_t len;
	int s = connect_daemon(path);
	if (s < 0)
		return s;
	put_be(attr, A_ID, 2);
	put_be(attr + 2, 4, 2);
	put_be(attr + 4, id, 4);
	int r = send_request(s, IPC_DELETE, 1, attr, sizeof(attr));
	if (r == 0) {
		int t = next_reply(s, 1, buf, &len);
		r = t == IPC_OK ? 0 : t < 0 ? t : -EPROTO;
	}
	close(s);
	return r;
}
