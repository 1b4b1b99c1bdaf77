#!/usr/bin/env bash
# Installs the Debian packages gcsmount needs to build, test and benchmark.
# Does nothing when they are all there already; uses sudo when not root.
set -euo pipefail

PKGS=(
  build-essential pkg-config
  libfuse3-dev fuse3 libcurl4-openssl-dev libcjson-dev libssl-dev
  libcmocka-dev
  python3 python3-pytest python3-cryptography python3-crc32c python3-h5py python3-numpy
  python3-torch fio
  rclone curl ca-certificates openssl
  clang libclang-rt-14-dev
  dpkg-dev debhelper lintian python3-yaml groff-base
  gnuplot-nox
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
