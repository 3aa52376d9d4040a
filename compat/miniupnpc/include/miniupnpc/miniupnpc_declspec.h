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
 * Each function is linked under the name pcpmap_compat_<name> (libpcpmap-miniupnpc.so.17), so an application
 * rebuilt with `pkg-config --cflags --libs pcpmap-miniupnpc` names this library unambiguously, whatever else the
 * process loads. The binary drop-in (libminiupnpc.so.17 in pcpmap's private directory) is the same code built
 * with PCPMAP_COMPAT_REAL_NAMES defined: the functions then keep miniupnpc's own names.
 */
#ifdef PCPMAP_COMPAT_REAL_NAMES
#define PCPMAP_COMPAT_UPNP_LINK(name)
#else
#define PCPMAP_COMPAT_UPNP_LINK(name) __asm__("pcpmap_compat_" #name)
#endif

#endif
