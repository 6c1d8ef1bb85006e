"""ViewHub: the one place where threads hand anything to the asyncio loop (`cross`: the only
call of `loop.call_soon_threadsafe` in electd).

What crosses: the node engine's views (`publish`), the named elections' views from their
observers (one `NamedFeed` per election, keyed by name, shared by every stream and call on
it), and the candidates' events (rpc/campaign.py hands them to `cross`). `publish`, `cross`
and a feed's observer callback may be called from any thread; everything else runs on the
loop. The hub keeps only the latest view (a slow stream never builds a queue) and bumps
`generation` whenever what a client can observe changes: leader state, leader, epoch or
reason (for a named election also the value's revision). Lease renewals alone do not wake
streams. A timer re-checks the lease when it would run out, so streams hear "unknown" even
when the threads are silent (for example after the process was paused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from electd.elections import ElectionLeader, ElectionState, ElectionView, Observation
from electd.engine import LeaderInfo, Role, View
from electd.engine.clock import now as lease_clock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """What clients observe: the vouched-for leader or the reason there is none."""

    generation: int
    leader: LeaderInfo | None
    reason: str
    closed: bool = False

    def key(self) -> tuple[object, ...]:
        if self.leader is None:
            return (None, self.reason, self.closed)
        return (self.leader.epoch, self.leader.member.znode, self.closed)


class ViewHub:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        initial: View,
        engine_view: Callable[[], View] | None = None,
    ) -> None:
        self._loop = loop
        self._engine_view = engine_view
        self._view = initial
        self._snapshot = Snapshot(0, None, initial.reason or "starting")
        self._changed = asyncio.Event()
        self._lease_timer: asyncio.TimerHandle | None = None
        self._serving = False
        self._serving_listeners: list[Callable[[bool], None]] = []
        self._leading: int | None = None
        self._leading_listeners: list[Callable[[int | None], None]] = []
        self._retired = False
        self._closed = False
        self._close_listeners: list[Callable[[], None]] = []
        self._observe: Observe | None = None
        self._feeds: dict[str, NamedFeed] = {}

    # ----- any thread -----------------------------------------------------------------------

    def cross(self, fn: Callable[..., None], *args: object) -> bool:
        """Run `fn(*args)` on the loop, soon: THE crossing from any thread into asyncio (the
        engine's views, the named elections' observers, the candidates' events all come
        through here). False when the loop is closed (the node is gone, nobody listens)."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            return False
        return True

    def publish(self, view: View) -> None:
        if not self.cross(self._apply, view):
            logger.debug("dropped view %d: event loop closed", view.version)

    # ----- loop thread ----------------------------------------------------------------------

    @property
    def view(self) -> View:
        return self._view

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def current(self) -> Snapshot:
        """The snapshot, with the lease checked now: a snapshot naming a leader whose lease has
        run out (the loop's timer may not have fired yet, for example right after a suspend or
        a long pause of the loop) is replaced by "unknown" before it is returned. Every stream
        message is taken from here when it is sent."""
        snap = self._snapshot
        if snap.leader is not None and self._view.vouched(self.now()) is None:
            self._refresh()
            snap = self._snapshot
        if (
            snap.leader is not None
            and self._engine_view is not None
            and self._view.role is Role.LEADER
        ):
            # A claim of our own is confirmed with the engine itself: a step-down (our entry
            # deleted or rewritten by another client) is in the engine's view the moment its
            # watch callback runs, before the acknowledgement that lets the successor claim is
            # sent, while its publication reaches this loop only on a later turn (V11).
            latest = self._engine_view()
            if latest.version > self._view.version:
                self._apply(latest)
                snap = self._snapshot
        return snap

    def now(self) -> float:
        return lease_clock()  # the engine's clock: CLOCK_BOOTTIME, not the loop's monotonic

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def on_serving_change(self, listener: Callable[[bool], None]) -> None:
        self._serving_listeners.append(listener)
        listener(self._serving)

    def on_leading_change(self, listener: Callable[[int | None], None]) -> None:
        """`listener(epoch)` when this node starts leading (with its epoch), `listener(None)`
        as soon as it stops (step-down, lost session, lease run out, shutdown)."""
        self._leading_listeners.append(listener)
        listener(self._leading)

    async def wait_changed(self, generation: int) -> None:
        """Return as soon as the snapshot's generation differs from `generation`."""
        while self._snapshot.generation == generation:
            await self._changed.wait()

    def retire(self, reason: str = "node is shutting down") -> None:
        """Stop vouching for any leader, for good, before the node leaves the election: once
        its znode is deleted a successor may lead within milliseconds, and from then on no
        answer of this node may name itself. Views the engine publishes later are ignored.
        Named elections say UNKNOWN from here on too (their candidates are about to go)."""
        self._retired = True
        self._view = replace(self._view, role=Role.STOPPED, leader=None, reason=reason)
        self._refresh()
        for feed in list(self._feeds.values()):
            feed.refresh()

    @property
    def retired(self) -> bool:
        return self._retired

    def close(self) -> None:
        """End every stream: the node is shutting down."""
        self._closed = True
        self._set_leading(None)
        self._set(Snapshot(self._snapshot.generation + 1, None, "node is shutting down", True))
        for feed in list(self._feeds.values()):
            feed.close()
        for listener in self._close_listeners:
            listener()

    @property
    def closed(self) -> bool:
        return self._closed

    def on_close(self, listener: Callable[[], None]) -> None:
        """`listener()` when the hub closes (the Campaign streams end then)."""
        self._close_listeners.append(listener)

    # ----- named elections (loop thread) ----------------------------------------------------

    def serve_elections(self, observe: Observe) -> None:
        """Named elections are read through `observe(election, on_change)` (the registry's)."""
        self._observe = observe

    def acquire(self, election: str) -> NamedFeed:
        """The feed of `election`, observed while at least one caller holds it (`release`)."""
        if self._observe is None:
            raise RuntimeError("named elections are not served (serve_elections first)")
        feed = self._feeds.get(election)
        if feed is None:
            feed = self._feeds[election] = NamedFeed(self, election)
            if self._closed:
                feed.close()
            else:
                feed.attach(self._observe(election, feed.on_change))
        feed.refs += 1
        return feed

    def release(self, feed: NamedFeed) -> None:
        feed.refs -= 1
        if feed.refs == 0 and self._feeds.get(feed.election) is feed:
            del self._feeds[feed.election]
            feed.detach()

    async def until_gone(self, election: str, znode: str, timeout: float) -> None:
        """Wait (at most `timeout`) until this node's view of `election` no longer names the
        entry `znode` as its leader: after a resignation through this node has been answered,
        reads through it do not name the ended term (read-your-writes; the observer learns of
        the delete from its watch a moment after the delete's reply)."""
        if self._observe is None or self._closed or not znode:
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        feed = self.acquire(election)
        try:
            snap = await feed.settled(timeout)
            while snap.leader is not None and snap.leader.member.znode == znode:
                left = end - loop.time()
                if left <= 0 or snap.closed:
                    break
                try:
                    await asyncio.wait_for(feed.wait_changed(snap.generation), left)
                except TimeoutError:
                    break
                snap = feed.current()
        finally:
            self.release(feed)

    def named_feeds(self) -> int:
        """Named elections observed now (tests, metrics)."""
        return len(self._feeds)

    def _apply(self, view: View) -> None:
        if view.version <= self._view.version or self._snapshot.closed or self._retired:
            return
        self._view = view
        self._refresh()

    def _refresh(self) -> None:
        now = self.now()
        view = self._view
        leader = view.vouched(now)
        reason = "" if leader is not None else view.why_unknown(now)
        candidate = Snapshot(self._snapshot.generation + 1, leader, reason)
        if candidate.key() != self._snapshot.key():
            self._set(candidate)
        serving = view.serving(now)
        if serving != self._serving:
            self._serving = serving
            for listener in self._serving_listeners:
                listener(serving)
        self._set_leading(leader.epoch if leader is not None and view.is_leader(now) else None)
        if self._lease_timer is not None:
            self._lease_timer.cancel()
            self._lease_timer = None
        if leader is not None:
            # The loop's timers run on CLOCK_MONOTONIC, which stops during a suspend: the
            # timer may fire late after a resume, so every send checks the lease again.
            self._lease_timer = self._loop.call_later(
                max(0.0, view.valid_until - lease_clock()), self._refresh
            )

    def _set_leading(self, epoch: int | None) -> None:
        if epoch != self._leading:
            self._leading = epoch
            for listener in self._leading_listeners:
                listener(epoch)

    def _set(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


# ----- named elections ------------------------------------------------------------------------

Observe = Callable[[str, Callable[[ElectionView], None]], Observation]

_EXPIRED = "lease expired: no word from ZooKeeper within the session's read timeout"


@dataclass(frozen=True)
class NamedSnapshot:
    """What clients observe of a named election: its leader (ELECTED), that it has none
    (VACANT), or that this node cannot vouch either way (UNKNOWN, with the reason)."""

    generation: int
    state: ElectionState
    leader: ElectionLeader | None
    reason: str
    closed: bool = False
    settled: bool = False  # the observer has read the election at least once

    def key(self) -> tuple[object, ...]:
        lead = self.leader
        if lead is None:
            unknown = self.state is ElectionState.UNKNOWN
            return (self.state, self.reason if unknown else "", self.closed, self.settled)
        return (self.state, lead.epoch, lead.member.znode, lead.value_revision, self.closed)


class NamedFeed:
    """The latest view of one named election on the loop: the observer's `on_change` (its
    worker thread) crosses through the hub; streams wait on `wait_changed`, and every message
    is taken from `current()`, which checks the view's lease at that moment."""

    def __init__(self, hub: ViewHub, election: str) -> None:
        self.election = election
        self.refs = 0
        self.message: tuple[int, Any] | None = None  # the servicer's message of a generation
        self._hub = hub
        self._observation: Observation | None = None
        self._view: ElectionView | None = None
        self._snapshot = NamedSnapshot(0, ElectionState.UNKNOWN, None, "starting")
        self._changed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def on_change(self, view: ElectionView) -> None:
        """The observer's callback (its worker thread): cross into the loop, never block."""
        self._hub.cross(self._apply, view)

    def attach(self, observation: Observation) -> None:
        self._observation = observation
        self._apply(observation.view())

    def detach(self) -> None:
        """Nobody uses the feed any more: stop observing (the registry keeps its observer a
        while for the next caller)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._observation is not None:
            self._observation.close()
            self._observation = None

    def close(self) -> None:
        """The node is shutting down: every stream on this feed ends."""
        self._closed = True
        self._set(replace(self._snapshot, generation=self._snapshot.generation + 1, closed=True))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def current(self) -> NamedSnapshot:
        """The snapshot, with the lease checked now (see ViewHub.current)."""
        snap = self._snapshot
        view = self._view
        if (
            snap.state is not ElectionState.UNKNOWN
            and view is not None
            and self._hub.now() >= view.valid_until
        ):
            self.refresh()
            snap = self._snapshot
        return snap

    async def wait_changed(self, generation: int) -> None:
        while self._snapshot.generation == generation:
            await self._changed.wait()

    async def settled(self, timeout: float) -> NamedSnapshot:
        """The snapshot once the observer has read the election (or after `timeout`)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        snap = self.current()
        while not snap.settled and not snap.closed:
            left = end - loop.time()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self.wait_changed(snap.generation), left)
            except TimeoutError:
                break
            snap = self.current()
        return snap

    def _apply(self, view: ElectionView) -> None:
        if self._closed or (self._view is not None and view.version <= self._view.version):
            return
        self._view = view
        self.refresh()

    def refresh(self) -> None:
        if self._snapshot.closed:
            return
        now = self._hub.now()
        view = self._view
        gen = self._snapshot.generation + 1
        if view is None:
            candidate = NamedSnapshot(gen, ElectionState.UNKNOWN, None, "starting")
        elif self._hub.retired:
            candidate = NamedSnapshot(
                gen, ElectionState.UNKNOWN, None, "node is shutting down", settled=True
            )
        elif view.state is ElectionState.UNKNOWN:
            candidate = NamedSnapshot(
                gen, view.state, None, view.reason or "unknown", settled=view.version > 0
            )
        elif now >= view.valid_until:
            candidate = NamedSnapshot(gen, ElectionState.UNKNOWN, None, _EXPIRED, settled=True)
        else:
            leader = view.leader if view.state is ElectionState.ELECTED else None
            candidate = NamedSnapshot(gen, view.state, leader, "", settled=True)
        if candidate.key() != self._snapshot.key():
            self._set(candidate)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if view is not None and candidate.state is not ElectionState.UNKNOWN:
            self._timer = self._hub.loop.call_later(
                max(0.0, view.valid_until - lease_clock()), self.refresh
            )

    def _set(self, snapshot: NamedSnapshot) -> None:
        self._snapshot = snapshot
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
