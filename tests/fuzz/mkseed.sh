#!/usr/bin/env bash
# mkseed.sh [-f] PROTO OUT < hex-lines: write one input for fuzz_pgoutput
# (format in fuzz_pgoutput.c) holding the pgoutput messages given as hex,
# one per line (what encode(data, 'hex') prints for
# pg_logical_slot_peek_binary_changes). -f wraps each message in an
# XLogData frame ('w' + start, end, send time), as a walsender sends it.
set -euo pipefail
frame=0
if [ "${1:-}" = "-f" ]; then frame=1; shift; fi
[ $# -eq 2 ] || { echo "usage: $0 [-f] PROTO OUT < hex-lines" >&2; exit 2; }
proto=$1 out=$2
{
  printf '%02x' $(( (proto - 1) & 3 )) | xxd -r -p
  lsn=$(( 0x1000000 ))
  while read -r hex; do
    hex=${hex#\\x}
    [ -n "$hex" ] || continue
    if [ "$frame" = 1 ]; then
      hex=$(printf '77%016x%016x%016x' "$lsn" "$((lsn + 4096))" 700000000000000)$hex
      lsn=$((lsn + 256))
    fi
    n=$(( ${#hex} / 2 ))
    [ "$n" -le 65535 ] || { hex=${hex:0:131070}; n=65535; }
    printf '%04x%s' "$n" "$hex" | xxd -r -p
  done
} > "$out"
