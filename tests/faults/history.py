"""The history of a fault run: one append-only, thread-safe list of events on one clock.

Every event carries `t`, `time.monotonic()` read in the harness process when the event happened
(the writers and candidates, processes of their own, send theirs; a node's log lines carry theirs
as `mono`). That is CLOCK_MONOTONIC: one clock for every process of the machine, which never
steps. The wall clock is no good here: this machine's has been seen to step 11.7 s, and a step
back between two terms' evidence would hide their overlap from the checkers. Kinds:
  stream       an observer received a WatchLeader message from `node` (state, leader, epoch)
  stream-end   an observer's stream on `node` ended (status code)
  write        the fenced resource got a write attempt (node, epoch, seq, checked, accepted;
               a candidate's also `election`)
  claim        a candidate of a named election (node = its candidate id) reported that it
               believed it led with `epoch` at some instant in [asked, answered] (`source`:
               leading, deadline, lost, resign; see candidate.py), through the fenced resource.
               Epochs of a named election are its entries' czxids, a namespace of their own:
               a history holds one election, the node election or one named election
  writer       a leader-command writer said hello or goodbye (phase start/stop, node, epoch)
  node         the harness started, stopped (SIGTERM), killed, paused or resumed a node
  zk           the harness killed, paused, resumed or started a ZooKeeper server
  fault        a fault was injected or healed (name, phase, target)
  settled      the harness measured convergence after a fault (see cluster.settle)
  scenario     a scenario began or ended
`Observer` keeps one WatchLeader stream open on one node for the whole run, reopening it (with
min_epoch = the highest epoch it has seen) whenever it ends.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc


@dataclass
class Event:
    t: float
    kind: str
    node: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class History:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def add(self, kind: str, node: str = "", t: float | None = None, **data: Any) -> Event:
        with self._lock:
            event = Event(time.monotonic() if t is None else t, kind, node, data)
            self._events.append(event)
            return event

    def events(self, kind: str | None = None) -> list[Event]:
        with self._lock:
            out = list(self._events)
        out.sort(key=lambda e: e.t)
        return out if kind is None else [e for e in out if e.kind == kind]

    def dump(self, path: Path) -> None:
        with path.open("w") as f:
            for event in self.events():
                f.write(json.dumps(asdict(event), sort_keys=True) + "\n")


# The harness's own channels try again within 0.25 s once a node is back. With gRPC's default
# reconnect backoff (1 s, growing 1.6x) every convergence measured after a restart or a healed
# partition would include seconds of the harness's own: a node restarted under churn served
# after 2.5 s, and the observer's channel tried it again only at 5.2 s (members 5.26 s, against
# a bound of 6.5 s). The connect deadline of one attempt stays gRPC's (20 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


def channel(address: str) -> grpc.Channel:
    """A plaintext channel to a node for the harness (CHANNEL_OPTIONS)."""
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


class Observer:
    """One WatchLeader stream on one node, reopened whenever it ends, until `close`."""

    def __init__(self, history: History, node_id: str, address: str) -> None:
        self._history = history
        self.node_id = node_id
        self._channel = channel(address)
        self._stub = pb_grpc.ElectionServiceStub(self._channel)
        self._lock = threading.Lock()
        self._call: Any = None
        self._closed = threading.Event()
        self.max_epoch = 0
        self.streams = 0
        self.latest: Event | None = None  # the latest message of the current stream
        self._thread = threading.Thread(target=self._run, name=f"observe-{node_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                if self._closed.is_set():
                    return
                self.streams += 1
                stream = self.streams
                self._call = self._stub.WatchLeader(pb.WatchLeaderRequest(min_epoch=self.max_epoch))
                call = self._call
            code = "OK"
            try:
                for msg in call:
                    self._record(stream, msg)
            except grpc.RpcError as exc:
                code = exc.code().name
            if code != "UNAVAILABLE" or self.latest is not None:
                self._history.add("stream-end", self.node_id, stream=stream, code=code)
            self.latest = None
            self._closed.wait(0.05)  # retry pacing while the node is down or restarting

    def _record(self, stream: int, msg: pb.WatchLeaderResponse) -> None:
        if msg.state == pb.LEADER_STATE_ELECTED:
            epoch = msg.leader.epoch
            self.max_epoch = max(self.max_epoch, epoch)
            self.latest = self._history.add(
                "stream",
                self.node_id,
                stream=stream,
                state="ELECTED",
                leader=msg.leader.node.id,
                epoch=epoch,
                znode=msg.leader.node.znode,
            )
        else:
            self.latest = self._history.add(
                "stream", self.node_id, stream=stream, state="UNKNOWN", reason=msg.reason
            )

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if self._call is not None:
                self._call.cancel()
        self._thread.join(5)
        self._channel.close()
