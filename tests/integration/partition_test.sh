#!/usr/bin/env bash
# Network partitions between regions, in network namespaces this test makes
# (root needed): east (primary), west (standby) and the witness each in a
# namespace of its own, joined by a bridge in a fourth (the hub, where the
# test's own commands run). Nothing changes in the machine's own network.
# The agents share the embedded store through the file system, as regions
# whose store stays reachable do (etcd with a member in each region).
# A link is cut by a blackhole route on both sides.
#   1. the witness–east link cut: the witness sees east down, west does not:
#      one vote of the two needed, so no failover, and DNS stays on east;
#   2. the west–east link cut instead (the standby's own link, replication
#      with it): again one vote, no failover;
#   3. both cut (east alone): the quorum fails over to west, east's agent
#      fences its copy. This step shows the cuts are real: the test fails if
#      they do not bring the failover the first two steps must not.
# Exits 77 (skipped) where network namespaces cannot be made.
source "$(dirname "$0")/lib.sh" "$1"
command -v dig >/dev/null || fail "dig is missing (scripts/deps.sh installs bind9-dnsutils)"
command -v ip >/dev/null || fail "ip is missing (scripts/deps.sh installs iproute2)"
export LIFEBOAT_TOKEN=it-token

TAG=$$
NS_HUB=lbit-hub-$TAG NS_EAST=lbit-east-$TAG NS_WEST=lbit-west-$TAG NS_WITNESS=lbit-wit-$TAG
MADE_NS=()
remove_namespaces() {
  for ns in "${MADE_NS[@]:-}"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true; done
}
AFTER_CLEANUP+=(remove_namespaces)
if ! ip netns add "$NS_HUB" 2>"$WORK/netns.err"; then
  echo "SKIP: cannot make a network namespace here ($(cat "$WORK/netns.err")); this test needs root" >&2
  exit 77
fi
MADE_NS+=("$NS_HUB")
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
hub() { in_ns "$NS_HUB" "$@"; }
ip -n "$NS_HUB" link set lo up
ip -n "$NS_HUB" link add br0 type bridge
ip -n "$NS_HUB" addr add 10.77.0.254/24 dev br0
ip -n "$NS_HUB" link set br0 up
declare -A ADDR=([east]=10.77.0.1 [west]=10.77.0.2 [witness]=10.77.0.3)
declare -A NS=([east]=$NS_EAST [west]=$NS_WEST [witness]=$NS_WITNESS)
for region in east west witness; do
  ns=${NS[$region]}
  ip netns add "$ns"; MADE_NS+=("$ns")
  ip link add eth0 netns "$ns" type veth peer name "p-$region" netns "$NS_HUB"
  ip -n "$NS_HUB" link set "p-$region" master br0
  ip -n "$NS_HUB" link set "p-$region" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "${ADDR[$region]}/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# cut A B / heal A B: the link between two regions, both directions.
cut() { ip -n "${NS[$1]}" route add blackhole "${ADDR[$2]}/32"; ip -n "${NS[$2]}" route add blackhole "${ADDR[$1]}/32"; }
heal() { ip -n "${NS[$1]}" route del blackhole "${ADDR[$2]}/32"; ip -n "${NS[$2]}" route del blackhole "${ADDR[$1]}/32"; }

mkdir -p "$WORK/east-vol"
openssl rand -hex 32 > "$WORK/key"
# Fixed ports: each namespace is empty but for this test.
cat > "$WORK/plan.yaml" <<PLAN
name: parts
pattern: warm-standby
regions:
  east:    { role: primary, agent: ${ADDR[east]}:7700 }
  west:    { role: standby, agent: ${ADDR[west]}:7700 }
  witness: { role: witness, agent: ${ADDR[witness]}:7700 }
checks:
  agent: { type: http, path: /healthz, expect_body: ok, interval: 200ms, timeout: 150ms, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: ${ADDR[east]}:7700, check: agent }
  web-west: { region: west, address: ${ADDR[west]}:7700, check: agent }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:5353]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 10.77.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
volumes:
  data:
    path: { east: $WORK/east-vol, west: $WORK/west-vol }
    replication: { port: 7800, key_file: $WORK/key, coalesce: 50ms, verify_every: 0s }
failover:
  mode: automatic
  grace: 500ms
  lease: 2s
state: { store: embedded }
PLAN
"$LIFEBOAT" plan validate "$WORK/plan.yaml" >/dev/null || fail "the plan does not validate"

for region in east west witness; do
  dns=()
  [ "$region" = witness ] || dns=(--dns-listen "${ADDR[$region]}:5353")
  # Not through in_ns: a function in the background is a subshell, whose
  # pid a kill at cleanup would end while the agent it started lived on.
  # `ip netns exec` execs the agent, so $! is the agent itself.
  ip netns exec "${NS[$region]}" "$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region "$region" \
    --data-dir "$WORK/data/$region" "${dns[@]}" >>"$WORK/$region.log" 2>&1 &
  PIDS+=("$!")
done
failover_json() { hub curl -sf --max-time 2 "http://${ADDR[$1]}:7700/v1/failover"; }
q() { hub dig @"${ADDR[$1]}" -p 5353 +time=1 +tries=1 +short shop.example.com; }
epoch() { failover_json witness | jq -r '"\(.view.primary)@\(.view.epoch)"'; }
deadline=$(( SECONDS + 20 ))
until [ "$(failover_json witness | jq '.views | length' 2>/dev/null)" = 3 ]; do
  [ $SECONDS -lt $deadline ] || { failover_json witness >&2; tail -5 "$WORK"/*.log >&2; fail "the three views never appeared"; }
  sleep 0.1
done
echo "before any cut" > "$WORK/east-vol/a"
deadline=$(( SECONDS + 15 ))
until [ -f "$WORK/west-vol/a" ] && [ "$(q west)" = "${ADDR[east]}" ]; do
  [ $SECONDS -lt $deadline ] || fail "the volume never reached west, or west's DNS never answered east"; sleep 0.1
done
pass "three agents in three network namespaces: three views, the volume replicates east to west, DNS answers east"

# see_down OBSERVER: until OBSERVER's view says the primary is down (past the
# grace): the cut is in effect. Then a few seconds for a failover to start,
# which must not.
see_down() {
  local observer=$1 deadline=$(( SECONDS + 15 ))
  until failover_json "$observer" | jq -e '.view.primary_down == true' >/dev/null; do
    [ $SECONDS -lt $deadline ] || { failover_json "$observer" | jq .view >&2; fail "$observer never saw east down"; }
    sleep 0.1
  done
}
see_up() {  # OBSERVER: after a heal, until OBSERVER sees east up without a failing probe
  local deadline=$(( SECONDS + 15 ))
  until failover_json "$1" | jq -e '.view.primary_down == false and .view.down_for_ms == 0' >/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$1 did not see east again after the heal"; sleep 0.1
  done
}
no_failover() {  # WHAT
  sleep 4  # grace 500 ms, ticks of 100 ms, a lease of 2 s: well past when a failover would begin
  [ "$(epoch)" = "east@1" ] || fail "$1: a failover happened (primary $(epoch))"
  failover_json west | jq -e '.verdict.votes == 1 and .verdict.failover == false' >/dev/null ||
    { failover_json west | jq .verdict >&2; fail "$1: the votes are not one of two"; }
  [ "$(q west)" = "${ADDR[east]}" ] && [ "$(q east)" = "${ADDR[east]}" ] ||
    fail "$1: DNS stopped answering east ($(q west) / $(q east)): one region's view moved the answer"
}

# --- 1. witness–east cut ---------------------------------------------------------
cut witness east
see_down witness
failover_json east | jq -e '.view.primary_down == false' >/dev/null || fail "east sees itself down"
no_failover "witness–east cut"
heal witness east
pass "witness–east link cut: the witness alone sees east down (1 vote of 2), no failover, DNS stays on east"

# --- 2. west–east cut ------------------------------------------------------------
see_up witness
cut west east
see_down west
no_failover "west–east cut"
heal west east
pass "west–east link cut: the standby alone sees east down (1 vote of 2), no failover, DNS stays on east"

# --- 3. east alone ---------------------------------------------------------------
see_up west
deadline=$(( SECONDS + 15 ))
until [ "$(hub curl -sf "http://${ADDR[east]}:7700/v1/replication/data" | jq -r '.targets[0].in_sync')" = true ]; do
  [ $SECONDS -lt $deadline ] || fail "east's volume did not get back in sync at west"; sleep 0.1
done
cut west east; cut witness east
deadline=$(( SECONDS + 30 ))
until [ "$(epoch)" = "west@2" ]; do
  [ $SECONDS -lt $deadline ] || { failover_json west >&2; fail "isolating east never failed over"; }
  sleep 0.1
done
until [ "$(q west)" = "${ADDR[west]}" ]; do
  [ $SECONDS -lt $deadline ] || fail "west's DNS never answered west"; sleep 0.1
done
# East's agent still reaches the store: it sees epoch 2 and fences its copy.
until hub curl -sf "http://${ADDR[east]}:7700/v1/replication/data" | jq -e '.role == "fenced"' >/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "east did not fence its copy"; sleep 0.1
done
pass "east cut from both: west and the witness (2 votes) failed over to west at epoch 2, east fenced its copy"
