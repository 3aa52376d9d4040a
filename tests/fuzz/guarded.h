/* Runs a parser on fuzz input placed right before an inaccessible page, so a read past the end crashes even
 * in code without sanitizer instrumentation (libmnl). Shared by the netlink fuzz targets. */
#ifndef PCPMAP_FUZZ_GUARDED_H
#define PCPMAP_FUZZ_GUARDED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARDED_MAX 65536

/* GUARDED_MAX usable bytes followed by an inaccessible page; NULL if mmap is not available. */
static inline uint8_t *guarded_area(void)
{
	static uint8_t *area;
	static int tried;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *m;

	if (tried)
		return area;
	tried = 1;
	m = mmap(NULL, GUARDED_MAX + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (mprotect((uint8_t *)m + GUARDED_MAX, page, PROT_NONE) < 0) {
		munmap(m, GUARDED_MAX + page);
		return NULL;
	}
	area = m;
	return area;
}

/* Calls parse on the input as given, then ending at the guard page from an aligned and an unaligned start. */
static inline void guarded_run(const uint8_t *data, size_t size, void (*parse)(const uint8_t *p, size_t size))
{
	uint8_t *g = guarded_area();

	parse(data, size);
	if (g && size > 0 && size <= GUARDED_MAX - 4) {
		/* 4-byte aligned start (the parser reads in place), at most 3 slack bytes before the guard. */
		size_t start = (GUARDED_MAX - size) & ~(size_t)3;

		memset(g + start + size, 0xa5, GUARDED_MAX - start - size);
		memcpy(g + start, data, size);
		parse(g + start, size);
		/* Unaligned start: exercises the parser's aligned copy. */
		memcpy(g + GUARDED_MAX - size, data, size);
		parse(g + GUARDED_MAX - size, size);
	}
}

#endif
