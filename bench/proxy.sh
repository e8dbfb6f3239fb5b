#!/usr/bin/env bash
# L4 proxy benchmark: lifeboat's proxy (lifeboat proxy serve) beside HAProxy
# 2.6 (Debian) in mode tcp, same machine, same backends, same check
# settings (tcp every 200 ms, fall 2, rise 1), two threads each, in one run:
#   - throughput of one large transfer (iperf3, 4 s): Gbit/s and the proxy's
#     CPU seconds per GB moved (utime + stime of the whole process);
#   - new connections per second for short requests (wrk, 32 connections,
#     "Connection: close": every request a new connection, 4 s);
#   - added latency of a request on open connections (wrk --latency, 4
#     connections, 4 s): p50 and p99 minus the same without a proxy;
#   - failover time: the active backend killed, until the first new
#     connection through the proxy reaches the backup (a client connects
#     every 2 ms through both proxies at once).
# Medians of RUNS runs; the direct (no proxy) figures are the ceiling.
# Not a test: prints a Markdown report (bench/RESULTS.md keeps one).
#
# Usage: bench/proxy.sh [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SECS=4

source bench/lib.sh
bench_init px
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
bg() { "$@" > "$W/$(basename "$1")-$RANDOM.log" 2>&1 & LAST=$!; PIDS+=("$LAST"); }

IPERF=$(free_port); APP_E=$(free_port); APP_W=$(free_port)
LB_THR=$(free_port); LB_WEB=$(free_port); LB_ADMIN=$(free_port); AGENT=$(free_port)
HA_THR=$(free_port); HA_WEB=$(free_port)
mkdir -p "$W/east" "$W/west"
bg iperf3 -s -p "$IPERF"
bg "$LB" app serve --dir "$W/east" --listen "127.0.0.1:$APP_E" --region east; APPE_PID=$LAST
bg "$LB" app serve --dir "$W/west" --listen "127.0.0.1:$APP_W" --region west

cat > "$W/plan.yaml" <<PLAN
name: benchpx
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:$AGENT }
  west: { role: standby, agent: 127.0.0.1:$(free_port) }
checks:
  tcp: { type: tcp, interval: 200ms, timeout: 150ms, fall: 2, rise: 1 }
endpoints:
  iperf:    { region: east, address: 127.0.0.1:$IPERF }
  web-east: { region: east, address: 127.0.0.1:$APP_E, check: tcp }
  web-west: { region: west, address: 127.0.0.1:$APP_W, check: tcp }
proxy:
  threads: 2
  listeners:
    thr: { listen: 127.0.0.1:$LB_THR, endpoints: [iperf] }
    web: { listen: 127.0.0.1:$LB_WEB, endpoints: [web-east, web-west], max_connections: 3000 }
PLAN
cat > "$W/haproxy.cfg" <<CFG
global
  nbthread 2
  maxconn 3000
defaults
  mode tcp
  timeout connect 2s
  timeout client 5m
  timeout server 5m
  retries 3
  option redispatch 1
frontend thr
  bind 127.0.0.1:$HA_THR
  default_backend thr
backend thr
  server iperf 127.0.0.1:$IPERF
frontend web
  bind 127.0.0.1:$HA_WEB
  maxconn 3000
  default_backend web
backend web
  server east 127.0.0.1:$APP_E check inter 200 fall 2 rise 1
  server west 127.0.0.1:$APP_W check inter 200 fall 2 rise 1 backup
CFG
haproxy -c -q -f "$W/haproxy.cfg"
bg haproxy -db -f "$W/haproxy.cfg"; HA_PID=$LAST
bg "$LB" --log-level warn proxy serve --plan "$W/plan.yaml" --region east --admin "127.0.0.1:$LB_ADMIN" \
  --data-dir "$W/data/proxy"; LB_PID=$LAST

region_of() {  # PORT: the region that answers a request through it, or ""
  curl -s --max-time 1 -D - -o /dev/null "http://127.0.0.1:$1/healthz" 2>/dev/null | tr -d '\r' |
    sed -n 's/^X-Lifeboat-Region: //Ip'
}
wait_region() {  # PORT REGION
  local deadline=$(( SECONDS + 20 ))
  until [ "$(region_of "$1")" = "$2" ]; do
    [ $SECONDS -lt $deadline ] || { log "port $1 never reached $2"; exit 1; }
    sleep 0.05
  done
}
wait_region "$LB_WEB" east; wait_region "$HA_WEB" east; wait_region "$APP_E" east

# throughput PORT PID: "gbps cpu_s_per_gb" (PID 0: no proxy, no CPU figure)
throughput() {
  local before after json bytes
  before=$([ "$2" = 0 ] && echo 0 || cpu_seconds "$2")
  json=$(iperf3 -c 127.0.0.1 -p "$1" -t "$SECS" -J)
  after=$([ "$2" = 0 ] && echo 0 || cpu_seconds "$2")
  bytes=$(jq '.end.sum_received.bytes' <<<"$json")
  jq -r --argjson b "$bytes" --argjson c "$(echo "$after - $before" | bc -l)" \
    '"\(.end.sum_received.bits_per_second / 1e9) \(if $c > 0 then $c / ($b / 1e9) else 0 end)"' <<<"$json"
}
# rate PORT: new connections (requests) a second
rate() {
  wrk -t2 -c32 -d"${SECS}s" -H "Connection: close" "http://127.0.0.1:$1/healthz" |
    awk '/Requests\/sec/ {print $2}'
}
# latency PORT: "p50_ms p99_ms" on open connections
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}'; }
latency() {
  local out
  out=$(wrk -t1 -c4 -d"${SECS}s" --latency "http://127.0.0.1:$1/healthz")
  echo "$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms) $(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)"
}
# failover: kills east's app while a client connects through each proxy every
# 2 ms; writes "lifeboat_ms haproxy_ms" from the kill to each one's first
# answer from west into $W/fo.out (-1: none within 20 s). Restarts east's app
# and waits until both are back on it. Not in a subshell: it keeps APPE_PID.
failover() {
  rm -f "$W/killed"
  /usr/bin/python3 - "$LB_WEB" "$HA_WEB" "$W/killed" > "$W/fo.out" <<'PY' &
import socket, sys, time, os
ports, killed = [int(sys.argv[1]), int(sys.argv[2])], sys.argv[3]
def region(port):
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=1)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = c.recv(4096)
            if not b: break
            data += b
        c.close()
        for line in data.decode(errors="replace").split("\r\n"):
            if line.lower().startswith("x-lifeboat-region:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
while not os.path.exists(killed):
    time.sleep(0.001)
t0 = int(open(killed).read()) / 1e9
done = {}
while len(done) < 2 and time.time() - t0 < 20:
    for p in ports:
        if p not in done and region(p) == "west":
            done[p] = (time.time() - t0) * 1000
    time.sleep(0.002)
print(" ".join("%.1f" % done.get(p, -1) for p in ports))
PY
  local prober=$!
  sleep 0.3
  kill "$APPE_PID"; date +%s%N > "$W/killed.tmp"; mv "$W/killed.tmp" "$W/killed"
  wait "$prober"
  bg "$LB" app serve --dir "$W/east" --listen "127.0.0.1:$APP_E" --region east; APPE_PID=$LAST
  wait_region "$LB_WEB" east; wait_region "$HA_WEB" east
}

: > "$W/rows"
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS"
  read -r d_gbps _ <<<"$(throughput "$IPERF" 0)"
  read -r l_gbps l_cpu <<<"$(throughput "$LB_THR" "$LB_PID")"
  read -r h_gbps h_cpu <<<"$(throughput "$HA_THR" "$HA_PID")"
  d_rate=$(rate "$APP_E"); l_rate=$(rate "$LB_WEB"); h_rate=$(rate "$HA_WEB")
  read -r d50 d99 <<<"$(latency "$APP_E")"
  read -r l50 l99 <<<"$(latency "$LB_WEB")"
  read -r h50 h99 <<<"$(latency "$HA_WEB")"
  failover
  read -r l_fo h_fo < "$W/fo.out"
  echo "$d_gbps $l_gbps $h_gbps $l_cpu $h_cpu $d_rate $l_rate $h_rate $d50 $d99 $l50 $l99 $h50 $h99 $l_fo $h_fo" >> "$W/rows"
  log "  Gbit/s direct $d_gbps lifeboat $l_gbps haproxy $h_gbps; CPU s/GB lifeboat $l_cpu haproxy $h_cpu"
  log "  conn/s direct $d_rate lifeboat $l_rate haproxy $h_rate; p50/p99 ms direct $d50/$d99 lifeboat $l50/$l99 haproxy $h50/$h99"
  log "  failover ms lifeboat $l_fo haproxy $h_fo"
done

col() { awk -v c="$1" '{print $c}' "$W/rows" | median; }
# The median of the runs' own ratios: both proxies ran beside each other in a run.
ratio_col() { awk -v a="$1" -v b="$2" '{print $a / $b}' "$W/rows" | median | xargs printf "%.2f"; }
fmt() { printf "%.${2:-2}f" "$1"; }
D_G=$(col 1); L_G=$(col 2); H_G=$(col 3); L_C=$(col 4); H_C=$(col 5)
D_R=$(col 6); L_R=$(col 7); H_R=$(col 8)
D50=$(col 9); D99=$(col 10); L50=$(col 11); L99=$(col 12); H50=$(col 13); H99=$(col 14)
L_FO=$(col 15); H_FO=$(col 16)
cat <<EOF
## L4 proxy beside HAProxy $(haproxy -v | awk 'NR==1 {print $3}') (mode tcp), $(nproc) cores

Command: \`bench/proxy.sh $RUNS\` (commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d)); medians of $RUNS runs
(the ratio column: the median of each run's own ratio).
Both proxies: 2 threads, the same backends, tcp checks every 200 ms, fall 2, rise 1.

| | direct | lifeboat | HAProxy | lifeboat / HAProxy |
|---|---|---|---|---|
| throughput, one stream (Gbit/s) | $(fmt "$D_G") | $(fmt "$L_G") | $(fmt "$H_G") | $(ratio_col 2 3) |
| proxy CPU per GB moved (s) | - | $(fmt "$L_C" 3) | $(fmt "$H_C" 3) | $(ratio_col 5 4) (HAProxy / lifeboat: above 1 is less CPU) |
| new connections per second | $(fmt "$D_R" 0) | $(fmt "$L_R" 0) | $(fmt "$H_R" 0) | $(ratio_col 7 8) |
| request latency p50 (ms) | $(fmt "$D50" 3) | $(fmt "$L50" 3) (+$(fmt "$(echo "$L50 - $D50" | bc -l)" 3)) | $(fmt "$H50" 3) (+$(fmt "$(echo "$H50 - $D50" | bc -l)" 3)) | |
| request latency p99 (ms) | $(fmt "$D99" 3) | $(fmt "$L99" 3) (+$(fmt "$(echo "$L99 - $D99" | bc -l)" 3)) | $(fmt "$H99" 3) (+$(fmt "$(echo "$H99 - $D99" | bc -l)" 3)) | |
| failover: backend killed to first answer from the backup (ms) | - | $(fmt "$L_FO" 1) | $(fmt "$H_FO" 1) | (checks allow 400 + 50) |
EOF
