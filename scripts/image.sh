#!/usr/bin/env bash
# Builds lifeboat's container image (OCI) with buildah, from nothing (no base
# image is pulled): the lifeboat binary without its debug info, the shared
# libraries it links (from this Debian 12 machine), a static busybox as
# /bin/sh and its applets (failover hooks run `sh -c`), the CA certificates,
# a non-root user 65532 and the directories deploy/kubernetes mounts.
#
# Usage: scripts/image.sh [--binary PATH] [--tag NAME:TAG] [--oci-archive FILE]
#   scripts/image.sh                                  # lifeboat:VERSION in buildah's local storage
#   scripts/image.sh --tag registry.example.com/lifeboat:0.1.0
#   podman push registry.example.com/lifeboat:0.1.0   # then name it in your overlay's images:
#   scripts/image.sh --oci-archive lifeboat.tar       # also as a file (podman load, skopeo copy oci-archive:...)
# BUILDAH_FLAGS (for example "--storage-driver vfs --root DIR") go to every
# buildah call. Needs the Debian packages buildah and busybox-static
# (scripts/deps.sh installs them) and a built binary (cmake --build build).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=build/lifeboat
tag=""
archive=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary PATH}; shift 2 ;;
    --tag) tag=${2:?--tag NAME:TAG}; shift 2 ;;
    --oci-archive) archive=${2:?--oci-archive FILE}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "image.sh: no lifeboat binary at $binary: build it first (cmake --build build)" >&2; exit 2; }
for tool in buildah busybox ldd strip; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is missing: run scripts/deps.sh" >&2; exit 2; }
done
bb=$(command -v busybox)
if ldd "$bb" >/dev/null 2>&1; then  # ldd fails on a static executable
  echo "image.sh: $bb is not the static busybox (apt-get install busybox-static)" >&2; exit 2
fi

version=$("$binary" --version | awk '{print $2}')      # "lifeboat 0.1.0 (commit)"
commit=$("$binary" --version | sed -n 's/.*(\(.*\)).*/\1/p')
[ -n "$tag" ] || tag=lifeboat:$version
# shellcheck disable=SC2086
bh() { buildah ${BUILDAH_FLAGS:-} "$@"; }

root=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-image-XXXXXX")
ctr=""
trap 'rm -rf "$root" "$root.tar"; [ -z "$ctr" ] || bh rm "$ctr" >/dev/null 2>&1 || true' EXIT

echo "== rootfs ($root)"
mkdir -p "$root"/{usr/bin,bin,etc/ssl/certs,etc/lifeboat,tmp,var/lib/lifeboat}
chmod 1777 "$root/tmp"
strip --strip-debug -o "$root/usr/bin/lifeboat" "$binary"
# The libraries at the paths the loader looks in (ldd's, resolved: the file
# under the name the binary asks for). A sanitizer build brings its runtime.
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/bin/sh\nlifeboat:x:65532:65532:lifeboat:/var/lib/lifeboat:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nlifeboat:x:65532:\n' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
chown 65532:65532 "$root/var/lib/lifeboat"

echo "== image $tag (lifeboat $version, $commit)"
ctr=$(bh from scratch)
# As one archive, which buildah extracts with its owners and modes (a copy
# would make every file root's, the data directory too).
tar -C "$root" --numeric-owner -cf "$root.tar" .
bh add "$ctr" "$root.tar" / >/dev/null
rm -f "$root.tar"
bh config \
  --entrypoint '["/usr/bin/lifeboat"]' --cmd '["--help"]' \
  --user 65532:65532 --workingdir /var/lib/lifeboat \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --port 7700/tcp --port 7770/tcp --port 5353/udp --port 5353/tcp \
  --label org.opencontainers.image.title=lifeboat \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$commit" \
  --label org.opencontainers.image.description="lifeboat: multi-region disaster recovery" \
  "$ctr"
id=$(bh commit -q --rm "$ctr" "$tag")
ctr=""
echo "== built $tag ($id)"
if [ -n "$archive" ]; then
  bh push -q "$tag" "oci-archive:$archive:$tag"
  echo "== wrote $archive"
fi
