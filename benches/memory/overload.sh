#!/usr/bin/env bash
# Overload: 64 connections of 1 MiB batches (1024 records of 1 KiB) for DUR seconds (default 60),
# RSS of each broker sampled every second; then the topic's high watermarks are compared with
# the records acknowledged (equal: nothing acknowledged lost, nothing refused written).
#   benches/memory/overload.sh BROKERS RF    (run from the project root after cargo build --release)
# Env: DUR, PAL. Prints numbers; never asserts timings.
set -u
PAL=${PAL:-$(pwd)/target/release/palisade}
n=${1:-1}; rf=${2:-1}; d=$(mktemp -d -t palisade-overload.XXXX)
. "$(dirname "$0")/dev-cluster.sh"
start_dev "$n" "$d"
( while kill -0 "$dev" 2>/dev/null; do
    line=""; for p in $pids; do line="$line $(awk '$1=="VmRSS:" {printf "%d", $2/1024}' "/proc/$p/status" 2>/dev/null)"; done
    echo "$(date +%s)$line"; sleep 1
  done ) > "$d/rss.txt" &
sampler=$!
PALISADE_TOKEN=$tok "$PAL" bench produce --url "$url" --ca-cert "$ca" --connections 64 --batch 1024 \
  --record-bytes 1024 --duration-s "${DUR:-60}" --partitions 16 --replication-factor "$rf" --json \
  | jq -c '{produce_per_s: .records_per_s, requests, acknowledged: .records, p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99, errors, first_error}'
hwm=$(curl -s --cacert "$ca" -H "authorization: Bearer $tok" "$url/v1/topics/bench" | jq '[.partitions[].high_watermark] | add')
echo "high watermarks total: $hwm"
echo "peak RSS MiB per broker: $(for p in $pids; do awk '$1=="VmHWM:" {printf "%d ", $2/1024}' "/proc/$p/status"; done)"
kill "$sampler" 2>/dev/null
echo "RSS samples (s, MiB per broker) in $d/rss.txt; slope per broker (MiB/min) over the second half:"
awk '{t[NR]=$1; for(i=2;i<=NF;i++) v[NR,i]=$i; c=NF} END{h=int(NR/2); for(i=2;i<=c;i++){n=0;sx=0;sy=0;sxx=0;sxy=0; for(r=h;r<=NR;r++){x=t[r]-t[h];y=v[r,i];n++;sx+=x;sy+=y;sxx+=x*x;sxy+=x*y}; d=n*sxx-sx*sx; printf "%.1f ", (d>0? (n*sxy-sx*sy)/d*60 : 0)}; print ""}' "$d/rss.txt"
kill "$dev"; wait "$dev" 2>/dev/null
rm -rf "$d"
