/*
 * The text helpers (core/text): copies and appends cut at the buffer's end, and addresses written exactly as
 * inet_ntop() writes them (RFC 5952 for IPv6), checked against libc on fixed cases and many random ones.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "text/text.h"

static void test_copy(void **state)
{
	(void)state;
	char b[5];
	assert_int_equal(pm_text_copy(b, sizeof(b), "abc"), 3);
	assert_string_equal(b, "abc");
	assert_int_equal(pm_text_copy(b, sizeof(b), "abcdefg"), 7);
	assert_string_equal(b, "abcd");
	assert_int_equal(pm_text_copy(b, 0, "x"), 1);
}

static void test_append(void **state)
{
	(void)state;
	char b[40];
	struct pm_text t;
	pm_text_init(&t, b, sizeof(b));
	pm_text_str(&t, "port ");
	pm_text_u(&t, 0);
	pm_text_str(&t, " ");
	pm_text_u(&t, 18446744073709551615ULL);
	pm_text_str(&t, " ");
	pm_text_hex2(&t, 0x0a);
	pm_text_hex2(&t, 0xff);
	assert_false(t.cut);
	assert_string_equal(b, "port 0 18446744073709551615 0aff");
	assert_int_equal(t.len, strlen(b));

	char s[6];
	pm_text_init(&t, s, sizeof(s));
	pm_text_str(&t, "abc");
	pm_text_u(&t, 12345);
	assert_true(t.cut);
	assert_string_equal(s, "abc12");
	pm_text_str(&t, "z"); /* nothing after a cut */
	assert_string_equal(s, "abc12");
}

static void same_as_libc(int family, const unsigned char *a)
{
	char want[INET6_ADDRSTRLEN], got[PM_TEXT_ADDR_MAX];
	assert_non_null(inet_ntop(family, a, want, sizeof(want)));
	assert_int_equal(pm_text_ntop(family, a, got, sizeof(got)), 0);
	assert_string_equal(got, want);
}

static void test_ntop_fixed(void **state)
{
	(void)state;
	static const char *const v6[] = { "::",
					  "::1",
					  "1::",
					  "2001:db8::1",
					  "2001:db8:0:1:1:1:1:1",
					  "2001:0:0:1::1",
					  "2001:db8::1:0:0:1",
					  "fe80::1:2:3:4",
					  "::ffff:192.0.2.1",
					  "::192.0.2.1",
					  "::0.1.0.0",
					  "::ffff:0:1",
					  "0:0:1::",
					  "ff02::1",
					  "1:0:0:2:0:0:0:3",
					  "1:2:3:4:5:6:7:8" };
	for (size_t i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
		unsigned char a[16];
		assert_int_equal(inet_pton(AF_INET6, v6[i], a), 1);
		same_as_libc(AF_INET6, a);
	}
	static const char *const v4[] = { "0.0.0.0", "192.168.77.1", "255.255.255.255", "10.0.100.9" };
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		unsigned char a[4];
		assert_int_equal(inet_pton(AF_INET, v4[i], a), 1);
		same_as_libc(AF_INET, a);
	}
}

/* Random addresses, with zero groups made likely so that every run length and position comes up. */
static void test_ntop_random(void **state)
{
	(void)state;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int n = 0; n < 200000; n++) {
		unsigned char a[16];
		for (int i = 0; i < 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			unsigned g = (x >> 8) % 3 == 0 ? (unsigned)(x >> 20) & 0xffff : 0;
			if ((x >> 40) % 11 == 0)
				g = 0xffff;
			a[2 * i] = (unsigned char)(g >> 8);
			a[2 * i + 1] = (unsigned char)g;
		}
		same_as_libc(AF_INET6, a);
		same_as_libc(AF_INET, a + 12);
	}
}

static void test_ntop_errors(void **state)
{
	(void)state;
	unsigned char a[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	char b[PM_TEXT_ADDR_MAX] = "x";
	assert_int_equal(pm_text_ntop(AF_UNIX, a, b, sizeof(b)), -EAFNOSUPPORT);
	assert_int_equal(pm_text_ntop(AF_INET6, a, b, 6), -ENOSPC); /* "2001:db8::" needs 11 */
	assert_string_equal(b, "");
	assert_int_equal(pm_text_ntop(AF_INET6, a, b, 11), 0);
	assert_string_equal(b, "2001:db8::");
	assert_int_equal(pm_text_ntop(AF_INET, a, b, 0), -ENOSPC);
	/* the longest form fits PM_TEXT_ADDR_MAX */
	unsigned char m[16] = { [10] = 0xff, [11] = 0xff, [12] = 255, [13] = 255, [14] = 255, [15] = 255 };
	assert_int_equal(pm_text_ntop(AF_INET6, m, b, sizeof(b)), 0);
	memset(a, 0xff, sizeof(a));
	assert_int_equal(pm_text_ntop(AF_INET6, a, b, sizeof(b)), 0);
	assert_string_equal(b, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy),        cmocka_unit_test(test_append),
		cmocka_unit_test(test_ntop_fixed),  cmocka_unit_test(test_ntop_random),
		cmocka_unit_test(test_ntop_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
