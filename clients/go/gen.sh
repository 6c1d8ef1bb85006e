#!/usr/bin/env bash
# The one command that regenerates the Go code for the API:
#   proto/electd/v1/*.proto  ->  clients/go/electdpb/*.pb.go
# It installs the pinned protoc plugins into clients/go/bin (skipped when the
# right versions are already there) and runs the pinned buf from tools/.
#
#   clients/go/gen.sh            # regenerate in place
#   clients/go/gen.sh OUT_DIR    # generate into OUT_DIR/electdpb instead (check-gen.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# Pinned plugin versions. PROTOC_GEN_GO must match google.golang.org/protobuf
# in go.mod: the generated code refuses to run against an older runtime.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

out=${1:-$here}
bin=$here/bin
buf=$root/tools/node_modules/.bin/buf
log() { printf 'gen.sh: %s\n' "$*" >&2; }

# The pinned plugins, through the one pinned-Go-binary installer (skipped when already built).
GOBIN=$bin "$root/scripts/lib/go-install.sh" \
  "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION" protoc-gen-go
GOBIN=$bin "$root/scripts/lib/go-install.sh" \
  "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION" protoc-gen-go-grpc

if [ ! -x "$buf" ]; then
  log "installing the pinned buf from tools/package-lock.json"
  (cd "$root/tools" && npm ci --no-audit --no-fund --loglevel=error)
fi

mkdir -p "$out/electdpb"
out=$(cd "$out" && pwd) # absolute: buf runs from the repository root
rm -f "$out"/electdpb/*.pb.go
cd "$root"
PATH=$bin:$PATH "$buf" generate --template "$here/buf.gen.yaml" -o "$out"
