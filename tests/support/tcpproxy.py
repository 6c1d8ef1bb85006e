"""A fault-injecting TCP proxy between ZooKeeper clients and a ZooKeeper server.

Real faults, on real sockets, for tests and the fault suite:
  * `block()` / `unblock()`: a partition. Nothing is forwarded either way and new connections
    hang, so the client's pings go unanswered and the server stops hearing from the session
    (it expires after the session timeout, exactly as across a real network partition).
  * `drop()`: reset every open connection (connection loss; the session survives).
  * `cut_after(opcode, path_prefix)`: forward the next matching ZooKeeper request, then cut the
    connection before its reply can reach the client. Used for "connection loss during create":
    the server commits the create, the client never hears about it.
  * `hold_next(path_prefix, opcodes)`: hold the next matching request (and everything the client
    sends after it on that connection, as a stalled link would: ZooKeeper answers a session's
    requests in order) until `Hold.release()`. Used to probe a node while its delete is on its
    way to ZooKeeper.
  * `retarget(host, port)`: send new connections to another server and reset the open ones
    (the address behind a name now points elsewhere).

Understands just enough of ZooKeeper's framing: every packet is a 4-byte big-endian length and
a body; after the connect request, each request body starts with xid (int32), type (int32) and,
for path operations, a length-prefixed path.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

OP_CREATE = 1
OP_DELETE = 2
OP_CREATE2 = 15
OP_MULTI = 14  # a transaction: matched by its first operation's path


@dataclass
class _Cut:
    opcodes: tuple[int, ...]
    path_prefix: str
    fired: threading.Event


@dataclass
class Hold:
    """A one-shot hold (`TcpProxy.hold_next`). `fired` is set, and `fired_at` (time.monotonic()) is
    recorded, when the matching request has reached the proxy and is being held."""

    opcodes: tuple[int, ...]
    path_prefix: str
    fired: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    fired_at: float = 0.0
    path: str = ""

    def release(self) -> None:
        self.released.set()


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._gate = threading.Event()
        self._gate.set()
        self._lock = threading.Lock()
        self._conns: list[tuple[socket.socket, socket.socket]] = []
        self._cut: _Cut | None = None
        self._hold: Hold | None = None
        self._closed = False
        self.connections = 0
        threading.Thread(target=self._accept_loop, name="tcpproxy-accept", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ----- faults ----------------------------------------------------------------------------

    def block(self) -> None:
        self._gate.clear()

    def unblock(self) -> None:
        self._gate.set()

    def drop(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for a, b in conns:
            _close(a, b)

    def cut_after(
        self, path_prefix: str, opcodes: tuple[int, ...] = (OP_CREATE, OP_CREATE2)
    ) -> threading.Event:
        """Arm a one-shot cut; the returned event is set when it fired."""
        cut = _Cut(opcodes, path_prefix, threading.Event())
        self._cut = cut
        return cut.fired

    def hold_next(self, path_prefix: str, opcodes: tuple[int, ...] = (OP_DELETE,)) -> Hold:
        """Arm a one-shot hold of the next request with one of `opcodes` on a path starting
        with `path_prefix`: it and whatever follows it on its connection stay in the proxy
        until `release()`. Replies from the server still flow."""
        hold = Hold(opcodes, path_prefix)
        self._hold = hold
        return hold

    def retarget(self, host: str, port: int, drop: bool = True) -> None:
        """New connections go to host:port from now on; the open ones are reset (unless
        `drop` is False: the caller drops them once every proxy points elsewhere)."""
        with self._lock:
            self.upstream = (host, port)
        if drop:
            self.drop()

    def close(self) -> None:
        self._closed = True
        self._gate.set()
        hold, self._hold = self._hold, None
        if hold is not None:
            hold.release()
        self._listener.close()
        self.drop()

    # ----- plumbing --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._gate.wait()
        upstream = self.upstream
        try:
            server = socket.create_connection(upstream, timeout=5)
            server.settimeout(None)
        except OSError:
            client.close()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if upstream != self.upstream:  # retargeted while we connected: never the old one
                _close(client, server)
                return
            self._conns.append((client, server))
            self.connections += 1
        pair_state = {"cut": False}
        threading.Thread(
            target=self._pump_requests, args=(client, server, pair_state), daemon=True
        ).start()
        threading.Thread(target=self._pump, args=(server, client, pair_state), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, state: dict[str, bool]) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._gate.wait()
                if state["cut"]:
                    break  # the reply to the cut request must never arrive
                dst.sendall(data)
        except OSError:
            pass
        _close(src, dst)

    def _pump_requests(
        self, src: socket.socket, dst: socket.socket, state: dict[str, bool]
    ) -> None:
        buf = b""
        first = True
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._gate.wait()
                buf += data
                # Forward whole frames, looking at each request's opcode and path.
                while len(buf) >= 4:
                    (length,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + length:
                        break
                    frame, buf = buf[: 4 + length], buf[4 + length :]
                    cut = None if first else self._take_cut(frame)
                    if not first:
                        self._hold_if_armed(frame)
                    first = False
                    if cut is not None:
                        state["cut"] = True
                    dst.sendall(frame)
                    if cut is not None:
                        time.sleep(0.2)  # let the server commit it; its reply is discarded
                        _close(src, dst)
                        cut.fired.set()
                        return
        except OSError:
            pass
        _close(src, dst)

    def _take_cut(self, frame: bytes) -> _Cut | None:
        """The armed cut if `frame` matches it, disarmed at once (one-shot: a request sent on
        the client's next connection while this one is being cut must pass)."""
        request = _request(frame)
        with self._lock:
            cut = self._cut
            if (
                cut is None
                or request is None
                or request[0] not in cut.opcodes
                or not request[1].startswith(cut.path_prefix)
            ):
                return None
            self._cut = None
            return cut

    def _hold_if_armed(self, frame: bytes) -> None:
        """Block this connection's request pump while an armed hold matches `frame`."""
        hold = self._hold
        if hold is None:
            return
        request = _request(frame)
        if request is None or request[0] not in hold.opcodes:
            return
        if not request[1].startswith(hold.path_prefix):
            return
        self._hold = None
        hold.path, hold.fired_at = request[1], time.monotonic()
        hold.fired.set()
        hold.released.wait()


def _request(frame: bytes) -> tuple[int, str] | None:
    """(opcode, path) of a ZooKeeper request frame of a path operation, else None."""
    if len(frame) < 16:
        return None
    _, opcode, path_len = struct.unpack(">iii", frame[4:16])
    at = 16
    if opcode == OP_MULTI:  # then a MultiHeader (type, done, err) before the first operation
        if len(frame) < 25:
            return None
        (path_len,) = struct.unpack(">i", frame[21:25])
        at = 25
    if path_len < 0 or len(frame) < at + path_len:
        return None
    return opcode, frame[at : at + path_len].decode(errors="replace")


def _close(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()
