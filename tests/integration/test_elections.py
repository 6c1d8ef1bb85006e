"""Named elections on a real ZooKeeper: two `Elections` registries on two sessions (two
"nodes", each with its own session and lease) with candidates in one election. Exactly one
leads; a successor leads at once after an acknowledged resignation, and only after the old
candidate's last grant ran out when it went away without acknowledging (C3) or when another
client deleted its entry without an ack (Resign by epoch, C2); stale epochs are refused; a
higher priority preempts; never_lead members never lead and hold nobody back; proclamations
reach observers of the other registry. No timing assertions: every "only after" is checked on
the lease clock against the grant the old candidate really got."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster
from electd.elections import (
    AlreadyCampaigning,
    BadName,
    Candidacy,
    CandidateEvent,
    CandidateSpec,
    Elections,
    ElectionState,
    Ended,
    Leading,
    LossReason,
    Lost,
    NoLeader,
    Proclaimed,
    Queued,
    Refused,
    StaleEpoch,
    TooManyCandidates,
)
from electd.elections.registry import ENGINE_THREADS
from electd.engine import Lease
from electd.engine.clock import now as lease_clock
from electd.zk import ZkSession, paths
from tests.support.tcpproxy import TcpProxy

TIMEOUT = 3.0  # T: lease 2T/3 = 2 s
CANDIDATE_LEASE = 1.5


class Candidate:
    """A candidate as the servicer drives it: every event recorded with the lease-clock time
    it arrived."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[tuple[float, CandidateEvent]] = []
        self.lock = threading.Lock()
        self._candidacy: Candidacy | None = None

    @property
    def candidacy(self) -> Candidacy:
        assert self._candidacy is not None
        return self._candidacy

    def __call__(self, event: CandidateEvent) -> None:
        with self.lock:
            self.events.append((lease_clock(), event))

    def of(self, kind: type) -> list[tuple[float, CandidateEvent]]:
        with self.lock:
            return [(t, e) for t, e in self.events if isinstance(e, kind)]

    def last(self, kind: type) -> CandidateEvent:
        return self.of(kind)[-1][1]

    def leading(self) -> Leading | None:
        """The latest term it was told it leads, unless a Lost of it came after."""
        with self.lock:
            events = [e for _, e in self.events]
        current: Leading | None = None
        for event in events:
            if isinstance(event, Leading):
                current = event
            elif isinstance(event, Lost) and current is not None and event.epoch == current.epoch:
                current = None
        return current

    def epoch(self) -> int:
        lead = self.leading()
        return lead.epoch if lead is not None else 0

    def ping(self, nonce: int) -> CandidateEvent:
        answer = self.candidacy.ping(nonce)
        self(answer)
        return answer

    def first_leading_at(self, after_epoch: int = 0) -> float:
        return min(
            t for t, e in self.of(Leading) if isinstance(e, Leading) and e.epoch > after_epoch
        )


class Node:
    def __init__(self, zk: ZooKeeperCluster, root: str, name: str, hosts: str = "") -> None:
        self.name = name
        self.session = ZkSession(hosts or zk.connect_string, TIMEOUT, connect_timeout=10)
        self.session.start()
        self.lease = Lease(self.session)
        self.elections = Elections(
            self.session, self.lease, root, name, "test", CANDIDATE_LEASE, max_candidates=2000
        )
        self.elections.start()

    def campaign(
        self, election: str, cid: str, priority: int = 0, never_lead: bool = False
    ) -> Candidate:
        cand = Candidate(cid)
        spec = CandidateSpec(cid, f"{cid}-value".encode(), {}, priority, never_lead)
        cand._candidacy = self.elections.campaign(election, spec, cand)
        return cand

    def close(self) -> None:
        self.elections.close(timeout=15)
        self.session.close()


class Cluster:
    def __init__(self, zk: ZooKeeperCluster, root: str) -> None:
        self.zk, self.root = zk, root
        self.nodes: list[Node] = []

    def node(self, name: str, hosts: str = "") -> Node:
        node = Node(self.zk, self.root, name, hosts)
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.close()


@pytest.fixture
def cluster(zk: ZooKeeperCluster, election_path: str) -> Iterator[Cluster]:
    made = Cluster(zk, election_path.rsplit("/", 1)[0] + "/elections")
    yield made
    made.close()


def one_leader(*cands: Candidate) -> Candidate:
    wait_until(lambda: sum(c.leading() is not None for c in cands) == 1, 20, "one leader")
    leaders = [c for c in cands if c.leading() is not None]
    assert len(leaders) == 1, [c.name for c in leaders]
    return leaders[0]


def granted(cand: Candidate) -> tuple[int, float]:
    """Ping until the leader is granted a lease: (epoch, the lease-clock time the candidate's
    deadline cannot pass: the ping's send time + lease_ms)."""
    box: list[tuple[int, float]] = []

    def got() -> bool:
        sent = lease_clock()
        answer = cand.ping(len(cand.events) + 1)
        if isinstance(answer, Leading) and answer.lease_ms > 0:
            box.append((answer.epoch, sent + answer.lease_ms / 1000))
            return True
        return False

    wait_until(got, 10, f"{cand.name} granted a lease")
    return box[0]


def test_exactly_one_leads_and_a_resignation_hands_over_at_once(cluster: Cluster) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    x, y = a.campaign("e1", "x"), b.campaign("e1", "y")
    first = one_leader(x, y)
    second = y if first is x else x
    epoch, _ = granted(first)
    assert isinstance(second.ping(99), Queued)
    assert first.candidacy.granted_until() > lease_clock()
    first.candidacy.resign()  # the candidate stopped first: nothing to wait for
    wait_until(lambda: first.of(Ended), 10, "the resigned candidacy ended")
    lost = first.last(Lost)
    assert isinstance(lost, Lost) and lost.reason is LossReason.RESIGNED and lost.epoch == epoch
    ended = first.last(Ended)
    assert isinstance(ended, Ended) and ended.reason is LossReason.RESIGNED
    wait_until(lambda: second.leading() is not None, 10, "the other one leads")
    assert second.epoch() > epoch
    assert first.leading() is None
    # A resigned candidacy leaves nothing: the same id may campaign again at once.
    again = (a if first is x else b).campaign("e1", first.name)
    wait_until(lambda: again.of(Queued), 10, "queued again behind the new leader")


def test_a_candidate_gone_without_ack_holds_its_successor_until_its_grant_ran_out(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    x = a.campaign("e2", "x")
    wait_until(lambda: x.leading() is not None, 20, "x leads")
    y = b.campaign("e2", "y")
    wait_until(lambda: y.of(Queued), 10, "y queued")
    epoch, until = granted(x)
    x.candidacy.abandon()  # the stream went away, no ack (C3)
    wait_until(lambda: y.leading() is not None, 20, "y leads")
    assert y.epoch() > epoch
    # Safety: y was told it leads only once x's last grant had run out.
    assert y.first_leading_at() >= until
    assert y.first_leading_at() >= x.candidacy.granted_until()
    wait_until(lambda: x.of(Ended), 10, "x's candidacy ended")


def test_resign_by_epoch_deletes_the_entry_and_the_successor_waits_for_the_ack(
    cluster: Cluster, kz: KazooClient
) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    x = a.campaign("e3", "x")
    wait_until(lambda: x.leading() is not None, 20, "x leads")
    y = b.campaign("e3", "y")
    wait_until(lambda: y.of(Queued), 10, "y queued")
    epoch, _ = granted(x)
    with pytest.raises(StaleEpoch) as stale:
        b.elections.resign("e3", epoch - 1)
    assert stale.value.current == epoch
    with pytest.raises(NoLeader):
        b.elections.resign("nobody-here", 5)
    resigned = b.elections.resign("e3", epoch)  # through the other node
    assert resigned.epoch == epoch and resigned.member.record.id == "x"
    wait_until(lambda: x.of(Lost), 10, "x told Lost")
    lost = x.last(Lost)
    assert isinstance(lost, Lost) and lost.reason is LossReason.DELETED and lost.epoch == epoch
    path = f"{cluster.root}/e3"
    companion = f"{path}/{paths.companion_name(resigned.member.znode)}"
    # Not acknowledged yet: while x's grant may run, its companion stays and y waits.
    there, y_leads = kz.exists(companion) is not None, y.leading() is not None
    if lease_clock() < x.candidacy.granted_until():
        assert there and not y_leads
    acked_at = lease_clock()
    x.candidacy.ack(epoch)
    wait_until(lambda: y.leading() is not None, 20, "y leads")
    assert y.first_leading_at() >= min(acked_at, x.candidacy.granted_until())
    assert y.epoch() > epoch
    wait_until(lambda: kz.exists(companion) is None, 10, "x's companion is gone")
    # x stays in the campaign: a new entry, at the back.
    wait_until(
        lambda: any(
            isinstance(e, Queued) and e.znode not in ("", resigned.member.znode)
            for _, e in x.of(Queued)
        ),
        10,
        "x queued again with a new entry",
    )


def test_resign_by_epoch_without_ack_waits_for_the_grant(cluster: Cluster) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    x = a.campaign("e4", "x")
    wait_until(lambda: x.leading() is not None, 20, "x leads")
    y = b.campaign("e4", "y")
    wait_until(lambda: y.of(Queued), 10, "y queued")
    epoch, until = granted(x)
    a.elections.resign("e4", epoch)
    wait_until(lambda: y.leading() is not None, 20, "y leads")
    assert y.first_leading_at() >= until  # x never acknowledged
    assert isinstance(x.last(Lost), Lost)


def test_a_higher_priority_preempts_the_leader_after_its_ack(cluster: Cluster) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    low = a.campaign("e5", "low", priority=1)
    wait_until(lambda: low.leading() is not None, 20, "low leads")
    epoch, _ = granted(low)
    high = b.campaign("e5", "high", priority=7)
    wait_until(lambda: low.of(Lost), 20, "low preempted")
    lost = low.last(Lost)
    assert isinstance(lost, Lost) and lost.reason is LossReason.PREEMPTED and lost.epoch == epoch
    assert isinstance(low.ping(500), Queued)  # no grant after the Lost
    acked_at = lease_clock()
    low.candidacy.ack(epoch)
    wait_until(lambda: high.leading() is not None, 20, "high leads")
    assert high.first_leading_at() >= min(acked_at, low.candidacy.granted_until())
    assert high.epoch() > epoch
    # A newcomer of lower priority takes nothing over.
    mid = a.campaign("e5", "mid", priority=3)
    wait_until(lambda: mid.of(Queued), 10, "mid queued")
    granted(high)
    assert not high.of(Lost)


def test_a_higher_priority_waiting_entry_makes_the_next_leader_yield_before_any_grant(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    first = a.campaign("e6", "first")
    wait_until(lambda: first.leading() is not None, 20, "first leads")
    granted(first)  # so that its term ends only at its ack (or the grant's end)
    second = a.campaign("e6", "second")
    wait_until(lambda: second.of(Queued), 10, "second queued")
    top = b.campaign("e6", "top", priority=9)
    wait_until(lambda: first.of(Lost), 20, "first preempted by top")
    first.candidacy.ack(first.last(Lost).epoch)  # type: ignore[union-attr]
    wait_until(lambda: top.leading() is not None, 20, "top leads")
    # second was next in line, but yielded to top before it was ever told it leads.
    assert not second.of(Leading) and not second.of(Lost), second.events


def test_never_lead_members_are_listed_never_lead_and_hold_nobody_back(cluster: Cluster) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    watcher = a.campaign("e7", "watcher", priority=100, never_lead=True)
    wait_until(lambda: watcher.of(Queued), 10, "the member is queued")
    queued = watcher.last(Queued)
    assert isinstance(queued, Queued) and queued.never_lead
    assert queued.znode.startswith("member-")
    seen = b.elections.observe("e7", lambda view: None)
    wait_until(lambda: seen.view().state is ElectionState.VACANT, 10, "vacant: only never_lead")
    worker = b.campaign("e7", "worker")
    wait_until(lambda: worker.leading() is not None, 20, "the real candidate leads")
    granted(worker)
    assert not watcher.of(Leading)
    assert isinstance(watcher.ping(3), Queued)
    members = b.elections.members("e7")
    assert sorted(m.member.record.id for m in members) == ["watcher", "worker"]
    by_id = {m.member.record.id: m for m in members}
    assert by_id["watcher"].member.record.never_lead and not by_id["watcher"].is_leader
    assert by_id["worker"].is_leader and by_id["worker"].member.record.host_id == "nb"
    assert ("e7", 2) in a.elections.list()
    wait_until(lambda: seen.view().state is ElectionState.ELECTED, 10, "observer: elected")
    leader = seen.view().leader
    assert leader is not None and leader.member.record.id == "worker"
    watcher.candidacy.resign()
    wait_until(lambda: watcher.of(Ended), 10, "member gone")
    wait_until(lambda: len(a.elections.members("e7")) == 1, 10, "listed no more")
    seen.close()


def test_proclaim_changes_the_value_an_observer_on_the_other_node_sees(cluster: Cluster) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    x = a.campaign("e8", "x")
    wait_until(lambda: x.leading() is not None, 20, "x leads")
    epoch, _ = granted(x)
    seen = b.elections.observe("e8", lambda view: None)

    def revision() -> int:
        lead = seen.view().leader
        return lead.value_revision if lead is not None else -1

    wait_until(lambda: revision() == 0, 10, "observer elected, revision 0")
    leader = seen.view().leader
    assert leader is not None and leader.epoch == epoch and leader.value == b"x-value"
    x.candidacy.proclaim(epoch - 1, b"no")
    wait_until(lambda: x.of(Refused), 10, "stale proclaim refused")
    x.candidacy.proclaim(epoch, b"second")
    wait_until(lambda: x.of(Proclaimed), 10, "proclaimed")
    proclaimed = x.last(Proclaimed)
    assert isinstance(proclaimed, Proclaimed) and proclaimed.value_revision == 1
    wait_until(lambda: revision() == 1, 10, "observer sees revision 1")
    leader = seen.view().leader
    assert leader is not None and leader.value == b"second" and leader.epoch == epoch
    x.candidacy.proclaim(epoch, b"third")
    wait_until(lambda: revision() == 2, 10, "observer sees revision 2")
    assert [(m.member.value, m.member.value_revision) for m in a.elections.members("e8")] == [
        (b"third", 2)
    ]
    seen.close()


def test_an_observer_says_vacant_for_a_missing_or_empty_election_and_unknown_when_cut_off(
    cluster: Cluster, zk: ZooKeeperCluster, kz: KazooClient
) -> None:
    server = zk.servers[0]
    proxy = TcpProxy(server.host, server.client_port)
    try:
        a = cluster.node("na", hosts=proxy.address)
        missing = a.elections.observe("never-made", lambda view: None)
        wait_until(lambda: missing.view().state is ElectionState.VACANT, 10, "missing: vacant")
        assert kz.exists(f"{cluster.root}/never-made") is None  # observers create nothing
        kz.ensure_path(f"{cluster.root}/empty")
        empty = a.elections.observe("empty", lambda view: None)
        wait_until(lambda: empty.view().state is ElectionState.VACANT, 10, "empty: vacant")
        proxy.block()
        proxy.drop()
        wait_until(
            lambda: empty.view().state_at(lease_clock()) is ElectionState.UNKNOWN,
            20,
            "unknown while disconnected",
        )
        proxy.unblock()
        wait_until(
            lambda: empty.view().state_at(lease_clock()) is ElectionState.VACANT,
            20,
            "vacant again once reconnected",
        )
        missing.close()
        empty.close()
    finally:
        proxy.close()


def test_campaign_refusals(cluster: Cluster) -> None:
    a = cluster.node("na")
    a.campaign("e9", "x")
    with pytest.raises(AlreadyCampaigning):
        a.campaign("e9", "x")
    with pytest.raises(BadName):
        a.campaign("..", "y")
    with pytest.raises(BadName):
        a.campaign("e9", "")
    with pytest.raises(BadName):
        a.elections.observe("bad/name", lambda view: None)
    small = Elections(a.session, a.lease, cluster.root, "small", "t", 1.0, max_candidates=1)
    small.start()
    try:
        small.campaign("e9", CandidateSpec("p"), lambda event: None)
        with pytest.raises(TooManyCandidates):
            small.campaign("e9", CandidateSpec("q"), lambda event: None)
    finally:
        small.close(timeout=10)


ELECTIONS = 60


def test_sixty_elections_of_three_candidates_need_a_bounded_number_of_threads(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("na"), cluster.node("nb")
    before = threading.active_count()
    elections = [f"many-{i:03d}" for i in range(ELECTIONS)]
    cands: dict[str, list[Candidate]] = {}
    for i, election in enumerate(elections):
        hosts = (a, b, a) if i % 2 else (b, a, b)
        cands[election] = [h.campaign(election, f"c{k}") for k, h in enumerate(hosts)]
    observations = [b.elections.observe(e, lambda view: None) for e in elections]

    def settled() -> bool:
        return all(sum(c.leading() is not None for c in cs) == 1 for cs in cands.values())

    wait_until(settled, 180, "every election has exactly one leader")
    wait_until(
        lambda: all(o.view().state is ElectionState.ELECTED for o in observations),
        60,
        "every observer says elected",
    )
    for o, election in zip(observations, elections, strict=True):
        leader = o.view().leader
        assert leader is not None
        assert leader.member.record.id in [c.name for c in cands[election] if c.leading()]
    # Per registry, whatever the number of candidates: its three workers (the observers share
    # one) and the ENGINE_THREADS that run every candidate entry's engine (engine/pool.py).
    # (1,000 elections of 3: benchmark 9, BENCHMARKS.md.)
    grown = threading.active_count() - before
    assert grown <= 2 * (3 + ENGINE_THREADS), grown
    assert dict(a.elections.list()) == {e: 3 for e in elections}
    for o in observations:
        o.close()


def test_hostile_writes_beside_the_entries_forge_no_value_and_break_no_listing(
    cluster: Cluster, kz: KazooClient
) -> None:
    """Another ZooKeeper client writes where a candidate's companions live: a persistent
    `<leader entry>.value` with junk before the leader ever proclaimed, a persistent and an
    ephemeral `member-<token>` with garbage records, a `.value` of an entry that does not
    exist. No observer shows the forged value (it is not the entry's session), the leader's
    proclaim is refused rather than writing into the forgery, the listing shows the real
    candidates and no garbage member as a leader, and the election keeps its leader."""
    a, b = cluster.node("na"), cluster.node("nb")
    x = a.campaign("e11", "x")
    wait_until(lambda: x.leading() is not None, 20, "x leads")
    epoch, _ = granted(x)
    y = b.campaign("e11", "y")
    wait_until(lambda: y.of(Queued), 10, "y queued")
    path = f"{cluster.root}/e11"
    lead = x.leading()
    assert lead is not None
    kz.create(f"{path}/{paths.value_name(lead.znode)}", b"\xff forged \x00" * 100)
    kz.create(f"{path}/{paths.member_name('f' * 32)}", b"{not json")
    kz.create(f"{path}/{paths.member_name('e' * 32)}", b'{"v": 1, "id": 5}', ephemeral=True)
    kz.create(f"{path}/{paths.value_name('electd-' + 'd' * 32 + '-0000009999')}", b"orphan")
    seen = b.elections.observe("e11", lambda view: None)
    wait_until(
        lambda: (v := seen.view().leader) is not None and v.epoch == epoch, 10, "observer: x"
    )
    leader = seen.view().leader
    assert leader is not None
    assert leader.value == b"x-value" and leader.value_revision == 0  # not the forgery
    x.candidacy.proclaim(epoch, b"mine")
    wait_until(lambda: x.of(Refused), 10, "proclaim into a forged value znode is refused")
    refused = x.last(Refused)
    assert isinstance(refused, Refused) and "another session" in refused.reason
    listed = a.elections.members("e11")
    ids = [m.member.record.id for m in listed]
    assert ids[:2] == ["x", "y"], ids
    assert [m.is_leader for m in listed if m.member.record.id == "x"] == [True]
    assert not any(m.is_leader for m in listed if m.member.record.id not in ("x", "y"))
    assert x.leading() is not None and x.leading().epoch == epoch  # type: ignore[union-attr]
    assert seen.view().leader is not None and seen.view().leader.epoch == epoch  # type: ignore[union-attr]
    seen.close()
