#!/usr/bin/env bash
# The whole test suite, from a fresh Debian/Ubuntu machine: installs the tools the tests drive
# (a real registry, skopeo, umoci, oci-image-tool, Info-ZIP), then formatting, clippy and every test.
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
)
missing=()
for cmd in "${!PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
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
