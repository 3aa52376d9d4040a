/* SPDX-License-Identifier: MIT */
/*
 * One process holding Debian's libminiupnpc.so.17 and pcpmap's drop-in libminiupnpc.so.17 at once, either way
 * round: built with DROPIN_LINKED, the program links the drop-in and dlopen()s the real library RTLD_LOCAL;
 * otherwise it links the real library and dlopen()s the drop-in. Usage: PROGRAM PATH_OF_THE_OTHER_LIBRARY.
 * Checks:
 *  - each library answers for itself (strupnperror() of each, by the file that defines it);
 *  - the drop-in's calls to its own exported functions stay inside it (upnpDiscoverAll() -> upnpDiscover()
 *    finds the scripted PCP server and names it pcpmap://, where the real upnpDiscover() would search SSDP);
 *  - libpcpmap, under the drop-in, loads the real library itself (its UPnP backend) and not the drop-in.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "miniupnpc.h"
#include "upnpcommands.h"
#include "upnperrors.h"
#include "fake_pcp.h"

typedef const char *(*strupnperror_fn)(int);
typedef struct UPNPDev *(*discover_fn)(int, const char *, const char *, int, int, unsigned char, int *);
typedef void (*freedev_fn)(struct UPNPDev *);

static int failures;

#define CHECK(cond, ...)                              \
	do {                                          \
		if (!(cond)) {                        \
			printf("FAIL: " __VA_ARGS__); \
			printf("\n");                 \
			failures++;                   \
		}                                     \
	} while (0)

/* The file defining addr (a copy: dladdr()'s string dies with the library). */
static const char *file_of(const void *addr)
{
	static char buf[4][4096];
	static int i;
	Dl_info di;
	char *b = buf[i++ % 4];
	snprintf(b, sizeof(buf[0]), "%s", dladdr(addr, &di) && di.dli_fname ? di.dli_fname : "?");
	return b;
}

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (!p) {
		printf("FAIL: dlsym %s: %s\n", name, dlerror());
		exit(1);
	}
	return p;
}

/* Is a file with this name part of the process? */
static bool mapped(const char *path)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		const char *p = strchr(line, '/');
		found = p && !strcmp(p, path);
	}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	struct fake_pcp fake;
	char gw[32], other[4096];
	if (argc != 2 || !realpath(argv[1], other)) {
		fprintf(stderr, "usage: %s PATH_OF_THE_OTHER_LIBRARY (exists)\n", argv[0]);
		return 2;
	}
	if (fake_pcp_start(&fake) < 0) {
		perror("fake PCP server");
		return 1;
	}
	/* PCP answers at once; UPnP makes libpcpmap load its own miniupnpc (nothing answers SSDP on loopback). */
	snprintf(gw, sizeof(gw), "127.0.0.1:%u", fake.port);
	setenv("PCPMAP_GATEWAY", gw, 1);
	setenv("PCPMAP_COMPAT_PROTOCOLS", "pcp,upnp", 1);
	setenv("PCPMAP_COMPAT_NO_DAEMON", "1", 1);

	/* The linked library, through the names the program was linked with. */
	const char *linked_file = file_of((const void *)strupnperror);
	discover_fn linked_discover_all = upnpDiscoverAll;
	freedev_fn linked_free = freeUPNPDevlist;
#ifdef DROPIN_LINKED
	const char *real_path = other;
	/* libpcpmap's backend loads the real library by its path, before this program does. */
	int err = -1;
	struct UPNPDev *d = linked_discover_all(500, NULL, NULL, 0, 0, 2, &err);
	CHECK(d && d->descURL && !strncmp(d->descURL, "pcpmap://", 9),
	      "the drop-in's upnpDiscoverAll() found no pcpmap device (error %d)", err);
	linked_free(d);
	CHECK(mapped(real_path), "libpcpmap did not load %s for its UPnP backend", real_path);
	void *pre = dlopen(real_path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
	CHECK(pre != NULL, "%s is not loaded", real_path);
	if (pre) {
		CHECK(strcmp(file_of(sym(pre, "UPNP_AddPortMapping")), real_path) == 0,
		      "libpcpmap's miniupnpc resolves UPNP_AddPortMapping in %s",
		      file_of(sym(pre, "UPNP_AddPortMapping")));
		dlclose(pre);
	}
#endif
	void *h = dlopen(other, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("FAIL: dlopen %s: %s\n", other, dlerror());
		return 1;
	}
	strupnperror_fn other_err = (strupnperror_fn)sym(h, "strupnperror");
	const char *other_file = file_of((const void *)other_err);
	CHECK(strcmp(linked_file, other_file) != 0, "both strupnperror() come from %s", linked_file);
	CHECK(strcmp(other_file, other) == 0, "dlsym() of %s answered from %s", other, other_file);

	/* Each answers for itself: pcpmap names -3 its own way, miniupnpc says "Miniupnpc HTTP error". */
	const char *linked_text = strupnperror(UPNPCOMMAND_HTTP_ERROR);
	const char *other_text = other_err(UPNPCOMMAND_HTTP_ERROR);
#ifdef DROPIN_LINKED
	const char *dropin_text = linked_text, *real_text = other_text;
	discover_fn dropin_discover_all = linked_discover_all;
	freedev_fn dropin_free = linked_free;
#else
	const char *dropin_text = other_text, *real_text = linked_text;
	discover_fn dropin_discover_all = (discover_fn)sym(h, "upnpDiscoverAll");
	freedev_fn dropin_free = (freedev_fn)sym(h, "freeUPNPDevlist");
#endif
	CHECK(strstr(dropin_text, "pcpmap") != NULL, "the drop-in's strupnperror(-3) is \"%s\"", dropin_text);
	CHECK(strstr(real_text, "pcpmap") == NULL, "the real strupnperror(-3) is \"%s\"", real_text);

	/* The drop-in's upnpDiscoverAll() calls upnpDiscover(): its own, even with the real one loaded first. */
	int e2 = -1;
	struct UPNPDev *d2 = dropin_discover_all(500, NULL, NULL, 0, 0, 2, &e2);
	CHECK(
	    d2 && d2->descURL && !strncmp(d2->descURL, "pcpmap://", 9),
	    "the drop-in's upnpDiscoverAll() returned no pcpmap device (error %d): it called another library",
	    e2);
	dropin_free(d2);

	dlclose(h);
	fake_pcp_stop(&fake);
	if (failures)
		return 1;
	printf("OK: real and drop-in libminiupnpc.so.17 in one process (%s linked, %s loaded)\n", linked_file,
	       other_file);
	return 0;
}
