#!/usr/bin/env bash
# Kubernetes: cluster backup and restore through the real binary.
#
# No kube-apiserver can run on these machines (none is packaged), so the
# clusters are tests/integration/fake_apiserver.py, a FAKE API server. Its
# faithfulness is checked first with real clients: kubectl (apply, get with
# --chunk-size, api-resources, delete) and python3-kubernetes (paged list,
# create, 409). Then: a realistic application backed up from "east" and
# restored into "west" with namespace and storage-class maps, compared with
# `kubectl get -o json` on both sides after stripping what clusters assign;
# a second restore (skipped: exists; --existing update); --dry-run changes
# nothing; --to-dir manifests that kubectl applies; a cluster that does not
# serve a kind (a failed item, the rest restored); an unreachable cluster and
# refused credentials (clear errors, no backup written); 429 throttling
# (retried); a ReadOnly location untouched by a restore; the runbook steps
# restore-resources and scale in a failover (and a rollout that hangs);
# deploy/kubernetes rendered by kubectl kustomize and applied.
source "$(dirname "$0")/lib.sh" "$1"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3  # Debian's, with python3-kubernetes
KUBECTL=${KUBECTL:-kubectl}
command -v "$KUBECTL" >/dev/null || fail "kubectl is missing (scripts/deps.sh installs kubernetes-client)"
$PY -c "import kubernetes" 2>/dev/null || fail "python3-kubernetes is missing (scripts/deps.sh installs it)"
export LIFEBOAT_REPO_PASSWORD=correct-horse

# --- Certificates, servers, kubeconfigs --------------------------------------------
cd "$WORK"
fake_k8s_certs
declare -A PORT
start_fake east
start_fake west
start_fake south --without networking.k8s.io

# east: a token from an exec plugin; west: a client certificate; south: a token.
cat > get-token <<'SH'
#!/bin/sh
[ "$KUBERNETES_EXEC_INFO" != "" ] || { echo "no KUBERNETES_EXEC_INFO" >&2; exit 1; }
printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2099-01-01T00:00:00Z"}}\n' "$FAKE_TOKEN"
SH
chmod +x get-token
kubeconfig() {  # kubeconfig NAME USER-YAML
  cat > "kc-$1" <<EOF
apiVersion: v1
kind: Config
current-context: $1
clusters:
- name: $1
  cluster: { server: "https://127.0.0.1:${PORT[$1]}", certificate-authority-data: "$(base64 -w0 ca.crt)" }
users:
- name: $1
  user: $2
contexts:
- name: $1
  context: { cluster: $1, user: $1 }
EOF
}
kubeconfig east "{ exec: { apiVersion: client.authentication.k8s.io/v1beta1, command: ./get-token, env: [ { name: FAKE_TOKEN, value: token-east } ] } }"
kubeconfig west "{ client-certificate: client.crt, client-key: client.key }"
kubeconfig south "{ token: token-south }"
PORT[gone]=$(free_port)
kubeconfig gone "{ token: x }"
cp kc-east kc-expired
sed -i 's/value: token-east/value: expired-token/' kc-expired
k() { local c=$1; shift; "$KUBECTL" --kubeconfig "$WORK/kc-$c" "$@"; }

# --- The fake against real clients ------------------------------------------------------
grep -q "^deployments .*apps/v1 .*true .*Deployment" <<<"$(k east api-resources)" || fail "kubectl api-resources: $(k east api-resources 2>&1)"
k east create namespace probe >/dev/null
for i in 1 2 3 4 5; do k east -n probe create configmap "c$i" --from-literal=k=$i >/dev/null; done
got=$(k east -n probe get configmaps --chunk-size=2 -o name -v=6 2>&1)
[ "$(grep -c 'continue=' <<<"$got")" -ge 2 ] || fail "kubectl --chunk-size did not page: $got"
[ "$(grep -c '^configmap/' <<<"$got")" -eq 5 ] || fail "kubectl listed: $got"
k east -n probe delete configmap c5 >/dev/null
$PY - "$WORK/kc-east" <<'PY' || fail "python3-kubernetes against the fake"
import sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
v1 = client.CoreV1Api()
page = v1.list_namespaced_config_map("probe", limit=3)
rest = v1.list_namespaced_config_map("probe", limit=3, _continue=page.metadata._continue)
names = [c.metadata.name for c in page.items + rest.items]
assert names == ["c1", "c2", "c3", "c4"], names
v1.create_namespaced_config_map("probe", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py"), data={"a": "b"}))
try:
    v1.create_namespaced_config_map("probe", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py")))
    raise SystemExit("no conflict")
except client.ApiException as e:
    assert e.status == 409, e.status
PY
k east delete namespace probe >/dev/null
pass "the fake API server answers kubectl (api-resources, apply, get --chunk-size, delete) and python3-kubernetes (paged list, create, 409)"

# --- The application in east --------------------------------------------------------------
cat > storage.yaml <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: { name: gp2 }
provisioner: ebs.csi.aws.com
---
apiVersion: v1
kind: PersistentVolume
metadata: { name: pv-uploads }
spec:
  capacity: { storage: 1Gi }
  accessModes: [ReadWriteOnce]
  storageClassName: gp2
  hostPath: { path: /srv/uploads }
  claimRef: { namespace: shop, name: uploads }
EOF
cat > crd.yaml <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.example.com }
spec:
  group: example.com
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget, shortNames: [wd] }
  versions:
  - name: v1
    served: true
    storage: true
    schema: { openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true } }
EOF
cat > app.yaml <<'EOF'
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { team: shop } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: web-config, namespace: shop, labels: { app: web } }
data: { LOG_LEVEL: info, FEATURES: "a,b" }
---
apiVersion: v1
kind: Secret
metadata: { name: db-password, namespace: shop }
type: Opaque
data: { password: c2VjcmV0 }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: uploads, namespace: shop }
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: gp2
  volumeName: pv-uploads
  resources: { requests: { storage: 1Gi } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop, labels: { app: web } }
spec:
  replicas: 3
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: nginx:1.25
        envFrom: [ { configMapRef: { name: web-config } } ]
        env: [ { name: DB_PASSWORD, valueFrom: { secretKeyRef: { name: db-password, key: password } } } ]
        volumeMounts: [ { name: uploads, mountPath: /uploads } ]
      volumes: [ { name: uploads, persistentVolumeClaim: { claimName: uploads } } ]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: shop }
spec:
  serviceName: db
  replicas: 2
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec: { containers: [ { name: db, image: postgres:15 } ] }
  volumeClaimTemplates:
  - metadata: { name: data }
    spec: { accessModes: [ReadWriteOnce], storageClassName: gp2, resources: { requests: { storage: 10Gi } } }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { selector: { app: web }, ports: [ { port: 80, targetPort: 8080 } ] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: None, selector: { app: db }, ports: [ { port: 5432 } ] }
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: web, namespace: shop }
spec:
  rules:
  - host: shop.example.com
    http: { paths: [ { path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } } ] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: reader, namespace: shop }
rules: [ { apiGroups: [""], resources: [configmaps], verbs: [get, list] } ]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: web-reads, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader }
subjects: [ { kind: ServiceAccount, name: web, namespace: shop } ]
---
apiVersion: v1
kind: Event
metadata: { name: web.1, namespace: shop }
involvedObject: { kind: Deployment, name: web, namespace: shop }
reason: ScalingReplicaSet
message: runtime noise, never backed up
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: { name: leader, namespace: shop }
spec: { holderIdentity: web-1 }
EOF
cat > widgets.yaml <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: { name: blue, namespace: shop }
spec: { color: blue, size: 3 }
---
apiVersion: example.com/v1
kind: Widget
metadata: { name: red, namespace: shop }
spec: { color: red, size: 5 }
EOF
k east apply --validate=false -f storage.yaml -f crd.yaml -f app.yaml >/dev/null
deadline=$(( SECONDS + 20 ))
until k east get widgets -A >/dev/null 2>&1; do [ $SECONDS -lt $deadline ] || fail "the CRD was never served"; sleep 0.2; done
k east apply --validate=false -f widgets.yaml >/dev/null
# What the deployment's controller made: a replica set owned by it, a pod owned by that.
uid=$(k east -n shop get deployment web -o jsonpath='{.metadata.uid}')
cat > owned.yaml <<EOF
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d4f
  namespace: shop
  ownerReferences: [ { apiVersion: apps/v1, kind: Deployment, name: web, uid: "$uid", controller: true } ]
spec:
  replicas: 3
  selector: { matchLabels: { app: web } }
  template: { metadata: { labels: { app: web } }, spec: { containers: [ { name: web, image: nginx:1.25 } ] } }
EOF
k east apply --validate=false -f owned.yaml >/dev/null
k west apply --validate=false -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: { name: standard }
provisioner: pd.csi.storage.gke.io
EOF

# --- The plan ------------------------------------------------------------------------------
write_plan
cat >> "$WORK/plan.yaml" <<PLAN
  south:   { role: standby, agent: 127.0.0.1:$(free_port) }
backup:
  locations:
    local: { type: filesystem, path: $WORK/repo }
    local-ro: { type: filesystem, path: $WORK/repo, access: ReadOnly }
clusters:
  east:  { kubeconfig: $WORK/kc-east }
  west:  { kubeconfig: $WORK/kc-west, qps: 50, burst: 100 }
  south: { kubeconfig: $WORK/kc-south }
PLAN
cp "$WORK/plan.yaml" "$WORK/plan-bad.yaml"
cat >> "$WORK/plan-bad.yaml" <<PLAN
  witness: { kubeconfig: $WORK/kc-gone }
PLAN
sed -i "s|east:  { kubeconfig: $WORK/kc-east }|east:  { kubeconfig: $WORK/kc-expired }|" "$WORK/plan-bad.yaml"
lb() { "$LIFEBOAT" "$@" --plan "$WORK/plan.yaml"; }
expect_exit 0 lb repo init -l local

# --- Bad input: nothing written ---------------------------------------------------------------
expect_exit 1 "$LIFEBOAT" backup create -l local --cluster witness --plan "$WORK/plan-bad.yaml"
grep -q "cluster https://127.0.0.1:${PORT[gone]}: .*onnect" <<<"$OUT" || fail "an unreachable cluster: $OUT"
expect_exit 1 "$LIFEBOAT" backup create -l local --cluster east --plan "$WORK/plan-bad.yaml"
grep -q "refused the credentials" <<<"$OUT" || fail "expired credentials: $OUT"
expect_exit 2 lb backup create -l local --cluster north
grep -q "no cluster for region 'north'" <<<"$OUT" || fail "an unknown cluster: $OUT"
expect_exit 0 lb backup list -l local -o json
[ "$(jq length <<<"$OUT")" -eq 0 ] || fail "a failed backup wrote something: $OUT"
pass "an unreachable cluster, refused credentials and an unknown cluster: clear errors, no backup written"

# --- Backup (429s on the way are retried) ---------------------------------------------------
curl -sk -X POST -d '{"count": 3}' "https://127.0.0.1:${PORT[east]}/fake/throttle" >/dev/null
expect_exit 0 lb backup create -l local --cluster east -o json
ID=$(jq -r .id <<<"$OUT")
[ "$(jq .api.retries <<<"$OUT")" -ge 3 ] || fail "the 429s were not retried: $OUT"
objects=$(jq .objects <<<"$OUT")
expect_exit 0 lb restore "$ID" -l local --to "$WORK/files"
F=$WORK/files/resources
for f in deployments.apps/namespaces/shop/web.json statefulsets.apps/namespaces/shop/db.json \
         widgets.example.com/namespaces/shop/blue.json secrets/namespaces/shop/db-password.json \
         customresourcedefinitions.apiextensions.k8s.io/cluster/widgets.example.com.json \
         storageclasses.storage.k8s.io/cluster/gp2.json persistentvolumes/cluster/pv-uploads.json \
         namespaces/cluster/shop.json replicasets.apps/namespaces/shop/web-5d4f.json; do
  [ -f "$F/$f" ] || fail "not in the backup: resources/$f (has: $(cd "$F" && find . -name '*.json' | sort | tr '\n' ' '))"
done
for d in events events.events.k8s.io leases.coordination.k8s.io nodes; do
  [ ! -e "$F/$d" ] || fail "a runtime kind was backed up: $d"
done
[ "$(jq -r .apiVersion "$F/deployments.apps/namespaces/shop/web.json")" = apps/v1 ] || fail "no apiVersion in the object"
[ "$(stat -c %a "$F/secrets/namespaces/shop/db-password.json")" = 600 ] || fail "a secret's file is readable by others"
pass "backup of a cluster: $objects objects in the documented layout, CRDs and PVs included, events/leases left out, 429s retried"

# --- Restore into west with maps, and compare ------------------------------------------------
expect_exit 0 lb restore "$ID" -l local --cluster west --namespace-map shop:shop-dr --storage-class-map gp2:standard -o json
R=$OUT
[ "$(jq '[.items[] | select(.result == "failed")] | length' <<<"$R")" -eq 0 ] || fail "failed items: $R"
jq -e '.items[] | select(.kind == "replicasets.apps" and .result == "skipped" and (.reason | test("Deployment.apps web")))' <<<"$R" >/dev/null ||
  fail "the replica set its deployment makes again was not skipped: $R"
order=$(jq -r '.order | join(" ")' <<<"$R")
pos() { local i=0; for w in $order; do [ "$w" = "$1" ] && { echo $i; return; }; i=$((i+1)); done; echo 999; }
[ "$(pos customresourcedefinitions.apiextensions.k8s.io)" -lt "$(pos widgets.example.com)" ] || fail "order: $order"
[ "$(pos configmaps)" -lt "$(pos deployments.apps)" ] || fail "order: $order"
[ "$(pos storageclasses.storage.k8s.io)" -lt "$(pos persistentvolumeclaims)" ] || fail "order: $order"
strip='del(.metadata.uid, .metadata.resourceVersion, .metadata.generation, .metadata.creationTimestamp,
           .metadata.managedFields, .metadata.namespace, .metadata.annotations, .status, .spec.clusterIP, .spec.clusterIPs)'
map='walk(if type == "object" and .storageClassName == "gp2" then .storageClassName = "standard" else . end)
     | walk(if type == "object" and .kind == "ServiceAccount" and .namespace == "shop" then .namespace = "shop-dr" else . end)'
for kind in configmaps secrets serviceaccounts persistentvolumeclaims services deployments.apps statefulsets.apps \
            ingresses.networking.k8s.io roles.rbac.authorization.k8s.io rolebindings.rbac.authorization.k8s.io widgets.example.com; do
  a=$(k east -n shop get "$kind" -o json | jq -S "[.items[] | $strip | $map] | sort_by(.metadata.name)")
  b=$(k west -n shop-dr get "$kind" -o json | jq -S "[.items[] | $strip] | sort_by(.metadata.name)")
  [ "$(jq length <<<"$a")" -gt 0 ] || fail "east has no $kind"
  [ "$a" = "$b" ] || { diff <(echo "$a") <(echo "$b") >&2; fail "$kind differs between east and west"; }
done
[ "$(k west -n shop-dr get replicasets -o name | wc -l)" -eq 0 ] || fail "the owned replica set was restored"
[ "$(k west get pv pv-uploads -o jsonpath='{.spec.storageClassName}')" = standard ] || fail "the PV's storage class was not mapped"
[ "$(k west -n shop-dr get pvc uploads -o jsonpath='{.spec.volumeName}')" = pv-uploads ] || fail "the PVC lost its restored PV"
pass "restore into another cluster with namespace and storage-class maps: every kind equal to the source after stripping (11 kinds), CRD before its resources, owned objects left to their controller"

# --- Again: skipped, then updated; a dry run ----------------------------------------------
expect_exit 0 lb restore "$ID" -l local --cluster west --namespace-map shop:shop-dr -o json
[ "$(jq '.created' <<<"$OUT")" -eq 0 ] && [ "$(jq '.skipped' <<<"$OUT")" -ge 10 ] || fail "a second restore: $OUT"
jq -e '.items[] | select(.kind == "configmaps" and .result == "skipped" and .reason == "exists")' <<<"$OUT" >/dev/null || fail "no 'skipped: exists': $OUT"
k west -n shop-dr patch configmap web-config --type merge -p '{"data":{"LOG_LEVEL":"debug"}}' >/dev/null
expect_exit 0 lb restore "$ID" -l local --cluster west --namespace-map shop:shop-dr --resource configmaps --existing update
grep -q "^configmaps  *shop-dr  *web-config  *updated" <<<"$OUT" || fail "--existing update: $OUT"
[ "$(k west -n shop-dr get configmap web-config -o jsonpath='{.data.LOG_LEVEL}')" = info ] || fail "the update did not restore the backed-up data"
before=$(k west get namespaces -o name | sort)
expect_exit 0 lb restore "$ID" -l local --cluster west --namespace-map shop:shop-new --dry-run
grep -q "dry run, nothing changed" <<<"$OUT" && grep -q "would-create" <<<"$OUT" || fail "dry run: $OUT"
[ "$(k west get namespaces -o name | sort)" = "$before" ] || fail "the dry run changed the cluster"
# A create the server did and then answered 504 (the fake's /fake/timeout):
# the retry finds the object, and its result says it may be the restore's own.
k west create namespace shop-504 >/dev/null
curl -sk -X POST -d '{"count": 1}' "https://127.0.0.1:${PORT[west]}/fake/timeout" >/dev/null
expect_exit 0 lb restore "$ID" -l local --cluster west --namespace-map shop:shop-504 --resource configmaps -o json
jq -e '[.items[] | select(.result == "skipped" and .reason == "exists (the create was retried after HTTP 504: it may have made it)")] | length == 1' <<<"$OUT" >/dev/null ||
  fail "a create answered 504 after it was done: $OUT"
jq -e '[.items[] | select(.result == "failed")] | length == 0' <<<"$OUT" >/dev/null || fail "a 504 failed an item: $OUT"
[ "$(k west -n shop-504 get configmap web-config -o jsonpath='{.data.LOG_LEVEL}')" = info ] || fail "web-config in shop-504"
pass "a second restore skips what exists (reason: exists), --existing update puts the backed-up version back, --dry-run changes nothing, a create answered 504 after it was done says it may be the restore's own"

# --- Manifests for kubectl; a cluster that does not serve a kind; a ReadOnly location ------
touch "$WORK/marker"; sleep 0.01
expect_exit 0 lb restore "$ID" -l local-ro --to-dir "$WORK/manifests" --namespace-map shop:shop-apply --exclude-resource replicasets
[ -z "$(find "$WORK/repo" -newer "$WORK/marker")" ] || fail "a restore from a ReadOnly location wrote: $(find "$WORK/repo" -newer "$WORK/marker")"
ls "$WORK/manifests" | head -1 | grep -q "^000-namespaces" || fail "manifests not in restore order: $(ls "$WORK/manifests")"
k south apply --validate=false -R -f "$WORK/manifests/000-namespaces" >/dev/null 2>&1
for d in "$WORK/manifests"/*; do
  case $d in *ingresses*|*000-namespaces*|*widgets*) continue;; esac
  k south apply --validate=false -R -f "$d" >/dev/null || fail "kubectl could not apply $d"
done
[ "$(k south -n shop-apply get deployment web -o jsonpath='{.spec.replicas}')" = 3 ] || fail "the applied manifests"
expect_exit 1 lb restore "$ID" -l local-ro --cluster south --namespace-map shop:shop-south
grep -q "ingresses.networking.k8s.io  *shop-south  *web  *failed  *the cluster does not serve ingresses.networking.k8s.io" <<<"$OUT" ||
  fail "a kind the cluster does not serve: $OUT"
[ "$(k south -n shop-south get deployment web -o jsonpath='{.metadata.name}')" = web ] || fail "the rest was not restored"
[ -z "$(find "$WORK/repo" -newer "$WORK/marker")" ] || fail "a restore from a ReadOnly location wrote to it"
pass "--to-dir writes manifests kubectl applies; a kind the cluster does not serve fails alone (exit 1); a ReadOnly location stays untouched"

# --- The runbook: restore-resources and scale in a failover to west ------------------------
# A pilot-light west takes over: the newest backup of east's cluster is
# restored into west (shop mapped to shop-fo), then web and db are scaled up
# and waited for (the fake's stand-in controller reports them ready after
# 0.5 s), then west's traffic goes on.
sed -e "s|^  west:  { kubeconfig: $WORK/kc-west, qps: 50, burst: 100 }|  west:\n    kubeconfig: $WORK/kc-west\n    scale:\n      - { deployment: shop-fo/web, replicas: 5 }\n      - { statefulset: shop-fo/db, replicas: 3 }\n    scale_timeout: 30s\n    restore: { from: east, location: local, namespaces: [shop], namespace_map: { shop: shop-fo } }|" \
  -e "s|^  east:  { kubeconfig: $WORK/kc-east }|  east: { kubeconfig: $WORK/kc-east, scale: [ { deployment: shop/web, replicas: 4 } ], scale_timeout: 1s }|" \
  -e "s|^    local-ro: .*|&\n  schedules:\n    cluster-east: { cron: '0 0 1 1 *', location: local, cluster: east, namespaces: [shop], exclude_resources: [secrets], keep: { last: 1 } }|" \
  -e "s|^pattern: warm-standby|pattern: pilot-light|" "$WORK/plan.yaml" > "$WORK/plan-fo.yaml"
grep -q "restore: { from: east" "$WORK/plan-fo.yaml" || fail "the failover plan was not written: $(cat "$WORK/plan-fo.yaml")"
expect_exit 0 "$LIFEBOAT" plan show "$WORK/plan-fo.yaml" -o json
jq -e '.failover.steps == ["fence","promote","restore-resources","scale","switch-traffic","verify"]' <<<"$OUT" >/dev/null ||
  fail "the default steps of a plan with cluster sections: $(jq -c .failover.steps <<<"$OUT")"
jq -e '.clusters.west.scale[0] == {"deployment": "shop-fo/web", "replicas": 5}' <<<"$OUT" >/dev/null || fail "plan show: $(jq -c .clusters <<<"$OUT")"
export LIFEBOAT_TOKEN=k8s-it-token
for r in east west witness; do
  "$LIFEBOAT" --log-format json agent --plan "$WORK/plan-fo.yaml" --region "$r" --data-dir "$WORK/data/$r" >>"$WORK/$r.log" 2>&1 &
  PIDS+=("$!")
done
WEST_AGENT=$(sed -n 's/^  west: *{ role: standby, agent: \([0-9.:]*\) }$/\1/p' "$WORK/plan-fo.yaml")
wait_http "http://$WEST_AGENT/healthz"
"$LIFEBOAT" failover --to west --plan "$WORK/plan-fo.yaml" --yes > "$WORK/fo.out" 2>&1 ||
  { cat "$WORK/fo.out" "$WORK/west.log" >&2; fail "the failover to west"; }
run=$(curl -sf "http://$WEST_AGENT/v1/status" | jq .failover.run)
jq -e '[.steps[].name] == ["fence","promote","restore-resources","scale","switch-traffic","verify"] and ([.steps[].state] | all(. == "done"))' <<<"$run" >/dev/null ||
  fail "the run: $run"
jq -e '.steps[2].output | test("^backup [0-9a-f]{8} of east.s cluster \\(.*\\) into west: [1-9][0-9]* created, 0 updated, [0-9]+ skipped, 0 failed$")' <<<"$run" >/dev/null ||
  fail "restore-resources: $(jq .steps[2] <<<"$run")"
jq -e '.steps[3].output == "scaled in west: deployment shop-fo/web 3->5 ready; statefulset shop-fo/db 2->3 ready"' <<<"$run" >/dev/null ||
  fail "scale: $(jq .steps[3] <<<"$run")"
[ "$(k west -n shop-fo get deployment web -o jsonpath='{.spec.replicas}/{.status.availableReplicas}')" = 5/5 ] ||
  fail "web in west: $(k west -n shop-fo get deployment web -o json)"
[ "$(k west -n shop-fo get statefulset db -o jsonpath='{.spec.replicas}/{.status.readyReplicas}')" = 3/3 ] ||
  fail "db in west: $(k west -n shop-fo get statefulset db -o json)"
[ "$(k west -n shop-fo get configmap web-config -o jsonpath='{.data.LOG_LEVEL}')" = info ] || fail "the restored config map"
pass "a failover to a pilot-light west: restore-resources put east's newest backup into west (shop -> shop-fo), scale brought web to 5 and db to 3 and waited until ready, then traffic"

# Back to east, whose web never gets ready (a rollout that hangs): the scale
# step fails, naming what it waited for, and traffic does not move.
curl -sk -X POST -d '{"namespace": "shop", "name": "web"}' "https://127.0.0.1:${PORT[east]}/fake/stuck" >/dev/null
expect_exit 1 "$LIFEBOAT" failover --to east --plan "$WORK/plan-fo.yaml" --yes
run=$(curl -sf "http://$WEST_AGENT/v1/status" | jq .failover.run)
jq -e '.state == "failed" and (.steps[] | select(.name == "scale") | .state == "failed" and
       (.output | test("not rolled out within 1s in east: deployment shop/web [34]->4 not ready \\(0 of 4 available\\)")))' <<<"$run" >/dev/null ||
  fail "a scale that never gets ready: $run"
jq -e '[.steps[] | select(.name == "switch-traffic") | .state] == ["pending"]' <<<"$run" >/dev/null || fail "traffic moved after a failed scale: $run"
pass "a rollout that hangs fails the scale step (named, with its status) and traffic stays"

# --- A cluster backup schedule -----------------------------------------------------------------
# backup.schedules.cluster-east backs up east's cluster (shop, without
# secrets), made by east's agent only; run twice by the admin API, its
# retention (keep last 1) leaves one.
EAST_AGENT=$(sed -n 's/^  east: *{ role: primary, agent: \([0-9.:]*\) }$/\1/p' "$WORK/plan-fo.yaml")
schedule_of() { curl -sf "http://$1/v1/backups" | jq -c '.schedules[] | select(.schedule == "cluster-east")'; }
run_schedule() {
  local before after i
  before=$(schedule_of "$1" | jq .runs)
  curl -sf -X POST -H "Authorization: Bearer $LIFEBOAT_TOKEN" "http://$1/v1/backups/cluster-east/run" >/dev/null ||
    fail "POST /v1/backups/cluster-east/run to $1"
  for i in $(seq 1 300); do
    after=$(schedule_of "$1")
    [ "$(jq .runs <<<"$after")" -gt "$before" ] && [ "$(jq -r .state <<<"$after")" = idle ] && return 0
    case $(jq -r .state <<<"$after") in skipped*) return 0;; esac
    sleep 0.1
  done
  fail "the schedule did not run on $1: $after"
}
run_schedule "$EAST_AGENT"
first=$(schedule_of "$EAST_AGENT")
jq -e '.volume == "cluster:east" and .failures == 0 and (.last_backup | length) == 64 and (has("last_error") | not)' <<<"$first" >/dev/null ||
  fail "the scheduled cluster backup: $first"
run_schedule "$EAST_AGENT"
second=$(schedule_of "$EAST_AGENT")
jq -e '.runs == 2 and .deleted_by_retention == 1' <<<"$second" >/dev/null || fail "the second run and its retention: $second"
run_schedule "$WEST_AGENT"
jq -e '.state == "skipped: east'"'"'s agent backs up its cluster" and .runs == 0' <<<"$(schedule_of "$WEST_AGENT")" >/dev/null ||
  fail "west ran east's cluster schedule: $(schedule_of "$WEST_AGENT")"
expect_exit 0 "$LIFEBOAT" backup list -l local --plan "$WORK/plan-fo.yaml" -o json
jq -e --arg id "$(jq -r .last_backup <<<"$second")" '[.[] | select(.schedule == "cluster-east")] | length == 1 and .[0].id == $id and .[0].source == "cluster:east"' <<<"$OUT" >/dev/null ||
  fail "the schedule's backups in the location: $OUT"
rm -rf "$WORK/files-s"
expect_exit 0 "$LIFEBOAT" restore "$(jq -r .last_backup <<<"$second")" -l local --plan "$WORK/plan-fo.yaml" --to "$WORK/files-s"
[ -f "$WORK/files-s/resources/deployments.apps/namespaces/shop/web.json" ] || fail "web is not in the scheduled backup"
[ "$(ls "$WORK/files-s/resources/namespaces/cluster")" = shop.json ] ||
  fail "namespaces beside shop in the scheduled backup: $(ls "$WORK/files-s/resources/namespaces/cluster")"
[ -z "$(find "$WORK/files-s/resources" -type f \( -path '*secrets*' -o -path '*/resources/*/namespaces/*' ! -path '*/namespaces/shop/*' \) | head -1)" ] ||
  fail "the schedule's selection: $(cd "$WORK/files-s" && find . -name '*.json' | sort | tr '\n' ' ')"
curl -sf -X POST -H "Authorization: Bearer $LIFEBOAT_TOKEN" "http://$EAST_AGENT/v1/backups/refresh" >/dev/null
for i in $(seq 1 100); do
  latest=$(curl -sf "http://$EAST_AGENT/v1/backups" | jq -c '.latest[] | select(.volume == "cluster:east")')
  [ -n "$latest" ] && break
  sleep 0.1
done
jq -e --arg id "$(jq -r .last_backup <<<"$second")" '.backup == $id and .schedule == "cluster-east"' <<<"$latest" >/dev/null ||
  fail "east's catalog: $(curl -sf "http://$EAST_AGENT/v1/backups" | jq -c .latest)"
pass "a cluster backup schedule: east's agent backs up east's cluster with the schedule's selection (shop, no secrets), keeps the last one, lists it as east's latest; west skips it"

# --- deploy/kubernetes: the kustomize base and its example overlay ---------------------------
# Rendered by kubectl kustomize; the overlay is rendered from a copy, with the
# secret files it needs (never in the repository).
k8s_render() { "$KUBECTL" kustomize "$1" 2>"$WORK/kustomize.err" || { cat "$WORK/kustomize.err" >&2; fail "kubectl kustomize $1"; }; }
k8s_render "$ROOT/deploy/kubernetes/base" > "$WORK/base.yaml"
cp -r "$ROOT/deploy/kubernetes" "$WORK/deploy"
printf %s admin-secret > "$WORK/deploy/example-us-west/admin-token"
printf %s repo-secret > "$WORK/deploy/example-us-west/repo-password"
for f in etcd-ca.pem etcd-client.pem etcd-client.key; do printf '%s\n' "not a real $f" > "$WORK/deploy/example-us-west/$f"; done
k8s_render "$WORK/deploy/example-us-west" > "$WORK/overlay.yaml"
$PY - "$WORK/base.yaml" "$WORK/overlay.yaml" "$WORK/deployed-plan.yaml" <<'PY' || fail "the rendered manifests"
import base64, sys, yaml
def load(p): return [d for d in yaml.safe_load_all(open(p)) if d]
base, over = load(sys.argv[1]), load(sys.argv[2])
def kinds(docs): return sorted(d["kind"] for d in docs)
assert kinds(base) == sorted(["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                              "PersistentVolumeClaim", "Deployment", "Service", "ConfigMap", "ConfigMap",
                              "DaemonSet", "ServiceAccount", "NetworkPolicy"]), kinds(base)
assert kinds(over) == sorted(kinds(base) + ["Secret"]), kinds(over)
by = {(d["kind"], d["metadata"]["name"]) for d in over}
dep = next(d for d in over if d["kind"] == "Deployment")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["image"] == "registry.example.com/lifeboat:0.1", c["image"]
# Every generated name the pod refers to exists (kustomize's hash suffixes).
refs = [("ConfigMap", v["configMap"]["name"]) for v in pod["volumes"] if "configMap" in v]
refs += [("Secret", v["secret"]["secretName"]) for v in pod["volumes"] if "secret" in v]
for e in c["env"]:
    src = e.get("valueFrom", {})
    if "configMapKeyRef" in src: refs.append(("ConfigMap", src["configMapKeyRef"]["name"]))
    if "secretKeyRef" in src: refs.append(("Secret", src["secretKeyRef"]["name"]))
refs.append(("PersistentVolumeClaim", next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)["persistentVolumeClaim"]["claimName"]))
refs.append(("ServiceAccount", pod["serviceAccountName"]))
missing = [r for r in refs if r not in by]
assert not missing, missing
assert {n for k, n in refs if k == "Secret"} == {"lifeboat-secrets"}, refs
region = next(d for d in over if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("lifeboat-region"))
assert region["data"] == {"region": "us-west"}, region
secret = next(d for d in over if d["kind"] == "Secret")
assert base64.b64decode(secret["data"]["admin-token"]) == b"admin-secret"
# The pod: non-root, no privilege, read-only root; one agent at a time.
sc, csc = pod["securityContext"], c["securityContext"]
assert sc["runAsNonRoot"] and sc["seccompProfile"]["type"] == "RuntimeDefault", sc
assert csc["readOnlyRootFilesystem"] and not csc["allowPrivilegeEscalation"] and csc["capabilities"]["drop"] == ["ALL"], csc
assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
assert "--region=$(LIFEBOAT_REGION)" in c["args"]
# The data dir is inside the data volume, and so is an embedded store beside it.
assert "--data-dir=/var/lib/lifeboat/agent" in c["args"], c["args"]
assert sorted(secret["data"]) == ["admin-token", "etcd-ca.pem", "etcd-client.key", "etcd-client.pem", "repo-password"], sorted(secret["data"])
# The role: least privilege (nothing that deletes, watches or escalates).
role = next(d for d in over if d["kind"] == "ClusterRole")
verbs = {v for r in role["rules"] for v in r["verbs"]}
assert verbs <= {"get", "list", "create", "update", "patch"}, verbs
patch = [r for r in role["rules"] if "patch" in r["verbs"]]
assert patch == [{"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["patch"]}], patch
binding = next(d for d in over if d["kind"] == "ClusterRoleBinding")
assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "lifeboat", "namespace": "lifeboat"}], binding
# The node agent: on every node, the kubelet's pod volumes by hostPath, the
# port the agent finds by name, no API access at all, root with only the
# capabilities files take; only the agent's pods may reach it.
ds = next(d for d in over if d["kind"] == "DaemonSet")
nspec = ds["spec"]["template"]["spec"]
nc = nspec["containers"][0]
assert nc["image"] == "registry.example.com/lifeboat:0.1", nc["image"]
assert nc["args"][:2] == ["agent", "--node"] and "--kubelet-root=/host/kubelet" in nc["args"], nc["args"]
assert ds["spec"]["template"]["metadata"]["labels"] == {"app.kubernetes.io/name": "lifeboat", "app.kubernetes.io/component": "node-agent"}
assert {"name": "node-api", "containerPort": 7790, "protocol": "TCP"} in nc["ports"], nc["ports"]
hp = next(v for v in nspec["volumes"] if "hostPath" in v)
assert hp["hostPath"]["path"] == "/var/lib/kubelet/pods", hp
mount = next(m for m in nc["volumeMounts"] if m["name"] == hp["name"])
assert mount["mountPath"] == "/host/kubelet/pods" and mount["mountPropagation"] == "HostToContainer", mount
ncsc = nc["securityContext"]
assert ncsc["readOnlyRootFilesystem"] and not ncsc["allowPrivilegeEscalation"] and ncsc["capabilities"]["drop"] == ["ALL"], ncsc
assert set(ncsc["capabilities"]["add"]) == {"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID"}, ncsc
assert not ncsc.get("privileged", False)
assert nspec["automountServiceAccountToken"] is False and nspec["serviceAccountName"] == "lifeboat-node", nspec
assert ("ServiceAccount", "lifeboat-node") in by
assert all(s["name"] != "lifeboat-node" for b in over if b["kind"].endswith("Binding") for s in b["subjects"])
for e in nc["env"]:
    ref = e.get("valueFrom", {}).get("secretKeyRef")
    if ref: assert ("Secret", ref["name"]) in by, ref
np = next(d for d in over if d["kind"] == "NetworkPolicy")
assert np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "node-agent", np
assert np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "agent", np
# The agent's Service selects the agent's pod only, never a node agent.
svc = next(d for d in over if d["kind"] == "Service")
assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "agent", svc
plan = next(d for d in over if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("lifeboat-plan"))
open(sys.argv[3], "w").write(plan["data"]["plan.yaml"])
PY
expect_exit 0 "$LIFEBOAT" plan validate "$WORK/deployed-plan.yaml"
k west apply --validate=false -f "$WORK/overlay.yaml" >/dev/null 2>"$WORK/apply.err" || { cat "$WORK/apply.err" >&2; fail "kubectl apply of the overlay"; }
[ "$(k west -n lifeboat get deployment lifeboat-agent -o jsonpath='{.spec.template.spec.serviceAccountName}')" = lifeboat ] ||
  fail "the applied agent"
[ "$(k west -n lifeboat get daemonset lifeboat-node-agent -o jsonpath='{.spec.template.spec.serviceAccountName}')" = lifeboat-node ] ||
  fail "the applied node agent"
pass "deploy/kubernetes: kubectl kustomize renders the base and the us-west overlay (generated names all resolve, least-privilege role, restricted agent pod, a node agent DaemonSet with the kubelet's pod volumes and no API access, the plan validates) and kubectl applies them"
