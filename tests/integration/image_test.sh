#!/usr/bin/env bash
# The container image: scripts/image.sh builds it with buildah from the
# binary under test, and podman runs it (runc, with the storage, cgroups and
# rlimits this machine allows: vfs, cgroupfs, no default ulimits):
# - the image's lifeboat is the binary under test, as user 65532, with a /bin/sh;
# - the deploy/kubernetes sample plan validates in it;
# - the agent runs in it as deploy/kubernetes runs it (read-only root, a
#   tmpfs /tmp, a volume owned by 65532 holding the data dir) and answers
#   /healthz, then stops cleanly on SIGTERM;
# - the node agent runs in it as the DaemonSet runs it (root with five
#   capabilities, read-only root, the kubelet's pods as a volume): a backup
#   and a restore job keep a file's owner and mode, and the restore-wait
#   init container's command ends on the marker it writes;
# - the OCI archive holds the same image.
source "$(dirname "$0")/lib.sh" "$1"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
for tool in buildah podman runc busybox; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/deps.sh"
done

STORE=(--storage-driver vfs --root "$WORK/storage/root" --runroot "$WORK/storage/run")
export BUILDAH_FLAGS="${STORE[*]}"
printf '[containers]\ndefault_ulimits = []\n' > "$WORK/containers.conf"
export CONTAINERS_CONF=$WORK/containers.conf
pm() { podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"; }
NAME=lifeboat-it-$$
stop_container() { pm rm -f -t 1 "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK/storage" 2>/dev/null || true; }
AFTER_CLEANUP+=(stop_container)

# --- Build -------------------------------------------------------------------------------------
expect_exit 2 "$ROOT/scripts/image.sh" --binary "$WORK/nothing"
grep -q "no lifeboat binary at $WORK/nothing" <<<"$OUT" || fail "a missing binary: $OUT"
expect_exit 0 "$ROOT/scripts/image.sh" --binary "$LIFEBOAT" --tag lifeboat:it --oci-archive "$WORK/lifeboat.tar"
grep -q "^== built lifeboat:it" <<<"$OUT" || fail "the build: $OUT"

# --- What is in it -----------------------------------------------------------------------------
want=$("$LIFEBOAT" --version)
got=$(pm run --rm --network none lifeboat:it --version 2>&1) || fail "lifeboat --version in the image: $got"
[ "$got" = "$want" ] || fail "the image's lifeboat is '$got', the binary under test '$want'"
got=$(pm run --rm --network none --entrypoint /bin/sh lifeboat:it -c 'id -u; id -g; echo $((6 * 7)); test -w /var/lib/lifeboat && echo writable' 2>&1) ||
  fail "a shell in the image: $got"
[ "$got" = "$(printf '65532\n65532\n42\nwritable')" ] || fail "user, shell and data dir in the image: $got"
pm image inspect lifeboat:it --format '{{json .Config}}' > "$WORK/config.json"
jq -e '.Entrypoint == ["/usr/bin/lifeboat"] and .User == "65532:65532" and (.ExposedPorts | has("7700/tcp"))' "$WORK/config.json" >/dev/null ||
  fail "the image's config: $(cat "$WORK/config.json")"
size=$(pm image inspect lifeboat:it --format '{{.Size}}')
pass "scripts/image.sh builds an image ($(( size / 1048576 )) MiB) whose lifeboat is the binary under test, as user 65532, with a shell for hooks"

# --- The sample plan and an agent, as deploy/kubernetes runs them ------------------------------
mkdir -p "$WORK/plan" "$WORK/data"
cp "$ROOT/deploy/kubernetes/base/plan.yaml" "$WORK/plan/sample.yaml"
got=$(pm run --rm --network none -v "$WORK/plan:/etc/lifeboat/plan:ro" lifeboat:it plan validate /etc/lifeboat/plan/sample.yaml 2>&1) ||
  fail "the sample plan in the image: $got"
PORT=$(free_port)
cat > "$WORK/plan/plan.yaml" <<PLAN
name: image-it
pattern: warm-standby
regions:
  east:    { role: primary, agent: 127.0.0.1:$PORT }
  west:    { role: standby, agent: 127.0.0.1:$(free_port) }
  witness: { role: witness, agent: 127.0.0.1:$(free_port) }
PLAN
chown 65532:65532 "$WORK/data"
pm run -d --name "$NAME" --network host --read-only --tmpfs /tmp \
  -v "$WORK/plan:/etc/lifeboat/plan:ro" -v "$WORK/data:/var/lib/lifeboat" -e LIFEBOAT_TOKEN=image-it \
  lifeboat:it agent --plan /etc/lifeboat/plan/plan.yaml --region east --data-dir /var/lib/lifeboat/agent --log-format json \
  >/dev/null || fail "podman run the agent"
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  [ "$(pm inspect "$NAME" --format '{{.State.Running}}')" = true ] || break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || fail "the agent in the image: $(pm logs "$NAME" 2>&1 | tail -20)"
[ "$(curl -sf "http://127.0.0.1:$PORT/v1/status" | jq -r .region)" = east ] || fail "the agent's status"
# The data dir as deploy/kubernetes/base/agent.yaml has it: the embedded
# store beside it (DATA_DIR/../PLAN-state.db) is in the volume as well.
[ -f "$WORK/data/image-it-state.db" ] || fail "the state store is not in the data volume: $(cd "$WORK/data" && find . | head)"
[ -d "$WORK/data/agent" ] || fail "the data dir was not made in the volume"
[ "$(stat -c %u "$WORK/data/image-it-state.db")" = 65532 ] || fail "the agent's files are not user 65532's"
pm stop -t 10 "$NAME" >/dev/null
[ "$(pm inspect "$NAME" --format '{{.State.ExitCode}}')" = 0 ] ||
  fail "the agent did not stop cleanly on SIGTERM: exit $(pm inspect "$NAME" --format '{{.State.ExitCode}}'); $(pm logs "$NAME" 2>&1 | tail -5)"
pass "in the image, the sample plan validates and the agent runs on a read-only root as deploy/kubernetes runs it (healthz, state in its volume, clean stop)"

# --- The node agent, as deploy/kubernetes/base/node-agent.yaml runs it -------------------------
# Root with five capabilities, read-only root, the kubelet's pods as a
# volume: it reads a file only its owner may read, restores it into another
# pod's volume with its owner, and writes the marker that the restore-wait
# init container (this image's sh, as the restore adds it) then sees.
cat >> "$WORK/plan/plan.yaml" <<PLAN
backup:
  locations:
    local: { type: filesystem, path: $WORK/repo }
PLAN
export LIFEBOAT_REPO_PASSWORD=image-it
expect_exit 0 "$LIFEBOAT" repo init -l local --plan "$WORK/plan/plan.yaml"
V=$WORK/kubelet/pods/u1/volumes/kubernetes.io~csi/pv-1/mount
mkdir -p "$V" "$WORK/kubelet/pods/u2/volumes/kubernetes.io~csi/pv-2/mount"
echo private > "$V/only-1234"
chown 1234:1234 "$V/only-1234"
chmod 0600 "$V/only-1234"
NPORT=$(free_port)
pm run -d --name "$NAME-node" --network host --read-only --tmpfs /tmp --user 0:0 --cap-drop ALL \
  --cap-add CHOWN,DAC_OVERRIDE,DAC_READ_SEARCH,FOWNER,FSETID \
  -v "$WORK/plan:/etc/lifeboat/plan:ro" -v "$WORK/kubelet/pods:/host/kubelet/pods" -v "$WORK/repo:$WORK/repo" \
  -e LIFEBOAT_TOKEN=image-it -e LIFEBOAT_REPO_PASSWORD=image-it -e NODE_NAME=node-1 \
  lifeboat:it agent --node --plan /etc/lifeboat/plan/plan.yaml --listen "127.0.0.1:$NPORT" --kubelet-root /host/kubelet \
  >/dev/null || fail "podman run the node agent"
stop_node() { pm rm -f -t 1 "$NAME-node" >/dev/null 2>&1 || true; }
AFTER_CLEANUP=(stop_node "${AFTER_CLEANUP[@]}")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$NPORT/healthz" >/dev/null && break; sleep 0.1; done
node_job() {  # node_job KIND BODY: the job's final JSON
  local job state
  job=$(curl -sf -H "Authorization: Bearer image-it" -X POST "http://127.0.0.1:$NPORT/v1/node/$1" -d "$2" | jq -r .job) ||
    fail "POST /v1/node/$1: $(pm logs "$NAME-node" 2>&1 | tail -5)"
  for _ in $(seq 1 200); do
    state=$(curl -sf -H "Authorization: Bearer image-it" "http://127.0.0.1:$NPORT/v1/node/jobs/$job")
    case $(jq -r .state <<<"$state") in done|failed) echo "$state"; return;; esac
    sleep 0.1
  done
  fail "job $job did not end: $state"
}
done_backup=$(node_job backups '{"location":"local","pod_uid":"u1","volume":"pv-1","source":"pvc:east/shop/data"}')
[ "$(jq -r .state <<<"$done_backup")" = done ] && [ "$(jq .files <<<"$done_backup")" = 1 ] || fail "the backup job: $done_backup"
done_restore=$(node_job restores "$(jq -nc --arg s "$(jq -r .snapshot <<<"$done_backup")" \
  '{location: "local", snapshot: $s, pod_uid: "u2", volume: "pv-2", marker: "m1"}')")
[ "$(jq -r .state <<<"$done_restore")" = done ] || fail "the restore job: $done_restore"
R=$WORK/kubelet/pods/u2/volumes/kubernetes.io~csi/pv-2/mount
[ "$(stat -c '%u %a' "$R/only-1234")" = "1234 600" ] && [ "$(cat "$R/only-1234")" = private ] ||
  fail "the restored file: $(stat -c '%u %a' "$R/only-1234" 2>&1)"
# The wait as k8s/volume_data.cc (AddRestoreWait) writes it.
wait_cmd='for f in "$@"; do until [ -e "$f" ]; do sleep 1; done; done; echo lifeboat: volume files restored'
got=$(timeout 30 podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file run --rm --network none \
  --user 65532 -v "$R:/lifeboat-restore/data:ro" --entrypoint sh lifeboat:it -c "$wait_cmd" lifeboat-restore-wait \
  /lifeboat-restore/data/.lifeboat-restore/m1 2>&1) || fail "the restore-wait command in the image: $got"
[ "$got" = "lifeboat: volume files restored" ] || fail "the restore-wait command said: $got"
pm stop -t 10 "$NAME-node" >/dev/null
[ "$(pm inspect "$NAME-node" --format '{{.State.ExitCode}}')" = 0 ] || fail "the node agent did not stop cleanly"
pass "in the image, the node agent backs up a file only its owner reads and restores it with its owner into another pod's volume (root, five capabilities, read-only root), and the restore-wait command ends on its marker"

# --- The OCI archive ---------------------------------------------------------------------------
pm rmi -f lifeboat:it >/dev/null
pm load -q -i "$WORK/lifeboat.tar" >/dev/null || fail "podman load the archive"
got=$(pm run --rm --network none lifeboat:it --version 2>&1) || fail "the loaded image: $got"
[ "$got" = "$want" ] || fail "the archive's lifeboat: $got"
pass "--oci-archive writes the same image as a file podman loads"
