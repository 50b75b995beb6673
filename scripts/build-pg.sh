#!/usr/bin/env bash
# build-pg.sh: a PostgreSQL server and its client programs of another major
# version than the one Debian 12 ships, built here from Debian's own source
# package, for the cross-version tests (tests/t/18*_xver_*.t).
#
#   scripts/build-pg.sh [--cached] MAJOR
#
# Prints the bin directory of PostgreSQL MAJOR on stdout:
#  - the machine's own /usr/lib/postgresql/MAJOR when Debian's package is
#    installed there (with test_decoding), as is;
#  - else a build cached in ${FERRY_CACHE:-/var/cache/ferry}/pg-MAJOR/VERSION;
#  - else (not with --cached) it builds one there: Debian's postgresql-MAJOR
#    *source* package is fetched with `apt-get source --download-only`
#    through a private deb-src list derived from this machine's apt sources
#    (scripts/lib/apt-source.sh; no mirror is named here), from the suites
#    that carry that major (never a newer suite's binaries: they would need a
#    newer libc). apt checks every file against the signed Sources index and
#    dpkg-source checks every tarball against the .dsc before unpacking and
#    applying Debian's patches. The server, its client programs (psql,
#    pg_dump, pg_restore, pgbench, ...), pgoutput, plpgsql and
#    contrib/test_decoding are built with ./configure --prefix into a
#    temporary directory beside the cache and renamed into place when
#    complete, under a lock per major: a half-built tree is never used, a
#    second run skips the work. Each step is timed on stderr.
# ${FERRY_CACHE:-/var/cache/ferry}/lib/MAJOR links to the newest build of
# each major, the layout of /usr/lib/postgresql, for ferry's search of
# pg_dump (FERRY_PG_LIB=/usr/lib/postgresql:/var/cache/ferry/lib).
# The build needs bison, flex, libreadline-dev, zlib1g-dev, libicu-dev,
# libssl-dev and pkg-config (scripts/install-deps.sh installs them).
#
# Suites searched: 13 bullseye-security bullseye; 15 this release's; 17
# trixie-security trixie-updates trixie; 18 forky sid; FERRY_PG_SUITES
# (space separated) overrides. FERRY_BUILD_JOBS sets make's -j (nproc).
#
# Exit status: 0 printed; 1 a failure (fetch, checksum, build); 2 usage;
# 3 it cannot be built here (no source package of that major can be
# fetched, or the cache is not writable); 4 --cached and none is there.
set -euo pipefail

usage() { sed -n '6,6p' "$0" | sed 's/^# *//' >&2; exit 2; }
cached_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --cached) cached_only=true; shift ;;
    -h|--help) usage ;;
    -*) echo "build-pg: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || usage
MAJOR=$1
case "$MAJOR" in [1-9][0-9]) ;; *) echo "build-pg: MAJOR is a PostgreSQL major version (13, 17, 18...), not '$MAJOR'" >&2; exit 2 ;; esac

APT_SOURCE_TAG="build-pg $MAJOR"
# shellcheck source=scripts/lib/apt-source.sh
. "$(dirname "$0")/lib/apt-source.sh"
CACHE_ROOT=${FERRY_CACHE:-/var/cache/ferry}/pg-$MAJOR
LINK_ROOT=${FERRY_CACHE:-/var/cache/ferry}/lib
JOBS=${FERRY_BUILD_JOBS:-$(nproc)}

# suites: the Debian suites whose sources carry postgresql-MAJOR
suites() {
  if [ -n "${FERRY_PG_SUITES:-}" ]; then echo "$FERRY_PG_SUITES"; return; fi
  case "$MAJOR" in
    13) echo "bullseye-security bullseye" ;;
    15) echo "" ;;
    17) echo "trixie-security trixie-updates trixie" ;;
    18) echo "forky sid" ;;
    *) return 1 ;;
  esac
}

# complete BINDIR: the programs, modules and data the tests need are
# there; MISSING names the first one that is not. The modules are in ../lib
# (Debian's layout) or ../lib/postgresql (ours), the data in
# /usr/share/postgresql/MAJOR or ../share/postgresql; not asked of
# pg_config, which names the final place, not a tree still in its
# temporary one.
complete() {
  local b=$1 lib share p
  for p in postgres initdb pg_ctl psql pg_dump pg_restore pgbench pg_config; do
    [ -x "$b/$p" ] || { MISSING="$b/$p"; return 1; }
  done
  share=$(dirname "$b")/share/postgresql
  [ -d "$share" ] || share=/usr/share/postgresql/$MAJOR
  [ -f "$share/postgres.bki" ] || { MISSING="$share/postgres.bki"; return 1; }
  lib=$(dirname "$b")/lib
  [ -f "$lib/plpgsql.so" ] || lib=$lib/postgresql
  for p in test_decoding pgoutput plpgsql; do
    [ -f "$lib/$p.so" ] || { MISSING="$lib/$p.so"; return 1; }
  done
}

# link TREE: LINK_ROOT/MAJOR -> TREE, replaced atomically
link() {
  mkdir -p "$LINK_ROOT" && ln -sfn "../pg-$MAJOR/$(basename "$1")" "$LINK_ROOT/.$MAJOR.new" \
    && mv -T "$LINK_ROOT/.$MAJOR.new" "$LINK_ROOT/$MAJOR"
}

# build SRC PREFIX DESTDIR: configure, build and install into DESTDIR/PREFIX
build() {
  local src=$1 prefix=$2 dest=$3 d t0
  cd "$src"
  # Debian's patches touch configure.ac (not configure): no autoconf rerun
  touch configure
  t0=$(apt_now)
  # --libdir names "postgresql": Debian's per-version-dirs patch then leaves
  # pkglibdir alone (else it points at /usr/lib/postgresql/MAJOR/lib)
  ./configure --prefix="$prefix" --libdir="$prefix/lib/postgresql" \
      --with-openssl --with-icu --with-system-tzdata=/usr/share/zoneinfo \
      --without-llvm --disable-nls CFLAGS="-O2" >"$src/configure.log" 2>&1 \
    || { apt_log "configure failed:"; tail -20 "$src/configure.log" | sed 's/^/  /' >&2; return 1; }
  apt_log "configured in $(apt_took "$t0")"
  t0=$(apt_now)
  # src/Makefile's SUBDIRS in its order, without ecpg and the test suites
  # (a third less to compile); plus test_decoding. src/include installs
  # the catalog's data from 14 on (postgres.bki), headers before.
  local dirs="src/common src/port src/timezone src/backend
              src/backend/utils/mb/conversion_procs src/backend/snowball src/include
              src/interfaces/libpq src/backend/replication/libpqwalreceiver
              src/backend/replication/pgoutput src/fe_utils src/bin src/pl/plpgsql
              contrib/test_decoding"
  # Run from make (make check -> pg-majors), MAKELEVEL is set and
  # PostgreSQL's subdirectory makes then skip generating the headers
  # (utils/errcodes.h) that src/common needs: build as a make of our own
  # (no MAKELEVEL, nor the outer make's flags), headers first.
  unset MAKELEVEL MAKEFLAGS MFLAGS
  make -s -C src/backend generated-headers >>"$src/make.log" 2>&1 \
    || { apt_log "make -C src/backend generated-headers failed:"; tail -20 "$src/make.log" | sed 's/^/  /' >&2; return 1; }
  for d in $dirs; do
    make -s -j"$JOBS" -C "$d" >>"$src/make.log" 2>&1 \
      || { apt_log "make -C $d failed:"; tail -20 "$src/make.log" | sed 's/^/  /' >&2; return 1; }
  done
  apt_log "built in $(apt_took "$t0") with -j$JOBS"
  for d in $dirs; do
    make -s -C "$d" install DESTDIR="$dest" >>"$src/install.log" 2>&1 \
      || { apt_log "make -C $d install failed:"; tail -20 "$src/install.log" | sed 's/^/  /' >&2; return 1; }
  done
}

# the machine's own package of that major
if complete "/usr/lib/postgresql/$MAJOR/bin"; then
  echo "/usr/lib/postgresql/$MAJOR/bin"; exit 0
fi
existing=$(apt_cache_newest "$CACHE_ROOT" "$MAJOR.*")
if [ -n "$existing" ] && complete "$existing/bin"; then
  [ "$(readlink "$LINK_ROOT/$MAJOR" 2>/dev/null)" = "../pg-$MAJOR/$(basename "$existing")" ] || link "$existing" 2>/dev/null || true
  echo "$existing/bin"; exit 0
fi
if $cached_only; then
  if [ -n "$existing" ]; then
    apt_log "the build in $existing is incomplete (no $MISSING). Fix: scripts/build-pg.sh $MAJOR (or make pg-majors)"
  elif [ -s "$CACHE_ROOT/unavailable" ]; then
    apt_log "not built: $(cat "$CACHE_ROOT/unavailable")"
  else
    apt_log "not built yet. Fix: scripts/build-pg.sh $MAJOR (or make pg-majors)"
  fi
  exit 4
fi
if ! want=$(suites); then
  apt_log "no Debian suite known to carry postgresql-$MAJOR. Fix: FERRY_PG_SUITES='SUITE...' scripts/build-pg.sh $MAJOR"
  exit 3
fi

if ! mkdir -p "$CACHE_ROOT" 2>/dev/null || [ ! -w "$CACHE_ROOT" ]; then
  apt_log "cannot write $CACHE_ROOT. Fix: FERRY_CACHE=DIR (a directory you may write, readable by the postgres OS user) scripts/build-pg.sh $MAJOR, or run it as root"
  exit 3
fi
apt_cache_lock "$CACHE_ROOT"
# another run may have built it while we waited for the lock
existing=$(apt_cache_newest "$CACHE_ROOT" "$MAJOR.*")
if [ -n "$existing" ] && complete "$existing/bin"; then
  echo "$existing/bin"; exit 0
fi
tmp=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
# shellcheck disable=SC2064
trap "rm -rf '$tmp'" EXIT
T0=$(apt_now)
t0=$T0
apt_log "fetching Debian's postgresql-$MAJOR source package (suites: ${want:-of this release})"
# the indexes stay in the cache: a major no mirror serves (17, some days)
# costs a second on the next run, not a download
APT_SOURCE_STATE=$CACHE_ROOT/.apt
# shellcheck disable=SC2086
apt_source_fetch "$tmp" "postgresql-$MAJOR" "" $want || {
  rc=$?
  # for --cached (the tests' skip message): why there is none
  [ "$rc" -ne 3 ] || echo "Debian's postgresql-$MAJOR source package could not be fetched on $(date -u +%Y-%m-%d) ($(grep -o -m1 '[0-9]\{3\}  *[A-Z][A-Za-z ]*[a-z]' "$tmp/dl.log" 2>/dev/null || echo "no such package in: ${want:-this release}"))" >"$CACHE_ROOT/unavailable"
  exit "$rc"
}
rm -f "$CACHE_ROOT/unavailable"
ver=${APT_SOURCE_VERSION#*:}
ver=${ver%%-*}
apt_log "fetched and verified postgresql-$MAJOR $APT_SOURCE_VERSION in $(apt_took "$t0")"
case "$ver" in "$MAJOR".*) ;; *) apt_log "version $ver is not of major $MAJOR"; exit 1 ;; esac
final=$CACHE_ROOT/$ver
[ ! -e "$final" ] || rm -rf "$final"   # an incomplete tree (complete() said no)
if ! build "$tmp/src" "$final" "$tmp/dest"; then
  cat "$tmp"/src/configure.log "$tmp"/src/make.log "$tmp"/src/install.log >"$CACHE_ROOT/failed-build.log" 2>/dev/null
  apt_log "build failed; its logs are in $CACHE_ROOT/failed-build.log"
  exit 1
fi
if ! complete "$tmp/dest$final/bin"; then
  cat "$tmp"/src/configure.log "$tmp"/src/make.log "$tmp"/src/install.log >"$CACHE_ROOT/failed-build.log" 2>/dev/null
  find "$tmp/dest" >>"$CACHE_ROOT/failed-build.log"
  apt_log "the build lacks $MISSING, which the tests need; its logs are in $CACHE_ROOT/failed-build.log"
  exit 1
fi
{
  echo "package: postgresql-$MAJOR $APT_SOURCE_VERSION (Debian source, patches applied)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME") in $(apt_took "$T0")"
  sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$tmp"/dl/*.dsc | sed -n 's/^ //p' | sed 's/^/sha256: /'
} >"$tmp/dest$final/BUILD-INFO"
chmod -R go+rX "$tmp/dest$final"
mv "$tmp/dest$final" "$final"
rm -rf "$tmp" "$CACHE_ROOT/failed-build.log"
trap - EXIT
link "$final"
apt_log "installed PostgreSQL $ver in $final in $(apt_took "$T0") in all"
echo "$final/bin"
