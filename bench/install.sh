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
  if [ "$(id -u)" != 0 ]; then
    log "etcd is missing: run 'sudo apt-get install -y etcd-server'"
    exit 1
  fi
  log "installing Debian's etcd-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  # The package enables a system service; the benchmarks start their own etcd.
  if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
  fi
fi

command -v go >/dev/null || { log "the go command is not installed"; exit 1; }

# 2. ghz, pinned (skipped when the binary there was built from that version).
have=$( [ -x "$GOBIN/ghz" ] && go version -m "$GOBIN/ghz" 2>/dev/null |
  awk '$1 == "mod" && $2 == "github.com/bojand/ghz" { print $3 }' || true)
if [ "$have" != "$GHZ_VERSION" ]; then
  log "installing ghz $GHZ_VERSION into $GOBIN"
  go install -p 2 -trimpath "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
fi

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
