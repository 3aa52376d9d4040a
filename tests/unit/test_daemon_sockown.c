/*
 * pcpmapd socket ownership (daemon/sockown.c) against this host's kernel: a listener and a bound UDP socket
 * of ours show up under our uid and port, not under another uid, another port or the other protocol.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/sockown.h"

/* A socket of type bound to an ephemeral loopback port (listening for TCP); its port in *port. */
static int bound(int type, uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, type, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void test_own_sockets(void **state)
{
	(void)state;
	uint16_t tp, up;
	uint32_t me = (uint32_t)geteuid();
	int r = pmd_sock_held(NULL, me, IPPROTO_TCP, 1, false);
	if (r < 0) {
		print_message("sock_diag unavailable here (%s): skipped\n", strerror(-r));
		skip();
	}
	int t = bound(SOCK_STREAM, &tp);
	int u = bound(SOCK_DGRAM, &up);
	assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_TCP, tp, false), 1);
	assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_UDP, up, false), 1);
	assert_int_equal(pmd_sock_held(NULL, me + 1, IPPROTO_TCP, tp, false), 0);
	assert_int_equal(pmd_sock_held(NULL, me + 1, IPPROTO_UDP, up, false), 0);
	/* The other protocol on the same number is not ours unless we hold it too. */
	if (tp != up) {
		assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_UDP, tp, false), 0);
		assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_TCP, up, false), 0);
	}
	close(t);
	close(u);
	/* Closed: gone. */
	assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_TCP, tp, false), 0);
	assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_UDP, up, false), 0);
}

/* A connection's local port counts for PEER (connected) only. */
static void test_connection_port(void **state)
{
	(void)state;
	uint16_t lp;
	uint32_t me = (uint32_t)geteuid();
	if (pmd_sock_held(NULL, me, IPPROTO_TCP, 1, false) < 0)
		skip();
	int l = bound(SOCK_STREAM, &lp);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(lp) };
	int c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(c, (struct sockaddr *)&sa, &len), 0);
	uint16_t cp = ntohs(sa.sin_port);
	assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_TCP, cp, false), 0);
	assert_int_equal(pmd_sock_held(NULL, me, IPPROTO_TCP, cp, true), 1);
	close(c);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_sockets),
		cmocka_unit_test(test_connection_port),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
