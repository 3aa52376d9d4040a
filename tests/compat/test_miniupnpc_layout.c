/* SPDX-License-Identifier: MIT */
/* Compares the ABI facts of Debian's miniupnpc headers with pcpmap's (miniupnpc_layout.c): every struct size
 * and member offset, every constant. A drop-in replacement must match all of them. */
#include <stdio.h>
#include <string.h>

#include "miniupnpc_layout.h"

int main(void)
{
	int bad = 0, n = 0;
	for (const struct layout_entry *r = layout_real, *o = layout_ours; r->what || o->what;
	     r++, o++, n++) {
		if (!r->what || !o->what || strcmp(r->what, o->what)) {
			printf("FAIL: the two tables list different things at %d (%s / %s)\n", n,
			       r->what ? r->what : "end", o->what ? o->what : "end");
			return 1;
		}
		if (r->text || o->text ? !r->text || !o->text || strcmp(r->text, o->text)
				       : r->value != o->value) {
			if (r->text || o->text)
				printf("FAIL: %s: Debian \"%s\", pcpmap \"%s\"\n", r->what,
				       r->text ? r->text : "", o->text ? o->text : "");
			else
				printf("FAIL: %s: Debian %lld, pcpmap %lld\n", r->what, r->value, o->value);
			bad++;
		}
	}
	if (bad) {
		printf("%d of %d ABI facts differ from Debian's miniupnpc headers\n", bad, n);
		return 1;
	}
	printf("OK: %d ABI facts (struct sizes, member offsets and sizes, constants) as Debian's miniupnpc "
	       "headers\n",
	       n);
	return 0;
}
