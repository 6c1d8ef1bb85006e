"""`electd top` driven for real: under tmux against a live 3-node cluster, its screen shows the
members in election order, the leader and epoch, each member's health and view, and follows a
failover; `--once` prints one frame for scripts and exits 1 when no node answers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import uuid

from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import free_port
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined


def three(nodes: NodeFactory) -> list:
    procs = []
    for i in (1, 2, 3):
        proc = nodes.start(f"n{i}")
        wait_joined(proc)
        procs.append(proc)
    return procs


def test_top_follows_a_failover_on_screen(nodes: NodeFactory) -> None:
    assert shutil.which("tmux"), "tmux is installed by the project (scripts/install-ops-tools.sh)"
    procs = three(nodes)
    session = f"electd-top-{uuid.uuid4().hex[:8]}"
    targets = " ".join(f"--target {p.address}" for p in procs)
    command = f"{sys.executable} -m electd top {targets} --interval 0.3"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", command], check=True
    )

    def screen() -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        )
        return out.stdout

    try:
        wait_until(lambda: "leader n1 at" in screen(), 20, "top shows n1 leading")
        text = screen()
        rows = [line for line in text.splitlines() if line.startswith("│")]
        assert [r.split("│")[2].strip() for r in rows] == ["n1", "n2", "n3"], text
        assert "*" in rows[0] and "*" not in rows[1], text  # the leader is marked
        assert text.count("SERVING") == 3 and text.count("n1 @ ") == 3, text
        procs[0].signal(signal.SIGTERM)
        wait_until(lambda: "leader n2 at" in screen(), 20, "top shows n2 leading")
        wait_until(lambda: "  n2  epoch" in screen(), 20, "the change is listed")
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        wait_until(
            lambda: (
                subprocess.run(
                    ["tmux", "has-session", "-t", session], capture_output=True
                ).returncode
                != 0
            ),
            10,
            "top exits on Ctrl-C",
        )
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_top_once_prints_a_frame_and_fails_when_nobody_answers(nodes: NodeFactory) -> None:
    procs = three(nodes)
    out = subprocess.run(
        [sys.executable, "-m", "electd", "top", "--once", "--target", procs[1].address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "leader n1" in out.stdout and out.stdout.count("SERVING") == 3
    dead = f"127.0.0.1:{free_port()}"
    out = subprocess.run(
        [sys.executable, "-m", "electd", "top", "--once", "--target", dead, "--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "no node answered" in out.stdout
