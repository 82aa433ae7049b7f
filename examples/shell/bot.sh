#!/bin/sh
# A lifeline bot in POSIX shell: moves files from an inbox to an outbox with
# their size and SHA-256, and speaks sd_notify. Run it under an agent with
#   lifeline agent --name shbot -- sh examples/shell/bot.sh data/inbox data/outbox
#
# The agent only believes notifications sent by the bot's own PID, and no
# shell can write to a unix datagram socket. So each round ends by exec'ing a
# Python one-liner (same PID) that sends the message and execs this script
# again with the count so far. (socat would send from a child's PID, which the
# agent ignores, as systemd does under NotifyAccess=main.)
set -eu
inbox=${1:-data/inbox} outbox=${2:-data/outbox} n=${3:-0} again=${4:-}
send='import os, socket, sys
a = os.environ.get("NOTIFY_SOCKET", "")
if a:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect("\0" + a[1:] if a[0] == "@" else a)
    s.send(sys.argv[1].encode())
if sys.argv[2:]:
    os.execvp(sys.argv[2], sys.argv[2:])'
stop=
trap 'stop=1' TERM INT # finish the item in hand, then stop
stopping() { exec python3 -c "$send" "STOPPING=1
STATUS=stopped after $n items"; }

if [ -n "$again" ]; then
	sleep "${POLL:-1}" & wait $! || true # returns at once on SIGTERM
	[ -z "$stop" ] || stopping
fi
mkdir -p "$inbox/.claimed" "$outbox"
# Items claimed by a killed run first, then the inbox. Claim by rename, post
# atomically, then drop the claim: kill -9 loses no item.
for f in "$inbox"/.claimed/* "$inbox"/*; do
	[ -f "$f" ] && [ -z "$stop" ] || continue
	name=${f##*/}
	case $name in *.tmp) continue ;; esac
	claim=$inbox/.claimed/$name
	[ "$f" = "$claim" ] || mv "$f" "$claim" 2>/dev/null || continue
	sum=$(sha256sum <"$claim") bytes=$(wc -c <"$claim")
	printf '{"item":"%s","bytes":%d,"sha256":"%s"}\n' "$name" "$bytes" "${sum%% *}" >"$outbox/.$name.json.tmp"
	mv "$outbox/.$name.json.tmp" "$outbox/$name.json"
	rm -f "$claim"
	n=$((n + 1))
done
[ -z "$stop" ] || stopping

msg="WATCHDOG=1
STATUS=processed $n items"
[ -n "$again" ] || msg="READY=1
$msg"
exec python3 -c "$send" "$msg" sh "$0" "$inbox" "$outbox" "$n" again
