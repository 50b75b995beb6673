#!/usr/bin/env bash
# Outside attack: nextval on the frozen source. The fence (src/freeze.c) locks
# only the published tables; a session with BEGIN READ WRITE (or a role
# with default_transaction_read_only = off) advances a sequence on the
# frozen source after step 7 copied the sequences, past the new primary's
# value + gap: the new primary then hands out the same ids again (29,000
# of them once). The fence now holds the sequences too (a no-op ALTER
# SEQUENCE in its transaction: nextval waits for that lock).
# What the old source handed out is read by the switch hook (reading a
# sequence does not wait for the fence): a session that connects after the
# switch, once the fence is handed over, writes on the old primary, which
# is a write after the switch (the watch's business), not one the freeze let
# through; CI once caught the writer's last batch there.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
cat >"$TEST_TMP/ferry.yaml" <<YAML
hooks:
  switch: "'$PGBIN/psql' -XAtq -h '$SOURCE_SOCK' -p $SOURCE_PORT -U postgres app -c 'SELECT last_value FROM kv_new_ids' >'$TEST_TMP/at_switch.tmp' && mv '$TEST_TMP/at_switch.tmp' '$TEST_TMP/at_switch'"
YAML
cat >"$TEST_TMP/w.sh" <<SH
# bounded: a switchover that never runs its switch hook must not hang the test
while [ "\$SECONDS" -lt 60 ] && [ ! -e "$TEST_TMP/at_switch" ]; do
  "$PGBIN/psql" -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app \
    -c "BEGIN READ WRITE; SELECT count(nextval('kv_new_ids')) FROM generate_series(1, 5000); COMMIT" >>"$TEST_TMP/w.log" 2>&1
done
SH
"${F[@]}" --config "$TEST_TMP/ferry.yaml" switchover --yes >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err" &
SP=$!
for _ in $(seq 1 200); do
  [ "$(QDB=postgres q source "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'app' AND 'default_transaction_read_only=on' = ANY (s.setconfig)")" = 1 ] && break
  sleep 0.05
done
bash "$TEST_TMP/w.sh" & WP=$!
wait "$SP"; is "$?" 0 "switchover exits 0" || diag "$(tail -5 "$TEST_TMP/sw.err")"
wait "$WP" 2>/dev/null  # the writer stops by itself once the switch hook ran
AT=$(cat "$TEST_TMP/at_switch" 2>/dev/null); SRC=$(q source "SELECT last_value FROM kv_new_ids"); TGT=$(q target "SELECT last_value FROM kv_new_ids")
diag "kv_new_ids: old source ${AT:-?} at the switch hook, $SRC at the end; new primary $TGT (started at 10000000)"
ok "$([ -n "$AT" ] && [ "$TGT" -ge "$AT" ] && echo 0 || echo 1)" "the new primary's sequence is past every value the old source handed out before the switch"
like "$(cat "$TEST_TMP/sw.err")" "holding every write to the published tables on the source, and nextval on its sequences" "the fence holds the sequences"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
done_testing
