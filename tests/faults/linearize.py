"""The outside checker: Porcupine judges "one leader" on a recorded run, beside checker.py.

checker.py's evidence extraction (`checker.exact_terms`) gives every term's exact evidence:
claims "node N leads with epoch E", each over the real-time interval [asked, answered] in which
N believed it (a log line is one instant). The Go command in tests/faults/linearize checks them
with Porcupine against a register of terms: a claim is legal iff it opens a newer epoch (which
then holds) or repeats the epoch and node that hold. So a claim of a newer term that returned
before a claim of an older term began is illegal, and so are two nodes with one epoch.

A named election's history (the candidate scenarios') is judged the same way: its candidates'
claims and fenced writes are exact evidence too (checker.py), with the candidate ids as nodes;
`main` judges such a run with checker.check_candidates.

Each term goes to Porcupine as at most two claims: the one with the earliest `answered` (where
checker.py's rule 1 starts the term) and the one with the latest `asked` (where it ends it).
The claims in between change nothing: an overlap with another term shows at one of these two.
One operation spanning the term would not do, as Porcupine places an operation at a single
instant of its interval, so an overlap inside a long term would go unseen.

    .venv/bin/python -m tests.faults.linearize RUN.json [--out DIR]

judges a run saved by `save_run` (the fault suite saves each test's as run.json in its workdir;
tests/faults/fixtures/ holds two) with both checkers and prints both verdicts.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

from tests.faults.checker import (
    _NEW_LEADER,
    _SERVING,
    _TRANSITION,
    Bounds,
    Report,
    check,
    check_candidates,
    exact_terms,
    is_candidate_history,
)
from tests.faults.history import Event

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / ".tools" / "bin" / "electd-linearize"
BUILD = ROOT / "scripts" / "build-linearize.sh"
TIMEOUT = 60.0  # seconds Porcupine may take before the verdict is "unknown"
# The event kinds checker.py reads; a saved run keeps only these.
CHECKED_KINDS = ("node", "stream", "stream-end", "write", "probe", "fault", "settled", "claim")

Logs = dict[str, list[dict[str, Any]]]


class Verdict(NamedTuple):
    ok: bool | None  # True: linearizable; False: not; None: no verdict (bad input, timed out)
    summary: str  # the command's one line
    html_path: Path | None  # Porcupine's visualisation of a history that is not linearizable


def operations(events: list[Event], logs: Logs, every_claim: bool = False) -> list[dict[str, Any]]:
    """The history for the Go command: each term's first and last exact claim (or, with
    `every_claim`, all of its claims), times in ns."""
    terms = exact_terms(events, logs)
    nodes = sorted({t.node for t in terms}, key=lambda n: (len(n), n))
    client = {node: i for i, node in enumerate(nodes)}
    ops = []
    for t in terms:
        for c in dict.fromkeys(t.claims if every_claim else [t.first, t.last]):
            ops.append(
                {
                    "client": client[t.node],
                    "node": t.node,
                    "epoch": t.epoch,
                    "call": _ns(c.asked),
                    "return": _ns(c.answered),
                    "source": c.source,
                }
            )
    ops.sort(key=lambda o: (o["call"], o["return"]))
    return ops


def _ns(t: float) -> int:
    # Rounding to whole ns keeps the order and the ties of the history's floats (seconds of
    # CLOCK_MONOTONIC, or of the wall clock in runs saved before: ~240 ns apart at worst).
    return round(t * 1e9)


@functools.cache
def build() -> str | None:
    """Build the command once per process (the script skips an up-to-date binary); the error,
    if it did not build."""
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")[-2000:]
    return None


def judge(
    events: list[Event],
    logs: Logs,
    workdir: Path,
    timeout: float = TIMEOUT,
    every_claim: bool = False,
) -> Verdict:
    """Porcupine's verdict on a run (the events and logs checker.check takes; it needs no
    bounds: its bound is 0). Writes linearize-ops.json, and linearize.html when the history is
    not linearizable, into `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    ops_path, html = workdir / "linearize-ops.json", workdir / "linearize.html"
    html.unlink(missing_ok=True)
    ops_path.write_text(json.dumps(operations(events, logs, every_claim)) + "\n")
    error = build()
    if error is not None:
        last = " | ".join(error.splitlines()[-3:])
        return Verdict(None, f"unknown: the outside checker did not build: {last}", None)
    cmd = [str(BINARY), "-timeout", f"{timeout}s", "-html", str(html), str(ops_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        return Verdict(None, f"unknown: {BINARY.name} did not exit within {timeout + 60:g}s", None)
    lines = proc.stdout.strip().splitlines() or [f"exit {proc.returncode}: {proc.stderr.strip()}"]
    summary = lines[-1]
    if proc.returncode == 0:
        return Verdict(True, summary, None)
    if proc.returncode == 1:
        return Verdict(False, summary, html if html.exists() else None)
    return Verdict(None, summary, None)


def two_leaders(report: Report) -> int:
    """How many of checker.py's violations are two leaders: rule 1 (overlapping terms), or one
    epoch naming two nodes (its rule 2; for the register of terms, the same offence)."""
    return sum(v.startswith("rule 1:") or " names both " in v for v in report.violations)


def disagreement(report: Report, verdict: Verdict) -> str | None:
    """The two checkers' disagreement on two leaders, if they disagree (a verdict of None
    neither agrees nor disagrees)."""
    flagged = two_leaders(report)
    if verdict.ok is None or bool(flagged) == (verdict.ok is False):
        return None
    return (
        "the checkers disagree on rule 1: checker.py "
        + (f"flags two leaders ({flagged} violations)" if flagged else "flags no two leaders")
        + f", Porcupine says {verdict.summary!r}"
    )


def compare(report: Report, verdict: Verdict) -> list[str]:
    """What fails a run beyond checker.py's own violations: Porcupine's verdict unless it is
    "linearizable" (with where its visualisation is), and a disagreement of the two checkers."""
    out = []
    if verdict.ok is not True:
        html = verdict.html_path
        where = f" (visualisation: {html})" if html and str(html) not in verdict.summary else ""
        out.append(f"outside checker (Porcupine): {verdict.summary}{where}")
    if (text := disagreement(report, verdict)) is not None:
        out.append(text)
    return out


def verdicts(report: Report, verdict: Verdict) -> str:
    """Both verdicts, one line each."""
    return (
        f"checker.py: {len(report.violations)} violations, {two_leaders(report)} of them two "
        f"leaders\nPorcupine: {verdict.summary}"
    )


# ----- saved runs -------------------------------------------------------------------------


def save_run(path: Path, events: list[Event], logs: Logs, bounds: Bounds, note: str = "") -> None:
    """A run as JSON with only what the two checkers read: the events of the kinds checker.py
    reads, and of the nodes' logs the lines with a leader decision or a process start (their
    `ts`, `mono` and `msg`). Gzipped when the name ends in .gz."""
    wanted = (_SERVING.search, _NEW_LEADER.match, _TRANSITION.match)
    kept_logs = {
        node: [
            {k: r[k] for k in ("ts", "mono", "msg") if k in r}
            for r in records
            if any(f(str(r.get("msg", ""))) for f in wanted)
            or "leader epoch went backwards" in str(r.get("msg", ""))
        ]
        for node, records in sorted(logs.items())
    }
    run = {
        "note": note,
        "bounds": asdict(bounds),
        "events": [asdict(e) for e in sorted(events, key=lambda e: e.t) if e.kind in CHECKED_KINDS],
        "logs": kept_logs,
    }
    text = json.dumps(run, separators=(",", ":")) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)


def load_run(path: Path) -> tuple[list[Event], Logs, Bounds, str]:
    raw = path.read_bytes()
    run = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    events = [Event(e["t"], e["kind"], e["node"], e["data"]) for e in run["events"]]
    return events, run["logs"], Bounds(**run["bounds"]), run.get("note", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linearize", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run saved by save_run (.json or .json.gz)")
    parser.add_argument("--out", type=Path, default=None, help="for the ops and the HTML")
    args = parser.parse_args(argv)
    events, logs, bounds, note = load_run(args.run)
    out = args.out or Path(tempfile.mkdtemp(prefix="electd-linearize-"))
    if is_candidate_history(events, logs):
        report = check_candidates(events, bounds)
    else:
        report = check(events, logs, bounds)
    verdict = judge(events, logs, out)
    failures = [*report.violations, *compare(report, verdict)]
    print(f"{args.run}{': ' + note if note else ''}\n{verdicts(report, verdict)}")
    if (text := disagreement(report, verdict)) is not None:
        print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
