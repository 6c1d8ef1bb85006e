"""The election engine: one node's part in the ephemeral-sequential / watch-your-predecessor
recipe, decided through a `Store` (engine/store.py). Imports neither kazoo nor grpc.

Threads. Store callbacks (watches, connection states) arrive on the store's threads; they only
flip flags under `_lock` and queue a wake-up, never block. All store calls of the election run
on the engine's own worker thread, which coalesces queued wake-ups into one `_reconcile`.
`members()` may be called from any thread (it only reads). Every decision is published as an
immutable `View` through the `publish` callback, from whichever thread made it.

Invariants:
  * The leader is the live, valid entry with the lowest sequence. This node claims it only after
    checking that the entry's ephemeralOwner is its current session.
  * The epoch is the leader entry's czxid, so it strictly increases with every change of leader.
  * The election decision watches only the predecessor; the leader entry is watched too (one
    notification per leader change per node) so every node knows the leader; a join wakes
    nobody, a non-leader leaving wakes only its successor.
  * SUSPENDED or LOST: stop vouching for any leader at once. A local lease (the session's read
    timeout, counted from the send time of the last successful round trip) covers the silent
    cases (the process was paused), where no event arrives.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from electd.engine.model import (
    LeaderInfo,
    Member,
    MemberView,
    NodeRecord,
    RecordError,
    Role,
    View,
)
from electd.engine.store import (
    ConnState,
    CoordinatorUnavailable,
    Entry,
    Store,
    Stored,
    WatchEvent,
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_WAKE, _TICK, _STOP = "wake", "tick", "stop"
# Retry delays after a failed round of work (ZooKeeper trouble or a bug), in seconds.
_BACKOFF_START, _BACKOFF_MAX = 0.05, 2.0


@dataclass
class EngineStats:
    """Counters a test or a metrics exporter can read (plain ints: racy reads are fine)."""

    predecessor_events: int = 0
    leader_events: int = 0
    own_events: int = 0
    reconciles: int = 0
    registrations: int = 0


class ElectionEngine:
    def __init__(
        self,
        store: Store,
        record: NodeRecord,
        publish: Callable[[View], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._record = record
        self._data = record.encode()
        self._publish_cb = publish
        self._clock = clock
        self._wall = wall
        lease = store.session_timeout() * 2.0 / 3.0  # kazoo's read timeout for the session
        self._lease = lease
        self._heartbeat = lease / 3.0
        self.stats = EngineStats()

        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="election-engine", daemon=True)
        # Guarded by _lock: connection facts and the published view.
        self._connected = False
        self._conn_gen = 0
        self._conn_reason = "connecting to ZooKeeper"
        self._version = 0
        self._view = View(0, record.id, Role.JOINING, None, self._conn_reason, "", "", 0.0)
        self._last_ok = -1e18  # monotonic send time of the last successful round trip
        # Worker-thread only.
        self._own: Entry | None = None
        self._own_sid: int | None = None
        self._pending: tuple[int, str, bool] | None = None  # (session, token, tried)
        self._leader: LeaderInfo | None = None
        self._max_epoch = 0
        self._stopping = False
        # Any thread, guarded by _cache_lock: decoded records by entry name (data never changes).
        self._cache_lock = threading.Lock()
        self._cache: dict[str, Member | None] = {}

    # ----- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._store.add_state_listener(self._on_state)
        if self._store.session_id() is not None:
            self._on_state(ConnState.CONNECTED)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the election: delete our entry (the successor takes over at once), end the
        session, publish a STOPPED view. Safe to call more than once."""
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
                if self._view.role is Role.LEADER and not self._stopping:
                    logger.warning(
                        "node=%s stepping down at once: %s", self._record.id, self._conn_reason
                    )
                self._publish_locked(Role.DISCONNECTED, None, self._conn_reason, "", "")
        if not self._stopping:
            logger.info("node=%s ZooKeeper connection %s", self._record.id, state.value)
        self._queue.put(_WAKE)

    def _on_predecessor(self, event: WatchEvent) -> None:
        self.stats.predecessor_events += 1
        self._queue.put(_WAKE)

    def _on_leader(self, event: WatchEvent) -> None:
        self.stats.leader_events += 1
        self._queue.put(_WAKE)

    def _on_own(self, event: WatchEvent) -> None:
        self.stats.own_events += 1
        if event is WatchEvent.GONE and not self._stopping:
            with self._lock:
                if self._view.role is Role.LEADER:
                    logger.warning("node=%s own znode vanished: stepping down", self._record.id)
                    self._publish_locked(
                        Role.JOINING, None, "own znode vanished; rejoining", "", ""
                    )
        self._queue.put(_WAKE)

    # ----- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        delay = _BACKOFF_START
        retry_at: float | None = self._clock()
        while True:
            now = self._clock()
            timeout = self._heartbeat if retry_at is None else max(0.0, retry_at - now)
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
                if _WAKE in events or retry_at is not None:
                    self._reconcile()
                else:
                    self._renew()
                retry_at, delay = None, _BACKOFF_START
            except CoordinatorUnavailable as exc:
                logger.info("node=%s ZooKeeper unavailable (%s); retrying", self._record.id, exc)
                retry_at, delay = self._clock() + delay, min(delay * 2, _BACKOFF_MAX)
            except Exception:
                logger.exception("node=%s bug in the election engine; retrying", self._record.id)
                retry_at, delay = self._clock() + delay, min(delay * 2, _BACKOFF_MAX)
        self._shutdown()

    def _timed(self, fn: Callable[[], _T]) -> _T:
        """Run one store round trip; on success it renews the lease from its send time."""
        sent = self._clock()
        result = fn()
        with self._lock:
            self._last_ok = max(self._last_ok, sent)
        return result

    def _renew(self) -> None:
        """Heartbeat: one read of our own entry renews the lease and proves it still exists."""
        own = self._own
        with self._lock:
            if not self._connected or own is None:
                return
            gen = self._conn_gen
        stored = self._timed(lambda: self._store.read(own.name, self._on_own))
        if stored is None or stored.session_id != self._own_sid:
            self._reconcile()
            return
        with self._lock:
            if gen == self._conn_gen:
                v = self._view
                self._publish_locked(v.role, v.leader, v.reason, v.own_znode, v.watching)

    def _reconcile(self) -> None:
        self.stats.reconciles += 1
        with self._lock:
            if not self._connected:
                self._publish_locked(Role.DISCONNECTED, None, self._conn_reason, "", "")
                return
            gen = self._conn_gen
        sid = self._store.session_id()
        if sid is None:
            raise CoordinatorUnavailable("no session")
        for _ in range(16):  # each pass either decides or learned that something moved
            if self._own is None or self._own_sid != sid:
                self._register(sid)
            decided = self._decide(sid, gen)
            if decided:
                return
        raise CoordinatorUnavailable("the election kept changing under us; will retry")

    def _register(self, sid: int) -> None:
        if self._pending is None or self._pending[0] != sid:
            self._pending = (sid, uuid.uuid4().hex, False)
        _, token, tried = self._pending
        self._pending = (sid, token, True)
        entry = self._timed(lambda: self._store.register(token, self._data, maybe_exists=tried))
        self._own, self._own_sid, self._pending = entry, sid, None
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
        entries = self._timed(self._store.entries)
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
        # The leader: the lowest entry whose data is a valid record (foreign data is skipped).
        leader: Member | None = None
        for entry in entries[: mine + 1]:
            watch = self._on_own if entry.name == own.name else self._on_leader
            stored = self._timed(lambda e=entry, w=watch: self._store.read(e.name, w))  # type: ignore[misc]
            if stored is None:
                return False  # it went away between the listing and the read
            member = self._to_member(entry, stored, own)
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
        else:
            role = Role.FOLLOWER
            # Watch only the predecessor: the nearest valid entry below ours.
            for entry in reversed(entries[:mine]):
                if entry.name == leader.znode:
                    watching = entry.name  # already watched by the leader read above
                    break
                stored = self._timed(
                    lambda e=entry: self._store.read(e.name, self._on_predecessor)  # type: ignore[misc]
                )
                if stored is None:
                    return False  # the predecessor is already gone: decide again at once
                if self._to_member(entry, stored, own) is not None:
                    watching = entry.name
                    break
            if self._timed(lambda: self._store.read(own.name, self._on_own)) is None:
                self._own = None
                return False
        info = self._leader_info(leader)
        with self._lock:
            if gen != self._conn_gen:
                return True  # the connection moved on; the state callback already published
            before = self._view
            self._publish_locked(role, info, "", own.name, watching)
        self._log_transition(before, role, info, watching)
        return True

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
        self._stopping = True
        own = self._own
        if own is not None and self._connected:
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
        entries = self._store.entries()
        own = self._own
        out: list[MemberView] = []
        seen: set[str] = set()
        for entry in entries:
            seen.add(entry.name)
            with self._cache_lock:
                cached = self._cache.get(entry.name, False)
            if cached is False:
                stored = self._store.read(entry.name)
                if stored is None:
                    continue
                cached = self._to_member(entry, stored, own)
                with self._cache_lock:
                    self._cache[entry.name] = cached
            if isinstance(cached, Member):
                prev = out[-1].member.znode if out else ""
                out.append(MemberView(cached, is_leader=not out, watches=prev))
        with self._cache_lock:
            for name in [n for n in self._cache if n not in seen]:
                del self._cache[name]
        return out

    def _to_member(self, entry: Entry, stored: Stored, own: Entry | None) -> Member | None:
        if own is not None and entry.name == own.name:
            record = self._record  # our own record is known; never trust a rewrite of it
        else:
            try:
                record = NodeRecord.decode(stored.data)
            except RecordError as exc:
                self._warn_corrupt(entry.name, str(exc))
                return None
        return Member(
            entry.name, entry.sequence, record, stored.session_id, stored.czxid, stored.created_ms
        )

    def _warn_corrupt(self, name: str, why: str) -> None:
        with self._cache_lock:
            if name in self._cache:
                return
            self._cache[name] = None
        logger.warning("ignoring znode %s: its data is not an electd node record (%s)", name, why)

    # ----- publishing --------------------------------------------------------------------

    def _publish_locked(
        self, role: Role, leader: LeaderInfo | None, reason: str, own: str, watching: str
    ) -> None:
        self._version += 1
        self._view = View(
            self._version,
            self._record.id,
            role,
            leader,
            reason,
            own,
            watching,
            self._last_ok + self._lease,
        )
        self._publish_cb(self._view)
