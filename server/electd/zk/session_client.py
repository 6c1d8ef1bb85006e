"""ZkSession: one ZooKeeper session of this process, shared by every election store on it.

Owns the kazoo client and everything that is per session, not per election path: its
lifecycle (start, close), the reconnect policy, the handshake hook (zk/handshake.py: the
granted timeout, when each handshake began, giving up an unreachable session), the
connection-state listeners, the per-call retry, `sync`, the session's id and credentials (for
the supervisor), the translation of kazoo errors into the engine's (`CoordinatorUnavailable`,
`SessionLost`), and the entries left behind by a store that closed before it could delete
them (sent again at every reconnect, until gone). It never looks at an election's children:
that is each `ZkStore(session, path)`'s (zk/store.py); for named elections it hands out their
stores and does the two calls on the elections' root (zk/elections.py).

It satisfies the lease's `SessionFacts` (engine/lease.py), so one `Lease(session)` serves every
engine on the session; and because every election and candidate of the process lives in this
one session, one close (here, or the supervisor's, zk/session.py) ends them all at once.

Threads: every method may be called from any thread (kazoo's client is thread-safe). State
callbacks run on kazoo's threads and are passed straight on; they must not block. Every
blocking call is bounded by the session timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import Callback
from kazoo.retry import KazooRetry, RetryFailedError

from electd.engine.store import ConnState, CoordinatorUnavailable, SessionLost, StateListener
from electd.zk.handshake import Handshakes

if TYPE_CHECKING:
    from electd.zk.elections import ElectionZkStore

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_STATES = {
    KazooState.CONNECTED: ConnState.CONNECTED,
    KazooState.SUSPENDED: ConnState.SUSPENDED,
    KazooState.LOST: ConnState.LOST,
}


class ZkSession:
    """One kazoo client and its session. `sync_path`: the znode every `sync` names (ZooKeeper's
    sync passes through the quorum leader whatever the path; the path only has to be one the
    session may read)."""

    def __init__(
        self,
        hosts: str,
        session_timeout: float,
        connect_timeout: float = 10.0,
        client_options: Mapping[str, Any] | None = None,
        sync_path: str = "/",
    ) -> None:
        self._timeout = session_timeout
        self._connect_timeout = connect_timeout
        self._sync_path = sync_path
        self.client = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            # Reconnect forever, with backoff: a node waits out a ZooKeeper outage.
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=2, max_delay=1.0),
            logger=logging.getLogger("kazoo.client"),
            # TLS, digest auth and the ACL of every create (zk/security.py's client_options).
            **(client_options or {}),
        )
        # Per-call retry of connection loss, short: the engine has its own, longer backoff.
        self._retry = KazooRetry(
            max_tries=4, delay=0.02, backoff=2, max_delay=0.5, ignore_expire=False
        )
        self.handshakes = Handshakes(self.client, session_timeout)
        self._leftover_lock = threading.Lock()
        self._leftovers: set[tuple[str, ...]] = set()  # deletes still to send, path groups
        self._listeners: dict[StateListener, list[Callable[[str], bool]]] = {}  # with the lock
        self.client.add_listener(self._resend_leftovers)
        self._started = False
        self._closed = False

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect (once; later calls do nothing). Raises CoordinatorUnavailable when no server
        answers within the connect timeout."""
        if self._started:
            return
        try:
            self.client.start(timeout=self._connect_timeout)
        except KazooTimeoutError:
            self.client.stop()
            self.client.close()
            raise CoordinatorUnavailable(
                f"no ZooKeeper server reachable at {self.client.hosts!r} "
                f"within {self._connect_timeout:g}s"
            ) from None
        self._started = True

    def close(self) -> None:
        """End the session: ZooKeeper deletes every ephemeral znode of it, of every election."""
        if self._closed:
            return
        self._closed = True
        try:
            self.client.stop()
        finally:
            self.client.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # ----- the session's facts (the lease's SessionFacts, and each store's) -----------------

    def session_id(self) -> int | None:
        client_id = self.client.client_id
        return int(client_id[0]) if client_id else None

    def session_credentials(self) -> tuple[int, bytes] | None:
        """The current session's id and password, for the supervisor alone (it closes the
        session of a node process that died, electd/supervisor): never logged or written."""
        client_id = self.client.client_id
        return (int(client_id[0]), bytes(client_id[1])) if client_id else None

    def session_timeout(self) -> float:
        """The timeout ZooKeeper granted the current session (it clamps the requested one to
        its min/maxSessionTimeout), or the requested one before the first session."""
        return self.handshakes.timeout()

    def session_established(self) -> tuple[int, float] | None:
        established = self.handshakes.established
        if established is None or established[0] != self.session_id():
            return None
        return established

    def add_state_listener(self, listener: StateListener) -> None:
        def on_state(state: str) -> bool:
            listener(_STATES[state])
            return False  # keep listening

        with self._leftover_lock:
            self._listeners.setdefault(listener, []).append(on_state)
        self.client.add_listener(on_state)

    def remove_state_listener(self, listener: StateListener) -> None:
        """Stop calling `listener` (a store of a candidate that went: kazoo would keep it)."""
        with self._leftover_lock:
            wrappers = self._listeners.pop(listener, [])
        for on_state in wrappers:
            self.client.remove_listener(on_state)

    # ----- named elections (zk/elections.py) ----------------------------------------------

    def election_store(self, path: str) -> ElectionZkStore:
        """The store of the named election at `path` on this session (creates nothing)."""
        from electd.zk.elections import ElectionZkStore

        return ElectionZkStore(self, path)

    def list_elections(self, root: str) -> list[tuple[str, int]]:
        from electd.zk.elections import list_elections

        return list_elections(self, root)

    def delete_entry(self, path: str, name: str) -> bool:
        from electd.zk.elections import delete_entry

        return delete_entry(self, path, name)

    def sync(self, path: str | None = None) -> None:
        """A round trip through ZooKeeper's quorum leader (see engine/store.py's `sync`)."""
        target = path or self._sync_path
        self.call(lambda: self.retry()(lambda: self.wait(self.client.sync_async(target))))
        self._callbacks_ran()

    def _callbacks_ran(self) -> None:
        """Wait until kazoo's watch callbacks queued so far have run. kazoo reads replies and
        watch events off the socket in ZooKeeper's order, answering a call on its connection
        thread but queueing every watch callback for one callback thread, in order: a marker
        queued after a reply runs after the callbacks of the events before that reply."""
        ran = threading.Event()
        self.client.handler.dispatch_callback(Callback("watch", ran.set, ()))
        if not ran.wait(self._timeout):
            raise CoordinatorUnavailable("kazoo's watch callbacks did not run in time")

    # ----- entries a closed store left behind -------------------------------------------------

    def leave_behind(self, group: tuple[str, ...]) -> None:
        """Delete these znodes (an entry and its companion, in that order) as soon as ZooKeeper
        answers: now, and again after every reconnect until none is left. For a store closed
        on a session that lives on: its entry must not outlast the engine that stopped
        vouching for it (the session's close would take it, but the session is shared)."""
        with self._leftover_lock:
            self._leftovers.add(group)
        if self.client.state == KazooState.CONNECTED:
            self._send_leftover(group)

    def leftovers(self) -> int:
        """How many groups are still to delete (tests, logs)."""
        with self._leftover_lock:
            return len(self._leftovers)

    def _resend_leftovers(self, state: str) -> bool:
        if state == KazooState.CONNECTED:
            with self._leftover_lock:
                groups = list(self._leftovers)
            for group in groups:
                self._send_leftover(group)
        return False  # keep listening

    def _send_leftover(self, group: tuple[str, ...]) -> None:
        """Send the deletes of `group` (no waiting: this may run on kazoo's threads); once the
        last has been answered (deleted, or already gone), forget the group."""

        def answered(result: Any) -> None:
            try:
                result.get_nowait()
            except NoNodeError:
                pass
            except KazooException:
                return  # sent again at the next reconnect
            with self._leftover_lock:
                self._leftovers.discard(group)

        try:
            sent = [self.client.delete_async(path) for path in group]
        except KazooException:
            return
        sent[-1].rawlink(answered)

    # ----- helpers for the stores ----------------------------------------------------------

    def retry(self) -> KazooRetry:
        """A fresh per-call retry (connection loss only; an expiry is not retried)."""
        return self._retry.copy()

    def wait(self, async_result: Any) -> Any:
        """Wait for a kazoo async result, at most one session timeout (kazoo's sync calls
        would wait forever while it reconnects)."""
        return async_result.get(timeout=self._timeout)

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run a kazoo call, translating its errors into the engine's."""
        try:
            return fn()
        except (NoNodeError, NodeExistsError, BadVersionError):
            raise
        except SessionExpiredError as exc:
            raise SessionLost("ZooKeeper session expired") from exc
        except ConnectionClosedError as exc:
            raise CoordinatorUnavailable("ZooKeeper client is closed") from exc
        except (RetryFailedError, KazooTimeoutError) as exc:
            raise CoordinatorUnavailable(f"ZooKeeper did not answer: {exc!r}") from exc
        except KazooException as exc:
            raise CoordinatorUnavailable(f"ZooKeeper error: {exc!r}") from exc
