"""The local lease of one ZooKeeper session: until when this process may believe what it learned
through the session, and the rules that prove ZooKeeper's quorum leader refreshed the session
(RELIABILITY.md, V1 and V4).

Owns the anchor (a time on the lease clock, engine/clock.py, at or before which ZooKeeper's
leader provably last refreshed the session) and the successful syncs not yet proven. Knows the
session only through `SessionFacts` (id, granted timeout, sync, handshake), never entries,
records or elections, so one `Lease` per session (`Lease(zk_session)`, or per store for a store
alone on its session) serves every engine on it. Each engine vouches through its own `Vouch`:
its share of the lease, which never runs past an anchor the engine read its own entry after.
Imports nothing of kazoo, grpc or the rest of the engine.

Threads: `renew` runs on the calling thread (each engine's worker; several at once when engines
share the lease) and makes its round trip without holding the lock; everything else may be
called from any thread. All state is guarded by `_lock`; under it the lease asks the session
only for facts that do not block (`session_id`, `session_timeout`, `session_established`).

Invariants (T: the session timeout granted now, asked afresh each time):
  * Only a sync renews: it must pass through ZooKeeper's quorum leader, while a follower cut off
    from its quorum still answers reads (V1).
  * A sync that succeeded proves nothing by itself: a follower reports its clients' activity to
    the leader only when the leader next pings it (V4). It is proven once a later sync of the
    same session, sent at least T/4 (the proof gap, more than one ping interval) after it and
    after it had succeeded, succeeds; or by a (re)connect handshake of the session that began
    before it, which ZooKeeper's leader itself refreshes the session for.
  * A sync during which the session changed proves nothing and is not kept. Syncs of another
    session never prove, nor are proven for, the current one.
  * The anchor never moves back; the lease ends 2T/3 after it, leaving T/3 before ZooKeeper can
    expire the session.
  * An engine publishes only up to an anchor it read its own entry after (`Vouch`): with
    several engines on one lease, another engine's later sync may move the session's anchor
    past the moment this engine's entry was deleted by another client, of which this engine
    has not heard yet (RELIABILITY.md, V11 and its caveat).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

from electd.engine.clock import now as lease_clock

_NEVER = -1e18  # the anchor before anything is proven: every lease has run out


class SessionFacts(Protocol):
    """What the lease needs of a store (`electd.engine.store.Store` has all of it)."""

    def session_id(self) -> int | None: ...

    def session_timeout(self) -> float: ...

    def session_established(self) -> tuple[int, float] | None: ...

    def sync(self) -> None:
        """A round trip through ZooKeeper's quorum leader; returns once the callbacks of the
        watch events that arrived before its answer have run (engine/store.py's `sync`)."""
        ...


class _Sync(NamedTuple):
    """A successful sync not yet proven."""

    session: int
    sent: float  # monotonic time before it was sent
    number: int  # completion order: it succeeded before every sync sent after `number` did


class Lease:
    """The lease of one session: `renew` after every piece of news worth vouching for,
    `valid_until` to stamp what is published."""

    def __init__(self, session: SessionFacts, clock: Callable[[], float] = lease_clock) -> None:
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._anchor = _NEVER
        self._unproven: list[_Sync] = []
        self._completed = 0  # how many syncs have succeeded in their own session
        self._answered = _NEVER  # when the last sync succeeded (clock time)
        self._answered_sent = _NEVER  # when the latest sync that succeeded was sent
        self._heard: tuple[int, float] = (0, _NEVER)  # (session, sent) of that sync
        self._listeners: list[Callable[[float, float, int], None]] = []

    def add_listener(self, listener: Callable[[float, float, int], None]) -> None:
        """`listener(valid_until, session_timeout, session_id)` after every renewal of the
        session `session_id`, on the renewing thread (the supervisor's copy of the deadline,
        supervisor/link.py); it must not block."""
        self._listeners.append(listener)

    def length(self) -> float:
        """How long the anchor vouches for: kazoo's read timeout for the session, 2/3 of the
        session timeout the server granted (asked again each time: a new session may be granted
        another one). ZooKeeper cannot expire the session before a full timeout after the
        anchor, so the lease leaves a third of it as margin."""
        return self._session.session_timeout() * 2.0 / 3.0

    def proof_gap(self) -> float:
        """How much later a sync must be sent to prove that an earlier one refreshed the session
        at ZooKeeper's leader: longer than the leader's ping interval (tickTime / 2; ZooKeeper
        grants at least 2 ticks of session timeout, so tick / 2 <= T / 4)."""
        return self._session.session_timeout() / 4.0

    def heartbeat(self) -> float:
        """How often to renew when nothing else does: two syncs per proof gap, so that the
        anchor trails by about one gap and a healthy leader vouches for at least
        2T/3 - T/4 - T/8 after each heartbeat."""
        return self._session.session_timeout() / 8.0

    def valid_until(self, upto: float | None = None) -> float:
        """The lease-clock time the lease runs out at (far in the past before any proof);
        `upto`: as if the anchor were at most that (an earlier anchor is always true too)."""
        with self._lock:
            anchor = self._anchor if upto is None else min(self._anchor, upto)
        return anchor + self.length()

    def anchor(self) -> float:
        """The anchor now (see `Vouch.mark`)."""
        with self._lock:
            return self._anchor

    def since_answer(self) -> float:
        """Seconds since ZooKeeper's quorum last answered a sync (inf before the first)."""
        with self._lock:
            answered = self._answered
        return float("inf") if answered == _NEVER else self._clock() - answered

    def heartbeat_due(self) -> bool:
        """Whether a heartbeat should sync now: no sync sent within the last half heartbeat has
        succeeded. Engines sharing the lease thus take turns: a thousand of them make about two
        syncs per heartbeat interval between them, not a thousand. Skipping a sync can only make
        the lease shorter, never longer: it is for cost, not for safety."""
        with self._lock:
            return self._clock() - self._answered_sent >= self.heartbeat() / 2

    def heard(self, sid: int) -> float:
        """The send time of the latest sync of session `sid` that succeeded (far in the past if
        none). Every change ZooKeeper committed before then has fired the watches it triggered
        in that session, and their callbacks have run (`SessionFacts.sync`)."""
        with self._lock:
            return self._heard[1] if self._heard[0] == sid else _NEVER

    def now(self) -> float:
        """The lease clock's reading now."""
        return self._clock()

    def remaining(self) -> float:
        """Seconds left of the lease now (negative once it has run out)."""
        return self.valid_until() - self._clock()

    def renew(self) -> None:
        """One sync (a round trip through ZooKeeper's quorum leader), then whatever it proves.
        Raises what the store's sync raises (CoordinatorUnavailable); a failed sync changes
        nothing."""
        sid = self._session.session_id()
        with self._lock:
            sent, horizon = self._clock(), self._completed
        self._session.sync()
        established = self._session.session_established()
        with self._lock:
            self._answered = max(self._answered, self._clock())
            self._answered_sent = max(self._answered_sent, sent)
            if sid is None:
                return
            if self._session.session_id() == sid:
                self._prove(sid, sent, horizon)
                if sent > self._heard[1] or self._heard[0] != sid:
                    self._heard = (sid, sent)
            if established is not None and established[0] == sid:
                self._anchor = max(self._anchor, established[1])
            until = self._anchor + self.length()
        for listener in self._listeners:
            listener(until, self._session.session_timeout(), sid)

    def _prove(self, sid: int, sent: float, horizon: int) -> None:
        """Under `_lock`: the sync of `sid` sent at `sent` succeeded; `horizon` syncs had
        succeeded before it was sent."""
        proven = sent - self.proof_gap()
        kept: list[_Sync] = []
        for sync in self._unproven:
            if sync.session != sid:
                continue  # another session's syncs prove nothing about this one
            if sync.sent <= proven and sync.number < horizon:
                self._anchor = max(self._anchor, sync.sent)
            else:
                kept.append(sync)
        kept.append(_Sync(sid, sent, self._completed))
        self._completed += 1
        self._unproven = kept


class Vouch:
    """One engine's share of a session's `Lease`: the same renewals and timings, but an end no
    later than 2T/3 after the latest anchor this engine read its own entry after.

    Why (RELIABILITY.md, V11): a view in which a node names itself must be believable only
    until 2T/3 after a moment before the deletion of its entry (at d, by another client) that
    it has not heard of. An anchor a is the send time of a sync S that had succeeded when the
    engine took its `mark` (or a handshake's start: RELIABILITY's lagging-server caveat stands);
    a read of our entry sent after that which still finds it sees every change committed
    before ZooKeeper's leader handled S, so S was handled, and sent, before d: a < d.

    Alone on its lease, an engine's marks are the anchor itself (nothing else renews between
    its read and its publish), so this changes nothing; only a full pass over more than one
    batch of children that renews after the batch with our entry publishes from the mark
    before that batch, until its next heartbeat. Sharing the lease, another engine's sync sent
    after d may move the session's anchor past d: this engine's views still end 2T/3 after its
    own last confirmed mark, until it reads its entry again (its next heartbeat or pass).

    Threads: `mark` and `confirm` on the engine's worker; `valid_until` and `remaining` from
    any thread (the cap is one float, replaced under `_lock`)."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._lock = threading.Lock()
        self._cap = _NEVER

    def mark(self) -> float:
        """Take right before sending a read of our own entry: the anchor at that moment."""
        return self.lease.anchor()

    def mark_heard(self, sid: int) -> float:
        """For a heartbeat without a read (own.py, `still_watched`): the anchor, but no later
        than the send time of the latest sync of `sid` after whose answer the watches on our
        entry and companion, set by a read that found them ours, had not fired. Take it before
        looking at those watches: a change before that sync would have fired them by then."""
        return min(self.lease.anchor(), self.lease.heard(sid))

    def confirm(self, mark: float) -> None:
        """That read found our entry, ours and unrewritten: views may run from `mark`."""
        with self._lock:
            self._cap = max(self._cap, mark)

    def valid_until(self) -> float:
        with self._lock:
            cap = self._cap
        return self.lease.valid_until(upto=cap)

    def remaining(self) -> float:
        return self.valid_until() - self.lease.now()

    def renew(self) -> None:
        self.lease.renew()

    def now(self) -> float:
        return self.lease.now()

    def length(self) -> float:
        return self.lease.length()

    def heartbeat(self) -> float:
        return self.lease.heartbeat()
