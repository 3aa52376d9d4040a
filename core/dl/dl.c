/* Private loading of the protocol libraries: see dl.h. */
#include "dl/dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* AddressSanitizer refuses RTLD_DEEPBIND (its interceptors would be bypassed): sanitizer builds, which never
 * run beside a drop-in replacement, load without it. */
#if defined(__SANITIZE_ADDRESS__)
#define PM_DL_FLAGS (RTLD_NOW | RTLD_LOCAL)
#else
#define PM_DL_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)
#endif

int pm_dl_open(const char *path, void **ret_handle, char *err, size_t errlen)
{
	void *h = dlopen(path, PM_DL_FLAGS);
	if (!h) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : path);
		return -ENOENT;
	}
	*ret_handle = h;
	return 0;
}

int pm_dl_sym(void *handle, const char *name, void *slot, size_t slot_size, char *err, size_t errlen)
{
	dlerror();
	void *p = dlsym(handle, name);
	if (!p) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : name);
		return -ENOENT;
	}
	/* POSIX makes dlsym()'s object pointer usable as a function pointer; memcpy keeps ISO C quiet. */
	if (slot_size != sizeof(p))
		return -EINVAL;
	memcpy(slot, &p, sizeof(p));
	return 0;
}
