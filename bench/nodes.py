"""electd node processes for the benchmarks: start (via `electd.devcluster.NodeProcess`), wait
until joined and serving, read leadership times from their JSON logs, stop them all."""

from __future__ import annotations

import time
from pathlib import Path

from bench.context import Context
from bench.mtls import Material
from electd.client import probe
from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import free_port


def start(
    ctx: Context,
    node_id: str,
    path: str,
    session_timeout: float = 4.0,
    workdir: Path | None = None,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    tls: Material | None = None,
) -> NodeProcess:
    """Start `electd serve` (plaintext, or mutual TLS with `tls`) and stop it with the run."""
    proc = NodeProcess(
        ctx.zk().connect_string,
        free_port(),
        workdir or ctx.workdir / "nodes",
        node_id=node_id,
        election_path=path,
        session_timeout=session_timeout,
        # Every benchmark client connects from 127.0.0.1: one peer for the per-peer stream cap,
        # which would otherwise stop the fan-out at 1,000 streams (and the per-connection cap,
        # for clients whose channels share a connection).
        extra_args=(
            "--max-streams-per-peer",
            "10000000",
            "--max-streams-per-connection",
            "1000000",
            *(tls.serve_args() if tls else ()),
            *extra,
        ),
        env=env or {},
    )
    proc.start()
    ctx.stack.callback(proc.stop)
    return proc


def wait_serving(
    proc: NodeProcess,
    timeout: float = 30.0,
    interval: float = 0.02,
    tls: Material | None = None,
) -> float:
    """Wait until the node reports SERVING (joined, with a live session); returns unix time.
    `tls`: the node serves mutual TLS, probe it with the client certificate."""

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"node {proc.node_id} exited:\n{proc.log_text()}")
        if tls is None:
            return probe(proc.address) == "SERVING"
        return (
            probe(
                proc.address,
                tls_ca=str(tls.ca),
                tls_cert=str(tls.client.cert),
                tls_key=str(tls.client.key),
            )
            == "SERVING"
        )

    wait_until(ready, timeout, f"node {proc.node_id} to serve", interval)
    return time.time()


def node_process(proc: NodeProcess) -> int:
    """The pid of the node process under `electd serve`'s supervisor (`proc.pid`): where the
    ZooKeeper session, the engine and the gRPC server live, so what RSS and CPU figures are of."""
    pid = proc.node_pid()
    if pid is None:
        raise RuntimeError(f"node {proc.node_id}: its supervisor runs no node process")
    return pid


def leader_since(proc: NodeProcess, after: float) -> float | None:
    """Unix time of the node's "I am a new leader" log line logged after `after`, if any."""
    needle = f"I am a new leader: node={proc.node_id} "
    for rec in reversed(proc.log_records()):
        ts = float(rec.get("ts", 0.0))
        if ts < after:
            return None
        if needle in str(rec.get("msg", "")):
            return ts
    return None


def log_time(proc: NodeProcess, needle: str, after: float) -> float | None:
    """Unix time of the first log line containing `needle` logged after `after`."""
    for rec in proc.log_records():
        ts = float(rec.get("ts", 0.0))
        if ts >= after and needle in str(rec.get("msg", "")):
            return ts
    return None
