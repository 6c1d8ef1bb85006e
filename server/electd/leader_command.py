"""Runs an operator's command only while this node leads (`electd serve --leader-command`).

One process per term of leadership: started when the node becomes leader, with the term's
fencing epoch in ELECTD_EPOCH (and ELECTD_NODE_ID, ELECTD_ADDRESS); sent SIGTERM (then SIGKILL
after the grace period) as soon as the node stops leading for any reason: step-down, lost
session, local lease run out, shutdown. A command that exits on its own is not restarted until
the next term. The command should pass ELECTD_EPOCH to whatever it writes to, so that the
resource can reject a deposed leader's late writes (fencing), and may ask the node
(GetLeader on ELECTD_ADDRESS, short deadline) before each write.

Runs on the asyncio loop; fed by ViewHub.on_leading_change. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

logger = logging.getLogger(__name__)


class LeaderCommand:
    def __init__(self, command: str, node_id: str, address: str, grace: float = 5.0) -> None:
        self._command = command
        self._env = {**os.environ, "ELECTD_NODE_ID": node_id, "ELECTD_ADDRESS": address}
        self._grace = grace
        self._want: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._proc_epoch: int | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # For metrics (loop thread writes, any thread reads).
        self.starts = 0
        self.exits: dict[int, int] = {}  # exit code (negative: killed by that signal) -> count

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def on_leading(self, epoch: int | None) -> None:
        """Hub listener (loop thread): converge on running the command iff leading."""
        self._want = epoch
        task = asyncio.get_running_loop().create_task(self._converge())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._want = None
        await self._converge()

    async def _converge(self) -> None:
        async with self._lock:
            want = self._want
            if self._proc is not None and (self._proc_epoch != want or want is None):
                await self._stop()
            if want is not None and self._proc is None and self._proc_epoch != want:
                await self._start(want)

    async def _start(self, epoch: int) -> None:
        env = {**self._env, "ELECTD_EPOCH": str(epoch)}
        self._proc = await asyncio.create_subprocess_shell(
            self._command, env=env, start_new_session=True, stdin=asyncio.subprocess.DEVNULL
        )
        self._proc_epoch = epoch
        self.starts += 1
        logger.info("leader command started: pid=%d epoch=%d", self._proc.pid, epoch)
        proc = self._proc
        task = asyncio.get_running_loop().create_task(self._reap(proc, epoch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap(self, proc: asyncio.subprocess.Process, epoch: int) -> None:
        code = await proc.wait()
        self.exits[code] = self.exits.get(code, 0) + 1
        if self._proc is proc:  # exited on its own, not stopped by us
            self._proc = None
            logger.warning(
                "leader command exited with code %d during epoch %d; it is started again at the "
                "next term",
                code,
                epoch,
            )

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        epoch, self._proc_epoch = self._proc_epoch, None
        if proc is None or proc.returncode is not None:
            return
        logger.info("leader command stopping: pid=%d epoch=%s", proc.pid, epoch)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self._grace)
        except TimeoutError:
            logger.warning("leader command pid=%d ignored SIGTERM; killing it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
