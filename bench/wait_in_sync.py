#!/usr/bin/env python3
"""Waits until a lifeboat source agent reports its first volume's first target
in sync: bench/wait_in_sync.py PORT [INTERVAL_SECONDS=0.01] [--ready].

With --ready it prints "ready" once the interpreter is up and waits for a line
on stdin before it polls, so a benchmark can start its clock after the
interpreter's start: through a pyenv shim, python3 alone took 0.3 s and 0.35
CPU seconds on a 2-core machine, inside the figure and beside the agents.

One process and one kept-alive HTTP connection for the whole wait, so that the
poll costs little beside the agents it times. A `curl | jq` pair spawned every
10 ms cost about one core of a 2-core machine (measured: 16.6 CPU seconds
during an 18.4 s initial sync), taken from the agents being measured.
"""
import http.client
import json
import sys
import time


def in_sync(conn):
    conn.request("GET", "/v1/replication")
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        return False
    return json.loads(body)["volumes"][0]["targets"][0].get("in_sync") is True


def main():
    args = [a for a in sys.argv[1:] if a != "--ready"]
    port = int(args[0])
    interval = float(args[1]) if len(args) > 1 else 0.01
    if "--ready" in sys.argv[1:]:
        print("ready", flush=True)
        sys.stdin.readline()
    conn = None
    while True:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if in_sync(conn):
                return
        except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError, TypeError):
            conn = None  # agent not up yet, or restarting: connect again
        time.sleep(interval)


if __name__ == "__main__":
    main()
