/* An application holding one mapping through the shared libpcpmap (bench_rss measures it): maps TCP PORT
 * with pcpmap_map_sync(), prints "mapped" once the loop settled, and holds the mapping until killed. */
#include <stdio.h>
#include <stdlib.h>

#include <pcpmap/pcpmap.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	pcpmap_client *c;
	if (pcpmap_client_new(&c, NULL) < 0)
		return 1;
	struct pcpmap_request req;
	pcpmap_request_init(&req, PCPMAP_KIND_MAP);
	req.internal_port = (uint16_t)atoi(argv[1]);
	req.lifetime = 600;
	pcpmap_mapping *m;
	struct pcpmap_mapping_info info;
	if (pcpmap_map_sync(c, &req, 5000, &m, &info) < 0)
		return 1;
	pcpmap_client_run(c, 300); /* probes of the other protocols finish */
	printf("mapped\n");
	fflush(stdout);
	pcpmap_client_run(c, -1);
	return 0;
}
