#!/usr/bin/env bash
# Builds the gcsmount Debian package out of tree: copies the sources to a
# temporary directory, puts packaging/debian/ at its top with the version from
# VERSION, runs dpkg-buildpackage and leaves the .deb in build/deb/.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
version=$(cat VERSION)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/gcsmount-$version
mkdir -p "$src"
tar -C "$top" -c --exclude=./.git --exclude=./build --exclude=./gcsmount \
    --exclude=./tests --exclude=./mnt --exclude='./demo-data*' --exclude=__pycache__ . |
  tar -C "$src" -x
rm -rf "$src/debian"
cp -r packaging/debian "$src/debian"
sed -i "1s/([^)]*)/($version)/" "$src/debian/changelog"

(cd "$src" && dpkg-buildpackage -us -uc -b)

mkdir -p build/deb
rm -f build/deb/gcsmount_*.deb
cp "$tmp"/gcsmount_"$version"_*.deb build/deb/
ls build/deb/gcsmount_"$version"_*.deb
