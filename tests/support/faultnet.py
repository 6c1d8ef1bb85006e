"""Addresses that fail the way real networks and stuck processes do, on loopback.

* `BlackHole`: an address whose packets vanish. A listening socket that never calls accept()
  and whose accept queue is full: Linux drops every further SYN, so a connect() neither
  succeeds nor is refused, it just hangs (exactly as behind a firewall that drops packets).
* `SilentServer`: a process that accepts TCP and reads, but never writes a byte (a stuck
  process behind a live kernel: no HTTP/2 settings, no gRPC answer). It records when each
  connection arrived, so a test can time a client from its first attempt.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class BlackHole:
    """A loopback address where connect() hangs: listen(0), then the one queue slot filled."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        # Connect until one attempt hangs: the queue is full from then on (with backlog 0 one
        # connection fits; a few more attempts cover kernels that allow a little more).
        for _ in range(16):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(0.3)
            try:
                sock.connect(("127.0.0.1", self.port))
            except OSError:  # timed out: this SYN was dropped, the queue is full
                sock.close()
                break
            self._fillers.append(sock)
        else:
            self.close()
            raise RuntimeError("could not fill the accept queue of a listen(0) socket")
        if not self.swallows_connects():
            self.close()
            raise RuntimeError("connect() to a full listen(0) socket did not hang")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def swallows_connects(self, wait: float = 0.3) -> bool:
        """True when a new connect() neither completes nor fails within `wait` seconds."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect_ex(("127.0.0.1", self.port))
            _, writable, _ = select.select([], [sock], [], wait)
            return not writable
        finally:
            sock.close()

    def close(self) -> None:
        for sock in self._fillers:
            sock.close()
        self._fillers.clear()
        self._listener.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SilentServer:
    """Accepts every connection and reads what arrives; never sends anything."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._accepted: list[float] = []
        self._closed = False
        threading.Thread(target=self._accept_loop, name="silent-accept", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def accepted(self) -> list[float]:
        """time.monotonic() of every accepted connection, in order."""
        with self._lock:
            return list(self._accepted)

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._accepted.append(time.monotonic())
                self._conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        # shutdown() wakes a thread blocked in accept(); close() alone may not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
