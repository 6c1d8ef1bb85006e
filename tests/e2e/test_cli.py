"""The command line: clear one-line errors and exit codes for bad configuration, and the
query commands against a live node."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from electd.devcluster.zookeeper import free_port
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined

ELECTD = [sys.executable, "-m", "electd"]


def run(*args: str, timeout: float = 30, env: dict[str, str] | None = None):
    return subprocess.run(
        [*ELECTD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr
    error_lines = [ln for ln in lines if ln.startswith("electd: error:")]
    assert len(error_lines) == 1, proc.stderr
    for word in words:
        assert word in error_lines[0], error_lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--zk", "localhost"], ["--zk", "HOST:PORT"]),
        (["--zk", "localhost:99999"], ["--zk", "out of range"]),
        (["--zk", "a:1,,b:2"], ["--zk", "empty server"]),
        (["--zk", "127.0.0.1:2181/chroot/"], ["chroot", "must not end"]),
        (["--election-path", "election"], ["--election-path", "start with '/'"]),
        (["--election-path", "/a//b"], ["--election-path", "empty"]),
        (["--listen", "nohost"], ["--listen"]),
        (["--label", "novalue"], ["--label", "KEY=VALUE"]),
        (["--node-id", "bad id!"], ["--node-id"]),
        (["--session-timeout", "0"], ["--session-timeout"]),
    ],
)
def test_bad_configuration_is_one_clear_line_and_exit_2(args: list[str], words: list[str]) -> None:
    assert_one_line_error(run("serve", *args), 2, *words)


def test_bad_environment_variable_is_reported() -> None:
    proc = run("serve", env={"ELECTD_SESSION_TIMEOUT": "soon"})
    assert_one_line_error(proc, 2, "ELECTD_SESSION_TIMEOUT")


def test_unreachable_zookeeper_gives_up_after_the_connect_timeout() -> None:
    dead = free_port()  # nothing listens there
    proc = run(
        "serve", "--zk", f"127.0.0.1:{dead}", "--listen", "127.0.0.1:0", "--connect-timeout", "1"
    )
    assert_one_line_error(proc, 1, "no ZooKeeper server reachable", str(dead))


def test_port_in_use_is_reported(zk) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = run("serve", "--zk", zk.connect_string, "--listen", f"127.0.0.1:{port}")
    assert_one_line_error(proc, 1, "cannot listen", str(port))


def test_help_explains_every_flag() -> None:
    out = run("serve", "--help").stdout
    for flag in (
        "--zk",
        "--election-path",
        "--listen",
        "--advertise",
        "--node-id",
        "--label",
        "--session-timeout",
        "ELECTD_ZK",
        "ELECTD_LISTEN",
    ):
        assert flag in out


def test_leader_nodes_and_watch_commands(nodes: NodeFactory) -> None:
    n1 = nodes.start("n1")
    wait_joined(n1)
    n2 = nodes.start("n2")
    wait_joined(n2)
    dead = f"127.0.0.1:{free_port()}"
    # The first target is dead: the command fails over to the next.
    out = run("leader", "--json", "--target", dead, "--target", n2.address)
    assert out.returncode == 0, out.stderr
    leader = json.loads(out.stdout)
    assert leader["id"] == "n1" and leader["address"] == n1.address and leader["epoch"] > 0
    out = run("nodes", "--json", "--target", n1.address)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["n1", "n2"]
    assert rows[1]["watches"] and rows[0]["is_leader"] and not rows[1]["is_leader"]
    human = run("nodes", "--target", n1.address).stdout
    assert "n1" in human and "n2" in human and "*" in human

    watch = subprocess.Popen(
        [*ELECTD, "watch", "--json", "--target", n2.address], stdout=subprocess.PIPE, text=True
    )
    assert watch.stdout is not None
    first = json.loads(watch.stdout.readline())
    assert first["id"] == "n1"
    n1.signal(signal.SIGTERM)
    second = json.loads(watch.stdout.readline())
    assert second["id"] == "n2" and second["epoch"] > first["epoch"]
    watch.send_signal(signal.SIGINT)
    assert watch.wait(10) == 0


def test_no_node_answering_exits_1_naming_the_addresses() -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = run("leader", "--target", dead, "--timeout", "0.5")
    assert_one_line_error(proc, 1, dead)


def test_watch_with_no_node_answering_exits_1() -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = run("watch", "--target", dead, "--timeout", "0.5")
    assert_one_line_error(proc, 1, dead)
