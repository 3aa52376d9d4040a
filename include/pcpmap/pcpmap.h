/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_PCPMAP_H
#define PCPMAP_PCPMAP_H

/**
 * @file pcpmap.h
 * pcpmap: a port-mapping client. PCP (RFC 6887) with MAP, PEER and options, falling back to NAT-PMP
 * (RFC 6886) and UPnP IGD, behind one mapping state machine and one refresh scheduler.
 */

#include <pcpmap/version.h>
#include <pcpmap/types.h>
#include <pcpmap/errors.h>
#include <pcpmap/log.h>
#include <pcpmap/client.h>
#include <pcpmap/mapping.h>

#endif
