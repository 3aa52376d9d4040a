/* SPDX-License-Identifier: MIT */
/*
 * One process holding Debian's libnatpmp.so.1 and pcpmap's drop-in libnatpmp.so.1 at once, either way round
 * (doc/COMPAT.md, "Binary drop-in"). Built twice from this file, against Debian's natpmp.h:
 *   linked with the real library, the drop-in dlopen()ed with RTLD_LOCAL (argument "both"),
 *   linked with the drop-in, the real library dlopen()ed with RTLD_LOCAL ("both"), or not at all ("private":
 *   only libpcpmap's own private load of the real library).
 * Each copy must answer for itself: the real one with NAT-PMP on the wire, the drop-in with PCP through
 * pcpmap, and the drop-in limited to NAT-PMP through pcpmap's NAT-PMP backend, which must reach the real
 * library (had the backend bound to the drop-in's same-named functions, pcpmap would call itself).
 *
 * The real libnatpmp always talks to port 5351, so the scripted server (fake_pcp.h) listens on 5351 of a
 * loopback address of its own.
 * Usage: dropin_coexist both|private REAL_LIB DROPIN_LIB
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#define ENABLE_STRNATPMPERR
#include <natpmp.h>

#pragma GCC diagnostic ignored "-Wunused-function" /* fake_pcp_start(): the server starts on 5351 here */
#include "fake_pcp.h"

#ifndef DROPIN_LINKED
#error "DROPIN_LINKED must say which library the program links: 1 the drop-in, 0 the real one"
#endif

struct np_api {
	const char *name;
	int (*init)(natpmp_t *, int, in_addr_t);
	int (*close)(natpmp_t *);
	int (*map)(natpmp_t *, int, uint16_t, uint16_t, uint32_t);
	int (*timeout)(natpmp_t *, struct timeval *);
	int (*read)(natpmp_t *, natpmpresp_t *);
};

static struct fake_pcp fake;
static char real_path[PATH_MAX], dropin_path[PATH_MAX];

#define CHECK(cond, ...)                                                 \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "dropin_coexist: " __VA_ARGS__); \
			fputc('\n', stderr);                             \
			exit(1);                                         \
		}                                                        \
	} while (0)

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	CHECK(p, "dlsym %s: %s", name, dlerror());
	return p;
}

static void api_from(struct np_api *a, const char *name, void *h)
{
	a->name = name;
	*(void **)&a->init = sym(h, "initnatpmp");
	*(void **)&a->close = sym(h, "closenatpmp");
	*(void **)&a->map = sym(h, "sendnewportmappingrequest");
	*(void **)&a->timeout = sym(h, "getnatpmprequesttimeout");
	*(void **)&a->read = sym(h, "readnatpmpresponseorretry");
}

/* The file initnatpmp was loaded from, resolved. */
static void file_of(int (*fn)(natpmp_t *, int, in_addr_t), char *ret)
{
	Dl_info info;
	const void *addr;
	memcpy(&addr, &fn, sizeof(addr)); /* POSIX: function and object pointers convert */
	CHECK(dladdr(addr, &info) && info.dli_fname, "dladdr found no object for %p", addr);
	CHECK(realpath(info.dli_fname, ret), "realpath %s: %s", info.dli_fname, strerror(errno));
}

/* How many loaded objects come from path (resolved). */
static int count_path;
static const char *count_target;
static int count_cb(struct dl_phdr_info *info, size_t size, void *ud)
{
	char p[PATH_MAX];
	(void)size;
	(void)ud;
	if (info->dlpi_name && info->dlpi_name[0] && realpath(info->dlpi_name, p) && !strcmp(p, count_target))
		count_path++;
	return 0;
}
static int loaded(const char *path)
{
	count_path = 0;
	count_target = path;
	dl_iterate_phdr(count_cb, NULL);
	return count_path;
}

/* A mapping of TCP port through api, as natpmpc does it: send, then select() and read until an answer. */
static void map_one(const struct np_api *a, in_addr_t gw, uint16_t port)
{
	natpmp_t p;
	natpmpresp_t resp;
	int r = a->init(&p, 1, gw);
	CHECK(r == 0, "%s: initnatpmp: %d", a->name, r);
	r = a->map(&p, NATPMP_PROTOCOL_TCP, port, port, 600);
	CHECK(r == 12, "%s: sendnewportmappingrequest: %d", a->name, r);
	do {
		fd_set fds;
		struct timeval tv;
		FD_ZERO(&fds);
		FD_SET(p.s, &fds);
		CHECK(a->timeout(&p, &tv) == 0, "%s: getnatpmprequesttimeout", a->name);
		select(p.s + 1, &fds, NULL, NULL, &tv);
		r = a->read(&p, &resp);
	} while (r == NATPMP_TRYAGAIN);
	CHECK(r == 0, "%s: readnatpmpresponseorretry: %d", a->name, r);
	CHECK(resp.type == NATPMP_RESPTYPE_TCPPORTMAPPING && resp.pnu.newportmapping.privateport == port &&
		  resp.pnu.newportmapping.mappedpublicport == port,
	      "%s: answer type %u port %u -> %u", a->name, resp.type, resp.pnu.newportmapping.privateport,
	      resp.pnu.newportmapping.mappedpublicport);
	a->close(&p);
}

/* Server on 127.53.x.y:5351 (a free one), answering PCP and NAT-PMP. */
static in_addr_t fake_start_5351(void)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.lock, NULL);
	atomic_store(&fake.max_life, 3600);
	atomic_store(&fake.natpmp, 1);
	fake.fd = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(fake.fd >= 0, "socket: %s", strerror(errno));
	for (unsigned i = 0; i < 200; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(5351) };
		a.sin_addr.s_addr = htonl(0x7f350000u | (((unsigned)getpid() + i * 7919u) % 0xfffeu + 1u));
		if (bind(fake.fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			setsockopt(fake.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			fake.port = 5351;
			CHECK(pthread_create(&fake.thread, NULL, fake_pcp_run, &fake) == 0, "thread");
			return a.sin_addr.s_addr;
		}
	}
	CHECK(0, "no free 127.53.x.y:5351: %s", strerror(errno));
	return 0;
}

int main(int argc, char **argv)
{
	CHECK(argc == 4 && (!strcmp(argv[1], "both") || !strcmp(argv[1], "private")),
	      "usage: dropin_coexist both|private REAL_LIB DROPIN_LIB");
	bool both = !strcmp(argv[1], "both");
	CHECK(realpath(argv[2], real_path), "%s: %s", argv[2], strerror(errno));
	CHECK(realpath(argv[3], dropin_path), "%s: %s", argv[3], strerror(errno));
	CHECK(DROPIN_LINKED || both, "the program linked with the real library always holds both");

	/* The linked copy, then the other one loaded as a plugin would: RTLD_LOCAL, by path. */
	struct np_api linked = { DROPIN_LINKED ? "drop-in (linked)" : "real (linked)",
				 initnatpmp,
				 closenatpmp,
				 sendnewportmappingrequest,
				 getnatpmprequesttimeout,
				 readnatpmpresponseorretry };
	struct np_api other = { 0 };
	if (both) {
		const char *path = DROPIN_LINKED ? argv[2] : argv[3];
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		CHECK(h, "dlopen %s: %s", path, dlerror());
		api_from(&other, DROPIN_LINKED ? "real (dlopen)" : "drop-in (dlopen)", h);
	}
	const struct np_api *real = DROPIN_LINKED ? &other : &linked;
	const struct np_api *dropin = DROPIN_LINKED ? &linked : &other;

	/* Each name resolves into the library it was asked from. */
	char f[PATH_MAX];
	file_of(dropin->init, f);
	CHECK(!strcmp(f, dropin_path), "the drop-in's initnatpmp is in %s", f);
	if (both) {
		file_of(real->init, f);
		CHECK(!strcmp(f, real_path), "the real initnatpmp is in %s", f);
	}

	in_addr_t gw = fake_start_5351();
	char gws[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &gw, gws, sizeof(gws));
	setenv("PCPMAP_GATEWAY", gws, 1);

	/* The real library: NAT-PMP on the wire, no PCP. */
	if (both) {
		map_one(real, gw, 4101);
		CHECK(atomic_load(&fake.np_maps) == 1 && atomic_load(&fake.maps) == 0,
		      "real libnatpmp: %d NAT-PMP and %d PCP requests", atomic_load(&fake.np_maps),
		      atomic_load(&fake.maps));
		printf("real libnatpmp (%s): mapped over NAT-PMP\n", real->name);
	}

	/* The drop-in: PCP through pcpmap. */
	setenv("PCPMAP_COMPAT_PROTOCOLS", "pcp", 1);
	int np0 = atomic_load(&fake.np_maps);
	map_one(dropin, gw, 4102);
	CHECK(atomic_load(&fake.maps) >= 1 && atomic_load(&fake.last_port) == 4102 &&
		  atomic_load(&fake.np_maps) == np0,
	      "drop-in: %d PCP requests (last port %d), %d NAT-PMP", atomic_load(&fake.maps),
	      atomic_load(&fake.last_port), atomic_load(&fake.np_maps) - np0);
	printf("drop-in (%s): mapped over PCP through pcpmap\n", dropin->name);

	/* The drop-in on NAT-PMP only: pcpmap's NAT-PMP backend, which must load and call the real library. */
	setenv("PCPMAP_COMPAT_PROTOCOLS", "natpmp", 1);
	int pcp0 = atomic_load(&fake.maps);
	map_one(dropin, gw, 4103);
	CHECK(atomic_load(&fake.np_maps) > np0 && atomic_load(&fake.np_last_port) == 4103 &&
		  atomic_load(&fake.maps) == pcp0,
	      "drop-in over NAT-PMP: %d NAT-PMP requests (last port %d), %d PCP",
	      atomic_load(&fake.np_maps) - np0, atomic_load(&fake.np_last_port),
	      atomic_load(&fake.maps) - pcp0);
	/* One copy of each: libpcpmap's private load shares a real library already loaded, never the drop-in. */
	CHECK(loaded(real_path) == 1, "the real libnatpmp is loaded %d times", loaded(real_path));
	CHECK(loaded(dropin_path) == 1, "the drop-in is loaded %d times", loaded(dropin_path));
	printf("drop-in over NAT-PMP: pcpmap's backend reached the real libnatpmp (%s)\n",
	       both ? "the process's copy" : "its private load");

	atomic_store(&fake.stop, 1);
	pthread_join(fake.thread, NULL);
	close(fake.fd);
	return 0;
}
