#!/usr/bin/env bash
# The authoritative DNS of a running agent, checked with dig: RFC behaviour
# over UDP and TCP, failover when the primary endpoint dies and back after it
# returns, routing controls (token, safety rule, survival across a restart).
source "$(dirname "$0")/lib.sh" "$1"
command -v dig >/dev/null || fail "dig is missing (scripts/deps.sh installs bind9-dnsutils)"

# Two web endpoints: lifeboat agents of tiny plans, answering /healthz.
web_endpoint() {  # NAME HOST PORT
  cat > "$WORK/$1.yaml" <<PLAN
name: $1
pattern: backup-restore
regions: { only: { role: primary, agent: $2:$3 } }
backup: { locations: { local: { type: filesystem, path: /tmp } } }
PLAN
  "$LIFEBOAT" agent --plan "$WORK/$1.yaml" --region only --data-dir "$WORK/data/$1" >>"$WORK/$1.log" 2>&1 &
  LAST_PID=$!; PIDS+=("$LAST_PID")
  wait_http "http://$2:$3/healthz"
}
WEB_A_PORT=$(free_port); WEB_B_PORT=$(free_port)
web_endpoint web-a 127.0.0.1 "$WEB_A_PORT"; WEB_A=$LAST_PID
web_endpoint web-b 127.0.0.2 "$WEB_B_PORT"

PORT_EAST=$(free_port); PORT_WEST=$(free_port); DNS=$(free_port); DNS_WEST=$(free_port)
big=$(for i in $(seq 1 30); do printf '"%s%02d",' "$(printf 'x%.0s' $(seq 1 60))" "$i"; done)
cat > "$WORK/plan.yaml" <<PLAN
name: dnstest
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west: { role: standby, agent: 127.0.0.1:$PORT_WEST }
checks:
  web: { type: http, path: /healthz, expect_body: ok, interval: 100ms, timeout: 50ms, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$WEB_A_PORT, check: web }
  web-west: { region: west, address: 127.0.0.2:$WEB_B_PORT, check: web }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:$DNS]
  ns: [ns1]
  soa: { minimum: 30s, ttl: 1h }
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 5s }
    - { name: www, type: CNAME, value: shop }
    - { name: ext, type: CNAME, value: other.example.net. }
    - { name: a.b.deep, type: TXT, value: deep }
    - { name: big, type: TXT, value: [${big%,}] }
    - { name: all, type: A, policy: multivalue, targets: [web-east, web-west] }
PLAN
export LIFEBOAT_TOKEN=s3cret
start_agent east; EAST=$LAST_PID
"$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region west --data-dir "$WORK/data/west" \
  --dns-listen "127.0.0.1:$DNS_WEST" >>"$WORK/west.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$PORT_EAST/healthz"; wait_http "http://127.0.0.1:$PORT_WEST/healthz"

D=(dig @127.0.0.1 -p "$DNS" +time=2 +tries=1)
q() { "${D[@]}" "$@" 2>&1; }
expect() {  # DESCRIPTION PATTERN DIG-ARGS...
  local what=$1 pattern=$2; shift 2
  local out; out=$(q "$@")
  grep -qE "$pattern" <<<"$out" || { echo "$out" >&2; fail "$what: no /$pattern/ in dig $*"; }
}

# Answers.
expect "failover answers the primary" '^shop\.example\.com\.\s+5\s+IN\s+A\s+127\.0\.0\.1$' shop.example.com +noall +answer
expect "authoritative" 'flags: qr aa' shop.example.com
expect "over TCP too" '^shop\.example\.com\.\s+5\s+IN\s+A\s+127\.0\.0\.1$' shop.example.com +tcp +noall +answer
expect "NXDOMAIN" 'status: NXDOMAIN' nope.example.com
expect "NXDOMAIN carries the SOA with the negative TTL" '^example\.com\.\s+30\s+IN\s+SOA' nope.example.com +noall +authority
expect "NODATA" 'status: NOERROR.*' shop.example.com AAAA
expect "NODATA carries the SOA" '^example\.com\.\s+30\s+IN\s+SOA' shop.example.com AAAA +noall +authority
[ -z "$(q shop.example.com AAAA +short)" ] || fail "NODATA has an answer"
expect "empty non-terminal is NODATA" 'status: NOERROR' deep.example.com
expect "empty non-terminal is NODATA" 'ANSWER: 0, AUTHORITY: 1' b.deep.example.com
expect "CNAME followed in the zone" '^shop\.example\.com\.\s+5\s+IN\s+A\s+127\.0\.0\.1$' www.example.com +noall +answer
expect "CNAME out of the zone is not chased" 'ANSWER: 1,' ext.example.com
expect "no recursion: REFUSED outside the zone" 'status: REFUSED' example.org
q example.org | grep -q 'flags: qr aa' && fail "REFUSED must not set AA"
expect "case kept in the question" '^;ShOp\.ExAmPlE\.cOm\.\s+IN\s+A' ShOp.ExAmPlE.cOm +noall +question
expect "case kept in the answer" '^ShOp\.ExAmPlE\.cOm\.\s+5\s+IN\s+A' ShOp.ExAmPlE.cOm +noall +answer
expect "EDNS echoed and capped at 1232" 'udp: 1232' shop.example.com +bufsize=4096
expect "no OPT when none was sent" 'ADDITIONAL: 0' shop.example.com +noedns
expect "BADVERS for EDNS version 1" 'status: BADVERS' shop.example.com +edns=1 +noednsnegotiation
expect "NOTIMP for other opcodes" 'status: NOTIMP' shop.example.com +opcode=status
expect "ANY answered minimally" 'ANSWER: 1,' example.com ANY
expect "unknown type is NODATA" 'status: NOERROR.*' example.com TYPE99
expect "AXFR refused" 'REFUSED|Transfer failed' example.com AXFR
expect "TC when it does not fit UDP" 'flags: qr aa tc' big.example.com TXT +ignore +noedns
expect "TCP gets it all" 'ANSWER: 30,' big.example.com TXT +tcp
expect "dig retries over TCP after TC" 'ANSWER: 30,' big.example.com TXT
expect "multivalue answers every healthy target" 'ANSWER: 2,' all.example.com
out=$("${D[@]}" +tcp +keepopen shop.example.com nope.example.com www.example.com 2>&1)
[ "$(grep -c 'status: ' <<<"$out")" -eq 3 ] || { echo "$out"; fail "pipelined TCP queries"; }
pass "RFC behaviour over UDP and TCP"

# Malformed packets: FORMERR or silence, and the server keeps answering.
printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01' > /dev/udp/127.0.0.1/$DNS
printf 'garbage' > /dev/udp/127.0.0.1/$DNS
head -c 300 /dev/urandom > /dev/udp/127.0.0.1/$DNS
expect "still answering after malformed packets" 'status: NOERROR' shop.example.com
pass "malformed packets do not hurt"

# Failover: the primary endpoint dies; the answer moves within interval x fall plus slack.
"$LIFEBOAT" check run web-east --plan "$WORK/plan.yaml" >/dev/null || fail "check run: web-east should be healthy"
kill "$WEB_A"; wait "$WEB_A" 2>/dev/null || true
start=$(date +%s%N)
until [ "$(q shop.example.com +short)" = 127.0.0.2 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ] || fail "no failover within 5s"
  sleep 0.02
done
echo "failover observed after $(( ($(date +%s%N) - start) / 1000000 )) ms (interval 100ms x fall 3)"
expect_exit 1 "$LIFEBOAT" check run web-east --plan "$WORK/plan.yaml"
grep -Eq "web-east .* unhealthy +refused" <<<"$OUT" || fail "check run reason: $OUT"
expect_exit 1 "$LIFEBOAT" check run web-east --plan "$WORK/plan.yaml" -o json
jq -e '.[0].healthy == false and .[0].reason == "refused" and (.[0].latency_seconds | type) == "number"' <<<"$OUT" >/dev/null ||
  fail "check run -o json: $OUT"
web_endpoint web-a 127.0.0.1 "$WEB_A_PORT"
until [ "$(q shop.example.com +short)" = 127.0.0.1 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 10000 ] || fail "primary did not come back"
  sleep 0.02
done
grep -q '"endpoint web-east is unhealthy' "$WORK/east.log" || fail "transition not logged"
# A log system filters on fields: the endpoint, at the level --log-level names.
grep '"endpoint web-east is unhealthy' "$WORK/east.log" | head -1 | jq -e '.level == "warn" and .endpoint == "web-east" and .region == "east"' >/dev/null ||
  fail "the unhealthy line lacks its fields or is not a warning: $(grep -m1 'web-east is unhealthy' "$WORK/east.log")"
pass "failover to the standby and back"

# Routing controls.
expect_exit 2 env -u LIFEBOAT_TOKEN "$LIFEBOAT" traffic off east --plan "$WORK/plan.yaml"
expect_exit 1 "$LIFEBOAT" traffic off east --plan "$WORK/plan.yaml" --token wrong
grep -q "401" <<<"$OUT" || fail "wrong token: $OUT"
# Bad input exits 2 (it exited 1), before any agent is asked, with the closest name.
expect_exit 2 "$LIFEBOAT" traffic off eats --plan "$WORK/plan.yaml"
echo "$OUT" | grep -q "did you mean 'east'" || fail "no suggestion for a misspelt region: $OUT"
expect_exit 0 "$LIFEBOAT" traffic off east --plan "$WORK/plan.yaml"
[ "$(q shop.example.com +short)" = 127.0.0.2 ] || fail "east off: want the secondary"
[ "$(dig @127.0.0.1 -p "$DNS_WEST" shop.example.com +short)" = 127.0.0.2 ] || fail "west agent did not get the change"
expect_exit 1 "$LIFEBOAT" traffic off west --plan "$WORK/plan.yaml"
grep -q "safety rule" <<<"$OUT" || fail "safety rule message: $OUT"
"$LIFEBOAT" traffic show --plan "$WORK/plan.yaml" > "$WORK/show.txt"
grep -qE '^east +off ' "$WORK/show.txt" || { cat "$WORK/show.txt"; fail "traffic show"; }
# Both agents applied the change; each records its own time: that is agreement.
! grep -q "disagree" "$WORK/show.txt" || { cat "$WORK/show.txt"; fail "traffic show warns of a disagreement after a change both agents applied"; }
pass "routing controls: token, switch, safety rule"

# A restart keeps the routing controls.
kill "$EAST"; wait "$EAST" 2>/dev/null || true
start_agent east; EAST=$LAST_PID
wait_http "http://127.0.0.1:$PORT_EAST/healthz"
sleep 0.3
[ "$(q shop.example.com +short)" = 127.0.0.2 ] || fail "east forgot its routing control across a restart"
expect_exit 0 "$LIFEBOAT" traffic on east --plan "$WORK/plan.yaml"
[ "$(q shop.example.com +short)" = 127.0.0.1 ] || fail "east on: want the primary"
pass "routing controls survive a restart"

# The agents share one state store (the plan's embedded default, next to their
# data dirs): a switch set through the west agent alone reaches east's DNS
# answers through the store's watch, with no call to east.
[ -f "$WORK/data/dnstest-state.db" ] || fail "the agents did not share $WORK/data/dnstest-state.db"
start=$(date +%s%N)
curl -sf -X PUT -H "Authorization: Bearer $LIFEBOAT_TOKEN" -d '{"on": false}' \
  "http://127.0.0.1:$PORT_WEST/v1/routing-controls/east" >/dev/null || fail "PUT to west"
until [ "$(q shop.example.com +short)" = 127.0.0.2 ]; do
  [ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ] || fail "east's DNS never saw the switch set through west"
  sleep 0.02
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
curl -sf "http://127.0.0.1:$PORT_EAST/v1/routing-controls" | jq -e '.regions.east.on == false' >/dev/null || fail "east's status"
expect_exit 0 "$LIFEBOAT" traffic on east --plan "$WORK/plan.yaml"
pass "a switch set through one agent reached the other's DNS answers in ${ms} ms (shared store)"

curl -sf "http://127.0.0.1:$PORT_EAST/metrics" > "$WORK/metrics.txt"
promtool check metrics < "$WORK/metrics.txt" || fail "promtool rejected /metrics"
grep -q '^lifeboat_dns_queries_total{transport="udp",type="A",rcode="NOERROR"}' "$WORK/metrics.txt" || fail "dns metrics"
grep -q '^lifeboat_health_healthy{endpoint="web-east",check="web"} 1' "$WORK/metrics.txt" || fail "health metrics"
grep -q '^lifeboat_routing_control_on{region="east"} 1' "$WORK/metrics.txt" || fail "routing metrics"
curl -sf "http://127.0.0.1:$PORT_EAST/v1/status" | jq -e '.services.traffic.health["web-east"].healthy and .services.traffic.dns.policy_records' >/dev/null || fail "status sections"
pass "metrics and status"
