"""Results of one run: rows of medians / p99 with their same-run baselines and ratios, the table
printed while the run goes on, and the JSON file all benchmarks write together.

A row is one measured series (or, for ghz, the figures ghz computed). `baseline` names another
row's key; the ratio is taken against that row's median (and p99 against p99) *of this run*.
A `Target` is the issue's goal for the row, evaluated and printed as "met" / "MISSED".
"""

from __future__ import annotations

import io
import json
import math
import operator
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from bench.stats import Summary, ratio

_ORDER = {
    name: i
    for i, name in enumerate(
        ("failover", "crash", "herd", "fanout", "unary", "resources", "tls", "campaign", "etcd")
    )
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Target:
    """`stat` of the row compared (`op`) with `factor` x (`ref` row's `ref_stat`, or 1); with
    `also`, a second condition that must hold too (its own text is not shown)."""

    text: str
    stat: str = "p50"
    op: str = "<="
    factor: float = 1.0
    ref: str | None = None
    ref_stat: str = "p50"
    also: Target | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Target:
        also = doc.get("also")
        return cls(**{**doc, "also": cls.from_doc(also) if also else None})


@dataclass
class Row:
    key: str
    bench: str
    metric: str
    system: str
    size: str
    unit: str
    stats: dict[str, float | int]
    baseline: str | None = None
    ratio_p50: float = math.nan
    ratio_p99: float = math.nan
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    goal: Target | None = None


class Results:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.rows: dict[str, Row] = {}
        self.meta: dict[str, Any] = {}
        self.notes: list[str] = []
        self._out = out
        self._header_for: str | None = None

    # ----- recording ------------------------------------------------------------------------

    def add(
        self,
        key: str,
        *,
        bench: str,
        metric: str,
        system: str,
        size: str = "",
        unit: str = "ms",
        samples: Sequence[float] | None = None,
        stats: dict[str, float | int] | None = None,
        baseline: str | None = None,
        target: Target | None = None,
        extra: dict[str, Any] | None = None,
        keep_samples: bool = True,
    ) -> Row:
        if stats is None:
            stats = Summary.of(list(samples or [])).as_dict()
        row = Row(
            key,
            bench,
            metric,
            system,
            size,
            unit,
            dict(stats),
            baseline,
            extra=dict(extra or {}),
            samples=[float(s) for s in samples] if samples is not None and keep_samples else [],
        )
        row.goal = target
        self._settle(row)
        self.rows[key] = row
        self._print(row)
        return row

    def finalize(self) -> None:
        """Recompute ratios and verdicts now that every row of the run exists (a peer measured
        later in the run can be the baseline of a row measured earlier)."""
        for row in self.rows.values():
            self._settle(row)

    def _settle(self, row: Row) -> None:
        base = self.rows.get(row.baseline) if row.baseline else None
        if base is not None:
            row.ratio_p50 = ratio(_num(row.stats.get("p50")), _num(base.stats.get("p50")))
            row.ratio_p99 = ratio(_num(row.stats.get("p99")), _num(base.stats.get("p99")))
        if row.goal is not None:
            row.target = row.goal.text
            row.met = self._evaluate(row, row.goal)

    def print_table(self) -> None:
        self._header_for = None
        print("\n######## all results (ratios against baselines of this run)", file=self._out)
        for row in sorted(self.rows.values(), key=lambda r: _ORDER.get(r.bench, 99)):
            self._print(row)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", file=self._out, flush=True)

    def _evaluate(self, row: Row, target: Target) -> bool | None:
        if target.also is not None:
            first = self._evaluate(row, replace(target, also=None))
            second = self._evaluate(row, target.also)
            if first is None or second is None:
                return None
            return first and second
        value = _num(row.stats.get(target.stat))
        limit = target.factor
        if target.ref is not None:
            ref = self.rows.get(target.ref)
            if ref is None:
                return None
            limit *= _num(ref.stats.get(target.ref_stat))
        if math.isnan(value) or math.isnan(limit):
            return None
        return _OPS[target.op](value, limit)

    # ----- output ---------------------------------------------------------------------------

    COLUMNS = (
        "metric",
        "system",
        "size",
        "p50",
        "p99",
        "n",
        "baseline",
        "x p50",
        "x p99",
        "target",
    )
    WIDTHS = (44, 16, 12, 10, 10, 5, 20, 7, 7, 0)

    def _print(self, row: Row) -> None:
        if self._header_for != row.bench:
            self._header_for = row.bench
            print(f"\n== {row.bench}", file=self._out)
            print(_line(self.COLUMNS, self.WIDTHS), file=self._out)
        print(_line(self.cells(row), self.WIDTHS), file=self._out, flush=True)

    def cells(self, row: Row) -> tuple[str, ...]:
        verdict = ""
        if row.target:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[row.met] + f" ({row.target})"
        base = self.rows.get(row.baseline) if row.baseline else None
        return (
            row.metric,
            row.system,
            row.size,
            fmt(row.stats.get("p50"), row.unit),
            fmt(row.stats.get("p99"), row.unit),
            str(row.stats.get("n", "")),
            f"{base.system} {base.size}".strip() if base else "",
            _x(row.ratio_p50),
            _x(row.ratio_p99),
            verdict,
        )

    def markdown(self, bench: str | None = None) -> str:
        head = (
            "| metric | system | size | p50 | p99 | n | baseline (same run) "
            "| x p50 | x p99 | target |"
        )
        lines = [head, "|" + "---|" * 10]
        for row in sorted(self.rows.values(), key=lambda r: _ORDER.get(r.bench, 99)):
            if bench is not None and row.bench != bench:
                continue
            cells = list(self.cells(row))
            if row.met is False:
                cells[-1] = f"**{cells[-1]}**"
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "notes": self.notes,
            "rows": [_clean(asdict(r)) for r in self.rows.values()],
            "tables": {
                b: self.markdown(b) for b in dict.fromkeys(r.bench for r in self.rows.values())
            },
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Results:
        doc = json.loads(path.read_text())
        res = cls(out=io.StringIO())  # loading prints nothing
        res.meta, res.notes = doc.get("meta", {}), doc.get("notes", [])
        for r in doc["rows"]:
            fields: dict[str, Any] = {
                k: (math.nan if v is None and k.startswith("ratio") else v) for k, v in r.items()
            }
            goal = fields.pop("goal", None)
            row = Row(**fields, goal=Target.from_doc(goal) if goal else None)
            row.stats = {k: (math.nan if v is None else v) for k, v in row.stats.items()}
            res.rows[row.key] = row
        return res


def fmt(value: Any, unit: str) -> str:
    v = _num(value)
    if math.isnan(v):
        return "-"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"
    if unit == "s":
        return f"{v:.3f} s"
    if unit in ("rps", "streams"):
        return f"{v:,.0f}"
    if unit == "KiB":
        return f"{v:,.1f} KiB"
    if unit == "MiB":
        return f"{v:,.1f} MiB"
    if unit == "%":
        return f"{v:.2f} %"
    if unit == "x":  # a ratio: two significant digits below 0.1 (0.012, not 0.01)
        return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.2g}"
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:.2f}"


def now_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _x(value: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.2f}x" if abs(value) >= 0.1 else f"{value:.2g}x"


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return " ".join(c.ljust(w) if w else c for c, w in zip(cells, widths, strict=True)).rstrip()


def _clean(value: Any) -> Any:
    """NaN -> None, so that the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
