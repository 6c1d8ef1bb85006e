"""ViewHub: the one place where the engine's threads hand their views to the asyncio loop.

`publish` may be called from any thread; everything else runs on the loop. The hub keeps only
the latest view (a slow stream never builds a queue) and bumps `generation` whenever what a
client can observe changes: leader state, leader, epoch or reason. Lease renewals alone do not
wake streams. A timer re-checks the lease when it would run out, so streams hear "unknown"
even when the engine's threads are silent (for example after the process was paused).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

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

    # ----- any thread -----------------------------------------------------------------------

    def publish(self, view: View) -> None:
        try:
            self._loop.call_soon_threadsafe(self._apply, view)
        except RuntimeError:  # the loop is closed: the node is gone, nobody is listening
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
        answer of this node may name itself. Views the engine publishes later are ignored."""
        self._retired = True
        self._view = replace(self._view, role=Role.STOPPED, leader=None, reason=reason)
        self._refresh()

    def close(self) -> None:
        """End every stream: the node is shutting down."""
        self._set_leading(None)
        self._set(Snapshot(self._snapshot.generation + 1, None, "node is shutting down", True))

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
