"""Candidates of a named election under faults (RELIABILITY.md, C1-C4): whatever happens to a
candidate, its stream or its node, no two candidates' terms overlap at the fenced resource.

Each candidate is `candidate.py`: one Campaign stream through raw stubs, and a writer that
trusts nothing but its lease (it writes every 20 ms while its monotonic clock is before the
deadline of its last `leading`, less a margin). So the resource's record of when each write
arrived judges the nodes alone: every write of a term arrives before the first write of the
next term, and no write is rejected. Each candidate also reports its belief (candidate.py:
the `leading` that began it and the deadline, `lost` or resign that ended it) into the same
history, and at the end both checkers judge that history: checker.check_candidates (rules 1-3:
no overlap of the candidates' exact claims, bound 0; each epoch names one candidate; fencing)
and Porcupine (linearize.py). Real ZooKeeper, real supervised nodes, real processes.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined
from tests.faults.campaigners import CandidateProcess, judge, stop_all
from tests.faults.checker import Bounds, exact_terms
from tests.faults.fence import FencedStore
from tests.faults.history import History
from tests.faults.net import RawProxy
from tests.faults.test_supervisor import judge as judge_fence
from tests.faults.test_supervisor import writes_of

T = 2.0  # session timeout of every node
LEASE = 1.0  # --candidate-lease
SILENT = 1.0  # --candidate-timeout


@pytest.fixture
def fence() -> Iterator[FencedStore]:
    store = FencedStore(History())
    yield store
    store.close()


@pytest.fixture
def candidates() -> Iterator[list[CandidateProcess]]:
    made: list[CandidateProcess] = []
    yield made
    for c in made:
        c.stop()
        print(f"  {c.id}: {' | '.join(c.lines[-8:])}")


def two_nodes(nodes: NodeFactory) -> tuple[NodeProcess, NodeProcess]:
    extra = ("--candidate-lease", str(LEASE), "--candidate-timeout", str(SILENT))
    n1 = nodes.start("n1", session_timeout=T, extra=extra)
    wait_joined(n1)
    n2 = nodes.start("n2", session_timeout=T, extra=extra)
    wait_joined(n2)
    return n1, n2


def campaign(
    made: list[CandidateProcess],
    fence: FencedStore,
    election: str,
    first: str,
    second: str,
    *extra: str,
) -> tuple[CandidateProcess, CandidateProcess]:
    """c1 through `first` (leads, writing), then c2 through `second` (queued)."""
    c1 = CandidateProcess(first, election, "c1", fence, *extra)
    made.append(c1)
    wait_until(lambda: writes_of(fence, "c1") >= 5, 20, "c1 leads and writes")
    c2 = CandidateProcess(second, election, "c2", fence)
    made.append(c2)
    wait_until(lambda: c2.saw("queued"), 20, "c2 is queued")
    return c1, c2


def name() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


END_SOURCES = {"deadline", "lost", "resign"}


def both_checkers(
    fence: FencedStore, made: list[CandidateProcess], workdir: Path, label: str
) -> None:
    """Resign every candidate still running (so that its last claim is in), then judge the
    history with both checkers (campaigners.judge). Fails on any violation, on a verdict that
    is not "linearizable", and on a term without the claims that open and close it."""
    stop_all(made)
    _, _, failures = judge(fence._history, Bounds(T), workdir, label)
    assert not failures, "\n".join(failures[:20])
    for t in exact_terms(fence._history.events(), {}):
        sources = {c.source for c in t.claims}
        assert t.first.source == "leading", f"{t.node} epoch {t.epoch} began with {t.first}"
        assert sources & END_SOURCES, f"{t.node} epoch {t.epoch}: no end of belief ({sources})"


@pytest.mark.timeout(120)
def test_a_node_killed_under_its_leading_candidate_closes_only_after_the_lease(
    nodes: NodeFactory, fence: FencedStore, candidates: list[CandidateProcess], tmp_path: Path
) -> None:
    """C4: SIGKILL of n1's node process while its candidate leads. The supervisor closes the
    dead session only once the lease granted to c1 ran out; c2 (on n2) leads after that."""
    n1, n2 = two_nodes(nodes)
    c1, c2 = campaign(candidates, fence, name(), n1.address, n2.address)
    killed = time.monotonic()
    assert n1.signal_node(signal.SIGKILL) is not None
    wait_until(lambda: writes_of(fence, "c2") >= 3, 20, "c2 leads and writes")
    assert c1.saw("ended") and c2.saw("leading")
    rows = judge_fence(fence)
    assert [sorted(r.writers) for r in rows] == [["c1"], ["c2"]]
    closed = "closed the dead node's ZooKeeper session"
    wait_until(lambda: closed in n1.log_text(400), 10, "the supervisor closes the dead session")
    assert "granted candidates leases until" in n1.log_text(400)
    print(
        f"\nnode SIGKILL -> c1's last write {rows[0].last - killed:+.3f}s, "
        f"c2's first {rows[1].first - killed:+.3f}s (candidate lease {LEASE:g}s, T {T:g}s)"
    )
    both_checkers(fence, candidates, tmp_path, "node killed under its leading candidate")


@pytest.mark.timeout(120)
def test_a_candidate_partitioned_from_its_node_hands_over_after_its_lease(
    nodes: NodeFactory, fence: FencedStore, candidates: list[CandidateProcess], tmp_path: Path
) -> None:
    """C3: c1's connection to n1 goes through a proxy that is cut (packets held, nothing
    closed). c1 stops at its deadline; n1 ends the silent candidacy after --candidate-timeout
    and deletes the entry only after the last lease it granted; c2 leads after that."""
    n1, n2 = two_nodes(nodes)
    host, _, port = n1.address.rpartition(":")
    proxy = RawProxy(host, int(port))
    try:
        c1, c2 = campaign(candidates, fence, name(), proxy.address, n2.address)
        cut = time.monotonic()
        proxy.block()
        wait_until(lambda: writes_of(fence, "c2") >= 3, 30, "c2 leads and writes")
        assert c2.saw("leading") and not c1.saw("lost")  # c1 heard nothing: it just ran out
        rows = judge_fence(fence)
        assert [sorted(r.writers) for r in rows] == [["c1"], ["c2"]]
        print(
            f"\npartition -> c1's last write {rows[0].last - cut:+.3f}s, "
            f"c2's first {rows[1].first - cut:+.3f}s"
        )
        both_checkers(fence, candidates, tmp_path, "candidate partitioned from its node")
    finally:
        proxy.close()


@pytest.mark.timeout(120)
def test_a_candidate_that_stops_reading_never_overlaps_its_successor(
    nodes: NodeFactory, fence: FencedStore, candidates: list[CandidateProcess], tmp_path: Path
) -> None:
    """A candidate that keeps pinging but reads no answer: its deadline is never extended, so
    it stops writing; whether its node gives up on it first or its stream breaks (SIGKILL),
    c2 leads only after c1's last lease."""
    n1, n2 = two_nodes(nodes)
    c1, c2 = campaign(
        candidates, fence, name(), n1.address, n2.address, "--stop-reading-after", "12"
    )
    wait_until(lambda: c1.saw("stopped reading"), 20, "c1 stops reading")
    stopped = time.monotonic()
    wait_until(lambda: writes_of(fence, "c1") > 0 and _quiet(fence, "c1"), 20, "c1 stops writing")
    c1.proc.send_signal(signal.SIGKILL)  # its stream breaks only now
    wait_until(lambda: writes_of(fence, "c2") >= 3, 30, "c2 leads and writes")
    assert c2.saw("leading")
    rows = judge_fence(fence)
    assert [sorted(r.writers) for r in rows] == [["c1"], ["c2"]]
    print(
        f"\nstopped reading -> c1's last write {rows[0].last - stopped:+.3f}s, "
        f"c2's first {rows[1].first - stopped:+.3f}s"
    )
    both_checkers(fence, candidates, tmp_path, "candidate that stops reading")


@pytest.mark.timeout(120)
def test_a_resign_racing_a_crash_of_its_node(
    nodes: NodeFactory, fence: FencedStore, candidates: list[CandidateProcess], tmp_path: Path
) -> None:
    """c1 resigns (SIGTERM: it stops writing, then sends resign) at the moment n1's node process
    is SIGKILLed: whichever reaches ZooKeeper first, c2 leads only after c1 stopped."""
    n1, n2 = two_nodes(nodes)
    c1, c2 = campaign(candidates, fence, name(), n1.address, n2.address)
    c1.proc.send_signal(signal.SIGTERM)
    assert n1.signal_node(signal.SIGKILL) is not None
    wait_until(lambda: writes_of(fence, "c2") >= 3, 20, "c2 leads and writes")
    assert c2.saw("leading")
    rows = judge_fence(fence)
    assert [sorted(r.writers) for r in rows] == [["c1"], ["c2"]]
    both_checkers(fence, candidates, tmp_path, "resign racing a crash of its node")


def _quiet(fence: FencedStore, who: str) -> bool:
    """No write of `who` in the last half second."""
    last = max((w.t for w in fence._history.events("write") if w.node == who), default=0.0)
    return time.monotonic() - last > 0.5
