#!/usr/bin/env bash
# verify.sh: `ferry verify` (full comparison of every row, source against
# target) against `pg_dump` of the source alone, on the clone benchmark's
# database. Issue 4's goal: verify takes no longer than pg_dump.
#
# Usage: bench/verify.sh   (environment: SCALE pgbench scale, default 50 as
# in bench/clone.sh; ROUNDS, 3; JOBS verify --jobs, 2; FERRY, build/ferry)
#
# Two fresh servers (bench/lib.sh); the source gets pgbench -i -s SCALE and
# ferry clone copies it to the target. Each round runs, in alternating order:
#   verify     ferry verify --jobs JOBS (both servers hashed in parallel)
#   pg_dump    pg_dump -Fc of the source to a file (what an operator would
#              run to take a copy; reads the same rows once, on one side)
#   pg_dump_plain  pg_dump (plain SQL) > /dev/null
# and reports the medians and verify / pg_dump ratios.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

SCALE=${SCALE:-50}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-2}
FERRY_SRC=${FERRY:-$HERE/../build/ferry}
cp "$FERRY_SRC" "$BENCH_TMP/ferry"
FERRY="$BENCH_TMP/ferry"

bench_start source
bench_start target
bq source postgres "CREATE DATABASE app" >/dev/null
bq target postgres "CREATE DATABASE app" >/dev/null
bench_log "pgbench -i -s $SCALE"
pgbench -q -i -s "$SCALE" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app >/dev/null 2>&1 || bench_die "pgbench -i failed"
SRC=$(bench_conninfo source app)
TGT=$(bench_conninfo target app)
bench_log "ferry clone"
"$FERRY" --source "$SRC" --target "$TGT" --name bench clone --jobs "$JOBS" >/dev/null 2>"$BENCH_TMP/clone.err" || bench_die "clone failed"
bq source app "VACUUM ANALYZE" >/dev/null; bq target app "VACUUM ANALYZE" >/dev/null

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>>"$BENCH_TMP/run.err" || bench_die "failed: $*"; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }'; }
declare -A res
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="verify pg_dump pg_dump_plain"; else order="pg_dump_plain pg_dump verify"; fi
  for tool in $order; do
    case $tool in
      verify) s=$(t "$FERRY" --source "$SRC" --target "$TGT" --name bench verify --jobs "$JOBS") ;;
      pg_dump) s=$(t pg_dump -Fc -f "$BENCH_TMP/dump.fc" -h "$SOURCE_SOCK" -p "$SOURCE_PORT" -U postgres app) ;;
      pg_dump_plain) s=$(t sh -c "pg_dump -h '$SOURCE_SOCK' -p '$SOURCE_PORT' -U postgres app > /dev/null") ;;
    esac
    res[$tool]="${res[$tool]:-} $s"
    bench_log "round $round: $tool $s s"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
v=$(echo "${res[verify]}" | median); d=$(echo "${res[pg_dump]}" | median); p=$(echo "${res[pg_dump_plain]}" | median)
rows=$(bq source app "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
echo
echo "verify vs pg_dump, scale $SCALE ($rows rows), $ROUNDS rounds, medians"
printf '  %-34s %8s s\n' "ferry verify --jobs $JOBS (both sides)" "$v" "pg_dump -Fc (source only)" "$d" "pg_dump plain > /dev/null" "$p"
printf '  ratio verify / pg_dump -Fc        %s\n' "$(awk -v a="$v" -v b="$d" 'BEGIN { printf "%.2f", a / b }')"
printf '  ratio verify / pg_dump plain      %s\n' "$(awk -v a="$v" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
