/* Private loading of a shared library the engine calls into (libminiupnpc, libnatpmp): by absolute path,
 * with RTLD_LOCAL | RTLD_DEEPBIND, so a same-named library found first in the search path (pcpmap's own
 * drop-in replacements, run with LD_LIBRARY_PATH) neither stands in for it nor captures the calls it makes
 * to itself, and the application's own copy (if it links the real one) is shared, not duplicated. */
#ifndef PCPMAP_DL_H
#define PCPMAP_DL_H

#include <stddef.h>

/* Opens path. Returns 0 and the handle, or -ENOENT (dlerror()'s text in err) when it cannot be loaded. */
int pm_dl_open(const char *path, void **ret_handle, char *err, size_t errlen);
/* Resolves name into slot, a function pointer of slot_size bytes. Returns 0 or -ENOENT (text in err). */
int pm_dl_sym(void *handle, const char *name, void *slot, size_t slot_size, char *err, size_t errlen);

#endif
