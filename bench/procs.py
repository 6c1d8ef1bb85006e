"""Child processes of the benchmarks, and the guarantee that none outlives the run.

Every process a benchmark starts goes through `spawn` (its own process group, so a kill takes
its children too) or is registered with `Context.stack`; `install_signal_handlers` turns
SIGTERM/SIGHUP into SystemExit so that every `with`/ExitStack unwinds and stops what it
started, even when the run is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def install_signal_handlers() -> None:
    def on_signal(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)


def spawn(
    cmd: Sequence[str],
    log: Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session; stdout/stderr go to `log` unless `stdout` is given."""
    out: Any = stdout
    handle = None
    if out is None:
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            handle = log.open("ab")
            out = handle
        else:
            out = subprocess.DEVNULL
    try:
        return subprocess.Popen(
            list(cmd),
            stdin=stdin,
            stdout=out,
            stderr=handle if handle is not None else subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if handle is not None:
            handle.close()


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(proc)


def kill(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def children(pid: int | None = None) -> list[str]:
    """Live (non-zombie) child processes of `pid` (default: this process), as "pid comm"."""
    parent = os.getpid() if pid is None else pid
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == parent and fields[0] != "Z":
            out.append(f"{stat.parent.name} {comm}")
    return out
