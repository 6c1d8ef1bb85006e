"""The deploy kit (deploy/): every file passes the real validator of its kind
(scripts/validate-deploy.sh), and each validator rejects a copy broken on purpose, so that the
validation cannot be vacuous. Against real nodes: the PromQL of the dashboard and of the alert
rules names only metrics that a node exposes, the Containerfile's HEALTHCHECK command tells a
live node from a dead one, and nodes lead, hand over and stop inside electd.service's seccomp
sandbox (deploy/tools/sandbox.py), which does refuse what the unit forbids."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster, free_port
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc
from tests.conftest import NodeFactory
from tests.e2e.helpers import health, stub, wait_joined

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPT = ROOT / "scripts" / "validate-deploy.sh"
TOOLS_PYTHON = ROOT / ".tools" / "deploy-venv" / "bin" / "python"
UNIT = DEPLOY / "systemd" / "electd.service"


def run(*argv: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.fixture(scope="module", autouse=True)
def validators_installed() -> None:
    done = run(SCRIPT, "--install-only", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_file_passes_its_validator() -> None:
    done = run(SCRIPT)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for verdict in (
        "PASS systemd-analyze verify electd.service: no errors, no warnings",
        "PASS systemd-analyze security --offline=yes --threshold=12",
        "PASS validate.py systemd",
        "PASS validate.py containerfile",
        "PASS kubernetes-validate",
        "check rules electd-alerts.yml",
        "test rules electd-alerts.test.yml",
        "PASS validate.py kubernetes",
        "PASS validate.py grafana",
        "PASS ruff check deploy/tools",
    ):
        assert verdict in out, f"{verdict!r} missing from:\n{out}"
    assert "FAIL" not in out
    assert re.search(r"Overall exposure level for electd\.service: (0\.\d|1\.[0-2]) ", out), out
    # every resource, against both Kubernetes versions
    assert len(re.findall(r"^  INFO .* passed for resource", out, re.M)) == 10, out
    assert "SUCCESS: 6 rules found" in out and "queries parsed by promtool" in out
    assert out.rstrip().endswith(
        "every check passed: systemd container kubernetes prometheus grafana tools"
    )


# --- each validator rejects a broken copy ------------------------------------------------------


@dataclass(frozen=True)
class Breakage:
    check: str  # --only
    file: str  # under deploy/
    old: str
    new: str
    expect: str  # in the output of the failed check

    def __str__(self) -> str:
        return f"{self.check}-{self.expect[:40]}"


BREAKAGES = [
    # systemd-analyze verify: a typo it only warns about (exit 0), and ExecStart's binary gone
    Breakage(
        "systemd",
        "systemd/electd.service",
        "\nKillMode=mixed",
        "\nKilMode=mixed",
        "Unknown key 'KilMode'",
    ),
    Breakage(
        "systemd",
        "systemd/electd.service",
        "ExecStart=/opt/electd/bin/electd serve",
        "ExecStart=electd serve",
        "FAIL systemd-analyze verify",
    ),
    # systemd-analyze security: capabilities left to the service raise the exposure
    Breakage(
        "systemd",
        "systemd/electd.service",
        "\nCapabilityBoundingSet=\n",
        "\n",
        "FAIL systemd-analyze security",
    ),
    # validate.py systemd: a misspelt variable electd would ignore, a stop timeout too short
    Breakage(
        "systemd",
        "systemd/electd.env",
        "ELECTD_SESSION_TIMEOUT=10",
        "ELECTD_SESION_TIMEOUT=10",
        "ELECTD_SESION_TIMEOUT is not a setting",
    ),
    Breakage(
        "systemd",
        "systemd/electd.service",
        "TimeoutStopSec=30s",
        "TimeoutStopSec=15s",
        "TimeoutStopSec=15s is less than",
    ),
    Breakage(
        "systemd",
        "systemd/electd.env",
        "ELECTD_LOG_LEVEL=info",
        "ELECTD_LOG_LEVEL=loud",
        "electd refuses it: ELECTD_LOG_LEVEL",
    ),
    # validate.py containerfile (dockerfile-parse)
    Breakage(
        "container", "container/Containerfile", "USER 10001:10001", "USER root", "runs as root"
    ),
    Breakage(
        "container",
        "container/Containerfile",
        "\nHEALTHCHECK ",
        "\n# HEALTHCHECK ",
        "no HEALTHCHECK",
    ),
    Breakage(
        "container",
        "container/Containerfile",
        "COPY server ./server",
        "ADD https://downloads.invalid/electd.tar.gz ./",
        "ADD of a remote URL",
    ),
    Breakage(
        "container",
        "container/Containerfile",
        "FROM python:3.11.13-slim-bookworm\n",
        "FROM python:3.11-slim\n",
        "is not a pinned python:3.11.N-slim tag",
    ),
    # kubernetes-validate: an unknown field (strict), an API version without a schema (a WARN)
    Breakage(
        "kubernetes",
        "kubernetes/statefulset.yaml",
        "            grpc:\n",
        "            grcp:\n",
        "'grcp' was unexpected",
    ),
    Breakage(
        "kubernetes",
        "kubernetes/poddisruptionbudget.yaml",
        "policy/v1",
        "policy/v1beta1",
        "Couldn't find schema",
    ),
    # validate.py kubernetes: a governing Service that does not exist, a short grace period
    Breakage(
        "kubernetes",
        "kubernetes/statefulset.yaml",
        "serviceName: electd-headless",
        "serviceName: electd-peers",
        "is not a headless Service",
    ),
    Breakage(
        "kubernetes",
        "kubernetes/statefulset.yaml",
        "enableServiceLinks: false",
        "enableServiceLinks: true",
        "its links set ELECTD_* names",
    ),
    Breakage(
        "kubernetes",
        "kubernetes/statefulset.yaml",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 10",
        "terminationGracePeriodSeconds 10 is less",
    ),
    # promtool check rules: a syntax error; promtool test rules: a threshold its tests refute
    Breakage(
        "prometheus",
        "prometheus/electd-alerts.yml",
        "(electd_has_leader) == 0",
        "(electd_has_leader) === 0",
        "FAIL promtool",
    ),
    Breakage(
        "prometheus",
        "prometheus/electd-alerts.yml",
        "electd_zookeeper_last_answer_age_seconds > 30",
        "electd_zookeeper_last_answer_age_seconds > 300",
        "alertname: ElectdZooKeeperUnreachable",
    ),
    # validate.py grafana: a query promtool cannot parse, a variable the dashboard lacks, JSON
    Breakage(
        "grafana",
        "grafana/electd-dashboard.json",
        "clamp_min(electd_lease_remaining",
        "clamp_min((electd_lease_remaining",
        "promtool rejects a query",
    ),
    Breakage(
        "grafana",
        "grafana/electd-dashboard.json",
        "[$__rate_interval]",
        "[$window]",
        "$window is not a variable",
    ),
    Breakage("grafana", "grafana/electd-dashboard.json", '"panels": [', '"panels": [[', "not JSON"),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=str)
def test_a_broken_copy_is_rejected(breakage: Breakage, tmp_path: Path) -> None:
    kit = tmp_path / "deploy"
    shutil.copytree(DEPLOY, kit, ignore=shutil.ignore_patterns("__pycache__"))
    target = kit / breakage.file
    text = target.read_text()
    assert breakage.old in text, f"the breakage no longer applies to {breakage.file}"
    target.write_text(text.replace(breakage.old, breakage.new, 1))
    done = run(SCRIPT, "--dir", kit, "--only", breakage.check)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert breakage.expect in out, out
    assert f"FAILED: {breakage.check}" in out, out


# --- against real nodes ----------------------------------------------------------------------


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
        return text


def exposed_names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def names_used(*files: Path) -> dict[str, set[str]]:
    done = run(TOOLS_PYTHON, DEPLOY / "tools" / "validate.py", "metrics", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    return {Path(k).name: set(v) for k, v in json.loads(done.stdout).items()}


def test_queries_use_only_metrics_a_node_exposes(nodes: NodeFactory, tmp_path: Path) -> None:
    port = free_port()
    # a leader command that exits, so that its exit counter has a sample too
    node = nodes.start(
        "n1", extra=("--http-listen", f"127.0.0.1:{port}", "--leader-command", "exit 3")
    )
    wait_joined(node)
    stub(node).GetLeader(pb.GetLeaderRequest(), timeout=2)  # a request, its latency histogram
    with grpc.insecure_channel(node.address) as channel:
        watch = pb_grpc.ElectionServiceStub(channel).WatchLeader(pb.WatchLeaderRequest())
        next(watch)
        watch.cancel()
    wait_until(
        lambda: "electd_leader_command_exits_total{" in scrape(port), 15, "the command's exit"
    )
    wait_until(lambda: "WatchLeader" in scrape(port), 15, "the stream counted")
    exposed = exposed_names(scrape(port))
    dashboard = DEPLOY / "grafana" / "electd-dashboard.json"
    rules = DEPLOY / "prometheus" / "electd-alerts.yml"
    used = names_used(dashboard, rules)
    assert len(used["electd-dashboard.json"]) >= 15 and len(used["electd-alerts.yml"]) == 5
    for name, names in used.items():
        assert names <= exposed, f"{name} uses metrics no node exposes: {names - exposed}"
    assert {n for n in used["electd-dashboard.json"] if n.endswith("_bucket")}

    # the same comparison catches a misspelt metric
    broken = tmp_path / "electd-dashboard.json"
    broken.write_text(dashboard.read_text().replace("electd_watch_streams{", "electd_streams{"))
    assert names_used(broken)["electd-dashboard.json"] - exposed == {"electd_streams"}


def healthcheck_argv() -> list[str]:
    text = (DEPLOY / "container" / "Containerfile").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK "))
    argv: list[str] = json.loads(line.split(" CMD ", 1)[1])
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_the_containerfile_healthcheck_tells_a_live_node_from_a_dead_one(
    nodes: NodeFactory,
) -> None:
    port = free_port()
    node = nodes.start("n1", extra=("--http-listen", f"127.0.0.1:{port}"))
    wait_joined(node)
    argv = healthcheck_argv()
    env = {"ELECTD_HTTP_LISTEN": f"0.0.0.0:{port}", "PATH": "/usr/bin:/bin"}
    live = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
    assert live.returncode == 0, live.stderr
    node.signal(signal.SIGTERM)
    assert node.wait(15) == 0
    dead = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
    assert dead.returncode == 1 and "Connection refused" in dead.stderr


@dataclass
class SandboxedNode(NodeProcess):
    """`electd serve` inside the seccomp filters of a systemd unit (deploy/tools/sandbox.py)."""

    unit: Path = UNIT

    def command(self) -> list[str]:
        sandbox = DEPLOY / "tools" / "sandbox.py"
        return ["/usr/bin/python3", str(sandbox), str(self.unit), "--", *super().command()]


def sandboxed(
    zk: ZooKeeperCluster, path: str, workdir: Path, node_id: str, *extra: str, unit: Path = UNIT
) -> SandboxedNode:
    node = SandboxedNode(
        zk.connect_string,
        free_port(),
        workdir,
        node_id=node_id,
        election_path=path,
        session_timeout=2.0,
        extra_args=extra,
        unit=unit,
    )
    node.start()
    return node


def test_nodes_work_inside_the_units_sandbox(
    zk: ZooKeeperCluster, election_path: str, tmp_path: Path
) -> None:
    port = free_port()
    marker = tmp_path / "epochs"
    command = f'echo "$ELECTD_EPOCH" >> {marker}; exec sleep 60'
    n1 = sandboxed(
        zk,
        election_path,
        tmp_path,
        "n1",
        "--http-listen",
        f"127.0.0.1:{port}",
        "--leader-command",
        command,
    )
    n2 = None
    try:
        wait_joined(n1)
        status = Path(f"/proc/{n1.pid}/status").read_text()  # sandbox.py exec'd electd
        assert re.search(r"^Seccomp:\s+2$", status, re.M), status  # filtered
        assert re.search(r"^Seccomp_filters:\s+2$", status, re.M), status
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        n2 = sandboxed(zk, election_path, tmp_path, "n2", "--leader-command", command)
        wait_joined(n2)
        text = scrape(port)
        assert 'electd_is_leader{election="node"} 1.0' in text
        assert "electd_leader_command_running 1.0" in text
        n1.signal(signal.SIGTERM)
        assert n1.wait(15) == 0, n1.log_text()
        wait_until(lambda: len(marker.read_text().split()) == 2, 15, "n2's leader command")
        first, second = map(int, marker.read_text().split())
        assert second > first
        n2.signal(signal.SIGTERM)
        assert n2.wait(15) == 0, n2.log_text()
    finally:
        for node in (n1, n2):
            if node is not None:
                node.stop()


def test_the_sandbox_refuses_what_the_unit_forbids(
    zk: ZooKeeperCluster, election_path: str, tmp_path: Path
) -> None:
    # what electd never does: W+X memory, a netlink socket, changing its priority
    probe = (
        "import mmap, os, socket\n"
        "for attempt in (lambda: mmap.mmap(-1, 4096, prot=7),\n"
        "                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW),\n"
        "                lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)):\n"
        "    try:\n"
        "        attempt()\n"
        "        print('allowed')\n"
        "    except OSError as exc:\n"
        "        print(exc.errno)\n"
    )
    inside = run(
        "/usr/bin/python3",
        DEPLOY / "tools" / "sandbox.py",
        UNIT,
        "--",
        sys.executable,
        "-c",
        probe,
        timeout=60,
    )
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split() == ["1", "97", "1"]  # EPERM, EAFNOSUPPORT, EPERM
    outside = run(sys.executable, "-c", probe, timeout=60)
    assert outside.stdout.split()[:2] == ["allowed", "allowed"]

    # a unit whose filter is too narrow for electd: the node cannot even start
    narrow = tmp_path / "narrow.service"
    narrow.write_text(
        UNIT.read_text().replace(
            "SystemCallFilter=~@privileged @resources", "SystemCallFilter=~@network-io"
        )
    )
    node = sandboxed(zk, election_path, tmp_path, "n1", unit=narrow)
    try:
        assert node.wait(30) != 0
        assert health(node) == "UNREACHABLE"
    finally:
        node.stop()
