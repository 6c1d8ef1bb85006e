"""The acknowledgement of a step-down (order.py; RELIABILITY.md, V11): once another client
deleted our entry and we stopped vouching, we delete its companion, which is what a successor
waits for; and every full pass removes a companion of our session whose entry is gone.

Owns how these deletes are sent: at once, or, for an engine given an `AckGate` (a candidate of
a named election, electd/elections/candidacy.py), only when the gate releases them: the
candidate acknowledged the end of its term, or the last lease granted to it ran out
(RELIABILITY.md, C2). A node's own engine has no gate and sends them exactly as before.

Threads: `send_nowait` runs on the store's threads (a watch callback), `now` on the engine's
worker; a gate may run the send later on any thread. Nothing here blocks, except `now`
without a gate (one bounded store call, as before). Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Protocol

from electd.engine.store import Store

logger = logging.getLogger(__name__)


class AckGate(Protocol):
    def release(self, name: str, send: Callable[[], None]) -> None:
        """Run `send` (on any thread; it does not block) once the companion of our entry
        `name` may be deleted: at once, or later. Asked again for the same entry, the latest
        `send` replaces an earlier one not run yet."""
        ...


class Acks:
    def __init__(self, store: Store, gate: AckGate | None, who: str) -> None:
        self._store = store
        self._gate = gate
        self._who = who

    def send_nowait(self, name: str) -> None:
        """From our entry's deletion callback, right after the step-down: without waiting."""
        send = functools.partial(
            self._store.remove_nowait, name, functools.partial(self._on_acked, name)
        )
        if self._gate is None:
            send()
        else:
            self._gate.release(name, send)

    def now(self, name: str) -> None:
        """From the worker (our entry found gone, or a companion of ours left behind): without
        a gate, delete now (raises what the store raises); with one, as `send_nowait`."""
        if self._gate is None:
            self._store.remove(name)
        else:
            self.send_nowait(name)

    def _on_acked(self, name: str, error: Exception | None) -> None:
        if error is not None:  # the worker's next pass deletes it
            logger.info("%s could not delete the companion of %s: %s", self._who, name, error)
