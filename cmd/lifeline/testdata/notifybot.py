#!/usr/bin/env python3
"""A bot the sd_notify e2e tests steer through files in a control directory.

Every 50 ms it reads CTL/send, if there, removes it and sends its text as one
datagram to $NOTIFY_SOCKET; "spawn-child" starts a copy of itself with the
control directory CTL/child and sends MAINPID= with the child's PID; "exit N"
exits with code N. While CTL/beat exists it sends WATCHDOG=1 each round. At
start it writes CTL/env-PID: NOTIFY_SOCKET and WATCHDOG_USEC, one a line.
"""
import os
import socket
import subprocess
import sys
import time

ctl = sys.argv[1]
os.makedirs(ctl, exist_ok=True)
addr = os.environ.get("NOTIFY_SOCKET", "")


def send(msg):
    if not addr:
        return
    a = "\0" + addr[1:] if addr.startswith("@") else addr
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(msg.encode(), a)
    except OSError:  # no agent right now (killed, restarting): as sd_notify(3)
        pass


with open(os.path.join(ctl, "env-%d.tmp" % os.getpid()), "w") as f:
    f.write("%s\n%s\n" % (addr, os.environ.get("WATCHDOG_USEC", "")))
os.rename(os.path.join(ctl, "env-%d.tmp" % os.getpid()), os.path.join(ctl, "env-%d" % os.getpid()))

while True:
    path = os.path.join(ctl, "send")
    try:
        with open(path) as f:
            msg = f.read()
        os.remove(path)
    except FileNotFoundError:
        msg = None
    if msg == "spawn-child":
        child = subprocess.Popen([sys.executable, __file__, os.path.join(ctl, "child")])
        send("MAINPID=%d" % child.pid)
    elif msg is not None and msg.startswith("exit "):
        sys.exit(int(msg.split()[1]))
    elif msg is not None:
        send(msg)
    if os.path.exists(os.path.join(ctl, "beat")):
        send("WATCHDOG=1")
    time.sleep(0.05)
