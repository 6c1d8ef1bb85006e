"""The engine's counters (`EngineStats`), read by metrics and tests. Imports nothing of electd."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineStats:
    """Counters a test or a metrics exporter can read from any thread (plain ints: racy reads
    are fine). The *_events are counted on the store's threads, the rest on the worker."""

    predecessor_events: int = 0
    leader_events: int = 0
    own_events: int = 0
    companion_events: int = 0  # our companion's, and those we wait for (order.py)
    path_events: int = 0
    reconciles: int = 0
    registrations: int = 0
    leader_changes: int = 0  # changes of the leader (or its epoch) this node has seen
    connects: int = 0  # CONNECTED transitions of the ZooKeeper connection
    suspensions: int = 0  # SUSPENDED transitions (connection lost, session may survive)
    expiries: int = 0  # LOST transitions (the session expired)
    heartbeats: int = 0  # heartbeats that found our entry still ours and published again
    heartbeat_reads: int = 0  # of those, the ones that read our entry (its watches had fired)
