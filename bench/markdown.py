"""Renders a results file as the results part of BENCHMARKS.md: when and where it was measured
(machine, load, versions), one table per benchmark with its same-run baselines and ratios, the
plots, and the targets met or missed.

    python -m bench.markdown bench/results/full-XXXX.json            # print it
    python -m bench.markdown bench/results/full-XXXX.json --update BENCHMARKS.md
        # replace what lies between the <!-- results:begin --> / <!-- results:end --> markers
    python -m bench.markdown bench/results/full-XXXX.json --merge bench/results/full-YYYY.json
        # the benchmarks of a later partial run (`--only crash,resources`) replace the same
        # benchmarks' sections of the full run; each such section names the run it comes from
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from bench.report import Results

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

TITLES = {
    "failover": "1. Graceful failover (SIGTERM of the leader)",
    "crash": "2. Crash failover (SIGKILL of the leader)",
    "herd": "3. Herd scaling",
    "fanout": "4. Fan-out: WatchLeader streams on one node",
    "unary": "5. Unary throughput and latency (ghz)",
    "resources": "7. Resources",
    "tls": "8. TLS: mutual TLS beside plaintext",
    "campaign": "9. Election as a service",
}
PLOTS = {
    "failover": ["failover"],
    "crash": ["crash"],
    "herd": ["herd", "herd-notifications"],
    "fanout": ["fanout"],
    "unary": ["unary"],
    "tls": ["tls", "tls-unary"],
    "campaign": ["campaign"],
}


def merge(base: Results, later: list[tuple[Results, Path]]) -> dict[str, tuple[Results, Path]]:
    """Replace, in `base`, the rows of every benchmark a later run measured by that run's rows;
    returns benchmark -> (the run, its results file) for the replaced ones."""
    sources: dict[str, tuple[Results, Path]] = {}
    for res, path in later:
        benches = {r.bench for r in res.rows.values()}
        base.rows = {k: r for k, r in base.rows.items() if r.bench not in benches}
        base.rows.update(res.rows)
        base.notes += [n for n in res.notes if n not in base.notes]
        for bench in benches:
            sources[bench] = (res, path)
    base.finalize()
    return sources


def _run_line(meta: dict[str, Any], path: Path, doc_dir: Path) -> str:
    m = meta.get("machine", {})
    return (
        f"Measured in `{os.path.relpath(path, doc_dir)}` ({meta.get('kind')} run of "
        f"{', '.join(meta.get('benchmarks') or [])}, started {meta.get('started')}, code "
        f"{m.get('git')}; load average at start {meta.get('load_at_start')}, at end "
        f"{meta.get('load_at_end')})."
    )


def render(
    results: Results,
    json_path: Path,
    doc_dir: Path,
    sources: dict[str, tuple[Results, Path]] | None = None,
) -> str:
    sources = sources or {}
    meta = results.meta
    m = meta.get("machine", {})
    v = m.get("versions", {})
    took = ", ".join(f"{k} {v:.0f} s" for k, v in (meta.get("seconds") or {}).items())
    lines = [
        f"Results file: `{os.path.relpath(json_path, doc_dir)}` ({meta.get('kind')} run, "
        f"started {meta.get('started')}; time per benchmark: {took}).",
        "",
        f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, "
        f"{m.get('os')}, Linux {m.get('kernel')}.",
        f"- Load average (1/5/15 min) at start {meta.get('load_at_start')}, "
        f"at end {meta.get('load_at_end')}.",
        f"- Versions: electd {v.get('electd')} ({m.get('git')}), Python {m.get('python')}, "
        f"kazoo {v.get('kazoo')}, grpcio {v.get('grpcio')}, protobuf {v.get('protobuf')}, "
        f"ZooKeeper {v.get('zookeeper')} (Debian; {v.get('java')}), {v.get('etcd')} (Debian), "
        f"ghz {v.get('ghz')}, {v.get('go')}.",
        "",
    ]
    if meta.get("failed"):
        lines += [f"**Benchmarks that failed in this run:** {', '.join(meta['failed'])}", ""]
    for note in results.notes:
        lines += [f"> {note}", ""]
    benches = dict.fromkeys(r.bench for r in results.rows.values())
    stem = json_path.with_suffix("")
    for bench in [b for b in TITLES if b in benches]:
        lines += [f"### {TITLES[bench]}", ""]
        here = stem
        if bench in sources:
            run, path = sources[bench]
            lines += [_run_line(run.meta, path, doc_dir), ""]
            here = path.with_suffix("")
        lines += [results.markdown(bench), ""]
        for plot in PLOTS.get(bench, []):
            png = here.parent / f"{here.name}-{plot}.png"
            if png.is_file():
                lines += [f"![{bench}]({os.path.relpath(png, doc_dir)})", ""]
    order = list(TITLES)
    verdicts = sorted(
        (r for r in results.rows.values() if r.target),
        key=lambda r: order.index(r.bench) if r.bench in order else len(order),
    )
    if verdicts:
        lines += ["### Targets", "", "| target | row | verdict |", "|---|---|---|"]
        for r in verdicts:
            word = {True: "met", False: "**missed**", None: "n/a"}[r.met]
            lines.append(f"| {r.target} | {r.metric} ({r.system}, {r.size}) | {word} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.markdown")
    p.add_argument("results", type=Path)
    p.add_argument("--update", type=Path, default=None, metavar="BENCHMARKS.md")
    p.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        metavar="LATER.json",
        help="a later (partial) run whose benchmarks replace those of RESULTS; repeatable",
    )
    args = p.parse_args(argv)
    results = Results.load(args.results)
    sources = merge(results, [(Results.load(m), m.resolve()) for m in args.merge])
    target = args.update
    body = render(
        results,
        args.results.resolve(),
        (target or Path.cwd()).resolve().parent if target else Path.cwd(),
        sources,
    )
    if target is None:
        print(body)
        return 0
    text = target.read_text()
    if BEGIN not in text or END not in text:
        print(f"{target}: no {BEGIN} / {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    target.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
