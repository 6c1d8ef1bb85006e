"""znode names and paths: the one place that knows how electd names its znodes.

A member's znode is  <election path>/electd-<token>-<sequence>
  token     32 lowercase hex digits, unique per registration attempt (uuid4). Finding our own
            znode again by it is how a create whose reply was lost is recovered without an
            orphan (the ZooKeeper recipes' "GUID prefix").
  sequence  the 10-digit counter ZooKeeper appends to EPHEMERAL_SEQUENTIAL znodes: the
            parent's cversion, a signed 32-bit number that turns negative after 2^31 changes
            of the election path's children. For display only: the election orders entries
            by czxid, so a wrapped counter changes nothing.
A member's companion is  <election path>/electd-<token>-<sequence>.alive
            an ephemeral znode its owner creates right after the entry, in the same session,
            and deletes (with the entry in one transaction, or alone once the entry is gone)
            only after it has stopped vouching (engine/order.py). It does not parse as an
            entry, and is not foreign either.
A candidate's proclaimed value (named elections) is  <election path>/electd-<token>-<sequence>.value
            an ephemeral znode of the entry's session, created by the first proclamation and
            rewritten by each later one (the entry's own data is never rewritten: engine/order.py);
            deleted with the entry. Neither an entry nor foreign.
A never_lead member of a named election is  <election path>/member-<token>
            an ephemeral, non-sequential znode carrying the candidate's record: listed as a
            member, never an entry (it never leads and holds nobody back). Not foreign.
Anything else under the election path is foreign: ignored with a warning, never deleted.
"""

from __future__ import annotations

import re

NAME_PREFIX = "electd-"
# ZooKeeper formats the sequence with Java's "%010d" of the parent's cversion, a signed 32-bit
# counter: 10 digits, or after 2^31 child changes a minus sign and 9 or 10 digits.
_NAME = re.compile(r"^electd-([0-9a-f]{32})-(\d{10}|-\d{9,10})$")


COMPANION_SUFFIX = ".alive"
VALUE_SUFFIX = ".value"
MEMBER_PREFIX = "member-"
_MEMBER = re.compile(r"^member-([0-9a-f]{32})$")


def create_prefix(election_path: str, token: str) -> str:
    """The path to pass to a sequential create for `token`."""
    return f"{election_path.rstrip('/')}/{NAME_PREFIX}{token}-"


def parse_name(name: str) -> tuple[str, int] | None:
    """(token, sequence) of an electd znode name, or None for a foreign name."""
    match = _NAME.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def join(election_path: str, name: str) -> str:
    return f"{election_path.rstrip('/')}/{name}"


def companion_name(name: str) -> str:
    """The name of the companion of the entry named `name`."""
    return name + COMPANION_SUFFIX


def companion_of(name: str) -> tuple[str, str, int] | None:
    """(entry name, token, sequence) of the entry a companion's name belongs to, or None if
    `name` is not a companion's name."""
    if not name.endswith(COMPANION_SUFFIX):
        return None
    entry = name[: -len(COMPANION_SUFFIX)]
    parsed = parse_name(entry)
    return None if parsed is None else (entry, parsed[0], parsed[1])


def value_name(name: str) -> str:
    """The name of the proclaimed-value znode of the entry named `name`."""
    return name + VALUE_SUFFIX


def value_of(name: str) -> str | None:
    """The entry name a value znode's name belongs to, or None if `name` is not one."""
    if not name.endswith(VALUE_SUFFIX):
        return None
    entry = name[: -len(VALUE_SUFFIX)]
    return entry if parse_name(entry) is not None else None


def member_name(token: str) -> str:
    """The name of a never_lead member's znode for `token` (32 lowercase hex digits)."""
    return f"{MEMBER_PREFIX}{token}"


def is_member(name: str) -> bool:
    """Whether `name` is a never_lead member's znode name."""
    return _MEMBER.match(name) is not None
