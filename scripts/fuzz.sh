#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time on a corpus seeded from the repository.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60; all targets)
# LIFEBOAT_FUZZ_BUILD_DIR=DIR uses a build directory already configured with
# clang and -DLIFEBOAT_FUZZ=ON (scripts/test.sh's build-san/, which also
# holds the sanitized tests) instead of configuring build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(plan dns replicate repo state drill postgres k8s)
scripts/deps.sh
dir=${LIFEBOAT_FUZZ_BUILD_DIR:-build-fuzz}
if [ -z "${LIFEBOAT_FUZZ_BUILD_DIR:-}" ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLIFEBOAT_FUZZ=ON -DLIFEBOAT_TESTS=OFF >/dev/null
elif ! grep -q '^LIFEBOAT_FUZZ:BOOL=ON' "$dir/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz.sh: $dir is not a build directory configured with -DLIFEBOAT_FUZZ=ON" >&2
  exit 2
fi
cmake --build "$dir" -j2 $(printf -- '--target fuzz_%s ' "${targets[@]}")

seed() {  # seed corpus per target
  case $1 in
    plan) cp examples/*.yaml tests/plans/bad/*.yaml "$2"/ ;;
    dns) cp tests/fuzz/dns_seeds/* "$2"/ ;;
    replicate) cp tests/fuzz/replicate_seeds/* "$2"/ ;;
    repo) cp tests/fuzz/repo_seeds/* "$2"/ ;;
    state) cp tests/fuzz/state_seeds/* "$2"/ ;;
    drill) cp tests/fuzz/drill_seeds/* "$2"/ ;;
    postgres) cp tests/fuzz/postgres_seeds/* "$2"/ ;;
    k8s) cp tests/fuzz/k8s_seeds/* "$2"/ ;;
  esac
}

for t in "${targets[@]}"; do
  corpus=$dir/corpus/$t
  mkdir -p "$corpus"
  seed "$t" "$corpus"
  log=$dir/fuzz_$t.log
  echo "fuzz_$t: ${seconds}s"
  if ! (cd "$dir" && tests/fuzz/fuzz_$t "corpus/$t" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
          -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz_$t: FAILED; the input that broke it is in $dir/ (crash-*, timeout-* or oom-*)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log"
  echo "fuzz_$t: no crash in ${seconds}s"
done
