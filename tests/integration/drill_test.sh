#!/usr/bin/env bash
# lifeboat drill run region-outage on a two-region plan with a witness, all
# on loopback: the drill starts the agents and the sample application, the
# client writes through the DNS name, east goes dark. Checked from outside
# the drill's own figures: every acknowledged record it says was lost is
# absent from west's copy and every other one present; the failover moved
# the primary; nothing the drill started is left running; Ctrl-C during a
# drill stops everything; bad input is refused before anything starts.
source "$(dirname "$0")/lib.sh" "$1"

drill_setup
plan() { drill_plan drilltest "$1"; }
plan automatic > "$WORK/plan.yaml"
plan manual > "$WORK/manual.yaml"
"$LIFEBOAT" plan validate "$WORK/plan.yaml" >/dev/null || fail "the plan does not validate"

# --- Refused before anything starts ---------------------------------------------
expect_exit 2 "$LIFEBOAT" drill run meteor --plan "$WORK/plan.yaml"
grep -q "unknown scenario 'meteor'; the scenarios are: region-outage" <<<"$OUT" || fail "an unknown scenario: $OUT"
expect_exit 2 "$LIFEBOAT" drill run region-outage --plan "$WORK/manual.yaml"
grep -q "set failover.mode: automatic" <<<"$OUT" || fail "a manual plan: $OUT"
expect_exit 2 "$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --record nope
grep -q "the plan has no failover A record 'nope'" <<<"$OUT" || fail "an unknown record: $OUT"
expect_exit 2 "$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --duration soon
drill_nothing_left
pass "an unknown scenario, a manual plan, an unknown record and a bad duration are refused, nothing started"

# --- A plan whose replication cannot run is not drilled ----------------------------
sed "s|key_file: $WORK/key|key_file: $WORK/no-such-key|" "$WORK/plan.yaml" > "$WORK/nokey.yaml"
expect_exit 1 "$LIFEBOAT" drill run region-outage --plan "$WORK/nokey.yaml" --data-dir "$WORK/nokey" --duration 3s
grep -q "volume data does not replicate from east to west (.*no-such-key.*); a drill would only measure that" <<<"$OUT" ||
  fail "a plan that cannot replicate: $OUT"
drill_nothing_left
pass "a plan whose replication cannot start is refused before the fault, with the primary's reason"

# --- The drill -------------------------------------------------------------------
"$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --data-dir "$WORK/run" --agents-dir "$WORK/data" > "$WORK/drill.out" 2>&1 ||
  { cat "$WORK/drill.out" >&2; fail "the drill failed"; }
grep -q "^PASS: within the plan's objectives. Report: $WORK/run/drill.json and $WORK/run/drill.html" "$WORK/drill.out" ||
  { cat "$WORK/drill.out" >&2; fail "no verdict line"; }
R="$WORK/run/drill.json"
jq -e '.verdict == "pass" and .failover.primary == "west" and .failover.epoch == 2 and .failover.run_state == "done"' "$R" >/dev/null ||
  { cat "$R" >&2; fail "the report does not show west promoted at epoch 2"; }
jq -e '(.rto_seconds > 0) and (.rto_seconds <= 10) and (.detection_seconds > 0) and (.rpo_seconds <= 2)' "$R" >/dev/null ||
  { cat "$R" >&2; fail "the figures are not within the objectives"; }
jq -e '.client.recovered_at == "127.0.0.2:'"$APP"'" and ([.failover.steps[].state] | all(. == "done")) and
       .two_primaries.writes == 0' "$R" >/dev/null ||
  { cat "$R" >&2; fail "the client did not recover at west, or a step is not done"; }
# Written every 10 ms, the volume is never at rest: the fence still reports
# the streaming lag it accepted, not an unknown one.
jq -e '.failover.steps[0].output | test("accepted lag: data: last seen ([0-9.]+m?s behind, |in sync )[0-9.]+m?s before the fence")' "$R" >/dev/null ||
  { jq .failover.steps[0] "$R" >&2; fail "the fence did not report the lag it accepted"; }
# The loss, recounted from the attempts and west's copy on disk.
missing=0; acked=0
while read -r seq; do
  acked=$((acked + 1))
  [ -f "$WORK/west-vol/records/$seq" ] || missing=$((missing + 1))
done < <(jq -r 'select(.acked) | .seq' "$WORK/run/attempts.jsonl")
[ "$acked" = "$(jq .client.acknowledged "$R")" ] || fail "acknowledged: $acked in attempts.jsonl, $(jq .client.acknowledged "$R") in the report"
[ "$missing" = "$(jq .loss.missing "$R")" ] || fail "lost: $missing by west's copy, $(jq .loss.missing "$R") in the report"
[ "$acked" -gt 100 ] || fail "only $acked records were acknowledged"
acked_and_failed=$(wc -l < "$WORK/run/attempts.jsonl")
grep -q "^Recorded as drill [0-9TZ]*-region-outage in $WORK/data/drilltest-state.db" "$WORK/drill.out" ||
  { cat "$WORK/drill.out" >&2; fail "the drill does not say where it was recorded"; }
drill_nothing_left
pass "region-outage: RTO $(jq .rto_seconds "$R")s, RPO $(jq .rpo_seconds "$R")s ($missing of $acked records lost, recounted from west's copy), detection $(jq .detection_seconds "$R")s; nothing left running"

# --- The HTML report, as a person sees it (headless Chromium) ---------------------
SHOTS=${LIFEBOAT_ARTIFACTS:-$WORK}; mkdir -p "$SHOTS"
chrome --dump-dom "file://$WORK/run/drill.html" > "$WORK/dom.html"
grep -q '<svg id="timeline"' "$WORK/dom.html" || fail "the rendered report has no timeline"
grep -q 'class="verdict pass"' "$WORK/dom.html" || fail "the rendered report shows no passing verdict"
marks=$(grep -o '<rect class="\(old\|new\|fail\|lost\|slow\)"' "$WORK/dom.html" | wc -l)
[ "$marks" = "$acked_and_failed" ] || fail "the timeline shows $marks writes, attempts.jsonl has $acked_and_failed"
chrome --window-size=1100,1000 --screenshot="$SHOTS/drill-report.png" "file://$WORK/run/drill.html"
[ "$(head -c 8 "$SHOTS/drill-report.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] || fail "the screenshot is not a PNG"
pass "the HTML report renders in Chromium with its verdict and a timeline of all $marks writes; screenshot $SHOTS/drill-report.png"

# --- Ctrl-C stops the drill and everything it started ----------------------------
"$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --data-dir "$WORK/run2" --warmup 60s > "$WORK/drill2.out" 2>&1 &
DRILL=$!; PIDS+=("$DRILL")
wait_output "$DRILL" "$WORK/drill2.out" "warming up" 30
kill -INT "$DRILL"
rc=0; wait "$DRILL" || rc=$?
[ "$rc" = 130 ] || { cat "$WORK/drill2.out" >&2; fail "an interrupted drill exited $rc, not 130"; }
grep -q "Stopping every process the drill started" "$WORK/drill2.out" || fail "the interrupted drill did not say it stops"
drill_nothing_left
expect_exit 2 "$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --data-dir "$WORK/run2"
grep -q "holds an earlier run's state" <<<"$OUT" || fail "a reused data dir: $OUT"
pass "Ctrl-C during the warm-up: exit 130, every process stopped; a used data dir is refused"

# --- planned-switchover, on a manual plan with paths relative to its file ----------
mkdir -p "$WORK/rel/east-vol" "$WORK/rel/west-vol"; cp "$WORK/key" "$WORK/rel/key"
plan manual | sed -e "s|path: { east: $WORK/east-vol, west: $WORK/west-vol }|path: { east: east-vol, west: ./west-vol }|" \
                  -e "s|key_file: $WORK/key|key_file: key|" > "$WORK/rel/plan.yaml"
grep -q "path: { east: east-vol" "$WORK/rel/plan.yaml" || fail "the relative plan was not written"
grep -q "$WORK/rel/west-vol" <<<"$(cd / && "$LIFEBOAT" plan show "$WORK/rel/plan.yaml")" || fail "plan show does not resolve a relative path"
"$LIFEBOAT" drill run planned-switchover --plan "$WORK/rel/plan.yaml" --data-dir "$WORK/run3" --agents-dir "$WORK/data" > "$WORK/drill3.out" 2>&1 ||
  { cat "$WORK/drill3.out" >&2; fail "the planned switchover drill failed"; }
R="$WORK/run3/drill.json"
jq -e '.verdict == "pass" and .failover.primary == "west" and .failover.epoch == 2 and .failover.planned and
       .failback.failover.primary == "east" and .failback.failover.epoch == 3 and .failback.failover.planned and
       .loss.missing == 0 and .failback.loss.missing == 0 and .detection_seconds == null and
       .two_primaries.writes == 0 and .failback.two_primaries.writes == 0' "$R" >/dev/null ||
  { cat "$R" >&2; fail "the switchover and back did not both complete with nothing lost"; }
# Recounted from east's copy on disk, where the records end: every acknowledged one is there.
acked=0
while read -r seq; do
  acked=$((acked + 1))
  [ -f "$WORK/rel/east-vol/records/$seq" ] || fail "record $seq was acknowledged and is not in east's copy"
done < <(jq -r 'select(.acked) | .seq' "$WORK/run3/attempts.jsonl")
[ "$acked" -gt 100 ] || fail "only $acked records were acknowledged"
grep -q "^failback: RTO" "$WORK/drill3.out" || { cat "$WORK/drill3.out" >&2; fail "the summary has no failback figures"; }
grep -q "<h2>Failback</h2>" <<<"$(chrome --dump-dom "file://$WORK/run3/drill.html")" || fail "the report has no failback section"
drill_nothing_left
pass "planned-switchover (paths relative to the plan file): west at epoch 2, east again at epoch 3, all $acked acknowledged records in east's copy; RTO $(jq .rto_seconds "$R")s and $(jq .failback.rto_seconds "$R")s"

# --- endpoint-failure, then --failback ---------------------------------------------
"$LIFEBOAT" drill run endpoint-failure --failback --plan "$WORK/plan.yaml" --data-dir "$WORK/run4" --agents-dir "$WORK/data" -o json > "$WORK/run4.json" 2> "$WORK/drill4.err" ||
  { cat "$WORK/drill4.err" "$WORK/run4.json" >&2; fail "the endpoint-failure drill failed"; }
R="$WORK/run4.json"
jq -e '.verdict == "pass" and .fault.what == "application killed; its agent runs" and .failover.primary == "west" and
       .failover.epoch == 2 and (.detection_seconds > 0) and .failback.failover.primary == "east" and
       .failback.failover.epoch == 3 and .failback.loss.missing == 0' "$R" >/dev/null ||
  { cat "$R" >&2; fail "endpoint-failure: no failover to west and back"; }
# east's agent lived through it: one agent log start, no restart.
grep -q 'start #1"' "$WORK/run4/east/agent.log" && ! grep -q 'start #2"' "$WORK/run4/east/agent.log" || fail "east's agent was restarted"
drill_nothing_left
pass "endpoint-failure: east's application died, its agent lived; west took over (RTO $(jq .rto_seconds "$R")s) and east came back by a planned failover with nothing lost"

# --- agent-crash-mid-failover: the driver killed at promote; the run resumes --------
"$LIFEBOAT" drill run agent-crash-mid-failover --crash-at promote --plan "$WORK/plan.yaml" --data-dir "$WORK/run5" \
  --agents-dir "$WORK/data" -o json > "$WORK/run5.json" 2> "$WORK/drill5.err" ||
  { cat "$WORK/drill5.err" "$WORK/run5.json" >&2; fail "the agent-crash-mid-failover drill failed"; }
R="$WORK/run5.json"
jq -e '.verdict == "pass" and .crash.resumed and (.crash.step | IN("promote", "switch-traffic", "verify")) and
       .crash.restarted_at != null and .failover.primary == "west" and .failover.epoch == 2 and .failover.run_state == "done"' "$R" >/dev/null ||
  { jq 'del(.events, .replication.lag)' "$R" >&2; fail "the run did not resume after its driver was killed"; }
# From the store, as the drill watched it: a quorum of observers voted east
# down, each epoch had one primary, and the lock changed hands.
jq -e '[.events[] | select(.kind == "vote" and .down) | .observer] | unique | length >= 2' "$R" >/dev/null ||
  fail "the report shows no quorum of votes"
jq -e '[.events[] | select(.kind == "epoch")] | (length == 1) and (.[0].epoch == 2) and (.[0].primary == "west")' "$R" >/dev/null ||
  { jq '[.events[] | select(.kind == "epoch")]' "$R" >&2; fail "the epoch did not move exactly once, to west"; }
jq -e '[.events[] | select(.kind == "lock" and .owner != "") | .owner] | unique | length >= 2' "$R" >/dev/null ||
  fail "the run's lock never passed to another driver"
chrome --dump-dom "file://$WORK/run5/drill.html" > "$WORK/dom5.html"
grep -q ">driver killed</text>" "$WORK/dom5.html" && grep -q ">west sees</text>" "$WORK/dom5.html" && grep -q ">epoch 2: west</text>" "$WORK/dom5.html" ||
  fail "the report does not draw the kill, the views and the epoch"
drill_nothing_left
pass "agent-crash-mid-failover: $(jq -r .crash.agent "$R") killed at $(jq -r .crash.step "$R"), restarted; $(jq -r .crash.run_owner_after "$R") finished the run (step attempts $(jq .crash.step_attempts "$R")); one epoch change, to west; RTO $(jq .rto_seconds "$R")s"

# --- The drills recorded: drill report, and an agent of the plan shows them --------
expect_exit 2 "$LIFEBOAT" drill report --plan "$WORK/plan.yaml" --agents-dir "$WORK/nowhere"
grep -q "no drill of plan 'drilltest' is recorded on this machine: $WORK/nowhere/drilltest-state.db does not exist" <<<"$OUT" ||
  fail "no history: $OUT"
[ ! -e "$WORK/nowhere" ] || fail "drill report created a store where there was none"
"$LIFEBOAT" drill report --plan "$WORK/plan.yaml" --agents-dir "$WORK/data" -o json > "$WORK/list.json"
jq -e 'length == 4 and ([.[].scenario] == ["agent-crash-mid-failover", "endpoint-failure", "planned-switchover", "region-outage"]) and
       all(.[]; .verdict == "pass")' "$WORK/list.json" >/dev/null || { cat "$WORK/list.json" >&2; fail "drill report does not list the 4 drills"; }
grep -q "^[0-9TZ]*-region-outage  *region-outage  *pass " <<<"$("$LIFEBOAT" drill report --plan "$WORK/plan.yaml" --agents-dir "$WORK/data")" ||
  fail "the table does not list the region-outage drill"
ID=$(jq -r '.[3].id' "$WORK/list.json")
"$LIFEBOAT" drill report "$ID" --plan "$WORK/plan.yaml" --agents-dir "$WORK/data" -o json |
  jq -e --slurpfile r "$WORK/run/drill.json" '.rto_seconds == $r[0].rto_seconds and .loss == $r[0].loss and (has("attempts") | not)' >/dev/null ||
  fail "drill report $ID -o json is not the drill's report"
# The page again from the store alone: the drill's data dir is gone.
mv "$WORK/run" "$WORK/run-moved"
"$LIFEBOAT" drill report "$ID" --plan "$WORK/plan.yaml" --agents-dir "$WORK/data" --html "$WORK/again.html" 2>/dev/null ||
  fail "drill report --html failed"
marks=$(chrome --dump-dom "file://$WORK/again.html" | grep -o '<rect class="\(old\|new\|fail\|lost\|slow\)"' | wc -l)
[ "$marks" = "$acked_and_failed" ] || fail "the page from the store shows $marks writes, the drill made $acked_and_failed"
expect_exit 2 "$LIFEBOAT" drill report 20200101T000000Z-meteor --plan "$WORK/plan.yaml" --agents-dir "$WORK/data"
grep -q "no drill 20200101T000000Z-meteor in .*; the latest is .*-agent-crash-mid-failover" <<<"$OUT" || fail "an unknown drill: $OUT"
pass "drill report lists the 4 drills, prints one as the drill wrote it, and draws its page again from the store alone ($marks writes)"

start_agent east
wait_http "http://127.0.0.1:$PORT_EAST/healthz"
curl -sf "http://127.0.0.1:$PORT_EAST/v1/status" | jq -e '.services.drills.recorded == 4 and .services.drills.recent[0].scenario == "agent-crash-mid-failover"' >/dev/null ||
  fail "the agent's status does not show the recorded drills"
grep -q "<h2>Recent drills</h2>" <<<"$(curl -sf "http://127.0.0.1:$PORT_EAST/status")" || fail "the status page shows no recent drills"
grep -q '^lifeboat_drill_last_passed{scenario="region-outage"} 1$' <<<"$(curl -sf "http://127.0.0.1:$PORT_EAST/metrics")" ||
  fail "the agent does not export the last drill's verdict"
pass "an agent of the plan on this machine shows the drills in status and on its page, and exports lifeboat_drill_last_passed"
