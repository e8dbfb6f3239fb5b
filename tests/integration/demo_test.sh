#!/usr/bin/env bash
# lifeboat demo: the README's main job. On an embedded plan (fixed ports
# 7701-7703, 7711 and, for PostgreSQL, 7721-7722): every region starts,
# us-east goes dark, us-west takes over, us-east comes back and fails back;
# the demo prints RTO and RPO, keeps its report, and leaves nothing running.
# The default keeps the records in two PostgreSQL servers the demo makes
# (the test command installs PostgreSQL 15); --store files in a replicated
# volume. --stay keeps it all up until Ctrl-C. Bad flags, a plan that cannot
# be drilled and a dead agent are reported.
source "$(dirname "$0")/lib.sh" "$1"

made_dirs() { find /tmp -maxdepth 1 -name 'lifeboat-demo-*' | sort; }
BEFORE="$(made_dirs)"
expect_exit 2 "$LIFEBOAT" demo --duration soon
grep -q -- "--duration" <<<"$OUT" || fail "bad --duration: $OUT"
expect_exit 2 "$LIFEBOAT" demo --scenario meteor
grep -q "unknown scenario 'meteor'" <<<"$OUT" || fail "bad --scenario: $OUT"
write_plan
expect_exit 2 "$LIFEBOAT" demo --plan "$WORK/plan.yaml" --data-dir "$WORK/nodns"
grep -q "the demo runs a drill on the plan, and .*set failover.mode: automatic" <<<"$OUT" || fail "a manual plan: $OUT"
expect_exit 2 "$LIFEBOAT" demo --store tape
grep -q -- "--store: 'tape' is not one of auto, postgres, files" <<<"$OUT" || fail "bad --store: $OUT"
expect_exit 2 "$LIFEBOAT" demo --store files --plan "$WORK/plan.yaml"
grep -q -- "--store chooses an embedded plan; it goes without --plan" <<<"$OUT" || fail "--store with --plan: $OUT"
[ ! -e "$WORK/nodns" ] || fail "a refused demo made its --data-dir"
[ "$(made_dirs)" = "$BEFORE" ] || fail "a refused demo left a directory in /tmp: $(comm -13 <(echo "$BEFORE") <(made_dirs))"
pass "bad flags and a plan that cannot be drilled are refused before anything starts (or is made)"

PORTS=(7701 7702 7703 7711 7721 7722 7770)
ports_free() { for p in "${PORTS[@]}"; do [ -z "$(ss -Htln "( sport = :$p )")" ] || return 1; done; }
nothing_left() {
  for p in "${PORTS[@]}"; do
    [ -z "$(listener_pid "$p")" ] || fail "port $p is still served by pid $(listener_pid "$p") after the demo"
  done
}
if ! ports_free; then
  echo "note: one of ports ${PORTS[*]} is in use here; the embedded-plan demo was not run"
  exit 0
fi

EXAMPLES="$(dirname "$0")/../../examples"
if [ "$(id -u)" = 0 ]; then
  # As root the demo's servers run as the postgres user, who must reach the
  # data dir: the scratch dir is 0700.
  expect_exit 1 "$LIFEBOAT" demo --data-dir "$WORK/closed"
  grep -q "runs as the user postgres, who cannot reach $WORK/closed: $WORK is mode 0700" <<<"$OUT" ||
    fail "a data dir the postgres user cannot reach: $OUT"
  chmod 0711 "$WORK"
fi
D="$WORK/demo"
"$LIFEBOAT" demo --data-dir "$D" > "$WORK/demo.out" 2>&1 || { cat "$WORK/demo.out" >&2; fail "lifeboat demo failed"; }
grep -q "the embedded plan 'local-postgres' (warm-standby, 3 regions on this machine)" "$WORK/demo.out" ||
  { cat "$WORK/demo.out" >&2; fail "the embedded PostgreSQL plan was not used (PostgreSQL 15 is installed)"; }
cmp -s "$D/plan.yaml" "$EXAMPLES/local-postgres.yaml" || fail "the data dir's plan.yaml is not examples/local-postgres.yaml"
grep -q "^Making database shop: us-east's PostgreSQL server (initdb)... us-west's standby (db bootstrap)... done" \
  "$WORK/demo.out" || { cat "$WORK/demo.out" >&2; fail "the demo did not make its servers"; }
grep -q "^PASS: within the plan's objectives. Report: $D/drill.json and $D/drill.html" "$WORK/demo.out" ||
  { cat "$WORK/demo.out" >&2; fail "no passing verdict"; }
grep -q "^primary now: us-east (epoch 3)" "$WORK/demo.out" || { cat "$WORK/demo.out" >&2; fail "no failback to us-east"; }
jq -e '.verdict == "pass" and .replication.database == "shop" and .failover.primary == "us-west" and
       .failback.failover.primary == "us-east" and (.rto_seconds > 0) and (.client.acknowledged > 0) and
       .loss.missing == 0 and .failback.loss.missing == 0 and .two_primaries.writes == 0' "$D/drill.json" >/dev/null ||
  { cat "$D/drill.json" >&2; fail "the report does not tell the story (sync commits: no acknowledged record may be lost)"; }
[ "$(stat -c %a "$D/postgres.password")" = 600 ] && [ "$(wc -c < "$D/postgres.password")" = 49 ] ||
  fail "the database password file is not 48 hex digits, mode 0600"
for r in us-east us-west; do
  [ ! -e "$D/postgres/$r/postmaster.pid" ] || fail "$r's PostgreSQL server still runs after the demo"
  grep -q "database system is shut down" "$D/postgres/$r.log" || fail "$r's server did not shut down cleanly"
done
grep -q "^PASS: within the plan's objectives" <<<"$("$LIFEBOAT" drill report latest --plan "$D/plan.yaml" --agents-dir "$D")" ||
  fail "drill report does not find the demo's drill"
nothing_left
pass "the embedded demo on PostgreSQL: us-east dark, us-west primary (RTO $(jq .rto_seconds "$D/drill.json")s, $(jq .loss.missing "$D/drill.json") of $(jq .client.acknowledged "$D/drill.json") acknowledged records lost), failback with none lost; servers stopped, nothing left running"

# --stay --store files: the volume plan; everything runs on until Ctrl-C,
# with its status page.
S="$WORK/stay"
"$LIFEBOAT" demo --stay --store files --data-dir "$S" > "$WORK/stay.out" 2>&1 &
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
grep -q "the embedded plan 'local' (warm-standby, 3 regions on this machine)" "$WORK/stay.out" || fail "--store files did not use examples/local.yaml"
cmp -s "$S/plan.yaml" "$EXAMPLES/local.yaml" || fail "the data dir's plan.yaml is not examples/local.yaml"
[ "$(stat -c %a "$S/replication.key")" = 600 ] && [ "$(stat -c %s "$S/replication.key")" = 32 ] || fail "the replication key"
n=$(find "$S/volumes/us-east/records" -type f | wc -l)
[ "$n" -ge "$(jq .client.acknowledged "$S/drill.json")" ] || fail "us-east holds $n records"
jq -e '.verdict == "pass" and .failback.loss.missing == 0' "$S/drill.json" >/dev/null || fail "the volume demo's report"
nothing_left
pass "demo --stay --store files: the replicated volume (us-east holds $n records), regions up (status page answers) until Ctrl-C, then all stopped"

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
