#!/usr/bin/env bash
# Fails when the checked-in generated Python code (server/electd/v1) is out of sync with proto/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/server" "$tmp/server"
mkdir -p "$tmp/scripts" && cp "$root/scripts/gen-proto.sh" "$tmp/scripts/"
ln -s "$root/proto" "$tmp/proto"
PYTHON="$root/.venv/bin/python" bash "$tmp/scripts/gen-proto.sh"
if ! diff -r "$root/server/electd/v1" "$tmp/server/electd/v1" -x __pycache__; then
  echo "check-gen: server/electd/v1 is out of sync with proto/: run 'make gen' and commit" >&2
  exit 1
fi
echo "check-gen: generated Python code is in sync with proto/"
