#!/usr/bin/env bash
# pcpmap-run, the build tree's copy: options, exit codes, the environment it hands the program, and the
# library the loader then picks for a program linked with libnatpmp.
# Usage: pcpmap-run.sh BUILD_DIR
# shellcheck disable=SC2016 # the sh -c programs expand in the child, on purpose
set -euo pipefail
build=$(cd "$1" && pwd -P)
run=$build/compat/pcpmap-run
dropin=$build/compat/dropin
fail() {
	echo "pcpmap-run test: $*" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$run" --help | grep -q '^Usage: pcpmap-run' || fail "--help prints no usage"
"$run" --version | grep -qx 'pcpmap-run (pcpmap) [0-9.]*' || fail "--version: $("$run" --version)"
# Without PCPMAP_DROPIN_DIR the build tree's copy finds the drop-in beside itself.
[[ $(env -u PCPMAP_DROPIN_DIR "$run" --print-dir) == "$(cd "$dropin" && pwd -P)" ]] || fail "--print-dir"
# Through a symlink elsewhere, still beside the real script.
ln -s "$run" "$tmp/pr"
[[ $(env -u PCPMAP_DROPIN_DIR "$tmp/pr" --print-dir) == "$(cd "$dropin" && pwd -P)" ]] || fail "via symlink"

# PCPMAP_DROPIN_DIR overrides; a directory without the libraries is refused (125) with a message.
mkdir "$tmp/empty"
set +e
err=$(PCPMAP_DROPIN_DIR=$tmp/empty "$run" true 2>&1)
rc=$?
set -e
[[ $rc -eq 125 && $err == *"neither libnatpmp.so.1 nor libminiupnpc.so.17"* ]] || fail "empty dir: $rc $err"
set +e
err=$(PCPMAP_DROPIN_DIR=$tmp/none "$run" true 2>&1)
rc=$?
set -e
[[ $rc -eq 125 && $err == *"$tmp/none does not exist"* ]] || fail "missing dir: $rc $err"

export PCPMAP_DROPIN_DIR=$dropin
abs=$(cd "$dropin" && pwd -P)
# Missing program: 127 and its name; not executable: 126; no program or a bad option: 125.
set +e
err=$("$run" no-such-program-pcpmap 2>&1)
rc=$?
[[ $rc -eq 127 && $err == *"no-such-program-pcpmap: command not found"* ]] || fail "missing: $rc $err"
err=$("$run" "$tmp/nothing" 2>&1)
rc=$?
[[ $rc -eq 127 && $err == *"$tmp/nothing: no such file"* ]] || fail "missing path: $rc $err"
touch "$tmp/plain"
"$run" "$tmp/plain" 2>/dev/null
[[ $? -eq 126 ]] || fail "not executable"
"$run" 2>/dev/null
[[ $? -eq 125 ]] || fail "no program"
"$run" --bogus true 2>/dev/null
[[ $? -eq 125 ]] || fail "bad option"
# The program's own exit status comes back.
"$run" sh -c 'exit 42'
[[ $? -eq 42 ]] || fail "exit status"
set -e

# Arguments pass unchanged; the drop-in directory comes first, the caller's LD_LIBRARY_PATH after it;
# argv[0] is the name as given.
out=$(LD_LIBRARY_PATH=/x/y "$run" sh -c 'printf "%s|%s|%s\n" "$LD_LIBRARY_PATH" "$0" "$1"' 'a b' '')
[[ $out == "$abs:/x/y|a b|" ]] || fail "environment/arguments: $out"
out=$(env -u LD_LIBRARY_PATH "$run" sh -c 'printf "%s\n" "$LD_LIBRARY_PATH"')
[[ $out == "$abs" ]] || fail "no trailing colon: $out"
out=$("$run" -- sh -c 'echo ok')
[[ $out == ok ]] || fail "--"

# A program linked with libnatpmp gets the drop-in, not the system's library.
prog=/usr/bin/natpmpc
if [[ -x $prog ]]; then
	# The loader's trace of the program itself (set in the child, or it would trace the launcher's shell).
	out=$("$run" sh -c 'LD_TRACE_LOADED_OBJECTS=1 exec "$0"' "$prog")
	grep -q "libnatpmp.so.1 => $abs/libnatpmp.so.1 " <<<"$out" || fail "$prog does not load the drop-in: $out"
	echo "pcpmap-run: $prog loads $abs/libnatpmp.so.1"
	# README's LD_PRELOAD form: the preloaded drop-in answers the program's libnatpmp.so.1, and the system's
	# copy is not loaded beside it.
	out=$(LD_PRELOAD=$abs/libnatpmp.so.1 LD_TRACE_LOADED_OBJECTS=1 "$prog")
	grep -q "^[[:space:]]*$abs/libnatpmp.so.1 " <<<"$out" || fail "LD_PRELOAD: the drop-in is not loaded: $out"
	! grep -q "libnatpmp.so.1 => " <<<"$out" || fail "LD_PRELOAD: another libnatpmp.so.1 is loaded too: $out"
	echo "pcpmap-run: LD_PRELOAD of the drop-in stands in for the system's libnatpmp.so.1"
else
	echo "pcpmap-run: natpmpc not installed; the loader check was skipped"
fi
echo "pcpmap-run: options, exit codes and environment as documented"
