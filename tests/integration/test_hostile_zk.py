"""Hostile writes on a real ZooKeeper: another client of the ensemble rewrites, deletes and
floods the election path. At most one leader throughout; the election keeps working."""

from __future__ import annotations

import logging

import pytest
from kazoo.client import KazooClient

from electd.devcluster.cluster import wait_until
from electd.engine import ElectionEngine, NodeRecord, Role
from electd.engine.clock import now as lease_clock
from electd.zk import paths
from tests.conftest import EngineHarness
from tests.support.journal import never_two_leaders


def leads(engine: ElectionEngine) -> bool:
    return engine.view().is_leader(lease_clock())


def leader_id(engine: ElectionEngine) -> str | None:
    info = engine.view().vouched(lease_clock())
    return info.member.record.id if info else None


def test_rewriting_the_leaders_data_moves_leadership_on_without_two_leaders(
    engines: EngineHarness, kz: KazooClient
) -> None:
    a, b = engines.start("a"), engines.start("b")
    wait_until(lambda: leads(a) and leader_id(b) == "a", 15, "a leads")
    old = a.view().own_znode
    kz.set(f"{engines.path}/{old}", b"rewritten by another client")
    wait_until(lambda: leads(b) and leader_id(a) == "b", 15, "b leads, a follows")
    assert not kz.exists(f"{engines.path}/{old}")  # a replaced its rewritten entry
    assert a.view().role is Role.FOLLOWER and a.view().own_znode != old
    never_two_leaders(engines.journal)


def test_ten_thousand_foreign_children_slow_nothing_down(
    engines: EngineHarness, kz: KazooClient, caplog: pytest.LogCaptureFixture
) -> None:
    """10,000 children that are not members: half with foreign names (dropped when listed),
    half persistent znodes named like entries (read as metadata only, in pipelined batches).
    The supported limit is stated in the README; the lease must never starve meanwhile."""
    caplog.set_level(logging.WARNING)
    kz.ensure_path(engines.path)
    record = NodeRecord("fake", "h:1").encode()
    results = []
    for i in range(5000):
        results.append(kz.create_async(f"{engines.path}/foreign-{i}", b"x"))
        results.append(kz.create_async(f"{engines.path}/electd-{'e' * 32}-{i:010d}", record))
    for r in results:
        r.get(30)
    a = engines.start("a", session_timeout=4.0)
    b = engines.start("b", session_timeout=4.0)
    wait_until(lambda: leads(a) and leader_id(b) == "a", 60, "a leads over 10,000 children")
    assert [m.member.record.id for m in b.members()] == ["a", "b"]
    # Every view of the nodes while they decided stayed within the lease: none reported it
    # running out, and no pass failed.
    assert "lease expired" not in caplog.text and "bug in the election engine" not in caplog.text
    a.stop()
    wait_until(lambda: leads(b), 30, "b leads after a leaves")


def test_every_entry_has_a_companion_of_its_session_and_a_foreign_delete_is_acknowledged(
    engines: EngineHarness, kz: KazooClient
) -> None:
    """Each node's companion is made in its entry's session; when another client deletes the
    leader's entry, the old leader deletes the companion (its acknowledgement) and the
    successor leads; a leave takes entry and companion in one transaction (order.py)."""
    a, b = engines.start("a"), engines.start("b")
    wait_until(lambda: leads(a) and leader_id(b) == "a", 15, "a leads")
    for engine in (a, b):
        own = engine.view().own_znode
        entry = kz.exists(f"{engines.path}/{own}")
        companion = kz.exists(f"{engines.path}/{paths.companion_name(own)}")
        assert entry is not None and companion is not None
        assert companion.ephemeralOwner == entry.ephemeralOwner != 0
    old = a.view().own_znode
    kz.delete(f"{engines.path}/{old}")
    wait_until(lambda: leads(b) and leader_id(a) == "b", 15, "b leads, a follows")
    assert kz.exists(f"{engines.path}/{paths.companion_name(old)}") is None
    assert [m.member.record.id for m in a.members()] == ["b", "a"]  # companions are no members
    left = b.view().own_znode
    b.leave()
    wait_until(lambda: leads(a), 15, "a leads again")
    assert kz.exists(f"{engines.path}/{left}") is None
    assert kz.exists(f"{engines.path}/{paths.companion_name(left)}") is None
    never_two_leaders(engines.journal)
