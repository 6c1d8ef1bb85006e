"""The election engine against the in-memory store: the recipe's decisions and invariants."""

from __future__ import annotations

import time

import pytest

from electd.devcluster.cluster import wait_until
from electd.engine import ElectionEngine, NodeRecord, Role
from electd.engine.clock import now as lease_clock
from tests.support.memstore import MemStore
from tests.unit.conftest import Node


def test_first_to_join_leads_and_each_follower_watches_its_predecessor(cluster) -> None:
    a, b, c = cluster("a"), cluster("b"), cluster("c")
    wait_until(lambda: a.leads() and b.leader_id() == "a" and c.leader_id() == "a", 5, "a leads")
    assert b.view.watching == a.view.own_znode
    assert c.view.watching == b.view.own_znode
    assert a.view.watching == ""


def test_leader_leaving_hands_over_with_a_higher_epoch(cluster) -> None:
    a, b = cluster("a"), cluster("b")
    wait_until(a.leads, 5, "a leads")
    old = a.view.leader.epoch
    a.engine.stop()
    wait_until(b.leads, 5, "b leads")
    assert b.view.leader.epoch > old
    assert a.view.role is Role.STOPPED


def test_suspended_leader_stops_claiming_at_once_and_resumes_on_reconnect(cluster) -> None:
    a = cluster("a")
    wait_until(a.leads, 5, "a leads")
    epoch = a.view.leader.epoch
    a.store.suspend()
    # The state callback itself publishes: no worker round trip is needed to step down.
    assert not a.leads()
    assert a.view.role is Role.DISCONNECTED
    a.store.connect()
    wait_until(a.leads, 5, "a leads again")
    assert a.view.leader.epoch == epoch  # same znode, same session: same term


def test_expired_leader_rejoins_at_the_back(cluster) -> None:
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    first = a.view.leader.epoch
    a.store.expire()
    assert not a.leads()
    wait_until(b.leads, 5, "b leads")
    a.store.connect()  # a new session
    wait_until(
        lambda: a.view.role is Role.FOLLOWER and a.view.watching == b.view.own_znode,
        5,
        "a rejoined behind b",
    )
    assert b.view.leader.epoch > first


def test_own_entry_deleted_by_someone_else_steps_down_and_registers_again(cluster, ens) -> None:
    a, b = cluster("a"), cluster("b")
    wait_until(a.leads, 5, "a leads")
    first = a.view.own_znode
    ens.delete(first)
    wait_until(
        lambda: b.leads() and a.view.role is Role.FOLLOWER and a.view.own_znode != first,
        5,
        "a re-registered behind b",
    )
    assert a.engine.stats.registrations == 2


def test_corrupt_and_foreign_entries_are_ignored(cluster, ens) -> None:
    ens.add_raw("electd-" + "f" * 32 + "-0000009999", b"not json")  # sorts last
    ens.add_raw("electd-" + "e" * 32 + "-0000000000", b"\xff\xfe garbage")  # sorts first
    a, b = cluster("a"), cluster("b")
    wait_until(
        lambda: a.leads() and b.leader_id() == "a", 5, "a leads despite a corrupt lowest entry"
    )
    assert [m.member.record.id for m in b.engine.members()] == ["a", "b"]


def test_lease_runs_out_without_word_from_the_store(ens) -> None:
    """A node that hears nothing (paused, or its store hangs) stops vouching after the lease."""
    node = Node(ens, "a", timeout=0.3)  # lease = 0.2 s
    try:
        wait_until(node.leads, 5, "a leads")
        node.engine._heartbeat = lambda: 3600.0  # silence the heartbeat: no round trips
        view = node.view
        assert view.is_leader(lease_clock())
        assert not view.is_leader(view.valid_until + 0.001)
        wait_until(lambda: not node.leads(), 2, "lease ran out")
    finally:
        node.engine.stop()


def test_a_join_wakes_nobody_and_a_middle_leave_wakes_only_its_successor(cluster, ens) -> None:
    a, b, c, d = cluster("a"), cluster("b"), cluster("c"), cluster("d")
    wait_until(lambda: d.view.watching == c.view.own_znode, 5, "chain built")

    def events() -> list[int]:
        return [
            n.engine.stats.predecessor_events + n.engine.stats.leader_events for n in (a, b, c, d)
        ]

    before = events()
    e = cluster("e")
    wait_until(lambda: e.view.watching == d.view.own_znode, 5, "e joined")
    assert events() == before  # nobody woke for the join
    ens.delete(b.view.own_znode)
    wait_until(lambda: c.view.watching == a.view.own_znode, 5, "c now watches a")
    after = events()
    assert after[2] == before[2] + 1  # c, b's successor, woke once
    assert [after[i] for i in (0, 3)] == [before[i] for i in (0, 3)]
    assert a.leads()


def test_never_claims_a_lowest_entry_owned_by_another_session(cluster, ens) -> None:
    """Before claiming, the owner of the lowest entry must be our session (the guard against
    two leaders after a session expiry): an entry with our name but another owner is not ours."""
    a = cluster("a")
    wait_until(a.leads, 5, "a leads")
    first = a.view.own_znode
    with ens.lock:
        ens.nodes[first].owner = 0xDEAD  # as if a previous session still owned it
    a.engine.mailbox.put("wake")
    wait_until(
        lambda: a.view.own_znode != first and a.view.role is Role.FOLLOWER,
        5,
        "a re-registered instead of claiming",
    )
    assert a.view.leader.member.znode == first  # the foreign-owned entry is reported as leader
    assert a.view.watching == first


def test_handover_after_a_leave_costs_the_successor_one_round_trip_and_others_none(
    cluster,
) -> None:
    """The fast pass: when the leader leaves, its successor and a third node decide from what
    their watches and their last full pass told them, without listing anything; the successor
    reads only its own entry before it claims (RELIABILITY.md, V10), the third node nothing.
    (A long session timeout keeps heartbeats out of the count.)"""
    a, b, c = cluster("a", 60.0), cluster("b", 60.0), cluster("c", 60.0)
    wait_until(
        lambda: c.view.watching == b.view.own_znode and c.leader_id() == "a", 5, "chain built"
    )
    old = a.view.leader.epoch
    calls = (b.store.calls, c.store.calls)
    a.engine.leave()
    assert a.view.role is Role.STOPPED  # stepped down before the delete went out
    wait_until(lambda: b.leads() and c.leader_id() == "b", 5, "b leads and c knows")
    assert (b.store.calls, c.store.calls) == (calls[0] + 1, calls[1])
    assert b.view.leader.epoch == c.view.leader.epoch > old
    a.engine.stop()  # after leave(): only ends the session
    assert a.view.role is Role.STOPPED


def test_a_session_that_changes_during_a_pass_still_leaves_one_entry(cluster, ens) -> None:
    """Regression (fault suite, pause-leader): the store replaced an expired session in the
    middle of a pass; the pass registered in the new session while believing it was the old
    one, and the next pass registered a second entry for the same node."""
    cluster("a")
    b = cluster("b")
    wait_until(lambda: b.leader_id() == "a", 5, "b follows a")
    old = b.view.own_znode
    b.store.before_next_call = b.store.expire_and_reconnect
    b.engine.mailbox.put("wake")  # a full pass; its first store call meets the new session
    wait_until(lambda: b.view.role is Role.FOLLOWER and b.view.own_znode != old, 5, "b rejoined")
    time.sleep(0.3)  # let the passes queued by the state events run too
    mine = [name for name, node in ens.nodes.items() if b'"id":"b"' in node.data]
    assert mine == [b.view.own_znode]
    assert {node.owner for node in ens.nodes.values() if b'"id":"b"' in node.data} == {
        b.store.session_id()
    }


class FakeClock:
    """A monotonic clock the test moves by hand, to stand for a process frozen in between."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_round_trip_after_a_pause_does_not_restore_the_lease(ens) -> None:
    """Regression (soak, V4 in RELIABILITY.md): after a pause longer than its lease, a leader's
    first sync succeeded and it vouched for itself again, while ZooKeeper's leader, which had
    not heard of its session since before the pause (the follower never relayed the sync's
    activity), expired the session and a successor took over. A sync only proves that the
    session was refreshed at an earlier sync, a proof gap before it."""
    clock = FakeClock()
    store = MemStore(ens, 3.0, clock)  # lease 2 s, proof gap 0.75 s, heartbeat 0.375 s
    engine = ElectionEngine(store, NodeRecord("a", "a:1"), lambda view: None, clock=clock)
    store.connect()
    engine.start()
    try:
        wait_until(lambda: engine.view().is_leader(clock()), 5, "a leads")
        clock.now += 10.0  # frozen for 10 s: ZooKeeper's leader last heard of a 10 s ago
        calls, beats = store.calls, engine.stats.heartbeats
        # A sync, then heartbeats (which read nothing while the watches stand): the view after
        # that first sync is published by now.
        wait_until(
            lambda: store.calls > calls and engine.stats.heartbeats >= beats + 2,
            5,
            "a sync and heartbeats after the pause",
        )
        assert engine.view().role is Role.LEADER
        assert not engine.view().is_leader(clock())
        clock.now += 1.0  # more than a proof gap later, the next sync proves the first ones
        wait_until(lambda: engine.view().is_leader(clock()), 5, "a vouches again")
        assert engine.view().valid_until == pytest.approx(1010.0 + 2.0)
    finally:
        engine.stop()


def test_a_handshake_anchors_the_lease(ens) -> None:
    """ZooKeeper's leader refreshes a session while it validates a (re)connect handshake, so
    the lease may run from the handshake's start without waiting for a second sync."""
    clock = FakeClock()
    store = MemStore(ens, 3.0, clock)
    engine = ElectionEngine(store, NodeRecord("a", "a:1"), lambda view: None, clock=clock)
    store.connect()
    engine.start()
    try:
        wait_until(lambda: engine.view().is_leader(clock()), 5, "a leads at once")
        clock.now += 10.0
        store.suspend()
        store.connect()  # reconnected, same session: revalidated at 1010
        wait_until(lambda: engine.view().is_leader(clock()), 5, "a leads again at once")
        assert engine.view().valid_until == pytest.approx(1010.0 + 2.0)
    finally:
        engine.stop()
