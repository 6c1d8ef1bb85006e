"""The asyncio campaign helper: `Campaign` (what `electd_client.aio.ElectionClient.campaign`
returns) and `Term` (what the work coroutine gets). One driver task per campaign feeds the
shared state machine (_campaign.py) and carries out its actions; each stream has a reader and
a writer task; each term's work is a task, cancelled (CancelledError inside the work) when the
term is ending, before its deadline. Use a campaign from the event loop it was started on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
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
    from electd_client.aio import ElectionClient

CampaignHook = Callable[[CampaignEvent], object]


class Term:
    """One term of leadership, as the work coroutine sees it: `epoch` (the fencing token),
    `deadline` (time.monotonic() seconds; it only grows while pings are answered) and
    `cancelled` (an asyncio.Event set when the term is ending; the work's task is cancelled at
    the same moment, before the deadline)."""

    def __init__(self, state: TermState, campaign: Campaign) -> None:
        self._state = state
        self._campaign = campaign
        self.cancelled = asyncio.Event()

    @property
    def epoch(self) -> int:
        return self._state.epoch

    @property
    def deadline(self) -> float:
        return self._state.deadline

    def remaining(self) -> float:
        return self._state.deadline - time.monotonic()

    async def proclaim(self, value: bytes) -> int:
        """Campaign.proclaim for this term's epoch."""
        return await self._campaign._proclaim(value, self._state.epoch)


class _Stream:
    def __init__(self, serial: int, address: str) -> None:
        self.serial = serial
        self.address = address
        self.requests: asyncio.Queue[pb.CampaignRequest | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()


class Campaign:
    """A running campaign (see ElectionClient.campaign), the blocking Campaign's twin:
    `await resign()`, `cancel()` (from the loop's thread, e.g. a signal handler callback),
    `await wait()`, `await result()`, `await proclaim(value)`; `async with` resigns on exit.
    Cancelling a task that awaits `wait()` or `result()` cancels the campaign too."""

    def __init__(
        self,
        client: ElectionClient,
        spec: Spec,
        work: Callable[[Term], Awaitable[Any]] | None,
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
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._value: Any = None
        self._error: BaseException | None = None
        self._stream: _Stream | None = None
        self._works: dict[int, tuple[Term, asyncio.Task[Any]]] = {}
        self._current: Term | None = None
        self._task = asyncio.ensure_future(self._run())

    @property
    def term(self) -> Term | None:
        """The term whose work runs now, if any."""
        return self._current

    async def resign(self) -> None:
        """Cancel the work, wait for it, send `resign`, wait for the node to end the stream
        (from inside the work: returns at once, the work is then cancelled)."""
        self._inbox.put_nowait(("resign",))
        if not self._in_work():
            await asyncio.shield(self._done)

    def cancel(self) -> None:
        """End the campaign without resigning; returns at once."""
        self._inbox.put_nowait(("cancel",))

    def done(self) -> bool:
        return self._done.done()

    async def wait(self) -> None:
        """Until the campaign ended."""
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            if not self._done.done():
                self.cancel()
            raise

    async def result(self) -> Any:
        """The work's return value when it returned on its own (None otherwise); raises the
        work's error or the campaign's ElectdError."""
        await self.wait()
        if self._error is not None:
            raise self._error
        return self._value

    async def proclaim(self, value: bytes) -> int:
        """Set the leader's value in the current term; the new value_revision, or ElectdError."""
        return await self._proclaim(value, None)

    async def __aenter__(self) -> Campaign:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.resign()

    # ----- the driver ----------------------------------------------------------------------------

    def _in_work(self) -> bool:
        me = asyncio.current_task()
        return any(task is me for _, task in list(self._works.values()))

    async def _proclaim(self, value: bytes, epoch: int | None) -> int:
        if not isinstance(value, bytes):
            raise ElectdError(f"proclaim: want bytes, got {type(value).__name__}")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._inbox.put_nowait(("proclaim", future, value, epoch))
        timeout = self._client.call_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            text = f"proclaim: no answer within the call deadline ({timeout:g}s)"
            raise ElectdError(text, grpc.StatusCode.DEADLINE_EXCEEDED, text) from None

    async def _run(self) -> None:
        machine = self._machine
        try:
            await self._execute(machine.tick(time.monotonic()))
            while not self._done.done():
                wake = machine.next_wakeup()
                timeout = None if wake is None else max(0.0, wake - time.monotonic())
                item: tuple[Any, ...] | None
                try:
                    item = await asyncio.wait_for(self._inbox.get(), timeout)
                except TimeoutError:
                    item = None
                now = time.monotonic()
                actions = self._machine.dispatch(item, now) if item is not None else []
                await self._execute(actions + machine.tick(time.monotonic()))
        except asyncio.CancelledError:
            self._finish(None, ElectdError("the campaign's task was cancelled"))
            raise
        except BaseException as exc:  # a bug here must not leave the work running unseen
            self._finish(None, exc)
            raise

    async def _execute(self, actions: list[Any]) -> None:
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Send):
                if self._stream is not None:
                    self._stream.requests.put_nowait(action.request)
            elif isinstance(action, HalfClose):
                if self._stream is not None:
                    self._stream.requests.put_nowait(None)
            elif isinstance(action, Connect):
                if self._stream is not None:
                    self._stream.close()
                stream = self._stream = _Stream(action.serial, action.address)
                stream.task = asyncio.ensure_future(self._open(stream))
            elif isinstance(action, CloseStream):
                if self._stream is not None:
                    self._stream.close()
                    self._stream = None
            elif isinstance(action, StartWork):
                self._start_work(action.term)
            elif isinstance(action, CancelWork):
                entry = self._works.get(id(action.term))
                if entry is not None:
                    entry[0].cancelled.set()
                    entry[1].cancel()
            elif isinstance(action, Emit):
                if self._on_event is not None:
                    try:
                        self._on_event(action.event)
                    except Exception as exc:  # noqa: BLE001  (the hook's failure ends the campaign with it)
                        pending += self._machine.cancel(time.monotonic(), exc)
            elif isinstance(action, Answer):
                future = action.token
                assert isinstance(future, asyncio.Future)
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
        for term, task in list(self._works.values()):
            term.cancelled.set()
            task.cancel()
        if not self._done.done():
            self._done.set_result(None)

    async def _open(self, stream: _Stream) -> None:
        """The stream's task: connect (under the connect deadline), open the call, write the
        requests the machine queues, read the responses."""
        from electd_client.aio import _settle

        client = self._client
        channel = client.transport.aio_channel(stream.address, client.options)
        writer: asyncio.Task[None] | None = None
        try:
            if not await _settle(channel, client.connect_timeout):
                failure = connect_failure(stream.address, client.connect_timeout)
                self._inbox.put_nowait(("connect_failed", stream.serial, failure))
                return
            stub = pb_grpc.ElectionServiceStub(channel)  # type: ignore[no-untyped-call]
            call = stub.Campaign(wait_for_ready=False)
            self._inbox.put_nowait(("opened", stream.serial))
            writer = asyncio.ensure_future(self._write(stream, call))
            try:
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        self._inbox.put_nowait(("ended", stream.serial, None, ""))
                        return
                    self._inbox.put_nowait(("message", stream.serial, msg))
            except grpc.RpcError as exc:
                self._inbox.put_nowait(("ended", stream.serial, exc.code(), exc.details() or ""))
            finally:
                call.cancel()
        finally:
            if writer is not None:
                writer.cancel()
            await channel.close()

    async def _write(self, stream: _Stream, call: Any) -> None:
        while True:
            request = await stream.requests.get()
            try:
                if request is None:
                    await call.done_writing()
                    return
                await call.write(request)
            except (grpc.RpcError, grpc.aio.UsageError):
                # The call is over; the reader reports how it ended (its status).
                return

    def _start_work(self, state: TermState) -> None:
        term = Term(state, self)
        work = self._work
        assert work is not None

        async def run() -> Any:
            return await work(term)

        task = asyncio.ensure_future(run())
        self._works[id(state)] = (term, task)
        self._current = term

        def stopped(task: asyncio.Task[Any]) -> None:
            self._works.pop(id(state), None)
            if self._current is term:
                self._current = None
            value: Any = None
            error: BaseException | None = None
            if task.cancelled():
                if not term.cancelled.is_set():  # not by us: the work cancelled itself
                    error = asyncio.CancelledError(f"the work of epoch {state.epoch} cancelled")
            else:
                exc = task.exception()
                if exc is not None and not (
                    isinstance(exc, asyncio.CancelledError) and term.cancelled.is_set()
                ):
                    error = exc
                elif exc is None:
                    value = task.result()
            self._inbox.put_nowait(("work", state, value, error))

        task.add_done_callback(stopped)

    async def aclose(self) -> None:
        """Cancel the campaign and wait until it ended."""
        self.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._done)
