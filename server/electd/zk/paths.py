"""znode names and paths: the one place that knows how electd names its znodes.

A member's znode is  <election path>/electd-<token>-<sequence>
  token     32 lowercase hex digits, unique per registration attempt (uuid4). Finding our own
            znode again by it is how a create whose reply was lost is recovered without an
            orphan (the ZooKeeper recipes' "GUID prefix").
  sequence  the 10-digit counter ZooKeeper appends to EPHEMERAL_SEQUENTIAL znodes: the
            parent's cversion, a signed 32-bit number that turns negative after 2^31 changes
            of the election path's children. For display only: the election orders entries
            by czxid, so a wrapped counter changes nothing.
Anything else under the election path is foreign: ignored with a warning, never deleted.
"""

from __future__ import annotations

import re

NAME_PREFIX = "electd-"
# ZooKeeper formats the sequence with Java's "%010d" of the parent's cversion, a signed 32-bit
# counter: 10 digits, or after 2^31 child changes a minus sign and 9 or 10 digits.
_NAME = re.compile(r"^electd-([0-9a-f]{32})-(\d{10}|-\d{9,10})$")


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
