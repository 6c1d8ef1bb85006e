"""The cluster identity: what makes an election path one cluster's, and the epoch floor that
keeps epochs growing across a rebuilt ensemble.

The election path's own data holds it, as UTF-8 JSON:
    {"v": 1, "cluster": "<32 hex digits>", "epoch_base": 0, "previous": ""}
The first node on a path without one writes it (ZooKeeper's data version makes that a race
only one node wins). Every epoch a node publishes is `epoch_base + czxid` of the leader's
entry. zxids start again from the bottom when an ensemble is rebuilt from empty data, so the
epochs of a rebuilt ensemble would go down; an operator who rebuilds carries the floor on with
`electd identity --epoch-floor E --previous OLD` (README, "Rebuilding the ensemble"), which
writes a new identity that names the old one and a base above every epoch it gave.

A node remembers the identity it joined (and the highest epoch it saw) for as long as it runs,
and refuses to take part in a path of any other identity, unless that identity continues the
remembered one with a base at or above every epoch the node has seen (every epoch of the new
identity is above its base); `--cluster-id` pins the
identity from the start. Pure values and rules; imports nothing of kazoo or grpc.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

IDENTITY_FORMAT = 1
MAX_EPOCH_BASE = 2**62  # leaves room for 2^62 zxids within int64
_CLUSTER = re.compile(r"^[0-9a-f]{32}$")


class IdentityError(ValueError):
    """The election path's data is not a cluster identity."""


class Refused(Exception):
    """This node must not take part in the election at this path; the message says why and
    what the operator can do."""


@dataclass(frozen=True)
class ClusterIdentity:
    cluster: str
    epoch_base: int = 0
    previous: str = ""

    @classmethod
    def new(cls, cluster: str = "", epoch_base: int = 0, previous: str = "") -> ClusterIdentity:
        ident = cls(cluster or uuid.uuid4().hex, epoch_base, previous)
        problem = ident.problem()
        if problem:
            raise IdentityError(problem)
        return ident

    def problem(self) -> str | None:
        if not _CLUSTER.fullmatch(self.cluster):
            return f"cluster id {self.cluster[:40]!r} is not 32 lowercase hex digits"
        if self.previous and not _CLUSTER.fullmatch(self.previous):
            return f"previous cluster id {self.previous[:40]!r} is not 32 lowercase hex digits"
        if type(self.epoch_base) is not int or not 0 <= self.epoch_base <= MAX_EPOCH_BASE:
            return f"epoch base {str(self.epoch_base)[:30]} is outside 0-{MAX_EPOCH_BASE}"
        return None

    def encode(self) -> bytes:
        doc = {
            "v": IDENTITY_FORMAT,
            "cluster": self.cluster,
            "epoch_base": self.epoch_base,
            "previous": self.previous,
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> ClusterIdentity:
        """Raises IdentityError, and nothing else, for any data that is not an identity."""
        try:
            doc = json.loads(data.decode("utf-8")) if len(data) <= 4096 else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict) or doc.get("v") != IDENTITY_FORMAT or doc.get("v") is True:
            raise IdentityError("not an electd cluster identity")
        cluster, base, previous = doc.get("cluster"), doc.get("epoch_base", 0), doc.get("previous")
        if not isinstance(cluster, str) or not isinstance(previous or "", str):
            raise IdentityError("not an electd cluster identity")
        ident = cls(cluster, base if type(base) is int else -1, previous or "")
        problem = ident.problem()
        if problem:
            raise IdentityError(problem)
        return ident


def judge(
    found: ClusterIdentity, remembered: ClusterIdentity | None, max_epoch: int, pinned: str
) -> str | None:
    """Why this node must not join the path that carries `found`, or None if it may.
    `remembered`: the identity it joined before (None: never joined); `max_epoch`: the highest
    epoch it has seen; `pinned`: --cluster-id ("" if not given)."""
    if pinned and pinned not in (found.cluster, found.previous):
        return (
            f"the election path belongs to cluster {found.cluster}, not to {pinned} "
            "(--cluster-id): is --zk or --election-path pointing at another cluster?"
        )
    if remembered is None or found.cluster == remembered.cluster:
        return None
    if found.previous == remembered.cluster and found.epoch_base >= max_epoch:
        return None  # an operator carried the cluster on (a rebuilt ensemble)
    return (
        f"the election path now belongs to cluster {found.cluster} (base {found.epoch_base}), "
        f"but this node joined cluster {remembered.cluster} and has seen epoch {max_epoch}: "
        "the ensemble was rebuilt, or --zk now points at another one. If it was rebuilt, "
        f"carry the cluster on: electd identity --epoch-floor {max_epoch} "
        f"--previous {remembered.cluster} (same --zk and --election-path)"
    )


def missing(remembered: ClusterIdentity, max_epoch: int) -> str:
    """Why a node that joined `remembered` refuses a path without an identity."""
    return (
        f"the election path has no cluster identity, but this node joined cluster "
        f"{remembered.cluster} and has seen epoch {max_epoch}: the ensemble was rebuilt from "
        "empty data (or --zk points at another one), and its epochs would start again from "
        f"below {max_epoch}. Carry the cluster on: electd identity --epoch-floor "
        f"{max_epoch} --previous {remembered.cluster} (same --zk and --election-path)"
    )
