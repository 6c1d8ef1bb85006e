"""The decision of one engine: the full pass (`reconcile`: register if needed, list, rank by
the rule of order.py, watch) and the fast pass (`fast`: decide again from what the last full
pass learned, when the only news are watched entries older than ours that went away).

Owns the chain (the entries older than ours, oldest first, as the last full pass ranked them:
a superset of the live ones); our entry and its companion are own.py's, the terms seen
terms.py's, the claims held back companions.py's. Runs on the engine's worker thread only;
`own` is also read (one reference read) by `leave` and `members` on other threads. Imports
neither kazoo nor grpc.

Invariants (see order.py for the rule):
  * Entries older than ours can only go away: a new entry always gets a higher czxid than every
    live one, and the election path cannot be deleted while our ephemeral entry is in it. So a
    later pass may decide from the chain without listing again, and may trust what it knows of
    an entry whose watch is still set (ZooKeeper delivers a session's events in order: an entry
    whose change we have not heard of was as we knew it when the event we handle happened). A
    graceful leader change then costs the successor one round trip (its own entry, read before
    it claims: V10), the node right behind it none, and any other node one read, however many
    members there are.
  * We claim only from our own entry's metadata in our current session, data version 0, and
    only while our entry's companion exists in that session (order.py).
  * An entry older than ours that went away is claimed past only once its companion is gone,
    or 2T/3 after we saw it still there (order.py; the waits are companions.py's). That check
    rides on the round trip a fast pass makes before it claims anyway.
  * Our entry found rewritten: step down first, then delete it, then register again. Found
    gone: step down first, then delete its companion (the acknowledgement a successor waits
    for); a companion of our session whose entry is gone is removed by every full pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from electd.engine.clock import now as lease_clock
from electd.engine.companions import Waits
from electd.engine.gate import ClusterGate
from electd.engine.identity import Refused
from electd.engine.lease import Vouch
from electd.engine.members import Members
from electd.engine.model import Member, NodeRecord, Role
from electd.engine.order import Ranked
from electd.engine.own import OwnEntry
from electd.engine.store import CoordinatorUnavailable, Entry, Meta, Store, Stored, WatchEvent
from electd.engine.terms import Terms
from electd.engine.watches import ALIVE, BLOCKER, LEADER, OWN, PREDECESSOR, WatchBook

if TYPE_CHECKING:
    from electd.engine.engine import ElectionEngine

logger = logging.getLogger(__name__)

# How many metadata reads a full pass asks the store for at once; between batches it renews
# the lease if it runs low, so thousands of (foreign) entries never starve it.
_BATCH = 1000


class Passes:
    def __init__(
        self,
        engine: ElectionEngine,
        store: Store,
        record: NodeRecord,
        members: Members,
        book: WatchBook,
        lease: Vouch,
        wall: Callable[[], float],
        cluster_id: str = "",
    ) -> None:
        self._engine = engine
        self._store = store
        self._record = record
        self._members = members
        self._book = book
        self._lease = lease
        self._id = record.id
        self._own_member: Member | None = None
        self._chain: list[Ranked] = []
        self._decided_gen = -1  # the connection generation the last full pass decided in
        self._terms = Terms(engine.stats, wall, record.id, engine.election)
        self._max_czxid = 0  # the newest entry this node has seen: where ZooKeeper's zxids were
        self._gate = ClusterGate(store, book, engine.who, cluster_id, engine.refuse)
        self.waits = Waits(lease.now, lease.length)
        self._own = OwnEntry(engine, store, book, self.waits, lease, engine.who, record.encode())

    @property
    def own(self) -> Entry | None:
        """Our entry (one reference read: `leave` and `members` read it from other threads)."""
        return self._own.entry

    @own.setter
    def own(self, entry: Entry | None) -> None:
        self._own.entry = entry

    def own_still_ours(self, claiming: bool = False) -> bool:
        return self._own.still_ours(claiming)

    def own_still_watched(self) -> bool:
        return self._own.still_watched()

    def _lease_now(self) -> float:
        return lease_clock()

    def forget_decision(self) -> None:
        """After a failed round: the next wake-up needs a full pass."""
        self._decided_gen = -1

    # ----- the full pass ---------------------------------------------------------------------

    def reconcile(self) -> None:
        engine = self._engine
        if engine.stopping():
            return  # leaving: never decide (or register) again
        engine.stats.reconciles += 1
        self._decided_gen = -1
        self._book.clear_events()  # the listing below supersedes them
        connected, gen, _ = engine.connection()
        if not connected:
            engine.publish_disconnected()
            return
        self._lease.renew()
        for _ in range(16):  # each pass either decides or learned that something moved
            if engine.stopping():
                return  # leaving: never register again
            # The session is read afresh on every pass: the store reconnects on its own, so a
            # call of this pass may already have run in a new session (after an expiry).
            sid = self._store.session_id()
            if sid is None:
                raise CoordinatorUnavailable("no session")
            try:
                # Every full pass: the identity may have changed.
                self._gate.join(self._terms.max_epoch, self._max_czxid)
            except Refused:
                self._own.withdraw()
                raise
            if self.own is None or self._own.sid != sid:
                self._own.register(sid)
                continue  # decide in the session that owns the entry, read again
            if self._decide(sid, gen):
                return
        raise CoordinatorUnavailable("the election kept changing under us; will retry")

    def _decide(self, sid: int, gen: int) -> bool:
        """One pass of the recipe. Returns False when it must run again at once."""
        own = self.own
        assert own is not None
        entries, alive = self._store.listing()
        names = [e.name for e in entries]
        if own.name not in names:
            return self._own.lost("vanished while the session lives", ack=True)
        listed = set(names)
        orphans = [e.name for e in alive if e.name not in listed]  # their entries are gone
        companions = [self._store.companion(n) for n in [own.name, *orphans]]
        metas, mark = self._stats(names, own.name, companions)
        alive_metas = metas[len(names) :]
        metas = metas[: len(names)]
        mine = metas[names.index(own.name)]
        if mine is None:
            return self._own.lost("vanished while the session lives", ack=True)
        if mine.session_id != sid:
            return self._own.lost(f"is owned by session 0x{mine.session_id:x}, not ours")
        if mine.version != 0:
            return self._own.rewritten()
        self._lease.confirm(mark)  # read after that anchor, still ours (lease.py's Vouch)
        if not self._own.alive(alive_metas[0], sid):
            return False
        self.waits.restart((c, m.czxid) for c, m in zip(companions, alive_metas, strict=True) if m)
        for name, companion, meta in zip(orphans, companions[1:], alive_metas[1:], strict=True):
            if meta is not None and meta.session_id == sid:
                self._book.disarm(companion)
                self._engine.acks.now(name)  # ours, left behind by an earlier entry: clean up
            elif not self.waits.judge(companion, 0, meta, sid):
                self._book.disarm(companion)
        self._members.forget({(e.name, m.czxid) for e, m in zip(entries, metas, strict=True) if m})
        order = self._members.order(entries, metas)
        self._max_czxid = max(self._max_czxid, max(r.meta.czxid for r in order))
        at = next(i for i, r in enumerate(order) if r.name == own.name)
        self._chain = order[:at]
        if not self._chain and None in metas:
            return False  # an entry went after the listing: list again, to see its companion
        own_stored = Stored(mine.session_id, mine.czxid, mine.version, mine.created_ms)
        self._own_member = self._members.from_stored(own, own_stored, own)
        # Watch the oldest entry (the leader, or what blocks the lead) and the predecessor.
        # A full pass sets every watch again (a watch we believe set may have been lost with a
        # session), so it reads both even if they look armed.
        if self._chain and self._probe(0, LEADER, fresh=True) is None:
            return False  # it went away between the listing and the read
        last = len(self._chain) - 1
        if last > 0 and self._probe(last, PREDECESSOR, fresh=True) is None:
            return False  # the predecessor is already gone: decide again at once
        return self._conclude(gen)

    def _stats(
        self, names: list[str], own: str, companions: list[str]
    ) -> tuple[list[Meta | None], float]:
        """Every entry's metadata, then the companions' (our own companion first), with our
        watches set on our entry, our companion and the other companions; and the lease's
        anchor right before the batch that read our entry (`Vouch.mark`)."""
        watches = {
            own: self._book.arm(own, OWN),
            companions[0]: self._book.arm(companions[0], ALIVE),
        }
        watches.update((c, self._book.arm(c, BLOCKER)) for c in companions[1:])
        asked = names + companions
        out: list[Meta | None] = []
        at, mark = asked.index(own), self._lease.mark()
        try:
            for i in range(0, len(asked), _BATCH):
                if i <= at < i + _BATCH:
                    mark = self._lease.mark()
                out += self._store.stats(asked[i : i + _BATCH], watches)
                # The session's lease (not our share of it): keep the session's anchor fresh.
                if self._lease.lease.remaining() < 2 * self._lease.heartbeat():
                    self._lease.renew()
        except BaseException:
            for name in watches:
                self._book.disarm(name)
            raise
        return out, mark

    # ----- the fast pass ---------------------------------------------------------------------

    def fast(self) -> bool:
        """Decide again without listing, when the only news since the last full pass are
        watched entries older than ours that went away (see the module's invariants). Returns
        False when a full pass is needed instead."""
        own, own_member = self.own, self._own_member
        if self._engine.stopping():
            return True  # leaving: nothing to decide
        events = self._book.take()
        connected, gen, _ = self._engine.connection()
        alive = self._store.companion(own.name) if own is not None else ""
        usable = (
            bool(events)
            and connected
            and gen == self._decided_gen
            and own is not None
            and own_member is not None
            and self._book.role(own.name) == OWN
            and all(ev is WatchEvent.GONE and name not in (own.name, alive) for name, ev in events)
        )
        if not usable or not self._engine.lease_fresh():
            return False
        assert own is not None and own_member is not None
        sid = self._store.session_id()
        if sid is None or sid != self._own.sid or own_member.session_id != sid:
            return False
        self._engine.stats.reconciles += 1
        gone = {name for name, _ in events}
        for name in gone:
            self.waits.gone(name)  # a companion we waited for
        for r in self._chain:
            if r.name in gone:
                self.waits.suspect(self._store.companion(r.name), r.meta.session_id)
        self._chain = [r for r in self._chain if r.name not in gone]
        while self._chain and self._probe(0, LEADER) is None:
            pass  # that one is gone too: the next oldest
        while len(self._chain) > 1 and self._probe(len(self._chain) - 1, PREDECESSOR) is None:
            pass
        claiming = not self._chain and not self._engine.view().is_leader(self._lease_now())
        # About to claim: one round trip first. ZooKeeper answers it only after every change
        # it committed before it, so a transaction that deleted our predecessors and our own
        # entry together (a wiped path) is seen whole, and we never claim on an entry that is
        # already gone (RELIABILITY.md, V10). The same round trip reads the companions of
        # the entries that went (V11): still there, we wait.
        if claiming and not self.own_still_ours(claiming=True):
            return False
        return self._conclude(gen)

    def _probe(self, at: int, role: str, fresh: bool = False) -> Ranked | None:
        """Make sure the chain's entry at `at` is watched (as `role`) and known as it is now;
        returns it, or None after dropping it from the chain if it is gone. An entry whose
        watch is still set and whose record is cached needs no round trip (unless `fresh`);
        anything else is read, setting our watch."""
        ranked = self._chain[at]
        name = ranked.name
        armed = self._book.relabel(name, role) if role == LEADER else self._book.role(name)
        known = self._members.cached(ranked.entry, ranked.meta, None) is not None
        if armed and known and not fresh:
            return ranked
        watch = self._book.arm(name, role)
        try:
            # With its data, for the predecessor too: it is the next leader, and knowing its
            # record then costs no round trip.
            got = self._store.read(name, watch)
        except BaseException:
            self._book.disarm(name)
            raise
        if got is not None and got.czxid == ranked.meta.czxid:
            self._members.from_stored(ranked.entry, got, None)  # caches its record
        if got is None or got.czxid != ranked.meta.czxid or got.session_id == 0:
            self._book.disarm(name)
            del self._chain[at]  # gone (or replaced by another znode of the same name)
            self.waits.suspect(self._store.companion(name), ranked.meta.session_id)
            return None
        self._chain[at] = fresh_ranked = Ranked(ranked.entry, _meta(got))
        return fresh_ranked

    # ----- the conclusion ----------------------------------------------------------------------

    def _conclude(self, gen: int) -> bool:
        own, own_member = self.own, self._own_member
        assert own is not None and own_member is not None
        reason = ""
        leader: Member | None
        if not self._chain and self.waits.blocking:
            role, leader, watching = Role.FOLLOWER, None, min(self.waits.blocking)
            reason = self.waits.why()
        elif not self._chain:
            role, leader, watching = Role.LEADER, own_member, ""
        else:
            role, watching = Role.FOLLOWER, self._chain[-1].name
            oldest = self._chain[0]
            leader = self._members.member(oldest.entry, oldest.meta, own) if oldest.valid else None
            if leader is None and oldest.valid:
                return False  # it went away while its record was read: decide again
            if leader is None:
                reason = (
                    f"the oldest entry {oldest.name} was rewritten by another ZooKeeper client; "
                    "nobody leads until its owner removes it"
                )
        identity = self._gate.identity
        base = identity.epoch_base if identity is not None else 0
        info = self._terms.info(leader, base) if leader is not None else None
        before = self._engine.publish_if_current(gen, role, info, reason, own.name, watching)
        if before is False:
            return False  # our own entry changed or went away meanwhile: decide again
        if before is None or before is True:
            return True  # the connection moved on, or we are leaving: nothing to publish
        self._decided_gen = gen
        self._terms.log(before, role, info, watching, reason)
        return True


def _fields(meta: Meta) -> dict[str, int]:
    return {
        "session_id": meta.session_id,
        "czxid": meta.czxid,
        "version": meta.version,
        "created_ms": meta.created_ms,
    }


def _meta(meta: Meta) -> Meta:
    """The metadata alone (a Stored read for a leader also carries its data)."""
    return meta if type(meta) is Meta else Meta(**_fields(meta))
