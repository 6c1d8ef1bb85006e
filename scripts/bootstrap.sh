#!/usr/bin/env bash
# Installs everything electd needs on a fresh Debian machine, idempotently:
#   - Apache ZooKeeper from Debian's `zookeeper` package (the server the local
#     cluster and the tests start as child processes; never a mock), and tini,
#   - the pinned ZooKeeper 3.9.5 jars for TLS and authentication (scripts/install-zookeeper-tls.sh),
#   - a Python virtualenv in .venv with the exact pins of requirements.lock,
#   - pinned developer tools (buf) from tools/package-lock.json.
# Called by `make dev` and `make test`; safe to run again (it skips what is done).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf 'bootstrap: %s\n' "$*" >&2; }

# 1. ZooKeeper (a JVM and the jars) from Debian.
if [ -z "${ELECTD_ZK_CLASSPATH:-}" ]; then
  scripts/lib/apt-ensure.sh --hint "or set ELECTD_ZK_CLASSPATH" \
    /usr/share/java/zookeeper.jar zookeeper default-jre-headless
fi

# 1b. tini: the leader command's init in its own pid namespace (electd/supervisor/process.py):
#     it forwards SIGTERM to the command (a namespace's first process ignores signals it has no
#     handler for) and reaps; without it the supervisor falls back to process groups.
scripts/lib/apt-ensure.sh tini tini

# 1c. The pinned ZooKeeper 3.9.5 jars (Maven Central, checksummed) for the ZooKeeper TLS and
#     authentication tests and `electd dev --secure` (Debian's 3.8.0 has GHSA-7xrh-hqfc-g7qr).
scripts/install-zookeeper-tls.sh

# 2. Python virtualenv with pinned dependencies: the client library (clients/python, the
#    electd-client distribution that the root package depends on, from its local path) and the
#    root package, both editable, in one resolution against requirements.lock.
stamp=.venv/.electd-installed
want=$(cat pyproject.toml clients/python/pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "creating .venv and installing pinned Python dependencies"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -c requirements.lock \
    -e ./clients/python -e '.[dev]'
  echo "$want" >"$stamp"
fi

# 3. Pinned buf, for proto lint and breaking-change checks.
if [ ! -x tools/node_modules/.bin/buf ]; then
  log "installing pinned buf from npm"
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
