/* SPDX-License-Identifier: MIT */
/*
 * The drop-in libnatpmp.so.1 has libnatpmp's ABI: natpmp_layout_tu.c, compiled against Debian's natpmp.h and
 * against pcpmap's, records every struct and union member's offset and size, the structs' sizes and
 * alignments and every constant; the two tables must be equal. The real header is also scanned so that a
 * constant it defines cannot be missing from the tables.
 * Usage: test_dropin_layout REAL_NATPMP_H
 */
#include <stdio.h>
#include <string.h>

#include "natpmp_layout.h"

static int covered(const char *name)
{
	for (size_t i = 0; i < natpmp_layout_real_n; i++)
		if (!strcmp(natpmp_layout_real[i].what, name))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int bad = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: test_dropin_layout REAL_NATPMP_H\n");
		return 2;
	}
	if (natpmp_layout_real_n != natpmp_layout_ours_n) {
		fprintf(stderr, "layout: %zu facts of the real header, %zu of ours\n", natpmp_layout_real_n,
			natpmp_layout_ours_n);
		return 1;
	}
	for (size_t i = 0; i < natpmp_layout_real_n; i++) {
		const struct layout_entry *r = &natpmp_layout_real[i], *o = &natpmp_layout_ours[i];
		if (strcmp(r->what, o->what) || r->value != o->value) {
			fprintf(stderr, "layout: %s is %lld in Debian's natpmp.h, %s is %lld in pcpmap's\n",
				r->what, r->value, o->what, o->value);
			bad = 1;
		}
	}
	/* Every NATPMP_* macro of the real header is in the tables (the include guard is not ABI). */
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	char line[512];
	unsigned constants = 0;
	while (fgets(line, sizeof(line), f)) {
		char name[128];
		if (sscanf(line, " # define %127[A-Za-z0-9_]", name) != 1 || strncmp(name, "NATPMP_", 7))
			continue;
		constants++;
		if (!covered(name)) {
			fprintf(stderr, "layout: %s (%s) is not checked; add it to natpmp_layout.def\n", name,
				argv[1]);
			bad = 1;
		}
	}
	fclose(f);
	if (constants < 20) {
		fprintf(stderr, "layout: only %u NATPMP_ constants found in %s\n", constants, argv[1]);
		bad = 1;
	}
	if (!bad)
		printf("layout: %zu facts (sizes, alignments, offsets, %u constants) equal in both headers\n",
		       natpmp_layout_real_n, constants);
	return bad;
}
