"""Election as a service: named elections on the node's one ZooKeeper session (issue 12).

* registry.py: `Elections`, the node's registry of candidacies and observers, and its errors;
* candidacy.py: one candidate (its entry's engine, leases granted, C1-C3, priorities,
  proclaim, never_lead) and the events it reports;
* observer.py: reading a named election, `ElectionView`s, observers on one shared thread;
* worker.py: the shared worker threads (a job queue and timers).
Imports neither kazoo nor grpc: ZooKeeper is reached through engine/store.py's
`ElectionsSession` and `ElectionStore` (implemented in zk/elections.py).
"""

from electd.elections.candidacy import (
    Candidacy,
    CandidateEvent,
    CandidateSpec,
    Ended,
    Leading,
    LossReason,
    Lost,
    Proclaimed,
    Queued,
    Refused,
)
from electd.elections.observer import ElectionLeader, ElectionState, ElectionView, Observation
from electd.elections.registry import (
    AlreadyCampaigning,
    BadName,
    BadSpec,
    ElectionError,
    Elections,
    NoLeader,
    StaleEpoch,
    TooManyCandidates,
)

__all__ = [
    "AlreadyCampaigning",
    "BadName",
    "BadSpec",
    "Candidacy",
    "CandidateEvent",
    "CandidateSpec",
    "ElectionError",
    "ElectionLeader",
    "ElectionState",
    "ElectionView",
    "Elections",
    "Ended",
    "Leading",
    "LossReason",
    "Lost",
    "NoLeader",
    "Observation",
    "Proclaimed",
    "Queued",
    "Refused",
    "StaleEpoch",
    "TooManyCandidates",
]
