"""The election engine: one node's part in the ephemeral-sequential / watch-your-predecessor
recipe, decided through a `Store` (engine/store.py). Owns the decision (the full pass
`_reconcile` / `_decide` and the fast pass `_fast` / `_probe`), the engine's lifecycle, the
store's callbacks and the published `View`. The lease of the session is a `Lease` (lease.py),
shared by every engine on the session; member records and their cache are `Members`
(members.py). Imports neither kazoo nor grpc.

Threads. Store callbacks (watches, connection states) arrive on the store's threads; they only
flip flags under `_lock`, publish and queue a wake-up, never block. All store calls of the
election run on the engine's own worker thread, which coalesces queued wake-ups into one pass:
`_fast` when the only news are watched entries below ours that went away, else a full
`_reconcile`. `leave()`, `view()` and `members()` may be called from any thread. Every decision
is published as an immutable `View` through the `publish` callback, from whichever thread made
it, under `_lock`. Which thread touches which field is noted in `__init__`.

Invariants:
  * The leader is the live, valid entry with the lowest sequence. This node claims it only after
    checking that the entry's ephemeralOwner is its current session.
  * The epoch is the leader entry's czxid, so it strictly increases with every change of leader.
  * The election decision watches only the predecessor; the leader entry is watched too (one
    notification per leader change per node) so every node knows the leader; a join wakes
    nobody, a non-leader leaving wakes only its successor.
  * Entries below ours can only go away: a new entry always gets a higher sequence than every
    live one, and the election path cannot be deleted while our ephemeral entry is in it. So
    after a full pass has listed the entries below ours, a later pass may decide from that
    list (a superset of the live ones) without listing again, and may trust an entry whose
    watch is still set (ZooKeeper delivers a session's events in order, so an entry whose
    deletion we have not heard of existed when the event we are handling happened). A graceful
    leader change then costs the successor and the node right behind it no round trip at all,
    and any other node one read, however many members there are.
  * SUSPENDED or LOST: stop vouching for any leader at once. The lease covers the silent cases
    (the process was paused, or its ZooKeeper server lost its quorum but still answers reads),
    where no event arrives: every view is valid only until the lease runs out, every full pass
    and every heartbeat renews it first, and the fast pass runs only while it is fresh.
  * Once stopping (`leave` or `stop`), the engine never decides, registers or vouches again.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from electd.engine.clock import now as lease_clock
from electd.engine.lease import Lease
from electd.engine.members import Members
from electd.engine.model import LeaderInfo, Member, MemberView, NodeRecord, Role, View
from electd.engine.store import ConnState, CoordinatorUnavailable, Entry, Store, Stored, WatchEvent

logger = logging.getLogger(__name__)

_WAKE, _TICK, _STOP = "wake", "tick", "stop"
# What a watched entry was to us when its watch was set (for the stats).
_OWN, _LEADER, _PREDECESSOR = "own", "leader", "predecessor"
# Retry delays after a failed round of work (ZooKeeper trouble or a bug), in seconds.
_BACKOFF_START, _BACKOFF_MAX = 0.05, 2.0


@dataclass
class EngineStats:
    """Counters a test or a metrics exporter can read from any thread (plain ints: racy reads
    are fine). The *_events are counted on the store's threads, the rest on the worker."""

    predecessor_events: int = 0
    leader_events: int = 0
    own_events: int = 0
    reconciles: int = 0
    registrations: int = 0


class _Watch:
    """The engine's watch on one entry: reports the entry's name with the event. Equal per
    (engine, entry), so that a store keeping one registration per callback and znode never
    registers the same watch twice."""

    __slots__ = ("_engine", "name")

    def __init__(self, engine: ElectionEngine, name: str) -> None:
        self._engine = engine
        self.name = name

    def __call__(self, event: WatchEvent) -> None:
        self._engine._on_watch(self.name, event)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Watch) and other._engine is self._engine and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((id(self._engine), self.name))


class ElectionEngine:
    def __init__(
        self,
        store: Store,
        record: NodeRecord,
        publish: Callable[[View], None],
        clock: Callable[[], float] = lease_clock,
        wall: Callable[[], float] = time.time,
        lease: Lease | None = None,
    ) -> None:
        """`lease`: the lease of `store`'s session, shared by every engine on that session (one
        per store, on the same clock as `clock`: the lease clock, engine/clock.py); by default
        the engine makes its own."""
        # Set here, never rebound: safe to read from any thread.
        self._store = store
        self._record = record
        self._data = record.encode()
        self._publish_cb = publish
        self._clock = clock
        self._wall = wall
        self._lease = lease if lease is not None else Lease(store, clock)
        self._members = Members(store, record)
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="election-engine", daemon=True)

        # Guarded by _lock, read and written from any thread (the store's callbacks, the worker,
        # the caller of `leave`): the connection facts and the published view. The worker also
        # reads `_connected` without the lock in `_shutdown` (a stale value costs one failed
        # delete at most).
        self._connected = False
        self._conn_gen = 0
        self._conn_reason = "connecting to ZooKeeper"
        self._version = 0
        self._view = View(0, record.id, Role.JOINING, None, self._conn_reason, "", "", 0.0)
        # Set (never cleared) under _lock by `leave` (any thread) or `_shutdown` (worker). Read
        # under _lock where it decides (`_conclude`, `_renew`, the callbacks); read without it
        # by the worker and `_on_state`'s log line only to skip work early.
        self._stopping = False
        # Guarded by _lock: entries whose watch is set and has not fired yet (name -> _OWN /
        # _LEADER / _PREDECESSOR), set by the worker and popped by the watch callbacks; and the
        # watch events the worker has not looked at yet, appended by the watch callbacks.
        self._armed: dict[str, str] = {}
        self._events: list[tuple[str, WatchEvent]] = []
        # Our entry: written by the worker only, read without the lock by the worker, `leave`
        # and `members` (any thread; one reference read, so either the old entry or the new).
        self._own: Entry | None = None
        # Leaving: `leave` (any thread, after setting _stopping) sets `_leaving` to the entry it
        # sent the delete of; the delete's callback (any thread) sets `_left` once it succeeded,
        # then `_left_done`. `_shutdown` (worker) reads `_leaving` without the lock and, if it
        # is set, waits for `_left_done` before reading `_left`.
        self._leaving = ""
        self._left = ""
        self._left_done = threading.Event()
        # Worker-thread only: the owner of `_own` (its ephemeralOwner), the registration in
        # progress (session, token, tried), the leader last published and the highest epoch
        # seen; and what the last full pass learned, for `_fast`: the entries below ours (lowest
        # first; a superset of the live ones), the members read so far (None: not a valid
        # record), our own member, and the connection generation that pass decided in (-1:
        # none).
        self._own_sid: int | None = None
        self._pending: tuple[int, str, bool] | None = None
        self._leader: LeaderInfo | None = None
        self._max_epoch = 0
        self._chain: list[Entry] = []
        self._seen: dict[str, Member | None] = {}
        self._own_member: Member | None = None
        self._decided_gen = -1

    # ----- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._store.add_state_listener(self._on_state)
        if self._store.session_id() is not None:
            self._on_state(ConnState.CONNECTED)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the election (if `leave` has not already), end the session, publish a STOPPED
        view. Blocks until the worker is done; safe to call more than once."""
        self.leave()
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():  # stuck in a store call: closing the session unblocks it
            logger.warning(
                "node=%s engine did not stop in %.0fs; closing", self._record.id, timeout
            )
            self._store.close()
            self._thread.join(timeout)

    def view(self) -> View:
        with self._lock:
            return self._view

    def leave(self, done: Callable[[], None] | None = None) -> None:
        """Step down and send the delete of our entry, without waiting for the reply: callable
        from any thread, including the asyncio loop's signal handler, so that the successor's
        watch fires as early as possible (its failover time starts at our SIGTERM). `done`
        runs once the reply is in, or at once if this call sent nothing (nothing to leave, or
        leaving already); on any thread, and it must not block. The STOPPED view is published
        before the delete is sent, because the successor may claim the moment it is deleted
        (with no round trip): two nodes must never both vouch for themselves. From here on no
        pass decides or registers again; `_shutdown` waits for the delete's reply (deleting
        again if it failed) and ends the session."""
        own = self._own
        with self._lock:
            if self._stopping or own is None or not self._connected:
                leaving = False
            else:
                leaving = self._stopping = True
                self._publish_locked(Role.STOPPED, None, "node is shutting down", "", "")
        if own is None or not leaving:
            if done is not None:
                done()
            return
        self._leaving = own.name
        self._store.remove_nowait(own.name, functools.partial(self._on_left, own.name, done))

    def _on_left(self, name: str, done: Callable[[], None] | None, error: Exception | None) -> None:
        if error is None:
            self._left = name
            logger.info("node=%s left the election (deleted %s)", self._record.id, name)
        else:
            logger.warning(
                "node=%s could not delete %s: %s; trying again", self._record.id, name, error
            )
        self._left_done.set()
        if done is not None:
            done()

    # ----- callbacks from the store's threads: flag, publish, wake; never block ------------

    def _on_state(self, state: ConnState) -> None:
        with self._lock:
            self._conn_gen += 1
            if state is ConnState.CONNECTED:
                self._connected = True
            else:
                self._connected = False
                self._conn_reason = (
                    "disconnected from ZooKeeper"
                    if state is ConnState.SUSPENDED
                    else "ZooKeeper session expired; rejoining"
                )
                if not self._stopping:  # a node that is stopping already published STOPPED
                    if self._view.role is Role.LEADER:
                        logger.warning(
                            "node=%s stepping down at once: %s", self._record.id, self._conn_reason
                        )
                    self._publish_locked(Role.DISCONNECTED, None, self._conn_reason, "", "")
        if not self._stopping:
            logger.info("node=%s ZooKeeper connection %s", self._record.id, state.value)
        self._queue.put(_WAKE)

    def _on_watch(self, name: str, event: WatchEvent) -> None:
        with self._lock:
            role = self._armed.pop(name, _PREDECESSOR)
            self._events.append((name, event))
            if (
                role == _OWN
                and event is WatchEvent.GONE
                and not self._stopping
                and self._view.role is Role.LEADER
            ):
                logger.warning("node=%s own znode vanished: stepping down", self._record.id)
                self._publish_locked(Role.JOINING, None, "own znode vanished; rejoining", "", "")
        if role == _OWN:
            self.stats.own_events += 1
        elif role == _LEADER:
            self.stats.leader_events += 1
        else:
            self.stats.predecessor_events += 1
        self._queue.put(_WAKE)

    # ----- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        delay = _BACKOFF_START
        retry_at: float | None = self._clock()
        while True:
            now = self._clock()
            timeout = self._heartbeat() if retry_at is None else max(0.0, retry_at - now)
            try:
                events = {self._queue.get(timeout=timeout)}
            except queue.Empty:
                events = {_TICK if retry_at is None else _WAKE}
            while True:  # coalesce everything already queued into one round of work
                try:
                    events.add(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in events:
                break
            try:
                if retry_at is not None:
                    self._reconcile()
                elif _WAKE in events:
                    if not self._fast():
                        self._reconcile()
                else:
                    self._renew()
                retry_at, delay = None, _BACKOFF_START
            except CoordinatorUnavailable as exc:
                self._decided_gen = -1
                logger.info("node=%s ZooKeeper unavailable (%s); retrying", self._record.id, exc)
                retry_at, delay = self._clock() + delay, min(delay * 2, _BACKOFF_MAX)
            except Exception:
                self._decided_gen = -1
                logger.exception("node=%s bug in the election engine; retrying", self._record.id)
                retry_at, delay = self._clock() + delay, min(delay * 2, _BACKOFF_MAX)
        self._shutdown()

    def _heartbeat(self) -> float:
        """How long the worker waits for news before it renews the lease on its own."""
        return self._lease.heartbeat()

    def _lease_fresh(self) -> bool:
        """True while more than one heartbeat interval of the lease is left."""
        return self._lease.remaining() > self._heartbeat()

    def _read(self, name: str, role: str) -> Stored | None:
        """Read an entry and set our watch on it (one round trip). The watch counts as set from
        before the call: an event racing the reply then only makes us look again."""
        with self._lock:
            self._armed[name] = role
        stored = None
        try:
            stored = self._store.read(name, _Watch(self, name))
        finally:
            if stored is None:  # gone, or the call failed: no watch we can count on
                with self._lock:
                    self._armed.pop(name, None)
        return stored

    def _renew(self) -> None:
        """Heartbeat: a sync renews the lease (it proves the syncs sent a proof gap or more
        before it, see lease.py; a read renews nothing), one read of our own entry proves that
        the entry still exists in our session, and the view is published again with the
        lease's new end."""
        own = self._own
        with self._lock:
            if not self._connected or own is None:
                return
            gen = self._conn_gen
        self._lease.renew()
        stored = self._read(own.name, _OWN)
        if stored is None or stored.session_id != self._own_sid:
            self._reconcile()
            return
        with self._lock:
            if gen == self._conn_gen and not self._stopping:
                v = self._view
                self._publish_locked(v.role, v.leader, v.reason, v.own_znode, v.watching)

    def _reconcile(self) -> None:
        if self._stopping:
            return  # leaving: never decide (or register) again
        self.stats.reconciles += 1
        self._decided_gen = -1
        with self._lock:
            self._events.clear()  # the listing below supersedes them
            if not self._connected:
                self._publish_locked(Role.DISCONNECTED, None, self._conn_reason, "", "")
                return
            gen = self._conn_gen
        self._lease.renew()
        for _ in range(16):  # each pass either decides or learned that something moved
            if self._stopping:
                return  # leaving: never register again
            # The session is read afresh on every pass: the store reconnects on its own, so a
            # call of this pass may already have run in a new session (after an expiry).
            sid = self._store.session_id()
            if sid is None:
                raise CoordinatorUnavailable("no session")
            if self._own is None or self._own_sid != sid:
                self._register(sid)
                continue  # decide in the session that owns the entry, read again
            decided = self._decide(sid, gen)
            if decided:
                return
        raise CoordinatorUnavailable("the election kept changing under us; will retry")

    def _register(self, sid: int) -> None:
        """Create our entry (one per session: a retry in the same session reuses the token and
        finds an entry whose create reply was lost). `_own_sid` is the entry's real owner,
        which differs from `sid` only if the store changed sessions during the create."""
        if self._pending is None or self._pending[0] != sid:
            self._pending = (sid, uuid.uuid4().hex, False)
        _, token, tried = self._pending
        self._pending = (sid, token, True)
        entry, owner = self._store.register(token, self._data, maybe_exists=tried)
        self._own, self._own_sid, self._pending = entry, owner, None
        self.stats.registrations += 1
        logger.info(
            "node=%s joined the election as %s (sequence %d)",
            self._record.id,
            entry.name,
            entry.sequence,
        )

    def _decide(self, sid: int, gen: int) -> bool:
        """One pass of the recipe. Returns False when it must run again at once."""
        own = self._own
        assert own is not None
        entries = self._store.entries()
        try:
            mine = next(i for i, e in enumerate(entries) if e.name == own.name)
        except StopIteration:
            logger.warning(
                "node=%s own znode %s vanished while the session lives; registering again",
                self._record.id,
                own.name,
            )
            self._own = None
            return False
        self._chain = entries[:mine]
        live = {e.name for e in entries}
        self._seen = {k: v for k, v in self._seen.items() if k in live}
        # The leader: the lowest entry whose data is a valid record (foreign data is skipped).
        leader: Member | None = None
        for entry in entries[: mine + 1]:
            stored = self._read(entry.name, _OWN if entry.name == own.name else _LEADER)
            if stored is None:
                return False  # it went away between the listing and the read
            member = self._members.member(entry, stored, own)
            self._seen[entry.name] = member
            if member is not None:
                leader = member
                break
        assert leader is not None  # our own entry always counts
        watching = ""
        if leader.znode == own.name:
            if leader.session_id != sid:
                logger.warning(
                    "node=%s lowest znode %s is owned by session 0x%x, not ours (0x%x); "
                    "registering again",
                    self._record.id,
                    own.name,
                    leader.session_id,
                    sid,
                )
                self._own = None
                return False
            role = Role.LEADER
            self._own_member = leader
        else:
            role = Role.FOLLOWER
            # Watch only the predecessor: the nearest valid entry below ours.
            for entry in reversed(entries[:mine]):
                if entry.name == leader.znode:
                    watching = entry.name  # already watched by the leader read above
                    break
                stored = self._read(entry.name, _PREDECESSOR)
                if stored is None:
                    return False  # the predecessor is already gone: decide again at once
                member = self._members.member(entry, stored, own)
                self._seen[entry.name] = member
                if member is not None:
                    watching = entry.name
                    break
            stored = self._read(own.name, _OWN)
            if stored is None:
                self._own = None
                return False
            self._own_member = self._members.member(own, stored, own)
        return self._conclude(gen, role, leader, watching)

    def _conclude(self, gen: int, role: Role, leader: Member, watching: str) -> bool:
        own = self._own
        assert own is not None
        info = self._leader_info(leader)
        with self._lock:
            if gen != self._conn_gen:
                return True  # the connection moved on; the state callback already published
            if self._stopping:
                return True  # leaving: STOPPED is published; never vouch again
            self._decided_gen = gen
            before = self._view
            self._publish_locked(role, info, "", own.name, watching)
        self._log_transition(before, role, info, watching)
        return True

    def _fast(self) -> bool:
        """Decide again without listing, when the only news since the last full pass are
        watched entries below ours that went away (see the module's invariants). Returns False
        when a full pass is needed instead."""
        own, own_member = self._own, self._own_member
        if self._stopping:
            return True  # leaving: nothing to decide
        with self._lock:
            events, self._events = self._events, []
            gen = self._conn_gen
            usable = (
                bool(events)
                and self._connected
                and gen == self._decided_gen
                and own is not None
                and own_member is not None
                and self._armed.get(own.name) == _OWN
                and all(ev is WatchEvent.GONE and name != own.name for name, ev in events)
            )
            gone = {name for name, _ in events}
            for name in gone:
                self._armed.pop(name, None)
        if not usable or not self._lease_fresh():
            return False
        assert own is not None and own_member is not None
        sid = self._store.session_id()
        if sid is None or sid != self._own_sid or own_member.session_id != sid:
            return False
        self.stats.reconciles += 1
        self._chain = [e for e in self._chain if e.name not in gone]
        for name in gone:
            self._seen.pop(name, None)
        leader: Member | None = None
        for entry in list(self._chain):
            member = self._probe(entry, _LEADER)
            if member is not None:
                leader = member
                break
        watching = ""
        if leader is None:
            role, leader = Role.LEADER, own_member
        else:
            role = Role.FOLLOWER
            for entry in reversed(self._chain):
                if entry.name == leader.znode:
                    watching = entry.name
                    break
                if self._probe(entry, _PREDECESSOR) is not None:
                    watching = entry.name
                    break
        return self._conclude(gen, role, leader, watching)

    def _probe(self, entry: Entry, role: str) -> Member | None:
        """The member of an entry of the chain if it is live and valid, else None. An entry
        with a watch set and a known valid record needs no round trip; anything else is read
        (setting our watch); an entry found gone is dropped from the chain."""
        with self._lock:
            armed = entry.name in self._armed
            if armed and role == _LEADER:
                self._armed[entry.name] = _LEADER
        known = self._seen.get(entry.name)
        if armed and known is not None:
            return known
        stored = self._read(entry.name, role)
        if stored is None:
            self._chain.remove(entry)
            self._seen.pop(entry.name, None)
            return None
        member = self._members.member(entry, stored, self._own)
        self._seen[entry.name] = member
        return member

    def _leader_info(self, leader: Member) -> LeaderInfo:
        prev = self._leader
        if prev is not None and prev.epoch == leader.czxid:
            return prev
        if leader.czxid < self._max_epoch:
            logger.error(
                "node=%s leader epoch went backwards (%d < %d): was ZooKeeper's data reset?",
                self._record.id,
                leader.czxid,
                self._max_epoch,
            )
        self._max_epoch = max(self._max_epoch, leader.czxid)
        self._leader = LeaderInfo(leader, leader.czxid, self._wall())
        return self._leader

    def _log_transition(self, before: View, role: Role, info: LeaderInfo, watching: str) -> None:
        epoch = info.epoch
        if role is Role.LEADER and (before.role is not Role.LEADER or before.leader != info):
            logger.info(
                "I am a new leader: node=%s epoch=%d znode=%s (%s -> LEADER)",
                self._record.id,
                epoch,
                info.member.znode,
                before.role.value,
            )
        elif before.role is not role or before.leader != info or before.watching != watching:
            logger.info(
                "node=%s epoch=%d %s -> %s leader=%s watching=%s",
                self._record.id,
                epoch,
                before.role.value,
                role.value,
                info.member.record.id,
                watching or "-",
            )

    def _shutdown(self) -> None:
        with self._lock:  # step down before the entry goes (see `leave`)
            self._stopping = True
            self._publish_locked(Role.STOPPED, None, "node is shutting down", "", "")
        if self._leaving:
            self._left_done.wait(self._store.session_timeout())
        own = self._own
        if own is not None and self._connected and own.name != self._left:
            try:
                self._store.remove(own.name)
                logger.info("node=%s left the election (deleted %s)", self._record.id, own.name)
            except CoordinatorUnavailable as exc:
                logger.warning("node=%s could not delete %s: %s", self._record.id, own.name, exc)
        self._own = None
        self._store.close()
        with self._lock:
            self._connected = False
            self._publish_locked(Role.STOPPED, None, "node is shutting down", "", "")

    # ----- members (any thread) ----------------------------------------------------------

    def members(self) -> list[MemberView]:
        """Every live member in election order, read from the store now."""
        return self._members.current(self._own)

    # ----- publishing --------------------------------------------------------------------

    def _publish_locked(
        self, role: Role, leader: LeaderInfo | None, reason: str, own: str, watching: str
    ) -> None:
        """Under `_lock`: publish the next view, believable until the lease runs out."""
        self._version += 1
        self._view = View(
            self._version,
            self._record.id,
            role,
            leader,
            reason,
            own,
            watching,
            self._lease.valid_until(),
        )
        self._publish_cb(self._view)
