"""The election engine, free of kazoo and grpc (nothing under engine/ may import either):

* model.py: node records, members, the leader and the published view (immutable);
* store.py: the `Store` interface the engine decides through, and its errors;
* lease.py: the `Lease` of one store's session (shared by every engine on it);
* members.py: decoding entries into members, the member listing and its cache;
* engine.py: `ElectionEngine`, the decision, its worker thread and the published view.
"""

from electd.engine.engine import ElectionEngine, EngineStats
from electd.engine.lease import Lease, SessionFacts
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
    "Lease",
    "Member",
    "MemberView",
    "NodeRecord",
    "RecordError",
    "Role",
    "SessionFacts",
    "SessionLost",
    "Store",
    "Stored",
    "View",
    "WatchEvent",
]
