#!/usr/bin/env bash
# Checks the tool's documentation against itself: the man pages render without warnings (groff -ww,
# man --warnings), and every command and long option the built tool's --help texts name appears in
# pcpmap(1) and in the bash completion, and every long option of pcpmapd --help in pcpmapd(8). Runs the
# programs only with --help (no network).
# Usage: PCPMAP_BIN=path/to/pcpmap tests/cli/docs.sh   (default: build/cli/pcpmap).
# Exit 0 pass, 1 fail, 77 skip (groff or man missing).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${PCPMAP_BIN:-build/cli/pcpmap}
[[ "$bin" != /* && ! -x "$bin" && -x "$root/$bin" ]] && bin="$root/$bin"
man1=$root/packaging/man/pcpmap.1
comp=$root/packaging/bash-completion/pcpmap

for tool in groff man; do
	command -v "$tool" >/dev/null || { echo "docs.sh: SKIP: $tool not installed"; exit 77; }
done
if [[ ! -x "$bin" ]]; then
	echo "docs.sh: no pcpmap binary at '$bin' (set PCPMAP_BIN)"
	exit 1
fi

fail=0
n=0
check()
{
	n=$((n + 1))
	if [[ -z "$1" ]]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2: $1"
		fail=1
	fi
}

for page in "$root"/packaging/man/*.[1-8]; do
	w=$(groff -man -ww -z "$page" 2>&1)
	check "$w" "groff -man -ww -z $(basename "$page")"
	w=$(MANWIDTH=80 man -l --warnings "$page" 2>&1 >/dev/null)
	check "$w" "man -l --warnings $(basename "$page")"
done

# The man page as text, and the completion's words.
text=$(MANWIDTH=200 man -l "$man1" 2>/dev/null | col -b)
help=$("$bin" --help)
commands=$(sed -n '/^Commands:/,/^$/p' <<<"$help" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
[[ -n "$commands" ]] || check "no commands found in 'pcpmap --help'" "parse pcpmap --help"
for c in $commands; do
	why=""
	grep -Eq "(^|[[:space:]])pcpmap $c( |$)" <<<"$text" || why="not in the SYNOPSIS of pcpmap.1"
	check "$why" "command $c documented"
	why=""
	grep -q "_pcpmap_commands=.*\b$c\b" "$comp" || why="not among the completion's commands"
	check "$why" "command $c completed"
	# Options of this command; quoted examples of other commands ('map --once') do not count.
	opts=$("$bin" "$c" --help | sed "s/'[^']*'//g" | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u)
	for o in $opts; do
		[[ "$o" == --help ]] && continue
		why=""
		grep -qF -- "$o" <<<"$text" || why="not in pcpmap.1"
		check "$why" "$c $o documented"
		why=""
		bash -c 'source "$1"; _pcpmap_options "$2"' _ "$comp" "$c" | tr ' ' '\n' | grep -qxF -- "$o" ||
			why="not offered by the completion for '$c'"
		check "$why" "$c $o completed"
	done
done

# pcpmapd(8) against the daemon's --help, when the daemon was built (PCPMAPD_BIN, or next to the tool).
dbin=${PCPMAPD_BIN:-$(dirname "$bin")/../daemon/pcpmapd}
if [[ -x "$dbin" ]]; then
	dtext=$(MANWIDTH=200 man -l "$root/packaging/man/pcpmapd.8" 2>/dev/null | col -b)
	for o in $("$dbin" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
		why=""
		grep -qF -- "$o" <<<"$dtext" || why="not in pcpmapd.8"
		check "$why" "pcpmapd $o documented"
	done
else
	echo "# pcpmapd not built: its options are not checked"
fi

echo "1..$n"
if ((fail)); then
	echo "docs.sh: FAILED"
	exit 1
fi
echo "docs.sh: $n checks passed"
exit 0
