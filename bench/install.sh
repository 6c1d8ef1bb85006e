#!/usr/bin/env bash
# Installs what the benchmarks need beyond the project venv, idempotently (skips what is done):
#   - etcd, the peer: Debian's etcd-server package (apt-get, only when etcd is missing),
#   - ghz, the gRPC load tool, pinned, built from the Go module proxy into .tools/bin,
#   - electd-watchtool, the benchmarks' Go stream client (bench/watchtool), into .tools/bin,
#   - matplotlib (plots) and the profilers py-spy / pyinstrument, pinned in bench/requirements.txt.
# Needs: scripts/bootstrap.sh done (the .venv), the go command, root for apt-get.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf 'bench/install: %s\n' "$*" >&2; }
export GOBIN=$root/.tools/bin
GHZ_VERSION=v0.120.0
mkdir -p "$GOBIN"

[ -x .venv/bin/python ] || scripts/bootstrap.sh

# 1. etcd (the peer) from Debian.
if ! command -v etcd >/dev/null; then
  scripts/lib/apt-ensure.sh etcd etcd-server
  # The package enables a system service; the benchmarks start their own etcd.
  if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
  fi
fi

command -v go >/dev/null || { log "the go command is not installed"; exit 1; }

# 2. ghz, pinned (skipped when the binary there was built from that version).
scripts/lib/go-install.sh "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" ghz

# 3. The stream client (rebuilt when its source changed).
src_sum=$(cat bench/watchtool/go.mod bench/watchtool/go.sum bench/watchtool/*.go | sha256sum | cut -d' ' -f1)
stamp=$GOBIN/.electd-watchtool.sum
if [ ! -x "$GOBIN/electd-watchtool" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$src_sum" ]; then
  log "building electd-watchtool into $GOBIN"
  (cd bench/watchtool && go build -p 2 -trimpath -o "$GOBIN/electd-watchtool" .)
  echo "$src_sum" >"$stamp"
fi

# 4. Python extras, pinned.
want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
pystamp=.venv/.electd-bench-installed
if [ ! -f "$pystamp" ] || [ "$(cat "$pystamp")" != "$want" ]; then
  log "installing bench/requirements.txt into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
  echo "$want" >"$pystamp"
fi
log "ready"
