#!/usr/bin/env bash
# Fails when a C source or header differs from .clang-format.
set -euo pipefail
cf=${1:-clang-format}
dirs=""
for d in include core plugin compat daemon cli tests bench; do
	[ -d "$d" ] && dirs="$dirs $d"
done
# shellcheck disable=SC2086
files=$(find $dirs -name '*.[ch]' -not -path 'tests/fuzz/corpus/*' | sort)
[ -n "$files" ] || { echo "format-check: no sources found" >&2; exit 1; }
bad=0
# One clang-format for every file (a process per file costs most of the time); file by file only to name
# the culprits.
# shellcheck disable=SC2086
if ! "$cf" --dry-run --Werror $files >/dev/null 2>&1; then
	for f in $files; do
		if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
			echo "format-check: $f differs from .clang-format (run: $cf -i $f)"
			bad=1
		fi
	done
	[ $bad = 1 ] || { echo "format-check: $cf failed on the file list" >&2; bad=1; }
fi
[ $bad = 0 ] && echo "format-check: $(echo "$files" | wc -l) files clean"
# One door to a mapping's state: the state-machine table (core/fsm/fsm_apply). Any other write is a side door
# that skips the table's actions. Writes to a copy for the application (an info struct) are not state.
# core/ipc holds messages, no mappings: a message's STATE is a copy, like an info struct.
doors=$(grep -nE '(->|\.)state[[:space:]]*=[^=]' $(find core plugin -name '*.c' -not -path 'core/fsm/*' -not -path 'core/net/*' -not -path 'core/ipc/*') |
	grep -vE '(info|i|req)(->|\.)state[[:space:]]*=' || true)
if [ -n "$doors" ]; then
	echo "format-check: a mapping's state is written outside core/fsm (take an edge with pm_mapping_fsm):"
	echo "$doors"
	bad=1
fi
# Backends see the engine through core/backend.h only: from core/ a plugin may include that header, the list
# helpers and the pure layers (net, wire, sched, dl, text), never the engine's own headers.
leaks=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $(find plugin -name '*.[ch]') |
	grep -vE '#[[:space:]]*include[[:space:]]*"(backend\.h|list\.h|plugins\.h|(net|wire|sched|dl|text)/[^"]+|(pcp|natpmp|upnp)/[^"]+)"' ||
	true)
if [ -n "$leaks" ]; then
	echo "format-check: a plugin includes an engine header (plugins get core/backend.h only):"
	echo "$leaks"
	bad=1
fi
exit $bad
