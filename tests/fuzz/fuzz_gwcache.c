/*
 * Fuzz target for the gateway cache parser (core/gwcache.c): any input either parses into entries the
 * formatter writes back to the same entries, or is refused whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gwcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pm_gwcache c, c2;
	static char out[PM_GWC_FILE_MAX + 1];
	if (pm_gwcache_parse((const char *)data, size, &c) != 0)
		return 0;
	if (c.n > PM_GWC_MAX)
		abort();
	int len = pm_gwcache_format(&c, out, sizeof(out));
	if (len < 0 || pm_gwcache_parse(out, (size_t)len, &c2) != 0 || c2.n != c.n ||
	    memcmp(c.e, c2.e, c.n * sizeof(c.e[0])) != 0)
		abort();
	return 0;
}
