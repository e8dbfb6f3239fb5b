#!/usr/bin/env bash
# PostgreSQL across regions, by hand (lifeboat db ...), against two real
# PostgreSQL 15 servers on loopback: bootstrap of the standby (and again:
# nothing to do), the connection layer's tests against both, lag under
# writes, a promotion refused for its lag, a planned switchover with every
# committed row present and the old primary fenced, its rewind into a
# standby, an unplanned failover with a diverged old primary rewound back.
source "$(dirname "$0")/lib.sh" "$1"
PG_TEST="$(dirname "$LIFEBOAT")/src/postgres_test"
[ -x "$PG_TEST" ] || fail "no $PG_TEST (build the tests first)"
pg_setup
P_EAST=$(free_port); P_WEST=$(free_port)
pg_init east "$P_EAST"
pg_start east
pass "primary east up on $P_EAST"

PG_CONNECT_TIMEOUT=3
cat > "$WORK/plan.yaml" <<PLAN
name: pgtest
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:$(free_port) }
  west: { role: standby, agent: 127.0.0.1:$(free_port) }
$(pg_database_yaml 1MB)
PLAN
"$LIFEBOAT" plan validate "$WORK/plan.yaml" > /dev/null || fail "the plan does not validate"
export LIFEBOAT_PLAN="$WORK/plan.yaml"

# A password in the plan is refused where it is written.
sed "s/user=lifeboat dbname=postgres connect_timeout=3\", west/user=lifeboat password=x dbname=postgres\", west/" \
  "$WORK/plan.yaml" > "$WORK/bad.yaml"
expect_exit 2 "$LIFEBOAT" plan validate "$WORK/bad.yaml"
grep -q "holds a password" <<<"$OUT" || { echo "$OUT"; fail "a password in a connection string was not refused"; }
pass "a password in the plan is refused"

# Bootstrap: the checks, the copy with progress, streaming; then idempotent.
"$LIFEBOAT" db bootstrap orders --region west > "$WORK/bootstrap.out" 2> "$WORK/bootstrap.err" \
  || { cat "$WORK/bootstrap.out" "$WORK/bootstrap.err"; fail "bootstrap"; }
grep -q "built a standby of east" "$WORK/bootstrap.out" || { cat "$WORK/bootstrap.out"; fail "bootstrap said"; }
grep -q "base backup 100%" "$WORK/bootstrap.err" || { cat "$WORK/bootstrap.err"; fail "no progress of the base backup"; }
! grep -q "$PG_PASSWORD" "$WORK/bootstrap.out" "$WORK/bootstrap.err" || fail "the password was printed"
[ "$(psql_at "$P_WEST" "SELECT pg_is_in_recovery()")" = t ] || fail "west is not a standby"
pass "bootstrap built west from east and it streams"
"$LIFEBOAT" db bootstrap orders --region west > "$WORK/bootstrap2.out" 2>&1 || { cat "$WORK/bootstrap2.out"; fail "bootstrap again"; }
grep -q "already a standby of east, streaming" "$WORK/bootstrap2.out" || { cat "$WORK/bootstrap2.out"; fail "bootstrap again said"; }
pass "bootstrap again: nothing to do"

# The connection layer against both servers.
LIFEBOAT_TEST_PG_PRIMARY="$(pg_conn "$P_EAST")" LIFEBOAT_TEST_PG_STANDBY="$(pg_conn "$P_WEST")" \
  LIFEBOAT_TEST_PG_PASSWORD="$PG_PASSWORD" "$PG_TEST" --gtest_filter='RealServer.*' --gtest_brief=1 \
  > "$WORK/gtest.log" 2>&1 || { cat "$WORK/gtest.log"; fail "the connection tests against the servers"; }
grep -q '\[  PASSED  \] 5 tests' "$WORK/gtest.log" || { cat "$WORK/gtest.log"; fail "expected 5 server tests to pass"; }
pass "connection, inspection, errors and deadlines hold against real servers"
DRILL_TEST="$(dirname "$LIFEBOAT")/src/drill_test"
LIFEBOAT_TEST_PG_PRIMARY="$(pg_conn "$P_EAST")" LIFEBOAT_TEST_PG_STANDBY="$(pg_conn "$P_WEST")" \
  LIFEBOAT_TEST_PG_PASSWORD="$PG_PASSWORD" "$DRILL_TEST" --gtest_filter='PgRecords.*' --gtest_brief=1 \
  > "$WORK/gtest_records.log" 2>&1 || { cat "$WORK/gtest_records.log"; fail "the sample application's records against the servers"; }
grep -q '\[  PASSED  \] 3 tests' "$WORK/gtest_records.log" || { cat "$WORK/gtest_records.log"; fail "expected 3 records tests to pass"; }
pass "the sample application keeps its records in PostgreSQL, and the standby refuses them"

# Status: who is what, and the lag.
"$LIFEBOAT" db status orders -o json > "$WORK/status.json" || fail "db status"
[ "$(jq -r .primary "$WORK/status.json")" = east ] || { cat "$WORK/status.json"; fail "status: primary"; }
[ "$(jq -r .regions.west.role "$WORK/status.json")" = standby ] || fail "status: west's role"
[ "$(jq -r .regions.west.upstream "$WORK/status.json")" = streaming ] || fail "status: west streams"
jq -e '.regions.west.lag_bytes | type == "number"' "$WORK/status.json" > /dev/null || fail "status: no lag in bytes"
"$LIFEBOAT" db status > "$WORK/status.txt" || fail "db status (table)"
grep -q "west.*standby.*streaming" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status table"; }

# Lag under writes: replay paused on west, 3 MB written on east.
psql_at "$P_EAST" "CREATE TABLE orders (id serial PRIMARY KEY, note text)"
psql_at "$P_WEST" "SELECT pg_wal_replay_pause()" > /dev/null
psql_at "$P_EAST" "INSERT INTO orders (note) SELECT repeat('x', 1000) FROM generate_series(1, 3000)"
deadline=$(( SECONDS + 20 ))
until lag=$("$LIFEBOAT" db status orders -o json | jq -r '.regions.west.lag_bytes') && [ "$lag" -gt 1000000 ]; do
  [ $SECONDS -lt $deadline ] || fail "the lag did not show the 3 MB written (last: $lag)"
  sleep 0.2
done
pass "lag under writes: $lag bytes behind with replay paused"
expect_exit 1 "$LIFEBOAT" db promote orders --region west
grep -q "over max_lag_on_failover (1MB)" <<<"$OUT" || { echo "$OUT"; fail "promotion over the lag limit was not refused"; }
[ "$(psql_at "$P_WEST" "SELECT pg_is_in_recovery()")" = t ] || fail "west was promoted anyway"
psql_at "$P_WEST" "SELECT pg_wal_replay_resume()" > /dev/null
pass "a promotion over max_lag_on_failover is refused and changes nothing"

# Planned switchover under a writer: every acknowledged row is on west.
pg_writer_start "$P_EAST" "$WORK/acked" w
sleep 1
"$LIFEBOAT" db promote orders --region west --planned -o json > "$WORK/planned.json" 2> "$WORK/planned.err" \
  || { cat "$WORK/planned.json" "$WORK/planned.err"; fail "planned switchover"; }
sleep 0.5; pg_writer_stop
acked=$(wc -l < "$WORK/acked")
[ "$acked" -gt 0 ] || fail "the writer had no row acknowledged"
missing=$(pg_missing "$P_WEST" "$WORK/acked")
[ "$missing" = 0 ] || fail "$missing of $acked acknowledged rows are missing on west after a planned switchover"
[ "$(jq -r .fenced "$WORK/planned.json")" = true ] || fail "east was not fenced"
[ "$(psql_at "$P_WEST" "SELECT pg_is_in_recovery()")" = f ] || fail "west is not the primary"
pass "planned switchover: west is primary, all $acked acknowledged rows are there ($(jq -r .seconds "$WORK/planned.json") s)"
expect_exit 1 psql_at "$P_EAST" "INSERT INTO orders (note) VALUES ('after-fence')"
grep -q "read-only" <<<"$OUT" || { echo "$OUT"; fail "the fenced east took a write"; }
"$LIFEBOAT" db status orders -o json > "$WORK/status2.json"
[ "$(jq -r .regions.east.role "$WORK/status2.json")" = "fenced primary" ] || { cat "$WORK/status2.json"; fail "east is not shown fenced"; }
pass "the fenced old primary refuses writes"

# The old primary follows the new one.
"$LIFEBOAT" db rewind orders --region east > "$WORK/rewind.out" 2>&1 || { cat "$WORK/rewind.out"; fail "rewind east"; }
grep -q "now a standby of west, streaming" "$WORK/rewind.out" || { cat "$WORK/rewind.out"; fail "rewind said"; }
[ "$(psql_at "$P_EAST" "SELECT pg_is_in_recovery()")" = t ] || fail "east is not a standby"
[ "$(psql_at "$P_EAST" "SELECT current_setting('port')")" = "$P_EAST" ] || fail "east lost its own port"
pass "east rejoined as west's standby: $(cat "$WORK/rewind.out" | tail -1)"

# Unplanned: west dies; east is promoted (forced: west cannot say the lag).
psql_at "$P_WEST" "INSERT INTO orders (note) VALUES ('before-outage')"
deadline=$(( SECONDS + 20 ))
until [ "$(psql_at "$P_EAST" "SELECT count(*) FROM orders WHERE note = 'before-outage'")" = 1 ]; do
  [ $SECONDS -lt $deadline ] || fail "east never received the row before the outage"
  sleep 0.1
done
pg_kill west
expect_exit 1 "$LIFEBOAT" db promote orders --region east
grep -q "lag behind it is unknown" <<<"$OUT" || { echo "$OUT"; fail "an unknown lag was not refused"; }
"$LIFEBOAT" db promote orders --region east --force > "$WORK/unplanned.out" 2>&1 || { cat "$WORK/unplanned.out"; fail "forced promotion"; }
[ "$(psql_at "$P_EAST" "SELECT pg_is_in_recovery()")" = f ] || fail "east is not the primary"
pass "unplanned failover: east promoted with west down"

# West comes back as a primary and takes a write east never sees (what a
# fence prevents); fenced, then rewound: the diverged write is gone.
pg_start west
psql_at "$P_WEST" "INSERT INTO orders (note) VALUES ('diverged')"
psql_at "$P_EAST" "INSERT INTO orders (note) VALUES ('after-failover')"
expect_exit 1 "$LIFEBOAT" db rewind orders --region west
grep -q "both accept writes" <<<"$OUT" || { echo "$OUT"; fail "rewind with two writable primaries was not refused"; }
"$LIFEBOAT" db status orders -o json > "$WORK/split.json" || true
jq -r .problem "$WORK/split.json" | grep -q "both accept writes" || { cat "$WORK/split.json"; fail "status did not flag two writable primaries"; }
"$LIFEBOAT" db fence orders --region west > "$WORK/fence.out" || fail "fence west"
"$LIFEBOAT" db rewind orders --region west > "$WORK/rewind2.out" 2>&1 || { cat "$WORK/rewind2.out"; fail "rewind west"; }
grep -q "^orders in west: rewound; now a standby of east" "$WORK/rewind2.out" || { cat "$WORK/rewind2.out"; fail "rewind west said"; }
deadline=$(( SECONDS + 20 ))
until [ "$(psql_at "$P_WEST" "SELECT count(*) FROM orders WHERE note = 'after-failover'")" = 1 ]; do
  [ $SECONDS -lt $deadline ] || fail "west does not follow east after its rewind"
  sleep 0.1
done
[ "$(psql_at "$P_WEST" "SELECT count(*) FROM orders WHERE note = 'diverged'")" = 0 ] || fail "the diverged write survived the rewind"
[ "$(psql_at "$P_WEST" "SELECT count(*) FROM orders WHERE note = 'before-outage'")" = 1 ] || fail "a row from before the outage is gone"
"$LIFEBOAT" db status orders -o json > "$WORK/status3.json"
[ "$(jq -r .primary "$WORK/status3.json")" = east ] || { cat "$WORK/status3.json"; fail "after the rewind: one primary, east"; }
pass "the diverged old primary was rewound and follows east"

# Bad input: an unknown database and region are named.
expect_exit 2 "$LIFEBOAT" db status nope
grep -q "no database 'nope' (it has: orders)" <<<"$OUT" || { echo "$OUT"; fail "unknown database"; }
expect_exit 2 "$LIFEBOAT" db promote orders --region mars
grep -q "no instance in region 'mars'" <<<"$OUT" || { echo "$OUT"; fail "unknown region"; }
pass "bad input is named"
