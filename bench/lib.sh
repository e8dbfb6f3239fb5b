# Shared start of the benchmark scripts: source it from the repository root
# after `set -euo pipefail`. bench_init NAME installs what the tests need,
# builds lifeboat, and sets
#   LB    the binary
#   W     a scratch directory, removed at exit (kept with KEEP=1)
#   PIDS  processes to kill at exit (append what you start)
# and defines log, free_port and median.
bench_init() {
  scripts/deps.sh >/dev/null
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j2 --target lifeboat >/dev/null
  LB=$(readlink -f build/lifeboat)
  W=$(mktemp -d "/tmp/lifeboat-bench-$1-XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM  # so that the EXIT trap runs when interrupted
}
bench_cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
log() { echo "$*" >&2; }
# A TCP and UDP port on loopback that nothing listens on now.
free_port() { local p; while :; do p=$(( (RANDOM % 20000) + 10000 )); [ -z "$(ss -Htuln "sport = :$p")" ] && { echo "$p"; return; }; done; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
