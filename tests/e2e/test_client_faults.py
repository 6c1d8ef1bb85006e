"""Every client's `watch` through the faults of the failover contract (clients/README.md, "The
client contract"), against real ZooKeeper, real electd nodes and real sockets:

  * frozen: the watched node is SIGSTOPped (after its streams have been quiet for two ping
    intervals) while the leader changes; the watch leaves it on keepalive and reports the new
    leader.
  * black-holed: the first address drops every SYN (a full listen(0) queue); the connect
    deadline moves the watch on.
  * silent: the first address accepts TCP and never speaks; the connect deadline covers the
    HTTP/2 handshake.
  * full: the first node (`--max-streams 1`) has its one stream slot taken; RESOURCE_EXHAUSTED
    moves the watch on at once.
  * sigterm: SIGTERM exits 0 at once, both with an open watch and during a pending connection.

Each scenario runs the five example programs at once on one cluster; the per-language tests
then judge each language's run, so a failure names the language. Bounds are read from the
README's Failover table and judged with a margin for 2 shared cores: failover cases within
bound + 3 s, SIGTERM within bound + 1 s. The margin adds, it does not multiply: these bounds are
timers (deadlines, keepalive), so load delays them by roughly a constant, and bound * 2 would
pass a client that keeps a 10 s + 5 s keepalive against the 6 s bound. The silent case is timed
from the client's own connection (accepted by the test); the black-holed and full cases, which
cannot see it, from the start net of the language's start-up: each such watch runs beside a
control of the same language, started at the same moment with healthy addresses only (the same
load, the same JVM start or build wait). Every client must report exactly the leaders (id,
address, epoch) that the nodes report.

A table of the measured times is printed at the end of the module and written to its tmp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from electd.devcluster.cluster import NodeProcess, wait_until
from electd.devcluster.zookeeper import ZooKeeperCluster
from tests.conftest import NodeFactory
from tests.e2e.helpers import Watcher, leader_of, wait_joined
from tests.support.faultnet import BlackHole, SilentServer

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["python", "go", "rust", "java", "node"]
CASES = ["startup", "black-holed", "silent", "full", "frozen", "sigterm"]
MARGIN_SECONDS = 3.0  # failover cases: bound + this
SIGTERM_MARGIN_SECONDS = 1.0  # "exits 0 within a second": a second or two


# ----- the contract's bounds, as written ----------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    connect: float  # black-holed address: the connect deadline
    handshake: float  # accepts TCP, never speaks gRPC
    frozen: float  # an open watch's node freezes: left within
    keepalive: float  # ... the HTTP/2 ping interval when idle
    full: float  # RESOURCE_EXHAUSTED: next address
    cancel: float  # SIGTERM: the example exits 0 within


def _seconds(cell: str) -> float:
    if cell.strip().lower().startswith("at once"):
        return 0.0
    match = re.search(r"(\d+(?:\.\d+)?)\s*s\b", cell)
    assert match, f"no bound in {cell!r}"
    return float(match.group(1))


def contract_bounds() -> Bounds:
    text = (ROOT / "clients" / "README.md").read_text()
    rows: dict[str, tuple[str, str]] = {}  # situation: (what the client does, bound)
    section = text.split("**Failover.**", 1)[1].split("**The failover hook.**", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3:
            rows[cells[0]] = (cells[1], cells[2])

    def row(words: str) -> tuple[str, str]:
        found = [r for situation, r in rows.items() if words in situation]
        assert len(found) == 1, f"one Failover row about {words!r} in clients/README.md: {rows}"
        return found[0]

    def bound(words: str) -> float:
        return _seconds(row(words)[1])

    ping = re.search(r"ping every (\d+(?:\.\d+)?) s", row("freezes")[0])
    assert ping, f"clients/README.md: no keepalive interval in {row('freezes')[0]!r}"

    assert "exits 0 within a second" in text, "clients/README.md: the SIGTERM bound moved"
    return Bounds(
        connect=bound("black-holed"),
        handshake=bound("never speaks gRPC"),
        frozen=bound("freezes"),
        keepalive=float(ping.group(1)),
        full=bound("RESOURCE_EXHAUSTED"),
        cancel=1.0,
    )


BOUNDS = contract_bounds()


def generous(bound: float) -> float:
    return bound + MARGIN_SECONDS


LIMITS = {
    "black-holed": generous(BOUNDS.connect),
    "silent": generous(BOUNDS.handshake),
    "full": generous(BOUNDS.full),
    # Left within the keepalive bound, then a connect to the next address.
    "frozen": generous(BOUNDS.frozen + BOUNDS.connect),
    # Not +3 s here: that would hide a client that waits out a 2 s connection attempt.
    "sigterm": BOUNDS.cancel + SIGTERM_MARGIN_SECONDS,
}


# ----- the example programs ------------------------------------------------------------------


def current_leader(proc: NodeProcess) -> dict[str, Any] | None:
    """The leader as `proc` reports it now, as the example programs print it."""
    leader = leader_of(proc)
    if leader is None:
        return None
    return {"id": leader.node.id, "address": leader.node.address, "epoch": leader.epoch}


def leader_doc(proc: NodeProcess, node_id: str | None = None) -> dict[str, Any]:
    """The leader `proc` reports (once it is `node_id`, if given)."""
    doc: dict[str, Any] = wait_until(
        lambda: (d := current_leader(proc)) and (node_id is None or d["id"] == node_id) and d,
        30,
        f"{proc.node_id} to report {node_id or 'a'} leader",
    )
    return doc


def _tail(lines: Sequence[str], n: int = 15) -> str:
    return "\n".join(lines[-n:])


class Watch:
    """One example program's `watch --json ADDR...`, each stdout line timed as it arrives."""

    def __init__(self, lang: str, addresses: Sequence[str]) -> None:
        self.lang = lang
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self.garbage: list[str] = []
        self.err: list[str] = []
        self.term_at: float | None = None
        self.exit_at: float | None = None
        self.killed = False
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(ROOT / "clients" / lang / "run"), "--json", "watch", *addresses],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            now = time.monotonic()
            text = raw.decode(errors="replace").strip()
            if not text:
                continue
            try:
                self.lines.append((now, json.loads(text)))
            except json.JSONDecodeError:
                self.garbage.append(text)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self.err.append(raw.decode(errors="replace").rstrip())

    def docs(self) -> list[dict[str, Any]]:
        return [doc for _, doc in self.lines]

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def first_line_at(self) -> float | None:
        return self.lines[0][0] if self.lines else None

    def time_of(self, doc: dict[str, Any]) -> float | None:
        return next((t for t, d in self.lines if d == doc), None)

    def terminate(self) -> None:
        if self.term_at is None and not self.exited():
            self.term_at = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)

    def reaped(self) -> bool:
        if self.exit_at is None and self.proc.poll() is not None:
            self.exit_at = time.monotonic()
        return self.exit_at is not None

    def kill(self) -> None:
        if not self.exited():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.killed = True
        self.reaped()
        for t in self._readers:
            t.join(2)

    def stop_seconds(self) -> float | None:
        if self.term_at is None or self.exit_at is None or self.killed:
            return None
        return self.exit_at - self.term_at

    def early_exit(self) -> str:
        """What it said when it exited before any SIGTERM ('' while it runs or was stopped)."""
        if self.term_at is None and self.exited():
            return f"exited {self.proc.returncode} on its own: {_tail(self.err, 5)}"
        return ""


def stop_watches(watches: Sequence[Watch], timeout: float = 10) -> None:
    """SIGTERM every watch still running at once; SIGKILL whatever outlives `timeout`."""
    for w in watches:
        w.terminate()
    with contextlib.suppress(TimeoutError):
        # A list, not a generator: all() would stop polling (and timing) at the first one.
        wait_until(lambda: all([w.reaped() for w in watches]), timeout, "every watch to exit")
    for w in watches:
        w.kill()


def wait_for_all(watches: Sequence[Watch], done: Callable[[Watch], bool], timeout: float) -> None:
    """Until every watch is `done` or has exited; the judging is left to the caller."""
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: all(done(w) or w.exited() for w in watches), timeout, "the watches")


def warm_up(addresses: Sequence[str], expected: dict[str, Any]) -> dict[str, list[str]]:
    """`leader` once per language, all at once (builds what is stale, fills the caches, and
    checks the answer): the problems per language."""
    procs = {
        lang: subprocess.Popen(
            [str(ROOT / "clients" / lang / "run"), "--json", "leader", *addresses],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for lang in LANGUAGES
    }
    problems: dict[str, list[str]] = {}
    for lang, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            problems[lang] = [f"`leader` exited {proc.returncode}: {err.strip()[-500:]}"]
        elif out.strip() != json.dumps(expected, separators=(",", ":")):
            problems[lang] = [f"`leader` printed {out.strip()!r}, the nodes say {expected}"]
    return problems


# ----- what was measured, and the verdicts ---------------------------------------------------


@dataclass
class Outcome:
    seconds: float | None = None  # the judged time (None: it never happened)
    raw: str = ""  # the measurement behind it, for people
    problems: list[str] = field(default_factory=list)
    detail: str = ""  # the client's stderr, for a failure


@dataclass
class Stop:
    run: str
    seconds: float | None
    code: int | None
    killed: bool


class Report:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self.stops: dict[str, list[Stop]] = {lang: [] for lang in LANGUAGES}
        self.node_logs: dict[str, dict[str, str]] = {}  # per scenario, per node
        self.notes: list[str] = []

    def record_stops(self, run: str, watches: Sequence[Watch]) -> None:
        for w in watches:
            if w.term_at is None:
                continue  # exited on its own: judged by the case itself
            self.stops[w.lang].append(Stop(run, w.stop_seconds(), w.proc.returncode, w.killed))

    def outcome(self, case: str, lang: str) -> Outcome:
        if case == "sigterm":
            return self._sigterm(lang)
        return self.outcomes.get((case, lang), Outcome(problems=[f"{case}: not run"]))

    def _sigterm(self, lang: str) -> Outcome:
        stops = self.stops[lang]
        out = Outcome(raw=", ".join(f"{s.run} {_fmt(s.seconds)}" for s in stops))
        for need in ("watching", "connecting"):
            if not any(s.run.startswith(need) for s in stops):
                out.problems.append(f"never stopped while {need} (it exited on its own first)")
        for s in stops:
            if s.killed:
                out.problems.append(f"{s.run}: did not exit on SIGTERM (killed)")
            elif s.code != 0:
                out.problems.append(f"{s.run}: exit code {s.code}, not 0")
            elif s.seconds is not None and s.seconds > LIMITS["sigterm"]:
                out.problems.append(f"{s.run}: exited after {s.seconds:.2f}s")
        times = [s.seconds for s in stops if s.seconds is not None]
        out.seconds = max(times) if times else None
        return out

    def table(self) -> str:
        width = 14
        head = f"{'':>8}" + "".join(f"{c:>{width}}" for c in CASES)
        limits = f"{'limit':>8}" + "".join(
            f"{(f'{LIMITS[c]:g}s' if c in LIMITS else ''):>{width}}" for c in CASES
        )
        lines = [
            "client fault times (s; failover cases net of start-up, frozen since SIGSTOP, "
            "sigterm the slowest exit)",
            head,
            limits,
        ]
        for lang in LANGUAGES:
            row = f"{lang:>8}"
            for case in CASES:
                o = self.outcome(case, lang)
                mark = "FAIL" if o.problems else "ok"
                row += f"{_fmt(o.seconds) + ' ' + mark:>{width}}"
            lines.append(row)
        lines.append("")
        for lang in LANGUAGES:
            for case in CASES:
                o = self.outcome(case, lang)
                if o.raw:
                    lines.append(f"{lang:>8} {case:<12} {o.raw}")
                for p in o.problems:
                    lines.append(f"{lang:>8} {case:<12} FAIL: {p}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def write(self) -> None:
        text = self.table()
        path = self.out_dir / "client-fault-times.txt"
        path.write_text(text + "\n")
        print(f"\n{text}\n(written to {path})")


def _fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f}"


SCENARIO_OF = {"frozen": ["frozen"], "sigterm": ["first-address", "frozen"]}


def judge(report: Report, case: str, lang: str) -> None:
    o = report.outcome(case, lang)
    if o.problems:
        print(f"\n{lang} {case}: {o.raw}\n--- {lang} stderr ---\n{o.detail}")
        for scenario in SCENARIO_OF.get(case, ["first-address"]):
            for name, log in report.node_logs.get(scenario, {}).items():
                print(f"\n----- {scenario}: log of node {name} -----\n{log}")
    assert not o.problems, f"{lang} {case}: " + "; ".join(o.problems)


def sequence_problems(w: Watch, expected: list[dict[str, Any]]) -> list[str]:
    """Exactly the leaders the nodes report, as JSON lines, and still running."""
    problems = []
    if w.docs() != expected:
        problems.append(f"reported {w.docs()}, the nodes say {expected}")
    if w.early_exit():
        problems.append(w.early_exit())
    if w.garbage:
        problems.append(f"non-JSON lines on stdout: {w.garbage[:3]}")
    return problems


def record_control(
    report: Report, run: str, control: Watch, expected: list[dict[str, Any]]
) -> float | None:
    """The healthy control of a run: its start-up, and whether it reported the leader."""
    out = report.outcomes.setdefault(("startup", control.lang), Outcome())
    first = control.first_line_at()
    startup = None if first is None else first - control.started
    if startup is not None:
        out.seconds = max(out.seconds or 0.0, startup)
    out.raw += f"{', ' if out.raw else ''}{run} {_fmt(startup)}"
    out.problems += [f"{run}: {p}" for p in sequence_problems(control, expected)]
    if not out.detail and out.problems:
        out.detail = _tail(control.err)
    return startup


def first_line_case(
    report: Report,
    case: str,
    pairs: Sequence[tuple[Watch, Watch]],
    expected: list[dict[str, Any]],
    attempt_at: Callable[[Watch], float | None] = lambda w: None,
) -> None:
    """Judge a "first address is bad" run of (fault, control) watches: exactly `expected`, the
    first line within the limit. Timed from `attempt_at(w)` (when the client's attempt on the
    bad address began) where that is known; else from the start, net of the control's start-up
    (started at the same moment with healthy addresses only: the same load, the same JVM or
    build wait)."""
    limit = LIMITS[case]
    for w, control in pairs:
        startup = record_control(report, case, control, expected)
        out = Outcome(detail=_tail(w.err), problems=sequence_problems(w, expected))
        first = w.first_line_at()
        if first is None:
            out.problems.insert(0, "no leader line at all")
            report.outcomes[(case, w.lang)] = out
            continue
        raw = first - w.started
        out.raw = f"first line {raw:.2f}s after start (control {_fmt(startup)}s)"
        attempt = attempt_at(w)
        if attempt is not None:
            out.seconds = first - attempt
            out.raw += f"; {out.seconds:.2f}s after its connection was accepted"
        elif startup is not None:
            out.seconds = raw - startup
        else:  # nothing to subtract: judge the raw time (strict)
            out.seconds = raw
        if out.seconds > limit:
            out.problems.insert(0, f"first leader line {out.seconds:.2f}s late (limit {limit:g}s)")
        report.outcomes[(case, w.lang)] = out


# ----- the scenarios -------------------------------------------------------------------------


def election_path_for(name: str) -> str:
    return f"/tests/client-faults-{name}-{uuid.uuid4().hex[:8]}/election"


def start_joined(factory: NodeFactory, *specs: tuple[str, tuple[str, ...]]) -> list[NodeProcess]:
    """Start each node and wait until it joined before the next: the first one leads."""
    procs = []
    for node_id, extra in specs:
        proc = factory.start(node_id, session_timeout=2.0, extra=extra)
        wait_joined(proc)
        procs.append(proc)
    return procs


def keep_logs(report: Report, scenario: str, procs: Sequence[NodeProcess]) -> None:
    report.node_logs[scenario] = {f"{p.node_id} ({p.address})": p.log_text(40) for p in procs}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    rep = Report(tmp_path_factory.mktemp("client-faults"))
    yield rep
    rep.write()


@pytest.fixture(scope="module")
def first_address_faults(
    zk: ZooKeeperCluster, tmp_path_factory: pytest.TempPathFactory, report: Report
) -> Report:
    """One cluster (n1 leads, n2, and `full` with --max-streams 1) for the black-holed, silent
    and full first addresses (each run beside a healthy control per language), and a SIGTERM
    while connecting."""
    factory = NodeFactory(
        zk, election_path_for("first-address"), tmp_path_factory.mktemp("first-address")
    )
    watches: list[Watch] = []
    try:
        n1, n2, full = start_joined(
            factory, ("n1", ()), ("n2", ()), ("full", ("--max-streams", "1"))
        )
        healthy = [n1.address, n2.address]
        expected = [leader_doc(n1)]
        assert expected[0]["id"] == "n1" and leader_doc(full) == expected[0]
        warm = warm_up(healthy, expected[0])
        for lang, problems in warm.items():
            report.outcomes.setdefault(("startup", lang), Outcome()).problems += problems

        def run_pairs(run: str, first: Callable[[str], str]) -> list[tuple[Watch, Watch]]:
            """Per language a watch with `first(lang)` first and a control on `healthy`, all
            started at once; until each reported its first leader (or exited)."""
            pairs = [
                (Watch(lang, [first(lang), *healthy]), Watch(lang, healthy)) for lang in LANGUAGES
            ]
            faults, controls = [w for w, _ in pairs], [c for _, c in pairs]
            watches.extend(faults + controls)
            wait_for_all(controls, lambda w: bool(w.lines), 60)
            # The faulty ones get the limit (and a little) beyond the slowest control's start.
            slowest = max((t - c.started for c in controls if (t := c.first_line_at())), default=0)
            deadline = max(w.started for w in faults) + slowest + LIMITS[run] + 5
            wait_for_all(faults, lambda w: bool(w.lines), max(0.1, deadline - time.monotonic()))
            return pairs

        def stop_pairs(run: str, pairs: list[tuple[Watch, Watch]]) -> None:
            stop_watches([w for pair in pairs for w in pair])
            report.record_stops(f"watching (after a {run} first address)", [w for w, _ in pairs])
            report.record_stops("watching (control)", [c for _, c in pairs])

        # A black-holed first address.
        with BlackHole() as hole:
            pairs = run_pairs("black-holed", lambda lang: hole.address)
            assert hole.swallows_connects(), "the black hole let a connection through"
            stop_pairs("black-holed", pairs)
        first_line_case(report, "black-holed", pairs, expected)

        # A first address that accepts TCP and never speaks: one per language, to time each
        # client from its own first connection.
        silent = {lang: SilentServer() for lang in LANGUAGES}
        try:
            pairs = run_pairs("silent", lambda lang: silent[lang].address)
            stop_pairs("silent", pairs)
        finally:
            for server in silent.values():
                server.close()

        def accepted_at(w: Watch) -> float | None:
            accepted = silent[w.lang].accepted()
            return accepted[0] if accepted else None

        first_line_case(report, "silent", pairs, expected, accepted_at)

        # A full node first: its one stream slot is taken.
        blocker = Watcher(full)
        try:
            blocker.wait_for(lambda m: True, 15, "the blocker's first message")
            probe = Watcher(full)
            try:
                wait_until(probe.ended.is_set, 15, "the full node to refuse a second stream")
                assert probe.error is not None, "a second stream on a --max-streams 1 node"
                assert probe.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, probe.error
            finally:
                probe.close()
            pairs = run_pairs("full", lambda lang: full.address)
            stop_pairs("full", pairs)
            assert not blocker.ended.is_set(), f"the blocker lost the slot: {blocker.error}"
        finally:
            blocker.close()
        first_line_case(report, "full", pairs, expected)

        # SIGTERM during a pending connection: the only address is silent, the signal comes as
        # soon as the client's connection is accepted (its connect deadline has ~2 s to run).
        lone = {lang: SilentServer() for lang in LANGUAGES}
        try:
            batch = [Watch(lang, [lone[lang].address]) for lang in LANGUAGES]
            watches += batch

            def signalled() -> bool:
                for w in batch:
                    if w.term_at is None and lone[w.lang].accepted():
                        w.terminate()
                # A list: every exit is timed as it happens (all() would stop at the first).
                return all([w.reaped() for w in batch])

            with contextlib.suppress(TimeoutError):
                wait_until(signalled, 30, "every client to connect, get SIGTERM and exit")
            connected = [w for w in batch if lone[w.lang].accepted()]
            for w in batch:
                if w not in connected:
                    report.notes.append(f"{w.lang}: never connected to its only (silent) address")
            stop_watches(batch)
        finally:
            for server in lone.values():
                server.close()
        report.record_stops("connecting", connected)
        report.record_stops("not connecting", [w for w in batch if w not in connected])
        for w in batch:
            if w.lines:
                report.notes.append(f"{w.lang}: a leader line from a silent address: {w.docs()}")
        return report
    finally:
        for w in watches:
            w.kill()
        keep_logs(report, "first-address", factory.procs)
        factory.stop_all()


@pytest.fixture(scope="module")
def frozen_node(
    zk: ZooKeeperCluster, tmp_path_factory: pytest.TempPathFactory, report: Report
) -> Report:
    """b leads, c is next in line, a (watched first) is last: once the watch streams on a have
    been quiet for a while, a is SIGSTOPped, then b gets SIGTERM, so c leads while a is frozen.
    (a must not be next in line: its entry stays in ZooKeeper until its session expires and
    would hold the lead for that long.)"""
    factory = NodeFactory(zk, election_path_for("frozen"), tmp_path_factory.mktemp("frozen"))
    watches: list[Watch] = []
    try:
        b, c, a = start_joined(factory, ("b", ()), ("c", ()), ("a", ()))
        before = leader_doc(a)
        assert before["id"] == "b", before
        warm = warm_up([a.address, b.address, c.address], before)
        report.notes.extend(f"frozen: {lang}: {p}" for lang, ps in warm.items() for p in ps)

        watches = [Watch(lang, [a.address, b.address, c.address]) for lang in LANGUAGES]
        wait_for_all(watches, lambda w: bool(w.lines), 60)
        # Freeze a only once every stream has been quiet for two ping intervals and more: a
        # freeze comes after any length of quiet, and gRPC core stops pinging after two pings
        # without data unless told not to (grpc.http2.max_pings_without_data).
        quiet = 2 * BOUNDS.keepalive + 1

        def quiet_for() -> float:
            lines = [t for w in watches for t, _ in w.lines]
            return time.monotonic() - max(lines, default=0.0)

        with contextlib.suppress(TimeoutError):  # a client that keeps printing: judged below
            wait_until(lambda: quiet_for() >= quiet, 30, f"every watch quiet for {quiet:g}s")
        a.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        b.signal(signal.SIGTERM)
        after = leader_doc(c, "c")
        led_at = time.monotonic()
        wait_for_all(
            watches,
            lambda w: w.time_of(after) is not None,
            max(1.0, LIMITS["frozen"] + 5 - (time.monotonic() - frozen_at)),
        )
        assert b.wait(15) == 0, b.log_text()
        assert a.proc is not None and a.proc.poll() is None, "a must still be there, frozen"
        stop_watches(watches)
        report.record_stops("watching (after a frozen node)", watches)
        report.notes.append(
            f"frozen: c led {led_at - frozen_at:.2f}s after a was frozen and b got SIGTERM"
        )
        expected = [before, after]
        for w in watches:
            out = Outcome(detail=_tail(w.err))
            seen = w.time_of(after)
            if seen is not None:
                out.seconds = seen - frozen_at
                out.raw = f"c reported {out.seconds:.2f}s after SIGSTOP"
                if out.seconds > LIMITS["frozen"]:
                    out.problems.append(
                        f"reported the new leader {out.seconds:.2f}s after the freeze "
                        f"(limit {LIMITS['frozen']:g}s)"
                    )
            else:
                out.problems.append("never reported the new leader c")
            out.problems += sequence_problems(w, expected)
            report.outcomes[("frozen", w.lang)] = out
        return report
    finally:
        for w in watches:
            w.kill()
        keep_logs(report, "frozen", factory.procs)
        factory.stop_all()  # SIGCONTs a first


# ----- the tests: one per language and fault -------------------------------------------------


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_watch_starts_on_a_healthy_cluster(lang: str, first_address_faults: Report) -> None:
    judge(first_address_faults, "startup", lang)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_black_holed_first_address(lang: str, first_address_faults: Report) -> None:
    judge(first_address_faults, "black-holed", lang)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_silent_first_address(lang: str, first_address_faults: Report) -> None:
    judge(first_address_faults, "silent", lang)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_full_first_node(lang: str, first_address_faults: Report) -> None:
    judge(first_address_faults, "full", lang)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_frozen_watched_node(lang: str, frozen_node: Report) -> None:
    judge(frozen_node, "frozen", lang)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_sigterm_exits_zero_at_once(
    lang: str, first_address_faults: Report, frozen_node: Report
) -> None:
    judge(first_address_faults, "sigterm", lang)
