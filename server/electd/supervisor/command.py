"""The leader command, bound to the term: run while the node leads, dead before its lease ends.

`CommandRunner` is a state machine the supervisor's loop drives with `step` (what the node
last reported, and the time) and `reaped` (a child's exit status). It decides from its own
copy of the lease deadline, so it does its work also when the node process is SIGKILLed,
SIGSTOPped or hung:

  * The command runs only while the node reports leadership of a term (epoch, znode) and more
    than `grace + margin` of that term's lease is left. It is started in a new session (its
    own process group), as the first process of a pid namespace of its own where the system
    allows it (process.py), with the parent-death signal set: it cannot outlive the
    supervisor.
  * The term ends when the node reports another term or none, when the node process dies, on
    shutdown, or when `grace + margin` before the lease deadline arrives without a renewal.
    Then every process of the command's tree (its group, every descendant, every orphan the
    subreaper caught) gets SIGTERM, and SIGKILL at the earlier of `grace` later and `margin`
    before the deadline: dead before the lease runs out. The term's end counts as done only
    once no process of the command is left.
  * A command that exits on its own while its term lasts is handled by the policy: restart it
    (backoff 0.1 s doubling to 10 s), step down (the supervisor restarts the node, which leaves
    the election), stay leader idle, or exit (`electd run`).
  * A spawn that fails (for example out of file descriptors) is retried with the same
    backoff, logged, and reported to the node (health, metrics).
  * Nothing is started once shutdown has begun.

Imports only the standard library and process.py; runs on the supervisor's one thread.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from electd.supervisor import process

logger = logging.getLogger("electd.supervisor")

_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 10.0
_HEALTHY_RUN = 10.0  # a command that ran this long resets the restart backoff
_POLL_WHILE_STOPPING = 0.01  # how often a stopping tree is looked at again


class Policy(enum.Enum):
    """What to do when the command exits on its own while the node still leads."""

    RESTART = "restart"
    STEP_DOWN = "step-down"
    IDLE = "idle"
    EXIT = "exit"


@dataclass(frozen=True)
class Term:
    """A term of leadership as the node last reported it."""

    epoch: int
    znode: str
    until: float  # the lease deadline on the lease clock (CLOCK_BOOTTIME)


@dataclass
class Counters:
    """What the node shows of its command (health, metrics, logs)."""

    running: bool = False
    starts: int = 0
    exits: dict[int, int] = field(default_factory=dict)
    spawn_failures: int = 0
    error: str = ""

    def doc(self) -> dict[str, object]:
        return {
            "running": self.running,
            "starts": self.starts,
            "exits": {str(k): v for k, v in self.exits.items()},
            "spawn_failures": self.spawn_failures,
            "error": self.error,
        }


class CommandRunner:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        grace: float,
        margin: float,
        policy: Policy,
        isolation: Sequence[str] | None,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self.grace = grace
        self.margin = margin
        self._policy = policy
        self._isolation = list(isolation) if isolation else []
        self.counters = Counters()
        self.changed = True  # counters changed since the node last heard them
        self._proc: subprocess.Popen[bytes] | None = None
        self._root_done = True  # the process we started has been reaped
        self._epoch: int | None = None  # the term the present (or last) process belongs to
        self._until = 0.0  # that term's latest lease deadline
        self._started_at = 0.0
        self._stopping = False
        self._kill_at = 0.0
        self._killed = False
        self._blind = False  # /proc could not be read while stopping (warned once)
        self._done_terms: set[int] = set()  # terms whose command ended and must not restart
        self._next_spawn = 0.0
        self._delay = _BACKOFF_FIRST
        self.exited_code: int | None = None  # set under Policy.EXIT / STEP_DOWN: act on it
        self.node_env: dict[str, str] = {}  # ELECTD_NODE_ID, ELECTD_ADDRESS once known
        self.node_pid: int | None = None  # the node process: not part of the command's tree

    # ----- queries --------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Some process of the command may still be alive."""
        return not self._root_done or self._stopping

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and not self._root_done else None

    def next_wakeup(self, want: Term | None, now: float) -> float:
        """Seconds until `step` has something to do by itself (inf: only news can change it)."""
        times = []
        if self._stopping:
            times.append(_POLL_WHILE_STOPPING)
        elif not self._root_done and want is not None:
            times.append(want.until - self.margin - self.grace - now)
        elif want is not None and want.epoch not in self._done_terms:
            times.append(self._next_spawn - now)
        return max(0.0, min(times)) if times else float("inf")

    # ----- the machine ----------------------------------------------------------------------

    def step(
        self, want: Term | None, now: float, shutting_down: bool, shutdown_grace: float
    ) -> None:
        if want is not None and want.epoch == self._epoch:
            self._until = max(self._until, want.until)
        if self._stopping:
            self._press_stop(now)
            return
        if not self._root_done:
            reason = self._why_end(want, now, shutting_down)
            if reason:
                grace = shutdown_grace if shutting_down and reason == "shutdown" else self.grace
                self._begin_stop(reason, now, grace)
            return
        if shutting_down or want is None or want.epoch in self._done_terms:
            return
        if want.until - now <= self.margin + self.grace or now < self._next_spawn:
            return
        self._spawn(want, now)

    def _why_end(self, want: Term | None, now: float, shutting_down: bool) -> str:
        if shutting_down:
            return "shutdown"
        if want is None:
            return "the node no longer leads"
        if want.epoch != self._epoch:
            return f"a new term (epoch {want.epoch})"
        if now >= self._until - self.margin - self.grace:
            return "its lease runs out (no renewal from the node)"
        return ""

    def _spawn(self, term: Term, now: float) -> None:
        env = {
            **self._env,
            **self.node_env,
            "ELECTD_EPOCH": str(term.epoch),
            "ELECTD_ZNODE": term.znode,
            "ELECTD_LEASE_DEADLINE_BOOTTIME": f"{term.until:.6f}",
        }
        try:
            self._proc = subprocess.Popen(
                [*self._isolation, *self._argv],
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=process.die_with_parent,
            )
        except OSError as exc:
            self.counters.spawn_failures += 1
            self.counters.error = f"cannot start the leader command: {exc}"
            self.changed = True
            self._next_spawn = now + self._delay
            logger.error(
                "%s (epoch %d); retrying in %.1fs", self.counters.error, term.epoch, self._delay
            )
            self._delay = min(self._delay * 2, _BACKOFF_MAX)
            return
        self._root_done = False
        self._epoch, self._until, self._started_at = term.epoch, term.until, now
        self._killed = False
        self.counters.running = True
        self.counters.starts += 1
        self.counters.error = ""
        self.changed = True
        logger.info(
            "leader command started: pid=%d epoch=%d znode=%s",
            self._proc.pid,
            term.epoch,
            term.znode,
        )

    def _begin_stop(self, reason: str, now: float, grace: float) -> None:
        self._stopping = True
        self._kill_at = now + grace
        self._killed = False
        logger.info(
            "leader command stopping (%s): pid=%s epoch=%s; SIGTERM, SIGKILL after %.2fs "
            "(or %.2fs before the lease deadline, whichever comes first)",
            reason,
            self.pid(),
            self._epoch,
            grace,
            self.margin,
        )
        self._signal_tree(signal.SIGTERM)
        self._press_stop(now)

    def _press_stop(self, now: float) -> None:
        """While stopping: SIGKILL when it is time, and again at anything still alive (a process
        may fork between the listing and the kill); done when nothing is left."""
        try:
            left = self._tree()
        except OSError as exc:  # /proc unreadable (out of descriptors?): assume the worst
            if not self._blind:
                logger.warning("cannot list the leader command's processes: %s", exc)
                self._blind = True
            if self._proc is not None and now >= min(self._kill_at, self._until - self.margin):
                process.signal_group(self._proc.pid, signal.SIGKILL)
            if not (self._root_done and self._isolation):
                return
            # In a pid namespace the first process exits only after every other one in it has
            # (the kernel kills and reaps them first): the reaped root proves the tree is gone.
            left = []
        self._blind = False
        if not left and self._root_done:
            self._stopping = False
            self.counters.running = False
            self.changed = True
            logger.info("leader command of epoch %s ended: no process left", self._epoch)
            return
        if now >= min(self._kill_at, self._until - self.margin):
            if not self._killed:
                logger.warning(
                    "leader command of epoch %s still running (%d processes); SIGKILL",
                    self._epoch,
                    len(left),
                )
                self._killed = True
            self._signal_tree(signal.SIGKILL, left)

    def reaped(self, pid: int, code: int, now: float) -> bool:
        """A child exited with `code` (negative: killed by that signal); True if it was ours."""
        if self._proc is None or pid != self._proc.pid or self._root_done:
            return False
        self._root_done = True
        self._proc.returncode = code  # reaped by the supervisor: Popen must not wait for it
        self.counters.exits[code] = self.counters.exits.get(code, 0) + 1
        self.changed = True
        if self._stopping:
            return True
        ran = now - self._started_at
        logger.warning(
            "leader command exited on its own with code %d after %.1fs (epoch %s); policy: %s",
            code,
            ran,
            self._epoch,
            self._policy.value,
        )
        if ran >= _HEALTHY_RUN:
            self._delay = _BACKOFF_FIRST
        if self._policy is Policy.RESTART:
            self._next_spawn = now + self._delay
            self._delay = min(self._delay * 2, _BACKOFF_MAX)
        elif self._epoch is not None:
            self._done_terms.add(self._epoch)
            if self._policy in (Policy.EXIT, Policy.STEP_DOWN):
                self.exited_code = code
        # What it left behind belongs to the ended process: take it down too.
        self._begin_stop("the command exited", now, self.grace)
        return True

    # ----- the tree -------------------------------------------------------------------------

    def _tree(self) -> list[int]:
        """Every live process of the command: the process we started and its descendants, and
        the orphans the subreaper adopted (anything below the supervisor but the node)."""
        me = os.getpid()
        node = set(process.descendants([self.node_pid])) if self.node_pid else set()
        return [p for p in process.descendants([me]) if p != me and p not in node]

    def forward(self, sig: int) -> None:
        """Pass an operator's signal (SIGHUP) on to the command: to tini, which hands it to the
        command's group (unshare itself would die of it), or to the command's group."""
        if self._proc is None or self._root_done:
            return
        if not self._isolation:
            process.signal_group(self._proc.pid, sig)
            return
        try:
            process.signal_all(process.children(self._proc.pid), sig)
        except OSError as exc:
            logger.warning("cannot forward signal %d to the leader command: %s", sig, exc)

    def _signal_tree(self, sig: int, pids: Sequence[int] | None = None) -> None:
        if self._proc is not None:
            process.signal_group(self._proc.pid, sig)
        if pids is None:
            try:
                pids = self._tree()
            except OSError as exc:
                logger.warning("cannot list the leader command's processes: %s", exc)
                return
        process.signal_all(pids, sig)
