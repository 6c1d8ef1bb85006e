"""The campaign helper's state machine (clients/python/electd_client/_campaign.py), driven by
hand with an explicit clock: no threads, no network, no sleeps. Each test is one rule of the
campaign contract (clients/README.md / the Campaign RPC): the deadline is the ping's send time
plus the lease (the max over answers); the work is cancelled a safety margin before it; a Lost
is acknowledged only once the work stopped (or the deadline passed); an epoch is never run
twice; resign, return, failure, stop-on-loss and failover end or continue the campaign as
the contract says. The last tests drive the blocking and the asyncio Campaign (threads, tasks,
gRPC) against a scripted in-process Campaign servicer that follows the documented protocol."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from electd.devcluster.cluster import wait_until
from electd_client import CampaignEvent, ElectionClient, Term
from electd_client._campaign import (
    DISCONNECTED,
    EXPIRED,
    MIN_MARGIN,
    STOP,
    Answer,
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
    margin_for,
)
from electd_client._common import ElectdError, Failure
from electd_client.v1 import election_service_pb2 as pb
from electd_client.v1 import election_service_pb2_grpc as pb_grpc

ADDRESSES = ["a:1", "b:2"]


def leading(epoch: int, nonce: int, lease_ms: int) -> pb.CampaignResponse:
    return pb.CampaignResponse(
        leading=pb.CampaignLeading(epoch=epoch, nonce=nonce, lease_ms=lease_ms, znode="z")
    )


def queued(position: int = 1, waiting_for: str = "other") -> pb.CampaignResponse:
    return pb.CampaignResponse(queued=pb.CampaignQueued(position=position, waiting_for=waiting_for))


def lost(epoch: int, reason: int = pb.LOSS_REASON_DELETED) -> pb.CampaignResponse:
    return pb.CampaignResponse(lost=pb.CampaignLost(epoch=epoch, reason=reason, detail="x"))


def requests(actions: list[Any], kind: str) -> list[Any]:
    """The requests of one kind ("start", "ping", "ack", "resign", "proclaim") among the
    actions."""
    return [
        getattr(a.request, kind)
        for a in actions
        if isinstance(a, Send) and a.request.WhichOneof("request") == kind
    ]


def of(actions: list[Any], cls: type) -> list[Any]:
    return [a for a in actions if isinstance(a, cls)]


def events(actions: list[Any], kind: str) -> list[Any]:
    return [a.event for a in of(actions, Emit) if a.event.kind == kind]


class Run:
    """One machine and its clock. `open()` connects the current address and opens a stream;
    `ping()` advances to the next ping and returns its nonce and send time."""

    def __init__(self, **spec: Any) -> None:
        has_work = spec.pop("has_work", True)
        self.m = CampaignMachine(
            Spec("jobs", "c1", has_work=has_work, **spec),
            ADDRESSES,
            0,
            call_timeout=2.0,
            connect_timeout=2.0,
            first_message_timeout=2.0,
        )
        self.now = 100.0
        self.log: list[Any] = []

    def do(self, actions: list[Any]) -> list[Any]:
        self.log += actions
        return actions

    def at(self, now: float) -> list[Any]:
        self.now = now
        return self.do(self.m.tick(now))

    def open(self) -> tuple[int, list[Any]]:
        connects = of(self.at(self.now), Connect)
        assert len(connects) == 1, connects
        serial = connects[0].serial
        opened = self.do(self.m.opened(serial, self.now))
        assert len(requests(opened, "start")) == 1 and len(requests(opened, "ping")) == 1
        assert opened[0].request.WhichOneof("request") == "start"  # start first
        return serial, opened

    def recv(self, msg: pb.CampaignResponse, serial: int | None = None) -> list[Any]:
        return self.do(self.m.received(serial or self.m.serial, msg, self.now))

    def last_nonce(self) -> int:
        return int(requests(self.log, "ping")[-1].nonce)

    def lead(self, epoch: int, lease_ms: int = 2000, delay: float = 0.3) -> TermState:
        """The last ping is answered (`delay` after it was sent) with Leading(epoch)."""
        nonce = self.last_nonce()
        sent = self.m.sent[nonce]
        self.now = sent + delay
        out = self.recv(leading(epoch, nonce, lease_ms))
        starts = of(out, StartWork)
        assert len(starts) == 1, out
        return starts[0].term


def test_deadline_is_the_pings_send_time_plus_the_lease_not_the_answers_arrival() -> None:
    run = Run()
    run.open()
    sent = run.m.sent[run.last_nonce()]
    term = run.lead(epoch=7, lease_ms=2000, delay=0.3)
    assert term.epoch == 7
    assert term.deadline == pytest.approx(sent + 2.0)  # not arrival (sent + 0.3) + 2.0
    assert [e.epoch for e in events(run.log, "leading")] == [7]


def test_the_deadline_is_the_max_over_answers_and_never_shrinks() -> None:
    run = Run(ping_interval=0.5)
    run.open()
    first = run.last_nonce()
    t_first = run.m.sent[first]
    run.at(t_first + 0.5)  # the next ping
    second = run.last_nonce()
    t_second = run.m.sent[second]
    assert second == first + 1 and t_second > t_first
    run.now = t_second + 0.1
    term = of(run.recv(leading(7, second, 2000)), StartWork)[0].term
    assert term.deadline == pytest.approx(t_second + 2.0)
    # A late answer to the older ping, even with a longer lease that ends earlier, changes nothing.
    run.recv(leading(7, first, 2400))
    assert term.deadline == pytest.approx(t_second + 2.0)
    # A newer ping's answer extends it.
    run.at(t_second + 0.5)
    third = run.last_nonce()
    t_third = run.m.sent[third]
    run.recv(leading(7, third, 2000))
    assert term.deadline == pytest.approx(t_third + 2.0) and t_third > t_second


def test_the_work_is_cancelled_a_safety_margin_before_the_deadline_not_after() -> None:
    for lease_ms in (2000, 100):  # margin 10 % of the lease (0.2 s), or at least 50 ms
        run = Run(ping_interval=10.0)  # pings would extend it: keep them away
        run.open()
        term = run.lead(epoch=7, lease_ms=lease_ms, delay=0.01)
        margin = margin_for(lease_ms / 1000)
        assert margin == max(MIN_MARGIN, lease_ms / 10000)
        cancel_at = term.deadline - margin
        assert run.m.next_wakeup() == pytest.approx(min(cancel_at, run.m.next_ping or cancel_at))
        assert not of(run.at(cancel_at - 0.001), CancelWork)
        out = run.at(cancel_at)
        assert of(out, CancelWork) == [CancelWork(term)]
        assert run.now < term.deadline  # cancelled before the deadline
        assert [(e.epoch, e.reason) for e in events(out, "lost")] == [(7, EXPIRED)]


def test_no_work_starts_on_a_deadline_already_within_the_margin_and_it_pings_again() -> None:
    run = Run()
    run.open()
    nonce = run.last_nonce()
    sent = run.m.sent[nonce]
    run.now = sent + 1.9  # a 2 s lease answered 1.9 s after the ping: 0.1 s left < margin
    out = run.recv(leading(7, nonce, 2000))
    assert not of(out, StartWork) and not events(out, "leading")
    assert run.m.next_ping is not None and run.m.next_ping <= run.now + 0.05
    # Nonce 0 (no ping arrived yet) and a ping of ours on its way: wait for its answer.
    run2 = Run()
    run2.open()
    assert not of(run2.recv(leading(7, 0, 0)), StartWork)
    out = run2.recv(leading(7, run2.last_nonce(), 2000))
    assert len(of(out, StartWork)) == 1


def test_a_lost_is_acknowledged_only_after_the_work_stopped() -> None:
    run = Run()
    run.open()
    term = run.lead(epoch=7)
    out = run.recv(lost(7))
    assert of(out, CancelWork) == [CancelWork(term)]
    assert not requests(out, "ack")
    assert [(e.epoch, e.reason) for e in events(out, "lost")] == [(7, "deleted")]
    # Pings and time pass (still before the deadline): no ack while the work runs.
    assert not requests(run.at(run.now + 0.4), "ack")
    out = run.do(run.m.work_stopped(term, None, None, run.now))
    assert [a.epoch for a in requests(out, "ack")] == [7]
    # Recampaign (the default): the stream stays, nothing ends.
    assert not of(out, Finish) and not requests(out, "resign")


def test_at_the_deadline_the_term_is_over_whatever_the_work_does() -> None:
    run = Run(ping_interval=10.0)
    run.open()
    term = run.lead(epoch=7)
    run.recv(lost(7))
    assert not requests(run.at(term.deadline - 0.01), "ack")
    assert run.m.next_wakeup() == pytest.approx(term.deadline)
    out = run.at(term.deadline)  # the work never stopped
    assert [a.epoch for a in requests(out, "ack")] == [7]
    assert run.m.term is None


def test_an_epoch_is_never_run_twice_nor_an_older_one() -> None:
    run = Run()
    serial, _ = run.open()
    term = run.lead(epoch=7)
    run.recv(lost(7))
    run.do(run.m.work_stopped(term, None, None, run.now))
    # The same epoch again, and an older one: never started.
    for epoch in (7, 6):
        run.at(run.now + 0.5)
        out = run.recv(leading(epoch, run.last_nonce(), 2000))
        assert not of(out, StartWork) and not events(out, "leading"), epoch
    # Also not on a new stream to another node.
    run.do(run.m.ended(serial, grpc.StatusCode.UNAVAILABLE, "gone", run.now))
    run.open()
    out = run.recv(leading(7, run.last_nonce(), 2000))
    assert not of(out, StartWork)
    # A higher one is a new term.
    assert run.lead(epoch=9).epoch == 9
    assert [e.epoch for e in events(run.log, "leading")] == [7, 9]


def test_the_caller_resigning_cancels_and_waits_for_the_work_then_resigns() -> None:
    run = Run()
    serial, _ = run.open()
    term = run.lead(epoch=7)
    out = run.do(run.m.resign(run.now))
    assert of(out, CancelWork) == [CancelWork(term)] and not requests(out, "resign")
    out = run.do(run.m.work_stopped(term, None, None, run.now))
    assert len(requests(out, "resign")) == 1 and of(out, HalfClose)
    assert not of(out, Finish)  # until the node ended the stream
    run.recv(lost(7, pb.LOSS_REASON_RESIGNED))
    out = run.do(run.m.ended(serial, grpc.StatusCode.OK, "", run.now))
    assert of(out, Finish) == [Finish()]
    assert [e.reason for e in events(run.log, "stopped")] == ["resigned"]
    assert len(events(run.log, "lost")) == 1  # the node's Lost(RESIGNED) is not reported again
    assert not requests(run.log, "ack")  # resign counts as the ack


def test_work_returning_resigns_with_its_value_and_failing_resigns_with_its_error() -> None:
    for error in (None, RuntimeError("boom")):
        run = Run()
        serial, _ = run.open()
        term = run.lead(epoch=7)
        out = run.do(run.m.work_stopped(term, "value", error, run.now))
        assert len(requests(out, "resign")) == 1
        out = run.do(run.m.ended(serial, grpc.StatusCode.OK, "", run.now))
        expected = Finish(error=error) if error else Finish("value")
        assert of(out, Finish) == [expected]


def test_stop_on_loss_ends_after_the_ack() -> None:
    run = Run(on_loss=STOP)
    serial, _ = run.open()
    term = run.lead(epoch=7)
    run.recv(lost(7, pb.LOSS_REASON_PREEMPTED))
    out = run.do(run.m.work_stopped(term, None, None, run.now))
    kinds = [a.request.WhichOneof("request") for a in of(out, Send)]
    assert kinds == ["ack", "resign"]
    out = run.do(run.m.ended(serial, grpc.StatusCode.OK, "", run.now))
    assert of(out, Finish) == [Finish()]
    assert [e.reason for e in events(run.log, "stopped")] == ["lost"]


def test_a_broken_stream_cancels_the_work_and_reconnects_only_after_it_stopped() -> None:
    run = Run()
    serial, _ = run.open()
    term = run.lead(epoch=7)
    out = run.do(run.m.ended(serial, grpc.StatusCode.UNAVAILABLE, "node gone", run.now))
    assert of(out, CancelWork) == [CancelWork(term)]
    assert [e.reason for e in events(out, "lost")] == [DISCONNECTED]
    assert [e.address for e in events(out, "failover")] == ["a:1"]
    assert not of(run.at(run.now + 0.1), Connect)  # the work still runs
    run.do(run.m.work_stopped(term, None, None, run.now))
    connects = of(run.at(run.now), Connect)
    assert [c.address for c in connects] == ["b:2"]  # the next address


def test_no_node_answering_in_the_first_round_ends_the_campaign_with_that_error() -> None:
    run = Run()
    for address in ADDRESSES:
        (connect,) = of(run.at(run.now), Connect)
        assert connect.address == address
        run.do(run.m.connect_failed(connect.serial, run.now))
    (finish,) = of(run.log, Finish)
    assert isinstance(finish.error, ElectdError) and finish.error.no_node_answered
    assert [e.address for e in events(run.log, "failover")] == ADDRESSES


def test_already_exists_is_an_error_at_first_but_retried_after_an_own_stream_ended() -> None:
    run = Run()
    serial, _ = run.open()
    out = run.do(run.m.ended(serial, grpc.StatusCode.ALREADY_EXISTS, "c1 campaigns", run.now))
    (finish,) = of(out, Finish)
    assert isinstance(finish.error, ElectdError)
    assert finish.error.code == grpc.StatusCode.ALREADY_EXISTS

    run = Run()
    serial, _ = run.open()
    run.recv(queued())
    run.do(run.m.ended(serial, grpc.StatusCode.UNAVAILABLE, "", run.now))
    serial, _ = run.open()  # b:2 (the old candidacy may linger on a:1, or here)
    out = run.do(run.m.ended(serial, grpc.StatusCode.ALREADY_EXISTS, "c1 campaigns", run.now))
    assert not of(out, Finish)
    assert [e.address for e in events(out, "failover")] == ["b:2"]


def test_pings_come_at_most_a_third_of_the_lease_apart() -> None:
    run = Run(ping_interval=0.5)
    run.open()
    run.lead(epoch=7, lease_ms=600)  # a third: 0.2 s < 0.5 s
    before = run.m.sent[run.last_nonce()]
    run.at(before + 0.2)
    assert run.m.sent[run.last_nonce()] == pytest.approx(before + 0.2)
    assert run.m.next_ping == pytest.approx(before + 0.4)


def test_an_expired_term_on_an_open_stream_leaves_that_entry_and_campaigns_again() -> None:
    run = Run(ping_interval=10.0)
    serial, _ = run.open()
    term = run.lead(epoch=7)
    run.at(term.deadline - term.margin)
    out = run.do(run.m.work_stopped(term, None, None, run.now))
    assert len(requests(out, "resign")) == 1  # the node may still count it as its leader
    out = run.do(run.m.ended(serial, grpc.StatusCode.OK, "", run.now))
    assert not of(out, Finish)
    (connect,) = of(run.at(run.now), Connect)
    assert connect.address == "a:1"  # the same node: it did nothing wrong


def test_proclaim_needs_the_current_term_and_returns_the_revision_or_the_refusal() -> None:
    run = Run()
    run.open()
    (answer,) = run.do(run.m.proclaim("t0", b"v", None, run.now))
    assert isinstance(answer, Answer) and answer.error is not None
    assert answer.error.code == grpc.StatusCode.FAILED_PRECONDITION
    run.lead(epoch=7)
    out = run.do(run.m.proclaim("t1", b"v1", None, run.now))
    assert [(p.epoch, p.value) for p in requests(out, "proclaim")] == [(7, b"v1")]
    run.do(run.m.proclaim("t2", b"v2", None, run.now))
    msg = pb.CampaignResponse(proclaimed=pb.CampaignProclaimed(epoch=7, value_revision=3))
    assert of(run.recv(msg), Answer) == [Answer("t1", 3)]
    refused = pb.CampaignResponse(refused=pb.CampaignRefused(request="proclaim", reason="no"))
    (answer,) = of(run.recv(refused), Answer)
    assert answer.token == "t2" and answer.error is not None and "no" in str(answer.error)


def test_cancel_drops_the_stream_without_resigning_once_the_work_stopped() -> None:
    run = Run()
    run.open()
    term = run.lead(epoch=7)
    out = run.do(run.m.cancel(run.now))
    assert of(out, CancelWork) == [CancelWork(term)] and not of(out, Finish)
    out = run.do(run.m.work_stopped(term, None, None, run.now))
    assert of(out, CloseStream) and of(out, Finish) == [Finish()]
    assert not requests(run.log, "resign")


def test_a_silent_node_is_left_at_the_first_message_deadline() -> None:
    run = Run()
    run.open()
    assert run.m.next_wakeup() is not None
    out = run.at(run.now + 2.0)
    assert of(out, CloseStream)
    (failover,) = events(out, "failover")
    assert failover.address == "a:1" and "first message" in failover.reason
    assert [c.address for c in of(run.at(run.now), Connect)] == ["b:2"]


def test_never_lead_and_no_work_hold_membership_and_leadership_without_running_anything() -> None:
    run = Run(never_lead=True, has_work=False)
    _, opened = run.open()
    assert requests(opened, "start")[0].never_lead
    out = run.recv(pb.CampaignResponse(queued=pb.CampaignQueued(position=0, never_lead=True)))
    assert [e.never_lead for e in events(out, "queued")] == [True]
    run = Run(has_work=False)
    run.open()
    nonce = run.last_nonce()
    run.now = run.m.sent[nonce] + 0.1
    out = run.recv(leading(7, nonce, 2000))
    assert [e.epoch for e in events(out, "leading")] == [7] and not of(out, StartWork)


def test_bad_arguments_are_refused_before_anything_starts() -> None:
    for spec in (
        Spec("", "c1"),
        Spec("jobs", ""),
        Spec("jobs", "c1", on_loss="retry"),
        Spec("jobs", "c1", ping_interval=0),
        Spec("jobs", "c1", priority=2**31),
    ):
        with pytest.raises(ElectdError) as info:
            spec.check()
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_failures_carry_the_address() -> None:
    failure = Failure("a:1", grpc.StatusCode.UNAVAILABLE, "x")
    assert str(failure) == "a:1: UNAVAILABLE: x"


# ----- the drivers (blocking and asyncio) against a scripted Campaign servicer --------------
#
# The servicer follows the Campaign protocol as the proto documents it, scripted by the test:
# Queued on start, then each ping answered with Leading(epoch) or Queued; `lose()` sends a
# Lost at the next ping; every request is recorded, with what the work had done by then.


class CampaignScript(pb_grpc.ElectionServiceServicer):
    def __init__(self, lease_ms: int = 1500) -> None:
        self.lease_ms = lease_ms
        self.epoch = 0  # 0: answer pings with Queued
        self.lose_epoch = 0
        self.leading_answers: dict[int, int] = {}
        self.requests: list[tuple[str, int, object]] = []  # (kind, epoch, snapshot)
        self.snapshot: Any = lambda: None

    async def Campaign(self, request_iterator: Any, context: Any) -> None:
        first = await context.read()
        assert first.WhichOneof("request") == "start"
        self.requests.append(("start", 0, first.start.candidate_id))
        await context.write(pb.CampaignResponse(queued=pb.CampaignQueued(position=1)))
        while True:
            req = await context.read()
            if req is grpc.aio.EOF:
                return
            kind = req.WhichOneof("request")
            if kind == "ping":
                if self.lose_epoch:
                    epoch, self.lose_epoch = self.lose_epoch, 0
                    await context.write(lost(epoch))
                elif self.epoch:
                    self.leading_answers[self.epoch] = self.leading_answers.get(self.epoch, 0) + 1
                    await context.write(leading(self.epoch, req.ping.nonce, self.lease_ms))
                else:
                    await context.write(queued())
            elif kind == "ack":
                self.requests.append(("ack", req.ack.epoch, self.snapshot()))
            elif kind == "resign":
                self.requests.append(("resign", self.epoch, self.snapshot()))
                await context.write(lost(self.epoch, pb.LOSS_REASON_RESIGNED))
                return


class ScriptedNode:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.script = CampaignScript()

        async def start() -> tuple[grpc.aio.Server, int]:
            server = grpc.aio.server()
            pb_grpc.add_ElectionServiceServicer_to_server(self.script, server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port

        self.server, port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.address = f"127.0.0.1:{port}"

    def kinds(self) -> list[tuple[str, int]]:
        return [(k, e) for k, e, _ in self.script.requests]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[ScriptedNode]:
    node = ScriptedNode()
    yield node
    node.stop()


def test_blocking_campaign_runs_work_per_term_acks_after_it_stopped_and_resigns(
    scripted: ScriptedNode,
) -> None:
    script = scripted.script
    started: list[int] = []
    returned: list[int] = []
    seen: list[CampaignEvent] = []
    script.snapshot = lambda: list(returned)

    def work(term: Term) -> None:
        started.append(term.epoch)
        assert term.deadline > time.monotonic()
        term.cancelled.wait()
        returned.append(term.epoch)

    with ElectionClient([scripted.address]) as client:
        campaign = client.campaign("jobs", "c1", work, ping_interval=0.05, on_event=seen.append)
        wait_until(lambda: ("start", 0) in scripted.kinds(), 10, "start")
        script.epoch = 7
        wait_until(lambda: started == [7], 10, "the work of epoch 7")
        script.epoch, script.lose_epoch = 7, 7  # Lost(7), then Leading(7) again: stale
        wait_until(lambda: ("ack", 7) in scripted.kinds(), 10, "the ack of 7")
        (snapshot,) = [s for k, e, s in script.requests if (k, e) == ("ack", 7)]
        assert snapshot == [7]  # the work had returned before the ack was sent
        wait_until(lambda: script.leading_answers.get(7, 0) >= 5, 10, "stale Leading(7)")
        script.epoch = 9
        wait_until(lambda: started == [7, 9], 10, "the work of epoch 9")
        campaign.resign()
        assert campaign.result(0) is None
    assert started == [7, 9]  # never 7 twice
    (resign,) = [s for k, e, s in script.requests if k == "resign"]
    assert resign == [7, 9]  # the work had stopped before resign was sent
    kinds = [(e.kind, e.epoch, e.reason) for e in seen if e.kind in ("leading", "lost", "stopped")]
    assert kinds == [
        ("leading", 7, ""),
        ("lost", 7, "deleted"),
        ("leading", 9, ""),
        ("lost", 9, "resigned"),
        ("stopped", 0, "resigned"),
    ]


def test_blocking_work_returning_ends_the_campaign_with_its_value(scripted: ScriptedNode) -> None:
    scripted.script.epoch = 3
    with ElectionClient([scripted.address]) as client:
        campaign = client.campaign("jobs", "c1", lambda term: term.epoch * 2, ping_interval=0.05)
        assert campaign.result(20) == 6
    assert ("resign", 3) in scripted.kinds()


def test_asyncio_campaign_cancels_the_work_task_and_acks_after_it_finished(
    scripted: ScriptedNode,
) -> None:
    from electd_client import aio

    script = scripted.script
    finished: list[int] = []
    script.snapshot = lambda: list(finished)

    async def work(term: aio.Term) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            assert term.cancelled.is_set()
            await asyncio.sleep(0.05)  # still stopping: the ack must wait for this
            finished.append(term.epoch)
            raise

    async def main() -> None:
        async with aio.ElectionClient([scripted.address]) as client:
            campaign = client.campaign("jobs", "c1", work, ping_interval=0.05)
            script.epoch = 5
            while 5 not in script.leading_answers or campaign.term is None:
                await asyncio.sleep(0.02)
            script.lose_epoch = 5
            while ("ack", 5) not in scripted.kinds():
                await asyncio.sleep(0.02)
            await campaign.resign()
            assert await campaign.result() is None

    asyncio.run(asyncio.wait_for(main(), 30))
    (snapshot,) = [s for k, e, s in script.requests if (k, e) == ("ack", 5)]
    assert snapshot == [5]
    assert "resign" in [k for k, _ in scripted.kinds()]
