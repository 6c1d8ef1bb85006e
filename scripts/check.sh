#!/usr/bin/env bash
# Static checks: ruff (lint + format), mypy (strict), buf lint, buf breaking, generated code sync.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n== %s\n' "$*"; }
step "ruff";        .venv/bin/ruff check server tests bench clients/python && .venv/bin/ruff format --check server tests bench clients/python
step "mypy";        .venv/bin/mypy
step "buf lint";    tools/node_modules/.bin/buf lint
step "buf breaking"
# Against main when on a branch; on main itself, against the previous commit (if any).
if [ "$(git rev-parse --abbrev-ref HEAD 2>/dev/null)" != main ] && git rev-parse -q --verify main >/dev/null; then
  against='.git#branch=main'
elif git rev-parse -q --verify 'HEAD~1:proto' >/dev/null; then  # (no pipe: grep -q + pipefail hid it)
  against='.git#ref=HEAD~1'
else
  against=''
fi
if [ -n "$against" ]; then tools/node_modules/.bin/buf breaking --against "$against" && echo "no breaking changes against $against"
else echo "no earlier proto to compare against"; fi
step "generated code"; scripts/check-gen.sh && clients/go/check-gen.sh
step "deploy kit"; scripts/validate-deploy.sh
