"""The benchmark runner: `python -m bench [--quick] [--only NAMES] [--trials N] ...`.

Runs the selected benchmarks in one process against real ZooKeeper / etcd / electd processes,
prints each table row as it is measured, then the whole table with ratios, and writes one JSON
file of results (bench/results/ by default) plus PNG plots next to it. Every process started is
stopped on the way out, also when a benchmark fails or the run is interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import machine, procs
from bench.context import ROOT, Context, Options
from bench.report import Results, now_stamp

BENCHMARKS = {
    "failover": "bench.failover",
    "crash": "bench.crash",
    "herd": "bench.herd",
    "fanout": "bench.fanout",
    "unary": "bench.unary",
    "etcd": "bench.etcd",
    "resources": "bench.resources",
    "tls": "bench.tls",
    "campaign": "bench.campaign",
}
RESULTS_DIR = ROOT / "bench" / "results"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="electd benchmarks against the ZooKeeper floor, kazoo and etcd "
        "(and electd over mutual TLS against itself in plaintext).",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes and few trials (smoke run)")
    p.add_argument(
        "--only",
        default="",
        metavar="NAMES",
        help=f"comma-separated subset of: {','.join(BENCHMARKS)}",
    )
    p.add_argument("--trials", type=int, default=None, help="trials per measurement (override)")
    p.add_argument("--herd-sizes", type=_ints, default=None, metavar="N,N")
    p.add_argument("--naive-sizes", type=_ints, default=None, metavar="N,N")
    p.add_argument("--fanout-sizes", type=_ints, default=None, metavar="N,N")
    p.add_argument("--concurrency", type=_ints, default=None, metavar="C,C")
    p.add_argument("--crash-timeouts", type=_floats, default=None, metavar="S,S")
    p.add_argument("--ghz-seconds", type=float, default=None, metavar="S")
    p.add_argument("--tls-streams", type=int, default=None, metavar="N", help="tls: fan-out size")
    p.add_argument(
        "--tls-rounds",
        type=int,
        default=None,
        metavar="N",
        help="tls: plaintext/mTLS alternations of the ghz runs and of the fan-out sessions",
    )
    p.add_argument(
        "--campaign-elections",
        type=int,
        default=None,
        metavar="N",
        help="campaign: named elections (x 3 candidates) of the scale part",
    )
    p.add_argument(
        "--campaign-ping",
        type=float,
        default=None,
        metavar="S",
        help="campaign: each candidate's ping interval in seconds",
    )
    p.add_argument("--out", type=Path, default=None, help="results JSON (default: bench/results/)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and data dirs")
    return p


def options(args: argparse.Namespace) -> Options:
    opts = Options.quick_sizes() if args.quick else Options()
    opts.trials = args.trials
    for name, value in (
        ("herd_sizes", args.herd_sizes),
        ("naive_sizes", args.naive_sizes),
        ("fanout_sizes", args.fanout_sizes),
        ("concurrencies", args.concurrency),
        ("crash_timeouts", args.crash_timeouts),
        ("ghz_seconds", args.ghz_seconds),
        ("tls_streams", args.tls_streams),
        ("tls_rounds", args.tls_rounds),
        ("campaign_elections", args.campaign_elections),
        ("campaign_ping_s", args.campaign_ping),
    ):
        if value is not None:
            setattr(opts, name, value)
    return opts


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    opts = options(args)
    procs.install_signal_handlers()
    results = Results()
    workdir = Path(tempfile.mkdtemp(prefix="electd-bench-"))
    kind = "quick" if opts.quick else "full"
    out = args.out or RESULTS_DIR / f"{kind}-{now_stamp()}.json"
    results.meta = {
        "kind": kind,
        "benchmarks": names,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_at_start": machine.load(),
        "machine": machine.describe(),
        "options": dict(vars(opts)),
        "argv": sys.argv[1:] if argv is None else argv,
    }
    print(f"electd benchmarks ({kind}): {', '.join(names)}; work dir {workdir}")
    print(f"load average at start: {results.meta['load_at_start']}", flush=True)
    ctx = Context(opts, results, workdir)
    failed: list[str] = []
    try:
        for name in names:
            started = time.monotonic()
            try:
                importlib.import_module(BENCHMARKS[name]).run(ctx)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - one failed benchmark keeps the others
                failed.append(name)
                traceback.print_exc()
                results.note(f"{name} failed: {exc!r}")
            results.meta.setdefault("seconds", {})[name] = round(time.monotonic() - started, 1)
    finally:
        ctx.close()
        results.meta["leftover_children"] = procs.children()
        if results.meta["leftover_children"]:
            print(f"bench: still running: {results.meta['leftover_children']}", file=sys.stderr)
        results.meta["load_at_end"] = machine.load()
        results.meta["failed"] = failed
        results.finalize()
        results.print_table()
        results.write(out)
        print(f"\nresults: {out}  (load average at end: {results.meta['load_at_end']})")
        if not args.no_plots:
            try:
                from bench import plots

                for png in plots.draw(results, out.with_suffix("")):
                    print(f"plot: {png}")
            except ImportError as exc:
                print(f"plots skipped ({exc}); run bench/install.sh", file=sys.stderr)
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}")
    return 1 if failed else 0
