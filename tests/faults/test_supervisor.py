"""The supervisor's scenarios: the leader command is bound to its term whatever happens to the
node process, and a crashed node's session ends at once.

The command is `blind_writer.py`: it writes to the fenced resource every 20 ms and never asks
whether its node still leads (a buggy command would not), often ignoring SIGTERM. So the
resource's record of when each write arrived judges the supervisor alone: every write of a
term arrives before the first write of the next term (zero overlap), and the resource rejects
nothing (no write of an older epoch after a newer one). Real ZooKeeper, real processes.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import free_port
from tests.conftest import NodeFactory
from tests.e2e.helpers import leader_id, wait_joined
from tests.faults.fence import FencedStore
from tests.faults.history import History

BLIND = Path(__file__).with_name("blind_writer.py")
T = 2.0  # session timeout of every node here


@dataclass
class Term:
    epoch: int
    writers: set[str]
    first: float
    last: float
    writes: int


@pytest.fixture
def fence() -> Iterator[FencedStore]:
    store = FencedStore(History())
    yield store
    store.close()


def command(fence: FencedStore, ignore_term: bool = True, grandchild: bool = False) -> str:
    env = f"BLIND_FENCE={fence.address} BLIND_IGNORE_TERM={int(ignore_term)}"
    env += f" BLIND_GRANDCHILD={int(grandchild)}"
    return f"{env} exec {sys.executable} {BLIND}"


def terms(fence: FencedStore) -> list[Term]:
    out: dict[int, Term] = {}
    for w in fence._history.events("write"):
        epoch = int(w.data["epoch"])
        term = out.setdefault(epoch, Term(epoch, set(), w.t, w.t, 0))
        term.writers.add(w.node)
        term.last, term.writes = w.t, term.writes + 1
    return [out[e] for e in sorted(out)]


def judge(fence: FencedStore) -> list[Term]:
    """Zero overlap at the resource: each term's last write arrived before the next term's
    first; and no write was rejected."""
    rows = terms(fence)
    rejected = [w for w in fence._history.events("write") if not w.data["accepted"]]
    assert not rejected, f"writes of a deposed term reached the resource: {rejected[:3]}"
    for old, new in itertools.pairwise(rows):
        assert old.last < new.first, (
            f"epoch {old.epoch} ({sorted(old.writers)}) wrote {old.last - new.first:.3f}s into "
            f"epoch {new.epoch}'s term"
        )
    for row in rows:
        print(
            f"  epoch {row.epoch}: {sorted(row.writers)} {row.writes} writes, "
            f"{row.first:.3f} .. {row.last:.3f}"
        )
    return rows


def writes_of(fence: FencedStore, node: str) -> int:
    return sum(1 for w in fence._history.events("write") if w.node.split("/")[0] == node)


def two_nodes(
    nodes: NodeFactory, fence: FencedStore, **kw: bool
) -> tuple[NodeProcess, NodeProcess]:
    extra = ("--leader-command", command(fence, **kw))
    n1 = nodes.start("n1", session_timeout=T, extra=extra)
    wait_joined(n1)
    n2 = nodes.start("n2", session_timeout=T, extra=extra)
    wait_joined(n2)
    wait_until(lambda: writes_of(fence, "n1") >= 5, 15, "n1's command writes")
    return n1, n2


def writers_alive(fence: FencedStore, node: str) -> list[int]:
    """pids of blind writers of `node` still running (found by their environment)."""
    mine = f"BLIND_FENCE={fence.address}"
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"blind_writer.py" not in (proc / "cmdline").read_bytes():
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mine.encode() in env and f"ELECTD_NODE_ID={node}".encode() in env:
            out.append(int(proc.name))
    return out


def test_a_command_that_ignores_sigterm_dies_before_the_successor_of_its_sigkilled_node_leads(
    nodes: NodeFactory, fence: FencedStore
) -> None:
    """SIGKILL of the node process alone: the supervisor kills the command (SIGTERM ignored,
    SIGKILL after the grace), closes the dead session, and the successor leads long before the
    session timeout would have let it."""
    n1, _ = two_nodes(nodes, fence, ignore_term=True)
    killed = time.monotonic()
    assert n1.signal_node(signal.SIGKILL) is not None
    wait_until(lambda: writes_of(fence, "n2") >= 3, 15, "n2's command writes")
    rows = judge(fence)
    assert [sorted(r.writers) for r in rows] == [["n1"], ["n2"]]
    assert "closed the dead node's ZooKeeper session" in n1.log_text(200)
    print(
        f"\nnode SIGKILL -> n1's last write {rows[0].last - killed:+.3f}s, "
        f"n2's first {rows[1].first - killed:+.3f}s (session timeout {T:g}s)"
    )
    wait_until(lambda: leader_id(n1) == "n2", 20, "n1's new node process follows n2")


def test_a_sigstopped_node_process_loses_its_command_before_its_lease_runs_out(
    nodes: NodeFactory, fence: FencedStore
) -> None:
    """SIGSTOP of the node process past the session timeout: no renewals reach the supervisor,
    which ends the command on its own copy of the lease; the successor leads once ZooKeeper
    expires the frozen session; the resumed node rejoins as a follower."""
    n1, _ = two_nodes(nodes, fence, ignore_term=True)
    stopped = time.monotonic()
    pid = n1.signal_node(signal.SIGSTOP)
    assert pid is not None
    try:
        wait_until(lambda: writes_of(fence, "n2") >= 3, 15, "n2's command writes")
        rows = judge(fence)
        assert [sorted(r.writers) for r in rows] == [["n1"], ["n2"]]
        # The lease ran from before the stop, and ends 2T/3 after its anchor at the latest.
        assert rows[0].last - stopped < 2 * T / 3, "the command outlived its lease"
    finally:
        os.kill(pid, signal.SIGCONT)
    print(
        f"\nnode SIGSTOP -> n1's last write {rows[0].last - stopped:+.3f}s, n2's first "
        f"{rows[1].first - stopped:+.3f}s"
    )
    wait_until(lambda: leader_id(n1) == "n2", 20, "the resumed node follows n2")
    judge(fence)


def test_nothing_of_the_command_survives_when_supervisor_and_node_are_both_killed(
    nodes: NodeFactory, fence: FencedStore
) -> None:
    """SIGKILL of the whole of electd (supervisor and node): the command, and its grandchild
    that left the process group, die with the supervisor (pid namespace, parent-death signal);
    the successor leads after the session timeout, as without a supervisor."""
    n1, _ = two_nodes(nodes, fence, ignore_term=True, grandchild=True)
    wait_until(lambda: len(writers_alive(fence, "n1")) == 2, 10, "n1's command and grandchild")
    killed = time.monotonic()
    n1.kill()
    wait_until(lambda: writes_of(fence, "n2") >= 3, 15, "n2's command writes")
    rows = judge(fence)
    assert rows[0].writers == {"n1", "n1/grandchild"}
    assert writers_alive(fence, "n1") == []
    print(
        f"\nboth SIGKILLed -> n1's last write {rows[0].last - killed:+.3f}s, n2's first "
        f"{rows[1].first - killed:+.3f}s"
    )


def test_a_grandchild_that_leaves_the_process_group_ends_with_the_term(
    nodes: NodeFactory, fence: FencedStore
) -> None:
    """The command forks a grandchild that calls setsid (out of the group a killpg reaches) and
    ignores SIGTERM; graceful handover, then a SIGKILL of the next leader's node process: each
    time every process of the old term is dead before the new term's first write."""
    n1, n2 = two_nodes(nodes, fence, ignore_term=True, grandchild=True)
    extra = ("--leader-command", command(fence, grandchild=True))
    n3 = nodes.start("n3", session_timeout=T, extra=extra)
    wait_joined(n3)
    n1.stop()
    wait_until(lambda: writes_of(fence, "n2") >= 3, 15, "n2's command writes")
    assert writers_alive(fence, "n1") == []
    n2.signal_node(signal.SIGKILL)
    wait_until(lambda: writes_of(fence, "n3") >= 3, 15, "n3's command writes")
    rows = judge(fence)
    assert [r.writers for r in rows] == [
        {"n1", "n1/grandchild"},
        {"n2", "n2/grandchild"},
        {"n3", "n3/grandchild"},
    ]
    wait_until(lambda: writers_alive(fence, "n2") == [], 5, "n2's command gone")


def test_a_failed_spawn_is_retried_and_shows_in_readiness_and_metrics(
    nodes: NodeFactory, fence: FencedStore
) -> None:
    """The supervisor runs out of file descriptors (prlimit): the command cannot be started
    again after it exits; the log names it, /readyz answers 503 with the reason, the metric
    counts it; once descriptors are back the command starts by itself."""
    http = free_port()
    extra = (
        "--leader-command",
        command(fence, ignore_term=False),
        "--http-listen",
        f"127.0.0.1:{http}",
    )
    n1 = nodes.start("n1", session_timeout=T, extra=extra)
    wait_joined(n1)
    wait_until(lambda: len(writers_alive(fence, "n1")) == 1, 15, "n1's command runs")
    supervisor = n1.pid
    fds = len(os.listdir(f"/proc/{supervisor}/fd"))
    limits = Path(f"/proc/{supervisor}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()  # type: ignore[union-attr]
    subprocess.run(["prlimit", f"--pid={supervisor}", f"--nofile={fds}:{hard}"], check=True)
    try:
        for pid in writers_alive(fence, "n1"):
            os.kill(pid, signal.SIGKILL)  # exits "on its own": the policy restarts it
        wait_until(
            lambda: "cannot start the leader command" in n1.log_text(100), 15, "the spawn error"
        )
        ready = _http(http, "/readyz")
        assert ready[0] == 503 and "cannot start the leader command" in ready[1], ready
        metrics = _http(http, "/metrics")[1]
        assert re.search(r"electd_leader_command_spawn_failures_total [1-9]", metrics), metrics
    finally:
        subprocess.run(["prlimit", f"--pid={supervisor}", f"--nofile={soft}:{hard}"], check=True)
    wait_until(lambda: len(writers_alive(fence, "n1")) == 1, 20, "the command started again")
    wait_until(lambda: _http(http, "/readyz")[0] == 200, 10, "ready again")
    judge(fence)


def test_a_node_process_that_crashes_in_a_loop_is_restarted_with_backoff(
    nodes: NodeFactory, fence: FencedStore
) -> None:
    """The node process is SIGKILLed again as soon as it is back, four times: the supervisor
    waits longer each time (0.1, 0.2, 0.4, 0.8 s), every term's command is dead before the next
    term writes, and afterwards the node serves again."""
    n1, _ = two_nodes(nodes, fence, ignore_term=True)
    seen: set[int] = set()
    for _ in range(4):
        pid = wait_until(
            lambda: (p := n1.node_pid()) is not None and p not in seen and p, 20, "a node process"
        )
        seen.add(int(pid))
        os.kill(int(pid), signal.SIGKILL)
    wait_until(lambda: leader_id(n1) == "n2", 30, "n1 serves again, following n2")
    delays = re.findall(r"node process restarts in ([0-9.]+)s", n1.log_text(400))
    assert delays[:4] == ["0.1", "0.2", "0.4", "0.8"], delays
    judge(fence)


def _http(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
