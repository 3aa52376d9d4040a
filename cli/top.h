/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * `pcpmap top`: a full-screen terminal view (ncurses) of this host's connections and of the mappings, with
 * request forms, live countdowns and an event log. The drawing and input are here (cli/top.c); what is drawn
 * comes from the pure view model (cli/top_model.h).
 */
#ifndef PCPMAP_CLI_TOP_H
#define PCPMAP_CLI_TOP_H

/*
 * Runs the view until 'q', Ctrl-C or SIGTERM. argv[0] is "top". Returns the tool's exit code: 0, 2 (usage,
 * or standard output is not a terminal that can draw the view: 'pcpmap list --watch' is named instead),
 * 1 (internal error), 3 (the daemon asked for with --daemon does not answer).
 */
int cli_top(int argc, char **argv);

#endif /* PCPMAP_CLI_TOP_H */
