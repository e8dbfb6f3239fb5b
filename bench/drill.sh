#!/usr/bin/env bash
# Drill benchmark: `lifeboat drill run region-outage` several times on a
# loopback plan with the issue's settings (the application checked every 1 s,
# fall 3, failover grace 1 s, DNS TTL 1 s, three regions with a witness,
# continuous replication with 50 ms coalescing), and the medians and worst
# of what its client measured: RTO, RPO (as time and as records), detection;
# then, with --failback, the planned move back to east: its RTO and loss.
# The cloud recipe it replaces cannot run here; its figures are the
# documented ones, printed beside for reference.
# Not a test: prints a Markdown report (bench/RESULTS.md keeps one).
#
# Usage: bench/drill.sh [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}

scripts/deps.sh >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target lifeboat >/dev/null
LB=$(readlink -f build/lifeboat)
W=$(mktemp -d /tmp/lifeboat-bench-drill-XXXXXX)
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
free_port() { local p; while :; do p=$(( (RANDOM % 20000) + 10000 )); [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }; done; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
worst() { sort -g | tail -1; }

rows=()
for i in $(seq 1 "$RUNS"); do
  d="$W/run$i"; mkdir -p "$d/east-vol" "$d/west-vol"
  head -c 32 /dev/urandom > "$d/key"
  cat > "$d/plan.yaml" <<PLAN
name: bench-drill
pattern: warm-standby
objectives: { rto: 5s, rpo: 1s }
regions:
  east:    { role: primary, agent: 127.0.0.1:$(free_port) }
  west:    { role: standby, agent: 127.0.0.2:$(free_port) }
  witness: { role: witness, agent: 127.0.0.3:$(free_port) }
checks:
  app: { type: http, path: /healthz, expect_body: ok, interval: 1s, timeout: 500ms, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$(free_port), check: app }
  web-west: { region: west, address: 127.0.0.2:$(free_port), check: app }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:53]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
volumes:
  data:
    path: { east: $d/east-vol, west: $d/west-vol }
    replication: { port: $(free_port), key_file: $d/key, coalesce: 50ms, verify_every: 0s }
failover:
  mode: automatic
  grace: 1s
PLAN
  echo "run $i/$RUNS" >&2
  "$LB" drill run region-outage --failback --plan "$d/plan.yaml" --data-dir "$d/run" -o json > "$d/report.json" 2>"$d/err" ||
    { echo "run $i missed the objectives or failed:" >&2; cat "$d/err" >&2; }
  rows+=("$(jq -r '[.rto_seconds // "inf", .rpo_seconds, .loss.missing, .client.acknowledged, .detection_seconds // "inf", .verdict, .failback.rto_seconds // "inf", .failback.loss.missing // "-"] | @tsv' "$d/report.json")")
done

col() { printf '%s\n' "${rows[@]}" | cut -f"$1"; }
echo "## Drill: region-outage on loopback, measured by the drill's client"
echo
echo "\`bench/drill.sh $RUNS\` on $(nproc) cores, $(date -u +%Y-%m-%d), lifeboat $(git rev-parse --short HEAD)."
echo "Checks every 1 s, fall 3, grace 1 s, DNS TTL 1 s; the client writes every 10 ms through the name."
echo
echo "| run | RTO (s) | RPO (s) | records lost / acknowledged | detection (s) | failback RTO (s) | failback records lost | verdict |"
echo "|---|---|---|---|---|---|---|---|"
n=0
for r in "${rows[@]}"; do
  n=$((n + 1))
  IFS=$'\t' read -r rto rpo lost acked det verdict brto blost <<<"$r"
  printf '| %d | %.2f | %.3f | %s / %s | %.2f | %.3f | %s | %s |\n' "$n" "$rto" "$rpo" "$lost" "$acked" "$det" "$brto" "$blost" "$verdict"
done
printf '| **median** | **%.2f** | **%.3f** | %s | **%.2f** | **%.3f** | %s | |\n' "$(col 1 | median)" "$(col 2 | median)" "$(col 3 | median)" "$(col 5 | median)" "$(col 7 | median)" "$(col 8 | median)"
printf '| worst | %.2f | %.3f | %s | %.2f | %.3f | %s | |\n' "$(col 1 | worst)" "$(col 2 | worst)" "$(col 3 | worst)" "$(col 5 | worst)" "$(col 7 | worst)" "$(col 8 | worst)"
echo
echo "| the cloud recipe (documented, not run here) | failover time | data loss |"
echo "|---|---|---|"
echo "| Route 53 failover record, health checks every 10 s, failure threshold 3, TTL 30 s | about 30 s to mark unhealthy, then up to the 30 s TTL: 30–60 s | — |"
echo "| EFS replication | — | RPO objective 15 minutes |"
