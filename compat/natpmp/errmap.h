/* SPDX-License-Identifier: MIT */
#ifndef PCPMAP_COMPAT_NATPMP_ERRMAP_H
#define PCPMAP_COMPAT_NATPMP_ERRMAP_H

/* pcpmap failures as libnatpmp return codes. Pure functions (tests/unit/test_compat_errmap.c). */

#include <stdint.h>

#include <pcpmap/types.h>

/*
 * The libnatpmp return code (NATPMP_ERR_*) for a failed request: the server's own result code decides when the
 * server answered (PCP, NAT-PMP or UPnP codes, by proto), else the negative errno err. 0 for success.
 */
int pmc_natpmp_error(int err, enum pcpmap_proto proto, int result_code);

/*
 * The NAT-PMP result code (RFC 6886 3.5) to put in natpmpresp_t::resultcode beside the return code rc of
 * pmc_natpmp_error(): NAT-PMP's own code when NAT-PMP answered, the NAT-PMP code of the same meaning for
 * other protocols, the server's raw code for NATPMP_ERR_UNDEFINEDERROR, 0 when no server answered.
 */
uint16_t pmc_natpmp_resultcode(int rc, enum pcpmap_proto proto, int result_code);

#endif
