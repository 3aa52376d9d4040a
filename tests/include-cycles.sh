#!/usr/bin/env bash
# Fails when the headers of core/ and plugin/ include each other in a cycle. A quoted include is looked up
# the way the build does: next to the including file, then in core/, plugin/ and the tree's root.
set -euo pipefail
cd "${1:-.}"
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
resolve() { # dir name -> path of the header, or nothing when it is not ours
	local d
	for d in "$1" core plugin .; do
		if [ -f "$d/$2" ]; then
			realpath --relative-to=. "$d/$2"
			return
		fi
	done
}
n=0
while IFS= read -r f; do
	n=$((n + 1))
	echo "$f $f" >>"$edges" # every header is a node, even one that includes nothing of ours
	while IFS= read -r inc; do
		t=$(resolve "$(dirname "$f")" "$inc")
		[ -n "$t" ] && echo "$f $t" >>"$edges"
	done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$f")
done < <(find core plugin -name '*.h' | sort)
[ "$n" -gt 0 ] || { echo "include-cycles: no headers found under $(pwd)" >&2; exit 1; }
if ! out=$(tsort "$edges" 2>&1 >/dev/null) || [ -n "$out" ]; then
	echo "include-cycles: the headers include each other in a loop (tsort lists its members):"
	echo "$out" | sed -n 's/^tsort: //p'
	exit 1
fi
echo "include-cycles: $n headers, no cycle"
