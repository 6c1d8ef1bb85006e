#!/usr/bin/env bash
# Validates every file of deploy/ with the real tool of its kind and prints each tool's verdict
# (deploy/README.md, "What is validated, and what is not"):
#   systemd     systemd-analyze verify (not a single warning) and systemd-analyze security
#               --offline=yes (exposure at most 1.2), then validate.py systemd (the env file
#               with electd's own settings parser, TimeoutStopSec against the stop budget)
#   container   validate.py containerfile (dockerfile-parse; the image's rules)
#   kubernetes  kubernetes-validate --strict against its bundled schemas of Kubernetes 1.27 and
#               1.37 (no warning either: a kind without a schema is one), then validate.py
#               kubernetes (cross-references, the pods' settings, probes, grace period)
#   prometheus  promtool check rules and promtool test rules (the unit tests)
#   grafana     validate.py grafana (the dashboard model; every query parsed by promtool)
#   tools       ruff (lint and format) on deploy/tools/*.py, the checkers themselves
# Every tool runs without network (in a network namespace of its own where unshare can make
# one). First installs what it needs, idempotently: Debian's systemd and prometheus packages,
# the pinned packages of deploy/tools/requirements.txt in .tools/deploy-venv.
#
#   scripts/validate-deploy.sh [--dir DEPLOY_DIR] [--only NAME[,NAME...]] [--install-only]
#
# --dir checks another copy of the kit (the tests break copies on purpose); --only some of the
# checks above; --install-only installs and stops (tests/e2e/test_deploy.py, which also needs
# Debian's python3-seccomp for deploy/tools/sandbox.py). Exits 1 when any check fails. Called by
# scripts/check.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/deploy
only=systemd,container,kubernetes,prometheus,grafana,tools
install_only=no
while [ $# -gt 0 ]; do
  case $1 in
    --install-only) install_only=yes; shift ;;
    --dir) dir=$(cd "${2:?--dir needs a directory}" && pwd); shift 2 ;;
    --only) only=${2:?--only needs names}; shift 2 ;;
    *) echo "usage: $0 [--dir DEPLOY_DIR] [--only NAME[,NAME...]] [--install-only]" >&2; exit 2 ;;
  esac
done
log() { printf 'validate-deploy: %s\n' "$*" >&2; }

# --- what the checks need ----------------------------------------------------------------------
"$root/scripts/lib/apt-ensure.sh" systemd-analyze systemd
"$root/scripts/lib/apt-ensure.sh" promtool prometheus
# libseccomp's binding for Debian's own python3 (deploy/tools/sandbox.py, used by the tests)
"$root/scripts/lib/apt-ensure.sh" /usr/bin/python3 python3
suffix=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
"$root/scripts/lib/apt-ensure.sh" "/usr/lib/python3/dist-packages/seccomp$suffix" python3-seccomp
venv=$root/.tools/deploy-venv
reqs=$root/deploy/tools/requirements.txt
mkdir -p "$root/.tools"
(
  flock 9  # tests and check.sh may start at the same time
  want=$(cat "$reqs" <(python3 --version) | sha256sum | cut -d' ' -f1)
  if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$want" ]; then
    log "installing the pinned validators of deploy/tools/requirements.txt into .tools/deploy-venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    echo "$want" >"$venv/.installed"
  fi
) 9>"$root/.tools/deploy-venv.lock"
validate=("$venv/bin/python" "$root/deploy/tools/validate.py")
if [ $install_only = yes ]; then
  exit 0
fi

isolate=()
if unshare --net true 2>/dev/null; then
  isolate=(unshare --net)
  offline="every tool runs in a network namespace without network (unshare --net)"
else
  offline="unshare --net is not allowed here: the tools run with the network (they use none)"
fi

# --- the checks ----------------------------------------------------------------------------------
failed=()
passed=()
wants() { [[ ",$only," == *",$1,"* ]]; }
step() { printf '\n== deploy: %s\n' "$*"; }
indent() { sed 's/^/  /'; }
# run NAME CMD...: the command's output, indented, and its verdict
run() {
  local name=$1 out rc=0
  shift
  out=$("${isolate[@]}" "$@" 2>&1) || rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | indent
  if [ $rc -eq 0 ]; then echo "PASS $name"; else echo "FAIL $name (exit $rc)"; fi
  return $rc
}
verdict() {  # verdict CHECK STATUS
  if [ "$2" = 0 ]; then passed+=("$1"); else failed+=("$1"); fi
}

echo "validate-deploy: $offline"

if wants systemd; then
  step "systemd ($dir/systemd)"
  status=0
  # verify loads the unit as systemd would, in a root of its own: the system's units (for
  # the targets it names), the unit, and a stand-in for the binary of ExecStart (verify
  # insists that it exists and is executable).
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/etc/systemd/system" "$tmp/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$tmp/usr/lib/systemd/system"
  cp "$dir/systemd/electd.service" "$tmp/etc/systemd/system/"
  exe=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$dir/systemd/electd.service" | head -1)
  if [[ $exe == /* ]]; then
    mkdir -p "$tmp$(dirname "$exe")"
    printf '#!/bin/sh\nexit 0\n' >"$tmp$exe"
    chmod 0755 "$tmp$exe"
  fi
  # systemd-analyze verify exits 0 after most warnings (an unknown key, a bad value are
  # "ignoring"): any output at all fails the check.
  out=$("${isolate[@]}" systemd-analyze verify --man=no --root="$tmp" electd.service 2>&1) || status=$?
  if [ $status -eq 0 ] && [ -z "$out" ]; then
    echo "PASS systemd-analyze verify electd.service: no errors, no warnings"
  else
    printf '%s\n' "$out" | indent
    echo "FAIL systemd-analyze verify electd.service (exit $status; any warning fails)"
    status=1
  fi
  # security scores the sandbox (0 = fully confined, 10 = not at all); the lines it marks
  # with a cross are what the unit leaves open, and the last line is the overall score.
  rc=0
  out=$("${isolate[@]}" systemd-analyze security --offline=yes --threshold=12 --no-pager \
    "$dir/systemd/electd.service" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -E '^(✗|→)' | sed 's/  */ /g' | indent
  if [ $rc -eq 0 ]; then
    echo "PASS systemd-analyze security --offline=yes --threshold=12 (exposure at most 1.2)"
  else
    echo "FAIL systemd-analyze security (exit $rc): exposure over 1.2, or the unit did not load"
    status=1
  fi
  run "validate.py systemd (electd.env, TimeoutStopSec)" \
    "${validate[@]}" systemd "$dir/systemd/electd.service" "$dir/systemd/electd.env" || status=1
  rm -rf "$tmp"
  trap - EXIT
  verdict systemd $status
fi

if wants container; then
  step "container ($dir/container)"
  status=0
  run "validate.py containerfile (dockerfile-parse $("$venv/bin/pip" show dockerfile-parse 2>/dev/null | sed -n 's/^Version: //p'))" \
    "${validate[@]}" containerfile "$dir/container/Containerfile" "$root" || status=1
  verdict container $status
fi

if wants kubernetes; then
  step "kubernetes ($dir/kubernetes)"
  status=0
  manifests=("$dir"/kubernetes/*.yaml)
  out=$("${isolate[@]}" "$venv/bin/kubernetes-validate" --strict -k 1.27 -k 1.37 "${manifests[@]}" 2>&1) ||
    status=$?
  printf '%s\n' "$out" | sed "s|$dir/kubernetes/||" | indent
  if [ $status -eq 0 ] && ! grep -qv '^INFO ' <<<"$out"; then
    echo "PASS kubernetes-validate $("$venv/bin/kubernetes-validate" --version) --strict: every resource against 1.27 and 1.37"
  else
    echo "FAIL kubernetes-validate (exit $status; a WARN, such as a kind without a schema, fails too)"
    status=1
  fi
  run "validate.py kubernetes (cross-references, settings, probes)" \
    "${validate[@]}" kubernetes "$dir/kubernetes" || status=1
  verdict kubernetes $status
fi

if wants prometheus; then
  step "prometheus ($dir/prometheus)"
  status=0
  version=$(promtool --version 2>&1 | sed -n '1s/^promtool, version \([^ ]*\).*/\1/p')
  (cd "$dir/prometheus" &&
    run "promtool $version check rules electd-alerts.yml" promtool check rules electd-alerts.yml) ||
    status=1
  (cd "$dir/prometheus" &&
    run "promtool $version test rules electd-alerts.test.yml" \
      promtool test rules electd-alerts.test.yml) || status=1
  verdict prometheus $status
fi

if wants grafana; then
  step "grafana ($dir/grafana)"
  status=0
  run "validate.py grafana (model, queries through promtool)" \
    "${validate[@]}" grafana "$dir/grafana/electd-dashboard.json" || status=1
  verdict grafana $status
fi

if wants tools; then
  step "tools ($root/deploy/tools)"
  status=0
  if [ -x "$root/.venv/bin/ruff" ]; then
    run "ruff check deploy/tools" "$root/.venv/bin/ruff" check "$root/deploy/tools" || status=1
    run "ruff format --check deploy/tools" \
      "$root/.venv/bin/ruff" format --check "$root/deploy/tools" || status=1
  else
    echo "FAIL no .venv/bin/ruff: run scripts/bootstrap.sh"
    status=1
  fi
  verdict tools $status
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "validate-deploy: FAILED: ${failed[*]} (passed: ${passed[*]:-none})"
  exit 1
fi
echo "validate-deploy: every check passed: ${passed[*]}"
