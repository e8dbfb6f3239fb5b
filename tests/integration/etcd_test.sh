#!/usr/bin/env bash
# The state store on a real etcd cluster: three members of Debian's
# etcd-server on loopback. Runs the store contract suite (the same tests the
# embedded store passes) against it, then again with one member stopped: calls
# and watches move to the members that are left.
source "$(dirname "$0")/lib.sh" "$1"
STATE_TEST="$(dirname "$LIFEBOAT")/src/state_test"
[ -x "$STATE_TEST" ] || fail "no $STATE_TEST (build the tests first)"
command -v etcd >/dev/null || fail "etcd is not installed (scripts/deps.sh installs etcd-server)"

start_etcd_cluster
pass "three etcd members up: $ETCD_ENDPOINTS"

LIFEBOAT_TEST_ETCD="$ETCD_ENDPOINTS" "$STATE_TEST" --gtest_filter='Each/StoreContract.*/etcd' --gtest_brief=1 \
  > "$WORK/contract.log" 2>&1 || { cat "$WORK/contract.log"; fail "the store contract on etcd"; }
grep -q '\[  PASSED  \] 12 tests' "$WORK/contract.log" || { cat "$WORK/contract.log"; fail "expected 12 contract tests to pass on etcd"; }
pass "every behaviour of the store contract holds on etcd"

# A watch and calls on member 1, which then dies: both go on with the others.
LIFEBOAT_TEST_ETCD="$ETCD_ENDPOINTS" LIFEBOAT_TEST_ETCD_STOP="kill ${ETCD_PIDS[0]}" \
  "$STATE_TEST" --gtest_filter='EtcdFailover.*' --gtest_brief=1 > "$WORK/failover.log" 2>&1 || {
    cat "$WORK/failover.log"; fail "a member stopped during a watch"; }
grep -q '\[  PASSED  \] 1 test' "$WORK/failover.log" || { cat "$WORK/failover.log"; fail "the failover test did not run"; }
pass "member 1 stopped mid-watch: the watch resumed on another member with no event lost or repeated"

# The contract again with member 1 gone (it is the first endpoint).
LIFEBOAT_TEST_ETCD="$ETCD_ENDPOINTS" "$STATE_TEST" --gtest_filter='Each/StoreContract.*/etcd' --gtest_brief=1 \
  > "$WORK/contract2.log" 2>&1 || { cat "$WORK/contract2.log"; fail "the store contract with one member down"; }
pass "the store contract holds with one of three members down"

# Two agents whose plan keeps its state on the cluster (member 1 still down):
# a routing control set through west alone reaches east's DNS answers.
PORT_EAST=$(free_port); PORT_WEST=$(free_port); DNS=$(free_port); DNS_WEST=$(free_port)
PREFIX="/lifeboat-it-$$/"
cat > "$WORK/plan.yaml" <<PLAN
name: etcdtest
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west: { role: standby, agent: 127.0.0.2:$PORT_WEST }
checks:
  agent: { type: http, path: /healthz, expect_body: ok, interval: 200ms, timeout: 100ms }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$PORT_EAST, check: agent }
  web-west: { region: west, address: 127.0.0.2:$PORT_WEST, check: agent }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:$DNS]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 5s }
state:
  store: etcd
  endpoints: [${ETCD_ENDPOINTS//,/, }]
  prefix: $PREFIX
PLAN
"$LIFEBOAT" plan validate "$WORK/plan.yaml" >/dev/null || fail "the etcd plan does not validate"
export LIFEBOAT_TOKEN=s3cret
start_agent east
"$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region west --data-dir "$WORK/data/west" \
  --dns-listen "127.0.0.1:$DNS_WEST" >>"$WORK/west.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$PORT_EAST/healthz"; wait_http "http://127.0.0.2:$PORT_WEST/healthz"
q() { dig @127.0.0.1 -p "$DNS" +time=2 +tries=1 +short shop.example.com; }
deadline=$(( SECONDS + 10 ))
until [ "$(q)" = 127.0.0.1 ]; do [ $SECONDS -lt $deadline ] || fail "east's DNS never answered the primary"; sleep 0.1; done
start=$(date +%s%N)
curl -sf -X PUT -H "Authorization: Bearer $LIFEBOAT_TOKEN" -d '{"on": false}' \
  "http://127.0.0.2:$PORT_WEST/v1/routing-controls/east" >/dev/null || fail "PUT to west: $(tail -3 "$WORK/west.log")"
until [ "$(q)" = 127.0.0.2 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ] || fail "east's DNS never saw the switch set through west"
  sleep 0.02
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" get "${PREFIX}routing/controls/east" --print-value-only |
  jq -e '.on == false' >/dev/null || fail "the switch is not in etcd under the plan's prefix"
ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" get "${PREFIX}regions/west/agent/starts" --print-value-only |
  grep -qx 1 || fail "west's own keys are not under regions/west/"
pass "agents on etcd: a switch set through west reached east's DNS answers in ${ms} ms; keys under $PREFIX"
