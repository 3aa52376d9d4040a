/* SPDX-License-Identifier: MIT */
/* One natpmp.h's ABI as a table (natpmp_layout.def): compiled against Debian's header as natpmp_layout_real
 * and against pcpmap's as natpmp_layout_ours; LAYOUT_TABLE names the table. */
#include <stddef.h>
#include <stdalign.h>

#include <natpmp.h>

#include "natpmp_layout.h"

#ifndef LAYOUT_TABLE
#error "LAYOUT_TABLE must name the table"
#endif
#define LAYOUT_CAT2(a, b) a##b
#define LAYOUT_CAT(a, b)  LAYOUT_CAT2(a, b)

#define LAYOUT_TYPE(t) \
	{ "sizeof(" #t ")", (long long)sizeof(t) }, { "alignof(" #t ")", (long long)alignof(t) },
#define LAYOUT_MEMBER(t, m)                                        \
	{ "offsetof(" #t ", " #m ")", (long long)offsetof(t, m) }, \
	    { "sizeof(" #t "." #m ")", (long long)sizeof(((t *)NULL)->m) },
#define LAYOUT_CONST(c) { #c, (long long)(c) },

const struct layout_entry LAYOUT_TABLE[] = {
#include "natpmp_layout.def"
};
const size_t LAYOUT_CAT(LAYOUT_TABLE, _n) = sizeof(LAYOUT_TABLE) / sizeof(LAYOUT_TABLE[0]);
