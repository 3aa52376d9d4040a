/* Restoration after a gateway loses its state. Run inside the lab's client namespace (bench/restore.sh does
 * it): holds N mappings, prints "ready", then waits for the gateway to lose its state (the script restarts
 * it with flushed rules) and measures when the loss was seen, when the first mapping was confirmed again by
 * the gateway (an answer granting it after the loss; the same port back reports no event, so the grant's
 * expiry tells), when the last was, and how many requests that took. The script counts the gateway's rules
 * itself. Also prints the most confirmations the client had outstanding at once after the loss (mappings
 * whose renewal or re-creation was sent and not answered yet, retransmitted or not), next to the window's
 * ceiling (remap_max_in_flight). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcpmap/pcpmap.h>

/* Requests in flight while the mappings are first made. miniupnpd (nftables) handles one at a time and takes
 * longer the more rules it holds (over 100 ms each at 1,000): 64 queued ones waited past PCP's 3 s
 * retransmission timer and the set-up took 5 minutes. */
#define SETUP_WINDOW 8

struct state {
	unsigned n, mapped, restored, issued;
	uint32_t lifetime;
	uint64_t t_detect, t_first_back, t_last_back, t_checked;
	uint64_t t_share[3]; /* when 50 %, 90 % and 99 % were back */
	uint64_t resets_before;
	unsigned outstanding, max_outstanding;
	pcpmap_mapping **maps;
};

static struct state st;

static void on_event(pcpmap_mapping *m, enum pcpmap_event ev, const struct pcpmap_mapping_info *info,
		     void *ud)
{
	unsigned i = (unsigned)(uintptr_t)ud;
	(void)m;
	if ((ev == PCPMAP_EVENT_MAPPED || ev == PCPMAP_EVENT_CHANGED) && !st.t_detect)
		st.mapped++;
	else if (ev == PCPMAP_EVENT_FAILED || ev == PCPMAP_EVENT_LOST)
		fprintf(stderr, "mapping %u: %s: %s\n", i, pcpmap_event_name(ev),
			pcpmap_strerror(info->error));
}

/* How many mappings the gateway granted again after the loss was seen: their expiry moved past it. Every
 * 50 ms: the walk costs CPU the gateway shares. */
static void count_restored(uint64_t now)
{
	if (!st.t_detect || now < st.t_checked + 50000)
		return;
	st.t_checked = now;
	unsigned k = 0, out = 0;
	uint64_t since = st.t_detect + (uint64_t)st.lifetime * 1000000u - 1000000u;
	for (unsigned i = 0; i < st.n; i++) {
		struct pcpmap_mapping_info info;
		if (pcpmap_mapping_get_info(st.maps[i], &info) < 0)
			continue;
		if (info.state == PCPMAP_STATE_MAPPED && info.expires_usec > since)
			k++;
		else if (info.state == PCPMAP_STATE_REFRESHING || info.state == PCPMAP_STATE_WAIT_RESP)
			out++;
	}
	if (out > st.max_outstanding)
		st.max_outstanding = out;
	if (k && !st.restored)
		st.t_first_back = now;
	if (k == st.n && st.restored < st.n)
		st.t_last_back = now;
	static const unsigned share[3] = { 50, 90, 99 };
	for (int j = 0; j < 3; j++)
		if (!st.t_share[j] && (uint64_t)k * 100u >= (uint64_t)st.n * share[j])
			st.t_share[j] = now;
	st.restored = k;
}

static void run_until(pcpmap_client *c, bool (*done)(void), uint64_t limit_us)
{
	uint64_t end = pcpmap_now_usec() + limit_us;
	while ((!done || !done()) && pcpmap_now_usec() < end) {
		struct pollfd p = { .fd = pcpmap_client_get_fd(c), .events = POLLIN };
		int t = pcpmap_client_get_timeout(c);
		poll(&p, 1, t < 0 || t > 100 ? 100 : t);
		pcpmap_client_process(c);
		struct pcpmap_stats s;
		pcpmap_client_get_stats(c, &s);
		if (!st.t_detect && s.epoch_resets > st.resets_before)
			st.t_detect = pcpmap_now_usec();
		count_restored(pcpmap_now_usec());
	}
}

static bool window_free(void)
{
	return st.issued - st.mapped < SETUP_WINDOW;
}

static bool all_mapped(void)
{
	return st.mapped == st.n;
}

static bool all_restored(void)
{
	return st.restored == st.n;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: bench_restore COUNT REMAP_INTERVAL_MS(0: adaptive window) [GATEWAY]\n");
		return 2;
	}
	st.n = (unsigned)atoi(argv[1]);
	unsigned interval = (unsigned)atoi(argv[2]);
	if (st.n < 1 || st.n > 20000)
		return 2;
	st.maps = calloc(st.n, sizeof(*st.maps));
	if (!st.maps)
		return 1;
	st.lifetime = 3600;

	struct pcpmap_client_config cfg;
	pcpmap_client_config_init(&cfg);
	cfg.server = argc > 3 ? argv[3] : NULL;
	cfg.protocols = PCPMAP_PROTO_BIT(PCPMAP_PROTO_PCP);
	cfg.max_mappings = st.n + 16;
	cfg.remap_interval_ms = interval;
	pcpmap_client *c;
	int r = pcpmap_client_new(&c, &cfg);
	if (r < 0) {
		fprintf(stderr, "client: %s\n", pcpmap_strerror(r));
		return 1;
	}
	uint64_t t0 = pcpmap_now_usec();
	for (unsigned i = 0; i < st.n; i++) {
		struct pcpmap_request req;
		pcpmap_request_init(&req, PCPMAP_KIND_MAP);
		req.internal_port = (uint16_t)(30000 + i);
		req.lifetime = st.lifetime;
		req.callback = on_event;
		req.userdata = (void *)(uintptr_t)i;
		r = pcpmap_mapping_new(c, &req, &st.maps[i]);
		if (r < 0) {
			fprintf(stderr, "mapping %u: %s\n", i, pcpmap_strerror(r));
			return 1;
		}
		/* Keep the loop turning so answers are read while requests go out, and keep few requests in
		 * flight: the set-up is not what is measured, and a burst of thousands overflows the server. */
		st.issued = i + 1;
		pcpmap_client_process(c);
		run_until(c, window_free, 60000000u);
	}
	run_until(c, all_mapped, 60000000u);
	uint64_t t1 = pcpmap_now_usec();
	if (!all_mapped()) {
		fprintf(stderr, "only %u of %u mapped\n", st.mapped, st.n);
		return 1;
	}
	struct pcpmap_stats before;
	pcpmap_client_get_stats(c, &before);
	st.resets_before = before.epoch_resets;
	printf("held %u mappings in %.1f ms\nready\n", st.n, (t1 - t0) / 1000.0);
	fflush(stdout);

	run_until(c, all_restored, 300000000u);
	struct pcpmap_stats after;
	pcpmap_client_get_stats(c, &after);
	if (!all_restored()) {
		printf("restored %u of %u within 300 s\n", st.restored, st.n);
		return 1;
	}
	printf("gateway state loss seen; epoch resets counted: %llu\n",
	       (unsigned long long)(after.epoch_resets - before.epoch_resets));
	printf("first mapping back   %8.1f ms after the loss was seen\n",
	       (st.t_first_back - st.t_detect) / 1000.0);
	if (interval)
		printf("all %u back          %8.1f ms after the loss was seen (fixed pace %u ms)\n", st.n,
		       (st.t_last_back - st.t_detect) / 1000.0, interval);
	else
		printf("all %u back          %8.1f ms after the loss was seen (adaptive window)\n", st.n,
		       (st.t_last_back - st.t_detect) / 1000.0);
	/* Re-creation after a multicast ANNOUNCE starts after the random 0-5 s RFC 6887 14.1.1 asks of every
	 * client on the link; the span from the first mapping back to the last is what the window decides. */
	printf("first to last back   %8.1f ms (after the announcement's random delay)\n",
	       (st.t_last_back - st.t_first_back) / 1000.0);
	/* Under loss the last few are those whose answers were lost more than once: RFC 6887 8.1.1 doubles
	 * the retransmission timer (3 s, 6 s, 12 s), so the tail is the protocol's, the bulk the window's. */
	printf("50 %% / 90 %% / 99 %% back %6.1f / %.1f / %.1f ms after the first\n",
	       (st.t_share[0] - st.t_first_back) / 1000.0, (st.t_share[1] - st.t_first_back) / 1000.0,
	       (st.t_share[2] - st.t_first_back) / 1000.0);
	printf("most outstanding     %8u confirmations at once (window ceiling %u)\n", st.max_outstanding,
	       cfg.remap_max_in_flight ? cfg.remap_max_in_flight : PCPMAP_DEFAULT_REMAP_MAX_IN_FLIGHT);
	printf("requests sent        %8llu for %u mappings (%llu retransmissions)\n",
	       (unsigned long long)(after.sent - before.sent), st.n,
	       (unsigned long long)(after.retransmits - before.retransmits));
	printf("restored\n");
	fflush(stdout);
	/* Give the caller time to count the gateway's rules before everything is deleted. */
	run_until(c, NULL, 3000000u);
	for (unsigned i = 0; i < st.n; i++)
		pcpmap_mapping_free(st.maps[i]);
	pcpmap_client_flush(c, 10000);
	pcpmap_client_free(c);
	free(st.maps);
	return 0;
}
