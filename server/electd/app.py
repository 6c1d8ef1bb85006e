"""One electd node process: wires ZooKeeper -> election engine -> gRPC, handles signals, and
shuts down gracefully (the candidates of named elections leave first, C3; then the node leaves
its own election so the successor takes over at once; then the streams end and the server
stops with a grace period).

One ZooKeeper session (`ZkSession`) and one `Lease` serve the node's own election (its engine
on `ZkStore(session, election path)`) and the registry of named elections (`Elections`: the
candidates' entries and the observers), so one close of the session ends them all.

Runs under the supervisor (electd/supervisor), which runs the leader command: the node tells it
over the pipe what it leads, its lease deadline after every renewal and its session; on
shutdown it asks the supervisor to end the command's term before it leaves the election.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import TYPE_CHECKING, Any

from electd import __version__
from electd.config import ConfigError, NodeConfig
from electd.elections import Elections
from electd.engine import CoordinatorUnavailable, ElectionEngine, Lease, NodeRecord
from electd.engine.clock import now as lease_clock
from electd.ops.status import CommandStatus, NodeStatus
from electd.rpc.frontend import BindError, Frontend
from electd.supervisor.link import SupervisorLink
from electd.zk import ZkSession, ZkStore
from electd.zk.security import client_options as zk_client_options

if TYPE_CHECKING:  # imported when --http-listen asks for them: aiohttp and the Prometheus
    # client are a third of a node's start-up imports
    from electd.ops.metrics import Metrics

logger = logging.getLogger(__name__)


class StartupError(Exception):
    """The node cannot start; the message is meant for the operator as is."""


async def run_node(cfg: NodeConfig, has_command: bool = False) -> None:
    """Run a node until SIGTERM or SIGINT. Raises StartupError for bad config or environment.
    `has_command`: the supervisor runs a leader command, whose term must end before the node
    leaves the election."""
    loop = asyncio.get_running_loop()
    metrics_sink = _MetricsSink()
    try:
        rpc = Frontend(str(cfg.listen), observe=metrics_sink, security=cfg)
    except BindError as exc:
        raise StartupError(str(exc)) from None
    port = rpc.port
    advertise = cfg.advertised(port)
    node_id = cfg.resolved_node_id(port)
    record = NodeRecord(node_id, str(advertise), cfg.labels, __version__)

    session = ZkSession(
        cfg.zk.hosts,
        cfg.session_timeout,
        cfg.connect_timeout,
        client_options=zk_client_options(cfg),
        sync_path=cfg.zk_path,
    )
    # The node's store starts the session and closes it with itself (after the registry).
    store = ZkStore(session, cfg.zk_path, owns_session=True)
    lease = Lease(session)
    elections = Elections(
        session,
        lease,
        cfg.elections_zk_root,
        node_id,
        __version__,
        cfg.effective_candidate_lease(),
        cfg.max_candidates,
    )
    rpc.attach(
        node_id,
        lambda: engine.members(),
        cfg.max_streams,
        lambda: engine.view(),
        elections=elections,
        candidate_timeout=cfg.candidate_timeout,
    )
    engine = ElectionEngine(store, record, rpc.publish, lease=lease, cluster_id=cfg.cluster_id)
    link = SupervisorLink.from_env()
    if has_command and link is None:
        raise StartupError(
            "a leader command needs the supervisor: start the node with electd serve"
        )
    if link is not None:
        sup = link
        link.attach(loop)

        def renewed(until: float, timeout: float, session_id: int) -> None:  # engine thread
            sup.session(store.session_credentials())
            sup.lease(until, timeout, session_id)

        def leading(epoch: int | None) -> None:  # loop thread
            view = engine.view()
            leader = view.leader
            owner = leader.member.session_id if leader and leader.epoch == epoch else 0
            sup.leading(epoch, view.own_znode, owner)

        engine.lease().add_listener(renewed)
        rpc.on_leading_change(leading)
        # ---- C4: the supervisor's copy of the latest lease granted to a remote candidate ----
        # (sent by the registry before the candidate hears of the grant; the supervisor closes
        # a crashed node's session only once it has run out).
        elections.add_grant_listener(link.grants)
    has_command = has_command and link is not None
    ops = None
    if cfg.http_listen is not None:
        from electd.ops.http import HttpBindError, OpsServer
        from electd.ops.metrics import Metrics

        status = _node_status(node_id, engine, rpc, link if has_command else None)
        metrics = Metrics(status, rpc.campaign_counters)
        metrics_sink.metrics = metrics
        ops = OpsServer(status, metrics)
        try:
            await ops.start(cfg.http_listen.host, cfg.http_listen.port)
        except HttpBindError as exc:
            raise StartupError(str(exc)) from None

    stop = asyncio.Event()
    left = asyncio.Event()
    elections_started = False
    leaving: asyncio.Task[None] | None = None

    def leave() -> None:
        def done() -> None:
            rpc.hub.cross(left.set)

        engine.leave(done)

    async def close_elections() -> None:
        """Every candidate gets Lost(SHUTDOWN) and leaves (C3: a leader's entry once it
        acknowledged or its last grant ran out), the observers stop. Whatever the registry
        managed, no candidate's entry may go with the session (closed after this) before the
        last lease granted has run out."""
        if not elections_started:
            return
        limit = cfg.effective_candidate_lease() + 2 * cfg.session_timeout
        try:
            await asyncio.wait_for(
                loop.run_in_executor(None, elections.close, limit), limit + cfg.session_timeout
            )
        except TimeoutError:
            logger.warning(
                "node=%s candidates did not all leave within %.1fs; going on", node_id, limit
            )
        except Exception:
            logger.exception("node=%s bug: closing the named elections failed", node_id)
        while (wait := elections.granted_until() - lease_clock()) > 0:
            await asyncio.sleep(wait)

    async def candidates_then_leave() -> None:
        try:
            await close_elections()
        finally:
            leave()

    def begin_leaving() -> asyncio.Task[None]:
        nonlocal leaving
        if leaving is None:
            leaving = loop.create_task(candidates_then_leave())
        return leaving

    def on_signal(sig: signal.Signals) -> None:
        """Runs on the loop at once: stop vouching and (with no leader command whose work must
        end first) start leaving: the candidates of named elections first, then the node's
        own election; the successor's failover time starts at this signal."""
        if stop.is_set():
            return
        stop.set()
        rpc.retire()
        if not has_command:
            begin_leaving()
        logger.info("node=%s shutting down (%s)", node_id, sig.name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    await rpc.start()
    logger.info(
        "node=%s serving gRPC on %s:%d (advertised as %s); connecting to ZooKeeper %s, "
        "election path %s",
        node_id,
        cfg.listen.host,
        port,
        advertise,
        cfg.zk,
        cfg.election_path,
    )
    if ops is not None and cfg.http_listen is not None:
        logger.info("node=%s serving HTTP on %s:%d", node_id, cfg.http_listen.host, ops.port)
    try:
        start: asyncio.Future[Any] = asyncio.ensure_future(loop.run_in_executor(None, store.start))
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([start, stopped], return_when=asyncio.FIRST_COMPLETED)
        if start not in done:
            logger.info("node=%s stopped before ZooKeeper answered", node_id)
            return
        try:
            start.result()
        except CoordinatorUnavailable as exc:
            raise StartupError(str(exc)) from None
        if link is not None:
            link.session(store.session_credentials())
        await loop.run_in_executor(None, elections.start)
        elections_started = True
        engine.start()
        if link is not None:
            link.ready(node_id, str(advertise))
        # What exists now lives as long as the process: move it out of the cyclic GC's way
        # (full collections would otherwise walk it again and again while streams churn).
        gc.collect()
        gc.freeze()
        await stop.wait()
        # Order matters: stop vouching (the successor may lead the moment our znode goes), stop
        # the leader's work, let the candidates go (C3), leave the election as early as
        # possible (the successor's failover time starts here), and only then the rest of the
        # shutdown. Without a leader command `on_signal` has started all but the second.
        rpc.retire()
        if has_command and link is not None:
            await link.stop_command(cfg.shutdown_grace + 2.0)
        await begin_leaving()
        # Idle until ZooKeeper has the delete: the loop thread's own shutdown work would
        # otherwise hold the GIL while kazoo's thread waits to send it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(left.wait(), cfg.session_timeout)
        await loop.run_in_executor(None, engine.stop)
        await loop.run_in_executor(None, session.close)  # closed with the store; in any case
        await rpc.drain()
    finally:
        rpc.end_streams()
        await rpc.stop(cfg.shutdown_grace)
        if ops is not None:
            await ops.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    logger.info("node=%s stopped", node_id)


class _MetricsSink:
    """The gRPC interceptor's callback, bound to the metrics once they exist (they read the
    engine, which is made after the gRPC port is bound)."""

    def __init__(self) -> None:
        self.metrics: Metrics | None = None

    def __call__(self, method: str, code: str, seconds: float | None) -> None:
        if self.metrics is not None:
            self.metrics.observe_rpc(method, code, seconds)


def _node_status(
    node_id: str, engine: ElectionEngine, rpc: Frontend, link: SupervisorLink | None
) -> NodeStatus:
    def command() -> CommandStatus:
        if link is None:
            return CommandStatus(False, False, 0, {})
        doc = link.command
        exits = doc.get("exits") or {}
        return CommandStatus(
            True,
            bool(doc.get("running")),
            int(doc.get("starts") or 0),
            {int(k): int(v) for k, v in exits.items()},
            int(doc.get("spawn_failures") or 0),
            str(doc.get("error") or ""),
        )

    lease = engine.lease()
    return NodeStatus(
        node_id=node_id,
        election="node",
        view=engine.view,
        stats=lambda: engine.stats,
        lease_remaining=lease.remaining,
        since_zookeeper=lease.since_answer,
        members=engine.members,
        streams=lambda: rpc.open_streams,
        command=command,
    )


__all__ = ["ConfigError", "StartupError", "run_node"]
