/* Every public entry point takes NULL arguments without crashing and says so (-EINVAL where it returns an
 * int), so a caller's bug is an error, not a segfault inside the library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <pcpmap/pcpmap.h>

static void test_client_entry_points(void **state)
{
	(void)state;
	struct pcpmap_stats st;
	memset(&st, 0xff, sizeof(st));
	assert_int_equal(pcpmap_client_new(NULL, NULL), -EINVAL);
	assert_int_equal(pcpmap_client_get_fd(NULL), -EINVAL);
	assert_int_equal(pcpmap_client_get_timeout(NULL), -EINVAL);
	assert_true(pcpmap_client_next_deadline(NULL) == UINT64_MAX);
	assert_int_equal(pcpmap_client_process(NULL), -EINVAL);
	assert_int_equal(pcpmap_client_run(NULL, 0), -EINVAL);
	assert_int_equal(pcpmap_client_flush(NULL, 0), -EINVAL);
	assert_int_equal(pcpmap_client_probe(NULL, 100, NULL, NULL), -EINVAL);
	assert_int_equal((pcpmap_probe_sync)(NULL, 100, NULL), -EINVAL);
	assert_int_equal(pcpmap_client_announce(NULL, 100, NULL, NULL), -EINVAL);
	pcpmap_client_get_stats(NULL, &st);
	assert_int_equal(st.sent, 0); /* zeroed */
	(pcpmap_client_get_stats)(NULL, NULL);
	pcpmap_client_stop(NULL);
	pcpmap_client_set_log_level(NULL, PCPMAP_LOG_DEBUG);
	pcpmap_client_config_init_sized(NULL, sizeof(struct pcpmap_client_config));
	(pcpmap_client_config_init)(NULL);
	assert_false(pcpmap_client_uses_daemon(NULL));
	assert_null(pcpmap_client_free(NULL));
}

static void test_mapping_entry_points(void **state)
{
	(void)state;
	struct pcpmap_request req;
	struct pcpmap_mapping_info info;
	pcpmap_mapping *m = NULL;
	pcpmap_request_init(NULL, PCPMAP_KIND_MAP);
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	assert_int_equal(pcpmap_mapping_new(NULL, &req, &m), -EINVAL);
	assert_int_equal(pcpmap_map_sync(NULL, &req, 10, &m, &info), -EINVAL);
	assert_int_equal(pcpmap_unmap_sync(NULL, &req, 10, &info), -EINVAL);
	assert_int_equal(pcpmap_mapping_get_info(NULL, &info), -EINVAL);
	assert_int_equal(pcpmap_mapping_delete(NULL), -EINVAL);
	assert_null(pcpmap_mapping_free(NULL));
	assert_null(pcpmap_mapping_abandon(NULL));
	assert_null(m);
}

/* The sized calls never write past the size the caller's header knew: a program built against the first
 * published struct gets the first published fields and its neighbouring memory stays untouched. */
static void test_sized_outputs_stay_in_bounds(void **state)
{
	(void)state;
	struct {
		struct pcpmap_stats st;
		unsigned char guard[64];
	} buf;
	memset(&buf, 0xab, sizeof(buf));
	size_t old = offsetof(struct pcpmap_stats, epoch_resets); /* smaller than the first published */
	pcpmap_client_get_stats_sized(NULL, &buf.st, old);
	const unsigned char *b = (const unsigned char *)&buf;
	for (size_t i = 0; i < old; i++)
		assert_int_equal(b[i], 0);
	for (size_t i = old; i < sizeof(buf); i++)
		assert_int_equal(b[i], 0xab);
	struct pcpmap_mapping_info info;
	assert_int_equal(pcpmap_mapping_get_info_sized(NULL, &info, sizeof(info)), -EINVAL);
}

/* pcpmap_request_check() says why a request is refused, in words a person can act on. */
static void test_request_check_says_why(void **state)
{
	(void)state;
	struct pcpmap_client_config cfg;
	pcpmap_client *c;
	struct pcpmap_request req;
	char why[160];
	pcpmap_client_config_init(&cfg);
	cfg.server = "127.0.0.1";
	cfg.no_announce_listener = true;
	cfg.no_netlink_monitor = true;
	assert_int_equal(pcpmap_client_new(&c, &cfg), 0);
	pcpmap_request_init(&req, PCPMAP_KIND_PEER);
	req.internal_port = 40000;
	req.peer_port = 443;
	req.peer_addr = "notanip";
	assert_int_equal(pcpmap_request_check(c, &req, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "'notanip' is not an IPv4 or IPv6 address"));
	req.peer_addr = "198.51.100.7";
	assert_int_equal(pcpmap_request_check(c, &req, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(pcpmap_request_check(NULL, &req, why, sizeof(why)), -EINVAL);
	pcpmap_client_free(c);
}

/* A program built before the config grew calls the unsized symbol with its shorter struct: nothing past
 * that struct is written, and the client starts from it with the newer fields at their defaults. */
static void test_config_init_keeps_to_old_struct(void **state)
{
	(void)state;
	const size_t old_size = offsetof(struct pcpmap_client_config, cache_dir);
	union {
		struct pcpmap_client_config cfg;
		unsigned char bytes[sizeof(struct pcpmap_client_config) + 16];
	} u;
	memset(&u, 0xa5, sizeof(u));
	(pcpmap_client_config_init)(&u.cfg);
	assert_int_equal(u.cfg.size, old_size);
	for (size_t i = old_size; i < sizeof(u.bytes); i++)
		assert_int_equal(u.bytes[i], 0xa5);
	u.cfg.server = "127.0.0.1";
	u.cfg.no_announce_listener = true;
	u.cfg.no_netlink_monitor = true;
	pcpmap_client *c;
	assert_int_equal(pcpmap_client_new(&c, &u.cfg), 0);
	pcpmap_client_free(c);
	/* The sized call writes exactly what it is given, and no more than the library knows. */
	memset(&u, 0xa5, sizeof(u));
	pcpmap_client_config_init_sized(&u.cfg, sizeof(u.bytes));
	assert_int_equal(u.cfg.size, sizeof(struct pcpmap_client_config));
	for (size_t i = sizeof(struct pcpmap_client_config); i < sizeof(u.bytes); i++)
		assert_int_equal(u.bytes[i], 0xa5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_init_keeps_to_old_struct),
		cmocka_unit_test(test_client_entry_points),
		cmocka_unit_test(test_mapping_entry_points),
		cmocka_unit_test(test_sized_outputs_stay_in_bounds),
		cmocka_unit_test(test_request_check_says_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
