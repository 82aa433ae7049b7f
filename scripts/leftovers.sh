#!/usr/bin/env bash
# scripts/leftovers.sh: fails when the tests left a process running, which is
# a test that lost track of what it started (a bot that outlives its agent by
# design must still be stopped by the test that started it). CI runs it after
# the tests, on a machine where nothing else runs: on a laptop an editor or a
# language server may sit in the repository and count as one.
#
# A leftover is any process, other than this script's own ancestors, that
# runs a test binary (go test builds them under the temporary directory's
# go-build*), whose working directory is in the repository, or that an agent
# started (LIFELINE_PID_FILE in its environment). It must be there twice,
# LEFTOVER_GRACE apart, so that one still exiting is not counted. Leftovers
# are listed and killed, so that they cannot disturb what runs next.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=${TMPDIR:-/tmp}

ancestors=" "
p=$$
while [ "${p:-1}" -gt 1 ]; do
	ancestors+="$p "
	p=$(sed -E 's/^.*\) [A-Za-z] ([0-9]+) .*$/\1/' "/proc/$p/stat" 2>/dev/null || echo 1)
done

scan() {
	local d pid exe cwd
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		case $ancestors in *" $pid "*) continue ;; esac
		exe=$(readlink "$d/exe" 2>/dev/null) || continue # kernel threads, or gone
		cwd=$(readlink "$d/cwd" 2>/dev/null) || continue
		if [[ $exe == "$tmp"/go-build* || $cwd == "$root" || $cwd == "$root"/* ]] ||
			tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -q '^LIFELINE_PID_FILE='; then
			echo "$pid"
		fi
	done
}

first=$(scan)
[ -z "$first" ] && exit 0
sleep "${LEFTOVER_GRACE:-3}"
left=()
for pid in $(scan); do
	case " $(echo $first) " in *" $pid "*) left+=("$pid") ;; esac
done
[ ${#left[@]} -eq 0 ] && exit 0
echo "leftovers.sh: the tests left ${#left[@]} process(es) running:" >&2
for pid in "${left[@]}"; do
	printf '  pid %s (cwd %s): %s\n' "$pid" "$(readlink "/proc/$pid/cwd" 2>/dev/null)" \
		"$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
	kill -9 "$pid" 2>/dev/null
done
exit 1
