"""PNG plots of a results file (matplotlib, headless): one figure per benchmark, written next
to the JSON as <results>-<bench>.png and embedded in BENCHMARKS.md."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.report import Results, Row


def _label(row: Row) -> str:
    head = (
        row.metric
        if row.metric.lower().startswith(row.system.split()[0].lower())
        else (f"{row.system}: {row.metric}")
    )
    return head + (f" ({row.size})" if row.size else "")


def _box(results: Results, keys: list[str], title: str, out: Path, unit: str = "ms") -> Path:
    return _panels(results, [(keys, title, False)], out, unit)


def _panels(
    results: Results, panels: list[tuple[list[str], str, bool]], out: Path, unit: str = "ms"
) -> Path:
    """Horizontal box plots, one panel per (keys, title, log x axis), stacked; a panel whose
    rows have no samples is left out."""
    shown = [
        ([results.rows[k] for k in keys if k in results.rows and results.rows[k].samples], t, log)
        for keys, t, log in panels
    ]
    shown = [p for p in shown if p[0]] or shown[:1]
    heights = [0.55 * max(1, len(rows)) + 1.0 for rows, _, _ in shown]
    fig, axes = plt.subplots(
        len(shown),
        1,
        figsize=(10, sum(heights) + 0.6),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (rows, title, log) in zip(axes[:, 0], shown, strict=True):
        if rows:
            ax.boxplot(
                [r.samples for r in rows],
                vert=False,
                whis=(1, 99),
                showfliers=True,
                flierprops={"markersize": 3},
            )
            ax.set_yticks(range(1, len(rows) + 1), [_label(r)[:80] for r in rows], fontsize=8)
            ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(unit)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3, which="both" if log else "major")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _size(row: Row) -> float:
    m = re.search(r"[\d,]+", row.size.replace("c=", ""))
    return float(m.group(0).replace(",", "")) if m else math.nan


def _lines(
    results: Results,
    pattern: str,
    stats: tuple[str, ...],
    title: str,
    unit: str,
    out: Path,
    xlabel: str = "",
) -> Path:
    series: dict[str, list[Row]] = defaultdict(list)
    for row in results.rows.values():
        if re.fullmatch(pattern, row.key):
            series[f"{row.system}: {row.metric}"].append(row)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, rows in series.items():
        rows.sort(key=_size)
        xs = [_size(r) for r in rows]
        for stat in stats:
            ys = [float(r.stats.get(stat) or math.nan) for r in rows]
            ax.plot(xs, ys, marker="o", label=f"{name} {stat}" if len(stats) > 1 else name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel(unit)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _tls(results: Results, path: Callable[[str], Path]) -> list[Path]:
    """Benchmark 8: each plaintext row right above its mTLS twin."""
    modes = ("plain", "mtls")
    fan = [
        f"tls.fanout_{mode}_{m.group(1)}{step}"
        for m in (re.fullmatch(r"tls\.fanout_plain_(\d+)", k) for k in results.rows)
        if m
        for step in ("", "_median", "_first")
        for mode in modes
    ]
    panels = [
        (
            [f"tls.failover_{what}_{mode}" for what in ("successor", "watch") for mode in modes],
            "(a) graceful failover: plaintext vs mutual TLS (box: p25-p75, whiskers p1-p99)",
            False,
        ),
        (fan, "(c) fan-out: leader change -> last / median / first stream", False),
    ]
    return [
        _panels(results, panels, path("tls")),
        _lines(
            results,
            r"tls\.unary_(plain|mtls)_c\d+_rps",
            ("p50",),
            "(b) GetLeader throughput under ghz, plaintext vs mutual TLS",
            "requests/s",
            path("tls-unary"),
            "concurrency",
        ),
    ]


def _campaign(results: Results, out: Path) -> Path:
    """Benchmark 9: the resign handover beside its floor and etcd, then the same handover at
    the 1st election alone and with all elections live, then the candidates' join times."""
    scale = [
        f"campaign.scale_{at}_{what}"
        for what in ("leading", "watch")
        for at in ("first", "last", "first_all")
    ]
    panels = [
        (
            [
                "campaign.zk_floor",
                "campaign.etcd_campaign",
                "campaign.etcd_observe",
                "campaign.floor_leading",
                "campaign.floor_watch",
                "campaign.electd_lost",
                "campaign.electd_leading",
                "campaign.electd_watch",
            ],
            "(a) resign handover, 3 candidates on 3 nodes (box: p25-p75, whiskers p1-p99)",
            False,
        ),
        (scale, "(b) the same handover: 1 election alone vs all elections live", False),
        (["campaign.scale_join"], "(b) creating the candidates: start -> first answer", True),
    ]
    return _panels(results, panels, out)


def draw(results: Results, stem: Path) -> list[Path]:
    out: list[Path] = []
    benches = {r.bench for r in results.rows.values()}

    def path(name: str) -> Path:
        return stem.parent / f"{stem.name}-{name}.png"

    if "failover" in benches:
        keys = [
            "failover.zk_floor",
            "failover.kazoo_election",
            "failover.electd_sigterm_deleted",
            "failover.electd_successor",
            "failover.electd_watch_third",
            "failover.etcd_campaign",
            "failover.etcd_observe",
        ]
        out.append(
            _box(
                results, keys, "Graceful failover (box: p25-p75, whiskers p1-p99)", path("failover")
            )
        )
    if "crash" in benches:
        ms = [
            r.key
            for r in results.rows.values()
            if r.bench == "crash" and r.unit == "ms" and "supervisor" not in r.key
        ]
        steps = ("_death", "_prep", "_close")
        panels = [
            (
                [k for k in ms if k.startswith("crash.node")],
                "(a) node process SIGKILLed alone: the supervisor ends its session",
                False,
            ),
            (
                [k for k in ms if not any(step in k for step in steps)],
                "log scale: (a) beside (b) supervisor + node, (c) ZK expiry, (d) etcd",
                True,
            ),
        ]
        out.append(_panels(results, panels, path("crash")))
    if "herd" in benches:
        out.append(
            _lines(
                results,
                r"herd\.(electd|naive)_\d+",
                ("p50", "p99"),
                "Herd: leader leaves -> successor declares",
                "ms",
                path("herd"),
                "contenders",
            )
        )
        out.append(
            _lines(
                results,
                r"herd\.(electd|naive)_\d+_per_(change|leave|join)_notif",
                ("p50",),
                "Herd: ZooKeeper watch notifications (all contenders)",
                "notifications",
                path("herd-notifications"),
                "contenders",
            )
        )
    if "fanout" in benches:
        out.append(
            _lines(
                results,
                r"fanout\.(electd|etcd_watch|etcd_observe|grpc\.aio_floor)_\d+",
                ("p50", "p99"),
                "Fan-out: leader change -> last stream has it",
                "ms",
                path("fanout"),
                "open streams",
            )
        )
    if "tls" in benches:
        out += _tls(results, path)
    if "campaign" in benches:
        out.append(_campaign(results, path("campaign")))
    if "unary" in benches:
        out.append(
            _lines(
                results,
                r"unary\.\w+_c\d+_rps",
                ("p50",),
                "Unary throughput under ghz",
                "requests/s",
                path("unary"),
                "concurrency",
            )
        )
    return out
