#!/usr/bin/env bash
# Installs Debian packages when what they provide is missing, idempotently:
#
#   scripts/lib/apt-ensure.sh [--hint TEXT] NEED PACKAGE...
#
# NEED is a command name or an absolute file path; several, comma-separated, must all be there.
# When one is missing: as root (with apt-get), `apt-get update` once, then install PACKAGE...;
# otherwise fail, saying what to install (and TEXT, if given). Nothing is done when NEED is all
# there. The one copy of this logic for scripts/bootstrap.sh, bench/install.sh and
# clients/java/build.sh.
set -euo pipefail
log() { printf 'apt-ensure: %s\n' "$*" >&2; }

hint=""
if [ "${1:-}" = --hint ]; then
  hint=${2:?--hint needs a text}
  shift 2
fi
if [ $# -lt 2 ]; then
  log "usage: $0 [--hint TEXT] NEED[,NEED...] PACKAGE..."
  exit 2
fi
need=$1
shift

missing=()
IFS=, read -r -a wants <<<"$need"
for want in "${wants[@]}"; do
  if [[ $want == /* ]]; then
    [ -e "$want" ] || missing+=("$want")
  else
    command -v "$want" >/dev/null || missing+=("$want")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  log "${missing[*]} missing: run 'sudo apt-get install -y $*'${hint:+ ($hint)}"
  exit 1
fi
log "installing $* from Debian (for ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
