/*
 * Small text helpers for the paths a process runs while it makes and holds a mapping: copying, appending
 * numbers and printing addresses without the printf family. printf drags a large part of libc into memory
 * (its formatter and tables, about 64 KiB a process keeps resident); these stay within a few cache lines.
 * doc/PERFORMANCE.md, "Memory of holding one mapping".
 */
#ifndef PCPMAP_TEXT_TEXT_H
#define PCPMAP_TEXT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest text pm_text_ntop() writes, its NUL included (the same as INET6_ADDRSTRLEN). */
#define PM_TEXT_ADDR_MAX 46

/*
 * Copies SRC into DST of CAP bytes, cut to fit and always NUL-terminated when CAP > 0. Returns strlen(SRC):
 * a value >= CAP means the copy was cut.
 */
size_t pm_text_copy(char *dst, size_t cap, const char *src);

/*
 * A text being built in a caller's buffer. Appending past the end cuts the text (still NUL-terminated) and
 * sets cut; later appends do nothing. Initialise with pm_text_init().
 */
struct pm_text {
	char *buf;
	size_t cap, len;
	bool cut;
};

/* Starts an empty text in BUF of CAP bytes (CAP > 0). */
void pm_text_init(struct pm_text *t, char *buf, size_t cap);
/* Appends S. */
void pm_text_str(struct pm_text *t, const char *s);
/* Appends V in decimal. */
void pm_text_u(struct pm_text *t, unsigned long long v);
/* Appends B as two lower-case hexadecimal digits. */
void pm_text_hex2(struct pm_text *t, unsigned char b);

/*
 * Writes the address ADDR of FAMILY (AF_INET: 4 bytes, AF_INET6: 16 bytes, network order) as inet_ntop()
 * does: dotted decimal, or RFC 5952's compressed form (the longest run of two or more zero groups becomes
 * "::", the first of equal runs; lower case; IPv4-mapped and IPv4-compatible addresses end in dotted
 * decimal). Returns 0, -EAFNOSUPPORT for another family, or -ENOSPC if LEN is too small (BUF then holds "").
 */
int pm_text_ntop(int family, const void *addr, char *buf, size_t len);

#endif
