#!/usr/bin/env bash
# switchover.sh: the write-unavailability window of `ferry switchover` as the
# application sees it.
#
# Usage: bench/switchover.sh   (environment: SCALE pgbench scale of the
# background data, default 10; ROUNDS, 3; CLIENTS writer processes, 4; RATE
# writes per second per writer, 250; LOAD pgbench -R rate on the source
# besides the writers, 200; FERRY, build/ferry; LOGS keep logs there)
#
# Two fresh servers (bench/lib.sh, durable settings). The source gets
# `pgbench -i -s SCALE` and a table bench_writes (id bigserial PRIMARY KEY,
# client int, at timestamptz). Each round: a fresh target database, `ferry
# start` until following; then bench/writer.c (CLIENTS processes, each
# inserting one row at a time at RATE/s, connecting with the conninfo in a
# file they re-read on every reconnect, like an application behind a
# config file or pooler) and pgbench -N at LOAD tx/s write to the source;
# after 5 s `ferry switchover --yes` runs with a switch hook that rewrites
# that file to point at the target. The writers keep going for 10 s more.
#
# Reported per round and as medians:
#   client window  first failed write on the source -> first successful
#                  write on the target (any writer): what the issue asks for
#   worst writer   the longest gap one writer saw between two successful writes
#   ferry window   the write downtime ferry reports (freeze -> switch hook done)
#   lost / dup     acknowledged writes missing on the target / present twice:
#                  must be 0 (FAIL otherwise)
# Goal (issue 4): client window under 1 second.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

SCALE=${SCALE:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
RATE=${RATE:-250}
LOAD=${LOAD:-200}
FERRY_SRC=${FERRY:-$HERE/../build/ferry}
[ -x "$FERRY_SRC" ] || bench_die "no ferry binary at $FERRY_SRC (run make)"
cp "$FERRY_SRC" "$BENCH_TMP/ferry"
FERRY="$BENCH_TMP/ferry"
cc -O2 -o "$BENCH_TMP/writer" "$HERE/writer.c" -I"$(pg_config --includedir)" -lpq || bench_die "could not build writer.c"

bench_start source
bench_start target
bq source postgres "CREATE DATABASE app" >/dev/null
pgbench -q -i -s "$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >/dev/null 2>&1 || bench_die "pgbench -i failed"
bq source app "CREATE TABLE bench_writes (id bigserial PRIMARY KEY, client int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())" >/dev/null

SRC=$(bench_conninfo source app)
TGT=$(bench_conninfo target app)
results=()

for round in $(seq 1 "$ROUNDS"); do
  R="$BENCH_TMP/r$round"; mkdir -p "$R"
  bench_log "round $round: fresh target, ferry start"
  bq target postgres "DROP DATABASE IF EXISTS app" >/dev/null
  bq target postgres "CREATE DATABASE app" >/dev/null
  bq source postgres "ALTER DATABASE app RESET default_transaction_read_only" >/dev/null
  bq source app "TRUNCATE bench_writes" >/dev/null
  bq source app "VACUUM ANALYZE" >/dev/null
  echo "$SRC" > "$R/app.conn"
  printf 'hooks:\n  switch: "echo %s > %s"\n' "'$TGT'" "$R/app.conn" > "$R/ferry.yaml"
  F=("$FERRY" --source "$SRC" --target "$TGT" --name bench --config "$R/ferry.yaml")
  setsid "${F[@]}" start --jobs 2 >"$R/start.out" 2>"$R/start.err" &
  SP=$!; bench_track "$SP"
  for i in $(seq 1 600); do
    [ "$(bq target app "SELECT phase FROM ferry.migration WHERE name = 'bench'" 2>/dev/null)" = following ] && break
    sleep 0.5
  done
  [ "$(bq target app "SELECT phase FROM ferry.migration WHERE name = 'bench'")" = following ] || bench_die "ferry start did not reach following (see $R/start.err)"

  "$BENCH_TMP/writer" "$R/app.conn" "$CLIENTS" "$RATE" 15 >"$R/writes.log" 2>&1 &
  WP=$!
  pgbench -n -N -R "$LOAD" -c 4 -T 15 -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >"$R/pgbench.log" 2>&1 &
  PB=$!
  sleep 5
  "${F[@]}" switchover --yes --json >"$R/switch.json" 2>"$R/switch.err"
  src=$?
  wait "$WP"; wait "$PB" 2>/dev/null
  kill -TERM "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; bench_untrack "$SP"
  [ "$src" = 0 ] || bench_die "switchover failed in round $round (see $R/switch.err)"

  # the application's view
  line=$(python3 - "$R/writes.log" "$SOURCE_SOCK" "$TARGET_SOCK" "$R/switch.json" <<'PY'
import json, sys
log, sport, tport, sj = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
first_fail = None; first_tgt_ok = None; last_ok = {}; worst = 0.0; ok_ids = []
for l in open(log):
    p = l.split()
    if len(p) != 5: continue
    t, st, port, c, i = int(p[0]), p[1], p[2], p[3], p[4]
    if st == "fail" and port in (sport, "-") and first_fail is None: first_fail = t
    if st == "ok":
        ok_ids.append(int(i))
        if port == tport and first_tgt_ok is None: first_tgt_ok = t
        if c in last_ok: worst = max(worst, (t - last_ok[c]) / 1e6)
        last_ok[c] = t
w = (first_tgt_ok - first_fail) / 1e6 if first_fail and first_tgt_ok else -1
fw = json.load(open(sj))["write_downtime_seconds"]
print("%.3f %.3f %.3f %d %s" % (w, worst, fw, len(ok_ids), ",".join(map(str, ok_ids))))
PY
)
  read -r cw worst fw nok ids <<<"$line"
  printf '%s\n' "${ids//,/$'\n'}" | sort > "$R/ok.ids"
  bq target app "SELECT id FROM bench_writes" | sort > "$R/tgt.ids"
  lost=$(comm -23 "$R/ok.ids" "$R/tgt.ids" | wc -l)
  dup=$(bq target app "SELECT count(*) - count(DISTINCT id) FROM bench_writes")
  extra=$(comm -13 "$R/ok.ids" "$R/tgt.ids" | wc -l)
  bench_log "round $round: client window ${cw}s, worst writer gap ${worst}s, ferry window ${fw}s, $nok acknowledged writes, lost $lost, duplicated $dup, unacknowledged but committed $extra"
  results+=("$cw $worst $fw $lost $dup")
  [ "$lost" = 0 ] && [ "$dup" = 0 ] || { bench_log "FAIL: lost or duplicated writes"; FAILED=1; }
  "$FERRY" --source "$SRC" --target "$TGT" --name bench cleanup >/dev/null 2>&1
  [ -n "${LOGS:-}" ] && mkdir -p "$LOGS" && cp -r "$R" "$LOGS/"
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
echo "ferry switchover, $ROUNDS rounds, $CLIENTS writers x $RATE writes/s + pgbench -N at $LOAD tx/s, scale $SCALE"
printf '%-28s %s\n' "round" "client-window worst-writer-gap ferry-window lost dup (seconds, seconds, seconds, rows, rows)"
for i in "${!results[@]}"; do printf '%-28s %s\n' "$((i + 1))" "${results[$i]}"; done
printf '%-28s %s s\n' "median client window" "$(printf '%s\n' "${results[@]}" | awk '{print $1}' | median)"
printf '%-28s %s s\n' "median worst writer gap" "$(printf '%s\n' "${results[@]}" | awk '{print $2}' | median)"
printf '%-28s %s s\n' "median ferry window" "$(printf '%s\n' "${results[@]}" | awk '{print $3}' | median)"
[ -z "${FAILED:-}" ]
