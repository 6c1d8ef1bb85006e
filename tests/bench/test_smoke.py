"""Smoke run of the benchmarks (bench/): every benchmark at tiny sizes against real ZooKeeper,
etcd and electd processes. Asserts that each produces sane numbers under the expected keys,
never how fast they are (speed is for the benchmarks themselves, see BENCHMARKS.md)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = [
    "failover.zk_floor",
    "failover.kazoo_election",
    "failover.electd_successor",
    "failover.electd_watch_third",
    "failover.etcd_observe",
    "failover.etcd_campaign",
    "crash.zk_1s",
    "crash.electd_1s",
    "crash.electd_watch_1s",
    "crash.node_1s",
    "crash.node_watch_1s",
    "crash.node_later_1s",
    "crash.node_death_1s",
    "crash.etcd_kill",
    "crash.supervisor_rss",
    "herd.electd_3",
    "herd.electd_6",
    "herd.naive_6",
    "herd.electd_6_per_leave_reeval",
    "herd.naive_6_per_change_notif",
    "fanout.electd_50",
    "fanout.etcd_watch_50",
    "fanout.etcd_observe_10",
    "fanout.electd_50_rss",
    "fanout.grpc.aio_floor_50",
    "unary.electd_GetLeader_c2",
    "unary.electd_GetLeader_c2_rps",
    "unary.electd_ListNodes_c2",
    "unary.etcd_Leader_c2",
    "resources.startup",
    "resources.idle_rss",
    "resources.supervisor_rss",
    # Benchmark 8: the same measurements over plaintext and mutual TLS, side by side.
    "tls.failover_successor_plain",
    "tls.failover_successor_mtls",
    "tls.failover_watch_plain",
    "tls.failover_watch_mtls",
    "tls.unary_plain_c2",
    "tls.unary_mtls_c2",
    "tls.unary_plain_c2_rps",
    "tls.unary_mtls_c2_rps",
    "tls.fanout_plain_50",
    "tls.fanout_mtls_50",
    "tls.fanout_mtls_50_first",
    "tls.fanout_mtls_50_open",
    "tls.fanout_mtls_50_rss",
    # Benchmark 9: election as a service, beside the ZooKeeper floor and etcd in one run.
    "campaign.zk_floor",
    "campaign.etcd_campaign",
    "campaign.etcd_observe",
    "campaign.electd_leading",
    "campaign.electd_watch",
    "campaign.floor_leading",
    "campaign.floor_watch",
    "campaign.electd_vs_floor",
    "campaign.scale_last_leading",
    "campaign.scale_join",
    "campaign.scale_node_rss",
    "campaign.scale_first_zk_handover_writes",
]


@pytest.fixture(scope="module")
def tools() -> None:
    """bench/install.sh: etcd, ghz, the stream client, matplotlib (idempotent; CI is root).
    On a fresh machine this builds ghz once (a few minutes); the smoke run itself takes ~1."""
    subprocess.run(["bash", str(ROOT / "bench" / "install.sh")], check=True, timeout=900)


@pytest.mark.timeout(900)
def test_every_benchmark_runs_at_tiny_sizes(tools: None, tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert not doc["meta"]["failed"]
    rows = {r["key"]: r for r in doc["rows"]}
    missing = [k for k in EXPECTED if k not in rows]
    assert not missing, f"missing rows: {missing}"
    for key in EXPECTED:
        stats = rows[key]["stats"]
        if rows[key]["unit"] == "count":
            assert stats["p50"] is not None and stats["p50"] >= 0, key
            continue
        assert stats["p50"] is not None and stats["p50"] > 0 and math.isfinite(stats["p50"]), key
        if stats.get("p99") is not None:
            assert stats["p99"] >= stats["p50"], key
    # Ratios are computed against baselines of the same run.
    assert rows["failover.electd_successor"]["ratio_p50"] > 0
    # electd's handover is compared with its design's floor, measured alternately in this run.
    assert rows["campaign.electd_vs_floor"]["baseline"] == "campaign.floor_leading"
    assert rows["campaign.electd_vs_floor"]["ratio_p50"] > 0
    # Each mTLS row is compared with its plaintext twin of the same run (TLS/plaintext).
    for key in ("tls.failover_watch_mtls", "tls.unary_mtls_c2_rps", "tls.fanout_mtls_50"):
        assert rows[key]["baseline"] == key.replace("mtls", "plain"), key
        assert rows[key]["ratio_p50"] > 0, key
    # Every table has its plot, and the markdown tables are there for BENCHMARKS.md.
    assert {"failover", "herd", "fanout", "unary", "tls"} <= set(doc["tables"])
    assert list(tmp_path.glob("quick-failover.png"))
    assert list(tmp_path.glob("quick-tls.png")) and list(tmp_path.glob("quick-tls-unary.png"))
    # Nothing it started was left running: no node, ZooKeeper, etcd or stream client.
    assert doc["meta"]["leftover_children"] == []


def test_the_failover_trace_still_sees_every_step() -> None:
    """bench.failover_trace hooks private functions of asyncio, kazoo and electd: if one is
    renamed, its step silently disappears from the trace, so check that all of them show."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.failover_trace", "--trials", "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for step in (
        "signal reaches asyncio",
        "hub.retire entered",
        "engine.leave entered",
        "Delete written to ZooKeeper's socket",
        "successor logs 'I am a new leader'",
    ):
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(step)), None)
        assert line is not None and line.split()[-1] == "2", (step, proc.stdout)
