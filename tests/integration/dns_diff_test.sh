#!/usr/bin/env bash
# Differential test: the same zone served by lifeboat and by NSD (the zone
# file is `lifeboat dns zone`'s), one corpus of queries sent to both
# (tests/integration/dns_diff.py: every type, case, EDNS variant, TCP,
# malformed headers, CNAME chains and loops, empty non-terminals, a large
# RRset, ANY, TSIG, other opcodes), the answers compared section by section.
# A difference fails the test unless docs/format/dns.md lists it as a choice.
# Then dnsviz probes lifeboat's zone (as its only authoritative server) and
# grok must report no error and no warning.
source "$(dirname "$0")/lib.sh" "$1"
command -v nsd >/dev/null || fail "nsd is missing (scripts/deps.sh installs it)"
/usr/bin/python3 -c 'import dns.message' || fail "python3-dnspython is missing (scripts/deps.sh installs it)"
HERE=$(cd "$(dirname "$0")" && pwd)

PORT_EAST=$(free_port); PORT_WEST=$(free_port)
many=$(for i in $(seq 10 79); do printf '"%s",' "$i"; done)
big=$(for i in $(seq 100 179); do printf '"value-%s-abcdefgh",' "$i"; done)
cat > "$WORK/plan.yaml" <<PLAN
name: dnsdiff
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west: { role: standby, agent: 127.0.0.1:$PORT_WEST }
endpoints:
  web-east: { region: east, address: 192.0.2.1:80 }
  web-west: { region: west, address: 192.0.2.2:80 }
  v6-east: { region: east, address: "[2001:db8::1]:80" }
  v6-west: { region: west, address: "[2001:db8::2]:80" }
dns:
  zone: example.com.
  listen: [127.0.0.1:53]
  ns: [ns1, ns2]
  soa: { minimum: 30s, ttl: 1h }
  records:
    - { name: ns1, type: A, value: 192.0.2.53 }
    - { name: ns2, type: AAAA, value: "2001:db8::53" }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 20s }
    - { name: shop, type: AAAA, policy: failover, primary: v6-east, secondary: v6-west }
    - { name: all, type: A, policy: multivalue, targets: [web-east, web-west] }
    - { name: www, type: CNAME, value: shop }
    - { name: chain, type: CNAME, value: www }
    - { name: ext, type: CNAME, value: other.example.net. }
    - { name: gone, type: CNAME, value: nothing-here }
    - { name: loop1, type: CNAME, value: loop2 }
    - { name: loop2, type: CNAME, value: loop1 }
    - { name: a.b.deep, type: A, value: 192.0.2.9 }
    - { name: "@", type: MX, value: "10 mail.example.com." }
    - { name: "@", type: TXT, value: ["v=spf1 -all", "say \"hi\""] }
    - { name: "@", type: CAA, value: '0 issue "letsencrypt.org"' }
    - { name: txt, type: TXT, value: "hello world" }
    - { name: many, type: TXT, value: [${many%,}] }
    - { name: big, type: TXT, value: [${big%,}] }
    - { name: _sip._tcp, type: SRV, value: "10 5 5060 sip.example.com." }
PLAN

# NSD, from the zone lifeboat exports, on loopback, unprivileged paths.
"$LIFEBOAT" dns zone --plan "$WORK/plan.yaml" > "$WORK/example.com.zone"
nsd-checkzone example.com "$WORK/example.com.zone" || fail "nsd-checkzone rejects lifeboat's zone file"
start_nsd() {
  NSD_PORT=$(free_port)
  cat > "$WORK/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1
  port: $NSD_PORT
  username: ""
  chroot: ""
  zonesdir: "$WORK"
  pidfile: "$WORK/nsd.pid"
  database: ""
  xfrdfile: "$WORK/xfrd.state"
  zonelistfile: "$WORK/zone.list"
  logfile: "$WORK/nsd.log"
  server-count: 1
  hide-version: yes
  hide-identity: yes
  minimal-responses: yes
  refuse-any: no
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: "example.com.zone"
CONF
  nsd -d -c "$WORK/nsd.conf" > "$WORK/nsd.out" 2>&1 &
  NSD_PID=$!
  PIDS+=("$NSD_PID")
  wait_listening "$NSD_PID" "$NSD_PORT"
}
for _ in 1 2 3; do start_nsd && break; kill "$NSD_PID" 2>/dev/null || true; done
[ "$(listener_pid "$NSD_PORT")" = "$NSD_PID" ] || fail "nsd did not start: $(cat "$WORK/nsd.out" "$WORK/nsd.log" 2>/dev/null)"

start_lifeboat() {
  LB_PORT=$(free_port)
  "$LIFEBOAT" --log-format json dns serve --plan "$WORK/plan.yaml" --listen "127.0.0.1:$LB_PORT" --workers 1 \
    > "$WORK/lifeboat.log" 2>&1 &
  LB_PID=$!
  PIDS+=("$LB_PID")
  wait_listening "$LB_PID" "$LB_PORT"
}
for _ in 1 2 3; do start_lifeboat && break; kill "$LB_PID" 2>/dev/null || true; done
[ "$(listener_pid "$LB_PORT")" = "$LB_PID" ] || fail "lifeboat dns serve did not start: $(cat "$WORK/lifeboat.log")"

/usr/bin/python3 "$HERE/dns_diff.py" "$LB_PORT" "$NSD_PORT" example.com. | tee "$WORK/diff.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "lifeboat and NSD answer differently (above); fix it or document the choice in docs/format/dns.md"
pass "lifeboat answers as NSD does, but for the documented choices: $(head -1 "$WORK/diff.txt")"

command -v dnsviz >/dev/null || fail "dnsviz is missing (scripts/deps.sh installs it)"
timeout 120 dnsviz probe -A -a example.com. -x "example.com+:127.0.0.1:$LB_PORT" example.com \
 > "$WORK/probe.json" 2> "$WORK/probe.err" || fail "dnsviz probe: $(tail -5 "$WORK/probe.err")"
timeout 120 dnsviz grok < "$WORK/probe.json" > "$WORK/grok.json" 2> "$WORK/grok.err" || fail "dnsviz grok: $(tail -5 "$WORK/grok.err")"
/usr/bin/python3 - "$WORK/grok.json" <<'PY' || fail "dnsviz found problems (above)"
import json, sys
found = []
def walk(x, path):
    if isinstance(x, dict):
        for k, v in x.items():
            if k in ("errors", "warnings"):
                found.extend((k, path, e.get("code"), e.get("description")) for e in v)
            walk(v, path + "/" + str(k))
    elif isinstance(x, list):
        for v in x:
            walk(v, path)
doc = json.load(open(sys.argv[1]))
if "example.com." not in doc:
    sys.exit("dnsviz analysed nothing: " + ", ".join(doc))
walk(doc, "")
for f in found:
    print(*f)
sys.exit(1 if found else 0)
PY
pass "dnsviz probe and grok: no error, no warning"
