#!/usr/bin/env bash
# Soak: DUR seconds (default 600) of produce, consume and consumer-group traffic at once on a
# 3-broker RF3 cluster, RSS of each broker sampled every second; prints the RSS slope per broker
# (MiB per minute, least squares) after the warm-up (WARM seconds, default 120), the peak, and
# the bench reports. The topic keeps 2 minutes of records (retention runs all along).
#   benches/memory/soak.sh     (from the project root, after cargo build --release)
# Env: DUR, WARM, PAL, KEEP=1 keeps the cluster directory. Numbers are printed, never asserted.
set -u
PAL=${PAL:-$(pwd)/target/release/palisade}
dur=${DUR:-600}; warm=${WARM:-120}; d=$(mktemp -d -t palisade-soak.XXXX)
. "$(dirname "$0")/dev-cluster.sh"
start_dev 3 "$d"
url2=$(jq -r '.brokers[1].http' "$d/cluster.json"); url3=$(jq -r '.brokers[2].http' "$d/cluster.json")
curl -s --cacert "$ca" -H "authorization: Bearer $tok" -H 'content-type: application/json' \
  -d '{"name":"soak","partitions":6,"replication_factor":3,"retention_ms":120000}' "$url/v1/topics" > /dev/null
( while kill -0 "$dev" 2>/dev/null; do
    line=""; for p in $pids; do line="$line $(awk '$1=="VmRSS:" {printf "%d", $2/1024}' "/proc/$p/status" 2>/dev/null)"; done
    echo "$(date +%s)$line"; sleep 1
  done ) > "$d/rss.txt" &
sampler=$!
end=$(( $(date +%s) + dur ))
bench() { PALISADE_TOKEN=$tok "$PAL" bench "$@" --ca-cert "$ca" --topic soak --json; }
# Produce through broker 1 (forwarded to the leaders) at a bounded load: 2 requests in flight.
bench produce --url "$url" --connections 4 --batch 100 --record-bytes 512 \
  --records-in-flight 200 --duration-s "$dur" > "$d/produce.json" &
producer=$!
# Plain consumers through broker 2, group members through broker 3, one run after another.
( while [ "$(date +%s)" -lt "$end" ]; do
    bench consume --url "$url2" --connections 6 --duration-s 60 | jq -c '{consume_per_s: .records_per_s, errors, first_error}'
  done ) > "$d/consume.log" 2>&1 &
consumer=$!
( while [ "$(date +%s)" -lt "$end" ]; do
    bench group-consume --url "$url3" --connections 2 --duration-s 60 | jq -c '{group_per_s: .records_per_s, errors, first_error}'
  done ) > "$d/group.log" 2>&1 &
grouper=$!
wait "$producer"; wait "$consumer"; wait "$grouper"
jq -c '{produce_per_s: .records_per_s, records, p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99, errors, first_error, brokers}' "$d/produce.json"
echo "consume runs: $(wc -l < "$d/consume.log"), errors: $(jq -s 'map(.errors) | add' "$d/consume.log"), median rate: $(jq -s 'map(.consume_per_s) | sort | .[length/2|floor]' "$d/consume.log")"
echo "group runs: $(wc -l < "$d/group.log"), errors: $(jq -s 'map(.errors) | add' "$d/group.log"), median rate: $(jq -s 'map(.group_per_s) | sort | .[length/2|floor]' "$d/group.log")"
echo "first errors seen: $(cat "$d/consume.log" "$d/group.log" | jq -r 'select(.first_error != null) | .first_error' | sort | uniq -c)"
echo "peak RSS MiB per broker: $(for p in $pids; do awk '$1=="VmHWM:" {printf "%d ", $2/1024}' "/proc/$p/status"; done)"
kill "$sampler" 2>/dev/null
echo "RSS slope per broker (MiB/min) after ${warm}s of warm-up, and the first and last minute's mean:"
awk -v warm="$warm" 'NR==1{t0=$1} {t[NR]=$1-t0; for(i=2;i<=NF;i++) v[NR,i]=$i; c=NF}
  END{for(i=2;i<=c;i++){n=0;sx=0;sy=0;sxx=0;sxy=0;f=0;fn=0;l=0;ln=0;
    for(r=1;r<=NR;r++){ if(t[r]<warm) continue; x=t[r];y=v[r,i];n++;sx+=x;sy+=y;sxx+=x*x;sxy+=x*y;
      if(t[r]<warm+60){f+=y;fn++} if(t[r]>=t[NR]-60){l+=y;ln++} }
    d=n*sxx-sx*sx; printf "broker %d: slope %.2f, first minute %.0f, last minute %.0f\n", i-1, (d>0?(n*sxy-sx*sy)/d*60:0), (fn?f/fn:0), (ln?l/ln:0)}}' "$d/rss.txt"
kill "$dev"; wait "$dev" 2>/dev/null
if [ -n "${KEEP:-}" ]; then echo "kept $d"; else rm -rf "$d"; fi
