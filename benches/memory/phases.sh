#!/usr/bin/env bash
# Peak resident memory of each broker after a produce and after a consume of everything.
#   benches/memory/phases.sh BROKERS RF      (run from the project root after cargo build --release)
# Env: DUR (produce seconds, default 15), PAL (binary), KEEP=1 keeps the cluster directory.
# Prints throughput and VmHWM/VmRSS in MiB per broker; the numbers are read, never asserted.
set -u
PAL=${PAL:-$(pwd)/target/release/palisade}
n=${1:-1}; rf=${2:-1}; d=$(mktemp -d -t palisade-memory.XXXX)
. "$(dirname "$0")/dev-cluster.sh"
start_dev "$n" "$d"
field() { for p in $pids; do awk -v k="$1" '$1==k {printf "%d ", $2/1024}' "/proc/$p/status"; done; }
echo "idle rss: $(field VmRSS:)"
PALISADE_TOKEN=$tok "$PAL" bench produce --url "$url" --ca-cert "$ca" --connections 16 --batch 100 \
  --record-bytes 1024 --duration-s "${DUR:-15}" --partitions 16 --replication-factor "$rf" --json \
  | jq -c '{produce_per_s: .records_per_s, p99_ms: .latency_ms.p99, errors}'
echo "after produce: peak $(field VmHWM:) rss $(field VmRSS:)"
PALISADE_TOKEN=$tok "$PAL" bench consume --url "$url" --ca-cert "$ca" --connections 16 --json \
  | jq -c '{consume_per_s: .records_per_s, errors}'
echo "after consume: peak $(field VmHWM:) rss $(field VmRSS:)"
kill "$dev"; wait "$dev" 2>/dev/null
if [ -n "${KEEP:-}" ]; then echo "kept $d"; else rm -rf "$d"; fi
