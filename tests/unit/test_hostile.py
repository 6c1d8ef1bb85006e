"""At most one leader whatever another ZooKeeper client writes under the election path, on the
in-memory store: leadership and membership come from ZooKeeper's metadata alone (order.py),
every bad record is survived, and a node whose own entry is touched stops claiming at once."""

from __future__ import annotations

import logging
import threading

import pytest

from electd.devcluster.cluster import wait_until
from electd.engine import NodeRecord, RecordError, Role, View
from electd.engine.model import MAX_RECORD_BYTES
from electd.engine.order import election_order
from electd.engine.store import Entry, Meta
from electd.zk.paths import companion_name, companion_of, parse_name
from tests.support.journal import never_two_leaders
from tests.support.memstore import MemEnsemble

VALID = NodeRecord("x", "x:1").encode()
FOREIGN_SESSION = 0xDEAD


def entry_name(seq: int) -> str:
    return f"electd-{'f' * 32}-{seq:010d}"


def test_rewriting_the_leaders_data_hands_over_only_after_the_old_leader_stepped_down(
    cluster, ens: MemEnsemble
) -> None:
    journal: list[tuple[str, View]] = []
    a, b = cluster("a", journal=journal), cluster("b", journal=journal)
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    old_epoch, old_znode = a.view.leader.epoch, a.view.own_znode
    gate, held = threading.Event(), threading.Event()

    def hold() -> None:  # a's worker stops at its next store call, before it can delete
        held.set()
        gate.wait(10)

    a.store.before_next_call = hold
    ens.rewrite(old_znode, b"junk from another client")
    assert not a.leads()  # stepped down in the watch callback itself
    assert held.wait(5)
    wait_until(lambda: "rewritten" in b.view.reason, 5, "b sees the oldest entry rewritten")
    assert not b.leads() and b.view.leader is None  # nobody leads while a's entry is there
    gate.set()
    wait_until(lambda: b.leads() and a.leader_id() == "b", 5, "b leads, a follows")
    assert old_znode not in ens.nodes and a.view.own_znode != old_znode  # a re-registered
    assert b.view.leader.epoch > old_epoch and a.view.role is Role.FOLLOWER
    never_two_leaders(journal)


def test_a_follower_whose_data_is_rewritten_rejoins_behind_and_changes_nothing(
    cluster, ens: MemEnsemble
) -> None:
    journal: list[tuple[str, View]] = []
    a, b, c = (cluster(n, journal=journal) for n in "abc")
    wait_until(lambda: c.view.watching == b.view.own_znode, 5, "chain built")
    epoch, b_old = a.view.leader.epoch, b.view.own_znode
    ens.rewrite(b_old, b"")
    wait_until(lambda: b.view.own_znode not in ("", b_old), 5, "b re-registered")
    wait_until(lambda: b.view.watching == c.view.own_znode, 5, "b now behind c")
    assert a.leads() and a.view.leader.epoch == epoch
    assert [m.member.record.id for m in a.engine.members()] == ["a", "c", "b"]
    never_two_leaders(journal)


def test_own_entry_deleted_by_someone_else_stops_the_leader_at_once(
    cluster, ens: MemEnsemble
) -> None:
    a = cluster("a")
    wait_until(a.leads, 5, "a leads")
    old = a.view.own_znode
    ens.delete(old)  # another client deletes a's entry while a's session lives
    assert not a.leads()  # at once: the watch callback published before delete() returned
    wait_until(lambda: a.leads() and a.view.own_znode != old, 5, "a leads with a new entry")


def test_a_persistent_entry_never_leads_or_counts(cluster, ens: MemEnsemble) -> None:
    ens.add_raw(entry_name(0), VALID, owner=0)  # oldest of all, valid data, but no session
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    assert [m.member.record.id for m in b.engine.members()] == ["a", "b"]


def test_a_forged_low_sequence_cannot_jump_the_queue(cluster, ens: MemEnsemble) -> None:
    """A foreign client creates an ephemeral znode named with the lowest sequence after the
    election formed: it is ordered by when it was created (czxid), so it queues last."""
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    ens.add_raw(entry_name(0), VALID, owner=FOREIGN_SESSION)
    passes = b.engine.stats.reconciles
    b.engine.mailbox.put("wake")  # a full pass sees the newcomer
    wait_until(lambda: b.engine.stats.reconciles > passes, 5, "b decided again")
    assert a.leads() and b.leader_id() == "a"
    assert [m.member.znode for m in a.engine.members()][-1] == entry_name(0)


POISON = {
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge integer": b'{"v":1,"id":"a","address":"h:1","n":' + b"9" * 5000 + b"}",
    "not UTF-8": b"\xff\xfe garbage",
    "lone surrogate": b'{"v":1,"id":"\\ud800","address":"h:1"}',
    "control character": b'{"v":1,"id":"a","address":"h:1","labels":{"k":"\\u0007"}}',
    "bool format": b'{"v":true,"id":"a","address":"h:1"}',
    "wrong type": b'{"v":1,"id":["a"],"address":"h:1"}',
    "bad label key": b'{"v":1,"id":"a","address":"h:1","labels":{"bad key":"x"}}',
    "bad address": b'{"v":1,"id":"a","address":"nowhere"}',
    "future format": b'{"v":2,"id":"a","address":"h:1"}',
    "empty": b"",
    "too large": b'{"v":1,"id":"a","address":"h:1","x":"' + b"x" * MAX_RECORD_BYTES + b'"}',
}


@pytest.mark.parametrize("data", POISON.values(), ids=POISON.keys())
def test_every_bad_record_is_a_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        NodeRecord.decode(data)


@pytest.mark.parametrize("data", POISON.values(), ids=POISON.keys())
def test_a_poisoned_oldest_entry_leads_unreadable_and_breaks_nothing(
    cluster, ens: MemEnsemble, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that cannot be read never changes who leads: the oldest entry (a foreign
    ephemeral one) leads, shown as unreadable; no node claims; listing works; warned once."""
    caplog.set_level(logging.WARNING)
    ens.add_raw(entry_name(0), data, owner=FOREIGN_SESSION)
    a, b = cluster("a"), cluster("b")
    wait_until(lambda: b.view.watching == a.view.own_znode, 5, "b behind a")
    for node in (a, b):
        info = node.view.leader
        assert info is not None and info.member.znode == entry_name(0)
        assert info.member.record_error and info.member.record.id == ""
        assert not node.leads()
    members = b.engine.members()
    assert [m.member.record.id for m in members] == ["", "a", "b"] and members[0].is_leader
    for node in (a, b):  # more passes and listings: still one warning per node
        passes = node.engine.stats.reconciles
        node.engine.mailbox.put("wake")
        wait_until(lambda n=node, p=passes: n.engine.stats.reconciles > p, 5, "another pass")
        node.engine.members()
    assert "bug in the election engine" not in caplog.text
    warnings = [r for r in caplog.records if entry_name(0) in r.getMessage()]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]  # a's and b's


def test_the_order_is_creation_order_whatever_the_names() -> None:
    names = [entry_name(5), entry_name(1), entry_name(3)]
    entries = [Entry(n, "f" * 32, int(n[-10:])) for n in names]
    metas = [Meta(7, 300, 0, 0), Meta(7, 400, 0, 0), Meta(0, 100, 0, 0)]
    assert [r.name for r in election_order(entries, metas)] == [entry_name(5), entry_name(1)]


@pytest.mark.parametrize(
    ("suffix", "sequence"),
    [
        ("0000000007", 7),
        ("2147483647", 2_147_483_647),
        ("-2147483648", -(2**31)),
        ("-000000001", -1),
    ],
)
def test_entry_names_after_zookeepers_counter_wraps_still_parse(suffix: str, sequence: int) -> None:
    """ZooKeeper formats the parent's cversion (a signed 32-bit int) with %010d."""
    assert parse_name(f"electd-{'a' * 32}-{suffix}") == ("a" * 32, sequence)
    assert parse_name(f"electd-{'a' * 32}-12345") is None


# ----- another client deletes an entry: the companion (order.py; RELIABILITY.md, V11) -------


def companion(name: str) -> str:
    return companion_name(name)


def test_a_successor_waits_for_the_old_leader_to_acknowledge_a_foreign_delete(
    cluster, ens: MemEnsemble
) -> None:
    """Another client deletes the leader's entry while the leader cannot hear of it yet: the
    successor does not claim while the leader's companion (same session) is there, and claims
    once the old leader, back, has stepped down and deleted it."""
    journal: list[tuple[str, View]] = []
    a, b = cluster("a", journal=journal), cluster("b", journal=journal)
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    old = a.view.own_znode
    assert ens.nodes[companion(old)].owner == ens.nodes[old].owner  # made in the same session
    a.store.suspend()  # a stops vouching, but its session (and its companion) live on
    ens.delete(old)  # another client: a's acknowledgement cannot reach the store
    wait_until(lambda: companion(old) in b.view.reason, 5, "b waits for a's companion")
    assert not b.leads() and b.view.leader is None and b.view.watching == companion(old)
    assert companion(old) in ens.nodes
    a.store.connect()  # a's next pass finds its entry gone: it deletes the companion
    wait_until(lambda: b.leads() and a.leader_id() == "b", 5, "b leads once a acknowledged")
    assert companion(old) not in ens.nodes
    never_two_leaders(journal)


def test_a_node_that_joins_after_a_foreign_delete_waits_for_the_orphan_companion(
    cluster, ens: MemEnsemble
) -> None:
    """The same, seen by a full pass that never saw the deleted entry: a companion whose entry
    is gone holds every claim back until it goes."""
    a = cluster("a")
    wait_until(a.leads, 5, "a leads")
    old = a.view.own_znode
    a.store.suspend()
    ens.delete(old)
    b = cluster("b")  # registers, finds itself the oldest entry, and the orphan companion
    wait_until(lambda: companion(old) in b.view.reason, 5, "b waits for the orphan companion")
    assert not b.leads()
    a.store.connect()
    wait_until(lambda: b.leads() and a.leader_id() == "b", 5, "b leads once a acknowledged")


def test_without_an_acknowledgement_the_successor_claims_once_the_old_lease_is_over(
    cluster, ens: MemEnsemble
) -> None:
    """An old leader that never acknowledges (cut off) holds its successor back only for 2T/3
    from when the successor saw the delete: its lease cannot outlast that."""
    journal: list[tuple[str, View]] = []
    a, b = cluster("a", 0.6, journal), cluster("b", 0.6, journal)
    wait_until(lambda: a.leads() and b.leader_id() == "a", 5, "a leads")
    old = a.view.own_znode
    a.store.suspend()
    ens.delete(old)
    wait_until(lambda: companion(old) in b.view.reason, 5, "b waits for a's companion")
    wait_until(b.leads, 5, "b leads once 2T/3 have passed")
    assert companion(old) in ens.nodes  # a never acknowledged
    never_two_leaders(journal)


def test_a_graceful_leave_deletes_entry_and_companion_in_one_transaction(
    cluster, ens: MemEnsemble
) -> None:
    """The successor sees both go at once and claims without waiting."""
    a, b = cluster("a", 60.0), cluster("b", 60.0)
    wait_until(lambda: b.leader_id() == "a", 5, "b follows a")
    old = a.view.own_znode
    deleted: list[set[str]] = []
    real_delete = ens.delete

    def delete(*names: str) -> None:
        deleted.append(set(names))
        real_delete(*names)

    ens.delete = delete  # type: ignore[method-assign]
    a.engine.leave()
    wait_until(b.leads, 5, "b leads")
    assert deleted[0] == {old, companion(old)}
    assert "companion" not in b.view.reason


def test_a_forged_companion_never_lets_its_entry_claim(cluster, ens: MemEnsemble) -> None:
    """Another client creates the companion of a node's new entry before the node does: the
    node never claims with it (its ephemeralOwner is not the node's session), replaces entry
    and companion, and claims with its own."""
    journal: list[tuple[str, View]] = []
    a = cluster("a", journal=journal)
    wait_until(a.leads, 5, "a leads")
    first = a.view.own_znode
    forged: list[str] = []
    sid = a.store.session_id()

    def forge() -> None:  # runs before each of a's store calls until a's new entry exists
        mine = [n for n, node in ens.nodes.items() if node.owner == sid and n != first]
        entries = [n for n in mine if parse_name(n) is not None]
        if entries and companion(entries[0]) not in ens.nodes:
            forged.append(entries[0])
            ens.add_raw(companion(entries[0]), b"", FOREIGN_SESSION)
        elif not forged:
            a.store.before_next_call = forge

    a.store.before_next_call = forge
    ens.delete(first)
    wait_until(lambda: a.leads() and forged and a.view.own_znode != forged[0], 5, "a leads again")
    assert companion(forged[0]) not in ens.nodes and forged[0] not in ens.nodes
    assert ens.nodes[companion(a.view.own_znode)].owner == sid
    assert not [v for n, v in journal if v.role is Role.LEADER and v.own_znode == forged[0]]


def test_a_companion_of_another_session_does_not_hold_a_successor_back(
    cluster, ens: MemEnsemble
) -> None:
    """For an entry it knew, a successor waits only for a companion owned by the session that
    owned the entry: one that another client put in place of the real one does not count (nor
    would it count as the owner's own companion). A long T: no wait runs out here."""
    a, b = cluster("a", 60.0), cluster("b", 60.0)
    wait_until(lambda: b.leader_id() == "a", 5, "b follows a")
    old = a.view.own_znode
    a.store.suspend()  # a no longer vouches
    with ens.lock:  # one transaction: a's entry deleted, its companion swapped for a forgery
        del ens.nodes[companion(old)]
        ens.add_raw(companion(old), b"", FOREIGN_SESSION)
        fire = ens._delete(old)
    for watch, event in fire:
        watch(event)
    wait_until(b.leads, 5, "b leads without waiting")
    assert ens.nodes[companion(old)].owner == FOREIGN_SESSION


def test_companions_are_neither_entries_nor_foreign() -> None:
    name = f"electd-{'a' * 32}-0000000007"
    assert parse_name(companion(name)) is None
    assert companion_of(companion(name)) == (name, "a" * 32, 7)
    assert companion_of(name) is None and companion_of("foo.alive") is None
