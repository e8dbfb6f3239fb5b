#!/usr/bin/env bash
# Kubernetes: PVC files in cluster backups, through node agents.
#
# The clusters are tests/integration/fake_apiserver.py, a FAKE API server (no
# kube-apiserver is packaged; k8s_test.sh checks it with kubectl and
# python3-kubernetes). There is no kubelet, scheduler or controller either:
# this script plays them. Each "node" is a directory laid out as a kubelet's
# (pods/UID/volumes/PLUGIN/NAME, with mount/ below a CSI volume) and a real
# `lifeboat agent --node` serving it, registered in its cluster as the
# DaemonSet's pod would be (namespace lifeboat, its labels, podIP, the port
# named node-api).
#
# Checked: a cluster backup with --volume-data backs up the files of the PVCs
# that running pods mount (a Deployment's, a StatefulSet's), through the
# node agent of each pod's node, as snapshots linked from the backup; a PVC
# on a node without a node agent is a failed item, named; the node agent's
# API refuses a missing token and names that are not plain (a path out of the
# kubelet's pod volumes); a restore into another cluster with a namespace
# map makes the workloads wait (the lifeboat-restore-wait init container),
# does not restore the old PVs, restores the files into the new volumes once
# their pods are on a node, and writes the marker the init container waits
# for, which its command then sees; --dry-run and --to-dir say what happens to
# the files; a PVC whose pod never comes is reported failed after the wait.
source "$(dirname "$0")/lib.sh" "$1"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KUBECTL=${KUBECTL:-kubectl}
command -v "$KUBECTL" >/dev/null || fail "kubectl is missing (scripts/deps.sh installs kubernetes-client)"
export LIFEBOAT_REPO_PASSWORD=correct-horse
export LIFEBOAT_TOKEN=node-secret
cd "$WORK"

# --- Two clusters -----------------------------------------------------------------------
fake_k8s_certs
declare -A PORT
for c in east west; do
  start_fake "$c"
  cat > "kc-$c" <<EOF
apiVersion: v1
kind: Config
current-context: $c
clusters: [ { name: $c, cluster: { server: "https://127.0.0.1:${PORT[$c]}", certificate-authority-data: "$(base64 -w0 ca.crt)" } } ]
users: [ { name: $c, user: { token: token-$c } } ]
contexts: [ { name: $c, context: { cluster: $c, user: $c } } ]
EOF
done
k() { local c=$1; shift; "$KUBECTL" --kubeconfig "$WORK/kc-$c" "$@"; }
# POSTs an object as given (status included: the fake keeps it, as a kubelet would set it).
post() {  # post CLUSTER PATH JSON
  curl -sSfk -H "Authorization: Bearer token-$1" -H 'Content-Type: application/json' -X POST \
    "https://127.0.0.1:${PORT[$1]}$2" -d "$3" >/dev/null || fail "POST $2 to $1"
}
put_volume_name() {  # put_volume_name CLUSTER NS PVC PV: the PVC bound, as the PV controller does
  k "$1" -n "$2" get pvc "$3" -o json | jq --arg pv "$4" '.spec.volumeName = $pv' | k "$1" replace --validate=false -f - >/dev/null
}
uid_of() { k "$1" -n "$2" get pod "$3" -o jsonpath='{.metadata.uid}'; }

write_plan
cat >> plan.yaml <<PLAN
backup:
  locations:
    local: { type: filesystem, path: $WORK/repo }
clusters:
  east: { kubeconfig: $WORK/kc-east }
  west: { kubeconfig: $WORK/kc-west, volume_wait: 90s }
PLAN
sed 's/volume_wait: 90s/volume_wait: 2s/' plan.yaml > plan-short.yaml
lb() { "$LIFEBOAT" "$@" --plan "$WORK/plan.yaml"; }
expect_exit 0 lb repo init -l local

# --- Node agents: node-a in east, node-b in west ----------------------------------------------
declare -A NODE_PORT NODE_PID
start_node() {  # start_node CLUSTER NODE
  NODE_PORT[$2]=$(free_port)
  mkdir -p "kubelet-$2/pods"
  "$LIFEBOAT" --log-format json agent --node --plan plan.yaml --listen "127.0.0.1:${NODE_PORT[$2]}" \
    --kubelet-root "$WORK/kubelet-$2" --node-name "$2" > "node-$2.log" 2>&1 &
  PIDS+=("$!")
  NODE_PID[$2]=$!
  wait_listening "$!" "${NODE_PORT[$2]}" 20 || { cat "node-$2.log" >&2; fail "the node agent $2 did not start"; }
  post "$1" /api/v1/namespaces/lifeboat/pods "$(jq -n --arg node "$2" --argjson port "${NODE_PORT[$2]}" '{
    apiVersion: "v1", kind: "Pod",
    metadata: {name: ("lifeboat-node-" + $node), labels: {"app.kubernetes.io/name": "lifeboat", "app.kubernetes.io/component": "node-agent"}},
    spec: {nodeName: $node, containers: [{name: "node-agent", image: "registry.example/lifeboat:1.0",
           ports: [{name: "node-api", containerPort: $port}]}]},
    status: {phase: "Running", podIP: "127.0.0.1"}}')"
}
for c in east west; do k "$c" create namespace lifeboat >/dev/null; done
start_node east node-a
start_node west node-b

# --- The application in east: a Deployment and a StatefulSet with PVCs ---------------------------
k east create namespace shop >/dev/null
k east apply --validate=false -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: { name: fast }
provisioner: ebs.csi.aws.com
---
apiVersion: v1
kind: PersistentVolume
metadata: { name: pv-east-1 }
spec:
  capacity: { storage: 1Gi }
  accessModes: [ReadWriteOnce]
  storageClassName: fast
  claimRef: { namespace: shop, name: uploads }
  csi: { driver: ebs.csi.aws.com, volumeHandle: vol-1 }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: uploads, namespace: shop }
spec: { accessModes: [ReadWriteOnce], storageClassName: fast, volumeName: pv-east-1, resources: { requests: { storage: 1Gi } } }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: data-db-0, namespace: shop, labels: { app: db } }
spec: { accessModes: [ReadWriteOnce], storageClassName: fast, volumeName: pv-east-2, resources: { requests: { storage: 1Gi } } }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: scratch, namespace: shop }
spec: { accessModes: [ReadWriteOnce], storageClassName: fast, volumeName: pv-east-3, resources: { requests: { storage: 1Gi } } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [ { name: web, image: nginx:1.25, volumeMounts: [ { name: files, mountPath: /srv } ] } ]
      volumes: [ { name: files, persistentVolumeClaim: { claimName: uploads } } ]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: shop }
spec:
  replicas: 1
  serviceName: db
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec: { containers: [ { name: db, image: postgres:15, volumeMounts: [ { name: data, mountPath: /var/lib/postgresql } ] } ] }
  volumeClaimTemplates:
    - metadata: { name: data }
      spec: { accessModes: [ReadWriteOnce], storageClassName: fast, resources: { requests: { storage: 1Gi } } }
EOF
pod_json() {  # pod_json NAME NODE PHASE VOLUME CLAIM [OWNER-KIND OWNER-NAME]
  jq -n --arg name "$1" --arg node "$2" --arg phase "$3" --arg vol "$4" --arg claim "$5" --arg kind "${6:-}" \
    --arg owner "${7:-}" '{
    apiVersion: "v1", kind: "Pod", metadata: ({name: $name} + if $kind == "" then {} else {ownerReferences: [
      {apiVersion: "apps/v1", kind: $kind, name: $owner, uid: "0b0e", controller: true}]} end),
    spec: {nodeName: $node, containers: [{name: "c", image: "busybox"}],
           volumes: [{name: $vol, persistentVolumeClaim: {claimName: $claim}}]},
    status: {phase: $phase, podIP: "10.0.0.9"}}'
}
# The pods as their controllers make them (owned: a restore leaves them to the restored controllers).
post east /apis/apps/v1/namespaces/shop/replicasets "$(jq -n '{apiVersion: "apps/v1", kind: "ReplicaSet",
  metadata: {name: "web-7c9", ownerReferences: [{apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "0b0d", controller: true}]},
  spec: {replicas: 1, selector: {matchLabels: {app: "web"}}, template: {metadata: {labels: {app: "web"}}, spec: {containers: [{name: "web", image: "nginx:1.25"}]}}}}')"
post east /api/v1/namespaces/shop/pods "$(pod_json web-7c9-x2 node-a Running files uploads ReplicaSet web-7c9)"
post east /api/v1/namespaces/shop/pods "$(pod_json db-0 node-a Running data data-db-0 StatefulSet db)"
post east /api/v1/namespaces/shop/pods "$(pod_json batch-1 node-a Pending tmp scratch)"
# Their volumes on node-a, as the kubelet lays them out: a CSI volume's files in mount/.
WEB=kubelet-node-a/pods/$(uid_of east shop web-7c9-x2)/volumes/kubernetes.io~csi/pv-east-1/mount
DB=kubelet-node-a/pods/$(uid_of east shop db-0)/volumes/kubernetes.io~local-volume/pv-east-2
mkdir -p "$WEB/img" "$DB/base/1"
echo '<h1>shop</h1>' > "$WEB/index.html"
head -c 3000000 /dev/urandom > "$WEB/img/big.bin"
ln -s index.html "$WEB/home.html"
chmod 0640 "$WEB/index.html"
for i in $(seq 1 50); do echo "row $i" > "$DB/base/1/$i"; done

# --- The node agent's API is guarded -------------------------------------------------------------
NA=http://127.0.0.1:${NODE_PORT[node-a]}
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$NA/v1/node/backups" -d '{}')
[ "$code" = 401 ] || fail "a job without the token: HTTP $code"
auth=(-H "Authorization: Bearer $LIFEBOAT_TOKEN")
out=$(curl -s "${auth[@]}" -X POST "$NA/v1/node/backups" \
  -d '{"location":"local","pod_uid":"../../../etc","volume":"x","source":"pvc:east/a/b"}')
grep -q "pod_uid must be a pod's UID" <<<"$out" || fail "a pod_uid with a path: $out"
out=$(curl -s "${auth[@]}" -X POST "$NA/v1/node/backups" \
  -d '{"location":"local","pod_uid":"abc","volume":"..","source":"pvc:east/a/b"}')
grep -q "volume must be" <<<"$out" || fail "a volume of '..': $out"
# A volume directory that is a symlink out of the kubelet's tree is not a volume.
mkdir -p kubelet-node-a/pods/evil/volumes/kubernetes.io~csi outside
echo secret > outside/secret
ln -s "$WORK/outside" kubelet-node-a/pods/evil/volumes/kubernetes.io~csi/pv-x
job=$(curl -s "${auth[@]}" -X POST "$NA/v1/node/backups" \
  -d '{"location":"local","pod_uid":"evil","volume":"pv-x","source":"pvc:east/a/b"}' | jq -r .job)
for _ in $(seq 1 50); do
  state=$(curl -s "${auth[@]}" "$NA/v1/node/jobs/$job"); [ "$(jq -r .state <<<"$state")" = failed ] && break; sleep 0.1
done
grep -q "has no volume pv-x" <<<"$state" || fail "a symlinked volume directory: $state"
code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$NA/v1/node/jobs/999")
[ "$code" = 404 ] || fail "an unknown job: HTTP $code"
pass "the node agent refuses a missing token, a pod UID or volume that is a path, and a symlinked volume directory"

# --- Backup with the volumes' files ----------------------------------------------------------
expect_exit 0 lb backup create -l local --cluster east --namespace shop --volume-data -o json
ID=$(jq -r .id <<<"$OUT")
[ "$(jq '.volumes | length' <<<"$OUT")" -eq 2 ] || fail "two running pods' PVCs, one pending pod's not: $OUT"
[ "$(jq -r '.volumes[] | select(.pvc == "uploads") | .files' <<<"$OUT")" -eq 2 ] || fail "uploads' files: $OUT"
[ "$(jq -r '.volumes[] | select(.pvc == "data-db-0") | .node' <<<"$OUT")" = node-a ] || fail "data-db-0's node: $OUT"
expect_exit 0 lb backup list -l local -o json
jq -e 'map(.source) | index("pvc:east/shop/uploads") and index("pvc:east/shop/data-db-0")' <<<"$OUT" >/dev/null ||
  fail "the volume snapshots' sources: $OUT"
expect_exit 0 lb restore "$ID" -l local --to files
jq -e '.volumes | length == 2 and all(.snapshot != null)' files/lifeboat-backup.json >/dev/null ||
  fail "lifeboat-backup.json links: $(cat files/lifeboat-backup.json)"
pass "backup --volume-data: the files of the PVCs of running pods, by the node agent of their node, linked from the backup"

# A PVC on a node without a node agent: a failed item, named; the rest is backed up.
post east /api/v1/namespaces/shop/pods "$(pod_json batch-2 node-c Running tmp scratch)"
expect_exit 1 lb backup create -l local --cluster east --namespace shop --volume-data
grep -q "volume data of PVC shop/scratch: no node agent runs on node node-c" <<<"$OUT" ||
  fail "a PVC on a node without a node agent: $OUT"
grep -q "shop/uploads on node-a: backup" <<<"$OUT" || fail "the other PVCs are still backed up: $OUT"
pass "a PVC whose node has no node agent fails by name; the others are backed up"

# --- Restore into west -----------------------------------------------------------------------------
k west apply --validate=false -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: { name: standard }
provisioner: pd.csi.storage.gke.io
EOF
expect_exit 0 lb restore "$ID" --cluster west --namespace-map shop:shop-dry --storage-class-map fast:standard --dry-run -o json
[ "$(jq '[.items[] | select(.kind == "volume-data" and .result == "would-restore")] | length' <<<"$OUT")" -eq 2 ] ||
  fail "dry run: $OUT"
expect_exit 0 lb restore "$ID" --to-dir manifests --namespace-map shop:shop-dr
grep -q "were not restored: manifests for kubectl apply cannot carry them" <<<"$OUT" || fail "--to-dir: $OUT"
! grep -rq lifeboat-restore-wait manifests || fail "--to-dir manifests wait for files nothing restores"
pass "--dry-run would restore both PVCs' files; --to-dir says it cannot and adds no wait"

lb restore "$ID" --cluster west --namespace-map shop:shop-dr --storage-class-map fast:standard -o json \
  > restore.json 2> restore.err &
RESTORE=$!
# The controllers and the scheduler: once the workloads exist, their pods on node-b, the PVCs bound.
for _ in $(seq 1 200); do
  k west -n shop-dr get deployment web >/dev/null 2>&1 && k west -n shop-dr get statefulset db >/dev/null 2>&1 && break
  sleep 0.1
done
dep=$(k west -n shop-dr get deployment web -o json)
[ "$(jq -r '.spec.template.spec.initContainers[0].name' <<<"$dep")" = lifeboat-restore-wait ] ||
  fail "the Deployment does not wait for its files: $dep"
[ "$(jq -r '.spec.template.spec.initContainers[0].image' <<<"$dep")" = registry.example/lifeboat:1.0 ] ||
  fail "the wait's image is not the node agent's: $dep"
sts=$(k west -n shop-dr get statefulset db -o json)
[ "$(jq -r '.spec.template.spec.initContainers[0].volumeMounts[0].name' <<<"$sts")" = data ] ||
  fail "the StatefulSet's claim template volume does not wait: $sts"
[ "$(jq -r '.spec.volumeClaimTemplates[0].spec.storageClassName' <<<"$sts")" = standard ] || fail "storage class map: $sts"
! k west get pv pv-east-1 >/dev/null 2>&1 || fail "the old PV was restored: the files go into a new volume"
pvc=$(k west -n shop-dr get pvc uploads -o json)
[ "$(jq -r '.spec.volumeName // ""' <<<"$pvc")" = "" ] || fail "the PVC still names the old PV: $pvc"
put_volume_name west shop-dr uploads pv-west-1
put_volume_name west shop-dr data-db-0 pv-west-2
template_pod() {  # template_pod NAME SPEC-JSON: a pod of that template on node-b
  jq --arg name "$1" '{apiVersion: "v1", kind: "Pod", metadata: {name: $name},
    spec: (.spec.template.spec + {nodeName: "node-b"}), status: {phase: "Pending", podIP: "10.1.0.7"}}' <<<"$2"
}
sts_pod=$(jq '.spec.template.spec.volumes = [{name: "data", persistentVolumeClaim: {claimName: "data-db-0"}}]' <<<"$sts")
post west /api/v1/namespaces/shop-dr/pods "$(template_pod web-x1 "$dep")"
post west /api/v1/namespaces/shop-dr/pods "$(template_pod db-0 "$sts_pod")"
WEB2=kubelet-node-b/pods/$(uid_of west shop-dr web-x1)/volumes/kubernetes.io~csi/pv-west-1/mount
DB2=kubelet-node-b/pods/$(uid_of west shop-dr db-0)/volumes/kubernetes.io~local-volume/pv-west-2
mkdir -p "$WEB2" "$DB2"
wait "$RESTORE" || fail "the restore failed: $(cat restore.json restore.err)"
R=$(cat restore.json)
[ "$(jq '[.items[] | select(.kind == "volume-data" and .result == "restored")] | length' <<<"$R")" -eq 2 ] ||
  fail "the files of both PVCs: $R"
[ "$(jq .volumes_restored <<<"$R")" -eq 2 ] || fail "volumes_restored: $R"
jq -r '.items[] | select(.kind == "persistentvolumes") | .reason' <<<"$R" | grep -q "restored into a new volume" ||
  fail "the old PVs' items: $R"
diff -r --exclude=.lifeboat-restore "$WEB" "$WEB2" || fail "uploads' files differ after the restore"
diff -r --exclude=.lifeboat-restore "$DB" "$DB2" || fail "data-db-0's files differ after the restore"
[ "$(stat -c %a "$WEB2/index.html")" = 640 ] && [ -L "$WEB2/home.html" ] || fail "modes and symlinks not restored"
# The init container's own command ends once the marker is there (its paths mapped to the node's).
cmd=$(jq -r '.spec.template.spec.initContainers[0].command[2]' <<<"$dep")
marker=$(jq -r '.spec.template.spec.initContainers[0].command[4]' <<<"$dep")
[ -f "$WEB2/.lifeboat-restore/${marker##*/}" ] || fail "no marker ${marker##*/} in the restored volume"
timeout 10 sh -c "$cmd" lifeboat-restore-wait "$WEB2/.lifeboat-restore/${marker##*/}" >/dev/null ||
  fail "the init container's command does not end with the marker written"
grep -q '^lifeboat_node_jobs_total{kind="restore",result="done"} 2$' <<<"$(curl -sf "http://127.0.0.1:${NODE_PORT[node-b]}/metrics")" ||
  fail "node-b's metrics: $(curl -sf "http://127.0.0.1:${NODE_PORT[node-b]}/metrics" | grep lifeboat_node)"
pass "restore: workloads wait for their files (an init container with the node agent's image), old PVs are not restored, the files land in the new volumes on node-b with modes and symlinks, and the marker ends the wait"

# A PVC whose pod never comes: failed after the plan's volume_wait, and the exit code says so.
expect_exit 1 "$LIFEBOAT" restore "$ID" --cluster west --namespace-map shop:shop-late --plan "$WORK/plan-short.yaml"
grep -q "volume-data .*shop-late .*uploads .*failed .*no pod that mounts it is on a node yet after 2 s" <<<"$OUT" ||
  fail "a PVC whose pod never comes: $OUT"
pass "a PVC no pod mounts within volume_wait is a failed item"

# --- On a schedule, with retention ----------------------------------------------------------
# backup.schedules.vol (volume_data: true, keep: last 1) run twice by east's
# agent: one cluster backup is kept, and the PVC files of the one retention
# deleted go with it.
sed -i "s|^    local: .*|&\n  schedules:\n    vol: { cron: '0 0 1 1 *', location: local, cluster: east, namespaces: [shop], volume_data: true, keep: { last: 1 } }|" plan.yaml
expect_exit 0 "$LIFEBOAT" plan validate plan.yaml
start_agent east
wait_http "http://127.0.0.1:$PORT_EAST/healthz"
schedule_runs() { curl -sf "http://127.0.0.1:$PORT_EAST/v1/backups" | jq -c '.schedules[] | select(.schedule == "vol")'; }
for n in 1 2; do
  curl -sf -X POST -H "Authorization: Bearer $LIFEBOAT_TOKEN" "http://127.0.0.1:$PORT_EAST/v1/backups/vol/run" >/dev/null ||
    fail "POST /v1/backups/vol/run"
  for _ in $(seq 1 300); do
    s=$(schedule_runs); [ "$(jq .runs <<<"$s")" -ge "$n" ] && [ "$(jq -r .state <<<"$s")" = idle ] && break; sleep 0.1
  done
  [ "$(jq .runs <<<"$s")" -ge "$n" ] || fail "the schedule did not run: $s"
done
expect_exit 0 lb backup list -l local -o json
[ "$(jq '[.[] | select(.schedule == "vol" and .source == "cluster:east")] | length' <<<"$OUT")" -eq 1 ] ||
  fail "the schedule's cluster backups after retention: $OUT"
[ "$(jq '[.[] | select(.schedule == "vol" and .source == "pvc:east/shop/uploads")] | length' <<<"$OUT")" -eq 1 ] ||
  fail "the PVC files of the deleted cluster backup were kept: $OUT"
kept=$(jq -r '.[] | select(.schedule == "vol" and .source == "pvc:east/shop/uploads") | .id' <<<"$OUT")
expect_exit 0 lb restore "$(jq -r '.[] | select(.schedule == "vol" and .source == "cluster:east") | .id' <<<"$OUT")" -l local --to sched
jq -e --arg id "$kept" '.volumes[] | select(.pvc == "uploads") | .snapshot == $id' sched/lifeboat-backup.json >/dev/null ||
  fail "the kept cluster backup links to a PVC snapshot that is gone: $(cat sched/lifeboat-backup.json)"
pass "a cluster schedule with volume_data: retention deletes a cluster backup's PVC files with it"

# A node agent stops cleanly on SIGTERM.
kill -TERM "${NODE_PID[node-b]}"
wait "${NODE_PID[node-b]}" || fail "node-b's agent exited $? on SIGTERM: $(tail -3 node-node-b.log)"
grep -q '"received SIGTERM, stopping"' node-node-b.log || fail "node-b's log: $(tail -3 node-node-b.log)"
pass "a node agent stops cleanly on SIGTERM"
