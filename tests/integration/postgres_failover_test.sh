#!/usr/bin/env bash
# PostgreSQL inside the failover engine: three agents (east, west, a witness)
# and two PostgreSQL 15 servers on loopback, east primary, west built by
# `lifeboat db bootstrap`.
#   1. the agents report each server's role and west's lag (status, metrics);
#   2. a planned failover to west under a writer: every acknowledged row is
#      on west, east's server is fenced, west's agent promoted its server;
#   3. east rewound to follow west; west's server dies under a writer (its
#      agent lives): the postgres health checks of the quorum see it, the
#      failover is automatic, east's agent promotes its server; the time
#      from the kill to east taking a write; sync mode: every row west
#      acknowledged is on east;
#   4. west's server comes back, as a primary: its agent fences it;
#   5. with east's replay paused far behind, west cannot be failed over to
#      (over max_lag_on_failover) unless forced.
source "$(dirname "$0")/lib.sh" "$1"
export LIFEBOAT_TOKEN=it-token
pg_setup
P_EAST=$(free_port); P_WEST=$(free_port)
pg_init east "$P_EAST"
pg_start east
PORT_EAST=$(free_port); PORT_WEST=$(free_port); PORT_WITNESS=$(free_port)
cat > "$WORK/plan.yaml" <<PLAN
name: pgfo
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west:    { role: standby, agent: 127.0.0.2:$PORT_WEST }
  witness: { role: witness, agent: 127.0.0.3:$PORT_WITNESS }
checks:
  db: { type: postgres, database: orders, interval: 500ms, timeout: 400ms, fall: 3, rise: 1 }
endpoints:
  db-east: { region: east, address: 127.0.0.1:$P_EAST, check: db }
  db-west: { region: west, address: 127.0.0.1:$P_WEST, check: db }
$(pg_database_yaml 1MB sync)
failover:
  mode: automatic
  grace: 500ms
  lease: 2s
PLAN
"$LIFEBOAT" plan validate "$WORK/plan.yaml" > /dev/null || fail "the plan does not validate"
export LIFEBOAT_PLAN="$WORK/plan.yaml"
"$LIFEBOAT" db bootstrap orders --region west > "$WORK/bootstrap.out" 2>&1 || { cat "$WORK/bootstrap.out"; fail "bootstrap"; }
psql_at "$P_EAST" "CREATE TABLE orders (id serial PRIMARY KEY, note text)"

run_agent() {
  "$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region "$1" --data-dir "$WORK/data/$1" \
    >>"$WORK/$1.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}
run_agent east; EAST=$LAST_PID
run_agent west; WEST=$LAST_PID
run_agent witness; WITNESS=$LAST_PID
wait_http "http://127.0.0.1:$PORT_EAST/healthz"; wait_http "http://127.0.0.2:$PORT_WEST/healthz"
wait_http "http://127.0.0.3:$PORT_WITNESS/healthz"
status_of() { curl -sf --max-time 2 "http://$1/v1/status"; }

# --- 1. Roles and lag as the agents see them -------------------------------------
deadline=$(( SECONDS + 20 ))
until status_of "127.0.0.2:$PORT_WEST" | jq -e '.services.databases.orders | .role == "standby" and (.lag_bytes | type == "number")' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { status_of "127.0.0.2:$PORT_WEST" | jq .services.databases >&2; fail "west never reported its standby's lag"; }
  sleep 0.2
done
status_of "127.0.0.1:$PORT_EAST" | jq -e '.services.databases.orders | .role == "primary" and (.standbys[0].name == "lifeboat_west")' >/dev/null ||
  { status_of "127.0.0.1:$PORT_EAST" | jq .services.databases >&2; fail "east's status"; }
has_metric "http://127.0.0.1:$PORT_EAST/metrics" '^lifeboat_db_primary{database="orders"} 1' || fail "east's primary metric"
has_metric "http://127.0.0.2:$PORT_WEST/metrics" '^lifeboat_db_lag_bytes{database="orders"} [0-9]' || fail "west's lag metric"
deadline=$(( SECONDS + 15 ))
until curl -sf "http://127.0.0.3:$PORT_WITNESS/v1/failover" | jq -e '[.views[] | select(.observer == "west") | .databases[]? | select(.database == "orders" and .role == "standby" and .lag_bytes >= 0)] | length == 1' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -sf "http://127.0.0.3:$PORT_WITNESS/v1/failover" | jq .views >&2; fail "west's view never carried its database"; }
  sleep 0.2
done
"$LIFEBOAT" status > "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "lifeboat status"; }
grep -Eq "^orders +west +standby" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "lifeboat status shows no database table"; }
status_of "127.0.0.1:$PORT_EAST" | jq -e '.services.databases.orders.sync_degraded == false' >/dev/null ||
  { status_of "127.0.0.1:$PORT_EAST" | jq .services.databases >&2; fail "east's sync primary is degraded with its standby streaming"; }
[ "$(psql_at "$P_EAST" "SHOW synchronous_standby_names")" = 'ANY 1 ("lifeboat_west")' ] || fail "east does not wait for west's standby"
pass "the agents report east's primary, west's standby and its lag (status, metrics, views, lifeboat status); commits wait for west"
"$LIFEBOAT" check run db-east > "$WORK/check.out" 2>&1 || { cat "$WORK/check.out"; fail "check run db-east"; }
grep -q "primary" "$WORK/check.out" || { cat "$WORK/check.out"; fail "the postgres check did not tell the role"; }
"$LIFEBOAT" check run db-west > "$WORK/check.out" 2>&1 || { cat "$WORK/check.out"; fail "check run db-west"; }
grep -q "standby" "$WORK/check.out" || { cat "$WORK/check.out"; fail "the postgres check did not tell the standby"; }
pass "the postgres health check logs in and tells primary from standby"

wait_run_done() {  # AGENT_ADDR EPOCH
  local deadline=$(( SECONDS + 60 ))
  until status_of "$1" | jq -e ".failover.epoch == $2 and .failover.run.state == \"done\"" >/dev/null; do
    [ $SECONDS -lt $deadline ] || { status_of "$1" | jq .failover >&2; fail "the run to epoch $2 never finished"; }
    sleep 0.1
  done
}

# --- 2. Planned failover under writes ------------------------------------------------
pg_writer_start "$P_EAST" "$WORK/acked" p
sleep 1
"$LIFEBOAT" failover --to west --planned --yes > "$WORK/planned.out" 2>&1 || { cat "$WORK/planned.out"; fail "planned failover"; }
wait_run_done "127.0.0.2:$PORT_WEST" 2
pg_writer_stop
acked=$(wc -l < "$WORK/acked")
[ "$acked" -gt 0 ] || fail "no row was acknowledged before the switch"
missing=$(pg_missing "$P_WEST" "$WORK/acked")
[ "$missing" = 0 ] || fail "$missing of $acked acknowledged rows are missing on west after a planned failover"
[ "$(psql_at "$P_WEST" "SELECT pg_is_in_recovery()")" = f ] || fail "west's server was not promoted"
expect_exit 1 psql_at "$P_EAST" "INSERT INTO orders (note) VALUES ('after')"
grep -q "read-only" <<<"$OUT" || { echo "$OUT"; fail "east's server took a write after the planned failover"; }
status_of "127.0.0.2:$PORT_WEST" | jq -e '.failover.run.steps[0].output | test("database orders: east.s server fenced at [0-9A-F/]+, all of it received by west")' >/dev/null ||
  { status_of "127.0.0.2:$PORT_WEST" | jq .failover.run.steps >&2; fail "the fence step did not report the database"; }
status_of "127.0.0.2:$PORT_WEST" | jq -e '.failover.run.steps[1].output | test("database orders")' >/dev/null ||
  { status_of "127.0.0.2:$PORT_WEST" | jq .failover.run.steps >&2; fail "the promote step did not wait for the database"; }
pass "planned failover: west's server promoted by its agent, all $acked acknowledged rows there, east fenced"

# A failover back to east is refused while its server is a fenced old primary.
expect_exit 1 "$LIFEBOAT" failover --to east --yes
grep -q "fenced primary" <<<"$OUT" || { echo "$OUT"; fail "a failover to the fenced old primary was not refused"; }
pass "a failover to the fenced old primary is refused: $(grep -o 'its server of database orders[^(]*' <<<"$OUT" | head -1)"

# --- 3. East follows; west's region dies ----------------------------------------------
"$LIFEBOAT" db rewind orders --region east > "$WORK/rewind.out" 2>&1 || { cat "$WORK/rewind.out"; fail "rewind east"; }
deadline=$(( SECONDS + 20 ))
until status_of "127.0.0.1:$PORT_EAST" | jq -e '.services.databases.orders | .role == "standby" and .lag_bytes == 0' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { status_of "127.0.0.1:$PORT_EAST" | jq .services.databases >&2; fail "east never caught up with west"; }
  sleep 0.2
done
psql_at "$P_WEST" "INSERT INTO orders (note) VALUES ('before-outage')"
deadline=$(( SECONDS + 10 ))
until [ "$(psql_at "$P_EAST" "SELECT count(*) FROM orders WHERE note = 'before-outage'")" = 1 ]; do
  [ $SECONDS -lt $deadline ] || fail "east never received the last row"
  sleep 0.1
done
sleep 1  # a lag measure after that row
pg_writer_start "$P_WEST" "$WORK/acked3" o
sleep 1
start=$(date +%s%N)
pg_kill west
until psql_at "$P_EAST" "INSERT INTO orders (note) VALUES ('after-outage')" > /dev/null 2>&1; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 60000 ] || {
    status_of "127.0.0.1:$PORT_EAST" | jq '.failover, .services.databases' >&2; tail -20 "$WORK/east.log" >&2
    fail "east's server never took a write after west's outage"; }
  sleep 0.05
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
pg_writer_stop
acked=$(wc -l < "$WORK/acked3")
[ "$acked" -gt 0 ] || fail "no row was acknowledged by west before its server died"
missing=$(pg_missing "$P_EAST" "$WORK/acked3")
[ "$missing" = 0 ] || fail "$missing of $acked rows west acknowledged (sync mode) are missing on east"
wait_run_done "127.0.0.1:$PORT_EAST" 3
[ "$(psql_at "$P_EAST" "SELECT count(*) FROM orders WHERE note = 'before-outage'")" = 1 ] || fail "the last row before the outage is gone"
pass "west's server died: east's server took a write $ms ms after the kill (checks 500ms x 3, grace 500ms); all $acked rows west acknowledged are there (sync)"

# --- 4. West's server returns (a primary): its agent fences it --------------------
pg_start west
deadline=$(( SECONDS + 15 ))
until status_of "127.0.0.2:$PORT_WEST" | jq -e '.services.databases.orders.role == "fenced primary"' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { status_of "127.0.0.2:$PORT_WEST" | jq .services.databases >&2; fail "west's agent never fenced its old primary"; }
  sleep 0.1
done
expect_exit 1 psql_at "$P_WEST" "INSERT INTO orders (note) VALUES ('stale')"
grep -q "read-only" <<<"$OUT" || { echo "$OUT"; fail "west's returning server took a write"; }
pass "west's server came back as a primary and its agent fenced it"

# --- 5. A standby too far behind is not failed over to ---------------------------------
"$LIFEBOAT" db rewind orders --region west > "$WORK/rewind2.out" 2>&1 || { cat "$WORK/rewind2.out"; fail "rewind west"; }
psql_at "$P_WEST" "SELECT pg_wal_replay_pause()" > /dev/null
psql_at "$P_EAST" "INSERT INTO orders (note) SELECT repeat('x', 1000) FROM generate_series(1, 3000)"
deadline=$(( SECONDS + 20 ))
until curl -sf "http://127.0.0.3:$PORT_WITNESS/v1/failover" | jq -e '[.views[] | select(.observer == "west") | .databases[] | select(.lag_bytes > 1000000)] | length == 1' >/dev/null; do
  [ $SECONDS -lt $deadline ] || { curl -sf "http://127.0.0.3:$PORT_WITNESS/v1/failover" | jq .views >&2; fail "west's lag never showed"; }
  sleep 0.2
done
expect_exit 1 "$LIFEBOAT" failover --to west --yes
grep -q "over max_lag_on_failover (1MB)" <<<"$OUT" || { echo "$OUT"; fail "a failover to a lagging standby was not refused"; }
psql_at "$P_WEST" "SELECT pg_wal_replay_resume()" > /dev/null
pass "a failover to a standby over max_lag_on_failover is refused"
