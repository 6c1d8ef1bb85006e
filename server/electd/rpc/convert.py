"""Engine model -> electd.v1 proto messages. Pure functions; no I/O."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

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
