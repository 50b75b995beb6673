#!/usr/bin/env bash
# The apply session's prepared statements do not pile up: the walsender sends
# a Relation message again after every invalidation of a table (ALTER TABLE,
# VACUUM, ANALYZE), and each starts a new generation of statements; the old
# generation is deallocated. Counted in the target's apply backend with
# pg_log_backend_memory_contexts (one CachedPlanSource per prepared statement).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
start_following

# 30 new generations of kv's statements: single-row insert, multi-row insert
# (150 rows: one batch of 100 and single rows), update and delete each time
for i in $(seq 1 30); do
  q source "INSERT INTO kv VALUES ($((900000 + i)), 'x', 0); UPDATE kv SET n = n + 1 WHERE id = $((900000 + i));
            DELETE FROM kv WHERE id = $((900000 + i)) - 1;
            INSERT INTO kv SELECT g, 'bulk', 0 FROM generate_series($((1000000 + i * 1000)), $((1000000 + i * 1000 + 149))) g;
            ALTER TABLE kv ALTER COLUMN v SET STATISTICS $((100 + i))" >/dev/null
done
wait_applied ferry 60; ok $? "the target catches up"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal across 30 Relation messages for the same table"

pids=$(QDB=postgres q target "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE application_name LIKE 'ferry%'")
for p in $pids; do QDB=postgres q target "SELECT pg_log_backend_memory_contexts($p)" >/dev/null; done
n=0
for _ in $(seq 1 50); do   # the backends log at their next interrupt check
  n=$(grep -c 'CachedPlanSource.*"public"\."kv"' "$TARGET_DATA/server.log")
  [ "$n" -ge 4 ] && break
  sleep 0.1
done
is "$n" 4 "the apply session holds one single-row and one multi-row insert, one update and one delete statement for kv, not one per generation"
unlike "$(cat "$TEST_TMP/err")" "does not exist" "every statement it drops exists"

stop_cleanly
done_testing
