#!/usr/bin/env bash
# Builds every client's example program and the Go-based tools (grpcurl, grpc-health-probe),
# from the registries only (Go module proxy, crates.io, Maven Central, npm). Idempotent and
# incremental: the usual caches (~/go/pkg/mod, ~/.cargo, ~/.m2, ~/.npm) make repeated runs fast,
# but nothing depends on them being there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for lang in python go rust java node; do
  start=$(date +%s)
  printf 'build-clients: %s ...\n' "$lang" >&2
  "$root/clients/$lang/build.sh" >&2
  printf 'build-clients: %s built in %ss\n' "$lang" "$(( $(date +%s) - start ))" >&2
done
"$root/scripts/install-go-tools.sh"
"$root/scripts/build-linearize.sh"
