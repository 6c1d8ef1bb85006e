#!/usr/bin/env bash
# Installs the pinned Apache ZooKeeper 3.9.5 server jars into .tools/zookeeper-3.9.5/lib,
# idempotently: the server of the ZooKeeper TLS + authentication tests and of
# `electd dev --secure` (devcluster/zookeeper.py, TLS_CLASSPATH). Debian's `zookeeper` package
# (3.8.0) stays the server of everything else.
#
#   - versions: tools/zookeeper/pom.xml (zookeeper 3.9.5 and its runtime dependencies: netty-*
#     for the Netty connection factory that secureClientPort needs, zookeeper-jute, slf4j),
#   - downloaded by Maven from Maven Central with strict checksums (-C), then every jar is
#     checked against tools/zookeeper/jars.sha256; a jar that is not listed, or is missing,
#     fails the install.
# Why not Debian's: GHSA-7xrh-hqfc-g7qr (TLS hostname verification) affects ZooKeeper
# 3.8.0-3.8.5 and 3.9.0-3.9.4 (SECURITY.md). Called by scripts/bootstrap.sh (so by make dev,
# make dev-secure and make test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf 'install-zookeeper-tls: %s\n' "$*" >&2; }

pins=tools/zookeeper/jars.sha256
dest=.tools/zookeeper-3.9.5/lib
stamp=.tools/zookeeper-3.9.5/.installed
want=$(cat tools/zookeeper/pom.xml "$pins" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

scripts/lib/apt-ensure.sh java,mvn default-jre-headless maven
log "fetching ZooKeeper 3.9.5 and its runtime dependencies from Maven Central"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -C -f tools/zookeeper/pom.xml \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >&2
(cd "$tmp/lib" && ls -1 *.jar) | sort >"$tmp/got"
cut -d' ' -f3 "$pins" | sort >"$tmp/pinned"
if ! diff -u "$tmp/pinned" "$tmp/got" >&2; then
  log "the jars Maven resolved differ from $pins (above): refusing to install"
  exit 1
fi
(cd "$tmp/lib" && sha256sum --quiet -c "$root/$pins") || {
  log "a jar does not match its checksum in $pins: refusing to install"
  exit 1
}
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/lib" "$dest"
echo "$want" >"$stamp"
log "installed into $dest"
