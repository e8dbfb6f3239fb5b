#!/usr/bin/env bash
# lifeboat demo: starts the plan's agents as child processes, shows them up,
# stops them cleanly after --duration; a dead agent fails the demo with its log.
source "$(dirname "$0")/lib.sh" "$1"
write_plan

expect_exit 0 "$LIFEBOAT" demo --plan "$WORK/plan.yaml" --duration 1s --data-dir "$WORK/demo"
[ "$(grep -cE '^(east|west|witness) .* up ' <<<"$OUT")" -eq 3 ] || { echo "$OUT"; fail "want 3 agents up"; }
grep -q "All agents stopped cleanly" <<<"$OUT" || { echo "$OUT"; fail "not stopped cleanly"; }
[ -s "$WORK/demo/east/agent.log" ] || fail "no agent log"
[ -z "$(ss -Htln "sport = :$PORT_EAST")" ] || fail "agent still listening after the demo"
pass "demo runs three agents and stops them"

# The port of one region taken by someone else: the demo says which agent died and why.
# The squatter is an agent of another plan.
cat > "$WORK/other.yaml" <<PLAN
name: other
pattern: backup-restore
regions: { only: { role: primary, agent: 127.0.0.1:$PORT_WEST } }
backup: { locations: { local: { type: filesystem, path: /tmp } } }
PLAN
"$LIFEBOAT" agent --plan "$WORK/other.yaml" --region only --data-dir "$WORK/other" >"$WORK/other.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$PORT_WEST/healthz"
expect_exit 1 "$LIFEBOAT" demo --plan "$WORK/plan.yaml" --duration 5s --data-dir "$WORK/demo2"
grep -q "the agent of west exited" <<<"$OUT" || { echo "$OUT"; fail "no dead-agent message"; }
grep -q "already in use" <<<"$OUT" || { echo "$OUT"; fail "no reason from the agent's log"; }
pass "a failing agent fails the demo with the reason"

expect_exit 2 "$LIFEBOAT" demo --duration soon
pass "bad --duration is a usage error"

# The README's demo: the embedded examples/local.yaml on its fixed ports 7701-7703.
if [ -z "$(ss -Htln '( sport = :7701 or sport = :7702 or sport = :7703 )')" ]; then
  expect_exit 0 "$LIFEBOAT" demo --duration 1s --data-dir "$WORK/embedded"
  [ "$(grep -cE '^(us-east|us-west|eu-central) .* up ' <<<"$OUT")" -eq 3 ] || { echo "$OUT"; fail "embedded demo: want 3 up"; }
  grep -q "plan 'local' (warm-standby)" <<<"$OUT" || fail "embedded plan not used"
  pass "the embedded demo plan runs"
else
  echo "note: ports 7701-7703 are in use here; the embedded-plan demo was not run"
fi
