/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_VERSION_H
#define PCPMAP_VERSION_H

/** Version of the headers this program was compiled against. */
#define PCPMAP_VERSION_MAJOR  0
#define PCPMAP_VERSION_MINOR  1
#define PCPMAP_VERSION_PATCH  0
#define PCPMAP_VERSION_STRING "0.1.0"

#endif
