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
for f in $files; do
	if ! "$cf" --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "format-check: $f differs from .clang-format (run: $cf -i $f)"
		bad=1
	fi
done
[ $bad = 0 ] && echo "format-check: $(echo "$files" | wc -l) files clean"
exit $bad
