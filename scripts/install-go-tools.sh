#!/usr/bin/env bash
# Installs the pinned Go-based developer tools into .tools/bin (GOBIN):
#   grpcurl            - call and stream the gRPC API from a shell
#   grpc-health-probe  - query a node's grpc.health.v1 service
# Idempotent: a tool is skipped when the binary there was already built from
# the pinned module version (scripts/lib/go-install.sh reads it with `go version -m`).
# Needs only the go command and the Go module proxy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export GOBIN=$root/.tools/bin

"$root/scripts/lib/go-install.sh" github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 grpcurl
"$root/scripts/lib/go-install.sh" \
  github.com/grpc-ecosystem/grpc-health-probe@v0.4.61 grpc-health-probe
