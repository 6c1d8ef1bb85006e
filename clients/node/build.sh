#!/usr/bin/env bash
# Installs the Node client's pinned dependencies from package-lock.json (npm ci), checks
# that electd.v1 loads from ../../proto, and runs the unit tests (node --test), which also
# type-check the TypeScript declarations (src/index.d.ts) with the pinned tsc.
# There is no compile step: the code is plain ES modules, and the gRPC stubs are generated
# from the .proto files when the library loads (@grpc/proto-loader). Idempotent.
#
#   ./build.sh               # install (if needed) and test
#   ./build.sh --skip-tests  # install (if needed) only
set -euo pipefail
cd "$(dirname "$0")"
log() { printf 'node/build.sh: %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "need Node.js 20+ and npm on PATH"
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  log "need Node.js 20+, found $(node --version)"
  exit 1
fi

# npm ci wipes node_modules each time; skip it when the install already matches the lock.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || [ package.json -nt node_modules/.package-lock.json ]; then
  log "installing pinned dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Fails here, not at first use, if the .proto files are missing or do not parse.
node --input-type=module -e "import { loadElectdV1 } from './src/proto.js'; loadElectdV1();"

if [ "${1:-}" != "--skip-tests" ]; then
  node --test test/*.test.js
fi
log "ready: ./run --help"
