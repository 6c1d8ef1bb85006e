"""Unary load with ghz (github.com/bojand/ghz, built by bench/install.sh): one run at a given
concurrency for a fixed duration, parsed from ghz's JSON report."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.context import tool
from bench.mtls import Material


class GhzMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Load:
    concurrency: int
    count: int
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: dict[str, int]


def run(
    target: str,
    call: str,
    proto: Path,
    import_paths: list[Path],
    concurrency: int,
    seconds: float,
    data: str = "{}",
    connections: int = 1,
    tls: Material | None = None,
) -> Load:
    """One ghz run (plaintext, or mutual TLS with `tls`: same calls, same connections)."""
    exe = tool("ghz")
    if exe is None:
        raise GhzMissing("ghz is not installed: run bench/install.sh")
    cmd = [
        exe,
        *(tls.ghz_args() if tls else ["--insecure"]),
        f"--proto={proto}",
        *[f"--import-paths={p}" for p in import_paths],
        f"--call={call}",
        f"--data={data}",
        f"--concurrency={concurrency}",
        f"--connections={max(1, min(connections, concurrency))}",
        f"--duration={seconds:g}s",
        "--format=json",
        target,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    if out.returncode != 0 and not out.stdout.strip():
        raise RuntimeError(f"ghz failed: {out.stderr.strip()[:500]}")
    doc = json.loads(out.stdout)
    dist = {int(d["percentage"]): d["latency"] / 1e6 for d in doc.get("latencyDistribution") or []}
    codes = doc.get("statusCodeDistribution") or {}
    return Load(
        concurrency,
        int(doc.get("count", 0)),
        float(doc.get("rps", 0.0)),
        dist.get(50, float("nan")),
        dist.get(99, float("nan")),
        int(codes.get("OK", 0)),
        {k: int(v) for k, v in (doc.get("errorDistribution") or {}).items()},
    )
