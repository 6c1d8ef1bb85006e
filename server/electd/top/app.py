"""The `electd top` loop: a WatchLeader thread records leader changes as they happen, and the
screen is redrawn every interval from a fresh `gather` (rich's Live, alternate screen). Ctrl-C
or SIGTERM ends it with exit code 0; `--once` prints one frame and exits (for scripts)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.live import Live

from electd.client import ElectdError, ElectionClient
from electd.top.view import gather, render


def run_top(
    targets: Sequence[str],
    interval: float,
    timeout: float,
    once: bool,
    tls: Mapping[str, Any] | None = None,
) -> int:
    """`tls`: the client's TLS options (tls_ca, tls_cert, tls_key, tls_server_name)."""
    console = Console()
    stop = threading.Event()
    changes: list[tuple[float, str, int]] = []
    client = ElectionClient(targets, call_timeout=timeout, **dict(tls or {}))
    with client, ThreadPoolExecutor(8) as pool:
        if once:
            first = gather(client, pool, timeout, tls)
            console.print(render(first, targets))
            return 1 if first.error else 0
        watch = client.watch_leader()

        def follow() -> None:
            try:
                for leader in watch:
                    changes.append((time.time(), leader.node.id or leader.node.znode, leader.epoch))
            except ElectdError:
                pass  # no node answered at all: the frames say so

        def on_signal(signum: int, _frame: Any) -> None:
            stop.set()
            watch.cancel()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        threading.Thread(target=follow, name="top-watch", daemon=True).start()
        with Live(console=console, screen=True, auto_refresh=False) as live:
            while not stop.is_set():
                frame = gather(client, pool, timeout, tls)
                frame.changes = list(changes)
                live.update(render(frame, targets), refresh=True)
                stop.wait(interval)
        watch.cancel()
    return 0
