#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time on a corpus seeded from the repository's examples.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scripts/deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLIFEBOAT_FUZZ=ON -DLIFEBOAT_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target fuzz_plan

corpus=build-fuzz/corpus/plan
mkdir -p "$corpus"
cp examples/*.yaml tests/plans/bad/*.yaml "$corpus"/
echo "fuzz_plan: ${seconds}s"
log=build-fuzz/fuzz_plan.log
if ! build-fuzz/tests/fuzz/fuzz_plan "$corpus" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
     -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
  tail -n 80 "$log"
  echo "fuzz_plan: FAILED; the input that broke it is named above (crash-*, timeout-* or oom-*)" >&2
  exit 1
fi
grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log"
echo "fuzz_plan: no crash in ${seconds}s"
