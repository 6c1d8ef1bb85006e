"""The blocking campaign helper: `Campaign` (what `ElectionClient.campaign` returns) and
`Term` (what the work gets). One driver thread per campaign feeds the shared state machine
(_campaign.py) and carries out its actions; each stream has a reader thread, each term's work
runs in a thread of its own. The work cannot be interrupted: it must poll `term.cancelled`
(or wait on it) and return; the campaign treats the term as over at its deadline whatever the
work does, so work that outlives `term.deadline` acts without leadership."""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from electd_client._campaign import (
    Answer,
    CampaignEvent,
    CampaignMachine,
    CancelWork,
    CloseStream,
    Connect,
    Emit,
    Finish,
    HalfClose,
    Send,
    Spec,
    StartWork,
    TermState,
)
from electd_client._common import ElectdError, connect_failure
from electd_client.v1 import election_service_pb2 as pb
from electd_client.v1 import election_service_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from electd_client._sync import ElectionClient

CampaignHook = Callable[[CampaignEvent], object]
POLLER_LINGER = 0.3
"""`on_event(event)`: called (on the campaign's thread) for every CampaignEvent."""


class Term:
    """One term of leadership, as the work sees it.

    `epoch` is the fencing token: pass it to every resource the work writes to. `deadline`
    (time.monotonic() seconds) is when leadership ends unless renewed; it only grows while the
    node keeps answering pings. `cancelled` is set when the term is ending (on loss, when the
    deadline comes within the safety margin, on resign or cancel): the work must then stop
    and return; the term is over at `deadline` whatever the work does."""

    def __init__(self, state: TermState, campaign: Campaign) -> None:
        self._state = state
        self._campaign = campaign
        self.cancelled = threading.Event()

    @property
    def epoch(self) -> int:
        return self._state.epoch

    @property
    def deadline(self) -> float:
        return self._state.deadline

    def remaining(self) -> float:
        """Seconds until the deadline (negative once it passed)."""
        return self._state.deadline - time.monotonic()

    def proclaim(self, value: bytes) -> int:
        """Campaign.proclaim for this term's epoch."""
        return self._campaign._proclaim(value, self._state.epoch)


class _Stream:
    """One Campaign call: its channel, the queue its requests come from, its reader."""

    def __init__(self, serial: int, address: str) -> None:
        self.serial = serial
        self.address = address
        self.requests: queue.SimpleQueue[pb.CampaignRequest | None] = queue.SimpleQueue()
        self.call: Any = None
        self.closed = False
        # Also the condition the connection wait watches, so that close() ends it at once.
        self.lock = threading.Condition()

    def request_iterator(self) -> Iterator[pb.CampaignRequest]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        """Cancel the call (or end the connection wait); the stream's own thread then closes
        the channel (closing it under grpc's connectivity poller would fail that thread)."""
        with self.lock:
            self.closed = True
            call = self.call
            self.lock.notify_all()
        self.requests.put(None)
        if call is not None:
            call.cancel()


class Campaign:
    """A running campaign (see ElectionClient.campaign). Thread-safe.

    `resign()` cancels the work, waits for it, resigns and waits for the node to end the
    stream; `cancel()` (also from a signal handler) asks the campaign to end without resigning
    and returns at once; `wait(timeout)` says whether it ended; `result(timeout)` waits and
    returns the work's return value (None when it ended otherwise), or raises the work's
    error or the campaign's ElectdError. `proclaim(value)` changes the leader's value."""

    def __init__(
        self,
        client: ElectionClient,
        spec: Spec,
        work: Callable[[Term], Any] | None,
        on_event: CampaignHook | None,
    ) -> None:
        self.election = spec.election
        self.candidate_id = spec.candidate_id
        self._client = client
        self._work = work
        self._on_event = on_event
        self._machine = CampaignMachine(
            spec,
            client.addresses,
            client._current,
            client.call_timeout,
            client.connect_timeout,
            client.first_message_timeout,
        )
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        self._stream: _Stream | None = None
        self._terms: dict[int, tuple[Term, threading.Thread]] = {}
        self._current: Term | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"electd-campaign-{spec.election}", daemon=True
        )
        self._thread.start()

    # ----- the caller's side --------------------------------------------------------------------

    @property
    def term(self) -> Term | None:
        """The term whose work runs now, if any."""
        return self._current

    def resign(self, wait: bool = True) -> None:
        """End the campaign gracefully: cancel the work, wait for it, send `resign`; with
        `wait` (default) return once the campaign ended (from the work's own thread, or with
        wait=False, e.g. in a signal handler: at once)."""
        self._inbox.put(("resign",))
        if wait and not self._in_work():
            self._done.wait()

    def cancel(self) -> None:
        """End the campaign without resigning (the node removes the entry at once, or once
        the lease it granted last ran out); returns at once. Safe in a signal handler."""
        self._inbox.put(("cancel",))

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the campaign ended (within `timeout` seconds; None: wait for it)."""
        return self._done.wait(timeout)

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the end: the work's return value when it returned on its own (None
        otherwise); raises the work's error, the campaign's ElectdError, or TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the campaign in {self.election!r} is still running")
        if self._error is not None:
            raise self._error
        return self._value

    def proclaim(self, value: bytes) -> int:
        """Set the leader's value in the current term: returns the new value_revision, or
        raises ElectdError (FAILED_PRECONDITION when not leading or refused; UNAVAILABLE or
        DEADLINE_EXCEEDED when the node did not answer)."""
        return self._proclaim(value, None)

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.resign()

    # ----- the driver ----------------------------------------------------------------------------

    def _in_work(self) -> bool:
        me = threading.current_thread()
        return any(thread is me for _, thread in list(self._terms.values()))

    def _proclaim(self, value: bytes, epoch: int | None) -> int:
        if not isinstance(value, bytes):
            raise ElectdError(f"proclaim: want bytes, got {type(value).__name__}")
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._inbox.put(("proclaim", future, value, epoch))
        try:
            return future.result(self._client.call_timeout)
        except concurrent.futures.TimeoutError:
            text = f"proclaim: no answer within the call deadline ({self._client.call_timeout:g}s)"
            raise ElectdError(text, grpc.StatusCode.DEADLINE_EXCEEDED, text) from None

    def _run(self) -> None:
        machine = self._machine
        try:
            self._execute(machine.tick(time.monotonic()))
            while not self._done.is_set():
                wake = machine.next_wakeup()
                timeout = None if wake is None else max(0.0, wake - time.monotonic())
                try:
                    item = self._inbox.get(timeout=timeout)
                except queue.Empty:
                    item = None
                now = time.monotonic()
                actions = self._machine.dispatch(item, now) if item is not None else []
                self._execute(actions + machine.tick(time.monotonic()))
        except BaseException as exc:  # a bug here must not leave the work running unseen
            self._finish(None, exc)
            raise

    def _execute(self, actions: list[Any]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Send):
                if self._stream is not None:
                    self._stream.requests.put(action.request)
            elif isinstance(action, HalfClose):
                if self._stream is not None:
                    self._stream.requests.put(None)
            elif isinstance(action, Connect):
                self._connect(action)
            elif isinstance(action, CloseStream):
                if self._stream is not None:
                    self._stream.close()
                    self._stream = None
            elif isinstance(action, StartWork):
                self._start_work(action.term)
            elif isinstance(action, CancelWork):
                entry = self._terms.get(id(action.term))
                if entry is not None:
                    entry[0].cancelled.set()
            elif isinstance(action, Emit):
                if self._on_event is not None:
                    try:
                        self._on_event(action.event)
                    except Exception as exc:  # noqa: BLE001  (the hook's failure ends the campaign with it)
                        pending += self._machine.cancel(time.monotonic(), exc)
            elif isinstance(action, Answer):
                future = action.token
                assert isinstance(future, concurrent.futures.Future)
                if not future.done():
                    if action.error is not None:
                        future.set_exception(action.error)
                    else:
                        future.set_result(action.revision)
            elif isinstance(action, Finish):
                self._finish(action.value, action.error)

    def _finish(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error = value, error
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        for term, _ in list(self._terms.values()):
            term.cancelled.set()
        self._done.set()

    def _connect(self, action: Connect) -> None:
        if self._stream is not None:
            self._stream.close()
        stream = self._stream = _Stream(action.serial, action.address)
        threading.Thread(
            target=self._open, args=(stream,), name="electd-campaign-stream", daemon=True
        ).start()

    def _open(self, stream: _Stream) -> None:
        """The stream's thread: connect (under the connect deadline), open the call, read."""
        from electd_client._sync import _settle

        client = self._client
        channel = client.transport.channel(stream.address, client.options)
        settled_at = time.monotonic()
        try:
            ready = _settle(channel, client.connect_timeout, stream.lock, lambda: stream.closed)
            settled_at = time.monotonic()
            if not ready:
                if not stream.closed:
                    failure = connect_failure(stream.address, client.connect_timeout)
                    self._inbox.put(("connect_failed", stream.serial, failure))
                return
            stub = pb_grpc.ElectionServiceStub(channel)  # type: ignore[no-untyped-call]
            with stream.lock:
                if stream.closed:
                    return
                # The start request is queued (by `opened`) before the call takes its first.
                self._inbox.put(("opened", stream.serial))
                call = stub.Campaign(stream.request_iterator(), wait_for_ready=False)
                stream.call = call
            try:
                for msg in call:
                    self._inbox.put(("message", stream.serial, msg))
                self._inbox.put(("ended", stream.serial, None, ""))
            except grpc.RpcError as exc:
                self._inbox.put(("ended", stream.serial, exc.code(), exc.details() or ""))
        finally:
            # grpc's connectivity poller (of _settle's subscribe) runs on for up to 0.2 s
            # after unsubscribe, and a channel closed under it fails that thread.
            time.sleep(max(0.0, settled_at + POLLER_LINGER - time.monotonic()))
            channel.close()

    def _start_work(self, state: TermState) -> None:
        term = Term(state, self)
        work = self._work
        assert work is not None

        def run() -> None:
            value: Any = None
            error: BaseException | None = None
            try:
                value = work(term)
            except BaseException as exc:  # noqa: BLE001  (returned to the caller by result())
                error = exc
            self._inbox.put(("work", state, value, error))
            self._terms.pop(id(state), None)
            if self._current is term:
                self._current = None

        thread = threading.Thread(target=run, name=f"electd-term-{state.epoch}", daemon=True)
        self._terms[id(state)] = (term, thread)
        self._current = term
        thread.start()
