#!/usr/bin/env bash
# Backup benchmark: lifeboat beside restic and borg (Debian packages) on the
# same ~2 GiB tree (bench/gen_tree.py) and its ~1 % change, in one run. Not a
# test: prints a Markdown report to stdout (bench/RESULTS.md keeps one).
#
# Usage: bench/backup.sh [RUNS=3] [SCALE=1]
# Per run, for each tool, on a fresh repository in a local directory:
# first backup, incremental backup after the change, full restore of the
# second backup; wall time, repository size and growth, peak memory. The
# tree is regenerated for every run (page cache warm for every tool alike).
# All three encrypt: lifeboat AES-256-GCM, restic AES-256-CTR + Poly1305,
# borg repokey-blake2 (AES-256-CTR + BLAKE2b).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SCALE=${2:-1}

scripts/deps.sh
need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
if [ ${#need[@]} -gt 0 ]; then apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target lifeboat >/dev/null
LB=$(readlink -f build/lifeboat)
W=$(mktemp -d /tmp/lifeboat-bench-backup-XXXXXX)
trap 'rm -rf "$W"' EXIT
log() { echo "$*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
export LIFEBOAT_REPO_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
SRC=$W/src
cat > "$W/plan.yaml" <<PLAN
name: bench
pattern: backup-restore
regions:
  east: { role: primary, agent: 127.0.0.1:1 }
backup:
  locations:
    repo: { type: filesystem, path: $W/repo-lifeboat }
PLAN

# timed NAME CMD...: runs CMD, appends "seconds peak_kib" to $W/NAME.
timed() {
  local name=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$W/time.tmp" "$@" >"$W/out.tmp" 2>"$W/err.tmp" || {
    cat "$W/err.tmp" >&2; log "$name failed: $*"; exit 1; }
  cat "$W/time.tmp" >> "$W/$name"
}
size() { du -sb "$1" | cut -f1; }

for run in $(seq 1 "$RUNS"); do
  log "== run $run/$RUNS: generating the tree (scale $SCALE)"
  rm -rf "$SRC" "$W"/repo-* "$W"/restore-*
  python3 bench/gen_tree.py create "$SRC" --scale "$SCALE"
  log "   first backups"
  "$LB" repo init --plan "$W/plan.yaml" >/dev/null
  timed lifeboat.first "$LB" backup create --plan "$W/plan.yaml" --path "$SRC"
  restic init -q -r "$W/repo-restic" >/dev/null
  timed restic.first restic -q -r "$W/repo-restic" backup "$SRC"
  borg init -e repokey-blake2 "$W/repo-borg" >/dev/null 2>&1
  timed borg.first borg create "$W/repo-borg::first" "$SRC"
  for t in lifeboat restic borg; do size "$W/repo-$t" >> "$W/$t.size1"; done

  log "   change (~1 %) and incremental backups"
  python3 bench/gen_tree.py change "$SRC" "$run"
  timed lifeboat.incr "$LB" backup create --plan "$W/plan.yaml" --path "$SRC"
  timed restic.incr restic -q -r "$W/repo-restic" backup "$SRC"
  timed borg.incr borg create "$W/repo-borg::second" "$SRC"
  for t in lifeboat restic borg; do echo $(( $(size "$W/repo-$t") - $(tail -1 "$W/$t.size1") )) >> "$W/$t.growth"; done

  log "   restores"
  ID=$("$LB" backup list --plan "$W/plan.yaml" -o json | jq -r '.[-1].id')
  timed lifeboat.restore "$LB" restore "$ID" --plan "$W/plan.yaml" --to "$W/restore-lifeboat"
  timed restic.restore restic -q -r "$W/repo-restic" restore latest --target "$W/restore-restic"
  mkdir -p "$W/restore-borg"
  timed borg.restore bash -c "cd '$W/restore-borg' && borg extract '$W/repo-borg::second'"
  if [ "$run" = 1 ]; then
    diff -r "$SRC" "$W/restore-lifeboat" >/dev/null || { log "lifeboat's restore differs from the source"; exit 1; }
    log "   lifeboat's restore equals the source (diff -r)"
  fi
done

col() { awk -v c="$2" '{print $c}' "$W/$1" | median; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
FILES=$(find "$SRC" -type f | wc -l); BYTES=$(du -sb "$SRC" | cut -f1)
echo "### Backup: lifeboat vs restic $(restic version | awk '{print $2}') and borg $(borg --version | awk '{print $2}')"
echo
echo "\`bench/backup.sh $RUNS $SCALE\`: $FILES files, $(mb "$BYTES") MB, medians of $RUNS runs on $(nproc) cores."
echo "Repositories on the local disk; every tool encrypts. Ratios are restic / lifeboat and borg / lifeboat (above 1: lifeboat is better)."
echo
echo "| | lifeboat | restic | borg | restic / lifeboat | borg / lifeboat |"
echo "|---|---|---|---|---|---|"
for phase in first incr restore; do
  l=$(col lifeboat.$phase 1); r=$(col restic.$phase 1); b=$(col borg.$phase 1)
  case $phase in first) name="first backup (s)";; incr) name="incremental after the change (s)";; restore) name="full restore (s)";; esac
  echo "| $name | $l | $r | $b | $(ratio "$r" "$l") | $(ratio "$b" "$l") |"
done
l=$(col lifeboat.size1 1); r=$(col restic.size1 1); b=$(col borg.size1 1)
echo "| repository after the first backup (MB) | $(mb "$l") | $(mb "$r") | $(mb "$b") | $(ratio "$r" "$l") | $(ratio "$b" "$l") |"
l=$(col lifeboat.growth 1); r=$(col restic.growth 1); b=$(col borg.growth 1)
echo "| growth from the incremental (MB) | $(mb "$l") | $(mb "$r") | $(mb "$b") | $(ratio "$r" "$l") | $(ratio "$b" "$l") |"
for phase in first incr restore; do
  l=$(col lifeboat.$phase 2); r=$(col restic.$phase 2); b=$(col borg.$phase 2)
  echo "| peak memory, $phase (MiB) | $(mib "$l") | $(mib "$r") | $(mib "$b") | $(ratio "$r" "$l") | $(ratio "$b" "$l") |"
done
