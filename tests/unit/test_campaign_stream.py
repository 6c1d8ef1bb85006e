"""The Campaign stream's own rules, on a real asyncio loop and the real hub, fed candidate
events from another thread as the registry does: validation names the field, responses keep
the order things happened in (a ping's answer never runs ahead of the events), a candidate
that does not read never makes the stream buffer without bound (Queued/Leading replaced by the
latest, Lost never dropped), and the methods' rights (Campaign and Resign write,
ListElections read). The registry itself is tested against real ZooKeeper (tests/integration,
tests/e2e/test_campaign.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from electd.elections import Ended, Leading, LossReason, Lost, Proclaimed, Queued
from electd.engine import Role, View
from electd.rpc.auth import Right, right_of
from electd.rpc.campaign import (
    OUTBOX_HARD,
    CampaignCounters,
    _Stream,
    validate_start,
)
from electd.rpc.errors import CandidateNotReading, InvalidArgument, ShuttingDown
from electd.rpc.hub import ViewHub
from electd.v1 import election_service_pb2 as pb


def run(body: Callable[[ViewHub], Any]) -> Any:
    async def main() -> Any:
        hub = ViewHub(
            asyncio.get_running_loop(), View(0, "me", Role.JOINING, None, "starting", "", "", 0)
        )
        return await asyncio.wait_for(body(hub), 20)

    return asyncio.run(main())


def from_thread(fn: Callable[[], None]) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def collect(stream: _Stream) -> tuple[list[pb.CampaignResponse], BaseException | None]:
    out: list[pb.CampaignResponse] = []
    try:
        async for message in stream.messages():
            out.append(message)
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return out, exc
    return out, None


def kinds(messages: list[pb.CampaignResponse]) -> list[str]:
    return [str(m.WhichOneof("response")) for m in messages]


def queued(position: int, nonce: int = 0) -> Queued:
    return Queued("entry-1", position, "c0", None, nonce)


def leading(epoch: int, nonce: int = 0, lease_ms: int = 0) -> Leading:
    return Leading(epoch, nonce, lease_ms, "entry-1", 0)


@pytest.mark.parametrize(
    ("start", "field"),
    [
        (pb.CampaignStart(election="", candidate_id="c"), "start.election"),
        (pb.CampaignStart(election="a b", candidate_id="c"), "start.election"),
        (pb.CampaignStart(election="e", candidate_id=""), "start.candidate_id"),
        (pb.CampaignStart(election="e", candidate_id="-c"), "start.candidate_id"),
        (pb.CampaignStart(election="e", candidate_id="c", labels={"": "v"}), "start.labels"),
        (
            pb.CampaignStart(
                election="e", candidate_id="c", labels={f"k{i}": "" for i in range(65)}
            ),
            "start.labels",
        ),
        (pb.CampaignStart(election="e", candidate_id="c", value=b"v" * 16385), "start.value"),
    ],
)
def test_validation_names_the_field(start: pb.CampaignStart, field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        validate_start(start)


def test_a_valid_start_becomes_the_spec() -> None:
    election, spec = validate_start(
        pb.CampaignStart(
            election="jobs.scheduler_1",
            candidate_id="host-1:9000",
            value=b"v" * 16384,
            labels={"zone": "a"},
            priority=-3,
            never_lead=True,
        )
    )
    assert election == "jobs.scheduler_1"
    assert (spec.candidate_id, len(spec.value), dict(spec.labels)) == (
        "host-1:9000",
        16384,
        {"zone": "a"},
    )
    assert (spec.priority, spec.never_lead) == (-3, True)


def test_every_method_of_the_service_has_its_right() -> None:
    service = pb.DESCRIPTOR.services_by_name["ElectionService"]
    rights = {m.name: right_of(f"/electd.v1.ElectionService/{m.name}") for m in service.methods}
    assert rights == {
        "GetLeader": Right.READ,
        "ListNodes": Right.READ,
        "WatchLeader": Right.READ,
        "ListElections": Right.READ,
        "Campaign": Right.WRITE,
        "Resign": Right.WRITE,
    }


def test_events_from_another_thread_arrive_in_order_and_lost_is_kept() -> None:
    async def body(hub: ViewHub) -> Any:
        counters = CampaignCounters()
        stream = _Stream(hub, "me", counters)

        def registry() -> None:
            stream.on_event(queued(2))
            stream.on_event(queued(1))  # replaces the unsent Queued
            stream.on_event(leading(7))
            stream.on_event(Lost(7, LossReason.DELETED, "gone"))
            stream.on_event(queued(1))
            stream.on_event(leading(9))
            stream.on_event(Proclaimed(9, 1))
            stream.on_event(Ended(LossReason.SHUTDOWN))

        from_thread(registry)
        await settle()
        out, end = await collect(stream)
        assert isinstance(end, ShuttingDown)
        assert stream.ended_by_registry
        assert kinds(out) == ["leading", "lost", "leading", "proclaimed"]
        assert [m.responder_id for m in out] == ["me"] * 4
        assert (out[1].lost.epoch, out[1].lost.reason) == (7, pb.LOSS_REASON_DELETED)
        assert counters.losses()["deleted"] == 1

    run(body)


def test_a_ping_answer_never_runs_ahead_of_the_events() -> None:
    async def body(hub: ViewHub) -> Any:
        stream = _Stream(hub, "me", CampaignCounters())
        stream.on_event(queued(1))
        stream.drain()
        # The registry has begun term 5, but its Leading event has not crossed yet: the answer
        # waits for it (and then replaces it: it carries the lease).
        stream.answer(leading(5, nonce=3, lease_ms=900))
        out_early = list(stream._outbox)
        assert kinds(out_early) == ["queued"]
        stream.on_event(leading(5))
        await settle()
        # While the stream still says Leading, a Queued answer means a Lost is on its way.
        stream.answer(queued(1, nonce=4))
        stream.on_event(Lost(5, LossReason.PREEMPTED, "higher"))
        stream.on_event(Ended(LossReason.RESIGNED))
        stream.resigning()
        await settle()
        out, end = await collect(stream)
        assert end is None
        assert kinds(out) == ["leading", "lost"]
        assert (out[0].leading.epoch, out[0].leading.nonce, out[0].leading.lease_ms) == (5, 3, 900)

    run(body)


def test_a_candidate_that_does_not_read_is_bounded() -> None:
    async def body(hub: ViewHub) -> Any:
        counters = CampaignCounters()
        stream = _Stream(hub, "me", counters)
        stream.on_event(leading(1))
        stream.drain()
        for nonce in range(1, 10_000):  # pings answered, nobody reads: one message waits
            stream.answer(leading(1, nonce=nonce, lease_ms=500))
        assert len(stream._outbox) == 1 and stream._outbox[0].leading.nonce == 9_999
        assert counters.grants == 9_999
        for epoch in range(2, OUTBOX_HARD + 3):  # term churn is never dropped, but bounded
            stream.on_event(Lost(epoch - 1, LossReason.PREEMPTED, ""))
            stream.on_event(leading(epoch))
        await settle()
        assert stream.done
        assert len(stream._outbox) == OUTBOX_HARD + 1  # then nothing more was taken
        out, end = await collect(stream)
        assert isinstance(end, CandidateNotReading) and out == []  # ended without flushing

    run(body)


def test_the_hub_closing_ends_a_leading_stream_with_lost_shutdown() -> None:
    async def body(hub: ViewHub) -> Any:
        stream = _Stream(hub, "me", CampaignCounters())
        stream.on_event(leading(4))
        stream.drain()
        stream.shut_down()
        out, end = await collect(stream)
        assert isinstance(end, ShuttingDown)
        assert kinds(out) == ["leading", "lost"]
        assert (out[1].lost.epoch, out[1].lost.reason) == (4, pb.LOSS_REASON_SHUTDOWN)

    run(body)
