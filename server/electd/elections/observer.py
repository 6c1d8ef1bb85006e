"""Reading a named election: who leads it, in what order its candidates wait, and the
immutable `ElectionView`s published for it (GetLeader, ListNodes and WatchLeader of a named
election, and the candidacies' priorities and queue positions).

Owns `read_election` (one read: children and path data together, metadata pipelined, ranked by
the rule of engine/order.py, records read once per entry and cached), the record cache, and the
`Observers`: one `Observer` per election observed on this node, created on demand, shared by
every call and stream on it, closed when unused for `IDLE_CLOSE` seconds. An observer keeps a
child watch on the path (an exists watch while it is missing: it never creates it) and a
watch on the leader's `.value` znode, reads again on every event and publishes a new view when
what it says changed. The leader is the oldest entry that takes part if its data was never
rewritten (never_lead members are not entries, so never lead); an entry whose companion rules
say "wait" (order.py) is still named, as a follower names it.

State: ELECTED, VACANT (no candidate may lead, or the path does not exist), UNKNOWN (the session
is not connected, or no read has succeeded yet). A view is believable until `valid_until`: the
session's lease (engine/lease.py) when it was published; views are published again before they
run out while the lease renews (the registry renews it if nobody else does).

Threads: every observer runs on ONE worker thread (worker.py) shared by all observers of the
registry, so a thousand elections need no thousand threads; watch and state callbacks (kazoo's
threads) only queue a refresh. `on_change` callbacks run on that worker and must not block.
`Observation.view()` may be called from any thread. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from electd.elections.worker import Worker
from electd.engine.identity import ClusterIdentity, IdentityError
from electd.engine.lease import Lease
from electd.engine.model import LeaderInfo, Member, MemberView, NodeRecord, RecordError
from electd.engine.order import Ranked, election_order
from electd.engine.store import (
    ConnState,
    CoordinatorUnavailable,
    ElectionsSession,
    ElectionStore,
    Entry,
    Stored,
    WatchEvent,
)

logger = logging.getLogger(__name__)

IDLE_CLOSE = 30.0  # an observer nobody uses for this long is closed
_RETRY = 0.5  # after a failed read
_BATCH = 1000


class ElectionState(enum.Enum):
    ELECTED = "ELECTED"
    VACANT = "VACANT"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class ElectionLeader(LeaderInfo):
    """The leader of a named election: its member (record, proclaimed value and revision),
    epoch and when this node first saw that epoch."""

    @property
    def value(self) -> bytes:
        return self.member.value

    @property
    def value_revision(self) -> int:
        return self.member.value_revision


@dataclass(frozen=True)
class ElectionView:
    """One published state of a named election (immutable)."""

    election: str
    version: int
    state: ElectionState
    leader: ElectionLeader | None
    reason: str  # why there is no leader ("" when ELECTED)
    valid_until: float  # lease clock: believe it until then

    def vouched(self, now: float) -> ElectionLeader | None:
        if self.state is not ElectionState.ELECTED or now >= self.valid_until:
            return None
        return self.leader

    def state_at(self, now: float) -> ElectionState:
        """The state at lease-clock time `now`: UNKNOWN once the view ran out."""
        return ElectionState.UNKNOWN if now >= self.valid_until else self.state


@dataclass(frozen=True)
class Candidate:
    """An entry that takes part, with its record (None: unreadable or not read)."""

    ranked: Ranked
    record: NodeRecord | None
    error: str = ""

    @property
    def name(self) -> str:
        return self.ranked.name

    @property
    def priority(self) -> int:
        return self.record.priority if self.record is not None else 0


@dataclass(frozen=True)
class Reading:
    """One read of an election path."""

    order: list[Candidate]  # the entries that take part, oldest first
    members: list[tuple[str, Stored, NodeRecord | None, str]]  # never_lead: name, stat, record
    epoch_base: int
    identity_error: str = ""

    def leader(self) -> Candidate | None:
        if self.order and self.order[0].ranked.valid:
            return self.order[0]
        return None

    def position(self, znode: str) -> tuple[int, Candidate | None] | None:
        """How many entries are ahead of `znode`, and the one just ahead (None: not seen)."""
        for i, candidate in enumerate(self.order):
            if candidate.name == znode:
                return i, self.order[i - 1] if i else None
        return None

    def higher(self, znode: str, priority: int) -> Candidate | None:
        """A valid entry other than `znode` with a strictly higher priority, if any."""
        for candidate in self.order:
            if (
                candidate.name != znode
                and candidate.ranked.valid
                and candidate.record is not None
                and candidate.priority > priority
            ):
                return candidate
        return None


@dataclass
class RecordCache:
    """(name, czxid) -> record or the reason there is none: records never change at data
    version 0 (a rewrite makes the entry invalid). Guarded by `lock` (any thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records: dict[tuple[str, int], NodeRecord | str] = field(default_factory=dict)

    def get(self, key: tuple[str, int]) -> NodeRecord | str | None:
        with self.lock:
            return self.records.get(key)

    def put(self, key: tuple[str, int], record: NodeRecord | str) -> None:
        with self.lock:
            self.records[key] = record

    def keep(self, live: set[tuple[str, int]]) -> None:
        with self.lock:
            for key in [k for k in self.records if k not in live]:
                del self.records[key]


def _decode(stored: Stored) -> NodeRecord | str:
    try:
        return NodeRecord.decode(stored.data)
    except RecordError as exc:
        return str(exc)


def read_election(
    store: ElectionStore, cache: RecordCache, watch: Callable[[WatchEvent], None] | None = None
) -> Reading | None:
    """One read (blocking, bounded): None if the path does not exist. `watch` is set on the
    path's children (or, missing, on its creation)."""
    kids = store.children(watch)
    if kids is None:
        return None
    names = [e.name for e in kids.entries]
    metas = []
    for i in range(0, len(names), _BATCH):
        metas += store.stats(names[i : i + _BATCH], {})
    order = election_order(kids.entries, metas)
    missing = [r for r in order if r.valid and cache.get((r.name, r.meta.czxid)) is None]
    if missing:
        for ranked, stored in zip(missing, store.read_many([r.name for r in missing]), strict=True):
            if stored is not None and stored.czxid == ranked.meta.czxid:
                cache.put((ranked.name, ranked.meta.czxid), _decode(stored))
    candidates = []
    for ranked in order:
        got = cache.get((ranked.name, ranked.meta.czxid)) if ranked.valid else None
        record = got if isinstance(got, NodeRecord) else None
        candidates.append(Candidate(ranked, record, got if isinstance(got, str) else ""))
    members = []
    for name, stored in zip(kids.members, store.read_many(kids.members), strict=True):
        if stored is None or stored.session_id == 0 or stored.version != 0:
            continue  # gone, persistent (no process) or rewritten: not a member
        decoded = _decode(stored)
        record = decoded if isinstance(decoded, NodeRecord) else None
        members.append((name, stored, record, decoded if isinstance(decoded, str) else ""))
    base, problem = 0, ""
    if kids.path.data:
        try:
            base = ClusterIdentity.decode(kids.path.data).epoch_base
        except IdentityError as exc:
            problem = f"the election path's data is not an electd cluster identity ({exc})"
    return Reading(candidates, members, base, problem)


def member_of(candidate: Candidate, value: Stored | None) -> Member:
    """The member an entry stands for, with its proclaimed value when `value` (its `.value`
    znode) belongs to the entry's session."""
    ranked = candidate.ranked
    proclaimed, revision = None, 0
    if value is not None and value.session_id == ranked.meta.session_id:
        proclaimed, revision = value.data, value.version + 1
    return Member(
        ranked.name,
        ranked.entry.sequence,
        candidate.record or NodeRecord.unreadable(),
        ranked.meta.session_id,
        ranked.meta.czxid,
        ranked.meta.created_ms,
        record_error=candidate.error,
        proclaimed=proclaimed,
        value_revision=revision,
    )


def member_views(store: ElectionStore, reading: Reading) -> list[MemberView]:
    """Every member in election order (entries and never_lead members by creation), with the
    entries' proclaimed values read now (blocking)."""
    valid = [c for c in reading.order if c.ranked.valid]
    values = store.read_many([store.value_name(c.name) for c in valid])
    by_name = dict(zip([c.name for c in valid], values, strict=True))
    rows: list[tuple[int, MemberView]] = []
    prev = ""
    for i, candidate in enumerate(reading.order):
        if candidate.ranked.valid:
            member = member_of(candidate, by_name.get(candidate.name))
            rows.append((candidate.ranked.meta.czxid, MemberView(member, i == 0, prev)))
        prev = candidate.name
    for name, stored, record, error in reading.members:
        member = Member(
            name,
            0,
            record or NodeRecord.unreadable(),
            stored.session_id,
            stored.czxid,
            stored.created_ms,
            record_error=error,
        )
        rows.append((stored.czxid, MemberView(member, False, "")))
    rows.sort(key=lambda row: row[0])
    return [view for _, view in rows]


class Observer:
    """One election's observer (runs on the observers' worker; see the module comment)."""

    def __init__(self, owner: Observers, election: str, store: ElectionStore) -> None:
        self._owner = owner
        self.election = election
        self.store = store
        self.cache = RecordCache()
        self._lock = threading.Lock()
        self._dirty = False
        self._thens: list[Callable[[Reading | None], None]] = []
        self.listeners: list[Callable[[ElectionView], None]] = []
        self.hooks: list[Callable[[Reading], None]] = []
        self.users = 0
        self.idle_since: float | None = None
        self.view = ElectionView(election, 0, ElectionState.UNKNOWN, None, "not read yet", 0.0)
        self.reading: Reading | None = None
        self._seen: dict[int, float] = {}  # epoch -> wall time first seen
        self._value_watched = ""
        self.closed = False

    # any thread
    def wake(self, then: Callable[[Reading | None], None] | None = None) -> None:
        with self._lock:
            if then is not None:
                self._thens.append(then)
            if self._dirty:
                return
            self._dirty = True
        self._owner.worker.submit(self.refresh)

    def _on_watch(self, _event: WatchEvent) -> None:
        if not self.closed:
            self.wake()

    # worker
    def refresh(self) -> None:
        with self._lock:
            self._dirty = False
            thens, self._thens = self._thens, []
        if self.closed:
            for then in thens:
                then(None)
            return
        if not self._owner.connected():
            self._publish(ElectionState.UNKNOWN, None, "disconnected from ZooKeeper")
            with self._lock:
                self._thens[:0] = thens  # answered after the reconnect's refresh
            return
        try:
            reading = read_election(self.store, self.cache, self._on_watch)
            leader = reading.leader() if reading is not None else None
            value = None
            if leader is not None:
                self._value_watched = leader.name
                value = self.store.read_value(leader.name, self._on_watch)
        except CoordinatorUnavailable as exc:
            self._publish(ElectionState.UNKNOWN, None, f"ZooKeeper did not answer: {exc}")
            with self._lock:
                self._thens[:0] = thens
            self._owner.worker.at(self._owner.lease.now() + _RETRY, self.wake)
            return
        self.reading = reading
        if reading is not None:
            live = {(c.name, c.ranked.meta.czxid) for c in reading.order}
            self.cache.keep(live)
        self._judge(reading, leader, value)
        for then in thens:
            then(reading)
        if reading is not None:
            for hook in list(self.hooks):
                hook(reading)

    def _judge(
        self, reading: Reading | None, leader: Candidate | None, value: Stored | None
    ) -> None:
        if reading is None:
            self._publish(ElectionState.VACANT, None, "the election does not exist")
        elif reading.identity_error:
            self._publish(ElectionState.UNKNOWN, None, reading.identity_error)
        elif leader is None and reading.order:
            self._publish(
                ElectionState.VACANT,
                None,
                f"the oldest entry {reading.order[0].name} was rewritten by another ZooKeeper "
                "client; nobody leads until its owner removes it",
            )
        elif leader is None:
            why = "no candidate may lead (never_lead only)" if reading.members else "no candidate"
            self._publish(ElectionState.VACANT, None, why)
        else:
            epoch = reading.epoch_base + leader.ranked.meta.czxid
            seen = self._seen.setdefault(epoch, time.time())
            if len(self._seen) > 16:
                self._seen = {e: t for e, t in self._seen.items() if e >= epoch}
            info = ElectionLeader(member_of(leader, value), epoch, seen)
            self._publish(ElectionState.ELECTED, info, "")

    def _publish(self, state: ElectionState, leader: ElectionLeader | None, reason: str) -> None:
        old = self.view
        if _key(old) == (state, _leader_key(leader), reason) and not self._stale(old):
            return
        self.view = ElectionView(
            self.election, old.version + 1, state, leader, reason, self._owner.lease.valid_until()
        )
        for listener in list(self.listeners):
            listener(self.view)

    def _stale(self, view: ElectionView) -> bool:
        """Runs out within half a lease while the lease reaches further: publish again."""
        lease = self._owner.lease
        until = lease.valid_until()
        return until > view.valid_until and view.valid_until - lease.now() < lease.length() / 2

    def republish(self) -> None:
        """The tick: keep a view's `valid_until` moving with the lease."""
        if self._stale(self.view) and self.view.state is not ElectionState.UNKNOWN:
            self._publish(self.view.state, self.view.leader, self.view.reason)


def _leader_key(leader: ElectionLeader | None) -> tuple[object, ...] | None:
    if leader is None:
        return None
    return (leader.epoch, leader.member.znode, leader.value_revision, leader.member.record)


def _key(view: ElectionView) -> tuple[object, ...]:
    return (view.state, _leader_key(view.leader), view.reason)


class Observation:
    """A use of an observer: its latest view (any thread) until `close`."""

    def __init__(self, observer: Observer, on_close: Callable[[Observation], None]) -> None:
        self._observer = observer
        self._on_close = on_close
        self._closed = False

    def view(self) -> ElectionView:
        return self._observer.view

    def reading(self) -> Reading | None:
        return self._observer.reading

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close(self)


class Observers:
    """Every observer of the registry, on one worker thread."""

    def __init__(self, session: ElectionsSession, lease: Lease, root: str) -> None:
        self.session = session
        self.lease = lease
        self.root = root.rstrip("/") or ""
        self.worker = Worker("election-observers")
        self._lock = threading.Lock()
        self._observers: dict[str, Observer] = {}
        self._connected = session.session_id() is not None
        self._stopped = False

    def path(self, election: str) -> str:
        return f"{self.root}/{election}"

    def start(self) -> None:
        self.session.add_state_listener(self._on_state)
        self._connected = self.session.session_id() is not None
        self.worker.start()
        self.worker.submit(self._tick)

    def stop(self) -> None:
        self._stopped = True
        self.session.remove_state_listener(self._on_state)
        with self._lock:
            observers, self._observers = list(self._observers.values()), {}
        for observer in observers:
            observer.closed = True
        self.worker.stop()

    def connected(self) -> bool:
        return self._connected and self.session.session_id() is not None

    def _on_state(self, state: ConnState) -> None:  # kazoo's thread: flag and wake
        self._connected = state is ConnState.CONNECTED
        with self._lock:
            observers = list(self._observers.values())
        for observer in observers:
            observer.wake()

    def _get(self, election: str) -> Observer:
        with self._lock:
            observer = self._observers.get(election)
            if observer is None:
                store = self.session.election_store(self.path(election))
                observer = self._observers[election] = Observer(self, election, store)
                observer.wake()
            observer.users += 1
            observer.idle_since = None
            return observer

    def observe(
        self,
        election: str,
        on_change: Callable[[ElectionView], None] | None = None,
        hook: Callable[[Reading], None] | None = None,
    ) -> Observation:
        observer = self._get(election)
        with self._lock:
            if on_change is not None:
                observer.listeners.append(on_change)
            if hook is not None:
                observer.hooks.append(hook)

        def closed(_: Observation) -> None:
            with self._lock:
                if on_change is not None and on_change in observer.listeners:
                    observer.listeners.remove(on_change)
                if hook is not None and hook in observer.hooks:
                    observer.hooks.remove(hook)
                observer.users -= 1
                if observer.users == 0:
                    observer.idle_since = self.lease.now()

        return Observation(observer, closed)

    def refresh(self, election: str, then: Callable[[Reading | None], None]) -> None:
        """Read `election` again (a read that begins after this call), then `then(reading)` on
        the worker. The observer must be in use (an Observation open)."""
        with self._lock:
            observer = self._observers.get(election)
        if observer is None:
            then(None)
        else:
            observer.wake(then)

    def _tick(self) -> None:
        """Every heartbeat: renew the lease if nobody else does, publish views again before
        they run out, close observers unused for IDLE_CLOSE."""
        if self._stopped:
            return
        now = self.lease.now()
        with self._lock:
            observers = list(self._observers.items())
        if observers and self.connected() and self.lease.remaining() < self.lease.length() / 2:
            try:
                self.lease.renew()
            except CoordinatorUnavailable as exc:
                logger.info("observers could not renew the lease: %s", exc)
        for election, observer in observers:
            if observer.idle_since is not None and now - observer.idle_since >= IDLE_CLOSE:
                with self._lock:
                    if observer.users == 0 and self._observers.get(election) is observer:
                        del self._observers[election]
                        observer.closed = True
                continue
            observer.republish()
        self.worker.at(self.lease.now() + self.lease.heartbeat(), self._tick)

    def count(self) -> int:
        with self._lock:
            return len(self._observers)


__all__ = [
    "Candidate",
    "ElectionLeader",
    "ElectionState",
    "ElectionView",
    "Entry",
    "Observation",
    "Observers",
    "Reading",
    "member_views",
    "read_election",
]
