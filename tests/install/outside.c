/* A program outside the tree, built only from the installed headers and library. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pcpmap/pcpmap.h>

int main(void)
{
	if (strcmp(pcpmap_version(), PCPMAP_VERSION_STRING) != 0) {
		fprintf(stderr, "header %s, library %s\n", PCPMAP_VERSION_STRING, pcpmap_version());
		return 1;
	}
	if (strcmp(pcpmap_result_name(PCPMAP_PROTO_PCP, 2), "NOT_AUTHORIZED") != 0)
		return 1;
	if (!strstr(pcpmap_strerror(-ETIMEDOUT), "timed out"))
		return 1;
	printf("outside: libpcpmap %s\n", pcpmap_version());
	return 0;
}
