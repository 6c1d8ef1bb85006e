"""What every benchmark gets: the options of the run, the shared results, an ExitStack that
stops everything started, and lazily started real servers (ZooKeeper; etcd for the peer).

Sizes and trial counts live in `Options` (full run) and shrink with `--quick` (the smoke run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.report import Results
from electd.devcluster.zookeeper import ZooKeeperCluster

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"


@dataclass
class Options:
    quick: bool = False
    trials: int | None = None  # overrides every benchmark's trial count
    herd_sizes: tuple[int, ...] = (10, 100, 1000)
    naive_sizes: tuple[int, ...] = (10, 100, 1000)
    fanout_sizes: tuple[int, ...] = (100, 1000, 10_000)
    concurrencies: tuple[int, ...] = (1, 10, 50)
    crash_timeouts: tuple[float, ...] = (2.0, 10.0)
    ghz_seconds: float = 5.0
    tls_streams: int = 10_000  # WatchLeader streams of the TLS fan-out comparison
    tls_rounds: int = 3  # plaintext/mTLS alternations of its ghz runs and fan-out sessions
    campaign_elections: int = 1000  # named elections x 3 candidates of benchmark 9 (b)
    campaign_ping_s: float = 0.5  # each candidate's ping interval (the client helpers' default)
    tick_ms: int = 200

    @classmethod
    def quick_sizes(cls) -> Options:
        return cls(
            quick=True,
            herd_sizes=(3, 6),
            naive_sizes=(3, 6),
            fanout_sizes=(10, 50),
            concurrencies=(2,),
            crash_timeouts=(1.0,),
            ghz_seconds=0.5,
            tls_streams=50,
            tls_rounds=1,
            campaign_elections=20,
        )

    def n(self, full: int, quick: int) -> int:
        """The trial count for a benchmark: --trials, else its quick or full default."""
        if self.trials is not None:
            return self.trials
        return quick if self.quick else full


class Context:
    def __init__(self, opts: Options, results: Results, workdir: Path) -> None:
        self.opts = opts
        self.results = results
        self.workdir = workdir
        self.stack = contextlib.ExitStack()
        self._zk: ZooKeeperCluster | None = None

    def zk(self) -> ZooKeeperCluster:
        """One standalone ZooKeeper for the whole run (benchmarks use their own paths)."""
        if self._zk is None:
            cluster = ZooKeeperCluster(
                self.workdir / "zookeeper", size=1, tick_ms=self.opts.tick_ms
            )
            cluster.start()
            self.stack.callback(cluster.stop)
            from bench import zkbase

            zkbase.warm_up(
                cluster.connect_string, "/bench/warm-up", 100 if self.opts.quick else 600
            )
            self._zk = cluster
        return self._zk

    def python(self) -> str:
        return sys.executable

    def close(self) -> None:
        self.stack.close()


def tool(name: str) -> str | None:
    """A benchmark tool: .tools/bin first (bench/install.sh puts them there), then $PATH."""
    local = TOOLS / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)
