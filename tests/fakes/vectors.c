/* Byte vectors for tests (see vectors.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long vector_parse(const char *text, uint8_t **ret)
{
	size_t cap = strlen(text) / 2 + 1, n = 0;
	uint8_t *b = malloc(cap);
	int hi = -1;
	if (!b)
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p == '#') {
			while (*p && *p != '\n')
				p++;
			if (!*p)
				break;
			continue;
		}
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			if (hi >= 0)
				goto bad;
			continue;
		}
		int x = hexval((unsigned char)*p);
		if (x < 0)
			goto bad;
		if (hi < 0) {
			hi = x;
			continue;
		}
		b[n++] = (uint8_t)(hi << 4 | x);
		hi = -1;
	}
	if (hi >= 0)
		goto bad;
	*ret = b;
	return (long)n;
bad:
	free(b);
	return -1;
}

long vector_load(const char *dir, const char *name, uint8_t **ret)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "re");
	if (!f)
		return -2;
	char *text = NULL;
	size_t len = 0;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *t = realloc(text, len + n + 1);
		if (!t) {
			free(text);
			fclose(f);
			return -2;
		}
		text = t;
		memcpy(text + len, chunk, n);
		len += n;
	}
	fclose(f);
	if (!text)
		return -1;
	text[len] = '\0';
	long r = vector_parse(text, ret);
	free(text);
	return r;
}
