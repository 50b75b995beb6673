#!/usr/bin/env bash
# regress-db.sh: build PostgreSQL's own regression database ("regression")
# on a running PostgreSQL 15 server, as hostile a schema as we know of
# (every type, domains, inheritance, partitions, rules, generated columns,
# exotic identifiers, large objects, ...). tests/t/024_clone_regression.t
# clones it with ferry.
#
#   scripts/regress-db.sh --host SOCKDIR|HOST --port PORT [--user USER]
#                         [--schedule parallel|serial] [--outdir DIR]
#
# Two stages, each timed on stderr:
#  1. prepare (once per machine, cached): Debian's postgresql-15 *source*
#     package is fetched with `apt-get source --download-only` through a
#     private deb-src list derived from this machine's own apt sources (the
#     Debian entries of /etc/apt/sources.list and /etc/apt/sources.list.d/;
#     no mirror is named here; scripts/lib/apt-source.sh, shared with
#     scripts/build-pg.sh). apt checks the .dsc against the signed Sources
#     index, dpkg-source checks every tarball against the .dsc.
#     src/test/regress is kept and regress.so is built from it with PGXS
#     (postgresql-server-dev-15). Everything is built in a temporary
#     directory and renamed into ${FERRY_CACHE:-/var/cache/ferry}/regress-15/
#     VERSION when complete, under a lock, so a half-built cache is never
#     used and a second run skips the work.
#  2. run: pg_regress (the one postgresql-client-15 ships) runs the parallel
#     schedule (--schedule serial: one test at a time, as `make installcheck`
#     does) against the server as an installcheck does: it drops and recreates
#     database "regression" and leaves it populated. Tests that fail on an
#     installed server are reported and tolerated: only the database matters.
#
# Exit status: 0 the database was built; 1 a failure; 2 usage; 3 the source
# package could not be fetched (no deb-src reachable: tests skip on it).
set -euo pipefail

PGMAJOR=15
PGBIN=${PGBIN:-/usr/lib/postgresql/$PGMAJOR/bin}
PGXS_DIR=/usr/lib/postgresql/$PGMAJOR/lib/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
CACHE_ROOT=${FERRY_CACHE:-/var/cache/ferry}/regress-$PGMAJOR

host="" port="" user=postgres schedule=parallel outdir=""
usage() { sed -n '9,10p' "$0" | sed 's/^# *//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --schedule) schedule=$2; shift 2 ;;
    --outdir) outdir=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "regress-db: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$host" ] && [ -n "$port" ] || usage
case "$schedule" in parallel|serial) ;; *) echo "regress-db: --schedule is parallel or serial" >&2; exit 2 ;; esac

APT_SOURCE_TAG=regress-db
# shellcheck source=scripts/lib/apt-source.sh
. "$(dirname "$0")/lib/apt-source.sh"
log() { apt_log "$@"; }
now() { apt_now; }
took() { apt_took "$@"; }

# fetch_source DIR: download and unpack Debian's postgresql-15 source package
# (this release's suites; the installed server's version first) into DIR/src.
# Returns 3 when no source can be had.
fetch_source() {
  apt_source_fetch "$1" "postgresql-$PGMAJOR" "$(dpkg-query -W -f='${Version}' postgresql-$PGMAJOR 2>/dev/null || true)"
}

# build_regress_so SRC OUT: regress.so from SRC/regress.c with PGXS, into OUT
build_regress_so() {
  local src=$1 out=$2
  [ -f "$PGXS_DIR/src/makefiles/pgxs.mk" ] && [ -d "$("$PGBIN/pg_config" --includedir-server)" ] || {
    log "PGXS or the server headers are missing. Fix: apt-get install postgresql-server-dev-$PGMAJOR (scripts/install-deps.sh)"
    return 1
  }
  mkdir -p "$out/build"
  cp "$src/regress.c" "$out/build/"
  printf 'MODULES = regress\nPG_CONFIG = %s\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n' \
    "$PGBIN/pg_config" > "$out/build/Makefile"
  # with_llvm=no: no JIT bitcode, regress.so is all pg_regress loads
  make -s -C "$out/build" with_llvm=no >"$out/build/make.log" 2>&1 \
    || { sed 's/^/  /' "$out/build/make.log" | tail -10 >&2; return 1; }
  mkdir -p "$out/lib"
  mv "$out/build/regress.so" "$out/lib/"
  rm -rf "$out/build"
  # the schedule also loads contrib/spi's autoinc and refint, which the server package ships
  local m
  for m in autoinc refint; do
    ln -s "$("$PGBIN/pg_config" --pkglibdir)/$m.so" "$out/lib/$m.so"
  done
}

# prepare: the cached tree (VERSION/regress, VERSION/lib); prints its path
prepare() {
  apt_cache_lock "$CACHE_ROOT"
  local existing
  existing=$(apt_cache_newest "$CACHE_ROOT" "$PGMAJOR.*")
  if [ -n "$existing" ]; then
    log "using the cached source and regress.so in $existing"
    echo "$existing"; return 0
  fi
  local tmp t0 rc ver
  tmp=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  t0=$(now)
  log "fetching Debian's postgresql-$PGMAJOR source package"
  fetch_source "$tmp" || { rc=$?; rm -rf "$tmp"; return "$rc"; }
  ver=$APT_SOURCE_VERSION
  log "fetched and verified postgresql-$PGMAJOR $ver in $(took "$t0")"
  mkdir -p "$tmp/out"
  cp -a "$tmp/src/src/test/regress" "$tmp/out/regress"
  t0=$(now)
  build_regress_so "$tmp/out/regress" "$tmp/out" || { rm -rf "$tmp"; return 1; }
  log "built regress.so with PGXS in $(took "$t0")"
  mv "$tmp/out" "$CACHE_ROOT/${ver%%-*}"
  rm -rf "$tmp"
  trap - EXIT
  echo "$CACHE_ROOT/${ver%%-*}"
}

tree=$(prepare) || exit $?
[ -x "$PG_REGRESS" ] || { log "$PG_REGRESS is missing. Fix: apt-get install postgresql-client-$PGMAJOR"; exit 1; }

[ -n "$outdir" ] || outdir=$(mktemp -d "${TMPDIR:-/tmp}/regress-db.XXXXXX")
mkdir -p "$outdir/results"
# the server writes COPY TO / lo_export files into results/: it may run as another OS user
chmod 1777 "$outdir/results"
t0=$(now)
log "running the $schedule schedule against $host:$port (output in $outdir)"
rc=0
# PostgreSQL 14 dropped serial_schedule: serial is the parallel schedule one
# test at a time, as `make installcheck` runs it
conc=(--max-concurrent-tests=20)
[ "$schedule" = serial ] && conc=(--max-connections=1)
PGHOST=$host PGPORT=$port PGUSER=$user "$PG_REGRESS" --bindir="$PGBIN" --dlpath="$tree/lib" \
  --inputdir="$tree/regress" --outputdir="$outdir" --schedule="$tree/regress/parallel_schedule" \
  "${conc[@]}" >"$outdir/pg_regress.out" 2>&1 || rc=$?
summary=$(grep -E 'tests (passed|failed)|failed \(ignoring|All [0-9]+ tests' "$outdir/pg_regress.out" | tail -1 | tr -d '=' | sed 's/^ *//')
failed=$(awk '/\.\.\. FAILED/ { for (i = 2; i <= NF; i++) if ($i == "...") printf "%s%s", sep, $(i - 1); sep = " " }' "$outdir/pg_regress.out")
log "pg_regress finished in $(took "$t0"), exit $rc: ${summary:-no summary}${failed:+ (failed: $failed)}"
n=$(PGHOST=$host PGPORT=$port "$PGBIN/psql" -XAtq -U "$user" -d regression \
      -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'" 2>/dev/null || echo 0)
if [ "${n:-0}" -lt 100 ]; then
  log "database regression has $n tables in public: pg_regress did not build it"
  tail -20 "$outdir/pg_regress.out" >&2
  exit 1
fi
log "database regression is ready: $n tables in public"
