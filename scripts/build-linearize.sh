#!/usr/bin/env bash
# Builds the fault suite's outside checker, tests/faults/linearize (Porcupine, pinned in its
# go.mod and go.sum), into .tools/bin/electd-linearize, after its `go vet` and unit tests pass.
# Idempotent: skipped when the binary is newer than every source file of the module. Needs only
# the go command and the Go module proxy.
# scripts/build-clients.sh runs it; tests/faults/linearize.py runs it too, so a test run never
# uses a stale binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/tests/faults/linearize
bin=$root/.tools/bin/electd-linearize
log() { printf 'build-linearize: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "the go command is not installed"; exit 1; }
if [ -x "$bin" ] && [ -z "$(find "$src" -maxdepth 1 \( -name '*.go' -o -name go.mod -o \
  -name go.sum \) -newer "$bin" -print -quit)" ]; then
  log "electd-linearize is up to date"
  exit 0
fi
log "building electd-linearize into ${bin%/*}"
mkdir -p "${bin%/*}"
tmp=$(mktemp "$bin.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# -p 2: the machines have two shared cores. Built in a temporary file and renamed, so that two
# builds at once never leave a half-written binary.
(cd "$src" && go vet ./... && go test -p 2 -count=1 ./... >&2 &&
  go build -p 2 -trimpath -buildvcs=false -o "$tmp" .)
mv -f "$tmp" "$bin"
