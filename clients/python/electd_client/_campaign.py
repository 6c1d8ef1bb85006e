"""The campaign helper's state machine, shared by the blocking and the asyncio client: "run
this work while leader; it is cancelled before the lease deadline passes; on loss it
re-campaigns or stops, as asked" (clients/README.md, the campaign helper; the protocol is the
Campaign RPC of proto/electd/v1/election_service.proto).

`CampaignMachine` owns every decision and does no I/O and reads no clock: the drivers
(_campaign_sync.py, _campaign_aio.py) feed it what happened (a stream opened, a message, the
stream's end, the work's end, the caller's resign/cancel/proclaim) with the monotonic time
`now`, call `tick(now)` at `next_wakeup()`, and carry out the actions it returns (`Send`,
`HalfClose`, `Connect`, `CloseStream`, `StartWork`, `CancelWork`, `Emit`, `Answer`, `Finish`).

The rules it keeps:
* deadline = send time of ping `nonce` + lease_ms, the max over the Leading answers of the
  current epoch; the work starts only when that deadline is more than the safety margin
  (10 % of the lease, at least 50 ms) ahead, and is cancelled when it comes within the margin
  without being extended, on Lost, on a broken stream, or on the caller's resign/cancel;
* a term is over once its work stopped, or at its deadline whatever the work does; only then
  is a Lost acknowledged, the campaign resigned, or another stream opened;
* never a term (or a `leading` event) with an epoch at or below one already run;
* pings every `ping_interval`, never more than a third of the last lease granted apart;
* failover of the stream as the client contract says (UNAVAILABLE, DEADLINE_EXCEEDED,
  RESOURCE_EXHAUSTED, CANCELLED by the node, connect failure, no first message within the
  first-message deadline, stream end -> next address; backoff after a round; a first round in
  which no node answered ends the campaign with `no_node_answered`); ALREADY_EXISTS right after
  one of this campaign's own streams ended is the node still holding that old candidacy, and is
  retried like a failover for REOPEN_GRACE seconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from electd_client._common import (
    FAILOVER_CODES,
    ElectdError,
    Failure,
    WatchState,
    connect_failure,
    ended_failure,
    first_message_failure,
)
from electd_client.v1 import election_service_pb2 as pb

RECAMPAIGN = "recampaign"
STOP = "stop"
ON_LOSS = (RECAMPAIGN, STOP)

PING_INTERVAL = 0.5
"""Default seconds between pings."""
MIN_MARGIN = 0.05
"""The safety margin before the deadline is at least this many seconds ..."""
MARGIN_FRACTION = 0.1
"""... and otherwise this fraction of the lease."""
REOPEN_GRACE = 15.0
"""How long after one of its streams ended ALREADY_EXISTS is taken for the node still holding
that stream's candidacy (the node keeps it up to --candidate-timeout, default 5 s, plus the
last lease), not for another candidate with the same id."""
REPING = 0.01
"""A Leading without a usable deadline answering the latest ping: the next ping this soon."""
MAX_NONCES = 256
"""Send times remembered for pings not answered yet (the oldest are forgotten first)."""

# Why a term ended, as events report it (the same words in every client): the proto's
# LossReason names without their prefix, in lower case, and the client's own.
RESIGNED = "resigned"  # the candidate resigned (its work returned or failed, or the caller)
EXPIRED = "expired"  # the deadline came within the margin without being extended
DISCONNECTED = "disconnected"  # the stream broke (the node is gone or unreachable)
CANCELLED = "cancelled"  # the caller cancelled the campaign, or it failed
UNKNOWN = "unknown"  # a reason this client does not know, or a message that ends the term


def margin_for(lease: float) -> float:
    """The safety margin before a deadline granted with a lease of `lease` seconds."""
    return max(MIN_MARGIN, MARGIN_FRACTION * lease)


def loss_reason(value: int) -> str:
    if value in pb.LossReason.values():
        name = str(pb.LossReason.Name(pb.LossReason.ValueType(value)))
        return name.removeprefix("LOSS_REASON_").lower()
    return UNKNOWN


@dataclass(frozen=True)
class CampaignEvent:
    """What happened to a campaign, for logs (`on_event(event)`):

    * `queued`: waiting (`position` entries ahead, `waiting_for` the candidate id just
      ahead, `never_lead` for a member-only candidate); sent when the place changes;
    * `leading`: a term with `epoch` started (the work runs);
    * `lost`: the term `epoch` ended, `reason` one of resigned, deleted, preempted, zookeeper,
      shutdown (the node's LossReason), expired (the deadline came within the safety margin
      unextended), disconnected (the stream broke), cancelled (the caller cancelled),
      unknown; `detail` for people;
    * `failover`: the stream left `address` (`reason` why), as the watch's on_failover;
    * `refused`: the node refused a request (`reason`, `detail`);
    * `stopped`: the campaign ended (`reason`: resigned, returned, failed, cancelled, lost).
    """

    kind: str
    epoch: int = 0
    position: int = 0
    waiting_for: str = ""
    never_lead: bool = False
    reason: str = ""
    detail: str = ""
    address: str = ""


# ----- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Write this request on the current stream."""

    request: pb.CampaignRequest


@dataclass(frozen=True)
class HalfClose:
    """No more requests on the current stream."""


@dataclass(frozen=True)
class Connect:
    """Open stream number `serial` to `address` (connect deadline included); report
    `opened(serial)` or `connect_failed(serial)`, then its messages and its end."""

    address: str
    serial: int


@dataclass(frozen=True)
class CloseStream:
    """Cancel the current stream (and its connection attempt); its end is not reported."""


@dataclass(frozen=True)
class StartWork:
    """Start the work for this term (the driver reports `work_stopped(epoch, ...)`)."""

    term: TermState


@dataclass(frozen=True)
class CancelWork:
    """Tell the work of this term to stop (blocking: set its event; asyncio: cancel it)."""

    term: TermState


@dataclass(frozen=True)
class Emit:
    event: CampaignEvent


@dataclass(frozen=True)
class Answer:
    """The outcome of a proclaim: the new value_revision, or the error."""

    token: object
    revision: int = 0
    error: ElectdError | None = None


@dataclass(frozen=True)
class Finish:
    """The campaign is over: the work's return value, or the error to raise."""

    value: Any = None
    error: BaseException | None = None


Action = Send | HalfClose | Connect | CloseStream | StartWork | CancelWork | Emit | Answer | Finish


@dataclass(eq=False)
class TermState:
    """One term as the machine sees it. `deadline` (monotonic seconds) only grows."""

    epoch: int
    deadline: float = 0.0
    lease: float = 0.0  # seconds, of the answer that set the deadline
    started: bool = False  # the work was started (a `leading` event was emitted)
    running: bool = False  # the work runs (started and not stopped yet)
    ended: str = ""  # why the term ended ("" while it lasts)
    detail: str = ""
    ack_owed: bool = False  # a Lost arrived that is not acknowledged yet

    @property
    def margin(self) -> float:
        return margin_for(self.lease)


@dataclass(frozen=True)
class Spec:
    """What the caller asked for."""

    election: str
    candidate_id: str
    value: bytes = b""
    labels: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    never_lead: bool = False
    on_loss: str = RECAMPAIGN
    ping_interval: float = PING_INTERVAL
    has_work: bool = True

    def check(self) -> None:
        """ElectdError (INVALID_ARGUMENT) for arguments no node would accept."""

        def bad(message: str) -> ElectdError:
            return ElectdError(message, grpc.StatusCode.INVALID_ARGUMENT, message)

        if not isinstance(self.election, str) or not self.election:
            raise bad("election: want the name of a named election")
        if not isinstance(self.candidate_id, str) or not self.candidate_id:
            raise bad("candidate_id: want a non-empty candidate id")
        if not isinstance(self.value, bytes):
            raise bad(f"value: want bytes, got {type(self.value).__name__}")
        if self.on_loss not in ON_LOSS:
            raise bad(f"on_loss: want {' or '.join(map(repr, ON_LOSS))}, got {self.on_loss!r}")
        if not self.ping_interval > 0:
            raise bad(f"ping_interval: want seconds > 0, got {self.ping_interval!r}")
        if isinstance(self.priority, bool) or not -(2**31) <= self.priority < 2**31:
            raise bad(f"priority: want a 32-bit integer, got {self.priority!r}")

    def start(self) -> pb.CampaignRequest:
        return pb.CampaignRequest(
            start=pb.CampaignStart(
                election=self.election,
                candidate_id=self.candidate_id,
                value=self.value,
                labels=dict(self.labels),
                priority=self.priority,
                never_lead=self.never_lead,
            )
        )


class CampaignMachine:
    """The campaign's decisions (see the module's comment). Not thread-safe: one driver
    feeds it from one thread (or one event loop)."""

    def __init__(
        self,
        spec: Spec,
        addresses: Sequence[str],
        start_index: int,
        call_timeout: float,
        connect_timeout: float,
        first_message_timeout: float,
    ) -> None:
        self.spec = spec
        self.rotation = WatchState(addresses, start_index, 0, None)
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.first_message_timeout = first_message_timeout
        self.done = False
        self.last_epoch = 0  # the highest epoch a term was started with
        self.term: TermState | None = None
        # The current stream: serial (0: none), connecting, open, what was sent on it.
        self.serials = 0
        self.serial = 0
        self.connecting = False
        self.open = False
        self.half_closed = False
        self.got_message = False
        self.first_by: float | None = None
        self.connect_at: float | None = 0.0  # connect as soon as the driver ticks
        self.reconnect_delay: float | None = None  # once the term is over
        self.stream_lost_at: float | None = None  # when a stream that had answered ended
        self.nonce = 0
        self.sent: dict[int, float] = {}
        self.next_ping: float | None = None
        self.last_ping_at = 0.0
        self.lease = 0.0  # the last lease granted, seconds
        self.last_queued: tuple[int, str, bool] | None = None
        self.proclaims: deque[object] = deque()
        # Ending: what to return once the work stopped, and how (resign or cancel).
        self.goal: Finish | None = None
        self.how = ""
        self.stopped_reason = ""
        self.resign_sent = False
        self.ending_by: float | None = None
        self.after_end = ""  # "finish" or "reconnect", once a resigned stream ended

    # ----- inputs ------------------------------------------------------------------------------

    def dispatch(self, item: tuple[Any, ...], now: float) -> list[Action]:
        """One input of a driver (its queue's items: `(kind, *args)`), fed to the step it names;
        both drivers (threads and asyncio) queue the same items."""
        kind = item[0]
        if kind == "opened":
            return self.opened(item[1], now)
        if kind == "connect_failed":
            return self.connect_failed(item[1], now, item[2])
        if kind == "message":
            return self.received(item[1], item[2], now)
        if kind == "ended":
            return self.ended(item[1], item[2], item[3], now)
        if kind == "work":
            return self.work_stopped(item[1], item[2], item[3], now)
        if kind == "resign":
            return self.resign(now)
        if kind == "cancel":
            return self.cancel(now)
        if kind == "proclaim":
            return self.proclaim(item[1], item[2], item[3], now)
        raise AssertionError(f"unknown campaign input {kind!r}")

    def tick(self, now: float) -> list[Action]:
        """Timers: connect, first-message deadline, pings, the safety margin, the deadline,
        the wait for a resigned stream's end."""
        out: list[Action] = []
        if self.done:
            return out
        if self.connect_at is not None and now >= self.connect_at and self.serial == 0:
            self.connect_at = None
            self.serials += 1
            self.serial = self.serials
            self.connecting = True
            out.append(Connect(self.rotation.address, self.serial))
        if (
            self.open
            and not self.got_message
            and self.first_by is not None
            and now >= self.first_by
        ):
            out.append(CloseStream())
            failure = first_message_failure(self.rotation.address, self.first_message_timeout)
            out += self._failover(failure, now)
        if (
            self.open
            and not self.half_closed
            and self.next_ping is not None
            and now >= self.next_ping
        ):
            out.append(self._ping(now))
        t = self.term
        if t is not None and t.started and not t.ended and now >= t.deadline - t.margin:
            out += self._end_term(
                EXPIRED, "the lease deadline came within the safety margin unextended", now
            )
        if self.ending_by is not None and now >= self.ending_by and self.open:
            # The node did not end a resigned stream in time: leave it.
            out.append(CloseStream())
            out += self._stream_gone(now)
        out += self._settle(now)
        return out

    def next_wakeup(self) -> float | None:
        """When `tick` has something to do (monotonic seconds), None: nothing timed."""
        if self.done:
            return None
        times = [self.connect_at, self.ending_by]
        if self.open and not self.got_message:
            times.append(self.first_by)
        if self.open and not self.half_closed:
            times.append(self.next_ping)
        t = self.term
        if t is not None and t.started and not t.ended:
            times.append(t.deadline - t.margin)
        if t is not None and t.ended and t.running:
            times.append(t.deadline)
        found = [x for x in times if x is not None]
        return min(found) if found else None

    def opened(self, serial: int, now: float) -> list[Action]:
        """Stream `serial` is open: start, then the first ping."""
        if serial != self.serial or self.done:
            return []
        self.connecting, self.open, self.half_closed = False, True, False
        self.got_message, self.resign_sent, self.after_end = False, False, ""
        self.first_by = now + self.first_message_timeout
        self.sent.clear()  # nonces answer pings of their own stream only
        self.last_queued = None
        return [Send(self.spec.start()), self._ping(now)]

    def connect_failed(
        self, serial: int, now: float, failure: Failure | None = None
    ) -> list[Action]:
        if serial != self.serial or self.done:
            return []
        self.connecting = False
        failure = failure or connect_failure(self.rotation.address, self.connect_timeout)
        return self._failover(failure, now) + self._settle(now)

    def received(self, serial: int, msg: pb.CampaignResponse, now: float) -> list[Action]:
        if serial != self.serial or not self.open or self.done:
            return []
        out: list[Action] = []
        if not self.got_message:
            self.got_message = True
            self.first_by = None
            self.rotation.heard()
        kind = msg.WhichOneof("response")
        if kind == "queued":
            out += self._queued(msg.queued, now)
        elif kind == "leading":
            out += self._leading(msg.leading, now)
        elif kind == "lost":
            out += self._lost(msg.lost, now)
        elif kind == "proclaimed":
            if self.proclaims:
                out.append(Answer(self.proclaims.popleft(), msg.proclaimed.value_revision))
        elif kind == "refused":
            refused = msg.refused
            if refused.request == "proclaim" and self.proclaims:
                text = f"proclaim refused: {refused.reason}"
                error = ElectdError(
                    text,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    refused.reason,
                    [self.rotation.address],
                )
                out.append(Answer(self.proclaims.popleft(), error=error))
            else:
                event = CampaignEvent(
                    "refused",
                    reason=refused.request,
                    detail=refused.reason,
                    address=self.rotation.address,
                )
                out.append(Emit(event))
        return out + self._settle(now)

    def ended(
        self, serial: int, code: grpc.StatusCode | None, details: str, now: float
    ) -> list[Action]:
        """Stream `serial` ended: `code` None for its end without a status (EOF), else the
        status (OK included)."""
        if serial != self.serial or self.done:
            return []
        address = self.rotation.address
        if self.resign_sent:
            return self._stream_gone(now) + self._settle(now)
        if code is None or code == grpc.StatusCode.OK:
            failure = ended_failure(address)
        elif code in FAILOVER_CODES or code == grpc.StatusCode.CANCELLED:
            failure = Failure(address, code, details, answered=self.got_message)
        elif (
            code == grpc.StatusCode.ALREADY_EXISTS
            and self.stream_lost_at is not None
            and now - self.stream_lost_at < REOPEN_GRACE
        ):
            failure = Failure(address, code, f"{details} (the old stream's candidacy?)", True)
        else:
            error = ElectdError(f"{address}: {code.name}: {details}", code, details, [address])
            self.open, self.serial = False, 0
            out = self._fail_pending(error)
            self._set_goal(Finish(error=error), "cancel", "failed")
            return out + self._end_term(DISCONNECTED, str(error), now) + self._settle(now)
        return self._failover(failure, now) + self._settle(now)

    def work_stopped(
        self, term: TermState, value: Any, error: BaseException | None, now: float
    ) -> list[Action]:
        """The work of `term` returned `value` or raised `error` (after cancellation or on its
        own)."""
        out: list[Action] = []
        term.running = False
        if self.done:
            return out
        if error is not None:
            # Work failing = resign, and the error is the campaign's result (also when it
            # failed while being cancelled: never dropped).
            self._set_goal(Finish(error=error), "resign", "failed")
            if term is self.term:
                out += self._end_term(RESIGNED, f"the work failed: {error!r}", now)
        elif not term.ended and term is self.term:
            # Returned on its own while leading: the candidate resigns, the campaign ends.
            self._set_goal(Finish(value), "resign", "returned")
            out += self._end_term(RESIGNED, "the work returned", now)
        return out + self._settle(now)

    def resign(self, now: float) -> list[Action]:
        """The caller resigns: the work is cancelled and waited for, `resign` is sent, and the
        campaign ends once the node ended the stream."""
        if self.done:
            return []
        self._set_goal(Finish(), "resign", "resigned")
        return self._end_term(RESIGNED, "resigned by the caller", now) + self._settle(now)

    def cancel(self, now: float, error: BaseException | None = None) -> list[Action]:
        """The caller cancels (or the campaign fails with `error`): the work is cancelled and
        waited for, then the stream is dropped without resigning (the node removes the entry
        at once, or once the lease it granted last ran out)."""
        if self.done:
            return []
        if error is not None:
            self.goal, self.how, self.stopped_reason = Finish(error=error), "cancel", "failed"
        else:
            self._set_goal(Finish(), "cancel", "cancelled")
        return self._end_term(CANCELLED, "the campaign was cancelled", now) + self._settle(now)

    def proclaim(self, token: object, value: bytes, epoch: int | None, now: float) -> list[Action]:
        """Proclaim `value` in the current term (or in `epoch`, which must be it)."""
        t = self.term
        if (
            self.done
            or t is None
            or not t.started
            or t.ended
            or not self.open
            or self.half_closed
            or (epoch is not None and epoch != t.epoch)
        ):
            what = f"epoch {epoch}" if epoch is not None else "this candidate"
            text = f"proclaim: {what} does not lead {self.spec.election!r} now"
            error = ElectdError(text, grpc.StatusCode.FAILED_PRECONDITION, text)
            return [Answer(token, error=error)]
        self.proclaims.append(token)
        request = pb.CampaignRequest(proclaim=pb.CampaignProclaim(epoch=t.epoch, value=value))
        return [Send(request)]

    # ----- messages ----------------------------------------------------------------------------

    def _queued(self, q: pb.CampaignQueued, now: float) -> list[Action]:
        out: list[Action] = []
        t = self.term
        if t is not None and not t.ended:
            if t.started:
                out += self._end_term(UNKNOWN, "the node reports the candidate queued", now)
            else:
                self.term = None  # led without a lease and no longer: nothing ran
        key = (q.position, q.waiting_for, q.never_lead)
        if key != self.last_queued:
            self.last_queued = key
            out.append(
                Emit(
                    CampaignEvent(
                        "queued",
                        position=q.position,
                        waiting_for=q.waiting_for,
                        never_lead=q.never_lead,
                        address=self.rotation.address,
                    )
                )
            )
        return out

    def _leading(self, msg: pb.CampaignLeading, now: float) -> list[Action]:
        out: list[Action] = []
        t = self.term
        if t is None or t.epoch != msg.epoch:
            if msg.epoch <= self.last_epoch or (t is not None and msg.epoch < t.epoch):
                return out  # a term already run (or older than the current one): never again
            if t is not None and t.started:
                # A new epoch while ours was not lost: ours is over. The new one is taken from
                # a later answer, once ours is settled.
                detail = f"the node reports epoch {msg.epoch} leading"
                return self._end_term(UNKNOWN, detail, now)
            t = self.term = TermState(msg.epoch)
        self.last_queued = None
        if t.ended:
            return out
        sent_at = self.sent.get(msg.nonce) if msg.nonce else None
        for nonce in [n for n in self.sent if n < msg.nonce]:
            del self.sent[nonce]  # answers come in order: older pings will not be answered
        if sent_at is not None and msg.lease_ms > 0:
            lease = msg.lease_ms / 1000.0
            self.lease = lease
            if self.next_ping is not None:  # a third of this lease at most after the last ping
                self.next_ping = min(self.next_ping, self.last_ping_at + lease / 3)
            if sent_at + lease > t.deadline:
                t.deadline, t.lease = sent_at + lease, lease
        if t.started or self.goal is not None:
            return out
        if t.deadline - t.margin > now:
            t.started, t.running = True, self.spec.has_work
            self.last_epoch = t.epoch
            out.append(Emit(CampaignEvent("leading", epoch=t.epoch, address=self.rotation.address)))
            if t.running:
                out.append(StartWork(t))
        elif msg.nonce == self.nonce or not self.sent:
            # No deadline to act on, and no newer ping of ours on its way: ping (soon) for one.
            soon = now + REPING
            self.next_ping = soon if self.next_ping is None else min(self.next_ping, soon)
        return out

    def _lost(self, msg: pb.CampaignLost, now: float) -> list[Action]:
        reason = loss_reason(msg.reason)
        t = self.term
        if t is not None and t.epoch == msg.epoch:
            t.ack_owed = reason != RESIGNED
            return self._end_term(reason, msg.detail, now)
        # A term this candidate is not running (never started, or already over): nothing of
        # it runs, so acknowledge at once.
        if reason != RESIGNED and self.open and not self.half_closed:
            return [Send(pb.CampaignRequest(ack=pb.CampaignAck(epoch=msg.epoch)))]
        return []

    # ----- plumbing ----------------------------------------------------------------------------

    def _ping(self, now: float) -> Send:
        self.nonce += 1
        self.sent[self.nonce] = self.last_ping_at = now
        while len(self.sent) > MAX_NONCES:
            del self.sent[min(self.sent)]
        interval = self.spec.ping_interval
        if self.lease > 0:
            interval = min(interval, self.lease / 3)
        self.next_ping = now + interval
        return Send(pb.CampaignRequest(ping=pb.CampaignPing(nonce=self.nonce)))

    def _set_goal(self, goal: Finish, how: str, reason: str) -> None:
        if self.goal is None:
            self.goal, self.how, self.stopped_reason = goal, how, reason
        elif how == "cancel" and self.how == "resign" and not self.resign_sent:
            self.how = "cancel"  # a cancel overtakes a resign that has not begun

    def _end_term(self, reason: str, detail: str, now: float) -> list[Action]:
        """The current term is over for `reason`: report it (once), cancel its work."""
        t = self.term
        out: list[Action] = []
        if t is None or t.ended:
            return out
        t.ended, t.detail = reason, detail
        if not t.started:
            self.term = None  # nothing ran: nothing to wait for
            if t.ack_owed and self.open and not self.half_closed:
                out.append(Send(pb.CampaignRequest(ack=pb.CampaignAck(epoch=t.epoch))))
            return out
        event = CampaignEvent(
            "lost", epoch=t.epoch, reason=reason, detail=detail, address=self.rotation.address
        )
        out.append(Emit(event))
        if t.running:
            out.append(CancelWork(t))
        return out

    def _fail_pending(self, error: ElectdError) -> list[Action]:
        out: list[Action] = [Answer(token, error=error) for token in self.proclaims]
        self.proclaims.clear()
        return out

    def _stream_gone(self, now: float) -> list[Action]:
        """The current stream ended after this campaign resigned on it (or gave up waiting)."""
        self.open, self.serial, self.ending_by = False, 0, None
        text = "the stream ended"
        out = self._fail_pending(ElectdError(text, grpc.StatusCode.UNAVAILABLE, text))
        if self.after_end == "reconnect" and self.goal is None:
            self.reconnect_delay = 0.0
        return out

    def _failover(self, failure: Failure, now: float) -> list[Action]:
        """Leave the current address (its stream or its connection attempt failed)."""
        out: list[Action] = []
        had_stream = self.open
        if self.got_message:
            self.stream_lost_at = now
        self.open, self.connecting, self.serial, self.first_by = False, False, 0, None
        out += self._fail_pending(
            ElectdError(str(failure), failure.code, failure.details, [failure.address])
        )
        event = CampaignEvent("failover", reason=failure.reason, address=failure.address)
        out.append(Emit(event))
        try:
            delay = self.rotation.leave(failure, self.got_message)
        except ElectdError as exc:  # no node answered at all in the first round
            self._set_goal(Finish(error=exc), "cancel", "failed")
            out += self._end_term(DISCONNECTED, str(exc), now)
            return out
        self.reconnect_delay = delay or 0.0
        if had_stream:
            out += self._end_term(DISCONNECTED, failure.reason, now)
        return out

    def _settle(self, now: float) -> list[Action]:
        """Move on as far as the work allows: a term whose work stopped (or whose deadline
        passed) is over: acknowledge it, then resign / finish / reconnect as decided."""
        out: list[Action] = []
        if self.done:
            return out
        t = self.term
        if t is not None and t.ended and (not t.running or now >= t.deadline):
            self.term = None
            if t.ack_owed and self.open and not self.half_closed:
                t.ack_owed = False
                out.append(Send(pb.CampaignRequest(ack=pb.CampaignAck(epoch=t.epoch))))
            if self.goal is None and t.ended in (EXPIRED, UNKNOWN) and self.open:
                # The node may still count this candidate as its leader while it no longer
                # acts as one: leave this entry (resign on the stream), then campaign again
                # (or stop).
                self.after_end = "reconnect" if self.spec.on_loss == RECAMPAIGN else "finish"
                out += self._send_resign(now)
                if self.spec.on_loss == STOP:
                    self._set_goal(Finish(), "resign", "lost")
            elif self.goal is None and self.spec.on_loss == STOP:
                self._set_goal(Finish(), "resign", "lost")
        if self.term is not None and self.term.running:
            return out  # wait for the work (or its deadline)
        if self.goal is not None:
            if self.how == "resign" and self.open:
                if not self.resign_sent:
                    self.after_end = "finish"
                    out += self._send_resign(now)
                elif self.after_end != "finish":
                    self.after_end = "finish"
                return out  # finished once the node ends the stream
            if self.serial != 0:
                out.append(CloseStream())
                self.open, self.serial = False, 0
            out += self._fail_pending(
                ElectdError("the campaign ended", grpc.StatusCode.CANCELLED, "campaign ended")
            )
            self.done = True
            out.append(Emit(CampaignEvent("stopped", reason=self.stopped_reason)))
            out.append(self.goal)
            return out
        if self.reconnect_delay is not None and self.serial == 0 and self.term is None:
            self.connect_at = now + self.reconnect_delay
            self.reconnect_delay = None
        return out

    def _send_resign(self, now: float) -> list[Action]:
        if self.resign_sent or not self.open:
            return []
        self.resign_sent, self.half_closed = True, True
        self.ending_by = now + self.call_timeout
        self.next_ping = None
        return [Send(pb.CampaignRequest(resign=pb.CampaignResign())), HalfClose()]
