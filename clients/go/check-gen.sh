#!/usr/bin/env bash
# Fails (exit 1) when the checked-in Go code in clients/go/electdpb/ is not what
# gen.sh generates from proto/ today. Regenerates into a temporary directory and
# compares; the working tree is left untouched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/gen.sh" "$tmp"
if ! diff -ru "$here/electdpb" "$tmp/electdpb"; then
  echo "check-gen.sh: clients/go/electdpb is stale; run clients/go/gen.sh and commit the result" >&2
  exit 1
fi
echo "check-gen.sh: clients/go/electdpb is up to date"
