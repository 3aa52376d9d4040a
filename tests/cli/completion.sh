#!/usr/bin/env bash
# Checks packaging/bash-completion/pcpmap: sources it and asserts the completions of a few command lines.
# Usage: tests/cli/completion.sh [COMPLETION_FILE]. Exit 0 when every case passes, 1 otherwise.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
file=${1:-$here/../../packaging/bash-completion/pcpmap}

bash -n "$file" || { echo "completion: $file: syntax error"; exit 1; }
# shellcheck source=/dev/null
source "$file" || { echo "completion: cannot source $file"; exit 1; }
complete -p pcpmap >/dev/null 2>&1 || { echo "completion: 'complete -F _pcpmap pcpmap' not registered"; exit 1; }

fail=0
n=0

# expect "WORD WORD ... CUR" "EXPECTED REPLIES": the last word is the one being completed ("" for a new word).
# Replies are compared as sorted, space-separated sets.
expect()
{
	local -a words
	read -r -a words <<<"$1"
	[[ "$1" == *" " ]] && words+=("")
	COMP_WORDS=("${words[@]}")
	COMP_CWORD=$((${#words[@]} - 1))
	COMP_LINE="$1"
	COMP_POINT=${#1}
	COMPREPLY=()
	_pcpmap pcpmap "${words[COMP_CWORD]}" "${words[COMP_CWORD - 1]:-}"
	local got want
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ')
	want=$(tr ' ' '\n' <<<"$2" | sed '/^$/d' | sort | tr '\n' ' ')
	n=$((n + 1))
	if [[ "$got" != "$want" ]]; then
		echo "FAIL: '$1' -> [$got], want [$want]"
		fail=1
	fi
}

# expect_has "LINE" "WORD...": every WORD is among the replies (for long option lists).
expect_has()
{
	local -a words
	read -r -a words <<<"$1"
	[[ "$1" == *" " ]] && words+=("")
	COMP_WORDS=("${words[@]}")
	COMP_CWORD=$((${#words[@]} - 1))
	COMPREPLY=()
	_pcpmap pcpmap "${words[COMP_CWORD]}" "${words[COMP_CWORD - 1]:-}"
	local w
	n=$((n + 1))
	for w in $2; do
		if ! printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$w"; then
			echo "FAIL: '$1' lacks '$w' (got: ${COMPREPLY[*]})"
			fail=1
		fi
	done
}

# Commands
expect_has "pcpmap " "map peer unmap connections list external-address announce probe --help --version"
expect "pcpmap ma" "map"
expect "pcpmap p" "peer probe"
expect "pcpmap ex" "external-address"
expect "pcpmap --ver" "--version"
expect "pcpmap bogus " ""
# PROTO
expect "pcpmap map " "tcp udp all"
expect "pcpmap map u" "udp"
expect "pcpmap peer " "tcp udp"
expect "pcpmap unmap " "tcp udp all"
expect "pcpmap connections " "tcp udp all"
expect "pcpmap map tcp " ""
expect "pcpmap peer tcp 40000 198.51.100.7 " ""
# An option's value is not a positional argument.
expect "pcpmap map -g 10.0.0.1 " "tcp udp all"
expect "pcpmap map --lifetime 60 -6 " "tcp udp all"
expect "pcpmap map --json " "tcp udp all"
expect "pcpmap map --timeout " ""
expect "pcpmap unmap --nonce " ""
# Options per command
expect "pcpmap map tcp 8080 --pr" "--prefer-failure --protocol"
expect "pcpmap map --pa" "--pair"
expect "pcpmap peer --pa" ""
expect "pcpmap peer --pr" "--protocol"
expect "pcpmap peer --al" "--allow-degrade"
expect "pcpmap unmap --al" ""
expect "pcpmap map --da" "--daemon"
expect "pcpmap peer --da" ""
expect "pcpmap unmap tcp 80 --no" "--nonce"
expect "pcpmap connections --pi" "--pick"
expect "pcpmap list --" "--json --verbose --help --watch --socket"
expect "pcpmap t" "top"
expect "pcpmap top --" "--gateway --help --daemon --socket"
expect "pcpmap top --socket " ""
expect "pcpmap announce --" "--gateway --timeout --json --verbose --help"
expect "pcpmap probe --pro" "--protocol"
expect "pcpmap map -" "-g -t -j -v -h -4 -6 -e --gateway --timeout --json --verbose --help --ipv4 --ipv6 \
--external-port --external-address --lifetime --prefer-failure --third-party --filter --description --pair \
--once --protocol --allow-degrade --daemon --socket --no-cache"
expect_has "pcpmap announce " "--gateway --timeout --json"
# --protocol lists
expect "pcpmap map --protocol " "pcp natpmp upnp"
expect "pcpmap map --protocol n" "natpmp"
expect "pcpmap map --protocol pcp,n" "pcp,natpmp"
expect "pcpmap map --protocol pcp," "pcp,natpmp pcp,upnp"
expect "pcpmap map --protocol pcp,upnp," "pcp,upnp,natpmp"
expect "pcpmap probe --protocol " "pcp natpmp upnp"
# "--protocol=..." split at '=' by COMP_WORDBREAKS, and whole
expect "pcpmap map --protocol =" "pcp natpmp upnp"
expect "pcpmap map --protocol = " "pcp natpmp upnp"
expect "pcpmap map --protocol = u" "upnp"
expect "pcpmap map --protocol=pcp,n" "--protocol=pcp,natpmp"

if ((fail)); then
	echo "completion: FAILED"
	exit 1
fi
echo "completion: $n cases passed"
exit 0
