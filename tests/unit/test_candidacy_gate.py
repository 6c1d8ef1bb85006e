"""The engine's ack gate (engine/acks.py; RELIABILITY.md, C2), on the in-memory store: an engine
given a gate deletes its companion after another client deleted its entry only once the gate
releases it, from the deletion's callback and from its full passes alike (the successor waits
meanwhile); released, the successor claims. Without a gate nothing changes (test_hostile.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from electd.devcluster.cluster import wait_until
from electd.engine import ElectionEngine, NodeRecord, Role, View
from electd.engine.clock import now as lease_clock
from electd.zk.paths import companion_name
from tests.support.journal import never_two_leaders
from tests.support.memstore import MemEnsemble, MemStore


class HeldGate:
    """Holds every release until `open`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[str, Callable[[], None]] = {}
        self.asked: list[str] = []
        self.opened = False

    def release(self, name: str, send: Callable[[], None]) -> None:
        with self.lock:
            self.asked.append(name)
            if not self.opened:
                self.held[name] = send
                return
        send()

    def open(self) -> None:
        with self.lock:
            self.opened = True
            held, self.held = list(self.held.values()), {}
        for send in held:
            send()


def engine(
    ens: MemEnsemble, node_id: str, journal: list[tuple[str, View]], gate: HeldGate | None
) -> ElectionEngine:
    store = MemStore(ens, 3.0)
    made = ElectionEngine(
        store,
        NodeRecord(node_id, f"{node_id}:1"),
        lambda view: journal.append((node_id, view)),
        ack_gate=gate,
    )
    store.connect()
    made.start()
    wait_until(lambda: made.view().role in (Role.LEADER, Role.FOLLOWER), 5, f"{node_id} joined")
    return made


def leads(e: ElectionEngine) -> bool:
    return e.view().is_leader(lease_clock())


def test_a_gated_engine_acknowledges_a_foreign_delete_only_once_released() -> None:
    ens = MemEnsemble()
    journal: list[tuple[str, View]] = []
    gate = HeldGate()
    a = engine(ens, "a", journal, gate)
    b = engine(ens, "b", journal, None)
    try:
        wait_until(lambda: leads(a), 5, "a leads")
        old = a.view().own_znode
        ens.delete(old)  # another client (Resign) deletes a's entry
        assert not leads(a)  # stepped down in the callback, as always
        wait_until(lambda: a.view().own_znode not in ("", old), 5, "a registered again")
        wait_until(lambda: companion_name(old) in b.view().reason, 5, "b waits for it")
        # The deletion's callback and a's full pass both asked; nothing was sent.
        assert gate.asked and set(gate.asked) == {old}
        assert companion_name(old) in ens.nodes and not leads(b)
        gate.open()
        wait_until(lambda: leads(b), 5, "b leads once the gate released the companion")
        assert companion_name(old) not in ens.nodes
        never_two_leaders(journal)
    finally:
        a.stop()
        b.stop()


def test_without_a_release_the_successor_still_claims_after_two_thirds_of_t() -> None:
    """A gate that never releases delays, never blocks: the successor's own 2T/3 bound."""
    ens = MemEnsemble()
    journal: list[tuple[str, View]] = []
    gate = HeldGate()
    store = MemStore(ens, 0.6)
    a = ElectionEngine(
        store, NodeRecord("a", "a:1"), lambda v: journal.append(("a", v)), ack_gate=gate
    )
    store.connect()
    a.start()
    wait_until(lambda: leads(a), 5, "a leads")
    b_store = MemStore(ens, 0.6)
    b = ElectionEngine(b_store, NodeRecord("b", "b:1"), lambda v: journal.append(("b", v)))
    b_store.connect()
    b.start()
    try:
        wait_until(lambda: leads(a) and b.view().role is Role.FOLLOWER, 5, "a leads")
        old = a.view().own_znode
        ens.delete(old)
        wait_until(lambda: leads(b), 5, "b leads after 2T/3")
        assert companion_name(old) in ens.nodes
        never_two_leaders(journal)
    finally:
        a.stop()
        b.stop()
