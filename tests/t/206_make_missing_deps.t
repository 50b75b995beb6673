#!/usr/bin/env bash
# A newcomer's first command is plain `make`. Without the libraries'
# development files it must name the missing Debian packages and the one
# command that installs them, not stop at a compiler's "jansson.h: No such
# file or directory". Simulated with a pkg-config that finds no library
# (PKG_CONFIG_LIBDIR pointed at an empty directory), in a copy of the tree.
. "$(dirname "$0")/../lib/tap.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-make.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/tree" "$TMP/empty"
cp -r "$ROOT/Makefile" "$ROOT/src" "$ROOT/scripts" "$TMP/tree/"

PKG_CONFIG_LIBDIR="$TMP/empty" make -C "$TMP/tree" >"$TMP/out" 2>"$TMP/err"; rc=$?
is "$rc" 2 "make without the development packages: exit 2"
like "$(cat "$TMP/err")" "missing Debian packages: libpq-dev libyaml-dev libjansson-dev libmicrohttpd-dev\. Fix: make deps" \
  "it names the packages and the command that installs them"
unlike "$(cat "$TMP/err" "$TMP/out")" "No such file or directory|^cc " "no compiler run, no missing-header error"
[ ! -e "$TMP/tree/build/ferry" ]; ok $? "no binary"
make -C "$TMP/tree" -j2 >"$TMP/out2" 2>"$TMP/err2"; rc=$?
is "$rc" 0 "with the packages (this machine's pkg-config): make builds"
[ -x "$TMP/tree/build/ferry" ]; ok $? "build/ferry is there"
done_testing
