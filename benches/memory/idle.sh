#!/usr/bin/env bash
# CPU and memory of an idle cluster: one topic of PARTITIONS partitions, no traffic.
#   benches/memory/idle.sh BROKERS RF PARTITIONS   (from the project root, after cargo build --release)
# Env: WARM (seconds after the topic is led everywhere, default 15), SPAN (measured seconds,
# default 10), PAL (binary). Prints the brokers' CPU-seconds over SPAN (utime + stime from
# /proc/PID/stat) and each broker's RSS; the numbers are read, never asserted.
set -u
PAL=${PAL:-$(pwd)/target/release/palisade}
n=${1:-3}; rf=${2:-3}; parts=${3:-1000}; d=$(mktemp -d -t palisade-idle.XXXX)
. "$(dirname "$0")/dev-cluster.sh"
start_dev "$n" "$d"
trap 'kill "$dev" 2>/dev/null; wait "$dev" 2>/dev/null; rm -rf "$d"' EXIT
api() { curl -s --cacert "$ca" -H "authorization: Bearer $tok" -H 'content-type: application/json' "$@"; }
# Topics of at most 1,000 partitions each (topics.partitions_max is 1,024).
topics=$(( (parts + 999) / 1000 ))
for t in $(seq 0 $((topics - 1))); do
  count=$(( parts - t * 1000 < 1000 ? parts - t * 1000 : 1000 ))
  api -d "{\"name\":\"idle-$t\",\"partitions\":$count,\"replication_factor\":$rf}" "$url/v1/topics" > /dev/null
done
for _ in $(seq 1200); do
  led=0
  for t in $(seq 0 $((topics - 1))); do
    led=$(( led + $(api "$url/v1/topics/idle-$t" | jq '[.partitions[]? | select(.leader != null)] | length') ))
  done
  [ "$led" = "$parts" ] && break; sleep 1
done
echo "partitions with a leader: $led of $parts"
sleep "${WARM:-15}"
ticks() { for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat"; done | paste -sd+ | bc; }
rss() { for p in $pids; do awk '$1=="VmRSS:" {printf "%d ", $2/1024}' "/proc/$p/status"; done; }
hz=$(getconf CLK_TCK); before=$(ticks); span=${SPAN:-10}
sleep "$span"
after=$(ticks)
echo "brokers=$n rf=$rf partitions=$parts cpu_s=$(echo "scale=2; ($after - $before) / $hz" | bc) over ${span}s, cores=$(echo "scale=3; ($after - $before) / $hz / $span" | bc), rss_mib=$(rss)"
api "$url/metrics" | grep -E '^palisade_replicas' || true
