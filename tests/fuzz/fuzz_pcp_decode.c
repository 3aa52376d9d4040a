/*
 * Fuzz target for pcp_decode. Invariants: decode either fails with -EBADMSG/-EPROTONOSUPPORT or yields a message
 * that re-encodes (never longer than the input), re-decodes to an equal struct and re-encodes to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/pcp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size, const struct pcp_codec_cfg *cfg)
{
	static struct pcp_msg m, m2;
	static uint8_t b1[PCP_MAX_MSG], b2[PCP_MAX_MSG];
	size_t l1 = 0, l2 = 0;

	int r = pcp_decode(data, size, cfg, &m);
	if (r == -EBADMSG || r == -EPROTONOSUPPORT)
		return;
	if (r != 0)
		abort();

	/* Structural facts about any decoded message. */
	if (m.version != PCP_VERSION || m.opcode > PCP_OP_PEER || size < PCP_HDR_LEN || size > PCP_MAX_MSG ||
	    size % 4)
		abort();
	if (m.opts.n_filters > PCP_MAX_FILTERS || m.opts.n_prefix64 > PCP_MAX_PREFIX64)
		abort();
	if (m.opts.has_description && (m.opts.description_len > PCP_MAX_DESCRIPTION ||
				       strlen(m.opts.description) != m.opts.description_len))
		abort();
	if (pcp_result_info(m.result).code != m.result || !pcp_result_name(m.result))
		abort();

	/* Re-encode: must succeed and cannot grow (unknown options are dropped, padding is canonical). */
	if (pcp_encode(&m, cfg, b1, sizeof(b1), &l1) != 0 || l1 > size || l1 % 4)
		abort();
	if (pcp_encode(&m, cfg, b2, l1 - 1, &l2) != -ENOSPC)
		abort();
	if (pcp_decode(b1, l1, cfg, &m2) != 0 || !pcp_msg_equal(&m, &m2) || !pcp_msg_equal(&m2, &m))
		abort();
	if (m2.opts.n_unknown_optional != 0)
		abort();
	if (pcp_encode(&m2, cfg, b2, sizeof(b2), &l2) != 0 || l2 != l1 || memcmp(b1, b2, l1) != 0)
		abort();
	/* Without skipped options the canonical form has the input's length. */
	if (m.opts.n_unknown_optional == 0 && l1 != size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pcp_codec_cfg alt = { .port_reservation_code = 200 };

	check(data, size, NULL);
	check(data, size, &alt);
	return 0;
}
