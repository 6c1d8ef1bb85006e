"""The Campaign stream: one gRPC client as a candidate of a named election, on top of the
registry's `Candidacy` (electd/elections). Owns the stream protocol: the first request must be
start, the validation of what a candidate says about itself (every message names the field),
the ping answers, the order and the bound of what is sent, --candidate-timeout, and how a
stream ends (C3: the candidacy is abandoned the moment the candidate is gone, and the registry
keeps a leader's entry until its last grant ran out).

Threads. The candidacy's events arrive on the registry's threads (`_Stream.on_event`): they go
into a small inbox under a lock and cross into the loop through the hub (`ViewHub.cross`, the
one crossing), at most one crossing pending per stream. Everything else runs on the loop: the
handler (which sends), one reader task per stream (which reads requests and calls the
candidacy, whose methods never block), and the hub's close.

Order. A ping's answer is computed by `Candidacy.ping` after the ping arrived (C1), on the
loop; events already emitted by the registry are applied first, and an answer that would run
ahead of the events (a Leading of a term whose Leading event has not crossed yet, or a Queued
while the stream still says Leading) is held back or left out, so the candidate always sees
Queued ... Leading(E) ... Lost(E) ... Queued ... Leading(F > E).

Bounds. A candidate that does not read never makes the node buffer without bound: successive
Queued/Leading messages that were not sent yet are replaced by the latest (a Leading answer
left out only shortens the candidate's deadline), Lost and the other messages are kept, and
the reader stops taking requests while more than `OUTBOX_SOFT` responses wait; beyond
`OUTBOX_HARD` (term churn the candidate does not read) the stream ends RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from electd.elections import (
    Candidacy,
    CandidateEvent,
    CandidateSpec,
    Ended,
    Leading,
    LossReason,
    Lost,
    Proclaimed,
    Queued,
    Refused,
)
from electd.names import MAX_LABELS, election_problem, label_problem, node_id_problem
from electd.rpc import convert
from electd.rpc.errors import (
    CandidateNotReading,
    CandidateTimeout,
    InvalidArgument,
    ShuttingDown,
)
from electd.rpc.hub import ViewHub
from electd.v1 import election_service_pb2 as pb

logger = logging.getLogger(__name__)

#: The largest value a candidate may start with or proclaim (the proto's 16 KiB).
MAX_VALUE_BYTES = 16 * 1024
#: While more responses than this wait unsent, the reader takes no further request.
OUTBOX_SOFT = 16
#: More unsent responses than this (that cannot be replaced by a later one): the stream ends.
OUTBOX_HARD = 256
#: How long a resigning candidacy may take to report its end before that is a bug.
RESIGN_WATCHDOG = 30.0
#: How long a resignation's OK waits for this node's own view to stop naming the ended term.
SETTLE_AFTER_RESIGN = 2.0


class Registry(Protocol):
    """What the servicer needs of `electd.elections.Elections`."""

    def campaign(
        self, election: str, spec: CandidateSpec, on_event: Callable[[CandidateEvent], None]
    ) -> Candidacy: ...


class CampaignCounters:
    """What ops/metrics.py reads at scrape time (any thread; written on the loop).
    `candidates`: the registry's count of candidacies when `count` is set (an entry outlives
    its stream until its last grant ran out, C3), else the Campaign streams open."""

    def __init__(self, count: Callable[[], int] | None = None) -> None:
        self.count = count
        self.streams = 0
        self.grants = 0
        names = [r.name for r in LossReason]
        self._losses: dict[str, int] = {n.lower(): 0 for n in names}

    def lost(self, reason: LossReason) -> None:
        key = reason.name.lower()
        self._losses[key] = self._losses.get(key, 0) + 1

    @property
    def candidates(self) -> int:
        return self.count() if self.count is not None else self.streams

    def losses(self) -> Mapping[str, int]:
        return dict(self._losses)


def validate_start(start: pb.CampaignStart) -> tuple[str, CandidateSpec]:
    """The election and the candidate of a CampaignStart; InvalidArgument names the field."""
    problem = election_problem(start.election)
    if problem:
        raise InvalidArgument(f"start.election: {problem}")
    if not start.candidate_id:
        raise InvalidArgument("start.candidate_id: must not be empty")
    problem = node_id_problem(start.candidate_id)
    if problem:
        raise InvalidArgument(f"start.candidate_id: {problem}")
    labels = dict(start.labels)
    for key, value in labels.items():
        problem = label_problem(key, value)
        if problem:
            raise InvalidArgument(f"start.labels: {problem}")
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"start.labels: {len(labels)} labels, more than {MAX_LABELS}")
    value_problem("start.value", start.value)
    spec = CandidateSpec(
        candidate_id=start.candidate_id,
        value=bytes(start.value),
        labels=MappingProxyType(labels),
        priority=start.priority,
        never_lead=start.never_lead,
    )
    return start.election, spec


def value_problem(field: str, value: bytes) -> None:
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidArgument(f"{field}: {len(value)} bytes, more than {MAX_VALUE_BYTES}")


class CampaignService:
    """The Campaign method of ElectionService (rpc/servicer.py delegates to `run`)."""

    def __init__(
        self,
        hub: ViewHub,
        registry: Registry,
        node_id: str,
        candidate_timeout: float,
        counters: CampaignCounters | None = None,
    ) -> None:
        self._hub = hub
        self._registry = registry
        self._node_id = node_id
        self._timeout = candidate_timeout
        self.counters = counters if counters is not None else CampaignCounters()
        self._streams: set[_Stream] = set()
        hub.on_close(self._close)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def _refuse_if_retired(self) -> None:
        if self._hub.retired or self._hub.closed:
            raise ShuttingDown(
                f"node {self._node_id} is shutting down; campaign through another node"
            )

    async def run(
        self, requests: AsyncIterator[pb.CampaignRequest], context: Any
    ) -> AsyncGenerator[pb.CampaignResponse]:
        self._refuse_if_retired()
        it = aiter(requests)
        try:
            first = await asyncio.wait_for(anext(it), self._timeout)
        except StopAsyncIteration:
            raise InvalidArgument(
                "request: the stream ended before its first request (a start)"
            ) from None
        except TimeoutError:
            raise CandidateTimeout(
                f"no first request within {self._timeout:g}s (--candidate-timeout)"
            ) from None
        kind = first.WhichOneof("request")
        if kind != "start":
            raise InvalidArgument(
                f"request: the first CampaignRequest must be start, not {kind or 'empty'}"
            )
        election, spec = validate_start(first.start)
        self._refuse_if_retired()  # the shutdown may have begun while the start was awaited
        stream = _Stream(self._hub, self._node_id, self.counters)
        candidacy = self._registry.campaign(election, spec, stream.on_event)
        self._streams.add(stream)
        self.counters.streams += 1
        logger.debug(
            "candidate %s campaigns in %s through %s", spec.candidate_id, election, self._node_id
        )
        reader = asyncio.create_task(self._read(it, candidacy, stream))
        try:
            async for message in stream.messages():
                yield message
            if stream.resigned_znode:  # the OK comes once this node's reads agree
                await self._hub.until_gone(election, stream.resigned_znode, SETTLE_AFTER_RESIGN)
        finally:
            reader.cancel()
            self._streams.discard(stream)
            self.counters.streams -= 1
            if not stream.ended_by_registry:
                candidacy.abandon()  # C3: the stream went away (cancelled, failed, timed out)

    async def _read(
        self, it: AsyncIterator[pb.CampaignRequest], candidacy: Candidacy, stream: _Stream
    ) -> None:
        """Take the candidate's requests until it resigns, goes away or breaks the protocol.
        Every end decided here abandons the candidacy at once (C3), even while the handler
        waits for the candidate to read."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if stream.done:  # ended by the node (shutdown, a candidate that does not read)
                    candidacy.abandon()
                    return
                deadline = loop.time() + self._timeout
                if not await stream.room(deadline):
                    candidacy.abandon()
                    stream.fail(self._timed_out("and does not read its responses"), flush=False)
                    return
                try:
                    async with asyncio.timeout_at(deadline):  # no task per request, as wait_for
                        request = await anext(it)
                except StopAsyncIteration:  # half-closed: the candidate is done (C3)
                    candidacy.abandon()
                    stream.finish()
                    return
                except TimeoutError:
                    candidacy.abandon()
                    stream.fail(self._timed_out(""), flush=True)
                    return
                kind = request.WhichOneof("request")
                if kind == "ping":
                    stream.answer(candidacy.ping(request.ping.nonce))
                elif kind == "proclaim":
                    value_problem("proclaim.value", request.proclaim.value)
                    candidacy.proclaim(request.proclaim.epoch, bytes(request.proclaim.value))
                elif kind == "ack":
                    candidacy.ack(request.ack.epoch)
                elif kind == "resign":
                    stream.resigning()
                    candidacy.resign()  # then Lost(RESIGNED) and Ended arrive as events
                    return
                elif kind == "start":
                    raise InvalidArgument(
                        "start: sent twice (a Campaign stream has one start, its first request)"
                    )
                else:
                    raise InvalidArgument(
                        "request: empty CampaignRequest (set one of ping, proclaim, ack, resign)"
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the handler, which answers with it
            candidacy.abandon()
            stream.fail(exc, flush=True)

    def _timed_out(self, more: str) -> CandidateTimeout:
        text = f"no request for {self._timeout:g}s (--candidate-timeout)"
        return CandidateTimeout(f"{text} {more}".strip())

    def _close(self) -> None:
        """The hub closed (the node is shutting down): every stream still open ends with
        Lost(SHUTDOWN) and UNAVAILABLE."""
        for stream in list(self._streams):
            stream.shut_down()


_OK = object()  # the stream ends with status OK


class _Stream:
    """One candidate's responses: the inbox its events cross through, the order rules, the
    bounded outbox the handler sends from, and how the stream ends."""

    def __init__(self, hub: ViewHub, node_id: str, counters: CampaignCounters) -> None:
        self._hub = hub
        self._node_id = node_id
        self._counters = counters
        # Registry threads -> loop, under _lock.
        self._lock = threading.Lock()
        self._inbox: list[CandidateEvent] = []
        self._scheduled = False
        # Loop thread only from here on.
        self._outbox: deque[pb.CampaignResponse] = deque()
        self._tail: tuple[str, int] | None = None  # the replaceable last message, if any
        self._changed = asyncio.Event()
        self._state: tuple[str, int] = ("none", 0)  # what the events said last
        self._held: Leading | None = None  # a ping answer ahead of its term's Leading event
        self._end: object | BaseException | None = None
        self._flush = True
        self._resigning = False
        self._znode = ""  # the entry of the last Leading
        self.ended_by_registry = False

    # ----- registry threads --------------------------------------------------------------

    def on_event(self, event: CandidateEvent) -> None:
        with self._lock:
            self._inbox.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        if not self._hub.cross(self.drain):
            logger.debug("candidate event dropped: event loop closed")

    # ----- loop thread ---------------------------------------------------------------------

    def drain(self) -> None:
        with self._lock:
            events, self._inbox = self._inbox, []
            self._scheduled = False
        for event in events:
            self._event(event)

    def answer(self, event: CandidateEvent) -> None:
        """The answer to a ping (computed after it arrived), in order with the events."""
        self.drain()
        if isinstance(event, Leading):
            if event.lease_ms > 0:
                self._counters.grants += 1
            kind, epoch = self._state
            if kind == "leading" and epoch == event.epoch:
                self._push_state(event, ("leading", event.epoch))
            elif not (kind == "lost" and epoch >= event.epoch):
                self._held = event  # sent right after its term's Leading event
        elif isinstance(event, Queued):
            if self._state[0] != "leading":  # else a Lost is on its way: it answers
                self._push_state(event, ("queued", 0))
        else:
            self._event(event)

    @property
    def resigned_znode(self) -> str:
        """After a resignation that ended a term: that term's entry (else "")."""
        return self._znode if self._resigning and self._end is _OK else ""

    @property
    def done(self) -> bool:
        """The stream's end is decided (what is queued may still be sent)."""
        return self._end is not None

    def resigning(self) -> None:
        self._resigning = True
        self._hub.loop.call_later(RESIGN_WATCHDOG, self._resign_overdue)

    def _resign_overdue(self) -> None:
        if self._end is None:
            self.fail(
                RuntimeError(f"the candidacy did not end within {RESIGN_WATCHDOG:g}s of resign"),
                flush=True,
            )

    def finish(self) -> None:
        """End with status OK once everything queued is sent."""
        self._set_end(_OK, flush=True)

    def fail(self, exc: BaseException, flush: bool) -> None:
        """End with `exc`'s status (errors.py), after the queued messages when `flush`."""
        self._set_end(exc, flush)

    def shut_down(self) -> None:
        if self._end is not None:
            return
        self.drain()
        kind, epoch = self._state
        if kind == "leading":
            self._lost(epoch, LossReason.SHUTDOWN, "node is shutting down")
        self.fail(
            ShuttingDown(f"node {self._node_id} is shutting down; campaign through another node"),
            flush=True,
        )

    async def room(self, deadline: float) -> bool:
        """Wait until few responses wait unsent (False: `deadline` passed first)."""
        loop = asyncio.get_running_loop()
        while len(self._outbox) > OUTBOX_SOFT and self._end is None:
            left = deadline - loop.time()
            if left <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                return False
        return True

    async def messages(self) -> AsyncIterator[pb.CampaignResponse]:
        """What the handler sends, in order, then the end (return: OK; raise: its status)."""
        while True:
            end = self._end
            if self._outbox and (end is None or self._flush):
                message = self._outbox.popleft()
                if not self._outbox:
                    self._tail = None
                self._signal()
                yield message
                continue
            if end is _OK:
                return
            if isinstance(end, BaseException):
                raise end
            changed = self._changed
            await changed.wait()

    # ----- internals -----------------------------------------------------------------------

    def _event(self, event: CandidateEvent) -> None:
        if isinstance(event, Queued):
            self._state = ("queued", 0)
            self._push_state(event, ("queued", 0))
        elif isinstance(event, Leading):
            if event.lease_ms > 0:  # a term's first Leading answers the last ping received
                self._counters.grants += 1
            self._state = ("leading", event.epoch)
            self._znode = event.znode
            self._push_state(event, ("leading", event.epoch))
            held, self._held = self._held, None
            if held is not None and held.epoch == event.epoch:
                self._push_state(held, ("leading", held.epoch))
        elif isinstance(event, Lost):
            self._lost(event.epoch, event.reason, event.detail)
        elif isinstance(event, Proclaimed | Refused):
            self._push(convert.campaign_response(event, self._node_id))
        elif isinstance(event, Ended):
            self.ended_by_registry = True
            if event.reason is LossReason.RESIGNED and self._resigning:
                self.finish()
            elif event.reason is LossReason.SHUTDOWN:
                self.fail(
                    ShuttingDown(
                        f"node {self._node_id} is shutting down; campaign through another node"
                    ),
                    flush=True,
                )
            else:
                self.fail(
                    ShuttingDown(f"the candidacy ended on node {self._node_id}: {event.reason}"),
                    flush=True,
                )
        else:  # a new kind of event this servicer does not know: a bug, said loudly
            raise TypeError(f"unknown candidate event {event!r}")

    def _lost(self, epoch: int, reason: LossReason, detail: str) -> None:
        self._state = ("lost", epoch)
        if self._held is not None and self._held.epoch <= epoch:
            self._held = None
        self._counters.lost(reason)
        self._push(convert.campaign_response(Lost(epoch, reason, detail), self._node_id))

    def _push_state(self, event: Queued | Leading, tag: tuple[str, int]) -> None:
        if self._end is not None:  # the end is decided: nothing more goes out
            return
        message = convert.campaign_response(event, self._node_id)
        tail = self._tail
        if self._outbox and tail is not None and _replaces(tail, tag):
            self._outbox[-1] = message
        else:
            self._outbox.append(message)
        self._tail = tag
        self._after_push()

    def _push(self, message: pb.CampaignResponse) -> None:
        if self._end is not None:
            return
        self._outbox.append(message)
        self._tail = None
        self._after_push()

    def _after_push(self) -> None:
        if len(self._outbox) > OUTBOX_HARD and self._end is None:
            self.fail(
                CandidateNotReading(
                    f"more than {OUTBOX_HARD} responses wait unread; the candidate must read "
                    f"its stream"
                ),
                flush=False,
            )
        self._signal()

    def _set_end(self, end: object, flush: bool) -> None:
        if self._end is None:
            self._end, self._flush = end, flush
        self._signal()

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _replaces(tail: tuple[str, int], new: tuple[str, int]) -> bool:
    """May `new` replace an unsent `tail`? Queued by anything later of the same wait, Leading
    by a later Leading of the same term; never across a term's end."""
    if tail[0] == "queued":
        return new[0] in ("queued", "leading")
    return tail == new
