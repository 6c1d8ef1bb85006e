"""The election's data model: node records, members, the leader and the published view.

Owns the znode data encoding. Imports neither kazoo nor grpc. Everything here is immutable
and safe to hand between threads.

Node record encoding (the data of each member's znode): UTF-8 JSON object
    {"v": 1, "id": "n1", "address": "10.0.0.1:7000", "labels": {"zone": "a"},
     "version": "0.1.0"}
A candidate of a named election (electd/elections) has a candidate record: the same object with
the candidate's id, an empty address, and the optional keys
    "value": "<base64 of at most 16 KiB>", "priority": 5, "never_lead": true, "host_id": "n1"
which are written only when they are not their defaults (b"", 0, false, ""), so a node's record
is byte for byte what it always was, and old records decode as before. An empty address is
allowed only with a host_id (a candidate's record). Unknown keys are ignored (forward
compatibility); a record that is not valid UTF-8 JSON, lacks a field, has the wrong types or
values that break the rules of electd.names raises RecordError.
The record is for display only: a member whose record cannot be read still counts in the
election, shown as unreadable.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from electd import names

RECORD_FORMAT = 1
# A candidate's value (at most 16 KiB, base64 in the record) and up to 64 labels of 256
# characters, JSON-escaped, fit well within this; ZooKeeper's own limit is 1 MiB.
MAX_RECORD_BYTES = 256 * 1024
MAX_VALUE_BYTES = 16 * 1024
_INT32 = (-(2**31), 2**31 - 1)


class RecordError(ValueError):
    """A znode's data is not a valid electd node record."""


@dataclass(frozen=True)
class NodeRecord:
    """What a node says about itself in its znode."""

    id: str
    address: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    version: str = ""
    # A candidate's (named elections): what it says about itself, its priority, whether it
    # only takes part as a member, and the electd node whose session holds its entry.
    value: bytes = b""
    priority: int = 0
    never_lead: bool = False
    host_id: str = ""

    def encode(self) -> bytes:
        doc: dict[str, object] = {
            "v": RECORD_FORMAT,
            "id": self.id,
            "address": self.address,
            "labels": dict(self.labels),
            "version": self.version,
        }
        if self.value:
            doc["value"] = base64.b64encode(self.value).decode("ascii")
        if self.priority:
            doc["priority"] = self.priority
        if self.never_lead:
            doc["never_lead"] = True
        if self.host_id:
            doc["host_id"] = self.host_id
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> NodeRecord:
        """The record in a znode's data, validated with the same rules as the configuration
        (electd.names). Raises RecordError, and nothing else, for any data at all."""
        try:
            return cls._decode(data)
        except RecordError:
            raise
        except Exception as exc:  # noqa: BLE001 - foreign data: every failure is a bad record
            # (RecursionError for deep nesting, ValueError for a huge integer, ...), never a
            # crash or a retry loop of the engine.
            raise RecordError(f"unreadable ({type(exc).__name__})") from None

    @classmethod
    def _decode(cls, data: bytes | None) -> NodeRecord:
        if not data:
            raise RecordError("empty data")
        if len(data) > MAX_RECORD_BYTES:
            raise RecordError(f"{len(data)} bytes, more than {MAX_RECORD_BYTES}")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordError(f"not UTF-8 JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise RecordError("not a JSON object")
        fmt = doc.get("v")
        if type(fmt) is not int or fmt != RECORD_FORMAT:
            raise RecordError(f"unknown record format {str(fmt)[:20]!r}")
        node_id, address = doc.get("id"), doc.get("address")
        labels, version = doc.get("labels", {}), doc.get("version", "")
        if not isinstance(node_id, str) or not node_id:
            raise RecordError("field 'id' missing or not a string")
        host_id = doc.get("host_id", "")
        if not isinstance(host_id, str):
            raise RecordError("field 'host_id' is not a string")
        if not isinstance(address, str) or not (address or host_id):
            raise RecordError("field 'address' missing or not a string")
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise RecordError("field 'labels' is not a string map")
        if not isinstance(version, str):
            raise RecordError("field 'version' is not a string")
        value, priority, never_lead = _candidate_fields(doc)
        problem = (
            names.node_id_problem(node_id)
            or (names.address_problem(address) if address else None)
            or (names.node_id_problem(host_id) if host_id else None)
            or next((p for k, v in labels.items() if (p := names.label_problem(k, v))), None)
            or (f"more than {names.MAX_LABELS} labels" if len(labels) > names.MAX_LABELS else None)
            or names.text_problem(version, 64)
        )
        if problem:
            raise RecordError(problem)
        return cls(
            node_id,
            address,
            MappingProxyType(dict(labels)),
            version,
            value,
            priority,
            never_lead,
            host_id,
        )

    @classmethod
    def unreadable(cls) -> NodeRecord:
        """What is shown of a member whose record cannot be read: nothing."""
        return cls("", "")


def _candidate_fields(doc: dict[str, object]) -> tuple[bytes, int, bool]:
    """A candidate record's value, priority and never_lead (their defaults when absent)."""
    encoded, priority, never_lead = (
        doc.get("value", ""),
        doc.get("priority", 0),
        doc.get("never_lead", False),
    )
    if not isinstance(encoded, str):
        raise RecordError("field 'value' is not a string")
    try:
        value = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise RecordError("field 'value' is not base64") from None
    if len(value) > MAX_VALUE_BYTES:
        raise RecordError(f"field 'value' has {len(value)} bytes, more than {MAX_VALUE_BYTES}")
    if type(priority) is not int or not _INT32[0] <= priority <= _INT32[1]:
        raise RecordError("field 'priority' is not a 32-bit integer")
    if type(never_lead) is not bool:
        raise RecordError("field 'never_lead' is not a boolean")
    return value, priority, never_lead


@dataclass(frozen=True)
class Member:
    """One live member: the facts ZooKeeper keeps about its znode (which decide the election)
    and what its data says (for display: `record`, or an empty record and `record_error`)."""

    znode: str
    sequence: int
    record: NodeRecord
    session_id: int
    czxid: int
    created_ms: int
    record_error: str = ""
    # A candidate's proclaimed value (its `.value` znode's data, None: never proclaimed) and
    # its revision (that znode's data version + 1; 0 for the record's own value).
    proclaimed: bytes | None = None
    value_revision: int = 0

    @property
    def value(self) -> bytes:
        """The candidate's value as watchers see it: the latest proclamation, or the record's."""
        return self.proclaimed if self.proclaimed is not None else self.record.value


@dataclass(frozen=True)
class LeaderInfo:
    """The leader and its fencing epoch (the czxid of its znode: strictly increasing)."""

    member: Member
    epoch: int
    elected_at: float  # wall-clock seconds when this node first saw this epoch


@dataclass(frozen=True)
class MemberView:
    """A member in election order, with its place in the watch chain."""

    member: Member
    is_leader: bool
    watches: str  # znode name of the predecessor, "" for the leader


class Role(enum.Enum):
    """This node's own role. Only LEADER may act as leader, and only while its lease holds."""

    JOINING = "JOINING"
    FOLLOWER = "FOLLOWER"
    LEADER = "LEADER"
    DISCONNECTED = "DISCONNECTED"
    REFUSED = "REFUSED"  # the election path belongs to another cluster (engine/identity.py)
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class View:
    """What the engine publishes after every decision.

    `leader` is only to be believed while `valid_until` (seconds on the lease clock,
    engine/clock.py: CLOCK_BOOTTIME, which keeps counting through a suspend) lies in the
    future: that is the local lease, which runs from the latest moment at which ZooKeeper's
    leader provably refreshed the session (see `electd.engine.lease.Lease`). A node paused (GC,
    SIGSTOP) past it stops vouching for any leader, itself included.
    """

    version: int
    node_id: str
    role: Role
    leader: LeaderInfo | None
    reason: str  # why no leader is vouched for; "" when leader is set
    own_znode: str
    watching: str
    valid_until: float

    def vouched(self, now: float) -> LeaderInfo | None:
        """The leader, if the lease still holds at lease-clock time `now`."""
        if self.leader is None or now >= self.valid_until:
            return None
        return self.leader

    def why_unknown(self, now: float) -> str:
        if self.leader is not None and now >= self.valid_until:
            return "lease expired: no word from ZooKeeper within the session's read timeout"
        return self.reason or "no leader"

    def is_leader(self, now: float) -> bool:
        return self.role is Role.LEADER and self.vouched(now) is not None

    def serving(self, now: float) -> bool:
        """Health: a live session, joined, and within the lease."""
        return self.role in (Role.LEADER, Role.FOLLOWER) and self.vouched(now) is not None


def transition(
    node: str,
    before: Role,
    after: Role,
    epoch: int = 0,
    reason: str = "",
    leader: str = "",
    election: str = "",
) -> dict[str, object]:
    """The `extra` of the one log line of a state transition (logging's `extra=`). `node`:
    whose entry (a candidate's id in a named `election`; "" is the node election)."""
    return {
        "event": "transition",
        "node": node,
        "election": election or "node",
        "epoch": epoch,
        "from_role": before.value,
        "to_role": after.value,
        "reason": reason,
        "leader": leader,
    }
