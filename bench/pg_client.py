#!/usr/bin/python3
"""The client side of bench/postgres.sh: what an application sees of a failover.

A writer inserts numbered rows, one committed transaction each, into whichever
of the servers accepts them (it tries the others when its server fails), and
logs every acknowledged row with the time and the server. A watcher asks every
server every 20 ms whether it would take a write (a primary, not read-only),
and logs each instant two did.

    pg_client.py run --ports 5433,5434 --password-file F --log W/run.log --stop-file W/stop
    pg_client.py lost --ports 5433,5434 --password-file F --log W/run.log --primary-port 5434
"""
import argparse
import os
import sys
import threading
import time

import psycopg2


def connect(port, password, timeout=1):
    c = psycopg2.connect(host="127.0.0.1", port=port, user=os.environ.get("PGUSER", "lifeboat"),
                         dbname="postgres", password=password, connect_timeout=timeout,
                         application_name="bench-client")
    c.autocommit = True
    return c


def writer(ports, password, log, stop_file):
    n = 0
    conn, port = None, None
    i = 0
    while not os.path.exists(stop_file):
        if conn is None:
            port = ports[i % len(ports)]
            i += 1
            try:
                conn = connect(port, password)
                cur = conn.cursor()
                cur.execute("SET statement_timeout = '2s'")
            except Exception:
                conn = None
                time.sleep(0.01)
                continue
        try:
            cur = conn.cursor()
            cur.execute("INSERT INTO bench_rows (id) VALUES (%s)", (n + 1,))
            # With a sync standby gone, PostgreSQL turns a cancelled commit
            # wait into success with a warning: that is not an acknowledgement.
            if any("synchronous replication" in w for w in conn.notices):
                conn.notices.clear()
                raise RuntimeError("commit not replicated")
            n += 1
            log.write("ack %d %d %.6f\n" % (n, port, time.time()))
            log.flush()
            time.sleep(0.005)
        except Exception:
            try:
                conn.close()
            except Exception:
                pass
            conn = None


def watcher(ports, password, log, stop_file):
    conns = {}
    while not os.path.exists(stop_file):
        writable = []
        for p in ports:
            try:
                if p not in conns:
                    conns[p] = connect(p, password, timeout=1)
                cur = conns[p].cursor()
                cur.execute("SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'")
                if cur.fetchone()[0]:
                    writable.append(p)
            except Exception:
                conns.pop(p, None)
        if len(writable) > 1:
            log.write("two-writable %s %.6f\n" % (",".join(map(str, writable)), time.time()))
            log.flush()
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "lost"])
    ap.add_argument("--ports", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--stop-file")
    ap.add_argument("--primary-port", type=int)
    a = ap.parse_args()
    ports = [int(p) for p in a.ports.split(",")]
    password = open(a.password_file).readline().rstrip("\n")
    if a.mode == "run":
        with open(a.log, "a") as log:
            t = threading.Thread(target=watcher, args=(ports, password, log, a.stop_file), daemon=True)
            t.start()
            writer(ports, password, log, a.stop_file)
            t.join(timeout=2)
        return
    # lost: acknowledged rows the primary does not have
    acked = set()
    for line in open(a.log):
        f = line.split()
        if f and f[0] == "ack":
            acked.add(int(f[1]))
    c = connect(a.primary_port, password, timeout=5)
    cur = c.cursor()
    cur.execute("SELECT id FROM bench_rows")
    have = {r[0] for r in cur.fetchall()}
    print(len(acked - have))


if __name__ == "__main__":
    sys.exit(main())
