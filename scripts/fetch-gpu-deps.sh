#!/usr/bin/env bash
# Unpacks the Debian packages the GPU machine lacks (it has no package registry) into .deps/,
# which git ignores and the device tool carries. Run once here.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
(cd "$tmp" && apt-get download libcli11-dev libgtest-dev libbenchmark-dev libbenchmark1debian >/dev/null)
mkdir -p .deps
for f in "$tmp"/*.deb; do dpkg -x "$f" .deps; done
rm -rf "$tmp"
echo "fetch-gpu-deps: .deps ready ($(du -sh .deps | cut -f1))"
