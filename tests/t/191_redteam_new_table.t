#!/usr/bin/env bash
# Red team: a table the application creates while ferry follows (the same
# DDL run on the target, as README "schema changes" asks) is never added to
# ferry's publication (src/publication.c: CREATE PUBLICATION ... FOR TABLE
# <the list at clone time>; nothing refreshes it). Its rows never reach the
# target, the switchover neither refuses nor warns, the freeze's fence
# (src/freeze.c: LOCK TABLE on pg_publication_tables) does not cover it,
# so a BEGIN READ WRITE session writes to it on the frozen source, and the
# watch (src/watch.c, peeks through the forward publications) does not
# see writes to it on the old source either.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
for s in source target; do
  q $s "CREATE TABLE orders_2 (id int PRIMARY KEY, v text, at timestamptz DEFAULT clock_timestamp())" >/dev/null
done
q source "INSERT INTO orders_2 SELECT g, 'committed while following' FROM generate_series(1, 100) g" >/dev/null
q source "INSERT INTO kv VALUES (-1, 'probe', 0)" >/dev/null
wait_applied ferry 60; ok $? "applied"
is "$(q target "SELECT count(*) FROM kv WHERE id = -1")" 1 "a change to an old table is on the target"
is "$(q target "SELECT count(*) FROM orders_2")" 100 "the 100 rows committed to the new table while following are on the target"

# a writer that connects during the freeze and opens BEGIN READ WRITE
cat >"$TEST_TMP/w.sh" <<SH
for i in \$(seq 1 400); do
  "$PGBIN/psql" -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app \
    -c "BEGIN READ WRITE; INSERT INTO orders_2 VALUES (1000 + \$i, 'during the freeze'); COMMIT" >/dev/null 2>&1
  sleep 0.02
done
SH
"${F[@]}" switchover --yes --max-lag 10 --timeout 60 \
  --hook-timeout 30 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err" &
SP=$!
# start the writer once the source is frozen
for _ in $(seq 1 200); do
  [ "$(QDB=postgres q source "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'app' AND 'default_transaction_read_only=on' = ANY (s.setconfig)")" = 1 ] && break
  sleep 0.05
done
bash "$TEST_TMP/w.sh" & WP=$!
wait "$SP"; is "$?" 0 "switchover exits 0" || diag "$(tail -5 "$TEST_TMP/sw.err")"
kill "$WP" 2>/dev/null; wait "$WP" 2>/dev/null
FROZEN_WRITES=$(q source "SELECT count(*) FROM orders_2 WHERE id > 1000")
diag "rows written to orders_2 on the source during/after the freeze: $FROZEN_WRITES"
is "$(migration_phase)" switched "switched"
WIN=$(q target "SELECT (source_freeze::json->>'frozen_at') || '|' || switch_hook_at FROM ferry.migration WHERE name = 'ferry'")
diag "freeze window (frozen_at|switch_hook_at): $WIN"
IN_WINDOW=$(q source "SELECT count(*) FROM orders_2 WHERE id > 1000 AND at > '${WIN%%|*}'::timestamptz AND at < '${WIN##*|}'::timestamptz")
is "$IN_WINDOW" 0 "no write was accepted by the frozen source (rows of orders_2 committed between the freeze and the switch hook)"
is "$(q target "SELECT count(*) FROM orders_2")" "$(q source "SELECT count(*) FROM orders_2")" \
  "every committed row of orders_2 is on the new primary"
sleep 5
q source "BEGIN READ WRITE; INSERT INTO orders_2 VALUES (999999, 'stray after the switch'); COMMIT" >/dev/null
sleep 5
"${F[@]}" status >"$TEST_TMP/st" 2>&1; rc=$?
is "$rc" 1 "status exits 1 after a stray write to orders_2 on the old source"
kill -TERM "$FP" 2>/dev/null; wait "$FP"
done_testing
