#!/usr/bin/env bash
# The whole test suite, from a fresh clone on Debian 12: installs what is
# missing, builds, runs the unit and integration tests, fuzzes every parser
# for a bounded time, then builds again with clang, ASan + UBSan and reruns the tests.
# Usage: scripts/test.sh            (LIFEBOAT_QUICK=1 skips fuzzing and sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

scripts/deps.sh
# Test peers from npm (s3rver), pinned by tests/peers/package-lock.json.
if ! cmp -s tests/peers/package-lock.json tests/peers/node_modules/.lifeboat-installed 2>/dev/null; then
  echo "== npm ci (tests/peers) (at $(( SECONDS - start ))s)"
  npm ci --prefix tests/peers --no-audit --no-fund --loglevel=error
  cp tests/peers/package-lock.json tests/peers/node_modules/.lifeboat-installed
fi
echo "== build (build/) (at $(( SECONDS - start ))s)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
echo "== tests (at $(( SECONDS - start ))s)"
ctest --test-dir build --output-on-failure -j2

if [ "${LIFEBOAT_QUICK:-0}" != 1 ]; then
  # One more build, with clang, ASan + UBSan and libFuzzer's instrumentation:
  # the fuzz targets and the sanitized tests both come from it. -O1 and line
  # tables only (what the sanitizers' reports need), with assertions on.
  echo "== build with clang, ASan + UBSan (build-san/) (at $(( SECONDS - start ))s)"
  cmake -S . -B build-san -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DLIFEBOAT_SANITIZE=ON -DLIFEBOAT_FUZZ=ON >/dev/null
  cmake --build build-san -j2
  echo "== fuzz (at $(( SECONDS - start ))s)"
  LIFEBOAT_FUZZ_BUILD_DIR=build-san scripts/fuzz.sh "${LIFEBOAT_FUZZ_SECONDS:-30}"
  echo "== tests under ASan + UBSan (at $(( SECONDS - start ))s)"
  # The slowest integration tests (real peers, large data; PostgreSQL
  # servers, whose time is theirs, not ours; the container image, which
  # packages the binary and runs it in podman) ran once above and are not run
  # again here; their code paths still run under ASan in the unit tests and
  # the demo and drill tests. The failover simulation runs 20 schedules under
  # the sanitizers (about 1 s each; 2000 ran above).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LIFEBOAT_SIM_SCHEDULES=20 \
    ctest --test-dir build-san --output-on-failure -j2 \
      -E '^integration\.(replicate|backup|etcd|failover_etcd|dns_diff|drill_link|postgres|postgres_failover|drill_postgres|image)$'
fi
echo "== all tests passed in $(( SECONDS - start ))s"
