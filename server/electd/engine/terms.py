"""The terms one engine has seen: the leader and epoch it last named, the highest epoch, and
the one log line per change of role or term. Runs on the engine's worker thread only.
Imports neither kazoo nor grpc.

Invariant: an epoch lower than the highest seen is logged at ERROR (it means ZooKeeper's data
was reset under the cluster; identity.py refuses such a path before it gets here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from electd.engine.model import LeaderInfo, Member, Role, View, transition
from electd.engine.stats import EngineStats

logger = logging.getLogger(__name__)


def who(node_id: str, election: str) -> str:
    """How an engine's log lines name it: `node=<id>` in the node election, and
    `candidate=<id> election=<name>` for a candidate's entry in a named election."""
    return f"candidate={node_id} election={election}" if election else f"node={node_id}"


class Terms:
    def __init__(
        self, stats: EngineStats, wall: Callable[[], float], node_id: str, election: str = ""
    ) -> None:
        """`election`: the named election a candidate's entry is in ("": the node election,
        whose new leader logs the one line operators look for, "I am a new leader")."""
        self._stats = stats
        self._wall = wall
        self._id = node_id
        self._election = election
        self._who = who(node_id, election)
        self._leader: LeaderInfo | None = None
        self.max_epoch = 0

    def info(self, leader: Member, base: int) -> LeaderInfo:
        """The term: the leader and its epoch, the cluster's epoch base plus its czxid."""
        epoch = base + leader.czxid
        prev = self._leader
        if prev is not None and prev.epoch == epoch and prev.member == leader:
            return prev
        if epoch < self.max_epoch:
            logger.error(
                "%s leader epoch went backwards (%d < %d): was ZooKeeper's data reset?",
                self._who,
                epoch,
                self.max_epoch,
            )
        self.max_epoch = max(self.max_epoch, epoch)
        if prev is None or prev.epoch != epoch:
            self._stats.leader_changes += 1
        elected = prev.elected_at if prev is not None and prev.epoch == epoch else None
        self._leader = LeaderInfo(leader, epoch, elected or self._wall())
        return self._leader

    def log(
        self, before: View, role: Role, info: LeaderInfo | None, watching: str, reason: str
    ) -> None:
        if info is None:
            if before.leader is not None or before.reason != reason:
                logger.warning(
                    "%s %s -> %s: %s",
                    self._who,
                    before.role.value,
                    role.value,
                    reason,
                    extra=transition(self._id, before.role, role, 0, reason, "", self._election),
                )
            return
        epoch = info.epoch
        leader = info.member.record.id or info.member.znode
        extra = transition(self._id, before.role, role, epoch, "", leader, self._election)
        if role is Role.LEADER and (before.role is not Role.LEADER or before.leader != info):
            logger.info(
                "%s: node=%s epoch=%d znode=%s (%s -> LEADER)",
                f"candidate leads election {self._election}"
                if self._election
                else "I am a new leader",
                self._id,
                epoch,
                info.member.znode,
                before.role.value,
                extra=extra,
            )
        elif before.role is not role or before.leader != info or before.watching != watching:
            logger.info(
                "%s epoch=%d %s -> %s leader=%s watching=%s",
                self._who,
                epoch,
                before.role.value,
                role.value,
                leader,
                watching or "-",
                extra=extra,
            )
