#!/usr/bin/env bash
# lifeboat drill run region-outage with the sample application's records in
# PostgreSQL: two real PostgreSQL 15 servers (east primary, west built by
# `lifeboat db bootstrap`), sync mode, three agents on loopback started by the
# drill. East's agent, application and database server die together. Checked
# from outside the drill's own figures: every record the client saw
# acknowledged is in west's server (sync mode: zero loss), west's server was
# promoted, and afterwards the servers are as the drill found them (east the
# primary again, west its streaming standby), nothing left running.
source "$(dirname "$0")/lib.sh" "$1"
drill_setup
pg_setup
P_EAST=$(free_port); P_WEST=$(free_port)
pg_init east "$P_EAST"
pg_start east
drill_plan pgdrill automatic | sed '/^volumes:/,/^failover:/{/^failover:/!d}' > "$WORK/plan.yaml"
pg_database_yaml 16MB sync >> "$WORK/plan.yaml"
"$LIFEBOAT" plan validate "$WORK/plan.yaml" > /dev/null || { "$LIFEBOAT" plan validate "$WORK/plan.yaml"; fail "the plan does not validate"; }
"$LIFEBOAT" db bootstrap orders --region west --plan "$WORK/plan.yaml" > "$WORK/bootstrap.out" 2>&1 ||
  { cat "$WORK/bootstrap.out"; fail "bootstrap"; }
pass "east primary on $P_EAST, west its standby on $P_WEST"

# --- Refused before anything starts ---------------------------------------------
expect_exit 2 "$LIFEBOAT" drill run replication-partition --plan "$WORK/plan.yaml"
grep -q "database orders streams over PostgreSQL's own connection" <<<"$OUT" || fail "a partition drill of a database: $OUT"
expect_exit 2 "$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --database nope
grep -q "the plan has no database 'nope'" <<<"$OUT" || fail "an unknown database: $OUT"
drill_nothing_left
pass "a partition drill of a database and an unknown database are refused, nothing started"

# --- The drill -------------------------------------------------------------------
"$LIFEBOAT" drill run region-outage --plan "$WORK/plan.yaml" --data-dir "$WORK/run" --agents-dir "$WORK/data" \
  > "$WORK/drill.out" 2>&1 || { cat "$WORK/drill.out" >&2; fail "the drill failed"; }
grep -q "^PASS: within the plan's objectives" "$WORK/drill.out" || { cat "$WORK/drill.out" >&2; fail "no verdict line"; }
grep -q "agent, application and database server killed" "$WORK/drill.out" || { cat "$WORK/drill.out" >&2; fail "east's server was not killed"; }
R="$WORK/run/drill.json"
jq -e '.verdict == "pass" and .failover.primary == "west" and .failover.run_state == "done" and
       .replication.database == "orders" and .loss.missing == 0 and .two_primaries.writes == 0' "$R" >/dev/null ||
  { cat "$R" >&2; fail "the report does not show west promoted with nothing lost"; }

# The loss, recounted from the attempts and the table on east, the primary
# again after the move back (sync mode: every acknowledged row reached west
# before its commit returned).
psql_at "$P_EAST" "SELECT n FROM lifeboat_drill_records ORDER BY n" > "$WORK/rows"
missing=0; acked=0
while read -r seq; do
  acked=$((acked + 1))
  grep -qx "$seq" "$WORK/rows" || missing=$((missing + 1))
done < <(jq -r 'select(.acked) | .seq' "$WORK/run/attempts.jsonl")
# A database drill always moves back (the servers are left as found), so
# the attempts hold both phases.
reported=$(jq '.client.acknowledged + .failback.client.acknowledged' "$R")
[ "$acked" = "$reported" ] || fail "acknowledged: $acked in attempts.jsonl, $reported in the report's two phases"
jq -e '.failback.loss.missing == 0 and .failback.two_primaries.writes == 0' "$R" > /dev/null ||
  { jq .failback "$R" >&2; fail "the move back lost records or saw two primaries"; }
[ "$acked" -gt 50 ] || fail "only $acked records were acknowledged"
[ "$missing" = 0 ] || fail "$missing of $acked acknowledged records are not in the table"

# The servers as the drill found them.
[ "$(psql_at "$P_EAST" "SELECT pg_is_in_recovery()")" = f ] || fail "east's server is not the primary after the drill"
[ "$(psql_at "$P_WEST" "SELECT pg_is_in_recovery()")" = t ] || fail "west's server is not a standby after the drill"
[ "$(psql_at "$P_EAST" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] ||
  fail "west does not stream from east after the drill"
drill_nothing_left
pass "region-outage with PostgreSQL: RTO $(jq .rto_seconds "$R")s, $missing of $acked acknowledged records lost (recounted from the table); servers back as found"
