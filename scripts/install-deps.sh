#!/usr/bin/env bash
# install-deps.sh: install the Debian packages ferry needs to build, test,
# run the demo and the benchmarks, skipping what is already there.
# Runs apt-get only when something is missing; needs root (or sudo) then.
set -euo pipefail

BUILD_PKGS="gcc make pkg-config libpq-dev libyaml-dev libjansson-dev libmicrohttpd-dev"
# rsync: files: entries (switchover); python3-psycopg2: a real driver writes through the freeze (147); pgbouncer: the
# pooler switchover (tests 141-144 start their own, never the package's service); man-db and groff-base: tests/t/136_docs.t
# renders the manual page; curl scrapes metrics; systemd: systemd-analyze verify;
# postgresql-server-dev-15 (PGXS, server headers) builds regress.so and dpkg-dev
# (dpkg-source) unpacks the postgresql-15 source package for scripts/regress-db.sh (024)
TEST_PKGS="postgresql-15 postgresql-client-15 postgresql-contrib perl util-linux procps python3 rsync man-db groff-base curl systemd python3-psycopg2 pgbouncer postgresql-server-dev-15 dpkg-dev"
# scripts/build-pg.sh builds PostgreSQL 13, 17, 18 from Debian's source packages
# for the cross-version tests (18x_xver_*): its compilers and libraries
PGBUILD_PKGS="bison flex libreadline-dev zlib1g-dev libicu-dev libssl-dev xz-utils bzip2"
BENCH_PKGS="pgcopydb time"

want="$BUILD_PKGS $TEST_PKGS $PGBUILD_PKGS"
case "${1:-}" in
  --bench) want="$want $BENCH_PKGS" ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# the server headers of the installed server's version: an unpinned
# postgresql-server-dev-15 may pull a newer postgresql-15 and its client
# along (regress-db.sh then runs the newer psql on older test files)
server_ver=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
if [ -n "$server_ver" ] && apt-cache show "postgresql-server-dev-15=$server_ver" >/dev/null 2>&1; then
  missing=$(echo "$missing" | sed "s/ postgresql-server-dev-15\( \|$\)/ postgresql-server-dev-15=$server_ver\1/")
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# the pgbouncer package starts and enables a system-wide pgbouncer on port
# 6432: the tests start their own (free port, own ini), so stop it for good
case " $missing " in
  *" pgbouncer "*)
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now pgbouncer.service >/dev/null 2>&1 || true
    else
      $SUDO systemctl disable pgbouncer.service >/dev/null 2>&1 || true   # offline: only the enablement
      [ -f /var/run/postgresql/pgbouncer.pid ] && $SUDO kill "$(cat /var/run/postgresql/pgbouncer.pid)" 2>/dev/null || true
    fi ;;
esac
