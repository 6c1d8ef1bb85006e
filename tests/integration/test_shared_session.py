"""Several elections on one ZooKeeper session and one lease (issue 12's foundation), on a real
ZooKeeper: engines a1 and a2 share session A (paths one/ and two/), b1 and b2 share session B
and compete with them. Both elections elect; A's lease renews for both; one engine leaving
disturbs neither the other nor the session; closing session A (as the supervisor does for a
crashed node) ends both of its entries in one go."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from kazoo.client import KazooClient

from electd.devcluster.cluster import wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster, free_port
from electd.engine import ElectionEngine, Lease, NodeRecord, Role, View
from electd.engine.clock import now as lease_clock
from electd.zk import ZkSession, ZkStore, paths
from electd.zk.session import close_session

TIMEOUT = 2.0  # T: lease 2T/3 = 1.33 s


def leader_id(engine: ElectionEngine) -> str | None:
    info = engine.view().vouched(lease_clock())
    return info.member.record.id if info else None


@dataclass
class Node:
    """One session with its lease and an engine per election path."""

    session: ZkSession
    lease: Lease
    engines: dict[str, ElectionEngine] = field(default_factory=dict)
    views: dict[str, list[View]] = field(default_factory=dict)


class Sessions:
    def __init__(self, zk: ZooKeeperCluster, root: str) -> None:
        self.zk, self.root = zk, root
        self.nodes: list[Node] = []

    def session(self) -> Node:
        session = ZkSession(self.zk.connect_string, TIMEOUT, connect_timeout=10)
        session.start()
        node = Node(session, Lease(session))
        self.nodes.append(node)
        return node

    def join(self, node: Node, node_id: str, election: str) -> ElectionEngine:
        store = ZkStore(node.session, f"{self.root}/{election}")
        store.start()
        views = node.views.setdefault(node_id, [])
        record = NodeRecord(node_id, f"127.0.0.1:{free_port()}")
        engine = ElectionEngine(store, record, views.append, lease=node.lease)
        engine.start()
        node.engines[node_id] = engine
        wait_until(
            lambda: engine.view().role in (Role.LEADER, Role.FOLLOWER), 15, f"{node_id} joined"
        )
        return engine

    def close(self) -> None:
        for node in self.nodes:
            for engine in node.engines.values():
                engine.stop()
            node.session.close()


@pytest.fixture
def sessions(zk: ZooKeeperCluster, election_path: str) -> Iterator[Sessions]:
    made = Sessions(zk, election_path.rsplit("/", 1)[0])
    yield made
    made.close()


def owners(kz: KazooClient, path: str) -> dict[str, int]:
    """Entry name -> ephemeralOwner of every electd entry under `path`."""
    out = {}
    for child in kz.get_children(path):
        if paths.parse_name(child) is not None:
            stat = kz.exists(f"{path}/{child}")
            if stat is not None:
                out[child] = stat.ephemeralOwner
    return out


def two_elections(sessions: Sessions) -> tuple[Node, Node]:
    a, b = sessions.session(), sessions.session()
    sessions.join(a, "a1", "one")
    sessions.join(a, "a2", "two")
    sessions.join(b, "b1", "one")
    sessions.join(b, "b2", "two")
    engines = {**a.engines, **b.engines}
    wait_until(
        lambda: (
            all(leader_id(e) == "a1" for k, e in engines.items() if k.endswith("1"))
            and all(leader_id(e) == "a2" for k, e in engines.items() if k.endswith("2"))
        ),
        15,
        "a1 leads one/, a2 leads two/",
    )
    return a, b


def test_two_elections_on_one_session_elect_and_share_its_lease(sessions, kz) -> None:
    a, b = two_elections(sessions)
    sid_a, sid_b = a.session.session_id(), b.session.session_id()
    assert sid_a is not None and sid_b is not None and sid_a != sid_b
    for election, mine in (("one", "a1"), ("two", "a2")):
        path = f"{sessions.root}/{election}"
        assert sorted(owners(kz, path).values()) == sorted([sid_a, sid_b])
        assert a.engines[mine].view().own_znode in owners(kz, path)
        assert owners(kz, path)[a.engines[mine].view().own_znode] == sid_a
    # One lease for both: it renews (both engines heartbeat through it), and each engine's
    # views keep moving with it while both lead, for several lease lengths.
    start = a.lease.valid_until()
    deadline = time.monotonic() + 3 * TIMEOUT * 2 / 3
    while time.monotonic() < deadline:
        for engine in a.engines.values():
            assert engine.view().is_leader(lease_clock()), engine.view()
            assert engine.view().valid_until <= a.lease.valid_until()
        time.sleep(0.05)
    assert a.lease.valid_until() > start + TIMEOUT
    for engine in a.engines.values():
        assert engine.view().valid_until > start + TIMEOUT
    assert a.engines["a1"].lease() is a.engines["a2"].lease() is a.lease


def test_one_engine_leaving_disturbs_neither_the_other_nor_the_session(sessions, kz) -> None:
    a, b = two_elections(sessions)
    sid = a.session.session_id()
    a2 = a.engines["a2"]
    before = len(a.views["a2"])
    a.engines["a1"].stop()  # leaves one/; its store closes, the session does not
    wait_until(lambda: leader_id(b.engines["b1"]) == "b1", 10, "b1 leads one/")
    assert a.engines["a1"].view().role is Role.STOPPED
    assert owners(kz, f"{sessions.root}/one") == {
        b.engines["b1"].view().own_znode: b.session.session_id()
    }
    time.sleep(TIMEOUT)  # a2 heartbeats on meanwhile, alone on the lease now
    assert a.session.session_id() == sid and not a.session.closed
    assert a2.view().is_leader(lease_clock()) and leader_id(b.engines["b2"]) == "a2"
    assert all(v.role is Role.LEADER for v in a.views["a2"][before:])  # never stepped down
    assert a2.view().valid_until > lease_clock()


def test_closing_the_shared_session_ends_both_entries_at_once(sessions, kz) -> None:
    """The supervisor's crash failover, for a node that runs several elections: one close of
    its one session, and every entry of it is gone in that close's transaction."""
    a, b = two_elections(sessions)
    credentials = a.session.session_credentials()
    assert credentials is not None
    sid, password = credentials
    one, two = f"{sessions.root}/one", f"{sessions.root}/two"
    assert sid in owners(kz, one).values() and sid in owners(kz, two).values()
    assert close_session(sessions.zk.connect_string, sid, password, 10.0)
    # Both gone as soon as the close returned (the close transaction removed every ephemeral).
    assert sid not in owners(kz, one).values() and sid not in owners(kz, two).values()
    wait_until(
        lambda: leader_id(b.engines["b1"]) == "b1" and leader_id(b.engines["b2"]) == "b2",
        10,
        "b1 and b2 lead",
    )
    # The engines of the closed session rejoin, together, in a new session, and follow.
    wait_until(
        lambda: leader_id(a.engines["a1"]) == "b1" and leader_id(a.engines["a2"]) == "b2",
        15,
        "a1 and a2 follow",
    )
    new = a.session.session_id()
    assert new is not None and new != sid
    assert owners(kz, one)[a.engines["a1"].view().own_znode] == new
    assert owners(kz, two)[a.engines["a2"].view().own_znode] == new


def test_a_store_closed_on_a_shared_session_leaves_no_entry_behind(sessions, kz) -> None:
    """A store whose engine could not delete its entry: the session, which lives on for the
    other elections, deletes entry and companion."""
    node = sessions.session()
    path = f"{sessions.root}/left"
    store = ZkStore(node.session, path)
    store.start()
    entry, owner = store.register("0" * 32, b"{}", maybe_exists=False)
    assert owner == node.session.session_id() == store.mark_alive(entry.name)
    store.close()
    wait_until(lambda: kz.get_children(path) == [], 10, "entry and companion deleted")
    wait_until(lambda: node.session.leftovers() == 0, 10, "the session forgot them")
    assert node.session.session_id() == owner  # the session lives on


def test_a_sync_returns_only_after_the_watch_callbacks_of_earlier_changes_ran(sessions, kz) -> None:
    """The contract heartbeats without reads rest on (engine/store.py's `sync`): another
    client deletes a znode the session watches; a sync sent after that delete returned comes
    back only once the watch's callback has run, even a slow one. (kazoo answers the sync on
    its connection thread while the callback waits its turn on another: without the wait for
    kazoo's callbacks, this sync returns while the callback still sleeps.)"""
    a = sessions.session()
    path = f"{sessions.root}/watched"
    kz.create(path, b"", makepath=True)
    ran: list[float] = []

    def slow_callback(_event: object) -> None:
        time.sleep(0.3)
        ran.append(time.monotonic())

    assert a.session.client.exists(path, watch=slow_callback) is not None
    kz.delete(path)
    a.session.sync()
    returned = time.monotonic()
    assert ran and ran[0] <= returned


def test_heartbeats_of_leaders_on_one_session_read_nothing_while_their_watches_stand(
    sessions, kz
) -> None:
    """After one read that finds its entry ours, an engine's heartbeats prove it through the
    watches that read set (own.py, `still_watched`): the session's syncs go on, no engine
    reads its entry again, and every view keeps being renewed. Once another client deletes
    one engine's entry, that engine steps down at once, and its successor leads."""
    a, b = two_elections(sessions)
    engines = a.engines.values()
    wait_until(lambda: all(e.stats.heartbeats >= 3 for e in engines), 10, "heartbeats")
    reads = [e.stats.heartbeat_reads for e in engines]
    beats = [e.stats.heartbeats for e in engines]
    start = min(e.view().valid_until for e in engines)
    time.sleep(2 * TIMEOUT)  # 16 heartbeat intervals
    assert [e.stats.heartbeat_reads for e in engines] == reads
    assert all(e.stats.heartbeats >= n + 8 for e, n in zip(engines, beats, strict=True))
    assert all(e.view().is_leader(lease_clock()) for e in engines)
    assert min(e.view().valid_until for e in engines) > start + TIMEOUT
    a1 = a.engines["a1"]
    kz.delete(f"{sessions.root}/one/{a1.view().own_znode}")
    wait_until(lambda: not a1.view().is_leader(lease_clock()), 2, "a1 steps down")
    wait_until(lambda: leader_id(b.engines["b1"]) == "b1", 10, "b1 leads one/")
    assert a.engines["a2"].view().is_leader(lease_clock())
