#!/usr/bin/env bash
# The failover engine with real agents on loopback: east (primary), west
# (standby) and a witness, a replicated volume, DNS in east and west, the
# agents' own /healthz as the endpoints. With the embedded store (default)
# or, given "etcd" as the second argument, a three-member etcd cluster.
#   1. east's agent dies (its endpoint with it): the quorum (west and the
#      witness) fails over; DNS answers west, west's copy is the source at
#      epoch 2, the run is recorded step by step;
#   2. east comes back: it sees epoch 2 and stays fenced (sends nothing,
#      its routing control off);
#   3. a manual failover back to east (`lifeboat failover`) is refused: its
#      copy is stale, and promoting it would lose west's writes;
#   4. `lifeboat failback`: east resyncs, then a planned failover back;
#   5. a manual failover driven by the witness, which is killed mid-run (in a
#      hook): a serving agent resumes the run at that step.
# With etcd, one of the three members is stopped before step 1.
source "$(dirname "$0")/lib.sh" "$1"
STORE=${2:-embedded}
command -v dig >/dev/null || fail "dig is missing (scripts/deps.sh installs bind9-dnsutils)"
export LIFEBOAT_TOKEN=it-token

PORT_EAST=$(free_port); PORT_WEST=$(free_port); PORT_WITNESS=$(free_port)
DNS_EAST=$(free_port); DNS_WEST=$(free_port); REP_PORT=$(free_port)
mkdir -p "$WORK/east-vol"
openssl rand -hex 32 > "$WORK/key"
STATE="state: { store: embedded }"
if [ "$STORE" = etcd ]; then
  command -v etcd >/dev/null || fail "etcd is not installed (scripts/deps.sh installs etcd-server)"
  start_etcd_cluster
  STATE="state: { store: etcd, endpoints: [${ETCD_ENDPOINTS//,/, }], prefix: /lifeboat-failover-$$/ }"
fi
cat > "$WORK/plan.yaml" <<PLAN
name: fo
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west:    { role: standby, agent: 127.0.0.2:$PORT_WEST }
  witness: { role: witness, agent: 127.0.0.3:$PORT_WITNESS }
checks:
  agent: { type: http, path: /healthz, expect_body: ok, interval: 200ms, timeout: 150ms, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$PORT_EAST, check: agent }
  web-west: { region: west, address: 127.0.0.2:$PORT_WEST, check: agent }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:$DNS_EAST]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
volumes:
  data:
    path: { east: $WORK/east-vol, west: $WORK/west-vol }
    replication: { port: $REP_PORT, key_file: $WORK/key, coalesce: 50ms, verify_every: 0s }
failover:
  mode: automatic
  grace: 500ms
  lease: 2s
  hooks:
    announce: { run: "echo \$LIFEBOAT_OLD_PRIMARY to \$LIFEBOAT_NEW_PRIMARY at epoch \$LIFEBOAT_EPOCH >> $WORK/hook.log; if [ -f $WORK/slow ]; then sleep 20; fi" }
$STATE
PLAN
"$LIFEBOAT" plan validate "$WORK/plan.yaml" >/dev/null || fail "the plan does not validate"

run_agent() {  # REGION DNS_PORT (empty: none)
  local region=$1 dns=${2:-}
  "$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region "$region" --data-dir "$WORK/data/$region" \
    ${dns:+--dns-listen 127.0.0.1:$dns} >>"$WORK/$region.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
run_agent east "$DNS_EAST"; EAST=$LAST_PID
run_agent west "$DNS_WEST"; WEST=$LAST_PID
run_agent witness; WITNESS=$LAST_PID
wait_http "http://127.0.0.1:$PORT_EAST/healthz"; wait_http "http://127.0.0.2:$PORT_WEST/healthz"
wait_http "http://127.0.0.3:$PORT_WITNESS/healthz"
failover_json() { curl -sf --max-time 2 "http://$1/v1/failover"; }
deadline=$(( SECONDS + 15 ))
until [ "$(failover_json "127.0.0.3:$PORT_WITNESS" | jq '.views | length')" = 3 ]; do
  [ $SECONDS -lt $deadline ] || { failover_json "127.0.0.3:$PORT_WITNESS" >&2; fail "the three views never appeared"; }
  sleep 0.1
done
q() { dig @127.0.0.1 -p "$DNS_WEST" +time=1 +tries=1 +short shop.example.com; }
deadline=$(( SECONDS + 10 ))
until [ "$(q)" = 127.0.0.1 ]; do [ $SECONDS -lt $deadline ] || fail "west's DNS never answered east"; sleep 0.1; done
echo "written before the outage" > "$WORK/east-vol/order-1"
deadline=$(( SECONDS + 15 ))
until [ -f "$WORK/west-vol/order-1" ]; do [ $SECONDS -lt $deadline ] || fail "the volume never reached west"; sleep 0.1; done
# West decides the failover and reports the lag it accepts from what it last
# read in east's view; wait until it has read "in sync" there once.
in_sync_seen() {
  failover_json "127.0.0.2:$PORT_WEST" |
    jq -e '[.views[] | select(.observer == "east") | .sending[]? | select(.volume == "data" and .target == "west" and .in_sync)] | length > 0' >/dev/null
}
deadline=$(( SECONDS + 15 ))
until in_sync_seen; do
  [ $SECONDS -lt $deadline ] || { failover_json "127.0.0.2:$PORT_WEST" >&2; fail "west never saw east report the volume in sync"; }
  sleep 0.1
done
pass "three agents on the $STORE store: three views, DNS answers east, the volume replicates to west"

# --- 1. The primary region dies -------------------------------------------------
if [ "$STORE" = etcd ]; then  # and one of the three etcd members with it: nothing may change
  kill "${ETCD_PIDS[0]}"; wait "${ETCD_PIDS[0]}" 2>/dev/null || true
fi
start=$(date +%s%N)
kill -9 "$EAST"; wait "$EAST" 2>/dev/null || true
until [ "$(q)" = 127.0.0.2 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 30000 ] || {
    failover_json "127.0.0.2:$PORT_WEST" >&2; tail -20 "$WORK/west.log" >&2; fail "DNS never moved to west"; }
  sleep 0.02
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
deadline=$(( SECONDS + 30 ))
until curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq -e '.failover.run.state == "done"' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -s "http://127.0.0.2:$PORT_WEST/v1/status" | jq .failover >&2; fail "the run never finished"; }
  sleep 0.1
done
status=$(curl -sf "http://127.0.0.2:$PORT_WEST/v1/status")
echo "$status" | jq -e '.failover.primary == "west" and .failover.epoch == 2' >/dev/null ||
  { echo "$status" | jq .failover >&2; fail "west is not primary at epoch 2"; }
echo "$status" | jq -e '[.failover.run.steps[].state] | all(. == "done")' >/dev/null ||
  { echo "$status" | jq .failover.run >&2; fail "a step did not finish"; }
echo "$status" | jq -e '[.failover.run.steps[].name] == ["fence","promote","switch-traffic","announce","verify"]' >/dev/null ||
  { echo "$status" | jq .failover.run.steps >&2; fail "the steps are not the plan's default with the hook before verify"; }
echo "$status" | jq -e '.services.replication[0].role == "source" and .services.replication[0].epoch == 2' >/dev/null ||
  { echo "$status" | jq .services.replication >&2; fail "west's copy is not the source at epoch 2"; }
echo "$status" | jq -e '.failover.run.steps[0].output | test("accepted lag: data: last seen (in sync|[0-9.]+m?s behind,) [0-9.]+m?s before the fence")' >/dev/null ||
  { echo "$status" | jq .failover.run.steps[0] >&2; fail "the unplanned fence did not report the lag it accepted"; }
grep -qx "east to west at epoch 2" "$WORK/hook.log" || fail "the hook did not run with the failover's environment"
grep -q '"msg":"failover: automatic failover from east to west' "$WORK/west.log" || fail "west did not log the decision"
# Counted by the driver once its drive returns, just after the run's record says done.
deadline=$(( SECONDS + 5 ))
until has_metric "http://127.0.0.2:$PORT_WEST/metrics" '^lifeboat_failover_runs_total{kind="automatic",result="done"} 1$'; do
  [ $SECONDS -lt $deadline ] || fail "the run is not counted"; sleep 0.1
done
pass "east killed: DNS answered west after ${ms} ms; epoch 2, every step done, west's copy is the source"

echo "written after the failover" > "$WORK/west-vol/order-2"

# --- 2. The old primary comes back ---------------------------------------------
run_agent east "$DNS_EAST"; EAST=$LAST_PID
wait_http "http://127.0.0.1:$PORT_EAST/healthz"
deadline=$(( SECONDS + 15 ))
until curl -sf "http://127.0.0.1:$PORT_EAST/v1/replication/data" | jq -e '.role == "fenced"' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -s "http://127.0.0.1:$PORT_EAST/v1/replication/data" >&2; fail "east did not fence itself"; }
  sleep 0.1
done
sleep 1  # ticks of every agent: nothing may move back
[ "$(q)" = 127.0.0.2 ] || fail "DNS moved back to the stale primary"
curl -sf "http://127.0.0.1:$PORT_EAST/v1/status" | jq -e '.failover.primary == "west" and .failover.epoch == 2' >/dev/null ||
  fail "east does not see west at epoch 2"
[ ! -e "$WORK/east-vol/order-2" ] || fail "east received west's writes while fenced"
[ -f "$WORK/west-vol/order-2" ] || fail "west lost its write"
# lifeboat status: the volume's lag from its new source, and the fenced copy.
lags=$("$LIFEBOAT" status --plan "$WORK/plan.yaml" -o json | jq -c '.volumes')
echo "$lags" | jq -e 'map(select(.source == "west" and .epoch == 2)) | length == 1' >/dev/null ||
  { echo "$lags" >&2; fail "status does not show west as the source of data at epoch 2"; }
echo "$lags" | jq -e 'map(select(.source == "east" and (.state | startswith("fenced")))) | length == 1' >/dev/null ||
  { echo "$lags" >&2; fail "status does not show east's copy fenced"; }
"$LIFEBOAT" status --plan "$WORK/plan.yaml" | grep -E '^data +east +1 +- +fenced' >/dev/null ||
  { "$LIFEBOAT" status --plan "$WORK/plan.yaml" >&2; fail "the status table has no row for the fenced copy"; }
pass "east restarted: it sees epoch 2, stays fenced (sends and receives nothing), DNS stays on west; status shows both copies"

# --- 3. A manual failover back to the stale region is refused --------------------
deadline=$(( SECONDS + 10 ))
until failover_json "127.0.0.1:$PORT_EAST" | jq -e '.view.copies[0].fenced == true' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { failover_json "127.0.0.1:$PORT_EAST" >&2; fail "east's view does not say its copy is fenced"; }
  sleep 0.1
done
expect_exit 1 "$LIFEBOAT" failover --to east --plan "$WORK/plan.yaml" --yes
echo "$OUT" | grep -q "east cannot become primary now: its copy of data is fenced" ||
  { echo "$OUT" >&2; fail "the refusal does not name the fenced copy"; }
curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq -e '.failover.primary == "west" and .failover.epoch == 2' >/dev/null ||
  fail "a refused failover changed the primary"
expect_exit 2 "$LIFEBOAT" failover --to witness --plan "$WORK/plan.yaml" --yes
echo "$OUT" | grep -q "witness" || fail "a failover to the witness is not refused by name"
expect_exit 2 "$LIFEBOAT" failover --to mars --plan "$WORK/plan.yaml" --yes
expect_exit 2 "$LIFEBOAT" failover --to east --plan "$WORK/plan.yaml" --token "" </dev/null
pass "lifeboat failover refuses the stale (fenced) east naming its copy, a witness, an unknown region, no confirmation"

# --- 4. Failback: east resyncs from west, then a planned failover back -----------
"$LIFEBOAT" failback --plan "$WORK/plan.yaml" --yes --timeout 60 > "$WORK/failback.out" 2>&1 ||
  { cat "$WORK/failback.out" >&2; tail -20 "$WORK/east.log" >&2; fail "lifeboat failback"; }
grep -q "data: east now follows west" "$WORK/failback.out" || { cat "$WORK/failback.out" >&2; fail "east was not reversed"; }
grep -q "east is primary at epoch 3" "$WORK/failback.out" || { cat "$WORK/failback.out" >&2; fail "no planned failover back"; }
[ -f "$WORK/east-vol/order-2" ] || fail "east did not get the write west took while it was primary"
status=$(curl -sf "http://127.0.0.1:$PORT_EAST/v1/status")
echo "$status" | jq -e '.failover.primary == "east" and .failover.epoch == 3 and .failover.run.planned == true' >/dev/null ||
  { echo "$status" | jq .failover >&2; fail "east is not primary at epoch 3 by a planned run"; }
echo "$status" | jq -e '.services.replication[0].role == "source" and .services.replication[0].epoch == 3' >/dev/null ||
  { echo "$status" | jq .services.replication >&2; fail "east's copy is not the source at epoch 3"; }
deadline=$(( SECONDS + 15 ))
until curl -sf "http://127.0.0.2:$PORT_WEST/v1/replication/data" | jq -e '.role == "target" and .source == "east" and .epoch == 3' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -s "http://127.0.0.2:$PORT_WEST/v1/replication/data" >&2; fail "west does not follow east after the planned switch"; }
  sleep 0.1
done
deadline=$(( SECONDS + 10 ))
until [ "$(q)" = 127.0.0.1 ]; do [ $SECONDS -lt $deadline ] || fail "DNS did not move back to east"; sleep 0.1; done
echo "written after the failback" > "$WORK/east-vol/order-3"
deadline=$(( SECONDS + 15 ))
until [ -f "$WORK/west-vol/order-3" ]; do [ $SECONDS -lt $deadline ] || fail "east's new write never reached west"; sleep 0.1; done
deadline=$(( SECONDS + 15 ))
until curl -sf "http://127.0.0.1:$PORT_EAST/v1/status" | jq -e '.failover.epoch == 3 and .failover.run.state == "done"' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -s "http://127.0.0.1:$PORT_EAST/v1/status" | jq .failover.run >&2; fail "the planned run back to east never ended"; }
  sleep 0.1
done
pass "failback: east caught up with west's writes, became primary at epoch 3 (planned), west follows it, DNS answers east"

# --- 5. The agent driving a failover dies mid-run; another resumes it -------------
touch "$WORK/slow"
lines=$(wc -l < "$WORK/hook.log")
code=$(curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST -H "Authorization: Bearer $LIFEBOAT_TOKEN" \
  -d '{"to": "west", "by": "it"}' "http://127.0.0.3:$PORT_WITNESS/v1/failover")
[ "$code" = 202 ] || { cat "$WORK/post.out" >&2; fail "the witness did not accept a manual failover (HTTP $code)"; }
deadline=$(( SECONDS + 20 ))
# Wait for this run's own line: the planned run of step 4 may still be in its hook.
until tail -n +"$(( lines + 1 ))" "$WORK/hook.log" | grep -qx "east to west at epoch 4"; do
  [ $SECONDS -lt $deadline ] || { tail -20 "$WORK/witness.log" >&2; fail "the run never reached its hook"; }
  sleep 0.05
done
# The agents' views follow the store by a watch: one may be a few milliseconds behind the hook.
deadline=$(( SECONDS + 5 ))
until { "$LIFEBOAT" status --plan "$WORK/plan.yaml" > "$WORK/status-running.txt" || true; } &&
      grep -Eq '^primary: .*; failover to west running for [0-9.]+m?s, step announce, driven by witness@' "$WORK/status-running.txt"; do
  [ $SECONDS -lt $deadline ] || { cat "$WORK/status-running.txt" >&2; fail "lifeboat status does not show the running failover's step and time"; }
  sleep 0.1
done
# West's status page, as a person sees it during the run.
deadline=$(( SECONDS + 10 ))
until chrome --dump-dom "http://127.0.0.2:$PORT_WEST/status" > "$WORK/status-dom.html" &&
      grep -Eq 'class="banner running" id="failover">primary: west \(epoch 4\) (—|&mdash;) failover to west running for [0-9.]+m?s: step announce' "$WORK/status-dom.html"; do
  [ $SECONDS -lt $deadline ] || { grep -o '<div class="banner[^<]*' "$WORK/status-dom.html" >&2; fail "west's status page does not show the running failover"; }
done
grep -q '<table id="steps">' "$WORK/status-dom.html" || fail "west's status page has no step table"
SHOTS=${LIFEBOAT_ARTIFACTS:-$WORK}; mkdir -p "$SHOTS"
chrome --window-size=1100,1000 --screenshot="$SHOTS/status-page-failover-$STORE.png" "http://127.0.0.2:$PORT_WEST/status"
kill -9 "$WITNESS"; wait "$WITNESS" 2>/dev/null || true
rm -f "$WORK/slow"
deadline=$(( SECONDS + 30 ))
until curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq -e '.failover.epoch == 4 and .failover.run.state != "running"' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -s "http://127.0.0.2:$PORT_WEST/v1/status" | jq .failover >&2; fail "the run was not resumed"; }
  sleep 0.1
done
run=$(curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq .failover.run)
echo "$run" | jq -e '.state == "done"' >/dev/null || { echo "$run" >&2; fail "the resumed run did not finish"; }
echo "$run" | jq -e '(.owner | startswith("witness@")) | not' >/dev/null || { echo "$run" >&2; fail "the dead witness still owns the run"; }
echo "$run" | jq -e '.steps[] | select(.name == "announce") | .attempts == 2' >/dev/null ||
  { echo "$run" >&2; fail "the hook that was running when its driver died did not run again"; }
pass "the witness driving a failover was killed in a hook: $(echo "$run" | jq -r .owner) resumed at that step; west is primary at epoch 4"
if [ "$STORE" = etcd ]; then pass "all of it with one of the three etcd members stopped since before step 1"; fi
