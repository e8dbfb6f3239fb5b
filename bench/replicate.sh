#!/usr/bin/env bash
# Replication benchmark: lifeboat beside rsync (-aH --delete, and -aH
# --delete --inplace, to an rsync daemon on 127.0.0.1) on the same ~2 GiB
# tree (bench/gen_tree.py) and its ~1 % changes, then on a database-like
# file (4 GiB, 10,000 random 8 KiB page writes), in one run. Not a test:
# prints a Markdown report to stdout (bench/RESULTS.md keeps one).
#
# Usage: bench/replicate.sh [RUNS=3] [SCALE=1] [DB_GIB=4]
# Per run: initial sync (rsync also with --fsync, which like lifeboat ends
# with the files on the disk); catch-up after a change made while nothing ran;
# continuous mode: time from the end of a second change until the target has
# converged (lifeboat's agents running; rsync: one run after the change);
# RPO of 100 single small writes (close -> visible at the target).
# Reports medians, bytes on the wire (both directions), CPU seconds of each
# side (lifeboat: source and target agents; rsync: client = sender, daemon =
# receiver) and peak RSS. Every run starts from fresh directories; the page
# cache is dropped before each initial sync and is warm (the files were just
# written) in the other phases, for every tool alike.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SCALE=${2:-1}
DB_GIB=${3:-4}

scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target lifeboat >/dev/null
LB=$(readlink -f build/lifeboat)
W=$(mktemp -d /tmp/lifeboat-bench-rep-XXXXXX)
PIDS=()
stop_rsyncd() { [ -f "$W/rsyncd.pid" ] && kill "$(cat "$W/rsyncd.pid")" 2>/dev/null || true; rm -f "$W/rsyncd.pid"; }
cleanup() {
  stop_rsyncd
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "$*" >&2; }
# Ports below the kernel's ephemeral range (32768-60999 here): an agent restarted
# between runs could otherwise find its port taken by an outgoing connection.
free_port() { local p; while :; do p=$(( (RANDOM % 20000) + 10000 )); [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }; done; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

SRC=$W/src; DLB=$W/dst-lifeboat; DRS=$W/dst-rsync; DRF=$W/dst-rsync-fsync; DRI=$W/dst-rsync-inplace
SRCDB=$W/dbsrc; DLBDB=$W/db-lifeboat; DRSDB=$W/db-rsync; DRIDB=$W/db-rsync-inplace; DRFDB=$W/db-rsync-fsync
P_EAST=$(free_port); P_WEST=$(free_port); P_REP=$(free_port); P_RSYNC=$(free_port); P_REPDB=$(free_port)
openssl rand -hex 32 > "$W/key"
cat > "$W/plan.yaml" <<PLAN
name: bench
pattern: warm-standby
regions:
  east: { role: primary, agent: 127.0.0.1:$P_EAST }
  west: { role: standby, agent: 127.0.0.1:$P_WEST }
volumes:
  data:
    path: { east: $SRC, west: $DLB }
    replication: { port: $P_REP, key_file: $W/key, verify_every: 0s }
PLAN
sed -e "s|path: { east: $SRC, west: $DLB }|path: { east: $SRCDB, west: $DLBDB }|" -e "s|port: $P_REP,|port: $P_REPDB,|" \
  "$W/plan.yaml" > "$W/plan-db.yaml"
cat > "$W/rsyncd.conf" <<CONF
pid file = $W/rsyncd.pid
use chroot = no
[mod]
  path = $DRS
  read only = no
  uid = root
  gid = root
[fsync]
  path = $DRF
  read only = no
  uid = root
  gid = root
[inplace]
  path = $DRI
  read only = no
  uid = root
  gid = root
[db]
  path = $DRSDB
  read only = no
  uid = root
  gid = root
[dbinplace]
  path = $DRIDB
  read only = no
  uid = root
  gid = root
[dbfsync]
  path = $DRFDB
  read only = no
  uid = root
  gid = root
CONF

# The rsync daemon under GNU time, for its peak memory (its per-connection children included).
start_rsyncd() {
  /usr/bin/time -f '%M' -o "$W/rsyncd.rss" rsync --daemon --no-detach --config="$W/rsyncd.conf" --port="$P_RSYNC" \
    --address=127.0.0.1 &
  RSYNCD=$!; PIDS+=("$RSYNCD")
  until ss -Htln "sport = :$P_RSYNC" | grep -q .; do sleep 0.05; done
}
TICK=$(getconf CLK_TCK)
# CPU seconds of a process (its own), and of its reaped children.
cpu_of() { awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
ccpu_of() { awk -v t="$TICK" '{print ($16 + $17) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# run_rsync [MODULE [EXTRA FLAGS]]: one client run of the tree (RS_FROM: another source dir); sets RS_SECS,
# RS_BYTES (sent + received), RS_RSS_KB (client), RS_CPU ("client/daemon" CPU seconds; the daemon's
# per-connection child, reaped by the daemon, counts as the receiver).
run_rsync() {
  local t0 module=${1:-mod} d0; shift || true
  sync  # starts with nothing dirty (see flushed below)
  d0=$(ccpu_of "$(cat "$W/rsyncd.pid")")
  t0=$(now)
  /usr/bin/time -f '%M %U %S' -o "$W/rsync.rss" rsync -aH --delete --stats "$@" "${RS_FROM:-$SRC}/" \
    "rsync://127.0.0.1:$P_RSYNC/$module/" > "$W/rsync.out"
  RS_SECS=$(since "$t0")
  sleep 0.1  # the daemon reaps its child
  RS_BYTES=$(awk -F': ' '/^Total bytes sent|^Total bytes received/ {gsub(/,/, "", $2); s += $2} END {print s}' "$W/rsync.out")
  read -r RS_RSS_KB u s < "$W/rsync.rss"
  RS_CPU="$(echo "$u + $s" | bc)/$(echo "$(ccpu_of "$(cat "$W/rsyncd.pid")") - $d0" | bc)"
}
# lb_cpu_start / lb_cpu: CPU seconds the two agents spent since lb_cpu_start, as "source/target".
lb_cpu_start() { C0E=$(cpu_of "$EAST"); C0W=$(cpu_of "$WEST"); }
lb_cpu() { echo "$(echo "$(cpu_of "$EAST") - $C0E" | bc)/$(echo "$(cpu_of "$WEST") - $C0W" | bc)"; }
# lb_continuous KEY CMD...: with both agents up, makes a change (CMD) and records under KEY the seconds
# from its end until the target has converged, the bytes on the wire and the CPU seconds.
lb_continuous() {
  local key=$1 b0 t0; shift
  b0=$(lb_bytes)
  poller_start
  "$@"
  lb_cpu_start
  t0=$(now); sleep 0.05; wait_in_sync
  add "$key" "$(since "$t0")"; add "${key}_b" "$(( $(lb_bytes) - b0 ))"; add "${key}_c" "$(lb_cpu)"
}
agent() {  # REGION [PLAN]
  "$LB" --log-format json agent --plan "${2:-$W/plan.yaml}" --region "$1" --data-dir "$W/data/$1" >>"$W/$1.log" 2>&1 &
  LAST=$!; PIDS+=("$LAST")
  until curl -sf -o /dev/null "http://127.0.0.1:$( [ "$1" = east ] && echo "$P_EAST" || echo "$P_WEST")/healthz"; do sleep 0.02; done
}
lb_bytes() { curl -sf "http://127.0.0.1:$P_EAST/v1/replication" | jq '.volumes[0].targets[0] | .bytes_sent + .bytes_received'; }
# One cheap poller (bench/wait_in_sync.py), not a curl | jq pair every 10 ms: those cost about a core of
# this 2-core machine, taken from the agents being timed. poller_start runs its interpreter before the
# clock starts (python3 through a pyenv shim took 0.3 s and 0.35 CPU seconds here), wait_in_sync lets it
# poll and waits for it.
poller_start() {
  coproc POLL { python3 bench/wait_in_sync.py "$P_EAST" 0.01 --ready; }
  local line; read -r line <&"${POLL[0]}"; [ "$line" = ready ] || { log "the poller did not start"; exit 1; }
}
wait_in_sync() { echo go >&"${POLL[1]}"; wait "$POLL_PID"; }
same() {  # DIR [SOURCE]: rsync finds nothing to change from the source
  local d; d=$(rsync -aHn --checksum --delete --itemize-changes "${2:-$SRC}/" "$1/")
  [ -z "$d" ] || { log "DIFFERS: $1"; head -20 <<<"$d" >&2; exit 1; }
}
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
# Each timed catch-up starts with nothing dirty in the page cache: lifeboat's
# commit flushes the whole file system (syncfs), and would otherwise also
# write out the gigabyte the rsync runs before it left dirty.
flushed() { sync; }

declare -A R
add() { R[$1]+="$2 "; }  # KEY VALUE: one run's figure
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: generating the data set"
  rm -rf "$SRC" "$DLB" "$DRS" "$DRF" "$DRI" "$W/data"; mkdir -p "$DRS" "$DRF" "$DRI"
  python3 bench/gen_tree.py create "$SRC" --scale "$SCALE"
  [ "$run" = 1 ] && { R[files]=$(find "$SRC" -type f | wc -l); R[size]=$(du -sb "$SRC" | cut -f1); }
  drop_caches

  start_rsyncd
  log "run $run: initial sync, rsync"
  run_rsync; add rs_init "$RS_SECS"; add rs_init_b "$RS_BYTES"; add rs_init_c "$RS_CPU"; add rs_rss "$RS_RSS_KB"
  log "run $run: initial sync, rsync --inplace"
  drop_caches
  run_rsync inplace --inplace; add ri_init "$RS_SECS"; add ri_init_b "$RS_BYTES"; add ri_init_c "$RS_CPU"
  log "run $run: initial sync, rsync --fsync"
  drop_caches
  run_rsync fsync --fsync; add rsf_init "$RS_SECS"
  rm -rf "$DRF"; mkdir -p "$DRF"
  drop_caches
  log "run $run: initial sync, lifeboat"
  agent west; WEST=$LAST
  poller_start
  t0=$(now); agent east; EAST=$LAST; C0E=0; C0W=$(cpu_of "$WEST"); wait_in_sync
  add lb_init "$(since "$t0")"; add lb_init_b "$(lb_bytes)"; add lb_init_c "$(lb_cpu)"
  same "$DLB"; same "$DRS"; same "$DRI"

  log "run $run: catch-up after a change made while nothing ran"
  kill "$EAST"; wait "$EAST" 2>/dev/null || true
  python3 bench/gen_tree.py change "$SRC" "$run"
  run_rsync; add rs_catch "$RS_SECS"; add rs_catch_b "$RS_BYTES"; add rs_catch_c "$RS_CPU"
  run_rsync inplace --inplace; add ri_catch "$RS_SECS"; add ri_catch_b "$RS_BYTES"; add ri_catch_c "$RS_CPU"
  flushed; C0W=$(cpu_of "$WEST")
  poller_start
  t0=$(now); agent east; EAST=$LAST; C0E=0; wait_in_sync
  add lb_catch "$(since "$t0")"; add lb_catch_b "$(lb_bytes)"; add lb_catch_c "$(lb_cpu)"
  same "$DLB"; same "$DRS"; same "$DRI"

  log "run $run: continuous mode"
  lb_continuous lb_cont python3 bench/gen_tree.py change "$SRC" "$((run + 10))"
  same "$DLB"
  run_rsync; add rs_cont "$RS_SECS"; add rs_cont_b "$RS_BYTES"; add rs_cont_c "$RS_CPU"
  run_rsync inplace --inplace; add ri_cont "$RS_SECS"; add ri_cont_b "$RS_BYTES"; add ri_cont_c "$RS_CPU"
  same "$DRS"; same "$DRI"

  log "run $run: RPO of single small writes"
  python3 - "$SRC" "$DLB" "$run" >> "$W/rpo.txt" <<'PY'
import os, sys, time
src, dst, run = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(os.path.join(src, "rpo"), exist_ok=True)
time.sleep(1.0)
for i in range(100):
    name = "rpo/w-%s-%d" % (run, i)
    body = ("write %d of run %s\n" % (i, run)).encode()
    with open(os.path.join(src, name), "wb") as f:
        f.write(body)
    t = time.monotonic()
    target = os.path.join(dst, name)
    while True:
        try:
            with open(target, "rb") as f:
                if f.read() == body:
                    break
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    print("%.4f" % (time.monotonic() - t))
    time.sleep(0.05)
PY
  add lb_rss "$(hwm_kb "$EAST")/$(hwm_kb "$WEST")"
  kill "$EAST" "$WEST"; wait "$EAST" "$WEST" 2>/dev/null || true

  # --- The database-like file ---------------------------------------------------
  log "run $run: database-like file (${DB_GIB} GiB), generating"
  rm -rf "$SRC" "$DLB" "$DRS" "$DRI" "$SRCDB" "$DLBDB" "$DRSDB" "$DRIDB" "$W/data"
  mkdir -p "$SRCDB" "$DRSDB" "$DRIDB" "$DRFDB"
  python3 bench/gen_tree.py db "$SRCDB/data.bin" --gib "$DB_GIB"
  drop_caches
  log "run $run: database-like file, initial sync"
  RS_FROM=$SRCDB run_rsync db; add db_rs_init "$RS_SECS"; add db_rs_init_b "$RS_BYTES"; add db_rs_init_c "$RS_CPU"
  drop_caches
  RS_FROM=$SRCDB run_rsync dbinplace --inplace; add db_ri_init "$RS_SECS"
  drop_caches
  RS_FROM=$SRCDB run_rsync dbfsync --fsync; add db_rsf_init "$RS_SECS"
  rm -rf "$DRFDB"
  drop_caches
  agent west "$W/plan-db.yaml"; WEST=$LAST
  poller_start
  t0=$(now); agent east "$W/plan-db.yaml"; EAST=$LAST; C0E=0; C0W=$(cpu_of "$WEST"); wait_in_sync
  add db_lb_init "$(since "$t0")"; add db_lb_init_b "$(lb_bytes)"; add db_lb_init_c "$(lb_cpu)"
  log "run $run: database-like file, catch-up after 10,000 page writes"
  kill "$EAST"; wait "$EAST" 2>/dev/null || true
  python3 bench/gen_tree.py pages "$SRCDB/data.bin" "$run"
  RS_FROM=$SRCDB run_rsync db; add db_rs_catch "$RS_SECS"; add db_rs_catch_b "$RS_BYTES"; add db_rs_catch_c "$RS_CPU"
  add db_rs_rss "$RS_RSS_KB"
  RS_FROM=$SRCDB run_rsync dbinplace --inplace
  add db_ri_catch "$RS_SECS"; add db_ri_catch_b "$RS_BYTES"; add db_ri_catch_c "$RS_CPU"
  flushed; C0W=$(cpu_of "$WEST")
  poller_start
  t0=$(now); agent east "$W/plan-db.yaml"; EAST=$LAST; C0E=0; wait_in_sync
  add db_lb_catch "$(since "$t0")"; add db_lb_catch_b "$(lb_bytes)"; add db_lb_catch_c "$(lb_cpu)"
  log "run $run: database-like file, continuous mode"
  lb_continuous db_lb_cont python3 bench/gen_tree.py pages "$SRCDB/data.bin" "$((run + 10))"
  RS_FROM=$SRCDB run_rsync db; add db_rs_cont "$RS_SECS"; add db_rs_cont_b "$RS_BYTES"; add db_rs_cont_c "$RS_CPU"
  RS_FROM=$SRCDB run_rsync dbinplace --inplace
  add db_ri_cont "$RS_SECS"; add db_ri_cont_b "$RS_BYTES"; add db_ri_cont_c "$RS_CPU"
  for d in "$DLBDB" "$DRSDB" "$DRIDB"; do
    cmp -s "$SRCDB/data.bin" "$d/data.bin" || { log "DIFFERS: $d/data.bin"; exit 1; }
  done
  add db_lb_rss "$(hwm_kb "$EAST")/$(hwm_kb "$WEST")"
  stop_rsyncd; kill "$EAST" "$WEST"; wait "$EAST" "$WEST" "$RSYNCD" 2>/dev/null || true
  add rsd_rss "$(cat "$W/rsyncd.rss" 2>/dev/null || echo 0)"
  rm -rf "$SRCDB" "$DLBDB" "$DRSDB" "$DRIDB"
done

med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1e6}'; }
s() { awk -v x="$1" 'BEGIN {printf "%.2f s", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
maxof() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -1; }
# cpu KEY: the medians of "source/target" CPU seconds over the runs.
cpu() {
  local a b
  a=$(for x in ${R[$1]}; do echo "${x%/*}"; done | median)
  b=$(for x in ${R[$1]}; do echo "${x#*/}"; done | median)
  awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f / %.1f", a, b}'
}
# row LABEL PREFIX PHASE: a table row for lifeboat (lb), rsync (rs) and rsync --inplace (ri).
row() {
  local p=$2 ph=$3 lb rs ri
  lb=$(med "${R[${p}lb_$ph]}"); rs=$(med "${R[${p}rs_$ph]}"); ri=$(med "${R[${p}ri_$ph]:-}")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(s "$lb")" "$(s "$rs")" \
    "$([ -n "$ri" ] && s "$ri")" "$(ratio "$rs" "$lb")" "$([ -n "$ri" ] && ratio "$ri" "$lb")" \
    "$(mb "$(med "${R[${p}lb_${ph}_b]}")")" "$(mb "$(med "${R[${p}rs_${ph}_b]}")")" \
    "$([ -n "${R[${p}ri_${ph}_b]:-}" ] && mb "$(med "${R[${p}ri_${ph}_b]}")")" \
    "$(cpu "${p}lb_${ph}_c")" "$(cpu "${p}rs_${ph}_c")$([ -n "${R[${p}ri_${ph}_c]:-}" ] && echo "; $(cpu "${p}ri_${ph}_c")")"
}
# fsync_row LABEL PREFIX: the initial sync of rsync --fsync beside lifeboat's.
fsync_row() {
  local rsf lb
  rsf=$(med "${R[${2}rsf_init]}"); lb=$(med "${R[${2}lb_init]}")
  printf '| %s | | %s | | %s | | | | | | |\n' "$1" "$(s "$rsf")" "$(ratio "$rsf" "$lb")"
}
rss_pair() {  # KEY: the largest source and target VmHWM over the runs, in MiB
  local a b
  a=$(for x in ${R[$1]}; do echo "${x%/*}"; done | sort -g | tail -1)
  b=$(for x in ${R[$1]}; do echo "${x#*/}"; done | sort -g | tail -1)
  echo "$((a / 1024)) MiB / $((b / 1024)) MiB"
}
p50=$(sort -g "$W/rpo.txt" | awk '{a[NR]=$1} END {print a[int(NR*0.5)]}')
p99=$(sort -g "$W/rpo.txt" | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print a[i]}')
pmax=$(sort -g "$W/rpo.txt" | tail -1)
nrpo=$(wc -l < "$W/rpo.txt")
HDR='| phase | lifeboat | rsync | rsync --inplace | rsync / lifeboat | --inplace / lifeboat | lifeboat bytes | rsync bytes | --inplace bytes | lifeboat CPU s (source / target) | rsync CPU s (client / daemon; --inplace) |
|---|---|---|---|---|---|---|---|---|---|---|'

cat <<REPORT
## Volume replication: lifeboat beside rsync

$(date -u +%F) at $(git rev-parse --short HEAD), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), one disk, both sides on this machine.
Tree: $(mb "${R[size]}") in ${R[files]} files (bench/gen_tree.py: 50,000 small, 300 medium, 4 large of repeated
blocks); changes: bench/gen_tree.py change (~1 %: 800 scattered 4 KiB overwrites and one 1 KiB insertion in the large
files, 500 edited, 500 new, 500 deleted small files, 10 medium files partly rewritten).
Database-like file: ${DB_GIB} GiB of random bytes, changed by 10,000 random 8 KiB page writes in place (bench/gen_tree.py pages).
rsync $(rsync --version | head -1 | awk '{print $3}') -aH --delete (and --inplace) to an rsync daemon on 127.0.0.1; lifeboat: two agents on
127.0.0.1, TLS 1.3 PSK, coalesce 200ms. Fresh directories every run; page cache dropped before each initial sync,
warm in the other phases, with dirty pages written out (sync) before each timed rsync run and lifeboat catch-up. $RUNS runs, medians. CPU seconds: user + system.
Command: \`bench/replicate.sh $RUNS $SCALE $DB_GIB\`.

$HDR
$(row "initial sync" "" init)
$(fsync_row "initial sync, rsync --fsync (durable files, as lifeboat's)" "")
$(row "catch-up after a change (nothing running during it)" "" catch)
$(row "continuous: end of change -> converged (rsync: one run after it)" "" cont)
$(row "database-like file: initial sync" db_ init)
$(fsync_row "database-like file: initial sync, rsync --fsync (durable, as lifeboat's)" db_)
$(row "database-like file: catch-up after 10,000 page writes" db_ catch)
$(row "database-like file: continuous, 10,000 page writes -> converged" db_ cont)

Runs (seconds): lifeboat initial ${R[lb_init]}; rsync ${R[rs_init]}; --inplace ${R[ri_init]}; --fsync ${R[rsf_init]};
lifeboat catch-up ${R[lb_catch]}; rsync ${R[rs_catch]}; --inplace ${R[ri_catch]}; lifeboat continuous ${R[lb_cont]};
rsync ${R[rs_cont]}; --inplace ${R[ri_cont]}. Database-like: lifeboat initial ${R[db_lb_init]}; rsync ${R[db_rs_init]};
--fsync ${R[db_rsf_init]};
lifeboat catch-up ${R[db_lb_catch]}; rsync ${R[db_rs_catch]}; --inplace ${R[db_ri_catch]}; lifeboat continuous
${R[db_lb_cont]}; rsync ${R[db_rs_cont]}; --inplace ${R[db_ri_cont]}.

RPO of single small writes in continuous mode (write, close, then poll the target every 0.5 ms until the content is
there), $nrpo writes: p50 $(s "$p50"), p99 $(s "$p99"), max $(s "$pmax").

Peak memory (VmHWM / max RSS, largest over the runs): lifeboat source / target agent $(rss_pair lb_rss) (tree),
$(rss_pair db_lb_rss) (database-like file); rsync client $(( $(maxof "${R[rs_rss]}") / 1024 )) MiB (tree),
$(( $(maxof "${R[db_rs_rss]}") / 1024 )) MiB (database-like file), rsync daemon $(( $(maxof "${R[rsd_rss]}") / 1024 )) MiB.
REPORT
