"""The pipe between the supervisor and its node process: one JSON object per datagram of a
SOCK_SEQPACKET socketpair (a message is never split or merged), the node's end passed as an
inherited file descriptor named by ELECTD_SUPERVISOR_FD.

node -> supervisor
  state     {epoch|null, znode, term_session, until, lease_session, timeout, session,
            password}: the whole of what the supervisor must know, sent again after every lease
            renewal and every change, so a message dropped while the supervisor was not reading
            costs nothing. The node leads term `epoch` (entry `znode`, owned by session
            `term_session`); the lease of session `lease_session` ends at `until` on
            CLOCK_BOOTTIME (the same clock in both processes): a term counts only while the two
            sessions are one. `session` and `password` (hex; memory only: never on disk, in
            argv or in a log) are the credentials to close the session with. `grants_until`
            (CLOCK_BOOTTIME, optional): the latest lease the node has granted to a remote
            candidate of a named election (RELIABILITY.md, C4): after a crash the session is
            closed only once it has passed, because the candidate may act until then.
  ready     {node_id, address}: the node serves; its id and address go to the command's env.
  stopping  {}: the node is shutting down: end the command's term; answer `stopped`.
supervisor -> node
  command   {running, starts, exits, spawn_failures, error}: for health and metrics.
  stopped   {}: the command's term is over (no process of it is left).

Imports only the standard library.
"""

from __future__ import annotations

import json
from typing import Any

ENV_FD = "ELECTD_SUPERVISOR_FD"
MAX_MESSAGE = 65536


def encode(kind: str, **fields: Any) -> bytes:
    return json.dumps({"t": kind, **fields}, separators=(",", ":")).encode()


def decode(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """(kind, fields), or None for anything that is not a message of this protocol."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("t"), str):
        return None
    kind = doc.pop("t")
    return kind, doc
