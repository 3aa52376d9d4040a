/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: declaration helpers. */
#ifndef MINIUPNPC_DECLSPEC_H_INCLUDED
#define MINIUPNPC_DECLSPEC_H_INCLUDED

/** Marks these headers as pcpmap's; the value is the emulated MINIUPNPC_API_VERSION. */
#define PCPMAP_COMPAT_MINIUPNPC 17

/* Kept for applications that spell it; the functions need no attribute. */
#define MINIUPNP_LIBSPEC

#if !defined(__GNUC__)
#error "pcpmap's miniupnpc headers need GCC or Clang (asm labels)"
#endif
/*
 * Source compatible, not binary compatible: each function is linked under the name pcpmap_compat_<name>, so a
 * process may hold the real libminiupnpc (pcpmap's own UPnP backend uses it) beside this library without the
 * dynamic linker mixing the two up. Rebuild with `pkg-config --cflags --libs pcpmap-miniupnpc`.
 */
#define PCPMAP_COMPAT_UPNP_LINK(name) __asm__("pcpmap_compat_" #name)

#endif
