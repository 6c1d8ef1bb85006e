#!/usr/bin/env bash
# Builds the Go example client into clients/go/bin/electd-go. Idempotent: the
# go command downloads the pinned modules of go.mod/go.sum from the Go module
# proxy into ~/go/pkg/mod when they are missing and rebuilds only what changed.
# The generated code in electdpb/ is checked in, so no generator is needed
# here (see gen.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
# -p 2: the machines have two shared cores.
go build -p 2 -trimpath -ldflags='-s -w' -o bin/electd-go ./cmd/electd-go
echo "build.sh: built $here/bin/electd-go" >&2
