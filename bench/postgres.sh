#!/usr/bin/env bash
# PostgreSQL failover: lifeboat beside Patroni (Debian's patroni, with a local
# etcd) on two PostgreSQL 15 servers on loopback, in one run. Each run kills
# the primary's whole "region" (SIGKILL to the agent or Patroni and to the
# PostgreSQL server) while a client writes numbered rows through whichever
# server takes them, and measures:
#   - the time from the kill to the first row acknowledged by the other server;
#   - acknowledged rows missing on the new primary (both in synchronous mode);
#   - instants (20 ms apart) at which both servers would take a write.
# The old primary is then brought back as a standby (lifeboat db rewind;
# Patroni's own pg_rewind) and the next run kills the other side.
# Configurations: lifeboat with postgres checks every 1 s, fall 3, grace 1 s,
# a quorum of 2 of 3 regions (east, west, a witness); Patroni at its
# defaults (ttl 30, loop_wait 10, retry_timeout 10) and at its tightest
# documented settings (ttl 20, loop_wait 1, retry_timeout 3).
# Then planned switchovers (lifeboat failover --planned; patronictl
# switchover at the tightest settings), from the command to the first write
# on the new primary.
# Usage: bench/postgres.sh [RUNS] [RUNS_AT_PATRONI_DEFAULTS] [PLANNED_RUNS]   (default 5, 3 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_init postgres
RUNS=${1:-5}
DEFAULT_RUNS=${2:-3}
PLANNED_RUNS=${3:-3}
PG_BIN=/usr/lib/postgresql/15/bin
CLIENT="$(pwd)/bench/pg_client.py"
command -v patroni >/dev/null || { log "patroni is not installed (scripts/deps.sh installs it)"; exit 1; }
AS=()
if [ "$(id -u)" = 0 ]; then AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups); chmod 711 "$W"; fi
as_pg() { "${AS[@]}" "$@"; }
PW="$W/password"; echo "bench-pw-$RANDOM" > "$PW"
mkdir -p "$W/pg"
[ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$W/pg" "$PW"
chmod 600 "$PW"
now() { date +%s.%N; }

pg_kill_dir() {  # DATA_DIR: SIGKILL to its postmaster and children
  local pid children
  pid=$(head -1 "$1/postmaster.pid" 2>/dev/null) || return 0
  children=$(pgrep -P "$pid" || true)
  kill -KILL "$pid" $children 2>/dev/null || true
  while ps -o stat= -p "$pid" 2>/dev/null | grep -qv '^Z'; do sleep 0.05; done
  rm -f "$1/postmaster.pid"
}

# first_ack_after PORT T0 LOG: seconds from T0 to the first row PORT acknowledged after it
first_ack_after() {
  awk -v p="$1" -v t="$2" '$1 == "ack" && $3 == p && $4 > t { printf "%.3f\n", $4 - t; exit }' "$3"
}
wait_ack_after() {  # PORT T0 LOG
  local deadline=$(( SECONDS + 120 ))
  until [ -n "$(first_ack_after "$1" "$2" "$3")" ]; do
    [ $SECONDS -lt $deadline ] || { log "no write reached port $1 within 120 s"; return 1; }
    sleep 0.1
  done
}

# One run of the client around a kill: KILL_CMD, the surviving port. Prints "RTO LOST TWO_WRITABLE".
measure() {
  trap - EXIT  # it runs in $(...): the script's cleanup is not this subshell's to run
  local kill_cmd=$1 survivor=$2 ports=$3 runlog="$W/run-$RANDOM.log"
  rm -f "$W/stop"
  /usr/bin/python3 "$CLIENT" run --ports "$ports" --password-file "$PW" --log "$runlog" --stop-file "$W/stop" &
  local client=$!
  sleep 2
  local t0; t0=$(now)
  eval "$kill_cmd"
  wait_ack_after "$survivor" "$t0" "$runlog"
  sleep 1
  touch "$W/stop"; wait "$client" || true
  local rto lost two
  rto=$(first_ack_after "$survivor" "$t0" "$runlog")
  lost=$(/usr/bin/python3 "$CLIENT" lost --ports "$ports" --password-file "$PW" --log "$runlog" --primary-port "$survivor")
  two=$(grep -c '^two-writable' "$runlog" || true)
  echo "$rto $lost $two"
}

# ------------------------------------------------------------------ lifeboat
# measured_standby WITNESS_ADMIN REGION: ready for a run, as the views say:
# REGION's server is a standby and its agent has measured its lag.
measured_standby() {
  local deadline=$(( SECONDS + 60 ))
  until curl -sf "http://127.0.0.1:$1/v1/failover" | jq -e --arg s "$2" \
      '[.views[] | select(.observer == $s) | .databases[]? | select(.role == "standby" and .lag_bytes >= 0)] | length == 1' >/dev/null; do
    [ $SECONDS -lt $deadline ] || { log "lifeboat: $2 never became a measured standby"; return 1; }
    sleep 0.2
  done
}

lifeboat_bench() {
  local pe pw
  pe=$(free_port); pw=$(free_port)
  as_pg "$PG_BIN/initdb" -D "$W/pg/lb-east" -U lifeboat --pwfile="$PW" -k --auth-local=trust \
    --auth-host=scram-sha-256 > "$W/initdb.log" 2>&1
  printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nwal_keep_size = '1GB'\n" "$pe" "$W/pg" >> "$W/pg/lb-east/postgresql.conf"
  as_pg "$PG_BIN/pg_ctl" start -D "$W/pg/lb-east" -l "$W/pg/lb-east.log" -w > /dev/null
  local a_e a_w a_x; a_e=$(free_port); a_w=$(free_port); a_x=$(free_port)
  local conn="user=lifeboat dbname=postgres connect_timeout=1 host=127.0.0.1"
  cat > "$W/plan.yaml" <<PLAN
name: pgbench
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$a_e }
  west:    { role: standby, agent: 127.0.0.1:$a_w }
  witness: { role: witness, agent: 127.0.0.1:$a_x }
checks:
  db: { type: postgres, database: orders, interval: 1s, timeout: 500ms, fall: 3, rise: 1 }
endpoints:
  db-east: { region: east, address: 127.0.0.1:$pe, check: db }
  db-west: { region: west, address: 127.0.0.1:$pw, check: db }
databases:
  orders:
    engine: postgresql
    instances: { east: "$conn port=$pe", west: "$conn port=$pw" }
    mode: sync
    when_standby_down: degrade
    data_dir: { east: $W/pg/lb-east, west: $W/pg/lb-west }
    password_file: $PW
failover: { mode: automatic, quorum: 2, grace: 1s }
PLAN
  export LIFEBOAT_PLAN="$W/plan.yaml"
  "$LB" db bootstrap orders --region west > "$W/bootstrap.log" 2>&1
  PGPASSWORD=$(cat "$PW") psql -X -q -h 127.0.0.1 -p "$pe" -U lifeboat -d postgres -c "CREATE TABLE bench_rows (id bigint)"
  declare -gA AGENT PORT DIR
  PORT[east]=$pe; PORT[west]=$pw; DIR[east]=$W/pg/lb-east; DIR[west]=$W/pg/lb-west
  start_agent() {
    LIFEBOAT_TOKEN=bench "$LB" --log-format json agent --plan "$W/plan.yaml" --region "$1" --data-dir "$W/agents/$1" >> "$W/agent-$1.log" 2>&1 &
    AGENT[$1]=$!; PIDS+=("$!")
  }
  start_agent east; start_agent west; start_agent witness
  local primary=east standby=west
  for i in $(seq 1 "$RUNS"); do
    measured_standby "$a_x" "$standby" || return 1
    local r
    r=$(measure "kill -9 ${AGENT[$primary]}; pg_kill_dir ${DIR[$primary]}" "${PORT[$standby]}" "$pe,$pw")
    log "lifeboat run $i: $primary killed: $r (seconds to the first write on $standby, rows lost, two-writable instants)"
    echo "$r" >> "$W/lifeboat.txt"
    # The old primary comes back as the new one's standby.
    wait "${AGENT[$primary]}" 2>/dev/null || true
    "$LB" db rewind orders --region "$primary" > "$W/rewind-$i.log" 2>&1 || { cat "$W/rewind-$i.log" >&2; return 1; }
    start_agent "$primary"
    local t=$primary; primary=$standby; standby=$t
  done
  # Planned switchovers: from the command to the first write on the new primary.
  for i in $(seq 1 "$PLANNED_RUNS"); do
    measured_standby "$a_x" "$standby" || return 1
    local r
    r=$(measure "LIFEBOAT_TOKEN=bench $LB failover --to $standby --planned --yes > /dev/null" "${PORT[$standby]}" "$pe,$pw")
    log "lifeboat planned $i: $primary to $standby: $r"
    echo "$r" >> "$W/lifeboat-planned.txt"
    "$LB" db rewind orders --region "$primary" > "$W/rewind-p$i.log" 2>&1 || { cat "$W/rewind-p$i.log" >&2; return 1; }
    local t=$primary; primary=$standby; standby=$t
  done
  # Nothing of lifeboat's runs beside Patroni.
  for r in east west witness; do kill "${AGENT[$r]}" 2>/dev/null || true; wait "${AGENT[$r]}" 2>/dev/null || true; done
  for r in east west; do pg_kill_dir "${DIR[$r]}"; done
}

# ------------------------------------------------------------------- Patroni
ETCD=""
start_etcd() {
  local c p; c=$(free_port); p=$(free_port)
  etcd --name b --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "b=http://127.0.0.1:$p" --logger zap --log-level warn > "$W/etcd.log" 2>&1 &
  PIDS+=("$!")
  ETCD="127.0.0.1:$c"
  until ETCDCTL_API=3 etcdctl --endpoints "$ETCD" endpoint health > /dev/null 2>&1; do sleep 0.1; done
}

patroni_bench() {  # NAME TTL LOOP_WAIT RETRY_TIMEOUT RUNS
  local name=$1 ttl=$2 loop=$3 retry=$4 runs=$5
  declare -gA PAT PPORT PREST PDIR
  for n in n1 n2; do
    PPORT[$n]=$(free_port); PREST[$n]=$(free_port); PDIR[$n]="$W/pg/$name-$n"
    cat > "$W/$name-$n.yml" <<YML
scope: $name
name: $n
restapi: { listen: 127.0.0.1:${PREST[$n]}, connect_address: 127.0.0.1:${PREST[$n]} }
etcd3: { hosts: $ETCD }
bootstrap:
  dcs:
    ttl: $ttl
    loop_wait: $loop
    retry_timeout: $retry
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters: { wal_log_hints: "on", wal_keep_size: 1GB, unix_socket_directories: "$W/pg" }
  initdb: [ { encoding: UTF8 }, data-checksums ]
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:${PPORT[$n]}
  connect_address: 127.0.0.1:${PPORT[$n]}
  data_dir: ${PDIR[$n]}
  bin_dir: $PG_BIN
  pgpass: $W/pg/$name-$n.pgpass
  authentication:
    superuser: { username: lifeboat, password: "$(cat "$PW")" }
    replication: { username: replicator, password: rep-pw }
  parameters: { unix_socket_directories: "$W/pg" }
YML
    [ "$(id -u)" = 0 ] && chown nobody:nogroup "$W/$name-$n.yml"
  done
  start_patroni() {
    HOME="$W/pg" "${AS[@]}" patroni "$W/$name-$1.yml" >> "$W/$name-$1.log" 2>&1 &
    PAT[$1]=$!; PIDS+=("$!")
  }
  role_of() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PREST[$1]}/$2"; }
  sync_replica() {  # NODE: ready for a run: a replica that commits wait for
    local deadline=$(( SECONDS + 180 ))
    until [ "$(role_of "$1" replica)" = 200 ] && [ "$(role_of "$1" sync)" = 200 ]; do
      [ $SECONDS -lt $deadline ] || { log "Patroni $name: $1 never became a sync replica"; return 1; }
      sleep 0.2
    done
  }
  start_patroni n1
  until [ "$(role_of n1 primary)" = 200 ]; do sleep 0.2; done
  PGPASSWORD=$(cat "$PW") psql -X -q -h 127.0.0.1 -p "${PPORT[n1]}" -U lifeboat -d postgres -c "CREATE TABLE bench_rows (id bigint)"
  start_patroni n2
  local primary=n1 standby=n2
  for i in $(seq 1 "$runs"); do
    sync_replica "$standby" || return 1
    local r
    r=$(measure "kill -9 ${PAT[$primary]}; pg_kill_dir ${PDIR[$primary]}" "${PPORT[$standby]}" "${PPORT[n1]},${PPORT[n2]}")
    log "Patroni $name run $i: $primary killed: $r"
    echo "$r" >> "$W/patroni-$name.txt"
    wait "${PAT[$primary]}" 2>/dev/null || true
    start_patroni "$primary"  # rejoins as a replica, with pg_rewind
    local t=$primary; primary=$standby; standby=$t
  done
  for i in $(seq 1 "$PLANNED_RUNS"); do
    [ "$name" = tight ] || break
    sync_replica "$standby" || return 1
    local r
    r=$(measure "HOME=$W/pg ${AS[*]} patronictl -c $W/$name-n1.yml switchover --leader $primary --candidate $standby --force > /dev/null" \
      "${PPORT[$standby]}" "${PPORT[n1]},${PPORT[n2]}")
    log "Patroni $name planned $i: $primary to $standby: $r"
    echo "$r" >> "$W/patroni-planned.txt"
    local t=$primary; primary=$standby; standby=$t
  done
  for n in n1 n2; do
    kill "${PAT[$n]}" 2>/dev/null || true; wait "${PAT[$n]}" 2>/dev/null || true
    pg_kill_dir "${PDIR[$n]}"
  done
}

summary() {  # LABEL FILE
  local rtos lost two
  rtos=$(awk '{print $1}' "$2" | tr '\n' ' ')
  printf "| %s | %s s | %s | %s | %s |\n" "$1" "$(awk '{print $1}' "$2" | median)" "$rtos" \
    "$(awk '{s += $2} END {print s}' "$2")" "$(awk '{s += $3} END {print s}' "$2")"
}

lifeboat_bench
start_etcd
patroni_bench tight 20 1 3 "$RUNS"
patroni_bench defaults 30 10 10 "$DEFAULT_RUNS"

echo
echo "| configuration | kill to first write (median) | each run (s) | acknowledged rows lost | two-writable instants |"
echo "|---|---|---|---|---|"
summary "lifeboat (postgres check 1s x 3, grace 1s, quorum 2 of 3, sync)" "$W/lifeboat.txt"
summary "Patroni tightest (ttl 20, loop_wait 1, retry_timeout 3, synchronous_mode)" "$W/patroni-tight.txt"
summary "Patroni defaults (ttl 30, loop_wait 10, retry_timeout 10, synchronous_mode)" "$W/patroni-defaults.txt"
echo
echo "| planned switchover | command to first write (median) | each run (s) | acknowledged rows lost | two-writable instants |"
echo "|---|---|---|---|---|"
summary "lifeboat failover --planned" "$W/lifeboat-planned.txt"
summary "patronictl switchover (tightest settings)" "$W/patroni-planned.txt"
