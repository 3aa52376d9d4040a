/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * `pcpmap top`: a full-screen terminal view (ncurses) of this host's connections and of the mappings, with
 * request forms, live countdowns and an event log. The drawing and input are here (cli/top.c); what is drawn
 * comes from the pure view model (cli/top_model.h).
 *
 * The view is a module of its own (pcpmap-top.so, in the tool's private directory under the library
 * directory) that the tool loads only for `pcpmap top`: every other command runs without ncurses and tinfo
 * mapped (about 250 kB of resident memory for a `pcpmap map` holding its mapping).
 */
#ifndef PCPMAP_CLI_TOP_H
#define PCPMAP_CLI_TOP_H

/* The module's file name, and the name of its entry point: a module whose entry has another signature gets
 * another name, so the tool never calls a module of another version the wrong way. */
#define CLI_TOP_MODULE "pcpmap-top.so"
#define CLI_TOP_ENTRY  "pcpmap_cli_top_v1"

/*
 * The module's entry point, found with dlsym(CLI_TOP_ENTRY). Runs the view until 'q', Ctrl-C or SIGTERM.
 * argv[0] is "top". Returns the tool's exit code: 0, 2 (usage, or standard output is not a terminal that can
 * draw the view: 'pcpmap list --watch' is named instead), 1 (internal error), 3 (the daemon asked for with
 * --daemon does not answer).
 */
__attribute__((visibility("default"))) int pcpmap_cli_top_v1(int argc, char **argv);

#endif /* PCPMAP_CLI_TOP_H */
