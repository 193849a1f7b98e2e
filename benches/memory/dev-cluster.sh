# Sourced by the memory benchmarks: `start_dev BROKERS DIR` runs `palisade dev` ($PAL) in DIR and
# waits for it, then sets dev (its pid), url, ca, pass, pids (the brokers') and tok (an admin
# access token).
start_dev() {
  "$PAL" dev --brokers "$1" --dir "$2" --http-port-base 0 > "$2/dev.out" 2>&1 &
  dev=$!
  for _ in $(seq 120); do [ -s "$2/cluster.json" ] && break; sleep 0.5; done
  url=$(jq -r '.brokers[0].http' "$2/cluster.json"); ca=$(jq -r .ca_cert "$2/cluster.json")
  pass=$(jq -r .admin.password "$2/cluster.json"); pids=$(jq -r '.brokers[].pid' "$2/cluster.json")
  tok=$(curl -s --cacert "$ca" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$pass\"}" "$url/v1/auth/token" | jq -r .access_token)
}
