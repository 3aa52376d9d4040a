/*
 * Fuzz target for the pcpmapd control-protocol codec (core/ipc/ipc.c). Invariants: decode fails only with
 * -EBADMSG or -EPROTONOSUPPORT and agrees with peek; a decoded message re-encodes (never longer than the
 * input: unknown optional attributes are dropped), re-decodes, and re-encodes to the same bytes; the encoder
 * refuses a buffer one byte short with -ENOSPC; copying the input as a string always yields a valid string.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pmd_ipc_msg m, m2;
	static uint8_t b1[PMD_IPC_MAX_MSG], b2[PMD_IPC_MAX_MSG];
	static char s[PMD_IPC_TEXT_MAX + 1], in[PMD_IPC_MAX_MSG + 1];
	size_t l1 = 0, l2 = 0;
	uint8_t type = 0;
	uint32_t seq = 0;

	/* Strings from the network are sanitised with pmd_ipc_copy_str(). */
	size_t n = size < PMD_IPC_MAX_MSG ? size : PMD_IPC_MAX_MSG;
	memcpy(in, data, n);
	in[n] = '\0';
	pmd_ipc_copy_str(s, sizeof(s), in);
	if (!pmd_ipc_str_valid(s, strlen(s)))
		abort();

	int p = pmd_ipc_peek(data, size, &type, &seq);
	int r = pmd_ipc_decode(data, size, &m);
	if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
		if (r == -EPROTONOSUPPORT && p != -EPROTONOSUPPORT)
			abort();
		return 0;
	}
	if (r != 0 || p != 0 || m.type != type || m.seq != seq || !pmd_ipc_type_known(m.type))
		abort();
	if (size > PMD_IPC_MAX_MSG || m.req.n_filters > PMD_IPC_MAX_FILTERS ||
	    m.n_servers > PMD_IPC_MAX_SERVERS)
		abort();
	if (strlen(m.req.description) > PMD_IPC_DESC_MAX || strlen(m.message) > PMD_IPC_TEXT_MAX)
		abort();
	if (pmd_ipc_encode(&m, b1, sizeof(b1), &l1) != 0 || l1 > size)
		abort();
	if (pmd_ipc_encode(&m, b2, l1 - 1, &l2) != -ENOSPC)
		abort();
	if (pmd_ipc_decode(b1, l1, &m2) != 0 || m2.present != m.present || m2.type != m.type ||
	    m2.seq != m.seq)
		abort();
	if (pmd_ipc_encode(&m2, b2, sizeof(b2), &l2) != 0 || l2 != l1 || memcmp(b1, b2, l1) != 0)
		abort();
	return 0;
}
