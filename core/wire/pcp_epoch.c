/* Epoch checks, in signed 64-bit arithmetic so no subtraction wraps. */
#include "wire/pcp_epoch.h"

static void record(struct pcp_epoch *e, uint32_t server, uint64_t client_now_s)
{
	e->have = true;
	e->server = server;
	e->client_s = client_now_s;
}

bool pcp_epoch_check(struct pcp_epoch *e, uint32_t server_epoch, uint64_t client_now_s)
{
	bool valid = true;

	if (e->have) {
		int64_t curr_server = server_epoch, prev_server = e->server;

		if (curr_server < prev_server - 1) {
			valid = false; /* went back by more than 1 s */
		} else {
			/* 2 s quantisation slack plus 1/16 clock-rate slack, both directions (RFC 6887 8.5). */
			int64_t client_delta = (int64_t)(client_now_s - e->client_s);
			int64_t server_delta = curr_server - prev_server;

			if (client_delta + 2 < server_delta - server_delta / 16 ||
			    server_delta + 2 < client_delta - client_delta / 16)
				valid = false;
		}
	}
	record(e, server_epoch, client_now_s);
	return valid;
}

bool natpmp_epoch_check(struct pcp_epoch *e, uint32_t sssoe, uint64_t client_now_s)
{
	bool valid = true;

	if (e->have) {
		/* RFC 6886 3.6: the gateway's clock may run up to 1/8 slow, plus 2 s of rounding. */
		int64_t elapsed = (int64_t)(client_now_s - e->client_s);
		int64_t expected = (int64_t)e->server + elapsed - elapsed / 8;

		if ((int64_t)sssoe + 2 < expected)
			valid = false;
	}
	record(e, sssoe, client_now_s);
	return valid;
}
