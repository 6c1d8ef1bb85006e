"""What the operability side may read of a node: one bundle of callables, all safe to call from
the asyncio loop (nothing here blocks, except `members`, which reads ZooKeeper and is run on a
worker thread). Built by app.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from electd.engine import EngineStats, MemberView, View
from electd.engine.clock import now as lease_clock


@dataclass(frozen=True)
class CommandStatus:
    """The leader command's counters (all zero without --leader-command)."""

    configured: bool
    running: bool
    starts: int
    exits: dict[int, int]
    spawn_failures: int = 0
    error: str = ""  # why the command cannot be started now ("" when it can)


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    election: str  # the metrics label of the node election (the API's empty name)
    view: Callable[[], View]
    stats: Callable[[], EngineStats]
    lease_remaining: Callable[[], float]
    since_zookeeper: Callable[[], float]
    members: Callable[[], list[MemberView]]  # blocking: run it on a worker thread
    streams: Callable[[], int]
    command: Callable[[], CommandStatus]
    now: Callable[[], float] = lease_clock
