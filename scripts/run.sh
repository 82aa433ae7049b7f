#!/usr/bin/env bash
# run.sh is `make run`: it starts a dashboard and an agent (which starts the
# demo bot) as separate processes, waits until the dashboard answers, prints
# where to log in, and stops everything on Ctrl+C: the agent first (it was
# started with --stop-bot-on-exit, so it stops the bot), then the dashboard.
#
# Settings come from the same LIFELINE_* variables as the binary, for example
#   LIFELINE_HTTP=127.0.0.1:9000 make run
#
# Nothing secret goes in a command line, which ps shows to every user of the
# host: the agent gets the bus URL (which may carry a password) in its
# environment, and logs in with the nkey the dashboard wrote under data/bus/.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${LIFELINE_BIN:-bin/lifeline}
data=${LIFELINE_DATA:-./data}
http=${LIFELINE_HTTP:-0.0.0.0:8000}
listen=${LIFELINE_NATS_LISTEN:-127.0.0.1:4222}

# Where to reach the dashboard and its bus from this machine.
local_addr() {
	local host=${1%:*} port=${1##*:}
	case $host in "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;; esac
	echo "$host:$port"
}
url="http://$(local_addr "$http")"
nats_url=${LIFELINE_NATS_URL:-nats://$(local_addr "$listen")}

if [ ! -x "$bin" ]; then
	echo "run.sh: $bin not found; build it with: make build" >&2
	exit 1
fi
mkdir -p -m 700 "$data" # tokens and bus logins: private to this user

dash_pid="" agent_pid="" stopped=""
stop() {
	[ -n "$stopped" ] && return
	stopped=1
	trap - INT TERM
	echo
	echo "run.sh: stopping the agent (and its bot), then the dashboard"
	if [ -n "$agent_pid" ]; then
		kill -TERM "$agent_pid" 2>/dev/null || true
		wait "$agent_pid" 2>/dev/null || true
	fi
	if [ -n "$dash_pid" ]; then
		kill -TERM "$dash_pid" 2>/dev/null || true
		wait "$dash_pid" 2>/dev/null || true
	fi
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

healthy() {
	if command -v curl >/dev/null; then
		curl -fsS -o /dev/null --max-time 1 "$url/healthz" 2>/dev/null
	else
		# No curl: a bare HTTP request through bash's /dev/tcp.
		local hp=${url#http://}
		(exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" &&
			printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$hp" >&3 &&
			head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null
	fi
}

echo "run.sh: starting the dashboard ($url, bus on $listen)"
"$bin" dashboard --http "$http" --nats-listen "$listen" --data "$data" &
dash_pid=$!

for _ in $(seq 1 100); do
	healthy && break
	if ! kill -0 "$dash_pid" 2>/dev/null; then
		dash_pid=""
		echo "run.sh: the dashboard exited; see its message above" >&2
		exit 1
	fi
	sleep 0.1
done
if ! healthy; then
	echo "run.sh: the dashboard did not answer on $url/healthz within 10s" >&2
	exit 1
fi

# The agent looks for its login in ./data/bus/ by itself; elsewhere, say
# where (a file name, not a secret).
nkey=${LIFELINE_NATS_NKEY:-}
if [ -z "$nkey" ] && [ "$data" != ./data ] && [ -r "$data/bus/agent.nk" ]; then
	nkey=$data/bus/agent.nk
fi
echo "run.sh: starting the agent for bot \"${LIFELINE_NAME:-bot}\" (log: $data/${LIFELINE_NAME:-bot}.log)"
LIFELINE_NATS_URL=$nats_url LIFELINE_NATS_NKEY=$nkey "$bin" agent --stop-bot-on-exit &
agent_pid=$!

token=${LIFELINE_TOKEN:-} where="given in \$LIFELINE_TOKEN"
if [ -z "$token" ] && [ -r "$data/dashboard.token" ]; then
	token=$(cat "$data/dashboard.token") where="also in $data/dashboard.token"
fi
# The token stays out of URLs, which end up in browser history, proxy logs
# and Referer headers: the dashboard printed a one-time login link above.
echo
echo "  lifeline is running."
echo "  Open:   $url   (log in with the one-time link above, or the token)"
if [ -n "$token" ]; then
	echo "  Token:  $token   ($where)"
else
	echo "  Token:  where the dashboard's output above says"
fi
# Off the defaults, the commands need the bus and the login too, from the
# environment as the agent got them. A LIFELINE_NATS_URL of the caller's own
# (it may hold a password) is theirs already, and not printed.
env=""
if [ -z "${LIFELINE_NATS_URL:-}" ] && [ "$nats_url" != "nats://127.0.0.1:4222" ]; then
	env="LIFELINE_NATS_URL=$nats_url"
fi
if [ -z "${LIFELINE_NATS_NKEY:-}" ] && [ "$data" != ./data ]; then
	env="${env:+$env }LIFELINE_NATS_NKEY=$data/bus/operator.nk"
fi
[ -z "$env" ] || echo "  First:  export $env"
echo "  Try:    $bin status   |   $bin restart"
echo "  Press Ctrl+C to stop the dashboard, the agent and the bot."
echo

# Wake up every second to notice a process that died on its own; a signal
# interrupts the wait at once and runs the trap.
while kill -0 "$dash_pid" 2>/dev/null && kill -0 "$agent_pid" 2>/dev/null; do
	sleep 1 &
	wait $! || true
done
if ! kill -0 "$dash_pid" 2>/dev/null; then
	wait "$dash_pid" 2>/dev/null || true
	dash_pid=""
	echo "run.sh: the dashboard exited; stopping the agent" >&2
else
	wait "$agent_pid" 2>/dev/null || true
	agent_pid=""
	echo "run.sh: the agent exited; see its message above. Stopping the dashboard" >&2
fi
exit 1
