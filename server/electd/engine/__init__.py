"""The election engine: model, store interface and state machine. Imports neither kazoo nor grpc."""

from electd.engine.engine import ElectionEngine, EngineStats
from electd.engine.model import LeaderInfo, Member, MemberView, NodeRecord, RecordError, Role, View
from electd.engine.store import (
    ConnState,
    CoordinatorUnavailable,
    Entry,
    SessionLost,
    Store,
    Stored,
    WatchEvent,
)

__all__ = [
    "ConnState",
    "CoordinatorUnavailable",
    "ElectionEngine",
    "EngineStats",
    "Entry",
    "LeaderInfo",
    "Member",
    "MemberView",
    "NodeRecord",
    "RecordError",
    "Role",
    "SessionLost",
    "Store",
    "Stored",
    "View",
    "WatchEvent",
]
