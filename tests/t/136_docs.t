#!/usr/bin/env bash
# The documentation cannot drift from the program: the manual page renders
# without warnings (groff, man -l) and names every command, long option,
# configuration key, environment variable and exit status that the code
# has; `ferry CMD --help` works for every command; `make install` installs
# the page; every error the README's troubleshooting quotes still exists in
# src/. No database server needed.
. "$(dirname "$0")/../lib/tap.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FERRY=${FERRY:-$ROOT/build/asan/ferry}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
PAGE=$ROOT/doc/ferry.1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferry-docs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

diag() { printf '%s\n' "$*" | head -40 | sed 's/^/# /'; }

# --- the page renders cleanly ---------------------------------------------
GROFF_ERR=$(groff -man -ww -z "$PAGE" 2>&1); RC=$?
is "$RC:$GROFF_ERR" "0:" "groff -man -ww -z: no warnings, no errors"
MANWIDTH=80 man --warnings -l "$PAGE" >"$TMP/man80.txt" 2>"$TMP/man.err"; RC=$?
is "$RC:$(cat "$TMP/man.err")" "0:" "MANWIDTH=80 man -l: renders without warnings"
like "$(head -1 "$TMP/man80.txt")" '^FERRY\(1\) +User Commands +FERRY\(1\)$' "title line"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "CONFIGURATION FILE" ENVIRONMENT "EXIT STATUS" FILES EXAMPLES "SEE ALSO"; do
  grep -qx "$s" "$TMP/man80.txt"; ok $? "section $s"
done
LONG=$(LC_ALL=C.UTF-8 grep -E '^.{81}' "$TMP/man80.txt")
is "$LONG" "" "no rendered line wider than 80 columns"
# wide, so that no option is broken across lines; hyphen glyphs as ASCII
MANWIDTH=250 man -l "$PAGE" 2>/dev/null | sed 's/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g' >"$TMP/man.txt"
MAN=$(cat "$TMP/man.txt")

# --- every long option in main.c's table, and the help agrees -------------------
SRC_OPTS=$(sed -n '/^static const OptionDesc option_descs\[\] = {/,/^};/p' "$ROOT/src/main.c" |
  sed -n 's/^[[:space:]]*{"\([a-z-]*\)", [01], O_.*/\1/p' | sort -u)
COMMANDS=$("$FERRY" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF && $1 != "Commands:" {print $1}')
SRC_CMDS=$(sed -n '/^static const Command commands\[\] = {/,/^};/p' "$ROOT/src/main.c" |
  sed -n 's/^[[:space:]]*{"\([a-z]*\)", ".*/\1/p')
HELP_OPTS=$( { "$FERRY" --help; for c in $COMMANDS; do "$FERRY" "$c" --help; done; } |
  grep -oE '^ +(-v, )?--[a-z-]+' | sed 's/.*--//' | sort -u)
ok $([ "$(echo "$SRC_OPTS" | wc -l)" -ge 20 ]; echo $?) "main.c's option table parsed ($(echo "$SRC_OPTS" | wc -l) options)"
is "$HELP_OPTS" "$SRC_OPTS" "the options in --help are exactly main.c's table"
is "$(echo "$COMMANDS" | sort)" "$(echo "$SRC_CMDS" | sort)" "ferry --help lists exactly main.c's commands"
MISSING=""
for o in $SRC_OPTS; do
  printf '%s' "$MAN" | grep -qE -- "--$o([^a-z-]|$)" || MISSING="$MISSING --$o"
done
is "$MISSING" "" "every long option of main.c is in the manual page"
MISSING=""
for c in $SRC_CMDS; do
  # a tagged paragraph under COMMANDS, and a synopsis line
  sed -n '/^COMMANDS$/,/^OPTIONS$/p' "$TMP/man.txt" | grep -qE "^       $c( |$)" || MISSING="$MISSING $c(COMMANDS)"
  sed -n '/^SYNOPSIS$/,/^DESCRIPTION$/p' "$TMP/man.txt" | grep -qE "ferry +$c( |$)" || MISSING="$MISSING $c(SYNOPSIS)"
done
is "$MISSING" "" "every command has a paragraph under COMMANDS and a SYNOPSIS line"
# the lead's switchover and rollback, documented ahead of their code
for w in switchover rollback "--sequence-gap" "--no-reverse" "--max-lag" "--freeze readonly|revoke|hook"; do
  printf '%s' "$MAN" | grep -qF -- "$w"; ok $? "documents $w"
done

# --- configuration keys, environment, exit status ----------------------------
# config.c compares keys with dashes turned into underscores: either spelling
KEYS=$(grep -oE 'strcmp\(key, "[a-z_]+"\)' "$ROOT/src/config.c" | sed 's/.*"\(.*\)".*/\1/' | sort -u)
MISSING=""
for k in $KEYS; do
  printf '%s' "$MAN" | grep -qwE -- "$k|$(echo "$k" | tr _ -)" || MISSING="$MISSING $k"
done
is "$MISSING" "" "every configuration key in config.c is in the page ($(echo $KEYS | wc -w) keys)"
CONF=$(sed -n '/^CONFIGURATION FILE$/,/^ENVIRONMENT$/p' "$TMP/man.txt")
for k in "hooks:" pre_freeze freeze unfreeze switch rollback "files:" "{from, to}"; do
  printf '%s' "$CONF" | grep -qwF -- "$k"; ok $? "CONFIGURATION FILE: $k"
done
for v in FERRY_SOURCE FERRY_TARGET FERRY_NAME PGPASSWORD .pgpass; do
  sed -n '/^ENVIRONMENT$/,/^EXIT STATUS$/p' "$TMP/man.txt" | grep -qF -- "$v"; ok $? "ENVIRONMENT: $v"
done
CODES=$(sed -n 's/^#define EXIT_[A-Z]*[[:space:]]*\([0-9]*\).*/\1/p' "$ROOT/src/exitcode.h")
MISSING=""
for n in $CODES; do
  sed -n '/^EXIT STATUS$/,/^FILES$/p' "$TMP/man.txt" | grep -qE "^       $n( |$)" || MISSING="$MISSING $n"
done
is "$MISSING" "" "every exit code of exitcode.h ($(echo $CODES)) is under EXIT STATUS"

# --- --help for every command ------------------------------------------------
for c in $COMMANDS; do
  OUT=$("$FERRY" "$c" --help 2>&1); RC=$?
  # the description: the paragraph between the title line and Usage:
  DESC=$(printf '%s\n' "$OUT" | sed -n '3,/^$/p' | sed '/^$/d')
  if [ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "^ferry $c: " && [ "$(printf '%s\n' "$DESC" | wc -l)" -ge 2 ] &&
     printf '%s' "$OUT" | grep -q "^Usage:" && printf '%s' "$OUT" | grep -q "^Exit status:"; then
    ok 0 "ferry $c --help: exit 0, a description paragraph, usage and exit status"
  else
    ok 1 "ferry $c --help: exit 0, a description paragraph, usage and exit status"; diag "exit $RC"; diag "$OUT"
  fi
done
"$FERRY" --help >/dev/null; ok $? "ferry --help: exit 0"
"$FERRY" plan --dry-run >/dev/null 2>&1; is $? 2 "an option of another command: exit 2"

# --- make install ------------------------------------------------------------
make -C "$ROOT" --no-print-directory -s install PREFIX="$TMP/inst" >"$TMP/make.log" 2>&1; RC=$?
is "$RC" 0 "make install PREFIX=tmpdir"; [ "$RC" = 0 ] || diag "$(tail -20 "$TMP/make.log")"
cmp -s "$PAGE" "$TMP/inst/share/man/man1/ferry.1"; ok $? "the page lands in PREFIX/share/man/man1/ferry.1"
is "$(stat -c %a "$TMP/inst/share/man/man1/ferry.1" 2>/dev/null)" 644 "installed readable (644)"
[ -x "$TMP/inst/bin/ferry" ]; ok $? "the binary lands in PREFIX/bin"
is "$(MANPATH="$TMP/inst/share/man" man -w ferry 2>/dev/null)" "$TMP/inst/share/man/man1/ferry.1" "man finds it under that MANPATH"
MANWIDTH=80 MANPATH="$TMP/inst/share/man" man ferry 2>/dev/null | grep -q "ferry - move a live PostgreSQL database"; ok $? "man ferry shows it"
make -C "$ROOT" --no-print-directory -s install DESTDIR="$TMP/dest" PREFIX=/usr >/dev/null 2>&1
[ -f "$TMP/dest/usr/share/man/man1/ferry.1" ]; ok $? "make install honours DESTDIR"

# --- README troubleshooting quotes real messages --------------------------------
grep -q '^## Troubleshooting: the ten most likely failures$' "$ROOT/README.md"; ok $? "README has the troubleshooting section"
is "$(grep -cE '^\*\*[0-9]+\. ' "$ROOT/README.md")" 10 "ten numbered failures"
QOUT=$(python3 "$ROOT/tests/lib/quoted_errors.py" "$ROOT/README.md" "$ROOT/src"); RC=$?
is "$RC" 0 "every error line the troubleshooting quotes is printed by src/ ($(printf '%s' "$QOUT" | tail -1))"
[ "$RC" = 0 ] || diag "$(printf '%s\n' "$QOUT" | grep -v '^ok:')"
# the checker itself catches drift
sed 's/logical replication needs logical/logical decoding needs logical/' "$ROOT/README.md" >"$TMP/README.md"
python3 "$ROOT/tests/lib/quoted_errors.py" "$TMP/README.md" "$ROOT/src" >/dev/null; is $? 1 "a reworded quote is caught"

done_testing
