/* SPDX-License-Identifier: MIT */
/* `pcpmap daemon`: pcpmapd's control protocol command by command (cli/daemon_ctl.c). */
#ifndef PCPMAP_CLI_DAEMON_CTL_H
#define PCPMAP_CLI_DAEMON_CTL_H

/* argv[0] is "daemon". @return the tool's exit code: 0, 2 usage, 3 pcpmapd not reachable, 4 refused. */
int cli_daemon(int argc, char **argv);

#endif
