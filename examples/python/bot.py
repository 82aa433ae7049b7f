#!/usr/bin/env python3
"""A lifeline bot in plain Python 3, standard library only.

It polls an inbox folder, counts and hashes each item, posts the result as
<outbox>/<item>.json and removes the item. It speaks systemd's notify protocol
(sd_notify), so under `lifeline agent -- python3 bot.py` it gets crash and hang
supervision with no NATS client and no lifeline code. See ../README.md for a
walk-through.

No item is lost, even under kill -9: an item is claimed by renaming it into
<inbox>/.claimed/, its result is written atomically, and only then is the
claim removed. On start, claimed items left by a killed run are processed
first. A result is keyed by the item's name, so a re-run replaces it with the
same content: each item ends up with exactly one result (processing itself is
at-least-once).
"""

import argparse
import hashlib
import json
import os
import select
import signal
import socket
import sys
import time


def notify(message):
    """Send one sd_notify datagram; do nothing when not supervised."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):  # abstract socket
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError as e:  # the agent is gone or restarting: keep working
        log(f"notify: {e}")


def log(text):
    print(f"bot[{os.getpid()}]: {text}", file=sys.stderr, flush=True)


class Stop:
    """SIGTERM or SIGINT, checked between items, never inside one.

    Not a threading.Event: its set() takes a lock that its wait() holds for a
    moment, so a handler calling set() can land in that moment and deadlock
    the bot for good. The handler here only sets a flag; signal's wakeup fd
    makes the sleep in wait() return at once.
    """

    def __init__(self):
        self.requested = False
        self._r, w = socket.socketpair()  # a socket, so Windows has it too
        self._r.setblocking(False)
        w.setblocking(False)
        self._w = w  # kept open for as long as the bot runs
        signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.requested = True

    def wait(self, seconds):
        """Sleep up to seconds; return at once when a stop is asked."""
        if not self.requested:
            select.select([self._r], [], [], seconds)
        try:
            while self._r.recv(64):
                pass
        except BlockingIOError:
            pass


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data):
    """Write data so that path holds all of it or nothing, even after kill -9."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def summarize(path):
    with open(path, "rb") as f:
        data = f.read()
    return {
        "bytes": len(data),
        "lines": data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0),
        "words": len(data.split()),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def posted_sha(path):
    try:
        with open(path, "rb") as f:
            return json.load(f).get("sha256")
    except (OSError, ValueError):
        return None


def process(claimed, name, outbox, work_delay):
    """Post the result for one claimed item, then drop the claim."""
    result = summarize(claimed)
    time.sleep(work_delay)  # stands in for real work
    dst = os.path.join(outbox, name + ".json")
    if posted_sha(dst) != result["sha256"]:  # not already posted by a killed run
        result.update(item=name, processed_at=time.time(), pid=os.getpid())
        write_atomic(dst, json.dumps(result).encode())
    os.remove(claimed)


def items(inbox):
    """Names of items ready to take: regular files, not hidden, not .tmp."""
    names = []
    for entry in os.scandir(inbox):
        if entry.is_file(follow_symlinks=False) and not entry.name.startswith(".") \
                and not entry.name.endswith(".tmp"):
            names.append(entry.name)
    return sorted(names)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inbox", default="data/inbox")
    p.add_argument("--outbox", default="data/outbox")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between inbox listings")
    p.add_argument("--work-delay", type=float, default=0.0, help="seconds of pretend work per item")
    args = p.parse_args()

    claims = os.path.join(args.inbox, ".claimed")
    for d in (args.inbox, args.outbox, claims):
        os.makedirs(d, mode=0o700, exist_ok=True)
    stop = Stop()

    # A heartbeat at least twice per hang timeout, as systemd advises.
    poll = args.poll
    usec = os.environ.get("WATCHDOG_USEC")
    if usec and usec.isdigit() and int(usec) > 0:
        poll = min(poll, int(usec) / 1e6 / 2)

    # Leftovers of a killed run: half-written results, then its claimed items.
    for name in os.listdir(args.outbox):
        if name.startswith(".") and name.endswith(".json.tmp"):
            os.remove(os.path.join(args.outbox, name))
    processed = 0
    for name in sorted(os.listdir(claims)):
        process(os.path.join(claims, name), name, args.outbox, 0)
        processed += 1
    if processed:
        log(f"recovered {processed} items claimed by a previous run")

    notify(f"READY=1\nSTATUS=processed {processed} items")
    log(f"ready: inbox {args.inbox}, outbox {args.outbox}")
    while not stop.requested:
        for name in items(args.inbox):
            if stop.requested:
                break
            claimed = os.path.join(claims, name)
            try:
                os.rename(os.path.join(args.inbox, name), claimed)  # claim
            except FileNotFoundError:
                continue  # taken away since the listing
            process(claimed, name, args.outbox, args.work_delay)
            processed += 1
            notify(f"WATCHDOG=1\nSTATUS=processed {processed} items")
        notify(f"WATCHDOG=1\nSTATUS=processed {processed} items")
        stop.wait(poll)  # returns at once on SIGTERM

    notify(f"STOPPING=1\nSTATUS=stopped after {processed} items")
    log(f"stopping after {processed} items")


if __name__ == "__main__":
    main()
