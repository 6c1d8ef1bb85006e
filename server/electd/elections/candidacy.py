"""One candidate of a named election held by this node: its entry (an ordinary `ElectionEngine`
on the node's shared session and lease, with a candidate record), the leases granted to it and
the end of its terms (RELIABILITY.md, C1-C3), its priority, its proclamations, and the
never_lead variant (a `member-<token>` znode instead of an entry: listed, never leads).

Owns the candidacy's state machine. A term begins when the engine's view says LEADER with our
own entry: first the election's latest reading (observer.py) is checked, and if a waiting
valid entry has a strictly higher priority the candidacy yields at once, with nothing granted
(graceful leave, registered again at the back); else `Leading` is sent. While
leading, every reading of the observer is checked for a higher-priority arrival (`Lost`
PREEMPTED). A term ends once (disconnect, expiry, lease run out, our entry deleted or rewritten
by another client, preemption, shutdown): `Lost`, no further grant for that epoch, and the
entry is retired (graceful leave, then a new entry at the back, unless the campaign ended).

Safety (C1-C3):
  * C1: a ping is answered `Leading` only while the engine's latest view is LEADER for the
    term's epoch with `valid_until` > now (read after the ping arrived), with
    lease_ms = floor(min(valid_until - now, candidate_lease)); `granted_until` =
    max(granted_until, now + lease_ms) (registry-wide too, for C4).
  * C2: the engine's ack gate (`release`, engine/acks.py): after our entry was deleted by another
    client, its companion is deleted only once the candidate acknowledged the term
    (`ack(epoch)`) or `granted_until` has passed; the same for retiring an entry after any Lost.
  * C3: a candidate that goes away (`abandon`) keeps its entry until it had acknowledged, or
    until `granted_until` has passed; `resign` counts as the acknowledgement.

Threads. Callers (S2's servicer, any thread) call `ping`, `proclaim`, `ack`, `resign`, `abandon`:
they take `_lock` and never block on ZooKeeper. The engine's publish callback (`_on_view`) runs
under the engine's own lock, so nothing here calls into the engine while holding `_lock`
(lock order: engine, then candidacy). Blocking work runs on the registry's chores worker
(create and retire entries, proclaim, never_lead upkeep, timers) and its reaper worker (an
engine's `stop`). Events are emitted under `_lock`, in the order things happened; `on_event`
must not block and must not call back into the candidacy. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from electd.elections.observer import Observation, Observers, Reading
from electd.elections.worker import Worker
from electd.engine.clock import now as lease_clock
from electd.engine.engine import ElectionEngine
from electd.engine.lease import Lease
from electd.engine.model import MAX_VALUE_BYTES, LeaderInfo, NodeRecord, Role, View
from electd.engine.pool import SharedThreads
from electd.engine.store import (
    CoordinatorUnavailable,
    ElectionsSession,
    ElectionStore,
    ValueRefused,
    WatchEvent,
)

logger = logging.getLogger(__name__)

_NEVER = -1e18
_RETRY = 0.5


class LossReason(enum.Enum):
    RESIGNED = 1
    DELETED = 2
    PREEMPTED = 3
    ZOOKEEPER = 4
    SHUTDOWN = 5


@dataclass(frozen=True)
class CandidateSpec:
    candidate_id: str
    value: bytes = b""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    priority: int = 0
    never_lead: bool = False


@dataclass(frozen=True)
class Queued:
    znode: str
    position: int
    waiting_for: str
    leader: LeaderInfo | None
    nonce: int
    never_lead: bool = False


@dataclass(frozen=True)
class Leading:
    epoch: int
    nonce: int
    lease_ms: int
    znode: str
    value_revision: int


@dataclass(frozen=True)
class Lost:
    epoch: int
    reason: LossReason
    detail: str


@dataclass(frozen=True)
class Proclaimed:
    epoch: int
    value_revision: int


@dataclass(frozen=True)
class Refused:
    request: str
    reason: str


@dataclass(frozen=True)
class Ended:
    reason: LossReason
    detail: str = ""


CandidateEvent = Queued | Leading | Lost | Proclaimed | Refused | Ended


@dataclass
class Host:
    """What a candidacy needs of its registry (registry.py)."""

    session: ElectionsSession
    lease: Lease
    observers: Observers
    chores: Worker
    reaper: Worker
    engines: SharedThreads
    host_id: str
    version: str
    candidate_lease: float
    on_grant: Callable[[float], None]
    on_ended: Callable[[Candidacy], None]


class _Phase(enum.Enum):
    IDLE = "idle"  # not leading (or the entry is being replaced)
    CHECKING = "checking"  # the engine claims; priorities are being read
    LEADING = "leading"  # Leading was sent for `_epoch`
    ENDED = "ended"  # Lost was sent for `_epoch`


class Candidacy:
    """One candidate's campaign through this node (see the module comment)."""

    def __init__(
        self,
        host: Host,
        election: str,
        spec: CandidateSpec,
        on_event: Callable[[CandidateEvent], None],
    ) -> None:
        self._host = host
        self.election = election
        self.spec = spec
        self._on_event = on_event
        self._path = host.observers.path(election)
        self._lock = threading.RLock()
        self._value = spec.value
        self._gen = 0  # which engine's views count (bumped when one is retired)
        self._engine: ElectionEngine | None = None
        self._store: ElectionStore | None = None
        self._alive = False  # an engine exists that has not been stopped yet
        self._view: View | None = None
        self._phase = _Phase.IDLE
        self._epoch = 0  # the current (or last) term's epoch
        self._nonce, self._pinged = 0, False
        self._granted_until = _NEVER
        self._unacked: int | None = None  # a term Leading was sent for, not acknowledged
        self._retiring = False
        self._ending: tuple[LossReason, str, int] | None = None  # reason, detail, epoch
        self._pending: dict[str, Callable[[], None]] = {}  # companion deletes held (C2)
        self._revision = 0
        self._queued_key: tuple[object, ...] | None = None
        self._finished = False
        self._member = ""  # never_lead: our member znode
        self._observation: Observation = host.observers.observe(election, hook=self._on_reading)

    # ----- the candidate's requests (any thread; never block) --------------------------------

    def ping(self, nonce: int) -> Queued | Leading:
        """The answer to CampaignPing{nonce} (C1)."""
        with self._lock:
            self._nonce, self._pinged = nonce, True
            view = self._view
            if self._phase is _Phase.LEADING and not self._retiring and self._mine(view):
                assert view is not None
                if view.valid_until <= lease_clock():
                    self._end_term(LossReason.ZOOKEEPER, "the node's lease ran out")
                    return self._queued(nonce)
                ms = self._grant()
                return Leading(self._epoch, nonce, ms, view.own_znode, self._revision)
            return self._queued(nonce)

    def proclaim(self, epoch: int, value: bytes) -> None:
        with self._lock:
            refusal = ""
            if self.spec.never_lead:
                refusal = "a never_lead member never leads"
            elif len(value) > MAX_VALUE_BYTES:
                refusal = f"the value has {len(value)} bytes, more than {MAX_VALUE_BYTES}"
            elif self._phase is not _Phase.LEADING or self._retiring or epoch != self._epoch:
                refusal = f"epoch {epoch} is not the current term"
            if refusal or self._store is None or self._view is None:
                self._emit(Refused("proclaim", refusal or "no entry"))
                return
            job = functools.partial(
                self._write, self._gen, epoch, self._store, self._view.own_znode, value
            )
        self._host.chores.submit(job)

    def ack(self, epoch: int) -> None:
        with self._lock:
            if self._unacked == epoch and self._phase is not _Phase.LEADING:
                self._unacked = None
                self._host.chores.submit(self._proceed)
            elif self._unacked == epoch:
                self._emit(Refused("ack", f"epoch {epoch} has not ended: the candidate leads"))
            elif epoch > self._epoch or epoch <= 0:
                self._emit(Refused("ack", f"epoch {epoch} is not a term of this candidate"))
            # else: an older term, acknowledged or expired already

    def resign(self) -> None:
        """Ack and graceful leave; then Lost(RESIGNED) and Ended(RESIGNED)."""
        with self._lock:
            epoch = self._epoch if self._phase in (_Phase.LEADING, _Phase.ENDED) else 0
            self._finish_with(LossReason.RESIGNED, "the candidate resigned", epoch)
            self._unacked = None  # it stopped acting first

    def abandon(self) -> None:
        """The stream went away (C3): the entry goes once acknowledged or granted_until passed."""
        with self._lock:
            self._finish_with(LossReason.RESIGNED, "the candidate went away", -1)

    def shutdown(self) -> None:
        """The node shuts down: Lost(SHUTDOWN) if leading, then as `abandon`."""
        with self._lock:
            if self._phase is _Phase.LEADING and not self._retiring:
                self._end_term(LossReason.SHUTDOWN, "node is shutting down")
            self._finish_with(LossReason.SHUTDOWN, "node is shutting down", -1)

    # ----- what the registry reads -----------------------------------------------------------

    def granted_until(self) -> float:
        with self._lock:
            return self._granted_until

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self) -> None:
        self._host.chores.submit(self._begin)

    # ----- the engine's ack gate (C2; engine/acks.py) -------------------------------------

    def release(self, name: str, send: Callable[[], None]) -> None:
        with self._lock:
            ready = self._ready()
            if not ready:
                self._pending[name] = send
                self._host.chores.at(self._granted_until, self._proceed)
        if ready:
            send()

    # ----- under _lock ---------------------------------------------------------------------

    def _ready(self) -> bool:
        return self._unacked is None or lease_clock() >= self._granted_until

    def _mine(self, view: View | None) -> bool:
        return (
            view is not None
            and view.role is Role.LEADER
            and view.leader is not None
            and view.leader.member.znode == view.own_znode
            and view.leader.epoch == self._epoch
        )

    def _grant(self) -> int:
        view = self._view
        now = lease_clock()
        if view is None or view.valid_until <= now:
            return 0
        ms = int(min(view.valid_until - now, self._host.candidate_lease) * 1000)
        if ms <= 0:
            return 0
        until = now + ms / 1000.0
        if until > self._granted_until:
            self._granted_until = until
            self._host.on_grant(until)
        return ms

    def _emit(self, event: CandidateEvent) -> None:
        if self._finished:
            return
        if isinstance(event, Ended):
            self._finished = True
        try:
            self._on_event(event)
        except Exception:
            logger.exception("candidate=%s on_event raised (a bug)", self.spec.candidate_id)

    def _queued(self, nonce: int) -> Queued:
        view = self._view
        observed = self._observation.view().leader
        if self.spec.never_lead:
            return Queued(self._member, 0, "", observed, nonce, True)
        znode = view.own_znode if view is not None else ""
        reading = self._observation.reading()
        found = reading.position(znode) if reading is not None and znode else None
        if found is None:
            position, waiting = (1 if view is not None and view.watching else 0), ""
        else:
            position, ahead = found
            waiting = ahead.record.id if ahead is not None and ahead.record is not None else ""
        leader = view.leader if view is not None and view.leader is not None else observed
        return Queued(znode, position, waiting, leader, nonce, False)

    def _queued_changed(self) -> None:
        """Emit Queued when our place changed; only once the observer's reading shows our
        entry (the engine registers before the observer's next reading sees it, and a place
        guessed from the engine's view alone would be reported first, then corrected)."""
        view = self._view
        reading = self._observation.reading()
        if not self.spec.never_lead and (
            view is None
            or not view.own_znode
            or reading is None
            or reading.position(view.own_znode) is None
        ):
            return
        event = self._queued(0)
        epoch = event.leader.epoch if event.leader is not None else 0
        key = (event.znode, event.position, event.waiting_for, epoch)
        if key != self._queued_key and event.znode:
            self._queued_key = key
            self._emit(event)

    def _end_term(self, reason: LossReason, detail: str) -> None:
        """The term `_epoch` ends (Leading was sent): Lost, no more grants, retire the entry."""
        self._phase = _Phase.ENDED
        self._emit(Lost(self._epoch, reason, detail))
        self._retiring = True
        self._queued_key = None
        self._host.chores.submit(self._proceed)

    def _finish_with(self, reason: LossReason, detail: str, epoch: int) -> None:
        if self._ending is not None:
            return
        self._ending = (reason, detail, epoch)
        self._retiring = True
        if self._phase is _Phase.CHECKING:
            self._phase = _Phase.IDLE
        self._host.chores.submit(self._proceed)

    # ----- the engine's views (engine thread, under the engine's lock) --------------------

    def _on_view(self, gen: int, view: View) -> None:
        with self._lock:
            if gen != self._gen:
                return
            self._view = view
            mine = (
                view.role is Role.LEADER
                and view.leader is not None
                and view.leader.member.znode == view.own_znode
            )
            epoch = view.leader.epoch if mine and view.leader is not None else 0
            if self._phase in (_Phase.CHECKING, _Phase.LEADING) and epoch != self._epoch:
                if self._phase is _Phase.LEADING and not self._retiring:
                    self._end_term(_loss(view), view.reason)
                elif self._phase is _Phase.CHECKING:
                    self._phase = _Phase.IDLE  # nothing was sent for it
            if self._retiring or self._ending is not None:
                return
            if mine and self._phase is _Phase.IDLE:
                self._phase, self._epoch = _Phase.CHECKING, epoch
                # Priorities are checked on the observer's latest reading, without waiting for
                # another (the observers' one worker may be busy with a thousand elections):
                # an arrival it has not read yet preempts us through `_on_reading` as soon as
                # it is read, before or after our first grant.
                self._checked(gen, epoch, self._observation.reading())
            elif not mine and self._phase is _Phase.IDLE:
                self._queued_changed()

    # ----- readings of the election (observers' worker) ----------------------------------

    def _checked(self, gen: int, epoch: int, reading: Reading | None) -> None:
        """The read after the claim: yield to a higher priority, else tell Leading."""
        with self._lock:
            view = self._view
            if (
                gen != self._gen
                or self._phase is not _Phase.CHECKING
                or self._epoch != epoch
                or self._retiring
                or view is None
            ):
                return
            # No reading (the observer closed or could not read): lead; priorities are a
            # preference, checked again at every later reading (`_on_reading`).
            higher = reading.higher(view.own_znode, self.spec.priority) if reading else None
            if higher is not None and higher.record is not None:
                logger.info(
                    "candidate=%s election=%s yields before leading: %s has priority %d > %d",
                    self.spec.candidate_id,
                    self.election,
                    higher.record.id,
                    higher.priority,
                    self.spec.priority,
                )
                self._phase, self._retiring = _Phase.IDLE, True
                self._host.chores.submit(self._proceed)
                return
            self._phase = _Phase.LEADING
            self._unacked = epoch
            ms = self._grant() if self._pinged else 0
            nonce = self._nonce if self._pinged else 0
            self._emit(Leading(epoch, nonce, ms, view.own_znode, self._revision))

    def _on_reading(self, reading: Reading) -> None:
        with self._lock:
            if self.spec.never_lead or self._finished:
                return
            view = self._view
            if self._phase is _Phase.LEADING and not self._retiring and view is not None:
                higher = reading.higher(view.own_znode, self.spec.priority)
                if higher is not None and higher.record is not None:
                    self._end_term(
                        LossReason.PREEMPTED,
                        f"candidate {higher.record.id} of priority {higher.priority} waits",
                    )
            elif self._phase is _Phase.IDLE and not self._retiring:
                self._queued_changed()

    # ----- chores (the registry's chores worker) --------------------------------------------

    def _begin(self) -> None:
        if self.spec.never_lead:
            self._ensure_member()
        else:
            self._new_engine()

    def _new_engine(self) -> None:
        with self._lock:
            if self._ending is not None or self._alive:
                if self._ending is not None and not self._alive:
                    self._host.chores.submit(self._finish)
                return
            self._gen += 1
            gen = self._gen
            record = NodeRecord(
                self.spec.candidate_id,
                "",
                self.spec.labels,
                self._host.version,
                self._value,
                self.spec.priority,
                False,
                self._host.host_id,
            )
            store = self._host.session.election_store(self._path)
            engine = ElectionEngine(
                store,
                record,
                functools.partial(self._on_view, gen),
                lease=self._host.lease,
                ack_gate=self,
                threads=self._host.engines,
                election=self.election,
            )
            self._engine, self._store, self._alive = engine, store, True
            self._phase, self._view, self._retiring = _Phase.IDLE, None, False
            self._revision, self._queued_key = 0, None
        engine.start()

    def _proceed(self) -> None:
        """Send the companion deletes the gate allows; retire the entry once allowed."""
        with self._lock:
            ready = self._ready()
            sends = list(self._pending.values()) if ready else []
            if ready:
                self._pending.clear()
            engine = self._engine if self._retiring and ready else None
            if engine is not None:
                self._engine = None
                self._gen += 1  # its views no longer count
            elif self._retiring and not self._alive:
                self._host.chores.submit(self._finish if self._ending else self._new_engine)
            if not ready:
                self._host.chores.at(self._granted_until, self._proceed)
        for send in sends:
            send()
        if engine is not None:
            stopper = functools.partial(self._stop_engine, engine)
            engine.leave(lambda: self._host.reaper.submit(stopper))

    def _stop_engine(self, engine: ElectionEngine) -> None:  # reaper
        engine.stop()
        with self._lock:
            self._alive = False
            self._store = None
        self._host.chores.submit(self._finish if self._ending else self._new_engine)

    def _finish(self) -> None:
        with self._lock:
            if self._finished or self._ending is None:
                return
            reason, detail, epoch = self._ending
            if reason is LossReason.RESIGNED and epoch >= 0:
                self._emit(Lost(epoch, reason, detail))
        if self._member:
            self._drop_member()
        self._observation.close()
        with self._lock:
            self._emit(Ended(reason, detail))
        self._host.on_ended(self)

    def _write(self, gen: int, epoch: int, store: ElectionStore, znode: str, value: bytes) -> None:
        try:
            revision = store.write_value(znode, value)
        except (ValueRefused, CoordinatorUnavailable) as exc:
            with self._lock:
                self._emit(Refused("proclaim", str(exc)))
            return
        with self._lock:
            if gen == self._gen:
                self._revision = revision
            self._value = value  # the record of our next entry carries it
            self._emit(Proclaimed(epoch, revision))

    # ----- never_lead: a member znode, no entry ---------------------------------------------

    def _member_store(self) -> ElectionStore:
        if self._store is None:
            self._store = self._host.session.election_store(self._path)
            self._store.add_state_listener(self._on_member_state)
        return self._store

    def _on_member_state(self, _state: object) -> None:  # kazoo's thread
        if self._ending is None:
            self._host.chores.submit(self._ensure_member)

    def _on_member_watch(self, event: WatchEvent) -> None:  # kazoo's thread
        if event is not WatchEvent.SESSION and self._ending is None:
            self._host.chores.submit(self._ensure_member)

    def _ensure_member(self) -> None:
        """Our member znode exists in the current session (made again after an expiry or a
        foreign delete)."""
        with self._lock:
            if self._ending is not None:
                self._host.chores.submit(self._finish)
                return
        store = self._member_store()
        try:
            sid = store.session_id()
            if sid is None:
                return  # the reconnect's state callback brings us back
            if self._member:
                got = store.read(self._member, self._on_member_watch)
                if got is not None and got.session_id == sid:
                    return
            record = NodeRecord(
                self.spec.candidate_id,
                "",
                self.spec.labels,
                self._host.version,
                self._value,
                self.spec.priority,
                True,
                self._host.host_id,
            )
            made = store.add_member(uuid.uuid4().hex, record.encode())
            if made is None or made[1] != sid:
                raise CoordinatorUnavailable("the member znode is not ours; trying again")
            store.read(made[0], self._on_member_watch)
        except CoordinatorUnavailable as exc:
            logger.info("candidate=%s member znode: %s; retrying", self.spec.candidate_id, exc)
            self._host.chores.at(lease_clock() + _RETRY, self._ensure_member)
            return
        with self._lock:
            self._member = made[0]
            self._emit(self._queued(0))

    def _drop_member(self) -> None:
        store = self._member_store()
        try:
            store.remove_member(self._member)
        except CoordinatorUnavailable as exc:
            logger.warning(
                "candidate=%s could not delete %s: %s", self.spec.candidate_id, self._member, exc
            )
        store.close()


def _loss(view: View) -> LossReason:
    if view.role is Role.DISCONNECTED:
        return LossReason.ZOOKEEPER
    if view.role is Role.STOPPED:
        return LossReason.SHUTDOWN
    if "own znode" in view.reason or "companion" in view.reason:
        return LossReason.DELETED
    return LossReason.ZOOKEEPER


__all__ = [
    "Candidacy",
    "CandidateEvent",
    "CandidateSpec",
    "Ended",
    "Leading",
    "LossReason",
    "Lost",
    "Proclaimed",
    "Queued",
    "Refused",
]
