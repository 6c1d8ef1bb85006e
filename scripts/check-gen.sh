#!/usr/bin/env bash
# Fails when the checked-in generated Python code is out of sync with proto/: both copies,
# server/electd/v1 (the server's) and clients/python/electd_client/v1 (the client's), are
# regenerated into a scratch tree by scripts/gen-proto.sh and compared with the checked-in ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/server/electd" "$tmp/clients/python/electd_client" "$tmp/scripts"
cp -r "$root/server/electd/v1" "$tmp/server/electd/v1"
cp -r "$root/clients/python/electd_client/v1" "$tmp/clients/python/electd_client/v1" 2>/dev/null || true
cp "$root/scripts/gen-proto.sh" "$tmp/scripts/"
ln -s "$root/proto" "$tmp/proto"
PYTHON="$root/.venv/bin/python" bash "$tmp/scripts/gen-proto.sh"
status=0
for dir in server/electd/v1 clients/python/electd_client/v1; do
  if ! diff -r "$root/$dir" "$tmp/$dir" -x __pycache__; then
    echo "check-gen: $dir is out of sync with proto/: run 'make gen' and commit" >&2
    status=1
  fi
done
[ "$status" = 0 ] && echo "check-gen: generated Python code (server and client copies) is in sync with proto/"
exit "$status"
