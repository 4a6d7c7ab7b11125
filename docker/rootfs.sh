#!/usr/bin/env bash
# Lays out the root filesystem of layerport's minimal image in DEST:
#
#   /layerport                          the binary, stripped (debug symbols are most of its size)
#   /lib..., /lib64/...                 the shared libraries it links, as `ldd` finds them, each at the
#                                       path the dynamic loader looks for it (there is no ld.so.cache)
#   /etc/ssl/certs/ca-certificates.crt  the CA bundle: the AWS SDK trusts the system's certificates
#   /tmp                                mode 1777: layerport stages downloads, pushes and checks there
#
# and nothing else: no shell, no package manager. docker/Dockerfile runs it in its build stage and
# scripts/build-image.sh runs it before `buildah copy`, so both produce the same filesystem.
#
# Every mtime is set to SOURCE_DATE_EPOCH (default 0), so the same binary gives the same files.
#
# Usage: docker/rootfs.sh BINARY DEST   (DEST must not exist yet, or be an empty directory)
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 BINARY DEST" >&2
  exit 2
fi
binary=$1
dest=$2
certs=/etc/ssl/certs/ca-certificates.crt

if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  echo "error: $binary is not an executable file" >&2
  echo "  hint: build it first (cargo build --release --locked), or give its path" >&2
  exit 1
fi
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  echo "error: $dest exists and is not empty" >&2
  exit 1
fi
for tool in ldd:libc-bin strip:binutils; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    echo "error: ${tool%%:*} not found; install it with \`apt-get install ${tool#*:}\`" >&2
    exit 1
  fi
done
if [ ! -f "$certs" ]; then
  echo "error: $certs not found; install it with \`apt-get install ca-certificates\`" >&2
  exit 1
fi

mkdir -p "$dest"
install -m 0755 "$binary" "$dest/layerport"
# --strip-all: a panic message still says where it happened; only the symbol table and debug
# sections go (for a debug build, 500 MB of its 530).
strip --strip-all "$dest/layerport"

# The libraries the binary needs, from ldd's two kinds of lines:
#   libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)   a library found through the search path
#   /lib64/ld-linux-x86-64.so.2 (0x...)                    the dynamic loader, named by its path
# (linux-vdso.so.1 has no file: the kernel provides it). A static binary needs none.
if ldd_out=$(ldd "$binary" 2>&1); then
  if grep -q '=> not found' <<<"$ldd_out"; then
    echo "error: ldd cannot find a library of $binary:" >&2
    echo "$ldd_out" >&2
    exit 1
  fi
  libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out")
elif grep -q -e 'not a dynamic executable' -e 'statically linked' <<<"$ldd_out"; then
  libs=""
else
  echo "error: ldd $binary failed: $ldd_out" >&2
  echo "  hint: the image packs a binary for this machine's architecture; build it here" >&2
  exit 1
fi
for lib in $libs; do
  # Copy the file a symlink points to under the name the loader asks for.
  install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
done

install -D -m 0644 "$certs" "$dest$certs"
mkdir -p "$dest/tmp"
chmod 1777 "$dest/tmp"

# Fixed times (touching an entry does not change its directory's mtime, so any order works).
find "$dest" -mindepth 1 -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
