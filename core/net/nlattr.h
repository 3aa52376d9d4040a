/* SPDX-License-Identifier: BSD-2-Clause */
/* Netlink attribute parsing shared by the rtnetlink and sock_diag parsers (core/net). */
#ifndef PCPMAP_CORE_NET_NLATTR_H
#define PCPMAP_CORE_NET_NLATTR_H

#include <stddef.h>

#include <libmnl/libmnl.h>

/*
 * Parses the attributes in [payload, payload + size) into tb[0..max] (tb is cleared first; types above max are
 * skipped). mnl_attr_parse_payload stops silently at the first attribute that does not fit: that is reported
 * as truncation. Returns 0 or -EBADMSG.
 */
int pm_net_attrs_parse(const void *payload, size_t size, const struct nlattr **tb, unsigned max);

#endif
