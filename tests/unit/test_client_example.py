"""The Python example program (clients/python/run, on electd_client) against in-process
servers: the JSON lines of the shared format (clients/README.md), exit code 1 when no address
answered and 2 for bad usage, and SIGTERM/SIGINT ending `watch` with exit 0 within a second
(judged as 2 s on 2 shared cores), with an open stream and during a pending connection."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from electd.devcluster.cluster import wait_until
from tests.unit.test_client import (
    BlackHole,
    Node,
    dead_address,
    make_fixture,  # noqa: F401  (the fixture `make`)
    node_fixture,  # noqa: F401  (the fixture `node`)
)

RUN = Path(__file__).resolve().parents[2] / "clients" / "python" / "run"
CANCEL_BOUND = 2.0  # the contract's "exits 0 within a second", doubled


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUN), *args], capture_output=True, text=True, timeout=60)


def test_leader_and_nodes_print_the_shared_json_lines(node: Node) -> None:
    node.publish(1, 0)
    wait_until(node.serving, 5, "the node to serve")
    out = run("leader", "--json", dead_address(), node.address)
    assert out.returncode == 0, out.stderr
    assert out.stdout == '{"id":"n0","address":"n0:1","epoch":1000}\n'
    out = run("--json", "nodes", node.address)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [list(d) for d in lines] == [["id", "address", "sequence", "is_leader", "watches"]] * 2
    assert [(d["id"], d["is_leader"]) for d in lines] == [("a", True), ("b", False)]
    human = run("leader", node.address)
    assert human.returncode == 0 and human.stdout == "leader n0 at n0:1 (epoch 1000)\n"


def test_exit_codes_when_no_node_answered_and_for_bad_usage() -> None:
    dead = [dead_address(), dead_address()]
    out = run("leader", *dead)
    assert out.returncode == 1 and out.stdout == ""
    assert all(a in out.stderr for a in dead) and "UNAVAILABLE" in out.stderr
    assert run("leader", "nohost").returncode == 2
    assert run("bogus", "127.0.0.1:1").returncode == 2
    assert run("watch").returncode == 2


class Watch:
    def __init__(self, *addresses: str) -> None:
        self.proc = subprocess.Popen(
            [str(RUN), "--json", "watch", *addresses],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def stop(self, sig: int) -> tuple[int, float]:
        t = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(20)
        return code, time.monotonic() - t


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_an_open_watch_with_exit_0_at_once(node: Node, sig: int) -> None:
    node.publish(1, 0)
    w = Watch(node.address)
    wait_until(lambda: w.lines, 30, "the first leader line")
    node.publish(2, 1)
    wait_until(lambda: len(w.lines) >= 2, 10, "the second leader line")
    time.sleep(0.3)
    code, took = w.stop(sig)
    assert code == 0 and took < CANCEL_BOUND, (code, took)
    assert w.lines == [
        {"id": "n0", "address": "n0:1", "epoch": 1000},
        {"id": "n1", "address": "n1:1", "epoch": 1001},
    ]


def test_sigterm_during_a_pending_connection_exits_0_at_once(make: Any) -> None:
    hole = make(BlackHole)
    w = Watch(hole.address, hole.address)
    time.sleep(1.5)  # started, and waiting on the black hole
    assert w.proc.poll() is None
    code, took = w.stop(signal.SIGTERM)
    assert code == 0 and took < CANCEL_BOUND, (code, took)
