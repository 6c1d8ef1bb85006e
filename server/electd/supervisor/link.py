"""The node process's end of the supervisor's pipe (protocol.py).

The node tells the supervisor, in one `state` message that is always whole: the term it leads
(or none), the lease deadline after every renewal, and its session's id and password. The
lease part is sent from the engine's thread right after each renewal, not from the asyncio
loop, so a blocked loop cannot make the supervisor's copy run late; the other parts come from
the loop. Sends never block: a message the supervisor has no room for is dropped (the next one
carries everything). The supervisor answers with the command's counters and, after the node
said it is stopping, `stopped` once no process of the command is left.

Threads: `lease`, `grants` and `session` from any thread, the rest on the asyncio loop. Imports
neither grpc nor the election engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from typing import Any

from electd.supervisor import protocol

logger = logging.getLogger(__name__)

_GRANTS_PAD = 0.25  # seconds added to a reported candidate lease (see `grants`)


class SupervisorLink:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"epoch": None, "znode": "", "until": 0.0}
        self._dropped = 0
        self._stopped = asyncio.Event()
        self.command: dict[str, Any] = {}

    @classmethod
    def from_env(cls) -> SupervisorLink | None:
        """The link named by ELECTD_SUPERVISOR_FD (removed from the environment), or None when
        the node runs without a supervisor."""
        raw = os.environ.pop(protocol.ENV_FD, "")
        if not raw:
            return None
        return cls(socket.socket(fileno=int(raw)))

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self._sock.fileno(), self._on_readable)

    # ----- any thread -----------------------------------------------------------------------

    def lease(self, until: float, timeout: float, session_id: int) -> None:
        """After a renewal of `session_id`: the lease now ends at `until` (CLOCK_BOOTTIME)."""
        with self._lock:
            self._state["until"] = until
            self._state["timeout"] = timeout
            self._state["lease_session"] = session_id
            self._send_state()

    def grants(self, until: float) -> None:
        """The latest lease granted to a remote candidate now ends at `until` (CLOCK_BOOTTIME):
        sent at once, before the candidate hears of the grant, so that the supervisor never
        closes a crashed node's session while a candidate may still act on it (C4)."""
        with self._lock:
            if until <= self._state.get("grants_until", 0.0):
                return
            # Padded: later grants within the pad need no message (thousands of candidates
            # pinging would flood the pipe and make the supervisor drop messages); a copy
            # that is too late is safe, the supervisor only waits a little longer (C4).
            self._state["grants_until"] = until + _GRANTS_PAD
            self._send_state()

    def session(self, credentials: tuple[int, bytes] | None) -> None:
        with self._lock:
            if credentials is None:
                self._state.pop("session", None)
                self._state.pop("password", None)
            elif self._state.get("session") != credentials[0]:
                self._state["session"] = credentials[0]
                self._state["password"] = credentials[1].hex()
            else:
                return
            self._send_state()

    # ----- loop -----------------------------------------------------------------------------

    def leading(self, epoch: int | None, znode: str, session_id: int) -> None:
        """This node leads the term `epoch` with its entry `znode`, owned by `session_id` (or
        leads nothing: None). The supervisor runs the command only while the lease it hears of
        is that session's: a lease renewed by a later session vouches for no earlier term."""
        with self._lock:
            self._state["epoch"] = epoch
            self._state["znode"] = znode if epoch is not None else ""
            self._state["term_session"] = session_id if epoch is not None else 0
            self._send_state()

    def ready(self, node_id: str, address: str) -> None:
        self._send(protocol.encode("ready", node_id=node_id, address=address))

    async def stop_command(self, timeout: float) -> bool:
        """Ask the supervisor to end the command's term; True once it says no process of the
        command is left, False after `timeout` (the supervisor still ends it by the lease)."""
        self._send(protocol.encode("stopping"))
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            logger.warning(
                "the supervisor did not confirm the leader command's end in %gs", timeout
            )
            return False
        return True

    def _on_readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(protocol.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                logger.error("the supervisor's pipe closed")
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
                return
            message = protocol.decode(data)
            if message is None:
                continue
            kind, doc = message
            if kind == "command":
                self.command = doc
            elif kind == "stopped":
                self._stopped.set()

    # ----- sending --------------------------------------------------------------------------

    def _send_state(self) -> None:
        self._send(protocol.encode("state", **self._state))

    def _send(self, data: bytes) -> None:
        try:
            self._sock.send(data)
        except BlockingIOError:
            self._dropped += 1
            if self._dropped in (1, 100, 10000):
                logger.warning("the supervisor is not reading (%d messages dropped)", self._dropped)
        except OSError as exc:
            logger.debug("supervisor pipe: %s", exc)
