"""Timestamps inside an electd node for `python -m bench.failover_trace` (never in production).

Loaded by the node's interpreter because bench/failover_trace.py puts this folder first on the
node's PYTHONPATH. It wraps a few functions on the path from SIGTERM to the delete of the
node's znode and appends "<unix time> <step>" lines to $ELECTD_TRACE_FILE. The wrappers only
add a timestamp each; they change no behaviour.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

_PATH = os.environ.get("ELECTD_TRACE_FILE", "")
_out = open(_PATH, "a", buffering=1) if _PATH else None  # noqa: SIM115 (lives as long as the process)


def _mark(step: str) -> None:
    if _out is not None:
        _out.write(f"{time.time():.6f} {step}\n")


def _around(owner: Any, name: str, before: str, after: str = "") -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _mark(before)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                _mark(after)

    setattr(owner, name, wrapper)


if _out is not None:
    import asyncio.unix_events

    import kazoo.protocol.connection  # type: ignore[import-untyped]
    from kazoo.protocol.serialization import (  # type: ignore[import-untyped]
        Delete,
        Transaction,
    )

    import electd.engine.engine
    import electd.rpc.hub

    _around(asyncio.unix_events._UnixSelectorEventLoop, "_handle_signal", "signal reaches asyncio")
    _around(electd.rpc.hub.ViewHub, "retire", "hub.retire entered")
    _around(electd.engine.engine.ElectionEngine, "leave", "engine.leave entered", "leave returned")

    _submit = kazoo.protocol.connection.ConnectionHandler._submit

    def _traced_submit(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        result = _submit(self, request, *args, **kwargs)
        # The node deletes its entry and its companion in one transaction (zk/store.py).
        if isinstance(request, Delete) or (
            isinstance(request, Transaction)
            and any(isinstance(op, Delete) for op in request.operations)
        ):
            _mark("Delete written to ZooKeeper's socket")
        return result

    kazoo.protocol.connection.ConnectionHandler._submit = _traced_submit
