#!/usr/bin/env bash
# Tables without a key never break the source: published insert-only by
# default (the application's UPDATE/DELETE keep working), or, with
# --set-replica-identity-full, given REPLICA IDENTITY FULL so every change
# replicates. status reports per-table copy progress and deltas.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE TABLE keyed (id int PRIMARY KEY, v text);
          CREATE TABLE nokey (a int, b text);
          INSERT INTO keyed SELECT g, 'v' FROM generate_series(1, 100) g;
          INSERT INTO nokey SELECT g % 10, 'b' FROM generate_series(1, 100) g;"

# default: insert-only publication for nokey, the application keeps working
ferry_start
until [ "$(q target "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ]; do sleep 0.2; done
q source "UPDATE nokey SET b = 'changed' WHERE a = 1; DELETE FROM nokey WHERE a = 2; INSERT INTO nokey VALUES (99, 'new')" >/dev/null
ok $? "UPDATE and DELETE on a table without a key still work on the source"
is "$(QDB=app q source "SELECT string_agg(pubname || ':' || pubupdate, ',' ORDER BY pubname) FROM pg_publication")" \
   "ferry:true,ferry_insert_only:false" "it is published for inserts (and truncates) only"
like "$(cat "$TEST_TMP/err")" "WARNING: 1 tables have no primary key or replica identity" "clone warned, naming how many"
wait_applied ferry 30
is "$(q target "SELECT count(*) FROM nokey WHERE a = 99")" "1" "its inserts replicate"
js=$("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --json status --exact 2>/dev/null)
is "$(printf '%s' "$js" | python3 -c 'import json,sys; d={t["name"]: t for t in json.load(sys.stdin)["tables"]}; print(d["public.keyed"]["delta"], d["public.keyed"]["copied"], d["public.nokey"]["delta"])')" \
   "0 True -10" "status shows each table copied and the row delta the insert-only table accumulates"
out=$("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" status --exact 2>/dev/null)
like "$out" "public.nokey +yes +101 +[0-9?]+ +[0-9?]+ +91 +101 +-10" "the text status lists copy state, ferry's count, the statistics, the exact counts and the delta per table"
kill -TERM "$FP"; wait "$FP"

# with consent: REPLICA IDENTITY FULL, and every change replicates
QDB=postgres q target "CREATE DATABASE app2" >/dev/null
T2="host=$TARGET_SOCK port=$TARGET_PORT dbname=app2 user=postgres"
"$FERRY" --source "$SOURCE_CONN" --target "$T2" --name second start --set-replica-identity-full >"$TEST_TMP/out2" 2>"$TEST_TMP/err2" &
FP=$!
until [ "$(QDB=app2 q target "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ]; do sleep 0.2; done
is "$(q source "SELECT relreplident FROM pg_class WHERE relname = 'nokey'")" "f" "--set-replica-identity-full set REPLICA IDENTITY FULL on the source"
q source "UPDATE nokey SET b = 'again' WHERE a = 3; DELETE FROM nokey WHERE a = 4" >/dev/null
for i in $(seq 1 100); do
  [ "$(QDB=app2 q target "SELECT count(*) FROM nokey WHERE b = 'again'")" = "$(q source "SELECT count(*) FROM nokey WHERE b = 'again'")" ] && \
  [ "$(QDB=app2 q target "SELECT count(*) FROM nokey WHERE a = 4")" = 0 ] && break
  sleep 0.1
done
is "$(QDB=app2 q target "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM nokey t")" \
   "$(q source "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM nokey t")" "updates and deletes of duplicate rows replicate exactly"
kill -TERM "$FP"; wait "$FP"
is "$?" 0 "stops cleanly"
done_testing
