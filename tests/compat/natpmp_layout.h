/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_TEST_NATPMP_LAYOUT_H
#define PCPMAP_TEST_NATPMP_LAYOUT_H

#include <stddef.h>

/* One fact of a header's ABI: "offsetof(natpmp_t, s)", "NATPMP_PORT", ... and its value. */
struct layout_entry {
	const char *what;
	long long value;
};

/* The same facts of Debian's natpmp.h and of pcpmap's, in the same order. */
extern const struct layout_entry natpmp_layout_real[], natpmp_layout_ours[];
extern const size_t natpmp_layout_real_n, natpmp_layout_ours_n;

#endif
