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
