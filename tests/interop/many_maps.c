/* Interop helper: asks for COUNT TCP mappings (internal ports BASE..BASE+COUNT-1) at once and waits until
 * every one is in state MAPPED (its state, not a count of events), or the time limit passes. Prints
 * "mapped N/COUNT in MS ms, S requests", then one line per mapped mapping, "mapping tcp EXT ADDR:PORT", for
 * the caller to compare with the gateway's rules. Exit 0 when all are mapped. Mappings are left to expire
 * (abandoned) so the caller can inspect the gateway. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcpmap/pcpmap.h>

static void log_cb(void *ud, enum pcpmap_log_level level, const char *msg)
{
	(void)ud;
	fprintf(stderr, "<%d> %s\n", level, msg);
}

static bool is_mapped(const struct pcpmap_mapping_info *info)
{
	return info->state == PCPMAP_STATE_MAPPED || info->state == PCPMAP_STATE_REFRESHING;
}

static unsigned count_mapped(pcpmap_mapping **maps, unsigned n)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		struct pcpmap_mapping_info info;
		if (pcpmap_mapping_get_info(maps[i], &info) == 0 && is_mapped(&info))
			k++;
	}
	return k;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: many_maps COUNT BASE_PORT LIMIT_S [PROTOCOLS]\n");
		return 2;
	}
	unsigned n = (unsigned)atoi(argv[1]), base = (unsigned)atoi(argv[2]), limit = (unsigned)atoi(argv[3]);
	if (n < 1 || n > 5000 || base < 1 || base + n > 65536 || limit < 1)
		return 2;
	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.max_mappings = n + 8;
	/* PROTOCOLS: "pcp" pins PCP (the RFC 6887 retransmission under test), anything else keeps them all. */
	if (argc > 4 && !strcmp(argv[4], "pcp"))
		cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	if (getenv("MANY_MAPS_LOG")) {
		cfg.log = log_cb;
		cfg.log_level = PCPMAP_LOG_DEBUG;
	}
	pcpmap_client *c;
	if (pcpmap_client_new(&c, &cfg) < 0)
		return 1;
	pcpmap_mapping **maps = calloc(n, sizeof(*maps));
	if (!maps)
		return 1;
	uint64_t t0 = pcpmap_now_usec();
	for (unsigned i = 0; i < n; i++) {
		struct pcpmap_request req;
		pcpmap_request_init(&req, PCPMAP_KIND_MAP);
		req.internal_port = (uint16_t)(base + i);
		req.lifetime = 600;
		if (pcpmap_mapping_new(c, &req, &maps[i]) < 0)
			return 1;
		pcpmap_client_process(c);
	}
	uint64_t end = t0 + (uint64_t)limit * 1000000u;
	unsigned mapped = 0;
	while ((mapped = count_mapped(maps, n)) < n && pcpmap_now_usec() < end) {
		struct pollfd p = { .fd = pcpmap_client_get_fd(c), .events = POLLIN };
		int t = pcpmap_client_get_timeout(c);
		poll(&p, 1, t < 0 || t > 200 ? 200 : t);
		pcpmap_client_process(c);
	}
	struct pcpmap_stats st;
	pcpmap_client_get_stats(c, &st);
	printf("mapped %u/%u in %.0f ms, %llu requests (%llu retransmissions)\n", mapped, n,
	       (pcpmap_now_usec() - t0) / 1000.0, (unsigned long long)st.sent,
	       (unsigned long long)st.retransmits);
	for (unsigned i = 0; i < n; i++) {
		struct pcpmap_mapping_info info;
		pcpmap_mapping_get_info(maps[i], &info);
		if (is_mapped(&info))
			printf("mapping tcp %u %s:%u\n", info.external_port, info.internal_addr,
			       info.internal_port);
		else
			printf("not mapped: port %u state %s via %s error %s %s\n", info.internal_port,
			       pcpmap_state_name(info.state), pcpmap_proto_name(info.proto),
			       pcpmap_strerror(info.error), info.detail);
		pcpmap_mapping_abandon(maps[i]);
	}
	free(maps);
	pcpmap_client_free(c);
	return mapped == n ? 0 : 1;
}
