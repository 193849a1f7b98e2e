#!/bin/bash
# Group consume against plain consume on one broker, same session, alternating rounds:
# `palisade dev` with one broker, a 6-partition RF1 topic filled for 15 s by 16 connections of
# 100 x 1 KiB records, then ROUNDS (default 3) of `bench consume --connections 2` and
# `bench group-consume --connections 2` for each commit interval in COMMIT_INTERVALS_MS
# (default "0 1000": after every poll, and once a second), one JSON line each. PAL is the binary
# (default target/release/palisade). Numbers are printed, never judged.
set -euo pipefail
cd "$(dirname "$0")/../.."
PAL=${PAL:-$(pwd)/target/release/palisade}
ROUNDS=${ROUNDS:-3}
COMMIT_INTERVALS_MS=${COMMIT_INTERVALS_MS:-"0 1000"}
. benches/memory/dev-cluster.sh
d=$(mktemp -d /tmp/palisade-group.XXXX)
start_dev 1 "$d"
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$d"' EXIT
export PALISADE_TOKEN=$tok
"$PAL" bench produce --url "$url" --ca-cert "$ca" --connections 16 --batch 100 \
  --record-bytes 1024 --duration-s 15 --topic gb --partitions 6 --replication-factor 1 --json |
  jq -c '{produced_per_s: .records_per_s}'
for round in $(seq "$ROUNDS"); do
  "$PAL" bench consume --url "$url" --ca-cert "$ca" --connections 2 --topic gb --json |
    jq -c "{round: $round, mode: \"consume\", records_per_s, p50: .latency_ms.p50, p99: .latency_ms.p99, errors, broker_cpu_s: .brokers[0].cpu_s}"
  for interval in $COMMIT_INTERVALS_MS; do
    "$PAL" bench group-consume --url "$url" --ca-cert "$ca" --connections 2 --topic gb \
      --duration-s 60 --commit-interval-ms "$interval" --json |
      jq -c "{round: $round, mode: \"group\", commit_interval_ms: $interval, records_per_s, p50: .latency_ms.p50, p99: .latency_ms.p99, errors, broker_cpu_s: .brokers[0].cpu_s}"
  done
done
