#!/usr/bin/env bash
# Builds layerport's minimal image — the one docker/Dockerfile describes — from a binary built on
# this machine, with buildah instead of a Docker engine and without pulling any base image:
# `buildah from scratch`, one `buildah copy` of the root filesystem docker/rootfs.sh lays out (the
# binary, the shared libraries it links, CA certificates, /tmp), `buildah config`, `buildah commit`,
# then `buildah push` to export it.
#
# Usage: scripts/build-image.sh [-t NAME] [-o DEST] [BINARY]
#
#   BINARY   the layerport binary to pack (default: target/release/layerport)
#   -t NAME  the image's name in local containers storage (default: localhost/layerport:VERSION)
#   -o DEST  where to export it, as a containers-transports destination (default:
#            oci-archive:target/layerport-image.tar); e.g. docker-archive:layerport.tar:layerport:latest
#            for `docker load -i layerport.tar`, or oci:DIR:TAG for an OCI layout
#
# stdout: the image name; stderr: what was done, and the image's sizes.
#
# The image is for this machine's architecture (ldd reads the binary's libraries from here).
# buildah and podman share local storage: afterwards, `podman run --rm NAME --version` runs it.
# Its timestamps are fixed (SOURCE_DATE_EPOCH, default 0), so the same binary gives the same image.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
name=""
dest="oci-archive:$repo/target/layerport-image.tar"
while getopts "t:o:h" opt; do
  case "$opt" in
    t) name=$OPTARG ;;
    o) dest=$OPTARG ;;
    h)
      sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ "$#" -gt 1 ]; then
  echo "usage: $0 [-t NAME] [-o DEST] [BINARY]" >&2
  exit 2
fi
binary=${1:-$repo/target/release/layerport}

if ! command -v buildah >/dev/null; then
  echo "error: buildah not found; install it with \`apt-get install buildah\`" >&2
  exit 1
fi
if [ ! -x "$binary" ]; then
  echo "error: $binary is not an executable file" >&2
  echo "  hint: build it first with \`cargo build --release --locked\`, or give its path" >&2
  exit 1
fi
# The binary must run here before it is worth packing; its version names the image.
version=$("$binary" --version | awk '{ print $2 }')
name=${name:-localhost/layerport:$version}
epoch=${SOURCE_DATE_EPOCH:-0}

work=$(mktemp -d)
container=""
cleanup() {
  if [ -n "$container" ]; then buildah rm "$container" >/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

SOURCE_DATE_EPOCH=$epoch "$repo/docker/rootfs.sh" "$binary" "$work/rootfs"

container=$(buildah from scratch)
# The directory's contents land at /, with their modes (/tmp keeps 1777) and owned by root.
buildah copy --quiet "$container" "$work/rootfs" / >/dev/null
# As docker/Dockerfile: run layerport, print its help when given no arguments.
buildah config \
  --entrypoint '["/layerport"]' \
  --cmd '["--help"]' \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --label org.opencontainers.image.title=layerport \
  --label "org.opencontainers.image.version=$version" \
  "$container"
# --timestamp fixes the config's dates; --identity-label=false leaves out buildah's version label,
# so that the image depends only on the binary (and the libraries and certificates of this machine).
buildah commit --quiet --rm --timestamp "$epoch" --identity-label=false "$container" "$name" >/dev/null
container=""
buildah push --quiet "$name" "$dest"

rootfs_bytes=$(du -sb "$work/rootfs" | cut -f1)
echo "built $name from $binary: $rootfs_bytes bytes uncompressed" >&2
case "$dest" in
  oci-archive:* | docker-archive:*)
    file=${dest#*:}
    file=${file%%:*}
    echo "exported to $dest ($(stat -c %s "$file") bytes)" >&2
    ;;
  *) echo "exported to $dest" >&2 ;;
esac
echo "$name"
