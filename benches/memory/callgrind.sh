#!/usr/bin/env bash
# Instructions per record of writing fetch answers as JSON, counted by callgrind, which repeats
# on a noisy machine where timings do not:
#   benches/memory/callgrind.sh [RECORDS]   (default 2000)
# Runs benches/fetch_json.rs under `valgrind --tool=callgrind` once per mode and prints the
# instructions per record of the broker's writer (direct) and of serde_json (serde), each less
# the cost of building the records (build). Needs valgrind (Debian: valgrind).
set -euo pipefail
RECORDS=${1:-2000}
command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)" >&2; exit 1; }
cargo bench --bench fetch_json --no-run -q 2>/dev/null
BIN=$(ls -t target/release/deps/fetch_json-* | grep -v '\.d$' | head -1)
OUT=$(mktemp -d -t callgrind.XXXX)
ir() { # mode -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.out" "$BIN" "$1" "$RECORDS" 1 >/dev/null 2>"$OUT/$1.err"
  awk '/^totals:/{print $2}' "$OUT/$1.out"
}
build=$(ir build); direct=$(ir direct); serde=$(ir serde)
jq -n -c --argjson n "$RECORDS" --argjson b "$build" --argjson d "$direct" --argjson s "$serde" \
  '{records:$n, build_ir:$b, direct_ir_per_record:(($d-$b)/$n|floor), serde_ir_per_record:(($s-$b)/$n|floor), ratio:((($d-$b)/($s-$b))*100|floor/100)}'
rm -rf "$OUT"
