"""The Python campaign helper (electd_client: ElectionClient.campaign, blocking and asyncio)
against real node processes on a real ZooKeeper: one candidate's work runs at a time and
never twice for an epoch; resign (the candidate's and an operator's) hands leadership on with
a higher epoch; the stream fails over when its node dies; proclaim changes what GetLeader
reports; the reads of a named election (get_leader/list_nodes/list_elections/watch_leader)
name the candidates; and the example program's `campaign` prints the shared lines and keeps
its log lines of different epochs apart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from electd_client import CampaignEvent, ElectdError, ElectionClient, Term, aio
from tests.conftest import NodeFactory
from tests.e2e.helpers import wait_joined

ELECTION = "jobs"
RUN_EXAMPLE = Path(__file__).resolve().parents[2] / "clients" / "python" / "run"


def start_nodes(nodes: NodeFactory, election_path: str, *ids: str) -> list[NodeProcess]:
    """Nodes with an elections root of this test's own."""
    root = election_path.rsplit("/", 1)[0] + "/elections"
    procs = [nodes.start(i, extra=("--elections-root", root)) for i in ids]
    for proc in procs:
        wait_joined(proc)
    return procs


class Journal:
    """What every candidate's work did, in order: ("start"|"stop", candidate, epoch)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, str, int]] = []
        self.events: dict[str, list[CampaignEvent]] = {}

    def work(self, candidate: str) -> Callable[[Term], None]:
        def run(term: Term) -> None:
            with self.lock:
                self.entries.append(("start", candidate, term.epoch))
            term.cancelled.wait()
            with self.lock:
                self.entries.append(("stop", candidate, term.epoch))

        return run

    def hook(self, candidate: str) -> Callable[[CampaignEvent], None]:
        return self.events.setdefault(candidate, []).append

    def started(self, candidate: str) -> list[int]:
        with self.lock:
            return [e for k, c, e in self.entries if k == "start" and c == candidate]

    def assert_one_at_a_time(self) -> None:
        """No work started while another ran, and epochs only grew from term to term."""
        running: tuple[str, int] | None = None
        last = 0
        with self.lock:
            entries = list(self.entries)
        for kind, candidate, epoch in entries:
            if kind == "start":
                assert running is None, (running, candidate, epoch, entries)
                assert epoch > last, entries
                running, last = (candidate, epoch), epoch
            else:
                assert running == (candidate, epoch), entries
                running = None


def test_one_candidate_leads_at_a_time_and_resigning_hands_on_with_a_higher_epoch(
    nodes: NodeFactory, election_path: str
) -> None:
    n1, n2 = start_nodes(nodes, election_path, "n1", "n2")
    journal = Journal()
    with ElectionClient([n1.address]) as c1, ElectionClient([n2.address]) as c2:
        a = c1.campaign(ELECTION, "a", journal.work("a"), on_event=journal.hook("a"))
        wait_until(lambda: journal.started("a"), 20, "a leads")
        b = c2.campaign(ELECTION, "b", journal.work("b"), value=b"vb", labels={"zone": "z2"})
        wait_until(
            lambda: any(e.kind == "queued" for e in journal.events["a"]), 5, "a's queued event"
        )
        leader = c2.get_leader(ELECTION).leader
        assert (leader.node.id, leader.epoch) == ("a", journal.started("a")[0])
        wait_until(lambda: len(c1.list_nodes(election=ELECTION).nodes) == 2, 10, "b listed")
        members = c1.list_nodes(election=ELECTION).nodes
        assert [(m.id, m.is_leader) for m in members] == [("a", True), ("b", False)]
        assert (members[1].value, dict(members[1].labels), members[1].host_id) == (
            b"vb",
            {"zone": "z2"},
            "n2",
        )
        assert [(e.name, e.candidates) for e in c1.list_elections().elections] == [(ELECTION, 2)]
        a.resign()
        assert a.result(0) is None
        wait_until(lambda: journal.started("b"), 20, "b leads")
        assert journal.started("b")[0] > journal.started("a")[0]
        assert c1.get_leader(ELECTION).leader.node.id == "b"
        b.resign()
    journal.assert_one_at_a_time()
    kinds = [(e.kind, e.reason) for e in journal.events["a"] if e.kind in ("lost", "stopped")]
    assert kinds == [("lost", "resigned"), ("stopped", "resigned")]


def test_an_operators_resign_ends_the_term_and_the_candidate_campaigns_again(
    nodes: NodeFactory, election_path: str
) -> None:
    (n1,) = start_nodes(nodes, election_path, "n1")
    journal = Journal()
    with ElectionClient([n1.address]) as client:
        a = client.campaign(ELECTION, "a", journal.work("a"), on_event=journal.hook("a"))
        wait_until(lambda: journal.started("a"), 20, "a leads")
        first = journal.started("a")[0]
        with pytest.raises(ElectdError) as info:
            client.resign(ELECTION, first + 1)
        assert info.value.code is not None and info.value.code.name == "FAILED_PRECONDITION"
        assert client.resign(ELECTION, first).leader.epoch == first
        wait_until(lambda: len(journal.started("a")) == 2, 20, "a leads again")
        assert journal.started("a")[1] > first
        lost = [(e.epoch, e.reason) for e in journal.events["a"] if e.kind == "lost"]
        assert lost == [(first, "deleted")]
        a.resign()
    journal.assert_one_at_a_time()


def test_the_stream_fails_over_when_its_node_stops_and_leads_again_higher(
    nodes: NodeFactory, election_path: str
) -> None:
    n1, n2 = start_nodes(nodes, election_path, "n1", "n2")
    journal = Journal()
    with ElectionClient([n1.address, n2.address]) as client:
        a = client.campaign(ELECTION, "a", journal.work("a"), on_event=journal.hook("a"))
        wait_until(lambda: journal.started("a"), 20, "a leads")
        n1.stop()
        wait_until(lambda: len(journal.started("a")) == 2, 30, "a leads again through n2")
        assert journal.started("a")[1] > journal.started("a")[0]
        assert any(e.kind == "failover" and e.address == n1.address for e in journal.events["a"])
        a.resign()
    journal.assert_one_at_a_time()


def test_proclaim_changes_the_value_watchers_see(nodes: NodeFactory, election_path: str) -> None:
    (n1,) = start_nodes(nodes, election_path, "n1")
    with ElectionClient([n1.address]) as client:
        watch = client.watch_leader(election=ELECTION)
        seen: list[Any] = []
        threading.Thread(target=lambda: seen.extend(watch), daemon=True).start()
        events: list[CampaignEvent] = []
        a = client.campaign(ELECTION, "a", None, value=b"v0", on_event=events.append)
        wait_until(lambda: any(e.kind == "leading" for e in events), 20, "a leads")
        assert client_leader(client) == b"v0"
        with pytest.raises(ElectdError):
            a.proclaim("not bytes")  # type: ignore[arg-type]
        assert a.proclaim(b"v1") == 1
        wait_until(lambda: client_leader(client) == b"v1", 10, "GetLeader reports v1")
        leader = client.get_leader(ELECTION).leader
        assert leader.node.value_revision == 1
        wait_until(lambda: seen, 10, "the watch reports the leader")
        assert seen[0].node.id == "a"
        a.resign()
        watch.cancel()


def client_leader(client: ElectionClient) -> bytes | None:
    try:
        return bytes(client.get_leader(ELECTION).leader.node.value)
    except ElectdError:
        return None


def test_asyncio_campaign_leads_and_resigns(nodes: NodeFactory, election_path: str) -> None:
    (n1,) = start_nodes(nodes, election_path, "n1")
    epochs: list[int] = []

    async def work(term: aio.Term) -> None:
        epochs.append(term.epoch)
        await asyncio.Event().wait()

    async def main() -> None:
        async with aio.ElectionClient([n1.address]) as client:
            campaign = client.campaign(ELECTION, "a", work)
            while not epochs:
                await asyncio.sleep(0.05)
            assert (await client.get_leader(ELECTION)).leader.epoch == epochs[0]
            await campaign.resign()
            assert await campaign.result() is None
            with pytest.raises(ElectdError) as info:
                await client.get_leader(ELECTION)
            assert info.value.code is not None and info.value.code.name == "NOT_FOUND"

    asyncio.run(asyncio.wait_for(main(), 60))


class Example:
    """`clients/python/run campaign ELECTION ID ADDR...`, its stdout lines collected."""

    def __init__(self, candidate: str, log: Path, *addresses: str) -> None:
        self.proc = subprocess.Popen(
            [str(RUN_EXAMPLE), "campaign", ELECTION, candidate, *addresses],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "ELECTD_CAMPAIGN_LOG": str(log)},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def leading(self) -> list[int]:
        return [int(ln.split("=")[1]) for ln in self.lines if ln.startswith("leading epoch=")]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def test_example_campaign_prints_the_shared_lines_and_its_log_never_interleaves_epochs(
    nodes: NodeFactory, election_path: str, tmp_path: Path
) -> None:
    n1, n2 = start_nodes(nodes, election_path, "n1", "n2")
    log = tmp_path / "campaign.log"
    a = Example("a", log, n1.address)
    wait_until(lambda: a.leading(), 30, "a leads")
    b = Example("b", log, n2.address)
    wait_until(lambda: any(ln.startswith("queued position=") for ln in b.lines), 30, "b queued")
    assert a.stop() == 0
    assert a.lines[-2:] == [f"lost epoch={a.leading()[0]} reason=resigned", "stopped"]
    wait_until(lambda: b.leading(), 30, "b leads")
    wait_until(lambda: f"{b.leading()[0]} b" in log.read_text(), 10, "b's log lines")
    assert b.stop() == 0
    blocks: list[str] = []
    for line in log.read_text().splitlines():
        if not blocks or blocks[-1] != line:
            blocks.append(line)
    assert blocks == [f"{a.leading()[0]} a", f"{b.leading()[0]} b"]  # one run each, in order
