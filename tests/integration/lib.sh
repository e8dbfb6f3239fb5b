# Helpers for the integration tests: each test sources this, gets a scratch
# directory, free ports and agents that are stopped when it exits.
# Usage in a test:  source "$(dirname "$0")/lib.sh" "$LIFEBOAT"
set -euo pipefail

LIFEBOAT=${1:?usage: test.sh PATH_TO_LIFEBOAT}
LIFEBOAT=$(readlink -f "$LIFEBOAT")
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-it-XXXXXX")
PIDS=()
AFTER_CLEANUP=()  # commands a test adds, run once its processes have ended

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  for c in "${AFTER_CLEANUP[@]:-}"; do
    [ -n "$c" ] && "$c" || true
  done
  if [ $rc -eq 0 ] && [ -z "${LIFEBOAT_KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "scratch dir kept: $WORK" >&2; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# A port on 127.0.0.1 that nothing listens on now, for TCP or UDP, and that
# this test has not picked before (its picks come before its servers start:
# a proxy test once drew one port for a UDP echo server and a UDP listener).
# Picked below the kernel's ephemeral range (32768-60999 by default), so that
# no outgoing connection of any process can take it before the server binds
# it; only another test's pick can, which start_checked retries.
free_port() {
  local p lo
  lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 1 200); do
    p=$(( (RANDOM % (lo - 10000)) + 10000 ))
    grep -qx "$p" "$WORK/.ports" 2>/dev/null && continue
    if [ -z "$(ss -Htuln "sport = :$p" 2>/dev/null)" ]; then
      echo "$p" >> "$WORK/.ports"
      echo "$p"
      return
    fi
  done
  fail "no free port found"
}

# listener_pid PORT: the pid of the process listening on 127.0.0.1:PORT, or "".
listener_pid() {
  ss -Htlnp "sport = :$1" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1
}

# wait_listening PID PORT [SECONDS]: until PID itself listens on PORT. Fails
# at once when PID exits (a port taken meanwhile, say): returns 1.
wait_listening() {
  local pid=$1 port=$2 deadline=$(( SECONDS + ${3:-20} ))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(listener_pid "$port")" = "$pid" ] && return 0
    sleep 0.05
  done
  return 1
}

# Writes a three-region plan on free ports to $WORK/plan.yaml; sets PORT_EAST, PORT_WEST, PORT_WITNESS.
write_plan() {
  PORT_EAST=$(free_port); PORT_WEST=$(free_port); PORT_WITNESS=$(free_port)
  cat > "$WORK/plan.yaml" <<PLAN
name: it
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west:    { role: standby, agent: 127.0.0.1:$PORT_WEST }
  witness: { role: witness, agent: 127.0.0.1:$PORT_WITNESS }
PLAN
}

# start_agent REGION: starts it in the background (log in $WORK/REGION.log); sets LAST_PID.
start_agent() {
  local region=$1
  "$LIFEBOAT" --log-format json agent --plan "$WORK/plan.yaml" --region "$region" \
    --data-dir "$WORK/data/$region" >>"$WORK/$region.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# wait_output PID FILE PATTERN SECONDS: until FILE (PID's output) has a line
# matching PATTERN; fails with FILE when PID exits first or time runs out.
wait_output() {
  local pid=$1 file=$2 pattern=$3 deadline=$(( SECONDS + $4 ))
  until grep -q "$pattern" "$file"; do
    [ $SECONDS -lt $deadline ] || { cat "$file" >&2; fail "no '$pattern' from pid $pid within $4 s"; }
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; fail "pid $pid exited before '$pattern'"; }
    sleep 0.1
  done
}

# wait_http URL [SECONDS]: until it answers 200.
wait_http() {
  local url=$1 deadline=$(( SECONDS + ${2:-10} ))
  until curl -sf -o /dev/null --max-time 1 "$url"; do
    [ $SECONDS -lt $deadline ] || fail "$url did not answer within ${2:-10}s"
    sleep 0.05
  done
}

# chrome ARGS... URL: headless Chromium (a page as a person sees it), its
# log in $WORK/chrome.log; fails the test on a console error or a blocked
# load (a Content-Security-Policy refusal) in that log.
chrome() {
  command -v chromium >/dev/null || fail "chromium is missing (scripts/deps.sh installs it)"
  local rc=0
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$WORK/chrome" \
    --enable-logging=stderr --v=0 "$@" 2> "$WORK/chrome.log" || rc=$?
  [ $rc = 0 ] || { tail "$WORK/chrome.log" >&2; fail "chromium failed on $*"; }
  ! grep -E 'CONSOLE|Uncaught|Refused to' "$WORK/chrome.log" >&2 || fail "the page logged errors in the browser"
}

# has_metric URL REGEX: true when a line of URL's /metrics page matches REGEX.
# The page is read whole first: `curl | grep -q` fails under pipefail when
# grep exits at its match and curl then writes into the closed pipe.
has_metric() {
  local page
  page=$(curl -sf --max-time 2 "$1") || return 1
  grep -q -- "$2" <<<"$page"
}

# expect_exit CODE CMD...: runs CMD, checks its exit code, keeps its output in $OUT.
expect_exit() {
  local want=$1; shift
  set +e
  OUT=$("$@" 2>&1)
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || { echo "$OUT" >&2; fail "'$*' exited $got, want $want"; }
}

# start_etcd_cluster: three etcd members on loopback (Debian's etcd-server),
# data in $WORK/etcd-N; sets ETCD_ENDPOINTS (comma-separated client URLs) and
# ETCD_PIDS (the members' pids, in endpoint order). Short heartbeat and
# election timeouts, so that losing a member costs well under a second.
start_etcd_cluster() {
  local attempt i cluster token="it-$$-$RANDOM"
  for attempt in 1 2 3; do
    local cports=() pports=() pids=()
    cluster=""
    for i in 1 2 3; do
      cports+=("$(free_port)"); pports+=("$(free_port)")
      cluster+="${cluster:+,}m$i=http://127.0.0.1:${pports[$((i-1))]}"
    done
    for i in 1 2 3; do
      rm -rf "$WORK/etcd-$i"
      etcd --name "m$i" --data-dir "$WORK/etcd-$i" \
        --listen-client-urls "http://127.0.0.1:${cports[$((i-1))]}" \
        --advertise-client-urls "http://127.0.0.1:${cports[$((i-1))]}" \
        --listen-peer-urls "http://127.0.0.1:${pports[$((i-1))]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${pports[$((i-1))]}" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token-$attempt" \
        --heartbeat-interval 50 --election-timeout 500 --logger zap --log-level warn \
        > "$WORK/etcd-$i.log" 2>&1 &
      pids+=("$!"); PIDS+=("$!")
    done
    ETCD_ENDPOINTS="http://127.0.0.1:${cports[0]},http://127.0.0.1:${cports[1]},http://127.0.0.1:${cports[2]}"
    ETCD_PIDS=("${pids[@]}")
    local ok=1
    for i in 1 2 3; do wait_listening "${pids[$((i-1))]}" "${cports[$((i-1))]}" 20 || ok=0; done
    if [ $ok = 1 ]; then
      local deadline=$(( SECONDS + 20 ))
      until ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" endpoint health >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { ok=0; break; }
        sleep 0.1
      done
    fi
    [ $ok = 1 ] && return 0
    echo "etcd cluster did not come up (attempt $attempt); retrying on other ports" >&2
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  done
  tail -n 20 "$WORK"/etcd-*.log >&2
  fail "could not start a three-member etcd cluster"
}

# The drill tests' plan: east (primary) and west on 127.0.0.1 and .2 with
# the sample application on APP, a witness, failover DNS with a 1 s TTL, a
# volume replicated continuously. drill_setup picks the ports and makes the
# volumes and the key; drill_plan NAME MODE prints the plan.
drill_setup() {
  PORT_EAST=$(free_port); PORT_WEST=$(free_port); PORT_WITNESS=$(free_port); APP=$(free_port); REP=$(free_port)
  mkdir -p "$WORK/east-vol" "$WORK/west-vol"
  head -c 32 /dev/urandom > "$WORK/key"
}
drill_plan() {
  cat <<PLAN
name: $1
pattern: warm-standby
objectives: { rto: 10s, rpo: 2s }
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT_EAST }
  west:    { role: standby, agent: 127.0.0.2:$PORT_WEST }
  witness: { role: witness, agent: 127.0.0.3:$PORT_WITNESS }
checks:
  app: { type: http, path: /healthz, expect_body: ok, interval: 200ms, timeout: 150ms, fall: 3, rise: 2 }
endpoints:
  web-east: { region: east, address: 127.0.0.1:$APP, check: app }
  web-west: { region: west, address: 127.0.0.2:$APP, check: app }
routing_controls: { safety: { min_on: 1 } }
dns:
  zone: example.com.
  listen: [127.0.0.1:53]
  ns: [ns1]
  records:
    - { name: ns1, type: A, value: 127.0.0.53 }
    - { name: shop, type: A, policy: failover, primary: web-east, secondary: web-west, ttl: 1s }
volumes:
  data:
    path: { east: $WORK/east-vol, west: $WORK/west-vol }
    replication: { port: $REP, key_file: $WORK/key, coalesce: 50ms, verify_every: 0s }
failover:
  mode: $2
  grace: 500ms
  lease: 2s
PLAN
}
# Fails when a port of the drill plan is still served after a drill.
drill_nothing_left() {
  for p in "$PORT_EAST" "$PORT_WEST" "$PORT_WITNESS" "$APP"; do
    [ -z "$(listener_pid "$p")" ] || fail "port $p is still served by pid $(listener_pid "$p") after the drill"
  done
}

# PostgreSQL 15 servers for the database tests (Debian's postgresql-15),
# each in $PG_ROOT/NAME, listening on 127.0.0.1 only with its socket in
# $PG_ROOT/sock. PostgreSQL refuses to run as root: as root, the servers run
# as `nobody`. The user `lifeboat` (a superuser) logs in with the password in
# $PG_PASSWORD_FILE over TCP. pg_setup first; every server is stopped when
# the test exits.
PG_BIN=/usr/lib/postgresql/15/bin
pg_setup() {
  [ -x "$PG_BIN/initdb" ] || fail "PostgreSQL 15 is not installed (scripts/deps.sh installs postgresql-15)"
  PG_ROOT="$WORK/pg"
  PG_PASSWORD="pw-$RANDOM-it's"
  PG_PASSWORD_FILE="$WORK/pg.password"
  mkdir -p "$PG_ROOT/sock"
  printf '%s\n' "$PG_PASSWORD" > "$PG_PASSWORD_FILE"
  if [ "$(id -u)" = 0 ]; then
    PG_AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    chmod 711 "$WORK"
    chown -R nobody:nogroup "$PG_ROOT"
    chown nobody:nogroup "$PG_PASSWORD_FILE"
  else
    PG_AS=()
  fi
  chmod 600 "$PG_PASSWORD_FILE"
  AFTER_CLEANUP+=(pg_stop_all)
}
as_pg() { "${PG_AS[@]}" "$@"; }

# pg_init NAME PORT: a new primary, with checksums (pg_rewind needs them or wal_log_hints).
pg_init() {
  local dir="$PG_ROOT/$1"
  as_pg "$PG_BIN/initdb" -D "$dir" -U lifeboat --pwfile="$PG_PASSWORD_FILE" -k \
    --auth-local=trust --auth-host=scram-sha-256 > "$WORK/initdb-$1.log" 2>&1 \
    || { cat "$WORK/initdb-$1.log" >&2; fail "initdb $1"; }
  cat >> "$dir/postgresql.conf" <<CONF
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_ROOT/sock'
shared_buffers = 32MB
max_wal_size = 256MB
wal_keep_size = '512MB'
fsync = on
CONF
}

# pg_start NAME: starts the server in $PG_ROOT/NAME and waits for it.
pg_start() {
  as_pg "$PG_BIN/pg_ctl" start -D "$PG_ROOT/$1" -l "$PG_ROOT/$1.log" -w -t 60 > /dev/null \
    || { tail -20 "$PG_ROOT/$1.log" >&2; fail "start PostgreSQL in $1"; }
}

# pg_kill NAME: SIGKILL to the server's postmaster and every process it
# started (an outage), by their pids.
pg_kill() {
  local pid children port
  pid=$(head -1 "$PG_ROOT/$1/postmaster.pid" 2>/dev/null) || return 0
  port=$(sed -n 4p "$PG_ROOT/$1/postmaster.pid")
  children=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -KILL "$pid" $children 2>/dev/null || true
  local deadline=$(( SECONDS + 10 ))
  # Gone, or a zombie whose parent has not reaped it yet.
  while ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z' && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  # A zombie still answers kill -0, which the next postmaster takes for a
  # live one holding the data directory: its lock file goes with it.
  if ps -o stat= -p "$pid" 2>/dev/null | grep -q '^Z'; then
    rm -f "$PG_ROOT/$1/postmaster.pid" "$PG_ROOT/sock/.s.PGSQL.$port.lock"
  fi
}

pg_stop_all() {
  local d
  for d in "$PG_ROOT"/*/; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" stop -D "$d" -m immediate > /dev/null 2>&1 || true
  done
}

# pg_conn PORT: the connection string of the server on 127.0.0.1:PORT.
pg_conn() { echo "host=127.0.0.1 port=$1 user=lifeboat dbname=postgres connect_timeout=${PG_CONNECT_TIMEOUT:-2}"; }

# pg_database_yaml MAX_LAG [MODE]: a plan's `databases:` section, database
# orders on the servers east ($P_EAST) and west ($P_WEST); a MODE (sync)
# degrades when the standby is down.
pg_database_yaml() {
  cat <<YAML
databases:
  orders:
    engine: postgresql
    instances: { east: "$(pg_conn "$P_EAST")", west: "$(pg_conn "$P_WEST")" }
    data_dir: { east: $PG_ROOT/east, west: $PG_ROOT/west }
    password_file: $PG_PASSWORD_FILE
    max_lag_on_failover: $1
YAML
  if [ -n "${2:-}" ]; then printf '    mode: %s\n    when_standby_down: degrade\n' "$2"; fi
}

# psql_at PORT SQL: runs SQL as lifeboat on 127.0.0.1:PORT, unaligned, no headers.
psql_at() {
  PGPASSWORD="$PG_PASSWORD" psql -X -q -At -h 127.0.0.1 -p "$1" -U lifeboat -d postgres -v ON_ERROR_STOP=1 -c "$2"
}

# pg_writer_start PORT FILE PREFIX: inserts rows PREFIX1, PREFIX2, ... into
# table orders at PORT, one psql each, appending each acknowledged one to
# FILE, until pg_writer_stop. pg_missing PORT FILE: how many rows of FILE
# the server at PORT lacks.
pg_writer_start() {
  touch "$WORK/writing"; : > "$2"
  ( i=0; while [ -f "$WORK/writing" ]; do
      i=$((i+1))
      psql_at "$1" "INSERT INTO orders (note) VALUES ('$3$i')" > /dev/null 2>&1 && echo "$3$i" >> "$2"
    done ) &
  PIDS+=("$!"); PG_WRITER=$!
}
pg_writer_stop() { rm -f "$WORK/writing"; wait "$PG_WRITER" || true; }
pg_missing() {
  local note missing=0
  while read -r note; do
    [ "$(psql_at "$1" "SELECT count(*) FROM orders WHERE note = '$note'")" = 1 ] || missing=$((missing+1))
  done < "$2"
  echo "$missing"
}

# --- Kubernetes: the FAKE API server (tests/integration/fake_apiserver.py) ---
# fake_k8s_certs: in the current directory, a CA (ca.crt, ca.key), a server
# certificate for 127.0.0.1 (server.crt, .key) and a client one (client.crt,
# .key, CN lifeboat) it signed.
fake_k8s_certs() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 \
    -subj /CN=fake-ca 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
  local name subject ext
  for name in server client; do
    subject=/CN=lifeboat ext=
    [ "$name" = server ] && subject=/CN=127.0.0.1 ext=san.ext
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" -days 2 ${ext:+-extfile "$ext"} 2>/dev/null
  done
}
# start_fake NAME [ARGS...]: a fake API server on a free port (PORT[NAME], the
# caller's `declare -A PORT`), TLS with fake_k8s_certs' files, accepting the
# token token-NAME and client certificates of that CA; log in $WORK/fake-NAME.log.
start_fake() {
  local name=$1; shift
  PORT[$name]=$(free_port)
  /usr/bin/python3 "$LIB_DIR/fake_apiserver.py" --port "${PORT[$name]}" --cert server.crt \
    --key server.key --client-ca ca.crt --token "token-$name" "$@" > "$WORK/fake-$name.log" 2>&1 &
  PIDS+=("$!")
  wait_listening "$!" "${PORT[$name]}" 20 || { cat "$WORK/fake-$name.log" >&2; fail "the fake API server $name did not start"; }
}
