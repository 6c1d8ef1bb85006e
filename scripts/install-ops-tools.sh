#!/usr/bin/env bash
# Installs the operators' tools the tests validate against, idempotently, from Debian:
#   promtool (Debian `prometheus`): checks /metrics output, alert rules and their unit tests;
#   haproxy: the tested configuration that routes to the leader through /leader;
#   tmux: drives `electd top` in a real terminal in its test.
# Called by `make test` (and so by CI) before the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/lib/apt-ensure.sh" /usr/bin/promtool prometheus
"$root/scripts/lib/apt-ensure.sh" /usr/sbin/haproxy haproxy
"$root/scripts/lib/apt-ensure.sh" tmux tmux
