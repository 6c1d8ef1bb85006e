"""The fenced resource: a tiny TCP store that leaders write to with their epoch.

It accepts a write only if its epoch is at least the highest epoch it has accepted, and
records every attempt, accepted or rejected, in the history (kind "write"), timestamped under
its lock, so the history's order of writes is the resource's order. It also records what a
candidate (candidate.py) reports of its own belief (kind "claim"). Runs as threads in the
harness process on 127.0.0.1 and a free port.

Protocol: one JSON object per line, each answered by one JSON line.
  {"op": "hello", "node": N, "epoch": E, "pid": P}           -> {"ok": true}
  {"op": "write", "node": N, "epoch": E, "seq": S, "asked": A, "checked": T}
                                                      -> {"ok": accepted, "highest": H}
  {"op": "bye", "node": N, "epoch": E, "reason": R}          -> {"ok": true}
  {"op": "claim", "node": C, "election": L, "epoch": E, "asked": A, "answered": B,
   "source": S}                                              -> {"ok": true}
The writer asked its node at `asked` and got, at `checked` (its time.monotonic(), the
history's clock), the answer that the node still leads with epoch E: the node believed so at
some instant in [asked, checked].
A candidate writes as its own node (C, its candidate id), with asked == checked and the
`election` it campaigns in. hello and bye are recorded as "writer" events; a claim, candidate C
of election L believed it led with epoch E at some instant in [A, B] (S: what showed it), as a
"claim" event.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from pathlib import Path

from tests.faults.history import History


class FencedStore:
    def __init__(self, history: History) -> None:
        self._history = history
        self._lock = threading.Lock()
        self.highest = 0
        self.accepted = 0
        self.rejected = 0
        self._conns: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, name="fence-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError), conn, conn.makefile("rwb") as f:
            for line in f:
                reply = self._handle(json.loads(line))
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()

    def _handle(self, msg: dict[str, object]) -> dict[str, object]:
        op, node = msg.get("op"), str(msg.get("node", ""))
        epoch = int(msg.get("epoch", 0))  # type: ignore[call-overload]
        with self._lock:
            if op == "write":
                ok = epoch >= self.highest
                if ok:
                    self.highest = epoch
                    self.accepted += 1
                else:
                    self.rejected += 1
                self._history.add(
                    "write",
                    node,
                    epoch=epoch,
                    seq=msg.get("seq"),
                    asked=msg.get("asked"),
                    checked=msg.get("checked"),
                    accepted=ok,
                    highest=self.highest,
                    **({"election": msg["election"]} if "election" in msg else {}),
                )
                return {"ok": ok, "highest": self.highest}
            if op == "claim":
                self._history.add(
                    "claim",
                    node,
                    election=msg.get("election"),
                    epoch=epoch,
                    asked=msg.get("asked"),
                    answered=msg.get("answered"),
                    source=msg.get("source"),
                )
                return {"ok": True}
            phase = "start" if op == "hello" else "stop"
            self._history.add("writer", node, phase=phase, epoch=epoch, reason=msg.get("reason"))
            return {"ok": True}

    def kill_writers(self) -> None:
        """SIGKILL every writer of this resource still running: a writer exits by itself soon
        after its node dies; this is the safety net (for example for a writer whose node died
        while it was starting). Found by its environment, so even one that never said hello."""
        mine = f"ELECTD_FAULTS_FENCE={self.address}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if b"writer.py" not in (proc / "cmdline").read_bytes():
                    continue
                if mine not in (proc / "environ").read_bytes().split(b"\0"):
                    continue
                os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.kill_writers()
