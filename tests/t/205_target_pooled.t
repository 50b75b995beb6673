#!/usr/bin/env bash
# A target reached through a pooler in transaction pooling mode: each of
# ferry's transactions may run in another server session, so what ferry
# holds for a session's life does not hold: the migration lock and the
# apply fence (advisory locks: one stays on a pooled server session, the
# other ferry's "lock" is a no-op elsewhere), session_replication_role,
# prepared statements. Such a target must be refused by `check` (exit 3,
# with the fix) and by `start` before anything is created (no slot or
# publication on the source, nothing on the target). Session pooling is
# fine: ferry's sessions are its own there.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

follow_servers
pgb_start tpb target transaction
pgb_start spb target session
TX="host=127.0.0.1 port=$TPB_PORT dbname=app user=postgres"
SE="host=127.0.0.1 port=$SPB_PORT dbname=app user=postgres"

"$FERRY" --source "$SOURCE_CONN" --target "$TX" check >"$TEST_TMP/c1.out" 2>"$TEST_TMP/c1.err"
is $? 3 "check of a target behind transaction pooling: exit 3"
like "$(grep -A3 'session pinning' "$TEST_TMP/c1.out" | tr '\n' ' ')" "FAIL.*transaction or statement pooling.*pool_mode = session" \
  "the row names the pooling and the fix" || diag "$(cat "$TEST_TMP/c1.out")"

"$FERRY" --source "$SOURCE_CONN" --target "$TX" start --jobs 2 >"$TEST_TMP/s1.out" 2>"$TEST_TMP/s1.err" &
SP=$!
for _ in $(seq 1 300); do kill -0 "$SP" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SP" 2>/dev/null; then kill -TERM "$SP"; wait "$SP"; rc=timeout; else wait "$SP"; rc=$?; fi
is "$rc" 1 "start through transaction pooling: exit 1, at once"
like "$(cat "$TEST_TMP/s1.err")" "transaction or statement pooling.*Fix:" "start says why, with the fix" || diag "$(tail -5 "$TEST_TMP/s1.err")"
is "$(slot_count source)" 0 "no replication slot left on the source"
is "$(q source "SELECT count(*) FROM pg_publication")" 0 "no publication on the source"
is "$(q target "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")" 0 "nothing created on the target"

# statement pooling, and transaction pooling with idle server sessions kept ready
pgb_start stpb target statement
PGB_ENTRY_OPTS="min_pool_size=4" pgb_start mpb target transaction
sleep 1
for p in "$STPB_PORT" "$MPB_PORT"; do
  "$FERRY" --source "$SOURCE_CONN" --target "host=127.0.0.1 port=$p dbname=app user=postgres" check >"$TEST_TMP/c$p.out" 2>&1
  is $? 3 "check through pooler port $p: exit 3"
  like "$(grep 'session pinning' "$TEST_TMP/c$p.out")" "FAIL" "its session pinning row fails" || diag "$(cat "$TEST_TMP/c$p.out")"
done

"$FERRY" --source "$SOURCE_CONN" --target "$SE" check >"$TEST_TMP/c2.out" 2>"$TEST_TMP/c2.err"
unlike "$(cat "$TEST_TMP/c2.out")" "transaction or statement pooling" "session pooling is not refused"
like "$(grep -i 'session pinning' "$TEST_TMP/c2.out")" "^ok" "its row is ok" || diag "$(cat "$TEST_TMP/c2.out")"
"$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" check >"$TEST_TMP/c3.out" 2>&1
like "$(grep -i 'session pinning' "$TEST_TMP/c3.out")" "^ok" "a direct target's row is ok"
done_testing
