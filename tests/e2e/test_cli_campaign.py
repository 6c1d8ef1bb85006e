"""`electd campaign`, `electd resign`, `electd elections` and `--election` on `electd leader`
/ `electd nodes` against real node processes on a real ZooKeeper: one JSON line per event,
an operator's resign seen by the candidate (lost, then leading again with a higher epoch),
CMD run only while leading with its fencing epoch and ended on SIGTERM, exit 0 on SIGTERM
after resigning, and 2 for bad usage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from electd.devcluster.cluster import NodeProcess, wait_until
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined

ELECTD = [sys.executable, "-m", "electd"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ELECTD, *args], capture_output=True, text=True, timeout=60)


def start_node(nodes: NodeFactory, election_path: str) -> NodeProcess:
    root = election_path.rsplit("/", 1)[0] + "/elections"
    proc = nodes.start("n1", extra=("--elections-root", root))
    wait_joined(proc)
    return proc


class Candidate:
    """`electd campaign ... --json`, its event lines collected."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*ELECTD, "campaign", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def epochs(self) -> list[int]:
        return [e["epoch"] for e in self.events if e["event"] == "leading"]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def test_campaign_resign_elections_and_named_reads(nodes: NodeFactory, election_path: str) -> None:
    node = start_node(nodes, election_path)
    target = ("--target", node.address)
    a = Candidate("jobs", "--id", "a", "--value", "hello", "--label", "k=v", "--json", *target)
    try:
        wait_until(lambda: a.epochs(), 30, "a leads")
        epoch = a.epochs()[0]
        out = run("leader", "--election", "jobs", "--json", *target)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"id": "a", "address": "", "epoch": epoch}
        out = run("nodes", "--election", "jobs", "--json", *target)
        assert [json.loads(ln)["id"] for ln in out.stdout.splitlines()] == ["a"]
        out = run("elections", "--json", *target)
        assert out.returncode == 0, out.stderr
        assert [json.loads(ln) for ln in out.stdout.splitlines()] == [
            {"name": "jobs", "candidates": 1}
        ]
        out = run("resign", "jobs", str(epoch), "--json", *target)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["epoch"] == epoch
        wait_until(lambda: len(a.epochs()) == 2, 30, "a leads again")
        assert a.epochs()[1] > epoch
        lost = [e for e in a.events if e["event"] == "lost"]
        assert [(e["epoch"], e["reason"]) for e in lost] == [(epoch, "deleted")]
        stale = run("resign", "jobs", str(epoch), *target)
        assert stale.returncode == 1 and "FAILED_PRECONDITION" in stale.stderr
    finally:
        code = a.stop()
    assert code == 0, a.proc.stderr.read() if a.proc.stderr else ""
    assert [e["event"] for e in a.events[-2:]] == ["lost", "stopped"]
    assert a.events[-2]["reason"] == "resigned"


def test_campaign_runs_cmd_only_while_leading_with_its_epoch(
    nodes: NodeFactory, election_path: str, tmp_path: Path
) -> None:
    node = start_node(nodes, election_path)
    marker = tmp_path / "epoch"
    script = (
        f'echo "$ELECTD_EPOCH $ELECTD_ELECTION $ELECTD_CANDIDATE_ID" > {marker}; exec sleep 600'
    )
    a = Candidate("jobs", "--id", "a", "--json", "--target", node.address, "--", "sh", "-c", script)
    try:
        wait_until(lambda: a.epochs() and marker.exists() and marker.read_text(), 30, "CMD ran")
        assert marker.read_text().split() == [str(a.epochs()[0]), "jobs", "a"]
    finally:
        code = a.stop()
    assert code == 0
    assert a.events[-1]["event"] == "stopped"


def test_cmd_exiting_on_its_own_resigns_with_its_exit_code(
    nodes: NodeFactory, election_path: str
) -> None:
    node = start_node(nodes, election_path)
    a = Candidate(
        "jobs", "--id", "a", "--json", "--target", node.address, "--", "sh", "-c", "exit 3"
    )
    assert a.proc.wait(60) == 3
    assert [e["event"] for e in a.events][-3:] == ["leading", "lost", "stopped"]


def test_bad_usage_exits_2() -> None:
    for args in (
        ["campaign", "jobs"],  # no --id
        ["campaign", "bad name", "--id", "a"],
        ["campaign", "jobs", "--id", "a", "--priority", "x"],
        ["campaign", "jobs", "--id", "a", "--", "/nonexistent/cmd"],
        ["resign", "jobs", "0"],
        ["resign", "jobs"],
        ["leader", "--election", "-bad"],
    ):
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
