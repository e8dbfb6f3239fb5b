#!/usr/bin/env bash
# Continuous volume replication between two real agents on loopback:
# every file kind, compared with rsync (-aHAXn --checksum: must list nothing)
# and with 'replicate verify'; churn while syncing; kill -9 of either side
# during a large sync; kill -9 of the receiver while it updates large files
# in place (journal); a wrong key; a full target disk; promote and reverse.
source "$(dirname "$0")/lib.sh" "$1"
command -v rsync >/dev/null || fail "rsync is missing (scripts/deps.sh installs it)"
export LIFEBOAT_TOKEN=it-token

SRC=$WORK/east-vol; DST=$WORK/west-vol
mkdir -p "$SRC"
openssl rand -hex 32 > "$WORK/key"
write_plan
REP_PORT=$(free_port)
cat >> "$WORK/plan.yaml" <<PLAN
volumes:
  data:
    path: { east: $SRC, west: $DST }
    replication: { port: $REP_PORT, key_file: $WORK/key, coalesce: 50ms, verify_every: 0s }
PLAN

# Lists what differs between two trees; nothing when they are equal.
differ() { rsync -aHAXn --checksum --delete --itemize-changes "$1/" "$2/"; }
temps() { find "$1" -name '.lifeboat~*'; }
# converge SRC DST SECONDS: until rsync finds nothing.
converge() {
  local deadline=$(( SECONDS + $3 ))
  while [ -n "$(differ "$1" "$2")" ]; do
    [ $SECONDS -lt $deadline ] || { differ "$1" "$2" | head -20 >&2; fail "$2 did not converge to $1 in $3s"; }
    sleep 0.1
  done
}
status_json() { "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" -o json; }
start_pair() {
  start_agent west; WEST=$LAST_PID
  start_agent east; EAST=$LAST_PID
  wait_http "http://127.0.0.1:$PORT_WEST/healthz"; wait_http "http://127.0.0.1:$PORT_EAST/healthz"
}

# --- Every kind of entry -----------------------------------------------------
mkdir -p "$SRC/dir/sub/deeper" "$SRC/empty-dir" "$SRC/odd names"
echo hello > "$SRC/dir/sub/deeper/file"
: > "$SRC/empty"
head -c 3000000 /dev/urandom > "$SRC/dir/big"
ln -s dir/sub/deeper/file "$SRC/rel-link"
ln -s /etc/hostname "$SRC/abs-link"
ln -s does-not-exist "$SRC/dangling"
ln "$SRC/dir/sub/deeper/file" "$SRC/hard-1"; ln "$SRC/dir/sub/deeper/file" "$SRC/odd names/hard-2"
printf 'bytes' > "$SRC/odd names/$(printf 'n\001\377 \n x')"
chmod 4755 "$SRC/empty"; chmod 0700 "$SRC/odd names"; chmod 1777 "$SRC/empty-dir"
chown 1234:5678 "$SRC/dir/big"; chown -h 4321:8765 "$SRC/rel-link"
truncate -s 64M "$SRC/sparse"; printf 'middle' | dd of="$SRC/sparse" bs=1 seek=33554432 conv=notrunc status=none
touch -d '2001-02-03 04:05:06.123456789' "$SRC/dir/sub"; touch -h -d '1999-12-31 23:59:59.5' "$SRC/abs-link"

start_pair
expect_exit 0 timeout 60 "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" --wait
[ -z "$(differ "$SRC" "$DST")" ] || { differ "$SRC" "$DST"; fail "rsync finds differences after the initial sync"; }
[ "$(stat -c %i "$DST/hard-1")" = "$(stat -c %i "$DST/odd names/hard-2")" ] || fail "hard links were not kept"
[ "$(du -k "$DST/sparse" | cut -f1)" -lt 1024 ] || fail "the sparse file's holes were filled: $(du -k "$DST/sparse")"
[ "$(stat -c %y "$DST/dir/sub")" = "$(stat -c %y "$SRC/dir/sub")" ] || fail "directory mtime differs"
[ -z "$(temps "$DST")" ] || fail "temporary files left: $(temps "$DST")"
expect_exit 0 "$LIFEBOAT" replicate verify data --plan "$WORK/plan.yaml"
pass "initial sync: every file kind equal (rsync --checksum, verify); sparse stays sparse"

# --- verify sees what rsync's quick check would not ---------------------------
cp -p "$DST/dir/sub/deeper/file" "$WORK/saved"
printf 'HELLO\n' > "$WORK/tampered"; touch -r "$SRC/dir/sub/deeper/file" "$WORK/tampered"
chown --reference="$SRC/dir/sub/deeper/file" "$WORK/tampered"
cat "$WORK/tampered" > "$DST/dir/sub/deeper/file"; touch -r "$SRC/dir/sub/deeper/file" "$DST/dir/sub/deeper/file"
rm "$DST/empty"
expect_exit 1 "$LIFEBOAT" replicate verify data --plan "$WORK/plan.yaml"
echo "$OUT" | grep -q "content  dir/sub/deeper/file" || fail "verify did not list the content difference: $OUT"
echo "$OUT" | grep -q "missing  empty" || fail "verify did not list the missing file: $OUT"
touch "$SRC/dir/sub/deeper/file" "$SRC/empty"   # a change at the source repairs them
converge "$SRC" "$DST" 10
pass "verify lists content and missing differences (exit 1); a source change repairs them"

# --- Churn while syncing ------------------------------------------------------
churn() {
  for i in $(seq 1 150); do
    case $((i % 10)) in
      0) mkdir -p "$SRC/churn/d$i/e"; echo "$i" > "$SRC/churn/d$i/e/f" ;;
      1) echo "append $i" >> "$SRC/dir/sub/deeper/file" ;;
      2) head -c $((i * 100)) /dev/urandom > "$SRC/churn-$i" ;;
      3) [ -e "$SRC/churn-$((i - 1))" ] && mv "$SRC/churn-$((i - 1))" "$SRC/renamed-$i" || true ;;
      4) truncate -s $((i * 7)) "$SRC/dir/big" ;;
      5) [ -d "$SRC/churn/d$((i - 5))" ] && mv "$SRC/churn/d$((i - 5))" "$SRC/moved-d$i" || true ;;
      6) rm -f "$SRC/renamed-$((i - 3))" ;;
      7) chmod 0640 "$SRC/churn-$((i - 5))" 2>/dev/null || true ;;
      8) dd if=/dev/urandom of="$SRC/sparse" bs=4096 count=1 seek=$((i * 3)) conv=notrunc status=none ;;
      9) rm -rf "$SRC/moved-d$((i - 4))" ;;
    esac
    sleep 0.02
  done
}
churn
converge "$SRC" "$DST" 30
expect_exit 0 "$LIFEBOAT" replicate verify data --plan "$WORK/plan.yaml"
pass "continuous mode converges after writes, appends, truncations, renames, deletions, directory moves"

# A renamed directory is not re-sent.
mkdir -p "$SRC/tree"; head -c 8000000 /dev/urandom > "$SRC/tree/payload"
converge "$SRC" "$DST" 20
before=$(status_json | jq '[.[] | .volume.targets? // [] | .[].bytes_sent] | add')
mv "$SRC/tree" "$SRC/tree-renamed"
converge "$SRC" "$DST" 20
after=$(status_json | jq '[.[] | .volume.targets? // [] | .[].bytes_sent] | add')
[ $((after - before)) -lt 1000000 ] || fail "renaming a directory sent $((after - before)) bytes"
pass "a renamed directory is renamed at the target ($((after - before)) bytes sent for 8 MB)"

# --- Metrics -------------------------------------------------------------------
curl -sf "http://127.0.0.1:$PORT_EAST/metrics" > "$WORK/east.prom"
grep -q '^lifeboat_replication_rpo_seconds{volume="data",target="west"} 0$' "$WORK/east.prom" ||
  fail "no zero RPO gauge: $(grep rpo "$WORK/east.prom")"
curl -sf "http://127.0.0.1:$PORT_WEST/metrics" > "$WORK/west.prom"
grep -q '^lifeboat_replication_commits_total{volume="data"} [1-9]' "$WORK/west.prom" || fail "no commits counted"
grep -q '^lifeboat_replication_pass_duration_seconds_count{volume="data",target="west",kind="full"} [1-9]' "$WORK/east.prom" ||
  fail "no pass durations: $(grep pass_duration "$WORK/east.prom")"
if command -v promtool >/dev/null; then
  promtool check metrics < "$WORK/east.prom" || fail "promtool rejects the source's metrics"
  promtool check metrics < "$WORK/west.prom" || fail "promtool rejects the target's metrics"
fi
pass "RPO, commits and the rest in /metrics (promtool clean)"

# --- kill -9 during a large sync ------------------------------------------------
kill "$EAST"; wait "$EAST" 2>/dev/null || true
mkdir -p "$SRC/bulk"
for i in $(seq 1 6); do head -c 40000000 /dev/urandom > "$SRC/bulk/large-$i"; done
for i in $(seq 1 1500); do echo "small $i" > "$SRC/bulk/s$i"; done
# Every final name at the target holds a complete file: equal to the source's.
check_no_partial() {
  local f rel
  while IFS= read -r -d '' f; do
    rel=${f#"$DST/"}
    cmp -s "$f" "$SRC/$rel" || fail "partial or wrong file under a final name after a crash: $rel"
  done < <(find "$DST/bulk" -type f ! -name '.lifeboat~*' -print0 2>/dev/null)
}
start_agent east; EAST=$LAST_PID
for round in 1 2 3 4; do
  sleep "0.$(( (RANDOM % 7) + 2 ))"
  if [ $((round % 2)) -eq 1 ]; then
    kill -9 "$WEST"; wait "$WEST" 2>/dev/null || true
    check_no_partial
    start_agent west; WEST=$LAST_PID
  else
    kill -9 "$EAST"; wait "$EAST" 2>/dev/null || true
    check_no_partial
    start_agent east; EAST=$LAST_PID
  fi
done
expect_exit 0 timeout 120 "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" --wait
converge "$SRC" "$DST" 60
[ -z "$(temps "$DST")" ] || fail "temporary files left after crashes: $(temps "$DST")"
reused=$(curl -sf "http://127.0.0.1:$PORT_WEST/metrics" | awk '/^lifeboat_replication_reused_bytes_total/ {print $2}')
pass "4 kill -9 (receiver and sender) during a 240 MB sync: converged, no partial file, no temp file left (reused ${reused:-0} bytes after the last restart)"

# --- kill -9 of the receiver while it updates large files in place -----------------
# Two large files change by scattered 8 KiB pages (as a database's do), so
# they travel as in-place patches through the receiver's journal; the
# receiver is killed at a random moment of each round. At every restart,
# once it says it has recovered, each file must be, by SHA-256, one of the
# versions the source had: never a mix.
rm -rf "$SRC/bulk"
mkdir -p "$SRC/db"
for f in a b; do head -c 50331648 /dev/urandom > "$SRC/db/$f.dat"; done
expect_exit 0 timeout 120 "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" --wait
converge "$SRC" "$DST" 60
versions() { for f in a b; do echo "$f $(sha256sum < "$SRC/db/$f.dat" | cut -c1-64)"; done >> "$WORK/db-versions"; }
pages() {  # SEED: 300 random 8 KiB page writes in each file, in place
  python3 - "$SRC/db" "$1" <<'PY'
import os, random, sys
rng = random.Random(int(sys.argv[2]))
for name in ("a.dat", "b.dat"):
    fd = os.open(os.path.join(sys.argv[1], name), os.O_WRONLY)
    for _ in range(300):
        os.pwrite(fd, os.urandom(8192), rng.randrange(6144) * 8192)
    os.close(fd)
PY
}
receiver_ready() { curl -sf "http://127.0.0.1:$PORT_WEST/v1/replication" | jq -e '.volumes[0].receiver.ready' >/dev/null; }
versions
for round in 1 2 3 4 5; do
  # The restarted source's first pass has ended: a file it reads while the
  # pages are written travels as a mix of the two (as with any copier; the
  # next pass repairs it), and the test kills the source before that pass.
  expect_exit 0 timeout 120 "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" --wait
  # Killed once a journal appears (plus 0-15 ms: while it is written, sealed,
  # or applied), or at a random moment when none shows within 5 s. The
  # watcher of journals starts before the change.
  python3 - "$DST/db" "$WEST" "$WORK/poller.ready" <<'PY' &
import os, random, signal, sys, time
open(sys.argv[3], "w").close()
deadline = time.time() + 5
while time.time() < deadline:
    if any(n.endswith(".journal") for n in os.listdir(sys.argv[1])):
        time.sleep(random.random() * 0.015)
        break
    time.sleep(0.0002)
os.kill(int(sys.argv[2]), signal.SIGKILL)
PY
  POLLER=$!
  until [ -e "$WORK/poller.ready" ]; do sleep 0.01; done
  rm -f "$WORK/poller.ready"
  pages "$round"
  wait "$POLLER"
  wait "$WEST" 2>/dev/null || true
  kill "$EAST"; wait "$EAST" 2>/dev/null || true  # nothing changes at the target while it is checked
  versions  # the source's new version (it does not change until the next round)
  start_agent west; WEST=$LAST_PID
  deadline=$(( SECONDS + 30 ))
  until receiver_ready; do [ $SECONDS -lt $deadline ] || fail "the receiver did not recover"; sleep 0.05; done
  for f in a b; do
    h=$(sha256sum < "$DST/db/$f.dat" | cut -c1-64)
    grep -qx "$f $h" "$WORK/db-versions" || fail "after kill -9 in round $round, db/$f.dat is none of the source's versions (a mix)"
  done
  start_agent east; EAST=$LAST_PID
done
expect_exit 0 timeout 120 "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" --wait
converge "$SRC" "$DST" 60
pages 99
expect_exit 0 timeout 60 "$LIFEBOAT" replicate status data --plan "$WORK/plan.yaml" --wait
converge "$SRC" "$DST" 60
patched=$(curl -sf "http://127.0.0.1:$PORT_WEST/v1/replication" | jq '.volumes[0].receiver.patches')
[ "${patched:-0}" -ge 1 ] || fail "the large files were not updated in place (patches: $patched)"
recovered=$(grep -c 'in-place update(s) an interrupted session left' "$WORK/west.log" || true)
[ -z "$(temps "$DST")" ] || fail "temporary files left after crashes: $(temps "$DST")"
pass "5 kill -9 of the receiver while 2 large files changed in place (killed once a journal showed): at each restart both were one of the source's versions (SHA-256); $recovered restart(s) completed a sealed journal; updated in place afterwards ($patched patches), converged"
rm -rf "$SRC/db"
converge "$SRC" "$DST" 30

# --- A wrong key ------------------------------------------------------------------
kill "$EAST"; wait "$EAST" 2>/dev/null || true
openssl rand -hex 32 > "$WORK/wrong-key"
LIFEBOAT_REPLICATION_KEY_FILE=$WORK/wrong-key start_agent east; EAST=$LAST_PID
echo "made while the key is wrong" > "$SRC/while-wrong"
deadline=$(( SECONDS + 10 ))
until status_json | jq -e '.[] | select(.region == "east") | .volume.targets[0].last_error // "" | test("TLS handshake")' >/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "status does not show the handshake failure: $(status_json)"
  sleep 0.2
done
[ ! -e "$DST/while-wrong" ] || fail "a sender with the wrong key changed the target"
grep -q "binder does not verify" "$WORK/west.log" || fail "the target did not log the refused key"
kill "$EAST"; wait "$EAST" 2>/dev/null || true
start_agent east; EAST=$LAST_PID
converge "$SRC" "$DST" 20
pass "a sender with the wrong key is refused (TLS PSK binder), says so in status, changes nothing"

# --- A full target disk --------------------------------------------------------------
# unmount_small: unmounts the small tmpfs once nothing uses it (rsync's
# children may outlive it by a moment); says who holds it if none lets go.
unmount_small() {
  mountpoint -q "$WORK/small" || return 0
  for _ in $(seq 1 50); do umount "$WORK/small" 2>/dev/null && return 0; sleep 0.1; done
  fuser -vm "$WORK/small" >&2 || true
  umount "$WORK/small"
}
if mkdir -p "$WORK/small" && mount -t tmpfs -o size=4m tmpfs "$WORK/small" 2>/dev/null; then
  AFTER_CLEANUP+=(unmount_small)  # once the agents have ended, also when a check fails
  kill "$EAST" "$WEST"; wait "$EAST" "$WEST" 2>/dev/null || true
  sed -i "s|west: $DST|west: $WORK/small/vol|" "$WORK/plan.yaml"
  rm -rf "$SRC/bulk" "$SRC/sparse" "$SRC/tree-renamed"
  head -c 10000000 /dev/urandom > "$SRC/too-big"
  sum=$(sha256sum < "$SRC/too-big")
  start_pair
  deadline=$(( SECONDS + 15 ))
  until status_json | jq -e '.[] | select(.region == "east") | .volume.targets[0].last_error // "" | test("disk is full")' >/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "status does not say the target disk is full: $(status_json)"
    sleep 0.2
  done
  # Between retries, and while a retry compares listings, the unsent file
  # stays pending (status showed 0 while disconnected, and then while a new
  # session had not yet counted what it would send).
  for _ in $(seq 1 40); do
    s=$(status_json)
    jq -e '.[] | select(.region == "east") | .volume.targets[0].pending_files >= 1' >/dev/null <<<"$s" ||
      fail "nothing pending while the target cannot take a file: $s"
    sleep 0.05
  done
  [ "$(sha256sum < "$SRC/too-big")" = "$sum" ] || fail "the source changed"
  [ ! -e "$WORK/small/vol/too-big" ] || fail "a partial file appeared under its final name"
  rm "$SRC/too-big"
  converge "$SRC" "$WORK/small/vol" 40
  kill "$EAST" "$WEST"; wait "$EAST" "$WEST" 2>/dev/null || true
  unmount_small
  sed -i "s|west: $WORK/small/vol|west: $DST|" "$WORK/plan.yaml"
  start_pair
  converge "$SRC" "$DST" 30
  pass "a full target disk: 'disk is full' in status, the file stays pending, source untouched, converges once there is room"
else
  echo "note: cannot mount a tmpfs here (not root?); the full-disk case was not run" >&2
fi

# --- Promote (failover) and reverse (failback) --------------------------------------
kill -9 "$EAST"; wait "$EAST" 2>/dev/null || true
expect_exit 0 "$LIFEBOAT" replicate promote data --region west --plan "$WORK/plan.yaml"
grep -q "west: now the source of data (epoch 2)" <<<"$OUT" || fail "promote's outcome: $OUT"
echo "written in west after the failover" > "$DST/west-change"
rm -f "$DST/empty"
start_agent east; EAST=$LAST_PID
wait_http "http://127.0.0.1:$PORT_EAST/healthz"
sleep 1
[ -e "$SRC/empty" ] || fail "the old primary was changed before it was reversed"
# east still thinks it is the source: it does not listen, west's stream waits.
status_json | jq -e '.[] | select(.region == "west") | .volume.targets[0] | .in_sync == false and (.last_error | length > 0)' >/dev/null ||
  fail "west's stream should not reach east, still a source: $(status_json)"
expect_exit 0 "$LIFEBOAT" replicate status --plan "$WORK/plan.yaml"
grep -q "volume data has 2 sources: east (epoch 1), west (epoch 2)" <<<"$OUT" || fail "no warning of two sources: $OUT"
expect_exit 0 "$LIFEBOAT" replicate reverse data --region east --plan "$WORK/plan.yaml"
grep -q "east: now follows west for data (epoch 2)" <<<"$OUT" || fail "reverse's outcome: $OUT"
converge "$DST" "$SRC" 30
[ "$(cat "$SRC/west-change")" = "written in west after the failover" ] || fail "the standby's change was not kept"
expect_exit 0 "$LIFEBOAT" replicate verify data --plan "$WORK/plan.yaml"
# A backup of the volume reads its source's copy: west now, not the plan's primary.
cat >> "$WORK/plan.yaml" <<PLAN
backup:
  locations:
    local: { type: filesystem, path: $WORK/repo }
PLAN
export LIFEBOAT_REPO_PASSWORD=correct-horse
expect_exit 0 "$LIFEBOAT" repo init -l local --plan "$WORK/plan.yaml"
expect_exit 0 "$LIFEBOAT" backup create --location local --volume data --plan "$WORK/plan.yaml" -o json
[ "$(echo "$OUT" | jq -r .path)" = "$DST" ] || fail "a backup after the failover read $(echo "$OUT" | jq -r .path), not the new source's $DST"
expect_exit 2 "$LIFEBOAT" replicate promote nope --region west --plan "$WORK/plan.yaml"
LIFEBOAT_TOKEN= expect_exit 2 "$LIFEBOAT" replicate promote data --region east --plan "$WORK/plan.yaml"
expect_exit 1 "$LIFEBOAT" replicate promote data --region east --plan "$WORK/plan.yaml" --token wrong
echo "$OUT" | grep -q "401" || fail "a wrong token should get 401: $OUT"
pass "promote makes the standby the source; reverse resyncs the old primary from it, keeping the standby's changes; a backup then reads the new source"
