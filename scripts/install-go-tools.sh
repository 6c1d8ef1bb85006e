#!/usr/bin/env bash
# Installs the pinned Go-based developer tools into .tools/bin (GOBIN):
#   grpcurl            - call and stream the gRPC API from a shell
#   grpc-health-probe  - query a node's grpc.health.v1 service
# Idempotent: a tool is skipped when the binary there was already built from
# the pinned module version (read from the binary with `go version -m`).
# Needs only the go command and the Go module proxy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export GOBIN=$root/.tools/bin
log() { printf 'install-go-tools: %s\n' "$*" >&2; }

# name  package  module  version
tools=(
  "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl github.com/fullstorydev/grpcurl v1.9.4"
  "grpc-health-probe github.com/grpc-ecosystem/grpc-health-probe github.com/grpc-ecosystem/grpc-health-probe v0.4.61"
)

command -v go >/dev/null || { log "the go command is not installed"; exit 1; }
mkdir -p "$GOBIN"
for t in "${tools[@]}"; do
  read -r name pkg module version <<<"$t"
  bin=$GOBIN/$name
  have=$( [ -x "$bin" ] && go version -m "$bin" 2>/dev/null |
    awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }' || true)
  if [ "$have" = "$version" ]; then
    log "$name $version already installed"
    continue
  fi
  log "installing $name $version into $GOBIN"
  # -p 2: the machines have two shared cores.
  go install -p 2 -trimpath "$pkg@$version"
done
