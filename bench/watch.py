"""Driver of the Go stream client (bench/watchtool, built by bench/install.sh): N leader-watch
streams on one server, and per leader change the receive times of the new leader."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.context import tool
from bench.mtls import Material
from bench.progress import Progress


class ToolMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Arrival:
    """Receive times (unix ns) of a leader change on every stream."""

    got: int
    n: int
    leader: str
    first_ns: int
    p50_ns: int
    p99_ns: int
    last_ns: int

    @property
    def complete(self) -> bool:
        return self.got == self.n


class Watchers:
    """`streams` WatchLeader (electd) or Observe (etcd) streams over `conns` connections
    (plaintext, or mutual TLS with `tls`)."""

    def __init__(
        self,
        target: str,
        kind: str = "electd",
        streams: int = 1,
        conns: int = 1,
        name: str = "bench-election",
        log: Path | None = None,
        ready_timeout: float = 180.0,
        tls: Material | None = None,
    ) -> None:
        exe = tool("electd-watchtool")
        if exe is None:
            raise ToolMissing("electd-watchtool is not built: run bench/install.sh")
        cmd = [
            exe,
            f"-target={target}",
            f"-kind={kind}",
            f"-streams={streams}",
            f"-conns={conns}",
            f"-name={name}",
            f"-ready-timeout={ready_timeout:g}s",
            *(tls.watchtool_args() if tls else []),
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab") if log else subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.ready = self._read()
        if "error" in self.ready:
            self.close()
            raise RuntimeError(f"watch streams on {target} failed: {self.ready['error']}")
        self.leader: str = self.ready.get("leader", "")
        self.open_ms: float = self.ready.get("open_ms", 0.0)

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stream client exited")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def _cmd(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._read()

    def mark(self) -> str:
        """Take every stream's current leader as its baseline; returns that leader."""
        leader: str = self._cmd("mark").get("leader", "")
        return leader

    def wait(self, timeout: float) -> Arrival:
        doc = self._cmd(f"wait {int(timeout * 1000)}")
        if doc.get("error"):
            raise RuntimeError(f"a watch stream failed: {doc['error']}")
        return Arrival(
            doc["got"],
            doc["n"],
            doc.get("leader", ""),
            doc.get("first_ns", 0),
            doc.get("p50_ns", 0),
            doc.get("p99_ns", 0),
            doc.get("last_ns", 0),
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                procs.kill(self.proc)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()

    def __enter__(self) -> Watchers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Spread:
    """ms from each leader change to the first, the median and the last stream having it."""

    first: list[float] = field(default_factory=list)
    median: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)


def measure_changes(
    w: Watchers,
    trials: int,
    warmup: int,
    label: str,
    change: Callable[[], float],
    each: Callable[[float], None] | None = None,
) -> Spread:
    """The fan-out trial loop: `warmup` + `trials` times, mark the streams, make a leader change
    (`change()` returns its unix start time), wait until every stream has it and record the
    spread of arrivals; `each(t0)` runs after every timed trial for extra observations."""
    out = Spread()
    with Progress(label, trials) as p:
        for i in range(trials + warmup):
            w.mark()
            time.sleep(0.2)
            t0 = change()
            arrival = w.wait(30)
            if not arrival.complete:
                raise RuntimeError(
                    f"{label}: only {arrival.got}/{arrival.n} streams got the change"
                )
            if i < warmup:
                continue
            out.last.append((arrival.last_ns / 1e9 - t0) * 1000)
            out.first.append((arrival.first_ns / 1e9 - t0) * 1000)
            out.median.append((arrival.p50_ns / 1e9 - t0) * 1000)
            if each is not None:
                each(t0)
            p.step(f"last {out.last[-1]:.1f} ms")
    return out
