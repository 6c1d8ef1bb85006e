"""Engine model and candidate events -> electd.v1 proto messages. Pure functions; no I/O."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from electd.elections import Leading, LossReason, Lost, Proclaimed, Queued, Refused
from electd.engine import LeaderInfo, Member, MemberView
from electd.v1 import election_service_pb2 as pb


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def node(member: Member, is_leader: bool, watches: str) -> pb.Node:
    rec = member.record
    return pb.Node(
        id=rec.id,
        address=rec.address,
        znode=member.znode,
        sequence=member.sequence,
        joined_at=timestamp(member.created_ms / 1000.0),
        labels=dict(rec.labels),
        is_leader=is_leader,
        watches=watches,
        session_id=_signed64(member.session_id),
        version=rec.version,
        record_error=member.record_error,
        value=member.value,
        value_revision=member.value_revision,
        priority=rec.priority,
        never_lead=rec.never_lead,
        host_id=rec.host_id,
    )


def leader(info: LeaderInfo) -> pb.Leader:
    return pb.Leader(
        node=node(info.member, True, ""),
        epoch=info.epoch,
        elected_at=timestamp(info.elected_at),
    )


def member_view(view: MemberView) -> pb.Node:
    return node(view.member, view.is_leader, view.watches)


def _signed64(value: int) -> int:
    """ZooKeeper session ids are Java longs; keep them in int64 range."""
    return value - (1 << 64) if value >= (1 << 63) else value


def loss_reason(reason: LossReason) -> pb.LossReason.ValueType:
    return pb.LossReason.Value(f"LOSS_REASON_{reason.name}")


def campaign_response(
    event: Queued | Leading | Lost | Proclaimed | Refused, responder_id: str
) -> pb.CampaignResponse:
    """One candidate event as the message the candidate reads."""
    if isinstance(event, Queued):
        queued = pb.CampaignQueued(
            znode=event.znode,
            position=event.position,
            waiting_for=event.waiting_for,
            nonce=event.nonce,
            never_lead=event.never_lead,
        )
        if event.leader is not None:
            queued.leader.CopyFrom(leader(event.leader))
        return pb.CampaignResponse(queued=queued, responder_id=responder_id)
    if isinstance(event, Leading):
        return pb.CampaignResponse(
            leading=pb.CampaignLeading(
                epoch=event.epoch,
                nonce=event.nonce,
                lease_ms=event.lease_ms,
                znode=event.znode,
                value_revision=event.value_revision,
            ),
            responder_id=responder_id,
        )
    if isinstance(event, Lost):
        return pb.CampaignResponse(
            lost=pb.CampaignLost(
                epoch=event.epoch, reason=loss_reason(event.reason), detail=event.detail
            ),
            responder_id=responder_id,
        )
    if isinstance(event, Proclaimed):
        return pb.CampaignResponse(
            proclaimed=pb.CampaignProclaimed(
                epoch=event.epoch, value_revision=event.value_revision
            ),
            responder_id=responder_id,
        )
    return pb.CampaignResponse(
        refused=pb.CampaignRefused(request=event.request, reason=event.reason),
        responder_id=responder_id,
    )
