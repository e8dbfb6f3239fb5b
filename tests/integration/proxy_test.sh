#!/usr/bin/env bash
# The L4 proxy (issue 16) inside real agents and alone, on loopback:
#   1. bulk TCP bytes through east's proxy, byte for byte, with the half-close;
#      an HTTP request through it reaches east's application;
#   2. east's application dies: new connections go to west within its check's
#      interval x fall, and a held connection to east is reset, not left hanging;
#   3. east's application is back; routing control off for east: new connections
#      go to west at once, a held one to east is drained (works, then closed);
#   4. a failover (new epoch) to west: the standalone proxy (lifeboat proxy serve)
#      follows the epoch too;
#   5. limits: over max_connections refused cleanly; a stalled backend is closed
#      at the idle timeout; 2000 silent clients (a slowloris) starve nobody and
#      the agent's memory stays bounded;
#   6. UDP flows through the proxy, following a failover;
#   7. metrics and status.
source "$(dirname "$0")/lib.sh" "$1"
PEER="/usr/bin/python3 $(dirname "$(readlink -f "$0")")/proxy_peer.py"
export LIFEBOAT_TOKEN=it-token

PORT_EAST=$(free_port); PORT_WEST=$(free_port); PORT_WITNESS=$(free_port)
APP_EAST=$(free_port); APP_WEST=$(free_port); ECHO_EAST=$(free_port); ECHO_WEST=$(free_port)
STALL=$(free_port); UDP_EAST=$(free_port); UDP_WEST=$(free_port)
# East's agent's listeners, west's, and the standalone proxy's.
for who in EAST WEST ALONE; do
  for l in WEB BULK LIMITED STALLED UDP; do eval "P_${who}_$l=$(free_port)"; done
done
ADMIN_ALONE=$(free_port)
mkdir -p "$WORK/east-app" "$WORK/west-app"
cat > "$WORK/plan.yaml" <<PLAN
name: px
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west:    { role: standby, agent: 127.0.0.1:$PORT_WEST }
  witness: { role: witness, agent: 127.0.0.1:$PORT_WITNESS }
checks:
  app: { type: http, path: /healthz, expect_body: ok, interval: 200ms, timeout: 150ms, fall: 2, rise: 1 }
  tcp: { type: tcp, interval: 200ms, timeout: 150ms, fall: 2, rise: 1 }
endpoints:
  web-east:  { region: east, address: 127.0.0.1:$APP_EAST, check: app }
  web-west:  { region: west, address: 127.0.0.1:$APP_WEST, check: app }
  echo-east: { region: east, address: 127.0.0.1:$ECHO_EAST, check: tcp }
  echo-west: { region: west, address: 127.0.0.1:$ECHO_WEST, check: tcp }
  stall:     { region: east, address: 127.0.0.1:$STALL }
  udp-east:  { region: east, address: 127.0.0.1:$UDP_EAST }
  udp-west:  { region: west, address: 127.0.0.1:$UDP_WEST }
routing_controls: { safety: { min_on: 1 } }
proxy:
  threads: 2
  listeners:
    web:     { listen: 127.0.0.1:$P_EAST_WEB, endpoints: [web-east, web-west], drain: 1500ms }
    bulk:    { listen: 127.0.0.1:$P_EAST_BULK, endpoints: [echo-east, echo-west], drain: 2s }
    limited: { listen: 127.0.0.1:$P_EAST_LIMITED, endpoints: [echo-east, echo-west], max_connections: 20 }
    stalled: { listen: 127.0.0.1:$P_EAST_STALLED, endpoints: [stall], idle_timeout: 1s }
    udp:     { listen: 127.0.0.1:$P_EAST_UDP, protocol: udp, endpoints: [udp-east, udp-west], idle_timeout: 5s }
failover: { mode: manual }
PLAN
"$LIFEBOAT" plan validate "$WORK/plan.yaml" >/dev/null || fail "the plan does not validate"

listen_flags() {  # WHO (EAST, WEST, ALONE) FLAG
  local who=$1 flag=$2 l out=""
  for l in web bulk limited stalled udp; do
    local var="P_${who}_${l^^}"
    out+=" $flag $l=127.0.0.1:${!var}"
  done
  echo "$out"
}
start_bg() {  # LOG CMD...: sets LAST_PID
  local log=$1; shift
  "$@" >>"$WORK/$log.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
start_bg app-east "$LIFEBOAT" app serve --dir "$WORK/east-app" --listen "127.0.0.1:$APP_EAST" --region east; APPE=$LAST_PID
start_bg app-west "$LIFEBOAT" app serve --dir "$WORK/west-app" --listen "127.0.0.1:$APP_WEST" --region west
start_bg echo-east $PEER echo "$ECHO_EAST" east; ECHOE=$LAST_PID
start_bg echo-west $PEER echo "$ECHO_WEST" west
start_bg stall $PEER stall "$STALL"
start_bg udp-east $PEER udp-echo "$UDP_EAST" east; UDPE=$LAST_PID
start_bg udp-west $PEER udp-echo "$UDP_WEST" west
for region in east west witness; do
  who=${region^^}
  flags=""
  [ "$region" = witness ] || flags=$(listen_flags "$who" --proxy-listen)
  # shellcheck disable=SC2086
  start_bg "$region" "$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region "$region" \
    --data-dir "$WORK/data/$region" $flags
  eval "AGENT_$who=$LAST_PID"
done
wait_http "http://127.0.0.1:$PORT_EAST/healthz"; wait_http "http://127.0.0.1:$PORT_WEST/healthz"
wait_http "http://127.0.0.1:$PORT_WITNESS/healthz"
status() { curl -sf --max-time 2 "http://127.0.0.1:$1/v1/status"; }
# sends_to PORT LISTENER: the endpoints that listener of that agent sends new connections to.
sends_to() { status "$1" | jq -r --arg l "$2" '.services.proxy.listeners[] | select(.name == $l) | .sends_to | join(",")'; }
wait_sends_to() {  # PORT LISTENER WANT SECONDS
  local deadline=$(( SECONDS + $4 ))
  until [ "$(sends_to "$1" "$2")" = "$3" ]; do
    [ $SECONDS -lt $deadline ] || { status "$1" | jq .services.proxy >&2; fail "$2 does not send to $3"; }
    sleep 0.05
  done
}
wait_sends_to "$PORT_EAST" web web-east 10
wait_sends_to "$PORT_EAST" bulk echo-east 10
wait_sends_to "$PORT_WEST" web web-east 10
region_via() { curl -s --max-time 2 -D - -o /dev/null "http://127.0.0.1:$1/healthz" | tr -d '\r' | sed -n 's/^X-Lifeboat-Region: //Ip'; }
[ "$(region_via "$P_EAST_WEB")" = east ] || fail "a request through east's proxy did not reach east's application"
[ "$(region_via "$P_WEST_WEB")" = east ] || fail "a request through west's proxy did not reach east's application"
pass "east's and west's agents run the proxy; both send to east, the primary"

# --- 1. Bulk bytes with the half-close --------------------------------------------
out=$($PEER bulk "127.0.0.1:$P_EAST_BULK" $(( 64 << 20 )))
[ "$out" = "$(printf 'east\nok')" ] || { echo "$out" >&2; fail "64 MiB through the proxy did not come back whole"; }
pass "64 MiB through the proxy and back, byte for byte, ended by a half-close each way"

# --- 2. East's application dies ---------------------------------------------------
$PEER hold "127.0.0.1:$P_EAST_BULK" 20 > "$WORK/hold-dead.out" &
HOLD=$!; PIDS+=("$HOLD")
sleep 0.5
start=$(date +%s%N)
kill "$APPE"; wait "$APPE" 2>/dev/null || true
kill "$ECHOE"; wait "$ECHOE" 2>/dev/null || true
until [ "$(region_via "$P_EAST_WEB")" = west ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 10000 ] || fail "requests through the proxy never reached west"
  sleep 0.01
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait "$HOLD" || true
grep -q "^east [0-9]* until=closed" "$WORK/hold-dead.out" || { cat "$WORK/hold-dead.out" >&2; fail "a connection to the dead east stayed open"; }
wait_sends_to "$PORT_EAST" bulk echo-west 5
[ "$($PEER bulk "127.0.0.1:$P_EAST_BULK" 1000000 | sed -n 1p)" = west ] || fail "new bulk connections do not go to west"
pass "east's application killed: requests through the proxy reached west after $ms ms (check: 200ms x 2); the held connection to east ended"

# --- 3. East is back; its routing control goes off --------------------------------
start_bg app-east "$LIFEBOAT" app serve --dir "$WORK/east-app" --listen "127.0.0.1:$APP_EAST" --region east
start_bg echo-east $PEER echo "$ECHO_EAST" east
wait_sends_to "$PORT_EAST" web web-east 10
wait_sends_to "$PORT_EAST" bulk echo-east 10
$PEER hold "127.0.0.1:$P_EAST_BULK" 30 > "$WORK/hold-drain.out" &
HOLD=$!; PIDS+=("$HOLD")
sleep 0.5
# No timing assert on a loaded machine: the switch happens no earlier than this command
# starts, so a drained connection ends no earlier than this plus the drain time (2 s).
off_at=$(date +%s.%N)
"$LIFEBOAT" traffic off east --plan "$WORK/plan.yaml" > /dev/null || fail "lifeboat traffic off east"
wait_sends_to "$PORT_EAST" web web-west 10
[ "$(region_via "$P_EAST_WEB")" = west ] || fail "with east switched off, a request still reached east"
wait "$HOLD" || true
read -r name lines until ended_at < "$WORK/hold-drain.out"
[ "$name" = east ] && [ "$until" = until=closed ] ||
  { cat "$WORK/hold-drain.out" >&2; fail "the held connection to east was not closed when its drain time ended"; }
awk -v a="$off_at" -v b="$ended_at" 'BEGIN { exit !(b - a >= 1.9) }' ||
  { cat "$WORK/hold-drain.out" >&2; fail "the held connection to the switched-off east was cut at once, not drained"; }
has_metric "http://127.0.0.1:$PORT_EAST/metrics" 'lifeboat_proxy_closed_total{listener="bulk",reason="drained"} 1' ||
  fail "the drained connection is not counted"
"$LIFEBOAT" traffic on east --plan "$WORK/plan.yaml" > /dev/null
wait_sends_to "$PORT_EAST" web web-east 5
pass "east switched off: new connections went to west at once; the one held to east went on ($lines lines) and was closed when its drain time ended"

# --- 4. A failover moves the epoch; a standalone proxy follows it too ---------------
# shellcheck disable=SC2046
start_bg alone "$LIFEBOAT" --log-format json proxy serve --plan "$WORK/plan.yaml" --region west \
  --admin "127.0.0.1:$ADMIN_ALONE" --data-dir "$WORK/data/proxy-west" $(listen_flags ALONE --listen)
ALONE=$LAST_PID
wait_http "http://127.0.0.1:$ADMIN_ALONE/healthz"
wait_sends_to "$ADMIN_ALONE" web web-east 10
[ "$(region_via "$P_ALONE_WEB")" = east ] || fail "a request through the standalone proxy did not reach east"
"$LIFEBOAT" failover --to west --plan "$WORK/plan.yaml" --yes > "$WORK/failover.out" 2>&1 ||
  { cat "$WORK/failover.out" >&2; fail "lifeboat failover --to west"; }
for port in "$PORT_EAST" "$PORT_WEST" "$ADMIN_ALONE"; do wait_sends_to "$port" web web-west 10; done
for port in "$P_EAST_WEB" "$P_WEST_WEB" "$P_ALONE_WEB"; do
  [ "$(region_via "$port")" = west ] || fail "after the failover, a request through $port did not reach west"
done
status "$ADMIN_ALONE" | jq -e '.services.traffic.routing.primary == "west" and .services.traffic.routing.epoch == 2' >/dev/null ||
  { status "$ADMIN_ALONE" | jq .services.traffic >&2; fail "the standalone proxy's routing state is not at epoch 2"; }
status "$ADMIN_ALONE" | jq -e '.services.traffic | has("dns") | not' >/dev/null || fail "the standalone proxy serves DNS"
pass "a failover to west (epoch 2): both agents' proxies and the standalone one send to west"

# --- 5. Limits, a stalled backend, a slowloris ------------------------------------
$PEER silent "127.0.0.1:$P_EAST_LIMITED" 20 "$WORK/limited.ready" &
SILENT=$!; PIDS+=("$SILENT")
deadline=$(( SECONDS + 10 ))
until [ -s "$WORK/limited.ready" ]; do [ $SECONDS -lt $deadline ] || fail "20 connections to the limited listener"; sleep 0.05; done
deadline=$(( SECONDS + 5 ))
until status "$PORT_EAST" | jq -e '.services.proxy.listeners[] | select(.name == "limited") | .active == 20' >/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "the proxy does not count 20 connections"; sleep 0.05
done
got=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P_EAST_LIMITED; cat <&3" 2>&1 || echo "timeout")
[ -z "$got" ] || fail "the 21st connection was not refused with an end of stream: '$got'"
has_metric "http://127.0.0.1:$PORT_EAST/metrics" 'lifeboat_proxy_refused_total{listener="limited",reason="limit"} 1' ||
  fail "the refusal is not counted"
kill "$SILENT"; wait "$SILENT" 2>/dev/null || true
start=$(date +%s%N)
timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$P_EAST_STALLED; head -c 100000 /dev/zero >&3; cat <&3" >/dev/null 2>&1 || true
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$ms" -lt 8000 ] || fail "a connection to a stalled backend outlived the idle timeout (${ms} ms)"
has_metric "http://127.0.0.1:$PORT_EAST/metrics" 'lifeboat_proxy_closed_total{listener="stalled",reason="idle"} 1' ||
  fail "the idle close is not counted"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss_kb "$AGENT_WEST")
$PEER silent "127.0.0.1:$P_WEST_BULK" 2000 "$WORK/slowloris.ready" &
SILENT=$!; PIDS+=("$SILENT")
deadline=$(( SECONDS + 30 ))
until [ -s "$WORK/slowloris.ready" ]; do [ $SECONDS -lt $deadline ] || fail "2000 silent connections"; sleep 0.1; done
out=$($PEER bulk "127.0.0.1:$P_WEST_BULK" $(( 8 << 20 )))
[ "$out" = "$(printf 'west\nok')" ] || { echo "$out" >&2; fail "a transfer beside 2000 silent clients failed"; }
after=$(rss_kb "$AGENT_WEST")
grew=$(( (after - before) / 1024 ))
[ "$grew" -lt 64 ] || fail "2000 silent connections grew west's agent by $grew MiB (bound: 64 MiB)"
kill "$SILENT"; wait "$SILENT" 2>/dev/null || true
pass "limits: the 21st connection refused cleanly; a stalled backend closed after ${ms} ms (idle 1s); 2000 silent clients starved no transfer and grew the agent by $grew MiB (< 64)"

# --- 6. UDP flows ------------------------------------------------------------------
[ "$($PEER udp "127.0.0.1:$P_EAST_UDP" hello)" = "west:hello" ] || fail "a datagram through the proxy did not reach west (the primary)"
"$LIFEBOAT" failover --to east --plan "$WORK/plan.yaml" --yes > "$WORK/failover2.out" 2>&1 ||
  { cat "$WORK/failover2.out" >&2; fail "lifeboat failover --to east"; }
wait_sends_to "$PORT_EAST" udp udp-east 10
[ "$($PEER udp "127.0.0.1:$P_EAST_UDP" again)" = "east:again" ] || fail "after the failover back, a datagram did not reach east"
pass "UDP: datagrams through the proxy reached the primary's endpoint, and followed the failover back to east"

# --- 7. Metrics, status, a bad flag -------------------------------------------------
page=$(curl -sf "http://127.0.0.1:$PORT_EAST/metrics")
for m in lifeboat_proxy_connections_total lifeboat_proxy_bytes_total lifeboat_proxy_active_connections \
         lifeboat_proxy_connect_failures_total lifeboat_proxy_switches_total lifeboat_proxy_target_connect_seconds; do
  grep -q "^$m{" <<<"$page" || fail "/metrics has no $m"
done
up=$(sed -n 's/^lifeboat_proxy_bytes_total{listener="bulk",target="echo-east",direction="up"} //p' <<<"$page")
[ "${up%.*}" -ge 67108864 ] || fail "the bulk transfer's 64 MiB are not counted ($up bytes)"
"$LIFEBOAT" status --plan "$WORK/plan.yaml" > "$WORK/status.txt" || true
grep -Eq "^web \(tcp\) +east +127.0.0.1:$P_EAST_WEB +web-east " "$WORK/status.txt" &&
  grep -Eq "^udp \(udp\) +west +127.0.0.1:$P_WEST_UDP +udp-east " "$WORK/status.txt" ||
  { cat "$WORK/status.txt" >&2; fail "lifeboat status does not show each agent's listeners"; }
expect_exit 2 "$LIFEBOAT" proxy serve --plan "$WORK/plan.yaml" --region west --listen nope=127.0.0.1:1
grep -q "no proxy listener 'nope' (it has: web, bulk, limited, stalled, udp)" <<<"$OUT" || { echo "$OUT" >&2; fail "a bad --listen is not named"; }
expect_exit 2 "$LIFEBOAT" proxy serve --plan "$WORK/plan.yaml" --region witness
expect_exit 1 "$LIFEBOAT" proxy serve --plan "$WORK/plan.yaml" --region west --admin "127.0.0.1:$(free_port)" \
  --data-dir "$WORK/data/proxy-west-2" $(listen_flags ALONE --listen)
grep -q "cannot listen on 127.0.0.1:$P_ALONE_WEB" <<<"$OUT" || { echo "$OUT" >&2; fail "a second proxy on a taken address is not refused by name"; }
pass "metrics for every target; lifeboat status lists each agent's listeners; a bad listener name, a witness region and a taken address are refused by name"
