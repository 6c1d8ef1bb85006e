"""Helpers for end-to-end tests: gRPC calls against real node processes."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import grpc

from electd.client import probe
from electd.devcluster.cluster import NodeProcess, wait_until
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc


def stub(proc: NodeProcess) -> pb_grpc.ElectionServiceStub:
    return pb_grpc.ElectionServiceStub(grpc.insecure_channel(proc.address))


def leader_of(proc: NodeProcess) -> pb.Leader | None:
    try:
        return stub(proc).GetLeader(pb.GetLeaderRequest(), timeout=1).leader
    except grpc.RpcError:
        return None


def leader_id(proc: NodeProcess) -> str | None:
    leader = leader_of(proc)
    return leader.node.id if leader else None


def health(proc: NodeProcess) -> str:
    """The node's grpc.health.v1 status name ("SERVING", "NOT_SERVING", or "UNREACHABLE")."""
    return probe(proc.address, timeout=1)


def wait_joined(proc: NodeProcess, timeout: float = 20) -> None:
    wait_until(
        lambda: health(proc) == "SERVING" or not proc.alive(), timeout, f"{proc.node_id} joined"
    )
    assert proc.alive(), proc.log_text()


class Watcher:
    """A WatchLeader stream on one node, collected by a thread: (receive time, message)."""

    def __init__(self, proc: NodeProcess, min_epoch: int = 0) -> None:
        self.proc = proc
        self.messages: queue.Queue[tuple[float, Any]] = queue.Queue()
        self.seen: list[tuple[float, Any]] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._channel = grpc.insecure_channel(proc.address)
        self._call = pb_grpc.ElectionServiceStub(self._channel).WatchLeader(
            pb.WatchLeaderRequest(min_epoch=min_epoch)
        )
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for msg in self._call:
                self.messages.put((time.monotonic(), msg))
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()

    def drain(self) -> list[tuple[float, Any]]:
        while True:
            try:
                self.seen.append(self.messages.get_nowait())
            except queue.Empty:
                return self.seen

    def wait_for(self, pred: Any, timeout: float = 15, what: str = "message") -> tuple[float, Any]:
        def found() -> Any:
            for item in self.drain():
                if pred(item[1]):
                    return item
            return None

        return wait_until(found, timeout, f"{what} on {self.proc.node_id}'s stream")

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()
