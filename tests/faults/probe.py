"""GetLeader probes: exact evidence of what each node believes.

Every PERIOD the prober asks every running node GetLeader (without waiting for one before
asking the next). A node that names itself believed it led, with that epoch, at some instant
between the call's send time `asked` and the answer's arrival `answered`; that is recorded as a
"probe" event. `focus(node)` probes one node back to back until a condition holds: used while a
leader shuts down, when a handover happens within milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from electd.v1 import election_service_pb2 as pb
from tests.faults.history import History

PERIOD = 0.025
DEADLINE = 0.3

Targets = Callable[[], list[tuple[str, Any]]]  # (node id, ElectionServiceStub)


class Prober:
    def __init__(self, history: History, targets: Targets) -> None:
        self._history = history
        self._targets = targets
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            for node_id, stub in self._targets():
                asked = time.monotonic()
                try:
                    future = stub.GetLeader.future(pb.GetLeaderRequest(), timeout=DEADLINE)
                except (grpc.RpcError, ValueError):  # channel closed under us
                    continue
                future.add_done_callback(
                    lambda f, n=node_id, a=asked: self._record(n, a, f)  # type: ignore[misc]
                )
            self._closed.wait(PERIOD)

    def _record(self, node_id: str, asked: float, future: Any) -> None:
        answered = time.monotonic()
        try:
            leader = future.result().leader
        except (grpc.RpcError, grpc.FutureCancelledError):
            return
        if leader.node.id == node_id:
            self._history.add("probe", node_id, epoch=leader.epoch, asked=asked, answered=answered)

    def focus(self, node_id: str, stub: Any, until: Callable[[], bool]) -> threading.Thread:
        """Probe one node back to back, on a thread, until `until()` holds."""

        def run() -> None:
            while not until() and not self._closed.is_set():
                asked = time.monotonic()
                try:
                    leader = stub.GetLeader(pb.GetLeaderRequest(), timeout=DEADLINE).leader
                except (grpc.RpcError, ValueError):
                    continue
                if leader.node.id == node_id:
                    self._history.add(
                        "probe",
                        node_id,
                        epoch=leader.epoch,
                        asked=asked,
                        answered=time.monotonic(),
                        focus=True,
                    )

        thread = threading.Thread(target=run, name=f"focus-{node_id}", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
