#!/usr/bin/env bash
# lifeboat demo: the README's main job. On the embedded plan (fixed ports
# 7701-7703 and 7711): every region starts, us-east goes dark, us-west takes
# over, us-east comes back and fails back; the demo prints RTO and RPO, keeps
# its report, and leaves nothing running. --stay keeps it all up until
# Ctrl-C. A plan that cannot be drilled and a dead agent are reported.
source "$(dirname "$0")/lib.sh" "$1"

expect_exit 2 "$LIFEBOAT" demo --duration soon
grep -q -- "--duration" <<<"$OUT" || fail "bad --duration: $OUT"
expect_exit 2 "$LIFEBOAT" demo --scenario meteor
grep -q "unknown scenario 'meteor'" <<<"$OUT" || fail "bad --scenario: $OUT"
write_plan
expect_exit 2 "$LIFEBOAT" demo --plan "$WORK/plan.yaml" --data-dir "$WORK/nodns"
grep -q "the demo runs a drill on the plan, and .*set failover.mode: automatic" <<<"$OUT" || fail "a manual plan: $OUT"
pass "bad flags and a plan that cannot be drilled are refused before anything starts"

ports_free() { [ -z "$(ss -Htln '( sport = :7701 or sport = :7702 or sport = :7703 or sport = :7711 or sport = :7770 )')" ]; }
nothing_left() {
  for p in 7701 7702 7703 7711 7770; do
    [ -z "$(listener_pid "$p")" ] || fail "port $p is still served by pid $(listener_pid "$p") after the demo"
  done
}
if ! ports_free; then
  echo "note: ports 7701-7703, 7711 or 7770 are in use here; the embedded-plan demo was not run"
  exit 0
fi

D="$WORK/demo"
"$LIFEBOAT" demo --data-dir "$D" > "$WORK/demo.out" 2>&1 || { cat "$WORK/demo.out" >&2; fail "lifeboat demo failed"; }
grep -q "the embedded plan 'local' (warm-standby, 3 regions on this machine)" "$WORK/demo.out" || fail "the embedded plan was not used"
grep -q "^PASS: within the plan's objectives. Report: $D/drill.json and $D/drill.html" "$WORK/demo.out" ||
  { cat "$WORK/demo.out" >&2; fail "no passing verdict"; }
grep -q "^primary now: us-east (epoch 3)" "$WORK/demo.out" || { cat "$WORK/demo.out" >&2; fail "no failback to us-east"; }
jq -e '.verdict == "pass" and .failover.primary == "us-west" and .failback.failover.primary == "us-east" and
       (.rto_seconds > 0) and .failback.loss.missing == 0' "$D/drill.json" >/dev/null ||
  { cat "$D/drill.json" >&2; fail "the report does not tell the story"; }
[ "$(stat -c %a "$D/replication.key")" = 600 ] && [ "$(stat -c %s "$D/replication.key")" = 32 ] || fail "the replication key"
cmp -s "$D/plan.yaml" "$(dirname "$0")/../../examples/local.yaml" || fail "the data dir's plan.yaml is not examples/local.yaml"
n=$(find "$D/volumes/us-east/records" -type f | wc -l)
[ "$n" -ge "$(jq .client.acknowledged "$D/drill.json")" ] || fail "us-east holds $n records"
"$LIFEBOAT" drill report latest --plan "$D/plan.yaml" --agents-dir "$D" | grep -q "^PASS: within the plan's objectives" ||
  fail "drill report does not find the demo's drill"
nothing_left
pass "the embedded demo: us-east dark, us-west primary (RTO $(jq .rto_seconds "$D/drill.json")s, $(jq .loss.missing "$D/drill.json") records lost), failback with none lost; nothing left running"

# --stay: everything runs on until Ctrl-C, with its status page.
"$LIFEBOAT" demo --stay --data-dir "$WORK/stay" > "$WORK/stay.out" 2>&1 &
DEMO=$!; PIDS+=("$DEMO")  # a failing check must not leave it (and its regions) running
wait_output "$DEMO" "$WORK/stay.out" "Everything runs on until Ctrl-C" 120
curl -sf http://127.0.0.1:7701/status > "$WORK/stay.html" || fail "no status page while staying"
grep -q "us-east" "$WORK/stay.html" || fail "the status page does not show the regions"
# The agents learn of the recorded drill by their store watch: a moment later.
for _ in $(seq 1 100); do
  curl -sf http://127.0.0.1:7701/status > "$WORK/stay.html" || fail "no status page while staying"
  grep -q '<td>[0-9TZ]*-region-outage</td><td><span class="pill ok">pass' "$WORK/stay.html" && break
  sleep 0.1
done
grep -q '<td>[0-9TZ]*-region-outage</td><td><span class="pill ok">pass' "$WORK/stay.html" ||
  { cat "$WORK/stay.html" >&2; fail "the status page does not show the demo's drill within 10 s"; }
kill -INT "$DEMO"
rc=0; wait "$DEMO" || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/stay.out" >&2; fail "the staying demo exited $rc after Ctrl-C"; }
nothing_left
pass "demo --stay keeps the regions up (status page answers) until Ctrl-C, then stops them all"

# A region's port taken by someone else: the demo names the agent that died and why.
cat > "$WORK/other.yaml" <<PLAN
name: other
pattern: backup-restore
regions: { only: { role: primary, agent: 127.0.0.2:7702 } }
backup: { locations: { local: { type: filesystem, path: /tmp } } }
PLAN
"$LIFEBOAT" agent --plan "$WORK/other.yaml" --region only --data-dir "$WORK/other" >"$WORK/other.log" 2>&1 &
SQUATTER=$!; PIDS+=("$SQUATTER")
wait_http "http://127.0.0.2:7702/healthz"
expect_exit 1 "$LIFEBOAT" demo --data-dir "$WORK/demo2"
grep -q "us-west agent exited" <<<"$OUT" || { echo "$OUT"; fail "no dead-agent message"; }
grep -q "already in use" <<<"$OUT" || { echo "$OUT"; fail "no reason from the agent's log"; }
kill "$SQUATTER"; wait "$SQUATTER" 2>/dev/null || true
nothing_left
pass "a failing agent fails the demo with the reason"
