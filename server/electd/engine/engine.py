"""The election engine: one node's part in the ephemeral-sequential / watch-your-predecessor
recipe, decided through a `Store` (engine/store.py) by the rule of order.py. Owns the engine's
lifecycle, the store's callbacks, the worker loop and the published `View`; the decision
itself (full and fast pass) is `Passes` (passes.py). The lease of the session is a `Lease`
(lease.py), shared by every engine on the session; member records are `Members` (members.py);
watches are a `WatchBook` (watches.py). Imports neither kazoo nor grpc.

Threads. Store callbacks (watches, connection states) arrive on the store's threads; they only
flip flags under `_lock`, publish and queue a wake-up in the `mailbox`, never block. All store
calls of the election run in the engine's rounds, which coalesce the queued wake-ups into one
pass: on a thread of the engine's own, or on threads shared with other engines (pool.py); either
way one round at a time, so "the worker" below means whichever thread runs the round.
`leave()`, `view()` and `members()` may be called from any thread. Every decision is published
as an immutable `View` through the `publish` callback, from whichever thread made it, under
`_lock`. Which thread touches which field is noted in `__init__`.

Invariants:
  * The leader is the oldest entry that takes part (order.py), if it is valid. This node
    claims it only after checking that the entry's ephemeralOwner is its current session and
    that its data was never rewritten.
  * The epoch is the leader entry's czxid, so it strictly increases with every change of leader.
  * SUSPENDED or LOST, our own entry gone or rewritten: stop vouching at once (before anything
    else happens, in the callback that tells us). The lease covers the silent cases (the process
    was paused, or its ZooKeeper server lost its quorum but still answers reads): every view is
    valid only until the lease runs out, every full pass and every heartbeat renews it first.
  * Once stopping (`leave` or `stop`), the engine never decides, registers or vouches again.
  * Our entry's companion (order.py) is deleted only after we stopped vouching: with the entry
    when we leave, or, when another client deleted the entry, from that deletion's callback
    right after the step-down (and again by the worker's pass), through acks.py's gate.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

from electd.engine.acks import AckGate, Acks
from electd.engine.clock import now as lease_clock
from electd.engine.identity import Refused
from electd.engine.lease import Lease, Vouch
from electd.engine.members import Members
from electd.engine.model import LeaderInfo, MemberView, NodeRecord, Role, View, transition
from electd.engine.passes import Passes
from electd.engine.pool import Mailbox, OwnThread, SharedThreads
from electd.engine.stats import EngineStats
from electd.engine.store import ConnState, CoordinatorUnavailable, Store, WatchEvent
from electd.engine.terms import who
from electd.engine.watches import ALIVE, BLOCKER, LEADER, OWN, PATH, WatchBook

logger = logging.getLogger(__name__)

_WAKE, _TICK, _STOP = "wake", "tick", "stop"
# Retry delays after a failed round of work (ZooKeeper trouble or a bug), in seconds.
_BACKOFF_START, _BACKOFF_MAX = 0.05, 2.0


class ElectionEngine:
    def __init__(
        self,
        store: Store,
        record: NodeRecord,
        publish: Callable[[View], None],
        clock: Callable[[], float] = lease_clock,
        wall: Callable[[], float] = time.time,
        lease: Lease | None = None,
        cluster_id: str = "",
        ack_gate: AckGate | None = None,
        threads: SharedThreads | None = None,
        election: str = "",
    ) -> None:
        """`lease`: the lease of `store`'s session, shared by every engine on that session (one
        per session, on the same clock as `clock`: the lease clock, engine/clock.py); by default
        the engine makes its own. The engine vouches through its own `Vouch` of it (lease.py):
        never past an anchor it read its own entry after. `cluster_id`: the identity to insist
        on (identity.py; "" takes the path's, or creates one). `ack_gate`: see acks.py. `threads`:
        run the rounds on these shared threads (pool.py) instead of a thread of its own.
        `election`: the named election this entry is a candidate's in, for the log ("": the
        node election)."""
        # Set here, never rebound: safe to read from any thread.
        self._store = store
        self._record = record
        self.election = election
        self.who = who(record.id, election)  # how its log lines name it (terms.py)
        self._publish_cb = publish
        self._clock = clock
        self._lease = lease if lease is not None else Lease(store, clock)
        self._vouch = Vouch(self._lease)
        self._members = Members(store, record)
        self._book = WatchBook(self._on_watch)
        self.acks = Acks(store, ack_gate, self.who)
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self.mailbox = Mailbox()
        self._threads = threads
        self._own_thread = None if threads else OwnThread(self, "election-engine", clock)
        self._join: Callable[[float], bool] = lambda _timeout: True  # until started
        self._passes = Passes(
            self, store, record, self._members, self._book, self._vouch, wall, cluster_id
        )

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
        # under _lock where it decides (`Passes.conclude`, `_renew`, the callbacks); read
        # without it by the worker and `_on_state`'s log line only to skip work early.
        self._stopping = False
        # Leaving: `leave` (any thread, after setting _stopping) sets `_leaving` to the entry it
        # sent the delete of; the delete's callback (any thread) sets `_left` once it succeeded,
        # then `_left_done`. `_shutdown` (worker) reads `_leaving` without the lock and, if it
        # is set, waits for `_left_done` before reading `_left`.
        self._leaving = ""
        self._left = ""
        self._left_done = threading.Event()

        # The worker's alone: when to retry after a failed round (None: no failure pending),
        # the backoff, and when the next heartbeat is due.
        self._retry_at: float | None = self._clock()
        self._delay = _BACKOFF_START
        self._next_tick = self._clock()

    # ----- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._store.add_state_listener(self._on_state)
        if self._store.session_id() is not None:
            self._on_state(ConnState.CONNECTED)
        if self._own_thread is not None:
            self._own_thread.start()
            self._join = self._own_thread.join
        else:
            assert self._threads is not None
            self._join = self._threads.attach(self)

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the election (if `leave` has not already), end the session, publish a STOPPED
        view. Blocks until the worker is done; safe to call more than once."""
        self.leave()
        self.mailbox.put(_STOP)
        if not self._join(timeout):  # stuck in a store call: closing the session unblocks it
            logger.warning("%s engine did not stop in %.0fs; closing", self.who, timeout)
            self._store.close()
            self._join(timeout)

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
        own = self._passes.own
        with self._lock:
            if self._stopping or own is None or not self._connected:
                leaving = False
            else:
                leaving = self._stopping = True
                before = self._view
                self._publish_locked(Role.STOPPED, None, "node is shutting down", "", "")
        if leaving:
            epoch = before.leader.epoch if before.leader else 0
            logger.info(
                "%s leaving the election (%s -> STOPPED)",
                self.who,
                before.role.value,
                extra=transition(
                    self._record.id,
                    before.role,
                    Role.STOPPED,
                    epoch,
                    "node is shutting down",
                    "",
                    self.election,
                ),
            )
        if own is None or not leaving:
            if done is not None:
                done()
            return
        self._leaving = own.name
        self._store.remove_nowait(own.name, functools.partial(self._on_left, own.name, done))

    def _on_left(self, name: str, done: Callable[[], None] | None, error: Exception | None) -> None:
        if error is None:
            self._left = name
            logger.info("%s left the election (deleted %s)", self.who, name)
        else:
            logger.warning("%s could not delete %s: %s; trying again", self.who, name, error)
        self._left_done.set()
        if done is not None:
            done()

    # ----- callbacks from the store's threads: flag, publish, wake; never block ------------

    def _on_state(self, state: ConnState) -> None:
        before: Role | None = None
        if state is ConnState.CONNECTED:
            self.stats.connects += 1
        elif state is ConnState.SUSPENDED:
            self.stats.suspensions += 1
        else:
            self.stats.expiries += 1
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
                        logger.warning("%s stepping down at once: %s", self.who, self._conn_reason)
                    before = self._view.role
                    self._publish_locked(Role.DISCONNECTED, None, self._conn_reason, "", "")
        if not self._stopping:
            extra = {}
            if before is not None and before is not Role.DISCONNECTED:
                extra = transition(
                    self._record.id,
                    before,
                    Role.DISCONNECTED,
                    0,
                    self._conn_reason,
                    "",
                    self.election,
                )
            logger.info("%s ZooKeeper connection %s", self.who, state.value, extra=extra)
        self.mailbox.put(_WAKE)

    def _on_watch(self, name: str, role: str, event: WatchEvent) -> None:
        """A watch fired (`role`: what the entry was to us). Our own entry gone or rewritten
        by someone else: stop claiming here, at once, before the worker even looks."""
        if role == OWN and event in (WatchEvent.GONE, WatchEvent.CHANGED):
            what = "vanished" if event is WatchEvent.GONE else "was rewritten by another client"
            self.step_down(f"own znode {what}; rejoining")
            if event is WatchEvent.GONE and not self._stopping:
                # We no longer vouch: acknowledge (acks.py), so a successor need not wait.
                self.acks.send_nowait(name)
        elif role == ALIVE and event in (WatchEvent.GONE, WatchEvent.CHANGED):
            self.step_down("own companion znode vanished; making it again")
        if role == OWN:
            self.stats.own_events += 1
        elif role in (ALIVE, BLOCKER):
            self.stats.companion_events += 1
        elif role == PATH:
            self.stats.path_events += 1
        elif role == LEADER:
            self.stats.leader_events += 1
        else:
            self.stats.predecessor_events += 1
        self.mailbox.put(_WAKE)

    def step_down(self, reason: str) -> None:
        """Stop vouching for ourselves at once (any thread): publish JOINING if we lead."""
        with self._lock:
            if not self._stopping and self._view.role is Role.LEADER:
                epoch = self._view.leader.epoch if self._view.leader else 0
                extra = transition(
                    self._record.id, Role.LEADER, Role.JOINING, epoch, reason, "", self.election
                )
                logger.warning("%s stepping down: %s", self.who, reason, extra=extra)
                self._publish_locked(Role.JOINING, None, reason, "", "")

    # ----- the worker ----------------------------------------------------------------------

    def next_round(self) -> float:
        """The lease-clock time of the next round if no event comes first: the retry after a
        failed round; else the next heartbeat, or a held-back claim's wait (order.py) if that
        ends sooner."""
        if self._retry_at is not None:
            return self._retry_at
        waited = self._passes.waits.wake_at()
        return self._next_tick if waited is None else min(self._next_tick, waited)

    def run_round(self, events: set[str]) -> bool:
        """One round of work for the queued `events` (empty: its time came, see `next_round`).
        False once stopped: the last round ran `_shutdown`."""
        if _STOP in events:
            self._shutdown()
            return False
        if not events:
            events = {_TICK if self._retry_at is None else _WAKE}
        waited = self._passes.waits.wake_at()
        try:
            if self._retry_at is not None:
                self._passes.reconcile()
            elif _WAKE in events:
                if not self._passes.fast():
                    self._passes.reconcile()
            elif waited is not None and self._clock() >= waited:
                self._passes.reconcile()
            else:
                self._renew()
            self._retry_at, self._delay = None, _BACKOFF_START
        except Refused:  # published and logged where it was decided; look again later
            self._passes.forget_decision()
            self._retry_at, self._delay = self._clock() + _BACKOFF_MAX, _BACKOFF_MAX
        except CoordinatorUnavailable as exc:
            self._passes.forget_decision()
            logger.info("%s ZooKeeper unavailable (%s); retrying", self.who, exc)
            self._retry_later()
        except Exception:
            self._passes.forget_decision()
            logger.exception("%s bug in the election engine; retrying", self.who)
            self._retry_later()
        self._next_tick = self._clock() + self._heartbeat()
        return True

    def _retry_later(self) -> None:
        self._retry_at = self._clock() + self._delay
        self._delay = min(self._delay * 2, _BACKOFF_MAX)

    def _heartbeat(self) -> float:
        """How long the worker waits for news before it renews the lease on its own."""
        return self._lease.heartbeat()

    def lease_fresh(self) -> bool:
        """True while more than one heartbeat interval of the lease is left."""
        return self._vouch.remaining() > self._heartbeat()

    def _renew(self) -> None:
        """Heartbeat: a sync renews the lease (it proves the syncs sent a proof gap or more
        before it, see lease.py; a read renews nothing; skipped when another engine on the
        session synced within the last half heartbeat); that our own entry still exists in
        our session, unrewritten, is proven by its watches not having fired by the end of that
        sync (own.py, `still_watched`), or else by one metadata read of it; and the view is
        published again with the lease's new end. A thousand candidates on one session thus
        cost about two syncs per heartbeat between them, and no read."""
        own = self._passes.own
        with self._lock:
            if not self._connected or own is None:
                return
            gen = self._conn_gen
        if self._lease.heartbeat_due():  # another engine on the session may have just synced
            self._vouch.renew()
        if not self._passes.own_still_watched():
            self.stats.heartbeat_reads += 1
            if not self._passes.own_still_ours():
                self._passes.reconcile()
                return
        self.stats.heartbeats += 1
        with self._lock:
            if gen == self._conn_gen and not self._stopping:
                v = self._view
                self._publish_locked(v.role, v.leader, v.reason, v.own_znode, v.watching)

    def _shutdown(self) -> None:
        with self._lock:  # step down before the entry goes (see `leave`)
            self._stopping = True
            self._publish_locked(Role.STOPPED, None, "node is shutting down", "", "")
        if self._leaving:
            self._left_done.wait(self._store.session_timeout())
        own = self._passes.own
        if own is not None and self._connected and own.name != self._left:
            try:
                self._store.remove(own.name)
                logger.info("%s left the election (deleted %s)", self.who, own.name)
            except CoordinatorUnavailable as exc:
                logger.warning("%s could not delete %s: %s", self.who, own.name, exc)
        self._passes.own = None
        self._store.close()
        with self._lock:
            self._connected = False
            self._publish_locked(Role.STOPPED, None, "node is shutting down", "", "")

    # ----- what the passes need of the engine (worker thread) ------------------------------

    def connection(self) -> tuple[bool, int, str]:
        """(connected, generation, reason) of the connection, read together."""
        with self._lock:
            return self._connected, self._conn_gen, self._conn_reason

    def stopping(self) -> bool:
        return self._stopping

    def publish_if_current(
        self, gen: int, role: Role, leader: LeaderInfo | None, reason: str, own: str, watch: str
    ) -> View | bool | None:
        """Publish a decision made in connection generation `gen`, unless the connection moved
        on meanwhile (its callback published already) or the engine is stopping (None). A
        claim (LEADER) is refused (False) once our own entry's or its companion's watch has
        fired: the callback takes this lock after the watch book forgets the znode, so either
        the claim sees the watch gone, or the callback sees the claim and steps down. Else
        returns the view it replaced."""
        with self._lock:
            if gen != self._conn_gen or self._stopping:
                return None
            if role is Role.LEADER and (
                self._book.role(own) != OWN or self._book.role(self._store.companion(own)) != ALIVE
            ):
                return False
            before = self._view
            self._publish_locked(role, leader, reason, own, watch)
            return before

    def refuse(self, reason: str, log: bool) -> None:
        """Not taking part (identity.py): publish REFUSED with the reason (health goes
        NOT_SERVING, streams say why), logged at ERROR when `log`."""
        with self._lock:
            if self._stopping:
                return
            before = self._view.role
            self._publish_locked(Role.REFUSED, None, reason, "", "")
        if log:
            extra = transition(self._record.id, before, Role.REFUSED, 0, reason, "", self.election)
            logger.error("%s refuses to join the election: %s", self.who, reason, extra=extra)

    def publish_disconnected(self) -> None:
        with self._lock:
            self._publish_locked(Role.DISCONNECTED, None, self._conn_reason, "", "")

    # ----- members (any thread) ----------------------------------------------------------

    def lease(self) -> Lease:
        """The lease of this engine's session, shared (read-only use: metrics, listeners)."""
        return self._lease

    def members(self) -> list[MemberView]:
        """Every valid member in election order, read from the store now."""
        return self._members.current(self._passes.own)

    # ----- publishing --------------------------------------------------------------------

    def _publish_locked(
        self, role: Role, leader: LeaderInfo | None, reason: str, own: str, watching: str
    ) -> None:
        """Under `_lock`: publish the next view, believable until our share of the lease runs
        out (`Vouch`: from an anchor we read our own entry after)."""
        self._version += 1
        self._view = View(
            self._version,
            self._record.id,
            role,
            leader,
            reason,
            own,
            watching,
            self._vouch.valid_until(),
        )
        self._publish_cb(self._view)
