"""What every ZooKeeper handshake of one kazoo client tells the store, and when the client gives
its session up (RELIABILITY.md, V9). Imports kazoo (zk/ is the only package that does).

kazoo 2.11 uses, but does not expose, two facts of each successful handshake; both are learned
by wrapping its connection handler's handshake (kazoo is pinned; tests/integration checks them
against real servers):
  * the negotiated session timeout: the engine's lease must be derived from what the server
    enforces, never from what was asked for;
  * when the handshake began: ZooKeeper's leader refreshes the session while it validates the
    handshake, so the lease may run from that moment.

Giving up (as Curator does): kazoo offers the session and the last zxid it saw in every
handshake, and a server that has seen less (an ensemble rebuilt from empty data, or another
one behind the same address) refuses it, forever. So once the connection has been lost for
longer than the granted session timeout (the session is then expired, or unreachable, and the
lease ran out long before), the next handshake first ends the session on our side the way
kazoo ends an expired one (state LOST: pending calls fail with SessionExpiredError, watches are
dropped, session id and password and the last zxid are reset), and then offers none: a new
session, on whichever ensemble answers. The engine sees LOST and rejoins with a new entry.

Threads: the wrapper runs on kazoo's connection thread, `on_state` on kazoo's threads; the
fields are single references, read from any thread.
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.protocol.states import KeeperState

from electd.engine.clock import now as lease_clock

logger = logging.getLogger(__name__)


class Handshakes:
    def __init__(self, client: KazooClient, requested: float) -> None:
        self._client = client
        self._requested = requested
        self.negotiated: float | None = None
        self.established: tuple[int, float] | None = None  # (session, lease clock at start)
        self._lost_at: float | None = None  # lease clock when the connection was lost
        self.given_up = 0  # sessions given up after too long away (tests, logs)
        conn = client._connection
        self._handshake = conn._connect
        conn._connect = self._connect
        client.add_listener(self._on_state)

    def timeout(self) -> float:
        negotiated = self.negotiated
        return self._requested if negotiated is None else negotiated

    def _on_state(self, state: str) -> bool:
        if state == KazooState.SUSPENDED:
            if self._lost_at is None:
                self._lost_at = lease_clock()
        else:
            self._lost_at = None
        return False  # keep listening

    def _connect(self, *args: Any, **kwargs: Any) -> Any:
        lost_at = self._lost_at
        session = self._client._session_id  # `client_id` says None while disconnected
        away = 0.0 if lost_at is None else lease_clock() - lost_at
        # Two session timeouts, not one: a new ZooKeeper quorum leader renews every session it
        # takes over, so after a ZooKeeper leader election that kept us away longer than T our
        # session may well be alive (CI saw 5 s at T = 4 s under load). Giving up only costs
        # liveness (the lease ran out long ago), so err on the side of keeping the session.
        if session and away > 2 * self.timeout():
            logger.warning(
                "disconnected from ZooKeeper for %.1fs, longer than twice the session timeout "
                "(%gs): giving up session 0x%x and the last zxid seen (0x%x); starting a new "
                "session",
                away,
                self.timeout(),
                int(session),
                int(self._client.last_zxid),
            )
            self.given_up += 1
            self._client._session_callback(KeeperState.EXPIRED_SESSION)
        began = lease_clock()
        result = self._handshake(*args, **kwargs)
        client_id = self._client.client_id
        if client_id:
            self.established = (int(client_id[0]), began)
        read_timeout_ms = float(result[0])  # kazoo: 2/3 of the negotiated timeout, in ms
        negotiated = round(read_timeout_ms * 1.5 / 1000.0, 3)
        if negotiated != self.negotiated and abs(negotiated - self._requested) > 0.001:
            logger.warning(
                "ZooKeeper granted a session timeout of %gs instead of the requested %gs "
                "(the servers' minSessionTimeout/maxSessionTimeout); leases use %gs",
                negotiated,
                self._requested,
                negotiated,
            )
        self.negotiated = negotiated
        return result
