#!/usr/bin/env bash
# Builds the Rust example client (release) into
# clients/rust/target/release/electd-rust. Idempotent: cargo downloads the
# crates pinned in Cargo.lock from crates.io into ~/.cargo when they are
# missing and rebuilds only what changed. build.rs generates the gRPC code
# from the crate's copy of proto/ with the protoc that the protoc-bin-vendored
# crate ships.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
# The crate carries a copy of the repository's proto/ (so that the packaged
# crate builds on its own); build.rs refuses a stale copy. Refresh it first.
src=../../proto/electd/v1
dst=proto/electd/v1
if ! diff -rq --exclude='*~' "$src" "$dst" >/dev/null 2>&1; then
  rm -rf "$dst"
  mkdir -p "$dst"
  cp "$src"/*.proto "$dst"/
  echo "build.sh: refreshed clients/rust/$dst from proto/electd/v1" >&2
fi
# --locked: use exactly the committed Cargo.lock. -j 2: two shared cores.
cargo build --locked --release -j 2 --bin electd-rust
echo "build.sh: built $here/target/release/electd-rust" >&2
