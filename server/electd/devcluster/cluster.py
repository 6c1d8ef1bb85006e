"""Node processes and the `electd dev` local cluster.

`NodeProcess` runs one `electd serve` as a child process (JSON logs to a file) and is shared by
`electd dev`, the end-to-end tests, the benchmarks and the fault suite. `run_dev` starts a real
standalone ZooKeeper and N nodes, prints where they are, streams leader changes and stops it all
on Ctrl-C, leaving no process or port behind; with `secure`, ZooKeeper 3.9.5 serves TLS only
(client certificates required), the nodes authenticate to it (digest) and lock their znodes,
and serve gRPC over mutual TLS, all with throwaway material (devcluster/secure.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from electd.config import LogConfig, serve_argv, to_argv
from electd.devcluster.zookeeper import (
    TLS_VERSION,
    ZooKeeperCluster,
    ZooKeeperNotInstalled,
    free_port,
    port_is_free,
)


class DevError(Exception):
    pass


@dataclass
class NodeProcess:
    """One `electd serve` child process."""

    zk: str
    port: int
    workdir: Path
    node_id: str = ""
    election_path: str = "/election"
    session_timeout: float = 4.0
    extra_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.node_id or self.port}.log"

    def command(self) -> list[str]:
        """The `electd serve` command line, its flags derived from the settings table."""
        flags = serve_argv(
            zk=self.zk,
            listen=self.address,
            election_path=self.election_path,
            session_timeout=self.session_timeout,
            node_id=self.node_id or None,
        )
        log = to_argv(LogConfig, log_format="json")
        return [sys.executable, "-m", "electd", "serve", *flags, *log, *self.extra_args]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Signal `electd serve`: its supervisor, which ends the command and then the node on
        SIGTERM/SIGINT. SIGSTOP and SIGCONT go to the whole process group (supervisor and node
        process, not the leader command, which has a session of its own): the machine's
        electd freezes as a whole, as in a VM pause."""
        if self.alive():
            assert self.proc is not None
            if sig in (signal.SIGSTOP, signal.SIGCONT):
                os.killpg(self.proc.pid, sig)
            else:
                os.kill(self.proc.pid, sig)

    def node_pid(self) -> int | None:
        """The pid of the node process under the supervisor (None while there is none): the
        child in the supervisor's own process group (a leader command has its own session)."""
        if not self.alive():
            return None
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return None
        for pid in (int(p) for p in children.split()):
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == self.proc.pid:
                    return pid
        return None

    def signal_node(self, sig: int) -> int | None:
        """Signal the node process alone (not its supervisor); returns its pid."""
        pid = self.node_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pid

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"msg": line, "level": "RAW", "ts": 0.0})
        return out

    def log_text(self, last: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-last:])
        except OSError:
            return ""


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def run_dev(
    nodes: int, base_port: int, session_timeout: float, workdir: str | None, secure: bool = False
) -> int:
    from electd.client import ElectdError, ElectionClient, probe

    if base_port:
        taken = [p for p in range(base_port, base_port + nodes) if not port_is_free(p)]
        if taken:
            raise DevError(
                f"port {taken[0]} is already in use (another 'electd dev' running?): stop it, "
                "or pick other ports with --base-port N, or free ones with --base-port 0"
            )

    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="electd-dev-")
        root = Path(tmp)
    else:
        root = Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
    material = None
    extra: list[str] = []
    tls: dict[str, Any] = {}
    if secure:
        from electd.devcluster import secure as secure_files

        material = secure_files.create(root / "secure")
        extra = serve_argv(**material.zk_settings(), **material.node_settings())
        tls = material.cli_settings()
    zk = ZooKeeperCluster(root / "zookeeper", size=1, tls=material.zk_server if material else None)
    procs: list[NodeProcess] = []
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watch = None
    try:
        print(f"electd dev: starting ZooKeeper (work dir {root})", flush=True)
        try:
            zk.start()
        except ZooKeeperNotInstalled as exc:
            raise DevError(str(exc)) from None
        print(f"  zookeeper  {zk.connect_string}   (log {zk.servers[0].log_path})", flush=True)
        for i in range(nodes):
            port = base_port + i if base_port else free_port()
            proc = NodeProcess(
                zk.connect_string,
                port,
                root / "nodes",
                node_id=f"n{i + 1}",
                session_timeout=session_timeout,
                extra_args=extra,
            )
            procs.append(proc)
        addresses = [p.address for p in procs]
        with ElectionClient(addresses, call_timeout=1.0, **tls) as client:
            # One at a time, each joined before the next starts: n1 leads, n2 watches n1, ...
            for p in procs:
                p.start()
                with contextlib.suppress(TimeoutError):
                    wait_until(
                        lambda p=p: probe(p.address, **tls) == "SERVING" or not p.alive(),
                        30,
                        f"node {p.node_id} to join",
                    )
                if not p.alive():
                    raise DevError(f"node {p.node_id} exited; its log:\n{p.log_text()}")
                print(f"  node {p.node_id:<4}  {p.address}   (log {p.log_path})", flush=True)
            try:
                leader = client.get_leader().leader
            except ElectdError as exc:
                raise DevError(str(exc)) from None
            print(f"leader: {leader.node.id} at {leader.node.address} (epoch {leader.epoch})")
            if material is not None:
                print(_secure_commands(material, addresses[0], zk.connect_string), flush=True)
            else:
                print(
                    f"try:  electd leader --target {addresses[0]}    "
                    f"electd nodes --target {addresses[0]}",
                    flush=True,
                )
            print("watching leader changes; Ctrl-C stops the cluster", flush=True)
            watch = client.watch_leader(after_epoch=leader.epoch)
            watcher = threading.Thread(target=_print_changes, args=(watch,), daemon=True)
            watcher.start()
            while not stop.wait(0.5):
                for p in procs:
                    if p.proc is not None and p.proc.poll() is not None:
                        print(
                            f"  node {p.node_id} exited with code {p.proc.returncode}", flush=True
                        )
                        p.proc = None
        return 0
    finally:
        if watch is not None:
            watch.cancel()
        print("electd dev: stopping nodes and ZooKeeper", flush=True)
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            p.stop()
        zk.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        print("electd dev: stopped", flush=True)


def _secure_commands(material: Any, target: str, zk: str) -> str:
    """What to type against a secure dev cluster (files by path: no secret is printed)."""
    m = material
    cli = f"--tls-ca {m.ca} --tls-cert {m.cli.cert} --tls-key {m.cli.key}"
    zk_flags = (
        f"--zk {zk} --zk-tls-ca {m.ca} --zk-tls-cert {m.zk_client.cert} "
        f"--zk-tls-key {m.zk_client.key} --zk-auth-file {m.auth_file}"
    )
    return "\n".join(
        [
            f"secure: ZooKeeper {TLS_VERSION} over TLS only (client certificates required), "
            f"nodes authenticated as '{m.user}' (digest, credentials in {m.auth_file}) with "
            "world-read ACLs; gRPC over mutual TLS",
            f"try:  electd leader --target {target} {cli}",
            f"      electd nodes --target {target} {cli}",
            f"      grpcurl -cacert {m.ca} -cert {m.cli.cert} -key {m.cli.key} {target} "
            "electd.v1.ElectionService/GetLeader      (grpcurl: make clients, .tools/bin)",
            f"      electd identity {zk_flags}",
        ]
    )


def _print_changes(watch: Any) -> None:
    for leader in watch:
        print(
            f"{time.strftime('%H:%M:%S')} new leader: {leader.node.id} at "
            f"{leader.node.address} (epoch {leader.epoch})",
            flush=True,
        )
