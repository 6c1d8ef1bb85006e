"""The supervisor: the process `electd serve` and `electd run` start as, parent of the node
process and (a child subreaper) of the leader command.

    electd serve (supervisor) ── pipe ──  node process (ZooKeeper session, engine, gRPC)
          └── leader command (own session, own pid namespace where allowed, dies with us)

It owns three things the node process cannot do for itself:
  * the leader command, bound to the term (command.py): decided from the supervisor's own copy
    of the lease deadline, renewed by the node over the pipe, so a SIGKILLed, OOM-killed,
    SIGSTOPped or hung node cannot keep its command running into a successor's term;
  * crash failover in milliseconds: when the node process dies, make sure the command is dead,
    then end the dead node's ZooKeeper session itself (zk/session.py), so its ephemeral entry
    goes at once instead of after the session timeout; then start the node again with backoff.
    Safe because the dead process cannot act any more (it was reaped) and the command, the only
    other actor of the term, is dead too. If the supervisor dies as well (or the machine),
    the session timeout applies as before;
  * signals: SIGTERM and SIGINT end the command first, then the node (which then leaves the
    election: leadership is released only after the command has exited); SIGHUP goes to the
    command. Nothing is started once shutdown has begun.

Imports neither grpc nor the election engine (kazoo only through zk/session.py, to close a
session; loaded at start, 47 ms and 2 MB, so that the first crash does not pay for it).
One thread: a selector loop over the pipe and a signal wakeup socket, with timers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from electd.clock import now as lease_clock
from electd.supervisor import process, protocol
from electd.supervisor.command import CommandRunner, Policy, Term
from electd.zk.session import close_session  # loaded now: a crash must not wait for kazoo

logger = logging.getLogger("electd.supervisor")

_RESTART_FIRST = 0.1
_RESTART_MAX = 10.0
_HEALTHY_NODE = 30.0  # a node that served this long resets the restart backoff
_STARTUP_CODES = (1, 2)  # the node's "cannot start" (1) and "bad configuration" (2)


@dataclass(frozen=True)
class Plan:
    """What to supervise, decided (and validated) by the CLI."""

    node_argv: Sequence[str]  # the node process's command line
    zk_hosts: str  # the connect string (chroot included) to close a dead node's session on
    command: Sequence[str] | None  # the leader command's argv, or None
    grace: float  # SIGTERM -> SIGKILL of the leader command
    margin: float  # the command is dead this long before the lease deadline
    policy: Policy
    shutdown_grace: float  # how long the command may take to stop on shutdown
    session_timeout: float
    # The node's ZooKeeper TLS and credentials settings (zk/security.py), to reach the secure
    # port when closing a dead node's session; file paths only, the files are read then.
    zk_security: Any = None


class Supervisor:
    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._node: subprocess.Popen[bytes] | None = None
        self._link: socket.socket | None = None
        self._node_ready = False
        self._node_ready_at = 0.0
        self._ever_ready = False
        self._restart_at: float | None = None
        self._restart_delay = _RESTART_FIRST
        self._state: dict[str, object] = {}
        self._want: Term | None = None
        self._timeout = plan.session_timeout
        self._shutting_down = False
        self._node_stop_sent = False
        self._node_asked_stop = False  # the node is shutting down (until it exits)
        self._stopped_sent = False
        self._final_code: int | None = None
        self._stepping_down = False
        self._exit_code: int | None = None
        self._pending_close: tuple[int, bytes] | None = None
        # After a crash: the dead session is closed only once the leases the node granted to
        # remote candidates have run out (C4); lease-clock time.
        self._close_after = 0.0
        self._cmd: CommandRunner | None = None
        if plan.command is not None:
            isolation = process.isolation_prefix()
            logger.info(
                "leader command isolation: %s",
                "a pid namespace of its own (no process of it outlives the supervisor)"
                if isolation
                else "its own process group, supervisor as subreaper (no pid namespace here: "
                "a descendant that leaves the group survives a SIGKILL of the supervisor)",
            )
            self._cmd = CommandRunner(
                plan.command, os.environ, plan.grace, plan.margin, plan.policy, isolation
            )

    # ----- main loop ------------------------------------------------------------------------

    def run(self) -> int:
        process.set_child_subreaper()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno())
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _noop)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "signals")
        self._start_node()
        while self._exit_code is None:
            timeout = self._next_wakeup()
            for key, _ in self._sel.select(None if timeout == float("inf") else timeout):
                if key.data == "signals":
                    self._on_signals()
                else:
                    self._on_message()
            self._reap()
            self._step()
        return self._exit_code

    def _next_wakeup(self) -> float:
        now = lease_clock()
        times = [float("inf")]
        if self._cmd is not None:
            times.append(self._cmd.next_wakeup(self._want, now))
        if self._restart_at is not None:
            times.append(max(0.0, self._restart_at - now))
        if self._pending_close is not None:
            times.append(max(0.0, self._close_after - now))
        return min(times)

    def _step(self) -> None:
        now = lease_clock()
        cmd = self._cmd
        if cmd is not None:
            want = None if self._node is None or self._stepping_down else self._want
            stopping = self._shutting_down or self._node_asked_stop
            cmd.step(want, now, stopping, self._plan.shutdown_grace)
            if cmd.changed:
                cmd.changed = False
                self._send("command", **cmd.counters.doc())
            if cmd.exited_code is not None and not self._stepping_down:
                self._on_command_done(cmd.exited_code)
        command_dead = cmd is None or not cmd.active
        # (the node may have been restarted already while the close waits for candidates'
        # leases: the new node has a session of its own)
        if self._pending_close is not None and command_dead and now >= self._close_after:
            self._close_dead_session()
        if command_dead and self._node_asked_stop and not self._stopped_sent:
            self._stopped_sent = True
            self._send("stopped")
        if self._shutting_down and command_dead and not self._node_stop_sent:
            self._node_stop_sent = True
            if self._node is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._node.send_signal(signal.SIGTERM)
        if self._shutting_down and self._node is None and command_dead:
            self._exit_code = self._final_code if self._final_code is not None else 0
        if self._restart_at is not None and now >= self._restart_at and command_dead:
            self._restart_at = None
            if not self._shutting_down:
                self._start_node()

    # ----- the node process -----------------------------------------------------------------

    def _start_node(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, protocol.ENV_FD: str(theirs.fileno())}
        try:
            self._node = subprocess.Popen(
                list(self._plan.node_argv),
                env=env,
                pass_fds=(theirs.fileno(),),
                preexec_fn=process.die_with_parent,
            )
        except OSError as exc:
            ours.close()
            logger.error("cannot start the node process: %s; retrying", exc)
            self._schedule_restart()
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._link = ours
        self._sel.register(ours, selectors.EVENT_READ, "node")
        self._node_ready = False
        self._node_asked_stop = self._stopped_sent = False
        self._want = None
        self._state = {}
        if self._cmd is not None:
            self._cmd.node_pid = self._node.pid
        logger.info("node process started: pid=%d", self._node.pid)

    def _on_node_exit(self, code: int) -> None:
        assert self._node is not None
        pid = self._node.pid
        self._node.returncode = code
        self._node = None
        if self._link is not None:
            self._sel.unregister(self._link)
            self._link.close()
            self._link = None
        self._want = None
        session = self._state.get("session")
        password = self._state.get("password")
        if isinstance(session, int) and isinstance(password, str) and code != 0:
            self._pending_close = (session, bytes.fromhex(password))
            self._close_after = self._grants_end()
        if self._cmd is not None:
            self._cmd.node_pid = None
        if self._shutting_down or self._stepping_down:
            if self._stepping_down and not self._shutting_down:
                self._stepping_down = False
                logger.info("node process pid=%d left the election (step-down); rejoining", pid)
                self._restart_at = lease_clock()
                return
            if self._final_code is None:  # a signal death becomes 128+N, as a shell reports it
                self._final_code = code if code >= 0 else 128 - code
            return
        if code == 0:  # shut down by a signal sent to the node itself
            logger.info("node process pid=%d exited; the supervisor stops too", pid)
            self._begin_shutdown(None)
            self._final_code = 0
            return
        if not self._ever_ready and code in _STARTUP_CODES:
            logger.error("node process could not start (exit code %d)", code)
            self._final_code = code
            self._begin_shutdown(None)
            return
        what = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        logger.error(
            "node process pid=%d %s; %s",
            pid,
            what,
            "ending its ZooKeeper session" if self._pending_close else "it had no session yet",
        )
        self._schedule_restart()

    def _schedule_restart(self) -> None:
        now = lease_clock()
        if self._node_ready_at and now - self._node_ready_at >= _HEALTHY_NODE:
            self._restart_delay = _RESTART_FIRST
        self._restart_at = now + self._restart_delay
        logger.info("node process restarts in %.1fs", self._restart_delay)
        self._restart_delay = min(self._restart_delay * 2, _RESTART_MAX)

    def _grants_end(self) -> float:
        """When the last lease the dead node granted to a remote candidate ends (lease clock;
        never later than one session timeout from now: the session would expire by then
        anyway, and a garbled figure must not keep it open longer)."""
        until = self._state.get("grants_until")
        now = lease_clock()
        if not isinstance(until, (int, float)) or until <= now:
            return 0.0
        wait = min(float(until), now + self._timeout)
        logger.info(
            "the dead node granted candidates leases until %.0f ms from now: its session is "
            "closed after that (RELIABILITY.md, C4)",
            (wait - now) * 1000,
        )
        return wait

    def _close_dead_session(self) -> None:
        assert self._pending_close is not None
        session, password = self._pending_close
        self._pending_close = None
        began = lease_clock()
        closed = close_session(
            self._plan.zk_hosts,
            session,
            password,
            min(2.0, self._timeout / 2),
            security=self._plan.zk_security,
        )
        if closed:
            logger.info(
                "closed the dead node's ZooKeeper session 0x%x in %.0f ms: its entry is gone",
                session,
                (lease_clock() - began) * 1000,
            )

    def _on_message(self) -> None:
        link = self._link
        if link is None:
            return
        while True:
            try:
                data = link.recv(protocol.MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the node's end closed: it is exiting; SIGCHLD follows
                self._sel.unregister(link)
                link.close()
                self._link = None
                return
            message = protocol.decode(data)
            if message is None:
                logger.warning("ignored a malformed message from the node process")
                continue
            self._on_node_message(*message)

    def _on_node_message(self, kind: str, doc: dict[str, object]) -> None:
        if kind == "state":
            self._state = doc
            epoch, znode, until = doc.get("epoch"), doc.get("znode"), doc.get("until")
            timeout = doc.get("timeout")
            if isinstance(timeout, (int, float)) and timeout > 0:
                self._timeout = float(timeout)
            term_session, lease_session = doc.get("term_session"), doc.get("lease_session")
            if (
                isinstance(epoch, int)
                and isinstance(znode, str)
                and isinstance(until, (int, float))
                and isinstance(term_session, int)
                and term_session != 0
                and term_session == lease_session
            ):
                self._want = Term(epoch, znode, float(until))
            else:
                self._want = None
        elif kind == "ready":
            self._node_ready = self._ever_ready = True
            self._node_ready_at = lease_clock()
            if self._cmd is not None:
                self._cmd.node_env = {
                    "ELECTD_NODE_ID": str(doc.get("node_id", "")),
                    "ELECTD_ADDRESS": str(doc.get("address", "")),
                }
                self._cmd.changed = True
        elif kind == "stopping":
            self._node_asked_stop = True
        else:
            logger.warning("ignored an unknown message %r from the node process", kind)

    def _send(self, kind: str, **fields: object) -> None:
        if self._link is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            self._link.send(protocol.encode(kind, **fields))

    # ----- signals and children -------------------------------------------------------------

    def _on_signals(self) -> None:
        try:
            data = self._wake_r.recv(256)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._begin_shutdown(signal.Signals(signum))
            elif signum == signal.SIGHUP and self._cmd is not None:
                pid = self._cmd.pid()
                if pid is not None:
                    logger.info("forwarding SIGHUP to the leader command pid=%d", pid)
                    self._cmd.forward(signal.SIGHUP)

    def _begin_shutdown(self, sig: signal.Signals | None) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        self._restart_at = None
        if sig is not None:
            logger.info("supervisor shutting down (%s): the command first, then the node", sig.name)

    def _on_command_done(self, code: int) -> None:
        """Policy exit / step-down, once the command exited on its own."""
        assert self._cmd is not None
        self._cmd.exited_code = None
        if self._plan.policy is Policy.EXIT:
            self._final_code = code if code >= 0 else 128 - code
            logger.info("the command exited (code %d): electd stops", code)
            self._begin_shutdown(None)
        elif self._plan.policy is Policy.STEP_DOWN and self._node is not None:
            logger.info("the command exited (code %d): stepping down", code)
            self._stepping_down = True
            with contextlib.suppress(ProcessLookupError):
                self._node.send_signal(signal.SIGTERM)

    def _reap(self) -> None:
        now = lease_clock()
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if self._node is not None and pid == self._node.pid:
                self._on_node_exit(code)
            elif self._cmd is not None:
                self._cmd.reaped(pid, code, now)


def _noop(signum: int, frame: object) -> None:
    """Signals are handled by the loop (set_wakeup_fd); the handler only has to exist."""


def supervise(plan: Plan) -> int:
    """Run until shutdown; the exit code of `electd serve` / `electd run`."""
    try:
        return Supervisor(plan).run()
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled by the loop
        return 130
    finally:
        sys.stdout.flush()
