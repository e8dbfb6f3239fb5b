#!/usr/bin/env bash
# Replication benchmark: lifeboat beside rsync (-aH --delete, to an rsync
# daemon on 127.0.0.1) on the same ~2 GiB tree (bench/gen_tree.py) and its
# ~1 % changes, in one run. Not a test: prints a Markdown report to stdout
# (bench/RESULTS.md keeps one).
#
# Usage: bench/replicate.sh [RUNS=3] [SCALE=1]
# Per run: initial sync; catch-up after a change made while nothing ran;
# continuous mode: time from the end of a second change until the target has
# converged (lifeboat's agents running; rsync: one run after the change);
# RPO of 100 single small writes (close -> visible at the target).
# Reports medians, bytes on the wire (both directions) and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SCALE=${2:-1}

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
free_port() { local p; while :; do p=$(( (RANDOM % 20000) + 30000 )); [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }; done; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

SRC=$W/src; DLB=$W/dst-lifeboat; DRS=$W/dst-rsync; DRF=$W/dst-rsync-fsync
P_EAST=$(free_port); P_WEST=$(free_port); P_REP=$(free_port); P_RSYNC=$(free_port)
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
CONF

# The rsync daemon under GNU time, for its peak memory (its per-connection children included).
start_rsyncd() {
  /usr/bin/time -f '%M' -o "$W/rsyncd.rss" rsync --daemon --no-detach --config="$W/rsyncd.conf" --port="$P_RSYNC" \
    --address=127.0.0.1 &
  RSYNCD=$!; PIDS+=("$RSYNCD")
  until ss -Htln "sport = :$P_RSYNC" | grep -q .; do sleep 0.05; done
}
# run_rsync [MODULE [EXTRA FLAGS]]: one client run; sets RS_SECS, RS_BYTES (sent + received), RS_RSS_KB (client).
run_rsync() {
  local t0 module=${1:-mod}; shift || true
  t0=$(now)
  /usr/bin/time -f '%M' -o "$W/rsync.rss" rsync -aH --delete --stats "$@" "$SRC/" "rsync://127.0.0.1:$P_RSYNC/$module/" > "$W/rsync.out"
  RS_SECS=$(since "$t0")
  RS_BYTES=$(awk -F': ' '/^Total bytes sent|^Total bytes received/ {gsub(/,/, "", $2); s += $2} END {print s}' "$W/rsync.out")
  RS_RSS_KB=$(cat "$W/rsync.rss")
}
agent() {  # REGION
  "$LB" --log-format json agent --plan "$W/plan.yaml" --region "$1" --data-dir "$W/data/$1" >>"$W/$1.log" 2>&1 &
  LAST=$!; PIDS+=("$LAST")
  until curl -sf -o /dev/null "http://127.0.0.1:$( [ "$1" = east ] && echo "$P_EAST" || echo "$P_WEST")/healthz"; do sleep 0.02; done
}
lb_bytes() { curl -sf "http://127.0.0.1:$P_EAST/v1/replication" | jq '.volumes[0].targets[0] | .bytes_sent + .bytes_received'; }
wait_in_sync() {
  until curl -sf "http://127.0.0.1:$P_EAST/v1/replication" | jq -e '.volumes[0].targets[0].in_sync' >/dev/null; do sleep 0.01; done
}
same() {  # DIR: rsync finds nothing to change from the source
  local d; d=$(rsync -aHn --checksum --delete --itemize-changes "$SRC/" "$1/")
  [ -z "$d" ] || { log "DIFFERS: $1"; head -20 <<<"$d" >&2; exit 1; }
}

declare -A R
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS: generating the data set"
  rm -rf "$SRC" "$DLB" "$DRS" "$DRF" "$W/data"; mkdir -p "$DRS" "$DRF"
  python3 bench/gen_tree.py create "$SRC" --scale "$SCALE"
  [ "$run" = 1 ] && { R[files]=$(find "$SRC" -type f | wc -l); R[size]=$(du -sb "$SRC" | cut -f1); }
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true

  start_rsyncd
  log "run $run: initial sync, rsync"
  run_rsync; R[rs_init]+="$RS_SECS "; R[rs_init_b]+="$RS_BYTES "; R[rs_rss]+="$RS_RSS_KB "
  log "run $run: initial sync, rsync --fsync"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  run_rsync fsync --fsync; R[rsf_init]+="$RS_SECS "
  rm -rf "$DRF"; mkdir -p "$DRF"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  log "run $run: initial sync, lifeboat"
  agent west; WEST=$LAST
  t0=$(now); agent east; EAST=$LAST; wait_in_sync
  R[lb_init]+="$(since "$t0") "; R[lb_init_b]+="$(lb_bytes) "
  same "$DLB"; same "$DRS"

  log "run $run: catch-up after a change made while nothing ran"
  kill "$EAST"; wait "$EAST" 2>/dev/null || true
  python3 bench/gen_tree.py change "$SRC" "$run"
  run_rsync; R[rs_catch]+="$RS_SECS "; R[rs_catch_b]+="$RS_BYTES "
  t0=$(now); agent east; EAST=$LAST; wait_in_sync
  R[lb_catch]+="$(since "$t0") "; R[lb_catch_b]+="$(lb_bytes) "
  same "$DLB"; same "$DRS"

  log "run $run: continuous mode"
  b0=$(lb_bytes)
  python3 bench/gen_tree.py change "$SRC" "$((run + 10))"
  t0=$(now); sleep 0.05; wait_in_sync
  R[lb_cont]+="$(since "$t0") "; R[lb_cont_b]+="$(( $(lb_bytes) - b0 )) "
  same "$DLB"
  run_rsync; R[rs_cont]+="$RS_SECS "; R[rs_cont_b]+="$RS_BYTES "
  same "$DRS"

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
  R[lb_rss]+="$(hwm_kb "$EAST")/$(hwm_kb "$WEST") "
  stop_rsyncd; kill "$EAST" "$WEST"; wait "$EAST" "$WEST" "$RSYNCD" 2>/dev/null || true
  R[rsd_rss]+="$(cat "$W/rsyncd.rss" 2>/dev/null || echo 0) "
done

med() { tr ' ' '\n' <<<"$1" | grep -v '^$' | median; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1e6}'; }
s() { awk -v x="$1" 'BEGIN {printf "%.2f s", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
maxof() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -1; }
lb_src_rss=$(for x in ${R[lb_rss]}; do echo "${x%/*}"; done | sort -g | tail -1)
lb_dst_rss=$(for x in ${R[lb_rss]}; do echo "${x#*/}"; done | sort -g | tail -1)
p50=$(sort -g "$W/rpo.txt" | awk '{a[NR]=$1} END {print a[int(NR*0.5)]}')
p99=$(sort -g "$W/rpo.txt" | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print a[i]}')
pmax=$(sort -g "$W/rpo.txt" | tail -1)
nrpo=$(wc -l < "$W/rpo.txt")

cat <<REPORT
## Volume replication: lifeboat beside rsync

$(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), one disk, both sides on this machine.
Data set: $(mb "${R[size]}") in ${R[files]} files (bench/gen_tree.py: 50,000 small, 300 medium, 4 large of repeated
blocks); changes: bench/gen_tree.py change (~1 %: 800 scattered 4 KiB overwrites and one 1 KiB insertion in the large
files, 500 edited, 500 new, 500 deleted small files, 10 medium files partly rewritten).
rsync $(rsync --version | head -1 | awk '{print $3}') -aH --delete to an rsync daemon on 127.0.0.1; lifeboat: two agents on
127.0.0.1, TLS 1.3 PSK, coalesce 200ms. Page cache dropped before each initial sync. $RUNS runs, medians.
Command: \`bench/replicate.sh $RUNS $SCALE\`.

| phase | lifeboat | rsync | rsync / lifeboat | lifeboat bytes on the wire | rsync bytes on the wire |
|---|---|---|---|---|---|
| initial sync | $(s "$(med "${R[lb_init]}")") | $(s "$(med "${R[rs_init]}")") | $(ratio "$(med "${R[rs_init]}")" "$(med "${R[lb_init]}")") | $(mb "$(med "${R[lb_init_b]}")") | $(mb "$(med "${R[rs_init_b]}")") |
| initial sync, rsync --fsync (durable files, as lifeboat's) | | $(s "$(med "${R[rsf_init]}")") | $(ratio "$(med "${R[rsf_init]}")" "$(med "${R[lb_init]}")") | | |
| catch-up after a change (nothing running during it) | $(s "$(med "${R[lb_catch]}")") | $(s "$(med "${R[rs_catch]}")") | $(ratio "$(med "${R[rs_catch]}")" "$(med "${R[lb_catch]}")") | $(mb "$(med "${R[lb_catch_b]}")") | $(mb "$(med "${R[rs_catch_b]}")") |
| continuous: end of change -> converged (rsync: one run after it) | $(s "$(med "${R[lb_cont]}")") | $(s "$(med "${R[rs_cont]}")") | $(ratio "$(med "${R[rs_cont]}")" "$(med "${R[lb_cont]}")") | $(mb "$(med "${R[lb_cont_b]}")") | $(mb "$(med "${R[rs_cont_b]}")") |

Runs (seconds): lifeboat initial ${R[lb_init]}; rsync initial ${R[rs_init]}; rsync --fsync initial ${R[rsf_init]}; lifeboat catch-up ${R[lb_catch]}; rsync
catch-up ${R[rs_catch]}; lifeboat continuous ${R[lb_cont]}; rsync after the change ${R[rs_cont]}.

RPO of single small writes in continuous mode (write, close, then poll the target every 0.5 ms until the content is
there), $nrpo writes: p50 $(s "$p50"), p99 $(s "$p99"), max $(s "$pmax").

Peak memory (VmHWM / max RSS, largest over the runs): lifeboat source agent $((lb_src_rss / 1024)) MiB, target agent
$((lb_dst_rss / 1024)) MiB; rsync client $(( $(maxof "${R[rs_rss]}") / 1024 )) MiB, rsync daemon $(( $(maxof "${R[rsd_rss]}") / 1024 )) MiB.
REPORT
