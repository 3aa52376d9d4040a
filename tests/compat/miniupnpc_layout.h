/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_TEST_MINIUPNPC_LAYOUT_H
#define PCPMAP_TEST_MINIUPNPC_LAYOUT_H

/* One ABI fact of the miniupnpc headers: a number (value) or a string (text, when not NULL). */
struct layout_entry {
	const char *what;
	long long value;
	const char *text;
};

/* Built against Debian's headers and against pcpmap's; both end with { NULL }. */
extern const struct layout_entry layout_real[];
extern const struct layout_entry layout_ours[];

#endif
