#!/usr/bin/env bash
# Kubernetes benchmark: backup and restore of N objects (half ConfigMaps,
# half custom resources of a CRD) against the fake API server
# (tests/integration/fake_apiserver.py; no kube-apiserver is packaged).
# Not a test: prints a Markdown report (bench/RESULTS.md keeps one).
#
# Usage: bench/k8s.sh [OBJECTS=100000] [RUNS=3]
# Per run: `lifeboat backup create --cluster src` into a fresh filesystem
# repository, then `lifeboat restore --cluster dst` into an empty fake
# cluster. Reports medians of objects/s and the peak RSS of lifeboat
# (/usr/bin/time). The fake server is Python and single-process: it bounds
# what is measured (its CPU share is reported beside lifeboat's).
# Velero cannot run here (it needs a real cluster); its users' figures are
# cited in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
RUNS=${2:-3}

source bench/lib.sh
bench_init k8s
FAKE=$(readlink -f tests/integration/fake_apiserver.py)
cd "$W"
export LIFEBOAT_REPO_PASSWORD=bench

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 \
  -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile san.ext 2>/dev/null

start_cluster() {  # start_cluster NAME: sets PORT_NAME, PID_NAME, writes kc-NAME
  local p; p=$(free_port)
  /usr/bin/python3 "$FAKE" --port "$p" --cert srv.crt --key srv.key --token bench > "fake-$1.log" 2>&1 &
  PIDS+=("$!")
  eval "PORT_$1=$p PID_$1=$!"
  for _ in $(seq 100); do curl -skf -H 'Authorization: Bearer bench' "https://127.0.0.1:$p/version" >/dev/null && break; sleep 0.1; done
  cat > "kc-$1" <<EOF
apiVersion: v1
kind: Config
current-context: c
clusters: [ { name: c, cluster: { server: "https://127.0.0.1:$p", certificate-authority-data: "$(base64 -w0 ca.crt)" } } ]
users: [ { name: u, user: { token: bench } } ]
contexts: [ { name: c, context: { cluster: c, user: u } } ]
EOF
}
api() { curl -skf -H 'Authorization: Bearer bench' -H 'Content-Type: application/json' "$@"; }
cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }  # user+system seconds (100 Hz)

CRD='{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com"},
"spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"widgets","singular":"widget","kind":"Widget"},
"versions":[{"name":"v1","served":true,"storage":true}]}}'

backup_rate=() restore_rate=() backup_rss=() restore_rss=() backup_fake_cpu=() restore_fake_cpu=() backup_lb_cpu=() restore_lb_cpu=()
for run in $(seq 1 "$RUNS"); do
  start_cluster src
  start_cluster dst
  api -X POST -d '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}' "https://127.0.0.1:$PORT_src/api/v1/namespaces" >/dev/null
  api -X POST -d "$CRD" "https://127.0.0.1:$PORT_src/apis/apiextensions.k8s.io/v1/customresourcedefinitions" >/dev/null
  until api "https://127.0.0.1:$PORT_src/apis/example.com/v1" >/dev/null 2>&1; do sleep 0.1; done
  half=$(( N / 2 ))
  api -X POST -d "{\"resource\":\"configmaps\",\"namespace\":\"bench\",\"count\":$half,\"prefix\":\"cm\",
    \"template\":{\"metadata\":{\"labels\":{\"app\":\"bench\"}},\"data\":{\"config.yaml\":\"level: info\\nfeatures: [a, b, c]\\nreplicas: 3\\n\"}}}" \
    "https://127.0.0.1:$PORT_src/fake/load" >/dev/null
  api -X POST -d "{\"group\":\"example.com\",\"resource\":\"widgets\",\"namespace\":\"bench\",\"count\":$(( N - half )),\"prefix\":\"w\",
    \"template\":{\"spec\":{\"color\":\"blue\",\"size\":3}}}" "https://127.0.0.1:$PORT_src/fake/load" >/dev/null
  rm -rf repo
  cat > plan.yaml <<EOF
name: bench
pattern: warm-standby
regions:
  src: { role: primary, agent: 127.0.0.1:1 }
  dst: { role: standby, agent: 127.0.0.1:2 }
backup:
  locations:
    local: { type: filesystem, path: $W/repo }
clusters:
  src: { kubeconfig: $W/kc-src, qps: 100000, burst: 100000 }
  dst: { kubeconfig: $W/kc-dst, qps: 100000, burst: 100000 }
EOF
  "$LB" repo init -l local --plan plan.yaml >/dev/null
  f0=$(cpu_of "$PID_src")
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o time-backup "$LB" backup create -l local --cluster src --plan plan.yaml -o json > backup.json
  t1=$(date +%s.%N)
  f1=$(cpu_of "$PID_src")
  objects=$(jq .objects backup.json)
  [ "$objects" -ge "$N" ] || { echo "backup holds $objects objects, want $N" >&2; exit 1; }
  id=$(jq -r .id backup.json)
  g0=$(cpu_of "$PID_dst")
  t2=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o time-restore "$LB" restore "$id" -l local --cluster dst --plan plan.yaml -o json > restore.json || true
  t3=$(date +%s.%N)
  g1=$(cpu_of "$PID_dst")
  created=$(jq .created restore.json)
  failed=$(jq .failed restore.json)
  [ "$failed" -eq 0 ] && [ "$created" -ge "$N" ] || { echo "restore: $created created, $failed failed" >&2; exit 1; }
  backup_rate+=("$(echo "$objects / ($t1 - $t0)" | bc -l)")
  restore_rate+=("$(echo "$created / ($t3 - $t2)" | bc -l)")
  backup_rss+=("$(awk '{print $1/1024}' time-backup)")
  restore_rss+=("$(awk '{print $1/1024}' time-restore)")
  backup_lb_cpu+=("$(awk '{print $2+$3}' time-backup)")
  restore_lb_cpu+=("$(awk '{print $2+$3}' time-restore)")
  backup_fake_cpu+=("$(echo "$f1 - $f0" | bc -l)")
  restore_fake_cpu+=("$(echo "$g1 - $g0" | bc -l)")
  echo "run $run: backup $(printf %.0f "${backup_rate[-1]}") objects/s ($(printf %.0f "${backup_rss[-1]}") MiB), restore $(printf %.0f "${restore_rate[-1]}") objects/s ($(printf %.0f "${restore_rss[-1]}") MiB)" >&2
  kill "$PID_src" "$PID_dst"; wait "$PID_src" "$PID_dst" 2>/dev/null || true
done

m() { printf '%s\n' "$@" | median; }
cat <<EOF
## Kubernetes: backup and restore of $N objects ($(( N / 2 )) ConfigMaps, $(( N - N / 2 )) custom resources)

Command: \`bench/k8s.sh $N $RUNS\` on $(nproc) cores; medians of $RUNS runs.

| | objects/s | peak RSS (MiB) | lifeboat CPU (s) | fake API server CPU (s) |
|---|---|---|---|---|
| backup (\`backup create --cluster\`) | $(printf %.0f "$(m "${backup_rate[@]}")") | $(printf %.0f "$(m "${backup_rss[@]}")") | $(printf %.1f "$(m "${backup_lb_cpu[@]}")") | $(printf %.1f "$(m "${backup_fake_cpu[@]}")") |
| restore (\`restore --cluster\`) | $(printf %.0f "$(m "${restore_rate[@]}")") | $(printf %.0f "$(m "${restore_rss[@]}")") | $(printf %.1f "$(m "${restore_lb_cpu[@]}")") | $(printf %.1f "$(m "${restore_fake_cpu[@]}")") |
EOF
