#!/usr/bin/env bash
# The drills that fault only the replication link, through the proxy the
# drill starts (the primary's agent replicates through it by --connect-to):
#   replication-partition: the link cut for 75 s while the client writes
#   on. Nothing fails over; the lag the drill sampled, fed to promtool as
#   series, fires LifeboatReplicationLagOverRPO from the shipped rules; once
#   healed, west's copy on disk holds every acknowledged record.
#   slow-link: the link delayed and throttled, then east goes dark; the
#   loss the report names is the loss in west's copy.
source "$(dirname "$0")/lib.sh" "$1"
command -v promtool >/dev/null || fail "promtool is missing (scripts/deps.sh installs prometheus)"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

drill_setup
drill_plan linktest automatic > "$WORK/plan.yaml"
# every acknowledged record of attempts.jsonl that DIR lacks, counted
lacking() {
  local n=0
  while read -r seq; do [ -f "$2/records/$seq" ] || n=$((n + 1)); done < <(jq -r 'select(.acked) | .seq' "$1")
  echo "$n"
}

expect_exit 2 "$LIFEBOAT" drill run slow-link --plan "$WORK/plan.yaml" --link-rate 0/s
grep -q "link-rate: must be over 0" <<<"$OUT" || fail "a zero rate: $OUT"
sed 's/objectives: { rto: 10s, rpo: 2s }/objectives: { rto: 10s }/' "$WORK/plan.yaml" > "$WORK/norpo.yaml"
expect_exit 2 "$LIFEBOAT" drill run replication-partition --plan "$WORK/norpo.yaml"
grep -q "set objectives.rpo" <<<"$OUT" || fail "a partition drill without an RPO objective: $OUT"
pass "a zero link rate and a partition drill with no RPO objective to measure against are refused"

# --- replication-partition ---------------------------------------------------------
"$LIFEBOAT" drill run replication-partition --plan "$WORK/plan.yaml" --data-dir "$WORK/part" --agents-dir "$WORK/data" \
  --fault-for 75s -o json > "$WORK/part.json" 2> "$WORK/part.err" || { cat "$WORK/part.err" "$WORK/part.json" >&2; fail "the partition drill failed"; }
R="$WORK/part.json"
jq -e '.verdict == "pass" and .failover.primary == "east" and .failover.epoch == 1 and .failover.run_state == "" and
       .loss.missing == 0 and .replication.link.healed_at != null and .replication.link.upstream == "127.0.0.2:'"$REP"'" and
       (.replication.over_objective_seconds > 60) and .client.failed_after_fault == 0' "$R" >/dev/null ||
  { jq 'del(.replication.lag)' "$R" >&2; fail "the partition failed over, lost records or held nothing back"; }
[ "$(lacking "$WORK/part/attempts.jsonl" "$WORK/west-vol")" = 0 ] || fail "west's copy lacks acknowledged records after the partition healed"
acked=$(jq .client.acknowledged "$R"); [ "$acked" -gt 1000 ] || fail "only $acked records were acknowledged"
drill_nothing_left
pass "replication-partition: no failover (east at epoch 1), the client never failed, lag up to $(jq .replication.max_lag_seconds "$R")s; healed, west's copy holds all $acked acknowledged records"

# The lag as the drill sampled it, one value a second (whole seconds), as
# Prometheus would have scraped east's agent; the shipped rule must fire.
values=$(jq -r '
  def t: (sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) + ((capture("\\.(?<f>[0-9]+)Z$").f // "0") | ("0." + .) | tonumber);
  [.replication.lag[] | select(.from == "east" and .to == "west") | {t: (.at | t), v: .seconds}] as $s
  | $s[0].t as $t0 | (($s[-1].t - $t0) | floor) as $n
  | [range(0; $n + 1) as $k | ([$s[] | select(.t <= $t0 + $k)] | last | .v | floor)] | map(tostring) | join(" ")' "$R")
read -ra v <<<"$values"
run=0; at=""
for k in "${!v[@]}"; do
  if [ "${v[$k]}" -gt 2 ]; then run=$((run + 1)); else run=0; fi
  if [ "$run" -ge 62 ]; then at=$k; break; fi
done
[ -n "$at" ] || fail "the sampled lag was not over the objective for a minute: $values"
lag=${v[$at]}; human="$((lag % 60))s"; [ "$lag" -ge 60 ] && human="$((lag / 60))m $((lag % 60))s"
mkdir -p "$WORK/prom"; cp "$ROOT/deploy/prometheus/lifeboat.rules.yml" "$WORK/prom/"
cat > "$WORK/prom/drill_test.yml" <<YAML
rule_files: [lifeboat.rules.yml]
evaluation_interval: 1s
tests:
  - interval: 1s
    input_series:
      - series: 'lifeboat_replication_rpo_seconds{job="lifeboat",instance="east",volume="data",target="west"}'
        values: '$values'
      - series: 'lifeboat_objective_rpo_seconds{job="lifeboat",instance="east"}'
        values: '2x${#v[@]}'
    alert_rule_test:
      - eval_time: ${at}s
        alertname: LifeboatReplicationLagOverRPO
        exp_alerts:
          - exp_labels: { severity: critical, job: lifeboat, instance: east, volume: data, target: west }
            exp_annotations:
              summary: "data to west is $human behind, over the RPO objective"
              description: "A failover now would lose the writes of that long. See \`lifeboat replicate status data\`."
YAML
(cd "$WORK/prom" && promtool test rules drill_test.yml) > "$WORK/prom.out" 2>&1 || { cat "$WORK/prom.out" >&2; fail "the lag alert does not fire on the drill's lag"; }
pass "LifeboatReplicationLagOverRPO fires on the lag the drill recorded (promtool, ${at}s into the series, $human behind)"

# --- slow-link ---------------------------------------------------------------------
rc=0
"$LIFEBOAT" drill run slow-link --plan "$WORK/plan.yaml" --data-dir "$WORK/slow" --agents-dir "$WORK/data" \
  --link-delay 150ms --link-rate 128KiB/s -o json > "$WORK/slow.json" 2> "$WORK/slow.err" || rc=$?
R="$WORK/slow.json"
[ "$rc" = 0 ] || [ "$rc" = 1 ] || { cat "$WORK/slow.err" >&2; fail "the slow-link drill exited $rc"; }
jq -e '.failover.primary == "west" and .failover.epoch == 2 and .replication.link.delay_seconds == 0.15 and
       .replication.link.rate_bytes_per_second == 131072 and (.replication.link.bytes_up > 0) and
       (.replication.max_lag_seconds > 0.15)' "$R" >/dev/null ||
  { jq 'del(.replication.lag)' "$R" >&2; fail "slow-link: no failover, or the link was not shaped"; }
# The verdict follows the figures: exit 1 exactly when an objective is named as missed.
[ "$rc" = "$(jq 'if .verdict == "pass" then 0 else 1 end' "$R")" ] || fail "exit $rc with verdict $(jq .verdict "$R")"
[ "$(lacking "$WORK/slow/attempts.jsonl" "$WORK/west-vol")" = "$(jq .loss.missing "$R")" ] ||
  fail "the report's loss is not what west's copy lacks"
drill_nothing_left
pass "slow-link (150ms, 128KiB/s): failover to west, RPO $(jq .rpo_seconds "$R")s ($(jq .loss.missing "$R") records lost, recounted from west's copy), highest lag $(jq .replication.max_lag_seconds "$R")s; verdict $(jq -r .verdict "$R")"
