#!/usr/bin/env bash
# What operators load into their monitoring. The Prometheus alert rules
# (deploy/prometheus/lifeboat.rules.yml): promtool accepts them, `promtool
# test rules` fires each one against recorded series
# (tests/prometheus/rules_test.yml) and keeps it quiet just under its
# threshold, and every alert has such a test. The Grafana dashboard
# (deploy/grafana/lifeboat.json): valid JSON whose every query promtool
# parses. And every lifeboat metric either reads is one a real agent exports.
source "$(dirname "$0")/lib.sh" "$1"
command -v promtool >/dev/null || fail "promtool is missing (scripts/deps.sh installs prometheus)"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RULES=$ROOT/deploy/prometheus/lifeboat.rules.yml
TESTS=$ROOT/tests/prometheus/rules_test.yml

promtool check rules "$RULES" > "$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "promtool check rules refused the rules"; }
(cd "$(dirname "$TESTS")" && promtool test rules "$(basename "$TESTS")") > "$WORK/test.out" 2>&1 ||
  { cat "$WORK/test.out" >&2; fail "promtool test rules failed"; }
alerts=$(grep -E '^\s+- alert: ' "$RULES" | awk '{print $3}')
[ "$(echo "$alerts" | wc -l)" -ge 9 ] || fail "fewer alerts than expected: $alerts"
for a in $alerts; do
  # A test that expects it to fire (an exp_labels entry under its alertname).
  awk -v a="$a" '$0 ~ "alertname: "a"$" {on=1; next} /alertname:/ {on=0} on && /exp_labels:/ {found=1} END {exit !found}' "$TESTS" ||
    fail "alert $a has no test that fires it"
done
pass "promtool accepts the rules and their tests fire each of the $(echo "$alerts" | wc -l) alerts (and not under the thresholds)"

DASH=$ROOT/deploy/grafana/lifeboat.json
jq -e '.title and .uid and (.panels | length) >= 10 and all(.panels[]; .title and .gridPos and (.targets | length) >= 1)' "$DASH" >/dev/null ||
  fail "the dashboard is not a Grafana dashboard with titled panels and queries"
{ echo "groups:"; echo "  - name: dashboard"; echo "    rules:"
  jq -r '[.panels[].targets[].expr, .annotations.list[].expr] | to_entries[] | "      - record: dashboard:query\(.key)\n        expr: \(.value | @json)"' "$DASH"
} > "$WORK/dashboard-queries.yml"
promtool check rules "$WORK/dashboard-queries.yml" > "$WORK/dash.out" 2>&1 || { cat "$WORK/dash.out" >&2; fail "promtool cannot parse a dashboard query"; }
pass "the dashboard's $(jq '.panels | length' "$DASH") panels and their $(grep -c 'record:' "$WORK/dashboard-queries.yml") queries parse"

# A real agent with objectives, a replicated volume, a checked endpoint and
# a backup schedule and DNS exports every lifeboat metric they read.
PORT_EAST=$(free_port); PORT_WEST=$(free_port); REP=$(free_port); DNS=$(free_port)
mkdir -p "$WORK/east-vol" "$WORK/west-vol"; head -c 32 /dev/urandom > "$WORK/key"
cat > "$WORK/plan.yaml" <<PLAN
name: alerts
pattern: warm-standby
objectives: { rto: 30s, rpo: 5s }
regions:
  east: { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west: { role: standby, agent: 127.0.0.1:$PORT_WEST }
checks:
  agent: { type: http, path: /healthz, interval: 1s, timeout: 500ms }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$PORT_EAST, check: agent }
volumes:
  data:
    path: { east: $WORK/east-vol, west: $WORK/west-vol }
    replication: { port: $REP, key_file: $WORK/key }
databases:  # a server that never answers: the database metrics are exported all the same
  orders:
    engine: postgresql
    instances: { east: "host=127.0.0.1 port=1 dbname=orders connect_timeout=1", west: "host=127.0.0.1 port=2 dbname=orders" }
backup:
  locations:
    local: { type: filesystem, path: $WORK/repo }
  schedules:
    nightly: { cron: "0 3 * * *", location: local, volumes: [data], keep: { last: 7 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:$DNS]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
failover: { mode: manual }
PLAN
start_agent east
wait_http "http://127.0.0.1:$PORT_EAST/healthz"
curl -sf "http://127.0.0.1:$PORT_EAST/metrics" > "$WORK/metrics.txt"
grep -q '^lifeboat_objective_rpo_seconds 5$' "$WORK/metrics.txt" || fail "the RPO objective is not exported"
grep -q '^lifeboat_objective_rto_seconds 30$' "$WORK/metrics.txt" || fail "the RTO objective is not exported"
used=$(grep -ohE 'lifeboat_[a-z_]+' "$RULES" "$DASH" | sed -E 's/_(bucket|sum|count)$//' | sort -u)
for m in $used; do
  grep -q "^# TYPE $m " "$WORK/metrics.txt" || fail "the rules or the dashboard read $m, which the agent does not export"
done
pass "the agent exports the plan's objectives and all $(echo "$used" | wc -l) lifeboat metrics the rules and the dashboard read"
