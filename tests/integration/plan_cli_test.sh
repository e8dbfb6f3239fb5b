#!/usr/bin/env bash
# lifeboat plan validate/show as a user runs them: good plans pass, broken
# ones print every error with file:line:column and exit 2, any bytes are safe.
source "$(dirname "$0")/lib.sh" "$1"
cd "$(dirname "$0")/../.."

expect_exit 0 "$LIFEBOAT" plan validate examples/shop.yaml examples/local.yaml examples/drill.yaml
grep -q "examples/shop.yaml: ok" <<<"$OUT" || fail "no ok line: $OUT"
pass "examples validate"

expect_exit 2 "$LIFEBOAT" plan validate tests/plans/bad/unknown_keys.yaml
grep -q "unknown_keys.yaml:9:22: error: checks.web: unknown key 'intervl'" <<<"$OUT" || fail "missing positioned error: $OUT"
grep -q "did you mean 'interval'" <<<"$OUT" || fail "missing suggestion: $OUT"
[ "$(grep -c ': error: ' <<<"$OUT")" -eq 5 ] || fail "want all 5 errors at once: $OUT"
pass "broken plan: every error, positions, suggestions, exit 2"

expect_exit 2 "$LIFEBOAT" plan validate examples/shop.yaml tests/plans/bad/impossible.yaml
pass "one bad plan among good ones fails the run"

"$LIFEBOAT" plan validate -o json tests/plans/bad/dangling_refs.yaml > "$WORK/v.json" || true
[ "$(jq '.[0].valid' "$WORK/v.json")" = false ] || fail "json: valid should be false"
[ "$(jq '.[0].diagnostics[0].line' "$WORK/v.json")" = 8 ] || fail "json: first line should be 8"
pass "validate -o json"

"$LIFEBOAT" plan show -o json examples/shop.yaml > "$WORK/show.json"
[ "$(jq -r '.failover.quorum' "$WORK/show.json")" = 2 ] || fail "show: quorum"
[ "$(jq -r '.checks["tcp-db"].fall' "$WORK/show.json")" = 3 ] || fail "show: default fall not filled in"
"$LIFEBOAT" plan show examples/shop.yaml > "$WORK/shown.yaml"
expect_exit 0 "$LIFEBOAT" plan validate "$WORK/shown.yaml"
pass "plan show fills defaults and its YAML validates"

# Random and binary bytes: exit 2 with a message, never a crash.
for i in 1 2 3 4 5; do
  head -c 4096 /dev/urandom > "$WORK/random$i.yaml"
  expect_exit 2 "$LIFEBOAT" plan validate "$WORK/random$i.yaml"
done
expect_exit 2 "$LIFEBOAT" plan validate "$LIFEBOAT"
expect_exit 2 "$LIFEBOAT" plan validate /nonexistent/plan.yaml
grep -q "No such file" <<<"$OUT" || fail "missing file message: $OUT"
pass "random bytes, a binary and a missing file are clean errors"

expect_exit 2 "$LIFEBOAT" plan
expect_exit 2 "$LIFEBOAT" no-such-command
grep -q "unknown command 'no-such-command'" <<<"$OUT" || fail "an unknown command is not named: $OUT"
expect_exit 2 "$LIFEBOAT" --log-level warn stauts --plan x.yaml
grep -q "did you mean 'status'" <<<"$OUT" || fail "no suggestion for a typo: $OUT"
expect_exit 0 "$LIFEBOAT" plan validate --help
grep -q "Examples:" <<<"$OUT" || fail "help without examples"
# A group's help shows its own commands' examples, not the top level's.
expect_exit 0 "$LIFEBOAT" replicate --help
grep -q "lifeboat replicate promote" <<<"$OUT" || fail "replicate --help lacks its examples: $OUT"
! grep -q "lifeboat demo" <<<"$OUT" || fail "replicate --help shows the top level's examples"
expect_exit 0 "$LIFEBOAT" version
grep -Eq '^lifeboat [0-9]+\.[0-9]+\.[0-9]+ \(' <<<"$OUT" || fail "version: $OUT"
# LIFEBOAT_PLAN stands in for --plan.
LIFEBOAT_PLAN=/nonexistent/plan.yaml expect_exit 2 "$LIFEBOAT" status
grep -q "/nonexistent/plan.yaml" <<<"$OUT" || fail "LIFEBOAT_PLAN was not used: $OUT"
pass "usage errors exit 2 and name an unknown command with a suggestion; group --help has its examples; version; LIFEBOAT_PLAN"
