#!/usr/bin/env bash
# Installs every Debian package that lifeboat's build and tests need.
# Idempotent: installs only what is missing, and runs `apt-get update` only then.
# Usage: scripts/deps.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang
  # libraries
  libboost-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libfmt-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev libxxhash-dev libzstd-dev libgtest-dev libgmock-dev libpq-dev
  # test peers and tools
  curl jq prometheus procps iproute2 bind9-dnsutils rsync nodejs python3 python3-yaml python3-dnspython nsd dnsviz
  etcd-server etcd-client chromium postgresql-15 python3-kubernetes
  # the container image (scripts/image.sh) and its test: buildah builds, podman and runc run it
  buildah podman runc busybox-static
  # benchmark peers (bench/proxy.sh, bench/postgres.sh)
  haproxy iperf3 wrk bc patroni
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# kubectl: Debian's kubernetes-client, unless a kubectl is already installed
# (another package may own /usr/bin/kubectl).
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

# npm ships inside some nodejs builds (NodeSource) and separately in Debian's.
if ! command -v npm >/dev/null 2>&1 && ! printf '%s\n' "${missing[@]}" | grep -qx nodejs; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if ! command -v npm >/dev/null 2>&1; then
  $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
