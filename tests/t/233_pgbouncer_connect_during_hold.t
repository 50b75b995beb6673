#!/usr/bin/env bash
# Found by a red-team helper (issue 16), promise 2: a client that opens its connection while
# the entry is held (per-request connections, PHP-style; a pool growing)
# must only wait. Switchover with a 3 s switch hook, transaction pooling,
# no min_pool_size; the pool is warm (the user has connected through it
# before). The client connects once the entry is repointed (after ferry's
# RELOAD, during the switch hook), writes, and is given 10 s (libpq
# connect_timeout) to connect. The same at the rollback.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

MODE=${MODE:-transaction}
follow_servers
pgb_start pgb source "$MODE"
start_following
APP="host=127.0.0.1 port=$PGB_PORT dbname=app user=postgres"
printf 'hooks:\n  switch: "sleep 3"\n  rollback: "sleep 3"\n' >"$TEST_TMP/ferry.yaml"
cat >"$TEST_TMP/client.py" <<PY
import os, sys, time, psycopg2
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
t = time.monotonic()
try:
    c = psycopg2.connect("$APP", connect_timeout=10); c.autocommit = True
    c.cursor().execute("INSERT INTO kv VALUES (%s, 'connected while held', 0)", (int(sys.argv[1]),))
    print("ok %.3f" % (time.monotonic() - t))
except Exception as e:
    print("failed after %.3f s: %s" % (time.monotonic() - t, str(e).strip()))
PY
"$PGBIN/psql" -XAtq "$APP" -c "SELECT 1" >/dev/null   # the pool is warm
for run in switchover rollback; do
  want=$([ $run = switchover ] && echo "$TARGET_PORT" || echo "$SOURCE_PORT")
  id=$([ $run = switchover ] && echo -901 || echo -902)
  /usr/bin/python3 "$TEST_TMP/client.py" $id "$TEST_TMP/go-$run" >"$TEST_TMP/c-$run.out" 2>&1 &
  CP=$!
  ( for _ in $(seq 1 3000); do [ "$(pgb_entry pgb | cut -d'|' -f2,4)" = "$want|1" ] && break; sleep 0.01; done; touch "$TEST_TMP/go-$run" ) &
  "$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml" --json $run --yes --max-lag 5 \
    --pgbouncer "$PGB_ADMIN" --pgbouncer-ini "$PGB_INI" >"$TEST_TMP/$run.json" 2>"$TEST_TMP/$run.err"; rc=$?
  is "$rc" 0 "$run exits 0" || diag "$(grep -E 'ERROR|WARN' "$TEST_TMP/$run.err" | head)"
  wait "$CP"
  diag "$run: the client: $(cat "$TEST_TMP/c-$run.out")"
  diag "$run: report: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pgbouncer"])' "$TEST_TMP/$run.json")"
  like "$(cat "$TEST_TMP/c-$run.out")" "^ok" "$run: the client that connected during the hold got through"
done
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
