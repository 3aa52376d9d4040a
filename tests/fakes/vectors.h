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

#endif
