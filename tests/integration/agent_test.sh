#!/usr/bin/env bash
# Real agents on loopback: the admin API answers, /metrics passes promtool,
# status sees a killed agent as down, a restarted agent keeps its state, and
# the agent's own errors (taken address, locked data dir, unknown region) are
# clear and have the documented exit codes.
source "$(dirname "$0")/lib.sh" "$1"
write_plan

start_agent east; EAST=$LAST_PID
start_agent west; WEST=$LAST_PID
start_agent witness
for p in $PORT_EAST $PORT_WEST $PORT_WITNESS; do wait_http "http://127.0.0.1:$p/healthz"; done
pass "three agents answer /healthz"

[ "$(curl -s "http://127.0.0.1:$PORT_EAST/healthz")" = ok ] || fail "healthz body"
status=$(curl -sf "http://127.0.0.1:$PORT_WEST/v1/status")
[ "$(jq -r .region <<<"$status")" = west ] || fail "status region: $status"
[ "$(jq -r .role <<<"$status")" = standby ] || fail "status role: $status"
[ "$(jq -r .plan <<<"$status")" = it ] || fail "status plan: $status"
jq -e '.version and .uptime_seconds >= 0 and .services' <<<"$status" >/dev/null || fail "status fields: $status"
# Who is primary comes from the shared store: the plan's primary at epoch 1
# until a failover moves it.
jq -e '.failover.primary == "east" and .failover.epoch == 1 and .failover.run == null and (.state.store | startswith("embedded "))' \
  <<<"$status" >/dev/null || fail "status failover/state: $(jq -c '{failover, state}' <<<"$status")"
pass "/v1/status"

curl -sf "http://127.0.0.1:$PORT_EAST/metrics" > "$WORK/metrics.txt"
promtool check metrics < "$WORK/metrics.txt" || fail "promtool rejected /metrics"
grep -q '^lifeboat_build_info{version="' "$WORK/metrics.txt" || fail "no build info"
grep -q '^lifeboat_agent_uptime_seconds ' "$WORK/metrics.txt" || fail "no uptime"
for m in process_cpu_seconds_total process_resident_memory_bytes process_open_fds process_max_fds process_start_time_seconds; do
  grep -Eq "^$m [0-9.e+]+$" "$WORK/metrics.txt" || fail "no $m"
done
pass "/metrics passes promtool check metrics, with the process_* family"

code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_EAST/nope")
[ "$code" = 404 ] || fail "unknown path gave $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT_EAST/healthz")
[ "$code" = 405 ] || fail "POST gave $code"
pass "404 and 405"

"$LIFEBOAT" status --plan "$WORK/plan.yaml" > "$WORK/status.txt"
[ "$(awk '$4 == "up"' "$WORK/status.txt" | wc -l)" -eq 3 ] || { cat "$WORK/status.txt"; fail "want 3 up"; }
head -1 "$WORK/status.txt" | grep -qx 'primary: east (epoch 1)' || { cat "$WORK/status.txt"; fail "status names no primary"; }
pass "status: all up"

kill -9 "$WEST"; wait "$WEST" 2>/dev/null || true
expect_exit 0 "$LIFEBOAT" status --plan "$WORK/plan.yaml"
grep -E '^west +standby .* down ' <<<"$OUT" >/dev/null || { echo "$OUT"; fail "west should be down"; }
"$LIFEBOAT" status --plan "$WORK/plan.yaml" -o json > "$WORK/status.json"
# The same document as YAML (status -o yaml was refused).
"$LIFEBOAT" status --plan "$WORK/plan.yaml" -o yaml > "$WORK/status.yaml"
/usr/bin/python3 -c '
import json, sys, yaml
def strip(x):  # what moves between the two calls: uptimes, and the views as west'"'"'s lease expires
    if isinstance(x, dict): return {k: strip(v) for k, v in x.items() if k not in ("uptime_seconds", "revision", "failover")}
    if isinstance(x, list): return [strip(v) for v in x]
    return x
sys.exit(0 if strip(yaml.safe_load(open(sys.argv[1]))) == strip(json.load(open(sys.argv[2]))) else 1)' \
  "$WORK/status.yaml" "$WORK/status.json" || fail "status -o yaml is not the JSON document: $(cat "$WORK/status.yaml")"
[ "$(jq -r '.regions[] | select(.region=="west") | .state' "$WORK/status.json")" = down ] || fail "json: west not down"
[ "$(jq -r '.regions[] | select(.region=="east") | .state' "$WORK/status.json")" = up ] || fail "json: east not up"
pass "status shows a killed agent as down, exit 0"

start_agent west; WEST=$LAST_PID
wait_http "http://127.0.0.1:$PORT_WEST/healthz"
[ "$(curl -sf "http://127.0.0.1:$PORT_WEST/v1/status" | jq .starts)" = 2 ] || fail "state store lost the start count"
first=$(jq -r .first_started_at <<<"$status")
[ "$(curl -sf "http://127.0.0.1:$PORT_WEST/v1/status" | jq -r .first_started_at)" = "$first" ] || fail "first_started_at changed"
pass "restarted after kill -9: the state store kept its data"

# A second agent for the same region: the address is taken (exit 1) ...
expect_exit 1 "$LIFEBOAT" agent --plan "$WORK/plan.yaml" --region east --data-dir "$WORK/data/east-2"
grep -q "already in use" <<<"$OUT" || fail "no address-in-use message: $OUT"
# ... and the data dir of a running agent is locked (exit 1).
expect_exit 1 "$LIFEBOAT" agent --plan "$WORK/plan.yaml" --region east --data-dir "$WORK/data/east"
grep -q "is in use" <<<"$OUT" || fail "no data-dir-in-use message: $OUT"
expect_exit 2 "$LIFEBOAT" agent --plan "$WORK/plan.yaml" --region eats --data-dir "$WORK/data/x"
grep -q "did you mean 'east'" <<<"$OUT" || fail "no region suggestion: $OUT"
touch "$WORK/not-a-dir"
expect_exit 1 "$LIFEBOAT" agent --plan "$WORK/plan.yaml" --region east --data-dir "$WORK/not-a-dir"
grep -qi "not a directory" <<<"$OUT" || fail "no data-dir message: $OUT"
pass "address taken, data dir locked, unknown region, bad data dir"

kill -TERM "$EAST"
set +e; wait "$EAST"; rc=$?; set -e
[ $rc -eq 0 ] || fail "SIGTERM exit code $rc"
grep -q '"msg":"received SIGTERM, stopping"' "$WORK/east.log" || fail "no shutdown log line"
pass "SIGTERM stops cleanly with exit 0 and JSON logs"
