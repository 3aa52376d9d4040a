/* Byte vectors for tests: text files in tests/vectors with '#' comments and hex bytes separated by
 * whitespace. */
#ifndef PCPMAP_TEST_VECTORS_H
#define PCPMAP_TEST_VECTORS_H

#include <stddef.h>
#include <stdint.h>

/* Parses hex text (comments, whitespace). Returns the byte count, or -1 on a bad character or a byte
 * split by whitespace. *ret gets a malloc'ed buffer the caller frees. */
long vector_parse(const char *text, uint8_t **ret);
/* Loads PCPMAP_VECTOR_DIR-relative `name` (dir given by the caller). Same returns; -2 if unreadable. */
long vector_load(const char *dir, const char *name, uint8_t **ret);

#ifdef cmocka_unit_test
/* In cmocka tests: a vector of PCPMAP_VECTOR_DIR, the test failing if it cannot be read. Free v.b. */
struct vec {
	uint8_t *b;
	size_t len;
};

static inline struct vec load(const char *name)
{
	struct vec v = { NULL, 0 };
	long n = vector_load(PCPMAP_VECTOR_DIR, name, &v.b);
	if (n < 0)
		fail_msg("cannot load vector %s", name);
	v.len = (size_t)n;
	return v;
}
#endif

#endif
