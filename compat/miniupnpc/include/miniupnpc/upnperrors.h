/* SPDX-License-Identifier: MIT */
/* pcpmap's miniupnpc-compatible API: error texts. */
#ifndef UPNPERRORS_H_INCLUDED
#define UPNPERRORS_H_INCLUDED

#include "miniupnpc_declspec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The name of a UPNPCOMMAND_* code or UPnP error code; "UnknownError" for others, never NULL. */
const char *strupnperror(int err) PCPMAP_COMPAT_UPNP_LINK(strupnperror);

#ifdef __cplusplus
}
#endif

#endif
