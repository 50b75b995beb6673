#!/usr/bin/env bash
# lag_ab.sh: live lag of several ferry builds (and native logical replication)
# side by side under the same pgbench load, in one run, alternating per round.
# A quick A/B tool for changes to the apply path; bench/follow.sh remains the
# full benchmark (drain, big transaction, catch-up, CPU).
#
# Usage: bench/lag_ab.sh BINARY|native ...
#   e.g. bench/lag_ab.sh /tmp/ferry-before build/ferry native
# Environment: ROUNDS (3), DUR (seconds of load per run, 20), LOAD (pgbench
# option: -N (default) or "" for TPC-B), SCALE (10), PGBIN, ON_LOAD (a shell
# command run once the load has run 2 s, with PID set to the process that
# applies: ferry, or native's apply worker; its output goes to stderr, e.g.
# ON_LOAD='perf stat -e task-clock,context-switches -p $PID -- sleep 10').
#
# Each run: a fresh target database, the tool follows the source (ferry
# start / CREATE SUBSCRIPTION), pgbench LOAD with 4 clients for DUR seconds,
# lag sampled every 0.2 s as now() on the target minus the source commit time
# of the tool's last commit there (its replication origin's timestamp, as
# bench/follow.sh reads it). Prints one line per run: mean, median and 90th
# percentile of the lag samples, and source tps. LOAD="-N -R 1000" runs a
# rate-limited load that leaves the machine some idle CPU.
set -uo pipefail
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-20}; LOAD=${LOAD--N}; SCALE=${SCALE:-10}
[ $# -gt 0 ] || { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
bench_start source
bench_start target "track_commit_timestamp = on"
DB=app
bq source postgres "CREATE DATABASE $DB" >/dev/null
"$PGBIN/pgbench" -q -i -s "$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres $DB >/dev/null 2>&1 \
  || bench_die "pgbench -i failed"
bq source postgres "CREATE EXTENSION IF NOT EXISTS dblink" >/dev/null || bench_die "dblink (contrib) is needed"
bq source postgres "CREATE FUNCTION lag_s(q text) RETURNS float8 LANGUAGE sql AS
  \$\$ SELECT s FROM dblink('t', q) AS a(s float8) \$\$" >/dev/null
SRC=$(bench_conninfo source $DB); TGT=$(bench_conninfo target $DB)
i=0
for b in "$@"; do
  if [ "$b" != native ]; then
    [ -x "$b" ] || bench_die "$b is not executable"
    cp "$b" "$BENCH_TMP/bin$i"   # a rebuild cannot swap it mid-run
  fi
  i=$((i + 1))
done

run_one() {  # run_one INDEX BINARY|native
  local idx=$1 b=$2 origin pid="" pb tps hook=
  bq target postgres "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  bq target postgres "CREATE DATABASE $DB" >/dev/null
  if [ "$b" = native ]; then
    "$PGBIN/pg_dump" --schema-only -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres $DB \
      | psql -Xq -h "$TARGET_SOCK" -p "$TARGET_PORT" -U postgres $DB >/dev/null
    bq source $DB "DROP PUBLICATION IF EXISTS ab; CREATE PUBLICATION ab FOR ALL TABLES" >/dev/null
    bq target $DB "CREATE SUBSCRIPTION ab CONNECTION '$SRC' PUBLICATION ab" >/dev/null 2>&1
    until [ "$(bq target $DB "SELECT count(*) FILTER (WHERE srsubstate <> 'r') FROM pg_subscription_rel")" = 0 ]; do sleep 0.3; done
    origin=$(bq target $DB "SELECT 'pg_' || oid FROM pg_subscription WHERE subname = 'ab'")
  else
    setsid "$BENCH_TMP/bin$idx" --source "$SRC" --target "$TGT" --name ab start --jobs 2 >"$BENCH_TMP/ferry$idx.log" 2>&1 &
    pid=$!
    bench_track "$pid"
    until [ "$(bq target $DB "SELECT phase FROM ferry.migration" 2>/dev/null)" = following ]; do
      kill -0 "$pid" 2>/dev/null || { tail -5 "$BENCH_TMP/ferry$idx.log" >&2; bench_die "ferry died"; }
      sleep 0.3
    done
    origin=ab
  fi
  sleep 2
  # shellcheck disable=SC2086  # LOAD is one option or none
  setsid "$PGBIN/pgbench" -n $LOAD -c 4 -j 2 -T "$DUR" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres $DB \
    >"$BENCH_TMP/pgbench.log" 2>&1 &
  pb=$!
  bench_track "$pb"
  sleep 1
  if [ -n "${ON_LOAD:-}" ]; then
    local apid=$pid
    [ "$b" = native ] && apid=$(bq target $DB "SELECT pid FROM pg_stat_subscription WHERE subname = 'ab' AND relid IS NULL")
    ( sleep 1; PID=$apid bash -c "$ON_LOAD" >&2 ) &
    hook=$!
  fi
  {
    echo "SELECT dblink_connect('t', 'host=$TARGET_SOCK port=$TARGET_PORT dbname=$DB user=postgres') \\gset"
    for _ in $(seq 1 $(( (DUR - 2) * 5 ))); do
      echo "SELECT lag_s('SELECT extract(epoch FROM now() - x.timestamp) FROM pg_last_committed_xact() x
              JOIN pg_replication_origin o ON o.roident = x.roident WHERE o.roname = ''$origin''');"
      echo "SELECT pg_sleep(0.2);"
    done
  } | psql -XAtq -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres postgres 2>/dev/null \
    | grep -E '^[0-9.]+$' >"$BENCH_TMP/lag.txt"
  wait "$pb"; bench_untrack "$pb"
  [ -n "$hook" ] && wait "$hook"
  tps=$(grep -o 'tps = [0-9.]*' "$BENCH_TMP/pgbench.log" | head -n 1)
  sort -g "$BENCH_TMP/lag.txt" | awk -v n="$idx:$(basename "$b")" -v t="$tps" '
    { v[c++] = $1; s += $1 }
    END { printf "%-24s mean lag %.2f ms, median %.2f, p90 %.2f over %d samples, source %s\n", n,
          c ? s / c * 1000 : -1, c ? v[int(c / 2)] * 1000 : -1, c ? v[int(c * 0.9)] * 1000 : -1, c, t }'
  if [ "$b" = native ]; then
    bq target $DB "DROP SUBSCRIPTION ab" >/dev/null
  else
    kill -TERM "$pid"; wait "$pid"; bench_untrack "$pid"
    "$BENCH_TMP/bin$idx" --source "$SRC" --target "$TGT" --name ab cleanup --force >/dev/null 2>&1
  fi
}

for r in $(seq 1 "$ROUNDS"); do
  bench_log "round $r/$ROUNDS"
  i=0
  for b in "$@"; do run_one "$i" "$b"; i=$((i + 1)); done
done
