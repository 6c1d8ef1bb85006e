"""The engine on a real ZooKeeper: the recipe, its watch economy, and real faults (session
expiry through a partition, connection loss during create, foreign data, wiped paths)."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient

from electd.devcluster.cluster import wait_until
from electd.engine import ElectionEngine, Role
from electd.engine.clock import now as lease_clock
from electd.zk import paths
from tests.conftest import EngineHarness
from tests.support.tcpproxy import TcpProxy


def leads(engine: ElectionEngine) -> bool:
    return engine.view().is_leader(lease_clock())


def leader_id(engine: ElectionEngine) -> str | None:
    info = engine.view().vouched(lease_clock())
    return info.member.record.id if info else None


def settled(*engines: ElectionEngine) -> bool:
    ids = {leader_id(e) for e in engines}
    return len(ids) == 1 and None not in ids


@pytest.fixture
def proxy(zk):
    server = zk.servers[0]
    p = TcpProxy(server.host, server.client_port)
    yield p
    p.close()


def wipe(kz: KazooClient, path: str) -> None:
    """Delete the election path and every child in one transaction (members re-register at
    once, so a child-by-child delete would race them)."""
    for _ in range(50):
        tx = kz.transaction()
        for child in kz.get_children(path):
            tx.delete(f"{path}/{child}")
        tx.delete(path)
        if all(r is True for r in tx.commit()):
            return
    raise AssertionError(f"could not wipe {path}")


def test_first_to_join_leads_and_the_chain_is_built(engines: EngineHarness) -> None:
    a = engines.start("a")
    wait_until(lambda: leads(a), 15, "a leads")
    b, c = engines.start("b"), engines.start("c")
    wait_until(lambda: settled(a, b, c) and c.view().watching, 15, "chain")
    assert leader_id(b) == "a"
    assert b.view().watching == a.view().own_znode
    assert c.view().watching == b.view().own_znode
    members = c.members()
    assert [m.member.record.id for m in members] == ["a", "b", "c"]
    assert [m.watches for m in members] == ["", a.view().own_znode, b.view().own_znode]


def test_watch_notifications_join_wakes_nobody_leave_wakes_only_the_successor(
    engines: EngineHarness,
) -> None:
    """Per leader change each node does O(1) work; a non-leader leaving wakes only its
    successor; a join wakes nobody (counted on real ZooKeeper watch notifications)."""
    es = [engines.start(n) for n in "abcd"]
    wait_until(
        lambda: settled(*es) and es[3].view().watching == es[2].view().own_znode, 15, "chain"
    )

    def events() -> list[int]:
        return [e.stats.predecessor_events + e.stats.leader_events for e in es]

    before = events()
    e = engines.start("e")
    wait_until(lambda: e.view().watching == es[3].view().own_znode, 15, "e joined")
    time.sleep(0.3)  # give any (wrong) notification time to arrive before counting
    assert events() == before, "a join must wake nobody"

    es[1].stop()  # b, a non-leader, leaves
    wait_until(lambda: es[2].view().watching == es[0].view().own_znode, 15, "c watches a")
    time.sleep(0.3)
    after = events()
    assert after[2] == before[2] + 1, "b's successor wakes exactly once"
    assert after[0] == before[0] and after[3] == before[3], "nobody else wakes"
    assert e.stats.predecessor_events + e.stats.leader_events == 0

    old = es[0].view().leader.epoch
    es[0].stop()  # the leader leaves: every node hears of it once
    rest = [es[2], es[3], e]
    wait_until(lambda: settled(*rest) and leader_id(es[2]) == "c", 15, "c leads")
    time.sleep(0.3)
    final = [x.stats.predecessor_events + x.stats.leader_events for x in rest]
    assert final == [after[2] + 1, after[3] + 1, 1]
    assert all(x.view().leader.epoch > old for x in rest)


def test_session_expiry_of_a_follower_rejoins_at_the_back(engines: EngineHarness, proxy) -> None:
    a = engines.start("a")
    b = engines.start("b", hosts=proxy.address, session_timeout=1.0)
    c = engines.start("c")
    wait_until(lambda: settled(a, b, c) and c.view().watching == b.view().own_znode, 15, "chain")
    old_b = b.view().own_znode
    proxy.block()  # partition b from ZooKeeper for longer than its session timeout
    wait_until(lambda: c.view().watching == a.view().own_znode, 10, "c repairs the chain")
    assert leader_id(a) == "a"
    wait_until(lambda: b.view().vouched(lease_clock()) is None, 5, "b stops vouching")
    proxy.unblock()
    wait_until(
        lambda: b.view().role is Role.FOLLOWER and b.view().own_znode != old_b,
        15,
        "b rejoined with a new znode",
    )
    assert b.view().watching == c.view().own_znode  # at the back
    assert leader_id(b) == "a"


def test_session_expiry_of_the_leader_moves_leadership(engines: EngineHarness, proxy) -> None:
    a = engines.start("a", hosts=proxy.address, session_timeout=1.0)
    wait_until(lambda: leads(a), 15, "a leads")
    b = engines.start("b")
    wait_until(lambda: settled(a, b), 15, "b follows a")
    epoch = a.view().leader.epoch
    proxy.block()
    # The partitioned leader stops claiming within its lease (read timeout), without any event.
    wait_until(lambda: not leads(a), 2, "a steps down")
    wait_until(lambda: leads(b), 10, "b leads after a's session expired")
    assert b.view().leader.epoch > epoch
    proxy.unblock()
    wait_until(
        lambda: a.view().role is Role.FOLLOWER and leader_id(a) == "b", 15, "a rejoined behind b"
    )
    assert a.view().watching == b.view().own_znode
    assert a.view().leader.epoch == b.view().leader.epoch


def test_connection_loss_during_create_leaves_no_orphan(engines: EngineHarness, proxy, kz) -> None:
    fired = proxy.cut_after(engines.path + "/" + paths.NAME_PREFIX)
    a = engines.start("a", hosts=proxy.address, session_timeout=4.0)
    wait_until(fired.is_set, 15, "the create was cut off")
    wait_until(lambda: leads(a), 15, "a leads")
    children = sorted(kz.get_children(engines.path))
    # The create that lost its reply was found, not redone: one entry, and its companion.
    own = a.view().own_znode
    assert children == [own, paths.companion_name(own)], children
    assert a.stats.registrations == 1


def test_foreign_and_corrupt_znodes_are_ignored(engines: EngineHarness, kz) -> None:
    kz.ensure_path(engines.path)
    kz.create(engines.path + "/not-electd", b"hello")
    kz.create(
        engines.path + "/" + paths.NAME_PREFIX + "0" * 32 + "-", b"\x00garbage", sequence=True
    )  # a valid name, lowest sequence, corrupt data
    kz.create(engines.path + "/electd-short-0000000001", b"{}")
    a, b = engines.start("a"), engines.start("b")
    wait_until(lambda: settled(a, b) and leader_id(a) == "a", 15, "a leads despite foreign znodes")
    assert [m.member.record.id for m in b.members()] == ["a", "b"]


def test_wiped_election_path_re_registers_with_a_higher_epoch(engines: EngineHarness, kz) -> None:
    a, b = engines.start("a"), engines.start("b")
    wait_until(lambda: settled(a, b), 15, "settled")
    epoch = a.view().leader.epoch
    wipe(kz, engines.path)
    wait_until(lambda: settled(a, b) and a.view().leader.epoch > epoch, 10, "both re-registered")
    assert a.stats.registrations == 2 and b.stats.registrations == 2


def test_own_znode_deleted_by_an_operator(engines: EngineHarness, kz) -> None:
    a, b = engines.start("a"), engines.start("b")
    wait_until(lambda: settled(a, b) and leader_id(b) == "a", 15, "a leads")
    first = a.view().own_znode
    kz.delete(engines.path + "/" + first)
    wait_until(lambda: leads(b) and a.view().role is Role.FOLLOWER, 15, "b leads, a follows")
    assert a.view().own_znode != first
    assert a.view().watching == b.view().own_znode


def test_the_lease_follows_the_session_timeout_zookeeper_grants(tmp_path, caplog) -> None:
    """ZooKeeper clamps the requested session timeout to its maxSessionTimeout. A lease based on
    the requested 10 s would let a cut-off leader vouch for itself long after its 2 s session
    had expired: the store reports, and the engine's lease uses, what the server granted."""
    from electd.devcluster.zookeeper import ZooKeeperCluster
    from electd.engine import NodeRecord
    from electd.zk import ZkStore

    cluster = ZooKeeperCluster(tmp_path / "zk", size=1, max_session_ms=2000)
    cluster.start()
    store = ZkStore.standalone(cluster.connect_string, "/clamped", 10.0, connect_timeout=10.0)
    engine = ElectionEngine(store, NodeRecord("c1", "127.0.0.1:1"), lambda view: None)
    try:
        assert store.session_timeout() == 10.0  # asked for; nothing granted yet
        store.start()
        engine.start()
        wait_until(lambda: leads(engine), 10, "c1 leads")
        assert store.session_timeout() == 2.0
        assert "granted a session timeout of 2s instead of the requested 10s" in caplog.text
        view = engine.view()
        assert view.valid_until - lease_clock() <= 2.0 * 2 / 3 + 0.01
    finally:
        engine.stop()
        cluster.stop()


def test_the_store_reports_every_handshake_that_revalidates_the_session(zk, proxy) -> None:
    """The engine may run its lease from the start of a handshake (ZooKeeper's leader
    refreshes the session while validating it). The store learns it from kazoo's internals
    (pinned): the first connect, and a reconnect of the same session after a dropped one."""
    from electd.zk import ZkStore

    store = ZkStore.standalone(proxy.address, "/handshakes", 4.0, connect_timeout=10.0)
    before = lease_clock()
    store.start()
    try:
        sid = store.session_id()
        established = store.session_established()
        assert established is not None and sid is not None
        assert established[0] == sid and before <= established[1] <= lease_clock()
        dropped = lease_clock()
        proxy.drop()  # close the connection; kazoo reconnects in the same session
        wait_until(
            lambda: (e := store.session_established()) is not None and e[1] > dropped,
            10,
            "a second handshake",
        )
        assert store.session_established()[0] == sid == store.session_id()
    finally:
        store.close()
