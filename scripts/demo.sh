#!/usr/bin/env bash
# Installs what is missing, builds lifeboat, and runs `lifeboat demo` on the
# embedded plan (two regions and a witness on this machine, the records in
# PostgreSQL 15, which deps.sh installs). Arguments go to the demo:
# scripts/demo.sh --stay, scripts/demo.sh --store files
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target lifeboat >/dev/null
exec build/lifeboat demo "$@"
