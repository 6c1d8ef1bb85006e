#!/usr/bin/env bash
# Builds the Rust example client (release) into
# clients/rust/target/release/electd-rust. Idempotent: cargo downloads the
# crates pinned in Cargo.lock from crates.io into ~/.cargo when they are
# missing and rebuilds only what changed. build.rs generates the gRPC code
# from proto/ with the protoc that the protoc-bin-vendored crate ships.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
# --locked: use exactly the committed Cargo.lock. -j 2: two shared cores.
cargo build --locked --release -j 2 --bin electd-rust
echo "build.sh: built $here/target/release/electd-rust" >&2
