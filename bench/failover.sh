#!/usr/bin/env bash
# Failover benchmark: kill the primary region (its agent, which is also its
# endpoint: the check is the agent's /healthz) and measure, from the kill:
#   - traffic: until the standby region's DNS server answers the standby;
#   - failover: until the standby is primary at epoch 2 with its volume
#     copy promoted and the run recorded done;
#   - split-brain instants: samples (every 20 ms, from the kill until 3 s
#     after the old primary's agent is restarted) in which both regions'
#     copies report themselves as active sources.
# Two settings: the tightest the plan supports well here (checks every
# 200 ms, fall 3, grace 0s) and 1 s x 3 (grace 1s). Three agents (east
# primary, west standby, a witness) on loopback, the embedded store.
# Not a test: prints a Markdown report (bench/RESULTS.md keeps one).
#
# Usage: bench/failover.sh [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}

source bench/lib.sh
bench_init fo
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
# Whole milliseconds: the halfway of an even count rounded down.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }
export LIFEBOAT_TOKEN=bench

# run_once INTERVAL TIMEOUT GRACE: prints "dns_ms failover_ms split_instants samples"
run_once() {
  local interval=$1 timeout=$2 grace=$3 d
  d=$(mktemp -d "$W/run-XXXX")
  local pe pw pn dns_w rep
  pe=$(free_port); pw=$(free_port); pn=$(free_port); dns_w=$(free_port); rep=$(free_port)
  mkdir -p "$d/east-vol"
  openssl rand -hex 32 > "$d/key"
  cat > "$d/plan.yaml" <<PLAN
name: bench
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$pe }
  west:    { role: standby, agent: 127.0.0.2:$pw }
  witness: { role: witness, agent: 127.0.0.3:$pn }
checks:
  agent: { type: http, path: /healthz, expect_body: ok, interval: $interval, timeout: $timeout, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$pe, check: agent }
  web-west: { region: west, address: 127.0.0.2:$pw, check: agent }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:$dns_w]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
volumes:
  data:
    path: { east: $d/east-vol, west: $d/west-vol }
    replication: { port: $rep, key_file: $d/key, coalesce: 50ms, verify_every: 0s }
failover: { mode: automatic, grace: $grace, lease: 2s }
PLAN
  agent() {  # REGION [DNS]
    "$LB" --log-format json agent --plan "$d/plan.yaml" --region "$1" --data-dir "$d/data/$1" \
      ${2:+--dns-listen 127.0.0.1:$2} >>"$d/$1.log" 2>&1 &
    LAST=$!; PIDS+=("$LAST")
  }
  agent east "$(free_port)"; local east=$LAST
  agent west "$dns_w"; local west=$LAST
  agent witness; local witness=$LAST
  local deadline=$(( SECONDS + 20 ))
  until [ "$(curl -sf --max-time 1 "http://127.0.0.3:$pn/v1/failover" | jq '.views | length' 2>/dev/null)" = 3 ] &&
        [ "$(dig @127.0.0.1 -p "$dns_w" +time=1 +tries=1 +short shop.example.com)" = 127.0.0.1 ] &&
        curl -sf --max-time 1 "http://127.0.0.1:$pe/v1/replication/data" | jq -e '.targets[0].in_sync' >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "agents not ready"; for f in "$d"/*.log; do log "== $f"; tail -n 5 "$f" >&2; done; exit 1; }
    sleep 0.1
  done

  # Sampler: each line "EAST_ROLE WEST_ROLE" (role "-" when the agent does not answer).
  ( while [ ! -f "$d/stop" ]; do
      e=$(curl -s --max-time 0.2 "http://127.0.0.1:$pe/v1/replication/data" | jq -r '.role // "-"' 2>/dev/null || echo -)
      w=$(curl -s --max-time 0.2 "http://127.0.0.2:$pw/v1/replication/data" | jq -r '.role // "-"' 2>/dev/null || echo -)
      echo "${e:--} ${w:--}" >> "$d/samples"
      sleep 0.02
    done ) &
  local sampler=$!

  local t0 t_dns t_fo
  t0=$(ms_now)
  kill -9 "$east"; wait "$east" 2>/dev/null || true
  until [ "$(dig @127.0.0.1 -p "$dns_w" +time=1 +tries=1 +short shop.example.com)" = 127.0.0.2 ]; do
    [ $(( $(ms_now) - t0 )) -lt 60000 ] || { log "DNS never moved"; exit 1; }
    sleep 0.01
  done
  t_dns=$(( $(ms_now) - t0 ))
  until curl -sf --max-time 1 "http://127.0.0.2:$pw/v1/status" |
        jq -e '.failover.epoch == 2 and .failover.run.state == "done" and .services.replication[0].role == "source"' >/dev/null 2>&1; do
    [ $(( $(ms_now) - t0 )) -lt 60000 ] || { log "the failover never finished"; tail -n 5 "$d/west.log" >&2; exit 1; }
    sleep 0.02
  done
  t_fo=$(( $(ms_now) - t0 ))
  # The stale primary comes back: it must never send again.
  agent east; east=$LAST
  sleep 3
  touch "$d/stop"; wait "$sampler" 2>/dev/null || true
  local split samples
  split=$(awk '$1 == "source" && $2 == "source"' "$d/samples" | wc -l)
  samples=$(wc -l < "$d/samples")
  kill "$east" "$west" "$witness" 2>/dev/null || true
  wait "$east" "$west" "$witness" 2>/dev/null || true
  echo "$t_dns $t_fo $split $samples"
}

echo "## Failover: killing the primary region, lifeboat's engine"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $RUNS runs per setting, medians."
echo "Command: \`bench/failover.sh $RUNS\`."
echo
echo "| setting | DNS answers the standby (median) | runs (ms) | failover done: epoch 2, copy promoted (median) | runs (ms) | split-brain instants / samples |"
echo "|---|---|---|---|---|---|"
for setting in "200ms 100ms 0s" "1s 500ms 1s"; do
  set -- $setting
  dns_runs=(); fo_runs=(); split_total=0; samples_total=0
  for i in $(seq 1 "$RUNS"); do
    log "setting $1 x 3 (grace $3): run $i"
    read -r a b c s < <(run_once "$1" "$2" "$3")
    dns_runs+=("$a"); fo_runs+=("$b"); split_total=$(( split_total + c )); samples_total=$(( samples_total + s ))
  done
  dm=$(printf '%s\n' "${dns_runs[@]}" | median); fm=$(printf '%s\n' "${fo_runs[@]}" | median)
  echo "| checks every $1, timeout $2, fall 3, grace $3 | $dm ms | ${dns_runs[*]} | $fm ms | ${fo_runs[*]} | $split_total / $samples_total |"
done
echo
echo "Beside it, the cloud recipe as documented (not runnable here): Route 53 health checks every 10 s (fast) or"
echo "30 s, failure threshold 3 by default, so 30-90 s to mark the primary unhealthy, plus the record's TTL"
echo "(60 s recommended for failover records) before resolvers move; ARC routing controls switch only when a"
echo "person or a script calls them; Aurora Global Database's managed failover is documented at about a minute."
