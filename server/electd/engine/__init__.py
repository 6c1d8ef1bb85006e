"""The election engine, free of kazoo and grpc (nothing under engine/ may import either):

* model.py: node records, members, the leader and the published view (immutable);
* store.py: the `Store` interface the engine decides through, and its errors;
* clock.py: the clock leases are measured on (CLOCK_BOOTTIME);
* lease.py: the `Lease` of one session (shared by every engine on it, a `Vouch` each);
* order.py: the one rule: who takes part, in which order, who may lead (metadata only);
* members.py: records (display only), the member listing and its cache;
* watches.py: which entries we watch and the events not looked at yet;
* identity.py, gate.py: the cluster identity, its rules and the gate every full pass goes through;
* passes.py: the decision, full pass and fast pass;
* engine.py: `ElectionEngine`: lifecycle, callbacks, worker thread, the published view.
"""

from electd.engine.engine import ElectionEngine
from electd.engine.lease import Lease, SessionFacts, Vouch
from electd.engine.model import LeaderInfo, Member, MemberView, NodeRecord, RecordError, Role, View
from electd.engine.stats import EngineStats
from electd.engine.store import (
    ConnState,
    CoordinatorUnavailable,
    Entry,
    Meta,
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
    "Meta",
    "NodeRecord",
    "RecordError",
    "Role",
    "SessionFacts",
    "SessionLost",
    "Store",
    "Stored",
    "View",
    "Vouch",
    "WatchEvent",
]
