#!/usr/bin/env bash
# scripts/bench.sh [--smoke|--fleet] [FLAGS...]: installs the peers `make bench`
# compares lifeline with, then runs the Go harness (scripts/bench/), which
# does all the timing. Flags after the mode go to the harness (-n 5, ...).
#
# - supervisord: `apt-get install -y supervisor` when missing (root only).
#   The harness runs it with its own config and socket in a temporary
#   directory; the system's supervisord service is never used or touched.
# - PM2: `npm install pm2` into $BENCH_PM2_DIR (a temporary directory, kept
#   between runs to save the download); the harness gives it its own
#   PM2_HOME and runs `pm2 kill` on it at the end, so the user's PM2 is never
#   touched.
# A peer that cannot be installed is skipped, and the table says so.
# --smoke (CI) installs nothing: peers already there are measured, others
# skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
# The Go the Makefile builds with (see GOTOOLCHAIN there), also when this
# script is run by hand: figures from a binary of another Go compare nothing.
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}

mode=""
case "${1:-}" in
--smoke | --fleet) mode=$1; shift ;;
esac

say() { printf 'bench: %s\n' "$*" >&2; }

supervisord_bin=$(command -v supervisord || true)
if [ -z "$supervisord_bin" ] && [ "$mode" != "--smoke" ] && [ "$mode" != "--fleet" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing supervisor (apt-get install -y supervisor; its service is not started by the harness)"
		export DEBIAN_FRONTEND=noninteractive
		# policy-rc.d 101: do not start the packaged service on install.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.bench && chmod +x /usr/sbin/policy-rc.d.bench
		if [ ! -e /usr/sbin/policy-rc.d ]; then cp /usr/sbin/policy-rc.d.bench /usr/sbin/policy-rc.d; fi
		{ apt-get install -y -qq supervisor >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq supervisor >/dev/null 2>&1; }; } ||
			say "apt-get install supervisor failed: supervisord will be skipped"
		if cmp -s /usr/sbin/policy-rc.d /usr/sbin/policy-rc.d.bench; then rm -f /usr/sbin/policy-rc.d; fi
		rm -f /usr/sbin/policy-rc.d.bench
		supervisord_bin=$(command -v supervisord || true)
	else
		say "supervisord is not installed and this is not root with apt-get: it will be skipped"
	fi
fi

pm2_dir=${BENCH_PM2_DIR:-${TMPDIR:-/tmp}/lifeline-bench-pm2}
pm2_bin="$pm2_dir/node_modules/.bin/pm2"
if [ ! -x "$pm2_bin" ] && [ "$mode" != "--smoke" ] && [ "$mode" != "--fleet" ]; then
	if command -v npm >/dev/null; then
		say "installing pm2 into $pm2_dir (npm install pm2)"
		mkdir -p "$pm2_dir" &&
			npm install --prefix "$pm2_dir" --no-audit --no-fund --loglevel=error pm2 >/dev/null 2>&1 ||
			say "npm install pm2 failed: PM2 will be skipped"
	else
		say "npm is not installed (apt-get install npm): PM2 will be skipped"
	fi
fi
[ -x "$pm2_bin" ] || pm2_bin=""

args=(-supervisord "$supervisord_bin" -pm2 "$pm2_bin")
case "$mode" in
--smoke) args+=(-smoke) ;;
--fleet) args+=(-fleet) ;;
esac
exec ${GO:-go} run ./scripts/bench "${args[@]}" "$@"
