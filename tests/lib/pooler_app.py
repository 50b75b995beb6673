#!/usr/bin/python3
"""pooler_app.py: an application behind PgBouncer, for the pooler switchover.

THREADS threads, each writing one row per transaction into `orders`
(id, writer) at RATE transactions per second (a steady pace: the next one
is due 1/RATE after the last one was due, not after it ended), for
DURATION seconds, through the conninfo in CONNINFO (PgBouncer). It never
reconnects elsewhere: the point is that the pooler moves it. Modes:
  persistent   one connection per thread for the whole run (transaction
               pooling: what most pooled applications do)
  per-request  connect, write, commit, disconnect for each row (session
               pooling as PHP-style applications use it)
Every request that raises an error counts as failed and is retried
(persistent: on a fresh connection when the old one broke). Every
acknowledged write (COMMIT returned) is printed to ACKFILE, one id a line.

Printed on stdout, one line:
  acked=N failed=N max_latency=S max_gap=S first_error=TEXT
max_latency is the longest one request took, as the client saw it
(connect included in per-request mode): the longest stall; max_gap the
longest time one thread went without an acknowledged write.

usage: pooler_app.py CONNINFO ACKFILE DURATION THREADS RATE MODE [ID_BASE]
"""
import sys
import threading
import time

import psycopg2

conninfo, ackfile = sys.argv[1], sys.argv[2]
duration, threads, rate = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
mode = sys.argv[6]
id_base = int(sys.argv[7]) if len(sys.argv) > 7 else 0
lock = threading.Lock()
acked = []
stats = {"failed": 0, "max_latency": 0.0, "max_gap": 0.0, "first_error": ""}
stop_at = time.monotonic() + duration


def connect():
    return psycopg2.connect(conninfo, connect_timeout=10, application_name="pooler_app")


def write(conn, oid, style):
    cur = conn.cursor()
    cur.execute("INSERT INTO orders (id, writer) VALUES (%s, %s)", (oid, style))
    conn.commit()


def worker(n):
    style = "%s-%d" % (mode, n)
    seq = 0
    conn = None
    due = time.monotonic()
    last_ack = time.monotonic()
    while time.monotonic() < stop_at:
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        due += 1.0 / rate
        seq += 1
        oid = id_base + (n + 1) * 10_000_000 + seq
        t0 = time.monotonic()
        try:
            if mode == "per-request":
                c = connect()
                try:
                    write(c, oid, style)
                finally:
                    c.close()
            else:
                if conn is None or conn.closed:
                    conn = connect()
                write(conn, oid, style)
            t1 = time.monotonic()
            with lock:
                acked.append(oid)
                stats["max_latency"] = max(stats["max_latency"], t1 - t0)
                stats["max_gap"] = max(stats["max_gap"], t1 - last_ack)
            last_ack = t1
        except psycopg2.Error as e:
            with lock:
                stats["failed"] += 1
                if not stats["first_error"]:
                    stats["first_error"] = str(e).strip().replace("\n", " ")[:200]
            if conn is not None:
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(ackfile, "w") as f:
    for oid in acked:
        f.write("%d\n" % oid)
print("acked=%d failed=%d max_latency=%.3f max_gap=%.3f first_error=%s"
      % (len(acked), stats["failed"], stats["max_latency"], stats["max_gap"], stats["first_error"] or "-"))
