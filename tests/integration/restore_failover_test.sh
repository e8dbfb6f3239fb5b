#!/usr/bin/env bash
# The backup-restore pattern's failover with real agents on loopback: east
# (primary), west and a witness; the volume is not replicated, only backed up
# to a filesystem location. East dies; the quorum fails over to west with the
# pattern's steps, and west's agent restores the newest backup of the volume
# into its copy before traffic moves: DNS answers west, and west's copy
# holds what the newest backup held (not what was written after it).
source "$(dirname "$0")/lib.sh" "$1"
command -v dig >/dev/null || fail "dig is missing (scripts/deps.sh installs bind9-dnsutils)"
command -v rsync >/dev/null || fail "rsync is missing (scripts/deps.sh installs it)"
export LIFEBOAT_TOKEN=it-token LIFEBOAT_REPO_PASSWORD=correct-horse

PORT_EAST=$(free_port); PORT_WEST=$(free_port); PORT_WITNESS=$(free_port); DNS_WEST=$(free_port)
mkdir -p "$WORK/east-vol/docs"
cat > "$WORK/plan.yaml" <<PLAN
name: br
pattern: backup-restore
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west:    { role: standby, agent: 127.0.0.2:$PORT_WEST }
  witness: { role: witness, agent: 127.0.0.3:$PORT_WITNESS }
checks:
  agent: { type: http, path: /healthz, expect_body: ok, interval: 200ms, timeout: 150ms, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$PORT_EAST, check: agent }
  web-west: { region: west, address: 127.0.0.2:$PORT_WEST, check: agent }
dns:
  zone: example.com.
  listen: [127.0.0.1:$DNS_WEST]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
volumes:
  data: { path: { east: $WORK/east-vol, west: $WORK/west-vol } }
backup:
  locations:
    local: { type: filesystem, path: $WORK/repo }
failover:
  mode: automatic
  grace: 500ms
  lease: 2s
PLAN
lb() { "$LIFEBOAT" "$@" --plan "$WORK/plan.yaml"; }
show=$("$LIFEBOAT" plan show "$WORK/plan.yaml" -o json)
echo "$show" | jq -e '.failover.steps == ["fence","restore","switch-traffic","verify"]' >/dev/null ||
  { echo "$show" | jq .failover >&2; fail "the pattern's default steps are not fence, restore, switch-traffic, verify"; }

run_agent() {  # REGION [DNS_PORT]
  "$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region "$1" --data-dir "$WORK/data/$1" \
    ${2:+--dns-listen 127.0.0.2:$2} >>"$WORK/$1.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
run_agent east; EAST=$LAST_PID
run_agent west "$DNS_WEST"
run_agent witness
wait_http "http://127.0.0.1:$PORT_EAST/healthz"; wait_http "http://127.0.0.2:$PORT_WEST/healthz"
wait_http "http://127.0.0.3:$PORT_WITNESS/healthz"
q() { dig @127.0.0.2 -p "$DNS_WEST" +time=1 +tries=1 +short shop.example.com; }

# Data, a backup of it, then a change after the backup (lost in this pattern).
for i in $(seq 1 20); do head -c 50000 /dev/urandom > "$WORK/east-vol/docs/f$i"; done
echo "in the backup" > "$WORK/east-vol/order"
ln -s docs/f1 "$WORK/east-vol/link"
lb repo init -l local >/dev/null || fail "repo init failed"
lb backup create --volume data -l local >/dev/null || fail "backup create failed"
cp -a "$WORK/east-vol" "$WORK/backed-up"
echo "after the backup" > "$WORK/east-vol/order"
[ ! -e "$WORK/west-vol" ] || fail "west's copy exists before any failover (the volume must not replicate)"
deadline=$(( SECONDS + 15 ))
until [ "$(q)" = 127.0.0.1 ]; do [ $SECONDS -lt $deadline ] || fail "west's DNS never answered east"; sleep 0.1; done
until [ "$(curl -sf "http://127.0.0.3:$PORT_WITNESS/v1/failover" | jq '.views | length')" = 3 ]; do
  [ $SECONDS -lt $deadline ] || fail "the three views never appeared"; sleep 0.1
done
pass "backup-restore plan: the volume is backed up, not replicated; DNS answers east"

kill -9 "$EAST"; wait "$EAST" 2>/dev/null || true
deadline=$(( SECONDS + 60 ))
until curl -sf "http://127.0.0.2:$PORT_WEST/v1/failover" >/dev/null &&
      [ "$(curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq -r '.failover.run.state')" = done ]; do
  state=$(curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq -r '.failover.run.state // "none"')
  [ "$state" != failed ] || { curl -s "http://127.0.0.2:$PORT_WEST/v1/status" | jq .failover.run >&2; fail "the run failed"; }
  [ $SECONDS -lt $deadline ] || { curl -s "http://127.0.0.2:$PORT_WEST/v1/status" | jq .failover >&2; fail "the run never finished"; }
  sleep 0.2
done
run=$(curl -sf "http://127.0.0.2:$PORT_WEST/v1/status" | jq .failover.run)
echo "$run" | jq -e '[.steps[].name] == ["fence","restore","switch-traffic","verify"]' >/dev/null ||
  { echo "$run" >&2; fail "the run's steps are not the pattern's"; }
echo "$run" | jq -e '.steps[1].output | test("^restored in west: data: backup [0-9a-f]{8} from local, 21 files")' >/dev/null ||
  { echo "$run" | jq .steps[1] >&2; fail "the restore step does not report the backup it restored"; }
[ -z "$(rsync -aHn --checksum --delete --itemize-changes "$WORK/backed-up/" "$WORK/west-vol/")" ] ||
  { rsync -aHn --checksum --delete --itemize-changes "$WORK/backed-up/" "$WORK/west-vol/" | head >&2; fail "west's copy differs from the backup"; }
[ "$(cat "$WORK/west-vol/order")" = "in the backup" ] || fail "west's copy is not the backup's"
deadline=$(( SECONDS + 10 ))
until [ "$(q)" = 127.0.0.2 ]; do [ $SECONDS -lt $deadline ] || fail "DNS never moved to west"; sleep 0.1; done
has_metric "http://127.0.0.2:$PORT_WEST/metrics" '^lifeboat_backup_failover_restores_total{volume="data",result="done"} 1$' ||
  { curl -s "http://127.0.0.2:$PORT_WEST/metrics" | grep failover_restores >&2; fail "the restore is not counted"; }
pass "east killed: the run restored the newest backup into west (20 files, a link, the backed-up 'order') before its switch-traffic step; DNS answers west"
