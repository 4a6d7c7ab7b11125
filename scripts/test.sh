#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs the tools the tests drive
# (a real registry, skopeo, umoci, oci-image-tool, Info-ZIP, debootstrap for the stand-in Lambda
# base image, buildah and podman for the shippable image), then formatting, clippy and every test.
# Run it as root: the tests that run images build a root filesystem with debootstrap and chroot
# into it as a non-root user, and podman runs the shippable image.
set -euo pipefail
cd "$(dirname "$0")/.."

# command → Debian package that provides it
declare -A PACKAGES=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [umoci]=umoci
  [oci-image-tool]=oci-image-tool
  [zip]=zip
  [unzip]=unzip
  [zipinfo]=unzip
  [htpasswd]=apache2-utils
  [pigz]=pigz
  [python3]=python3
  [debootstrap]=debootstrap
  [unshare]=util-linux
  # fetch_dest_writes: an unwritable directory (immutable flag) and a fetch as a non-root user
  [chattr]=e2fsprogs
  [setpriv]=util-linux
  # output_paths: `-` refused when stdout is a terminal (script gives the command a pty)
  [script]=util-linux
  # scripts/build-image.sh assembles the shippable image (stripping the binary), podman runs it
  [buildah]=buildah
  [strip]=binutils
  [podman]=podman
  [runc]=runc
  # tests/it/registry_tls.rs makes a CA and a server certificate
  [openssl]=openssl
  # the completion scripts are loaded by bash and zsh; man pages rendered by groff and man
  [bash]=bash
  [zsh]=zsh
  [groff]=groff-base
  [man]=man-db
)
# file → Debian package that provides it (debootstrap checks bookworm's Release file with it;
# Debian has it already, Ubuntu does not)
declare -A FILES=(
  [/usr/share/keyrings/debian-archive-keyring.gpg]=debian-archive-keyring
  # GNU time: the fuzz tests read each case's peak RSS from it (`time` alone is bash's keyword)
  [/usr/bin/time]=time
)
missing=()
for cmd in "${!PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
done
for file in "${!FILES[@]}"; do
  [ -e "$file" ] || missing+=("${FILES[$file]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing test tools: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
