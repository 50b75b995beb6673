#!/usr/bin/env bash
# Outside attack: nextval on the frozen source. The fence (src/freeze.c) locks
# only the published tables; a session with BEGIN READ WRITE (or a role
# with default_transaction_read_only = off) advances a sequence on the
# frozen source after step 7 copied the sequences, past the new primary's
# value + gap: the new primary then hands out the same ids again (29,000
# of them once). The fence now holds the sequences too (a no-op ALTER
# SEQUENCE in its transaction: nextval waits for that lock).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
cat >"$TEST_TMP/w.sh" <<SH
# bounded: a switchover that never records its intent must not hang the test
while [ "\$SECONDS" -lt 60 ] && [ -z "\$("$PGBIN/psql" -XAtq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres app -c "SELECT switch_hook_at FROM ferry.migration WHERE name = 'ferry'")" ]; do
  "$PGBIN/psql" -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app \
    -c "BEGIN READ WRITE; SELECT count(nextval('kv_new_ids')) FROM generate_series(1, 5000); COMMIT" >/dev/null 2>&1
done
SH
"${F[@]}" switchover --yes >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err" &
SP=$!
for _ in $(seq 1 200); do
  [ "$(QDB=postgres q source "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'app' AND 'default_transaction_read_only=on' = ANY (s.setconfig)")" = 1 ] && break
  sleep 0.05
done
bash "$TEST_TMP/w.sh" & WP=$!
wait "$SP"; is "$?" 0 "switchover exits 0" || diag "$(tail -5 "$TEST_TMP/sw.err")"
wait "$WP" 2>/dev/null  # the writer stops by itself once the switch intent (switch_hook_at) is recorded
SRC=$(q source "SELECT last_value FROM kv_new_ids"); TGT=$(q target "SELECT last_value FROM kv_new_ids")
diag "kv_new_ids: old source $SRC, new primary $TGT (started at 10000000); the writer stopped at the switch intent"
ok "$([ "$TGT" -ge "$SRC" ] && echo 0 || echo 1)" "the new primary's sequence is past every value the old source handed out"
like "$(cat "$TEST_TMP/sw.err")" "holding every write to the published tables on the source, and nextval on its sequences" "the fence holds the sequences"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
done_testing
