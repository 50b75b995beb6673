# tap.sh: Test Anything Protocol helpers for the bash integration tests.
# ok COND-EXIT NAME, is GOT WANT NAME, like TEXT REGEX NAME, done_testing.
TAP_N=0
TAP_FAILED=0

ok() {  # ok EXIT_STATUS NAME
  TAP_N=$((TAP_N + 1))
  if [ "$1" -eq 0 ]; then echo "ok $TAP_N - $2"
  else echo "not ok $TAP_N - $2"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
is() {  # is GOT WANT NAME
  if [ "$1" = "$2" ]; then ok 0 "$3"
  else ok 1 "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}
isnt() {
  if [ "$1" != "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "both: '$1'"; fi
}
like() {  # like TEXT EXTENDED-REGEX NAME
  if printf '%s' "$1" | grep -Eq -- "$2"; then ok 0 "$3"
  else ok 1 "$3"; diag "text: '$(printf '%s' "$1" | head -c 2000)'"; diag "does not match: /$2/"; fi
}
unlike() {
  if printf '%s' "$1" | grep -Eq -- "$2"; then ok 1 "$3"; diag "text matches /$2/: '$(printf '%s' "$1" | head -c 2000)'"
  else ok 0 "$3"; fi
}
diag() { printf '%s\n' "$*" | head -50 | sed 's/^/# /'; }
done_testing() {
  echo "1..$TAP_N"
  [ "$TAP_FAILED" -eq 0 ]
}
bail() { echo "Bail out! $*"; exit 255; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }  # skip_all REASON: the whole test, before any test ran
