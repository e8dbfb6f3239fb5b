#!/usr/bin/env bash
# DNS benchmark, lifeboat beside NSD, Knot and gdnsd serving the same zone
# (throughput), and beside gdnsd and PowerDNS Lua records (failover reaction).
# Not a test: prints a Markdown report to stdout (bench/RESULTS.md keeps one).
#
# Usage: bench/dns.sh [SECONDS_PER_RUN=10] [RUNS=3]
# Each server runs on core 0 (taskset), dnsperf on core 1; three runs each,
# medians. Server CPU time is read from /proc for the server's whole process
# group, so "queries per server CPU-second" is comparable across servers
# whatever dnsperf itself can push.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
RUNS=${2:-3}

need=(dnsperf nsd knot gdnsd pdns-server pdns-backend-bind bind9-dnsutils)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target lifeboat >/dev/null
LB=$(readlink -f build/lifeboat)

W=$(mktemp -d /tmp/lifeboat-bench-dns-XXXXXX)
GROUPS_STARTED=()
cleanup() { for g in "${GROUPS_STARTED[@]:-}"; do [ -n "$g" ] && kill -- "-$g" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that EXIT's cleanup runs when interrupted
log() { echo "$*" >&2; }

# --- the zone, the same for everyone --------------------------------------------
cat > "$W/example.com.zone" <<'ZONE'
$ORIGIN example.com.
$TTL 30
@     3600 IN SOA ns1.example.com. hostmaster.example.com. 1 3600 900 1209600 30
@     3600 IN NS  ns1.example.com.
@     3600 IN NS  ns2.example.com.
ns1        IN A   127.0.0.53
ns2        IN A   127.0.0.54
shop       IN A   10.0.0.1
api        IN A   10.0.0.1
www        IN CNAME shop.example.com.
@          IN MX  10 mail.example.com.
mail       IN A   10.0.0.25
@          IN TXT "v=spf1 -all"
ZONE
# lifeboat serves shop as a failover record over two endpoints without checks
# (always healthy, so it answers the primary: the same data as the others).
cat > "$W/lifeboat.yaml" <<'PLAN'
name: bench
pattern: warm-standby
regions: { east: { role: primary, agent: 127.0.0.1:1 }, west: { role: standby, agent: 127.0.0.1:2 } }
endpoints:
  e1: { region: east, address: 10.0.0.1:80 }
  e2: { region: west, address: 10.0.0.2:80 }
dns:
  zone: example.com.
  ns: [ns1, ns2]
  soa: { minimum: 30s, ttl: 1h }
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: ns2, type: A, value: 127.0.0.54 }
    - { name: shop, type: A, policy: failover, primary: e1, secondary: e2 }
    - { name: api, type: A, policy: weighted, targets: [ { endpoint: e1, weight: 1 } ] }
    - { name: www, type: CNAME, value: shop }
    - { name: "@", type: MX, value: "10 mail" }
    - { name: mail, type: A, value: 10.0.0.25 }
    - { name: "@", type: TXT, value: "v=spf1 -all" }
PLAN
# A query mix: positive, CNAME, NXDOMAIN, NODATA, apex types.
for i in $(seq 1 50); do
  printf 'shop.example.com A\nwww.example.com A\napi.example.com A\nnope%d.example.com A\nshop.example.com AAAA\nexample.com MX\nexample.com SOA\nmail.example.com A\n' "$i"
done > "$W/queries.txt"

PORT=25300
next_port() { PORT=$((PORT + 1)); }  # not in $(...): a subshell would not advance PORT

# start NAME PORT CMD...: the server on core 0 in its own process group.
start() {
  local name=$1 port=$2; shift 2
  setsid taskset -c 0 "$@" >"$W/$name.log" 2>&1 &
  local pid=$!
  GROUPS_STARTED+=("$pid")
  for _ in $(seq 1 100); do
    if [ -n "$(dig @127.0.0.1 -p "$port" shop.example.com +short +time=1 +tries=1 2>/dev/null)" ]; then
      echo "$pid"; return
    fi
    sleep 0.1
  done
  log "$name did not start; its log:"; tail -20 "$W/$name.log" >&2; exit 1
}
stop() { kill -- "-$1" 2>/dev/null || true; sleep 0.5; }

# CPU seconds used by every process of group $1 so far.
cpu_seconds() {
  local tck; tck=$(getconf CLK_TCK)
  awk -v g="$1" -v t="$tck" '{ sub(/^[0-9]+ \(.*\) /, ""); if ($3 == g) s += $12 + $13 } END { printf "%.3f", s / t }' /proc/[0-9]*/stat 2>/dev/null
}

# dnsperf against PORT for the run length: "qps lost cpu".
measure() {
  local port=$1 group=$2
  local before after out
  before=$(cpu_seconds "$group")
  out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries.txt" -l "$SECONDS_PER_RUN" -c 4 -q 300 -t 2 2>&1)
  after=$(cpu_seconds "$group")
  local qps lost completed
  qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
  lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
  completed=$(awk '/Queries completed:/ {print $3}' <<<"$out")
  echo "$qps $lost $(awk -v a="$after" -v b="$before" 'BEGIN{printf "%.3f", a-b}') $completed"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A SERVER_CMD FO_CMD FO_PORT FO_SETTING
setup_servers() {
  local p
  next_port; p=$PORT; SERVER_PORT[lifeboat]=$p
  SERVER_CMD[lifeboat]="$LB --log-level warn dns serve --plan $W/lifeboat.yaml --listen 127.0.0.1:$p --workers 1"

  next_port; p=$PORT; SERVER_PORT[nsd]=$p
  mkdir -p "$W/nsd"
  cat > "$W/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$p
  server-count: 1
  username: ""
  zonesdir: "$W"
  pidfile: "$W/nsd/nsd.pid"
  xfrdfile: "$W/nsd/xfrd.state"
  zonelistfile: "$W/nsd/zone.list"
  database: ""
  verbosity: 0
  hide-version: yes
  rrl-ratelimit: 0            # NSD limits responses to 200/s per client by default
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: example.com.zone
CONF
  SERVER_CMD[nsd]="nsd -d -c $W/nsd/nsd.conf"

  next_port; p=$PORT; SERVER_PORT[knot]=$p
  mkdir -p "$W/knot"
  cat > "$W/knot/knot.conf" <<CONF
server:
  rundir: "$W/knot"
  listen: 127.0.0.1@$p
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: "$W/knot"
log:
  - target: stderr
    any: error
zone:
  - domain: example.com
    file: "$W/example.com.zone"
    storage: "$W/knot"
CONF
  SERVER_CMD[knot]="knotd -c $W/knot/knot.conf -s $W/knot/knot.sock"

  next_port; p=$PORT; SERVER_PORT[gdnsd]=$p
  mkdir -p "$W/gdnsd/zones"
  echo "options => { listen => [ 127.0.0.1 ], dns_port => $p, udp_threads => 1, tcp_threads => 1 }" > "$W/gdnsd/config"
  cp "$W/example.com.zone" "$W/gdnsd/zones/example.com"
  SERVER_CMD[gdnsd]="gdnsd -c $W/gdnsd start"
}
declare -A SERVER_PORT
setup_servers

if [ "${BENCH_SKIP_QPS:-0}" != 1 ]; then
echo "## DNS throughput: lifeboat beside NSD, Knot and gdnsd"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')). Server on core 0, dnsperf on core 1,"
echo "${SECONDS_PER_RUN}s per run, $RUNS runs, medians. Command: \`bench/dns.sh $SECONDS_PER_RUN $RUNS\`."
echo
echo "| server | version | QPS (median) | lost queries (all runs) | server CPU s per run | queries per server CPU-second (median) |"
echo "|---|---|---|---|---|---|"
for s in lifeboat nsd knot gdnsd; do
  port=${SERVER_PORT[$s]}
  # shellcheck disable=SC2086
  group=$(start "$s" "$port" ${SERVER_CMD[$s]})
  qps_list=(); eff_list=(); cpu_list=(); lost_total=0
  for r in $(seq 1 "$RUNS"); do
    read -r qps lost cpu completed <<<"$(measure "$port" "$group")"
    log "$s run $r: $qps qps, lost $lost, cpu ${cpu}s, completed $completed"
    qps_list+=("$qps"); cpu_list+=("$cpu"); lost_total=$((lost_total + lost))
    eff_list+=("$(awk -v c="$completed" -v t="$cpu" 'BEGIN{ if (t > 0) printf "%.0f", c/t; else print 0 }')")
  done
  stop "$group"
  case $s in
    lifeboat) ver=$("$LB" --version | awk '{print $2}') ;;
    nsd) ver=$(nsd -v 2>&1 | awk 'NR==1{print $3}') ;;
    knot) ver=$(knotd -V | awk '{print $NF}') ;;
    gdnsd) ver=$(gdnsd -c /nonexistent checkconf 2>&1 | grep -om1 'gdnsd version [0-9.]*' | awk '{print $3}'); ver=${ver:-3.8.1} ;;
  esac
  printf '| %s | %s | %.0f | %d | %s | %s |\n' "$s" "$ver" "$(printf '%s\n' "${qps_list[@]}" | median)" "$lost_total" \
    "$(printf '%s\n' "${cpu_list[@]}" | median)" "$(printf '%s\n' "${eff_list[@]}" | median)"
done
echo
fi

# --- failover reaction -------------------------------------------------------------
# A web endpoint for the health checks: a lifeboat agent's /healthz.
next_port; WEBPORT=$PORT
cat > "$W/web.yaml" <<PLAN
name: web
pattern: backup-restore
regions: { only: { role: primary, agent: 127.0.0.1:$WEBPORT } }
backup: { locations: { local: { type: filesystem, path: /tmp } } }
PLAN
web_up() {
  setsid "$LB" --log-level warn agent --plan "$W/web.yaml" --region only --data-dir "$W/web" >>"$W/web.log" 2>&1 &
  WEB=$!
  GROUPS_STARTED+=("$WEB")
  until curl -sf -o /dev/null "http://127.0.0.1:$WEBPORT/healthz"; do sleep 0.05; done
}
web_down() { kill -- "-$WEB" 2>/dev/null || true; wait "$WEB" 2>/dev/null || true; }
# The secondary's endpoint: the same port on 127.0.0.2, up for the whole run.
sed "s/127.0.0.1:$WEBPORT/127.0.0.2:$WEBPORT/; s/name: web/name: web2/" "$W/web.yaml" > "$W/web2.yaml"
setsid "$LB" --log-level warn agent --plan "$W/web2.yaml" --region only --data-dir "$W/web2" >>"$W/web2.log" 2>&1 &
GROUPS_STARTED+=("$!")
until curl -sf -o /dev/null "http://127.0.0.2:$WEBPORT/healthz"; do sleep 0.05; done

# reaction NAME PORT: kills the web endpoint, polls dig every 20 ms, prints ms until the answer moved.
reaction() {
  local port=$2 start now answer
  start=$(date +%s%N)
  web_down
  while :; do
    answer=$(dig @127.0.0.1 -p "$port" shop.example.com +short +time=1 +tries=1 2>/dev/null | head -1)
    now=$(date +%s%N)
    [ "$answer" = 127.0.0.2 ] && break
    [ $(( (now - start) / 1000000 )) -gt 60000 ] && { tail -5 "$W/$1-fo.log" >&2; echo "timeout"; return; }
    sleep 0.02
  done
  echo $(( (now - start) / 1000000 ))
}

# lifeboat: http check every 100ms, 3 failures.
next_port; p=$PORT
cat > "$W/failover.yaml" <<PLAN
name: fo
pattern: warm-standby
regions: { east: { role: primary, agent: 127.0.0.1:1 }, west: { role: standby, agent: 127.0.0.1:2 } }
checks: { web: { type: http, path: /healthz, interval: 100ms, timeout: 50ms, fall: 3, rise: 1 } }
endpoints:
  e1: { region: east, address: 127.0.0.1:$WEBPORT, check: web }
  e2: { region: west, address: 127.0.0.2:$WEBPORT, check: web }
dns:
  zone: example.com.
  ns: [ns1]
  records: [ { name: shop, type: A, policy: failover, primary: e1, secondary: e2, ttl: 1s } ]
PLAN
FO_CMD[lifeboat]="$LB --log-level info --log-format text dns serve --plan $W/failover.yaml --listen 127.0.0.1:$p --workers 1"; FO_PORT[lifeboat]=$p
FO_SETTING[lifeboat]="http check, interval 100ms, timeout 50ms, fall 3"

# gdnsd: simplefo with an http_status monitor at its fastest.
next_port; p=$PORT
mkdir -p "$W/gdfo/zones"
cat > "$W/gdfo/config" <<CONF
options => { listen => [ 127.0.0.1 ], dns_port => $p, udp_threads => 1, tcp_threads => 1 }
service_types => {
  web => { plugin => http_status, port => $WEBPORT, url_path => /healthz, interval => 2, timeout => 1, up_thresh => 1, ok_thresh => 1, down_thresh => 1 }
}
plugins => { simplefo => { shop => { service_types => web, primary => 127.0.0.1, secondary => 127.0.0.2 } } }
CONF
printf '$TTL 1\n@ 3600 SOA ns1 hostmaster 1 3600 900 1209600 30\n@ 3600 NS ns1\nns1 A 127.0.0.53\nshop 1 DYNA simplefo!shop\n' > "$W/gdfo/zones/example.com"
FO_CMD[gdnsd]="gdnsd -c $W/gdfo start"; FO_PORT[gdnsd]=$p
FO_SETTING[gdnsd]="simplefo, http_status interval 2s (its minimum), timeout 1s, down_thresh 1"

# PowerDNS: a LUA record with ifurlup, health checks every second.
next_port; p=$PORT
mkdir -p "$W/pdns"
printf '$TTL 1\n@ 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 3600 900 1209600 30\n@ 3600 IN NS ns1.example.com.\nns1 IN A 127.0.0.53\nshop 1 IN LUA A "ifurlup('"'"'http://127.0.0.1:%s/healthz'"'"', {{'"'"'127.0.0.1'"'"'}, {'"'"'127.0.0.2'"'"'}})"\n' "$WEBPORT" > "$W/pdns/example.com.zone"
printf 'zone "example.com" { type master; file "%s/pdns/example.com.zone"; };\n' "$W" > "$W/pdns/named.conf"
FO_CMD[pdns]="pdns_server --config-dir=$W/pdns --socket-dir=$W/pdns --daemon=no --guardian=no --disable-syslog --local-address=127.0.0.1 --local-port=$p --launch=bind --bind-config=$W/pdns/named.conf --enable-lua-records=yes --lua-health-checks-interval=1 --lua-health-checks-expire-delay=3600 --setuid= --setgid= --write-pid=no"
FO_PORT[pdns]=$p
FO_SETTING[pdns]="LUA ifurlup, lua-health-checks-interval 1s"

echo "## DNS failover reaction"
echo
echo "Time from killing the primary endpoint until dig (polling every 20 ms) answers the secondary; $RUNS runs, median."
echo
echo "| server | health check setting | reaction, median | runs (ms) |"
echo "|---|---|---|---|"
for s in lifeboat gdnsd pdns; do
  web_up
  # shellcheck disable=SC2086
  group=$(start "$s-fo" "${FO_PORT[$s]}" ${FO_CMD[$s]})
  runs=()
  for r in $(seq 1 "$RUNS"); do
    # wait until the primary is answered again (the checker saw it up)
    for _ in $(seq 1 300); do
      [ "$(dig @127.0.0.1 -p "${FO_PORT[$s]}" shop.example.com +short +time=1 +tries=1 2>/dev/null | head -1)" = 127.0.0.1 ] && break
      sleep 0.05
    done
    sleep 1.5  # let the checker settle on "up"
    ms=$(reaction "$s" "${FO_PORT[$s]}")
    log "$s failover run $r: $ms ms"
    runs+=("$ms")
    web_up
  done
  stop "$group"
  web_down
  printf '| %s | %s | %s ms | %s |\n' "$s" "${FO_SETTING[$s]}" "$(printf '%s\n' "${runs[@]}" | median)" "${runs[*]}"
done
