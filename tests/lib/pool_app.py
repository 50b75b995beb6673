#!/usr/bin/python3
"""pool_app.py: an application as users run one, for testing the freeze.

A pool of THREADS psycopg2 connections, each writing one row per transaction
into `orders` (id, writer) with ids of its own, for DURATION seconds. A
connection is (re)opened with the conninfo read from CONNFILE, and only when
the one it has breaks: like a real pool, it does not notice a switch until
its connection fails. How each connection asks for writes differs, as real
drivers and frameworks do:
  thread 0, 1: conn.set_session(readonly=False)  (psycopg2 sends BEGIN READ WRITE)
  thread 2:    SET default_transaction_read_only = off after connecting
  thread 3:    plain (the server's default)
Every acknowledged write (COMMIT returned) is printed to ACKFILE, one id a
line, so a test can check that each one exists where it must.

usage: pool_app.py CONNFILE ACKFILE DURATION [THREADS]
"""
import sys
import threading
import time

import psycopg2

connfile, ackfile, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
acked = []
failed = [0]
reconnects = [0]
lock = threading.Lock()
stop_at = time.time() + duration


def connect(style):
    with open(connfile) as f:
        dsn = f.read().strip()
    conn = psycopg2.connect(dsn, connect_timeout=5, application_name="pool_app")
    if style == "readwrite":
        conn.set_session(readonly=False)
    elif style == "set_off":
        conn.autocommit = True
        conn.cursor().execute("SET default_transaction_read_only = off")
        conn.autocommit = False
    return conn


def discard(conn):
    try:
        conn.close()
    except Exception:
        pass


def writer(n):
    style = ["readwrite", "readwrite", "set_off", "plain"][n % 4]
    seq = 0
    conn = None
    while time.time() < stop_at:
        try:
            if conn is None or conn.closed:
                conn = connect(style)
                with lock:
                    reconnects[0] += 1
            seq += 1
            oid = (n + 1) * 10_000_000 + seq
            cur = conn.cursor()
            cur.execute("INSERT INTO orders (id, writer) VALUES (%s, %s)", (oid, style))
            conn.commit()
            with lock:
                acked.append(oid)
        except psycopg2.Error as e:
            with lock:
                failed[0] += 1
            if isinstance(e, psycopg2.OperationalError):
                discard(conn)        # broken: open a new one
                conn = None
            else:
                try:                 # a read-only error: the connection is fine
                    conn.rollback()
                except psycopg2.Error:
                    conn = None
            time.sleep(0.01)
        time.sleep(0.002)


ts = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
with open(ackfile, "w") as f:
    for oid in acked:
        f.write("%d\n" % oid)
print("acked=%d failed=%d connects=%d" % (len(acked), failed[0], reconnects[0]))
