#!/usr/bin/env bash
# Checks that the Debian symbols files list exactly what the shared libraries export: every exported
# symbol (name@version node, as the version scripts cmake/libpcpmap.map and compat/*/lib*.map make
# them) must be in the symbols file of the library's SONAME, and every symbol listed there must be
# exported. The package build enforces the same through dpkg-gensymbols -c4; this is the fast check.
# Usage: tests/packaging/check-symbols.sh DEBIAN_DIR LIBRARY.so...
# Exit 0 pass, 1 fail, 2 usage.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DEBIAN_DIR LIBRARY.so..." >&2; exit 2; }
debian=$1
shift

fail=0
for lib in "$@"; do
	soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
	[ -n "$soname" ] || { echo "check-symbols: $lib has no SONAME" >&2; fail=1; continue; }
	# The symbols file whose first line names this SONAME.
	file=""
	for f in "$debian"/*.symbols; do
		[ -e "$f" ] || continue
		if [ "$(awk 'NR == 1 {print $1}' "$f")" = "$soname" ]; then file=$f; fi
	done
	if [ -z "$file" ]; then
		echo "check-symbols: no symbols file in $debian for $soname" >&2
		fail=1
		continue
	fi
	# Exported: defined dynamic symbols; a version node (type A) is written NODE@NODE as dpkg does.
	exported=$(nm -D --defined-only --with-symbol-versions "$lib" |
		awk 'NF >= 3 {s = $3; if ($2 == "A" && s !~ /@/) s = s "@" s; sub(/@@/, "@", s); print s}' |
		LC_ALL=C sort -u)
	# Listed: the symbol lines (one leading space) of the file's first section, tags like (optional) removed.
	listed=$(awk 'NR > 1 && /^[^ ]/ && !/^[*|#]/ {exit} /^ / {s = $1; sub(/^\([^)]*\)/, "", s); print s}' "$file" |
		LC_ALL=C sort -u)
	missing=$(LC_ALL=C comm -23 <(printf '%s\n' "$exported") <(printf '%s\n' "$listed") | sed '/^$/d')
	stale=$(LC_ALL=C comm -13 <(printf '%s\n' "$exported") <(printf '%s\n' "$listed") | sed '/^$/d')
	if [ -n "$missing" ]; then
		echo "check-symbols: $soname exports symbols missing from $file:" >&2
		mapfile -t lines <<<"$missing"
		printf '  %s\n' "${lines[@]}" >&2
		fail=1
	fi
	if [ -n "$stale" ]; then
		echo "check-symbols: $file lists symbols $soname does not export:" >&2
		mapfile -t lines <<<"$stale"
		printf '  %s\n' "${lines[@]}" >&2
		fail=1
	fi
	if [ -z "$missing" ] && [ -z "$stale" ]; then
		echo "check-symbols: $soname: $(printf '%s\n' "$exported" | wc -l) symbols, all in $(basename "$file")"
	fi
done
exit $fail
