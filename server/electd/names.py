"""The one rule for the names that cross the wire: node ids, addresses, label keys and values,
and the names of named elections.

Used by the configuration (`--node-id`, `--label`, `--selector`), by the gRPC servicer
(`label_selector`, `election`), by the elections registry and by record decoding, so that a
name one part accepts is never refused by another. Each check returns what is wrong (for the
caller's own error type) or None. Imports nothing of electd.
"""

from __future__ import annotations

import re

HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9.]+)$")
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
# A named election: one znode name under --elections-root ("." and ".." cannot match).
ELECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_LABEL_VALUE = 256
MAX_LABELS = 64

NODE_ID_RULE = "1-128 letters, digits, '.', '_', ':', '@' or '-', starting with a letter or digit"
LABEL_KEY_RULE = "1-63 letters, digits, '.', '_', '/' or '-', starting with a letter or digit"
ELECTION_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"


def node_id_problem(node_id: str) -> str | None:
    if NODE_ID.fullmatch(node_id):
        return None
    return f"{node_id!r} must be {NODE_ID_RULE}"


def address_problem(address: str) -> str | None:
    """HOST:PORT with a host name or an IP address (IPv6 in brackets) and a port 1-65535."""
    host, sep, port = address.rpartition(":")
    if not sep or not HOST.fullmatch(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{address[:80]!r} is not HOST:PORT"
    return None


def text_problem(text: str, limit: int) -> str | None:
    """Printable text of at most `limit` characters (no control characters, no lone
    surrogates)."""
    if len(text) > limit:
        return f"is longer than {limit} characters"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "contains control characters or lone surrogates"
    return None


def label_problem(key: str, value: str) -> str | None:
    if not LABEL_KEY.fullmatch(key):
        return f"key {key!r} must be {LABEL_KEY_RULE}"
    problem = text_problem(value, MAX_LABEL_VALUE)
    return f"value of {key!r} {problem}" if problem else None


def election_problem(name: str) -> str | None:
    """A named election's name ("" is the node election, which is no name: callers that
    accept it check for it first)."""
    if ELECTION.fullmatch(name):
        return None
    if not name:
        return "the election name is empty"
    return f"election name {name[:140]!r} must be {ELECTION_RULE}"
