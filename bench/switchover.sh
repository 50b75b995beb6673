#!/usr/bin/env bash
# switchover.sh: `ferry switchover` as the application sees it, direct and
# through PgBouncer, side by side.
#
# Usage: bench/switchover.sh   (environment: SCALE pgbench scale of the
# background data, default 10; ROUNDS, 3; CLIENTS writer processes, 4; RATE
# writes per second per writer, 250; LOAD pgbench -R rate besides the
# writers, 200; MODES, "direct pgbouncer"; FERRY, build/ferry; LOGS keep
# logs there)
#
# Two fresh servers (bench/lib.sh, durable settings). The source gets
# `pgbench -i -s SCALE` and a table bench_writes (id bigserial PRIMARY KEY,
# client int, at timestamptz). Each round runs every mode once (the order
# alternates between rounds); each run: a fresh target database, `ferry
# start` until following; then bench/writer.c (CLIENTS processes, each
# inserting one row at a time at RATE/s, connecting with the conninfo in a
# file they re-read on every reconnect) and pgbench -N at LOAD tx/s write;
# after 5 s `ferry switchover --yes` runs; the writers keep going for 10 s
# more.
#   direct     the writers and pgbench connect to the source; a switch hook
#              rewrites the writers' file to point at the target (as a
#              config change or DNS would): every write in the window fails
#              and is retried on a new connection
#   pgbouncer  the writers and pgbench connect to a PgBouncer (transaction
#              pooling, started for the run, unix socket only) whose entry
#              points at the source; `--pgbouncer ... --pgbouncer-ini`
#              pauses it, repoints the entry at the target and resumes it:
#              the writers never reconnect, nothing points them elsewhere
#
# Reported per run and as medians per mode:
#   failed     writes that failed, as the writers saw them (every one is
#              retried), and pgbench clients that aborted on an error
#   stall      the longest gap one writer saw between two successful writes:
#              the longest client-observed stall
#   window     direct: first failed write on the source -> first successful
#              write on the target (the issue 4 measure); pgbouncer: -
#   ferry      the write downtime ferry reports (freeze -> switch done)
#   held       pgbouncer: how long ferry held the clients (PAUSE -> RESUME)
#   lost / dup acknowledged writes missing on the target / present twice:
#              must be 0 (FAIL otherwise)
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

SCALE=${SCALE:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
RATE=${RATE:-250}
LOAD=${LOAD:-200}
MODES=${MODES:-direct pgbouncer}
FERRY_SRC=${FERRY:-$HERE/../build/ferry}
[ -x "$FERRY_SRC" ] || bench_die "no ferry binary at $FERRY_SRC (run make)"
cp "$FERRY_SRC" "$BENCH_TMP/ferry"
FERRY="$BENCH_TMP/ferry"
cc -O2 -o "$BENCH_TMP/writer" "$HERE/writer.c" -I"$(pg_config --includedir)" -lpq || bench_die "could not build writer.c"
case " $MODES " in *" pgbouncer "*) command -v pgbouncer >/dev/null || bench_die "pgbouncer is not installed (scripts/install-deps.sh)" ;; esac

bench_start source
bench_start target
bq source postgres "CREATE DATABASE app" >/dev/null
pgbench -q -i -s "$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >/dev/null 2>&1 || bench_die "pgbench -i failed"
bq source app "CREATE TABLE bench_writes (id bigserial PRIMARY KEY, client int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())" >/dev/null

SRC=$(bench_conninfo source app)
TGT=$(bench_conninfo target app)
PGB_DIR="$BENCH_TMP/pgbouncer"

# pgb_start: a PgBouncer of the run's own (unix socket only), entry app -> the source
pgb_start() {
  rm -rf "$PGB_DIR"; mkdir -p "$PGB_DIR"
  cat >"$PGB_DIR/pgbouncer.ini" <<INI
[databases]
app = host=$SOURCE_SOCK port=$SOURCE_PORT dbname=app
[pgbouncer]
listen_addr =
listen_port = 6432
unix_socket_dir = $PGB_DIR
auth_type = trust
auth_file = $PGB_DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
pidfile = $PGB_DIR/pgbouncer.pid
logfile = $PGB_DIR/pgbouncer.log
INI
  echo '"postgres" ""' >"$PGB_DIR/userlist.txt"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$PGB_DIR"
  as_pg pgbouncer -d "$PGB_DIR/pgbouncer.ini" || bench_die "could not start pgbouncer"
  for _ in $(seq 1 50); do [ -S "$PGB_DIR/.s.PGSQL.6432" ] && break; sleep 0.1; done
  PGB_PID=$(cat "$PGB_DIR/pgbouncer.pid"); bench_track "$PGB_PID"   # it runs in a session of its own
}
pgb_stop() {
  kill -TERM "$PGB_PID" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$PGB_PID" 2>/dev/null || break; sleep 0.1; done
  bench_untrack "$PGB_PID"
}

# run MODE ROUND: one switchover; appends "failed aborted stall window ferry held lost dup" to results_MODE
run() {
  local mode=$1 round=$2 R="$BENCH_TMP/r$2-$1" F sw app_conn load_host load_port src
  mkdir -p "$R"
  bench_log "round $round, $mode: fresh target, ferry start"
  bq target postgres "DROP DATABASE IF EXISTS app" >/dev/null
  bq target postgres "CREATE DATABASE app" >/dev/null
  bq source postgres "ALTER DATABASE app RESET default_transaction_read_only" >/dev/null
  bq source app "TRUNCATE bench_writes" >/dev/null
  bq source app "VACUUM ANALYZE" >/dev/null
  F=("$FERRY" --source "$SRC" --target "$TGT" --name bench --config "$R/ferry.yaml")
  if [ "$mode" = pgbouncer ]; then
    pgb_start
    app_conn="host=$PGB_DIR port=6432 dbname=app user=postgres"
    load_host=$PGB_DIR; load_port=6432
    : >"$R/ferry.yaml"
    sw=(--pgbouncer "host=$PGB_DIR port=6432 dbname=pgbouncer user=postgres" --pgbouncer-ini "$PGB_DIR/pgbouncer.ini")
  else
    app_conn=$SRC
    load_host=$SOURCE_SOCK; load_port=$SOURCE_PORT
    printf 'hooks:\n  switch: "echo %s > %s"\n' "'$TGT'" "$R/app.conn" >"$R/ferry.yaml"
    sw=()
  fi
  echo "$app_conn" >"$R/app.conn"
  setsid "${F[@]}" start --jobs 2 >"$R/start.out" 2>"$R/start.err" &
  SP=$!; bench_track "$SP"
  for _ in $(seq 1 600); do
    [ "$(bq target app "SELECT phase FROM ferry.migration WHERE name = 'bench'" 2>/dev/null)" = following ] && break
    sleep 0.5
  done
  [ "$(bq target app "SELECT phase FROM ferry.migration WHERE name = 'bench'")" = following ] || bench_die "ferry start did not reach following (see $R/start.err)"

  "$BENCH_TMP/writer" "$R/app.conn" "$CLIENTS" "$RATE" 15 >"$R/writes.log" 2>&1 &
  WP=$!
  pgbench -n -N -R "$LOAD" -c 4 -T 15 -h "$load_host" -p "$load_port" -U postgres app >"$R/pgbench.log" 2>&1 &
  PB=$!
  sleep 5
  "${F[@]}" switchover --yes --json "${sw[@]}" >"$R/switch.json" 2>"$R/switch.err"
  src=$?
  wait "$WP"; wait "$PB" 2>/dev/null
  kill -TERM "$SP" 2>/dev/null; wait "$SP" 2>/dev/null; bench_untrack "$SP"
  [ "$mode" = pgbouncer ] && pgb_stop
  [ "$src" = 0 ] || bench_die "switchover failed in round $round, $mode (see $R/switch.err)"

  # the application's view
  line=$(python3 - "$R/writes.log" "$SOURCE_SOCK" "$TARGET_SOCK" "$R/switch.json" "$mode" <<'PY'
import json, sys
log, sport, tport, sj, mode = sys.argv[1:6]
first_fail = None; first_tgt_ok = None; last_ok = {}; worst = 0.0; ok_ids = []; failed = 0
for l in open(log):
    p = l.split()
    if len(p) != 5: continue
    t, st, host, c, i = int(p[0]), p[1], p[2], p[3], p[4]
    if st == "fail":
        failed += 1
        if host in (sport, "-") and first_fail is None: first_fail = t
    if st == "ok":
        ok_ids.append(int(i))
        if host == tport and first_tgt_ok is None: first_tgt_ok = t
        if c in last_ok: worst = max(worst, (t - last_ok[c]) / 1e6)
        last_ok[c] = t
w = "%.3f" % ((first_tgt_ok - first_fail) / 1e6) if first_fail and first_tgt_ok else "-"
j = json.load(open(sj))
held = "%.3f" % j["pgbouncer"]["held_seconds"] if "pgbouncer" in j else "-"
print("%d %.3f %s %.3f %s %d %s" % (failed, worst, w, j["write_downtime_seconds"], held, len(ok_ids), ",".join(map(str, ok_ids))))
PY
)
  read -r failed worst cw fw held nok ids <<<"$line"
  aborted=$(grep -cE "client [0-9]+ (script [0-9]+ )?aborted" "$R/pgbench.log")
  printf '%s\n' "${ids//,/$'\n'}" | sort >"$R/ok.ids"
  bq target app "SELECT id FROM bench_writes" | sort >"$R/tgt.ids"
  lost=$(comm -23 "$R/ok.ids" "$R/tgt.ids" | wc -l)
  dup=$(bq target app "SELECT count(*) - count(DISTINCT id) FROM bench_writes")
  bench_log "round $round, $mode: $failed failed writes, $aborted pgbench clients aborted, longest writer stall ${worst}s, client window ${cw}s, ferry window ${fw}s, clients held ${held}s, $nok acknowledged writes, lost $lost, duplicated $dup"
  eval "results_$mode+=(\"$failed $aborted $worst $cw $fw $held $lost $dup\")"
  [ "$lost" = 0 ] && [ "$dup" = 0 ] || { bench_log "FAIL: lost or duplicated writes"; FAILED=1; }
  "$FERRY" --source "$SRC" --target "$TGT" --name bench cleanup >/dev/null 2>&1
  [ -n "${LOGS:-}" ] && mkdir -p "$LOGS" && cp -r "$R" "$LOGS/"
}

results_direct=(); results_pgbouncer=()
for round in $(seq 1 "$ROUNDS"); do
  order=$MODES
  [ $((round % 2)) = 0 ] && order=$(echo "$MODES" | tr ' ' '\n' | tac | tr '\n' ' ')
  for mode in $order; do run "$mode" "$round"; done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0 || a[1] == "-") { print "-"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$1" '{ print $c }'; }
echo
echo "ferry switchover, $ROUNDS rounds per mode, $CLIENTS writers x $RATE writes/s + pgbench -N at $LOAD tx/s, scale $SCALE"
printf '%-10s %-6s %-12s %-12s %-10s %-14s %-10s %-10s %-5s %s\n' mode run failed-writes pgbench-abort stall-s client-window-s ferry-s held-s lost dup
for mode in $MODES; do
  eval "rs=(\"\${results_$mode[@]}\")"
  for i in "${!rs[@]}"; do
    read -r f a w cw fw h l d <<<"${rs[$i]}"
    printf '%-10s %-6s %-12s %-12s %-10s %-14s %-10s %-10s %-5s %s\n' "$mode" "$((i + 1))" "$f" "$a" "$w" "$cw" "$fw" "$h" "$l" "$d"
  done
  printf '%-10s %-6s %-12s %-12s %-10s %-14s %-10s %-10s\n' "$mode" median \
    "$(printf '%s\n' "${rs[@]}" | col 1 | median)" "$(printf '%s\n' "${rs[@]}" | col 2 | median)" \
    "$(printf '%s\n' "${rs[@]}" | col 3 | median)" "$(printf '%s\n' "${rs[@]}" | col 4 | median)" \
    "$(printf '%s\n' "${rs[@]}" | col 5 | median)" "$(printf '%s\n' "${rs[@]}" | col 6 | median)"
done
[ -z "${FAILED:-}" ]
