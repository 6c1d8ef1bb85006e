#!/usr/bin/env bash
# Installs one pinned Go binary into $GOBIN, idempotently:
#
#   GOBIN=DIR scripts/lib/go-install.sh PACKAGE@VERSION NAME
#
# e.g. GOBIN=.tools/bin scripts/lib/go-install.sh github.com/bojand/ghz/cmd/ghz@v0.120.0 ghz
# Skipped when $GOBIN/NAME was already built from PACKAGE at VERSION (read from the binary with
# `go version -m`); otherwise `go install` builds it from the Go module proxy. The one copy of
# this logic for scripts/install-go-tools.sh, bench/install.sh and the like.
set -euo pipefail
log() { printf 'go-install: %s\n' "$*" >&2; }

if [ $# -ne 2 ] || [[ $1 != *@* ]]; then
  log "usage: GOBIN=DIR $0 PACKAGE@VERSION NAME"
  exit 2
fi
: "${GOBIN:?set GOBIN to the directory to install into}"
pkg=${1%@*}
version=${1##*@}
name=$2
bin=$GOBIN/$name

command -v go >/dev/null || { log "the go command is not installed"; exit 1; }
# The version of the module that holds PACKAGE, if $bin was built from PACKAGE.
have=""
if [ -x "$bin" ]; then
  have=$(go version -m "$bin" 2>/dev/null |
    awk -v p="$pkg" '$1 == "path" { ok = ($2 == p) }
      $1 == "mod" && ok && !done { print $3; done = 1 }') || have=""
fi
if [ "$have" = "$version" ]; then
  log "$name $version already installed"
  exit 0
fi
log "installing $name $version into $GOBIN"
mkdir -p "$GOBIN"
export GOBIN
# -p 2: the machines have two shared cores.
go install -p 2 -trimpath "$pkg@$version"
