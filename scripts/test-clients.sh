#!/usr/bin/env bash
# Unit tests of the Go and Rust client libraries (the Java and Node builds run theirs as part of
# clients/{java,node}/build.sh). Their behaviour against a real cluster is
# tests/e2e/test_cross_language.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
(cd "$root/clients/go" && go test -p 2 ./...)
(cd "$root/clients/rust" && cargo test --locked --release -j 2 --quiet)
