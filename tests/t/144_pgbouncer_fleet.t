#!/usr/bin/env bash
# A fleet of two PgBouncers in front of one database (issue 16): both are
# paused before the freeze and resumed after both are repointed. The first
# is repointed by ferry rewriting its ini file, the second by a repoint:
# command (what ferry cannot edit itself). An application writes through
# each (psycopg2, 3 threads each, transaction pooling) all along:
# - the second's repoint fails: the first, already repointed, is pointed
#   back, both resume on the source, nothing changed;
# - then the switchover succeeds, and a rollback brings both back;
# zero failed requests, every acknowledged write where it belongs. The
# first has min_pool_size (PgBouncer then waits server_login_retry, 15 s,
# after a RESUME, unless ferry sets it to 0 for the resume: pooler.h).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"
. "$(dirname "$0")/../lib/pgbouncer.sh"

APP="/usr/bin/python3 $(dirname "$0")/../lib/pooler_app.py"
follow_servers
for side in source target; do q "$side" "CREATE ROLE app_rw LOGIN" >/dev/null; done
q source "CREATE TABLE orders (id bigint PRIMARY KEY, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
          GRANT SELECT, INSERT ON orders TO app_rw" >/dev/null
PGB_ENTRY_OPTS="min_pool_size=2" pgb_start pgb1 source transaction
pgb_start pgb2 source transaction
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN" --config "$TEST_TMP/ferry.yaml")
# the second pooler's repoint, as a deploy tool would do it; fails on demand
cat >"$TEST_TMP/repoint.sh" <<SH
#!/bin/sh
echo "repoint \$FERRY_PGBOUNCER_HOST:\$FERRY_PGBOUNCER_PORT \$FERRY_PGBOUNCER_DATABASE to \$FERRY_REPOINT_TO \$FERRY_REPOINT_HOST:\$FERRY_REPOINT_PORT/\$FERRY_REPOINT_DBNAME" >>"$TEST_TMP/repoint.log"
[ "\$FERRY_REPOINT_TO" = target ] && [ -f "$TEST_TMP/fail-repoint" ] && exit 3
sed -i "s|^app = .*|app = host=\$FERRY_REPOINT_HOST port=\$FERRY_REPOINT_PORT dbname=\$FERRY_REPOINT_DBNAME|" "$PGB2_INI"
SH
chmod +x "$TEST_TMP/repoint.sh"
cat >"$TEST_TMP/ferry.yaml" <<YAML
pgbouncer:
  - admin: "$PGB1_ADMIN"
    ini: $PGB1_INI
  - admin: "$PGB2_ADMIN"
    repoint: $TEST_TMP/repoint.sh
YAML
"${F[@]}" start --jobs 2 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
FP=$!
wait_following; ok $? "ferry start follows"

$APP "$PGB1_APP" "$TEST_TMP/acked1" 24 3 30 persistent >"$TEST_TMP/app1.out" 2>"$TEST_TMP/app1.err" &
AP1=$!
$APP "$PGB2_APP" "$TEST_TMP/acked2" 24 3 30 persistent 500000000 >"$TEST_TMP/app2.out" 2>"$TEST_TMP/app2.err" &
AP2=$!
sleep 2

touch "$TEST_TMP/fail-repoint"
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw1.out" 2>"$TEST_TMP/sw1.err"
is $? 1 "the second pooler's repoint fails: exit 1"
like "$(cat "$TEST_TMP/sw1.err")" "the repoint hook failed \(exit status 3\)" "the failing command is named"
is "$(pgb_entry pgb1) $(pgb_entry pgb2)" "$SOURCE_SOCK|$SOURCE_PORT|app|0 $SOURCE_SOCK|$SOURCE_PORT|app|0" \
   "both poolers point at the source again, resumed (the first was repointed and pointed back)"
is "$(grep -c "PgBouncer 127.0.0.1:$PGB1_PORT: entry app points at the target now" "$TEST_TMP/sw1.err") $(grep -c "PgBouncer 127.0.0.1:$PGB1_PORT: entry app points at the source now" "$TEST_TMP/sw1.err")" \
   "1 1" "the first went to the target and back"
is "$(migration_phase)" following "phase following"
source_writable; is $? 0 "the source takes writes"
rm -f "$TEST_TMP/fail-repoint"

sleep 1
"${F[@]}" switchover --yes --max-lag 5 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
rc=$?; is $rc 0 "switchover with two PgBouncers exits 0"; [ $rc = 0 ] || diag "$(tail -20 "$TEST_TMP/sw.err")"
is "$(pgb_entry pgb1) $(pgb_entry pgb2)" "$TARGET_SOCK|$TARGET_PORT|app|0 $TARGET_SOCK|$TARGET_PORT|app|0" "both point at the target, resumed"
like "$(cat "$TEST_TMP/sw.out")" "clients held +[0-9.]+ s in 2 PgBouncers" "the report counts both"
diag "ferry: $(grep -E 'clients held|held requests|write downtime' "$TEST_TMP/sw.out" | tr -s ' ' | tr '\n' ';')"
p1=$(grep -n "PgBouncer 127.0.0.1:$PGB1_PORT: paused" "$TEST_TMP/sw.err" | cut -d: -f1)
p2=$(grep -n "PgBouncer 127.0.0.1:$PGB2_PORT: paused" "$TEST_TMP/sw.err" | cut -d: -f1)
fz=$(grep -n "ended [0-9]* application sessions on the source" "$TEST_TMP/sw.err" | head -1 | cut -d: -f1)
r1=$(grep -n "PgBouncer 127.0.0.1:$PGB1_PORT: resumed" "$TEST_TMP/sw.err" | cut -d: -f1)
t2=$(grep -n "PgBouncer 127.0.0.1:$PGB2_PORT: entry app points at the target now" "$TEST_TMP/sw.err" | cut -d: -f1)
ok "$([ -n "$p1" ] && [ -n "$p2" ] && [ "$p1" -lt "$fz" ] && [ "$p2" -lt "$fz" ]; echo $?)" "both were paused before the freeze"
ok "$([ -n "$r1" ] && [ -n "$t2" ] && [ "$t2" -lt "$r1" ]; echo $?)" "both were repointed before either was resumed"

sleep 2
"${F[@]}" rollback --yes --max-lag 5 >"$TEST_TMP/rb.out" 2>"$TEST_TMP/rb.err"
rc=$?; is $rc 0 "rollback with two PgBouncers exits 0"; [ $rc = 0 ] || diag "$(tail -20 "$TEST_TMP/rb.err")"
is "$(pgb_entry pgb1) $(pgb_entry pgb2)" "$SOURCE_SOCK|$SOURCE_PORT|app|0 $SOURCE_SOCK|$SOURCE_PORT|app|0" "both point at the source again, resumed"
like "$(tail -1 "$TEST_TMP/repoint.log")" "to source $SOURCE_SOCK:$SOURCE_PORT/app" "the repoint command was told where to"

wait "$AP1" "$AP2"
diag "application through the first: $(cat "$TEST_TMP/app1.out")"
diag "application through the second: $(cat "$TEST_TMP/app2.out")"
like "$(cat "$TEST_TMP/app1.out") $(cat "$TEST_TMP/app2.out")" "failed=0 .*failed=0 " "zero failed requests through either"
stall=$(sed -n 's/.*max_latency=\([0-9.]*\).*/\1/p' "$TEST_TMP/app1.out")
ok "$(awk -v s="$stall" 'BEGIN { exit !(s < 5) }'; echo $?)" "no server_login_retry stall behind min_pool_size (longest request $stall s)"
is "$(pgb q pgb1 "SHOW CONFIG" | awk -F'|' '$1 == "server_login_retry" { print $2 }')" 15 "server_login_retry is back at its value"
sort "$TEST_TMP/acked1" "$TEST_TMP/acked2" >"$TEST_TMP/acked.s"
order_ids source >"$TEST_TMP/src_ids"
is "$(comm -23 "$TEST_TMP/acked.s" "$TEST_TMP/src_ids" | wc -l)" 0 "every acknowledged write is on the source after the rollback"
is "$(q source "SELECT count(*) - count(DISTINCT id) FROM orders")" 0 "exactly once"
kill -TERM "$FP" 2>/dev/null; wait "$FP" 2>/dev/null
unlike "$(cat "$TEST_TMP/err" "$TEST_TMP/sw.err" "$TEST_TMP/sw1.err" "$TEST_TMP/rb.err")" "runtime error|LeakSanitizer" "no sanitizer reports"
done_testing
