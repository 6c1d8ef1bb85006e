"""The HTTP listener (`--http-listen`): probes for load balancers and orchestrators, a JSON
view of the election for `curl` users, and `/metrics`. aiohttp on the node's asyncio loop.

  GET|HEAD /leader    200 on the node that leads (and vouches for it now), 503 elsewhere;
                      JSON {"node", "is_leader", "leader": {...} | null, "epoch", "reason"}
                      (Patroni's convention, what HAProxy's `option httpchk` routes on)
  GET|HEAD /healthz   liveness: 200 while the process and its loop run
  GET|HEAD /readyz    readiness: 200 with a live session, joined, within the lease, and a
                      leader command that can be started (if any); else 503 with the reason
  GET|HEAD /cluster   the election from this node: leader, epoch, members in election order
                      (503 while the node cannot vouch)
  GET      /metrics   Prometheus text format
The JSON bodies carry the same facts as the gRPC API, nothing about znodes beyond their names.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from electd.engine import LeaderInfo, MemberView
from electd.ops.metrics import Metrics
from electd.ops.status import NodeStatus

logger = logging.getLogger(__name__)

MEMBERS_TIMEOUT = 10.0


class HttpBindError(Exception):
    """The --http-listen address cannot be bound."""


class OpsServer:
    def __init__(self, status: NodeStatus, metrics: Metrics) -> None:
        self._status = status
        self._metrics = metrics
        app = web.Application()
        for path, handler in (
            ("/leader", self._leader),
            ("/healthz", self._healthz),
            ("/readyz", self._readyz),
            ("/cluster", self._cluster),
        ):
            app.router.add_get(path, handler)  # aiohttp answers HEAD for GET routes
        app.router.add_get("/metrics", self._scrape)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        """Bind and serve; raises HttpBindError naming the address."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=False)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise HttpBindError(
                f"cannot listen for HTTP on {host}:{port}: {exc.strerror}"
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        await self._runner.cleanup()

    # ----- handlers (loop thread) ----------------------------------------------------------

    async def _leader(self, request: web.Request) -> web.Response:
        st = self._status
        now = st.now()
        view = st.view()
        info = view.vouched(now)
        leads = view.is_leader(now)
        body = {
            "node": st.node_id,
            "is_leader": leads,
            "leader": _leader_json(info),
            "epoch": info.epoch if info else 0,
            "reason": "" if info else view.why_unknown(now),
        }
        return web.json_response(body, status=200 if leads else 503)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"node": self._status.node_id, "alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        st = self._status
        now = st.now()
        view = st.view()
        serving = view.serving(now)
        command_error = st.command().error
        ready = serving and not command_error
        body = {
            "node": st.node_id,
            "ready": ready,
            "role": view.role.value,
            "reason": "" if ready else command_error or view.why_unknown(now),
        }
        return web.json_response(body, status=200 if ready else 503)

    async def _cluster(self, request: web.Request) -> web.Response:
        st = self._status
        view = st.view()
        info = view.vouched(st.now())
        if info is None:
            reason = view.why_unknown(st.now())
            return web.json_response({"node": st.node_id, "reason": reason}, status=503)
        loop = asyncio.get_running_loop()
        try:
            members = await asyncio.wait_for(
                loop.run_in_executor(None, st.members), MEMBERS_TIMEOUT
            )
        except Exception as exc:  # noqa: BLE001 - ZooKeeper trouble while listing: say so
            logger.info("/cluster: could not list members: %s", exc)
            return web.json_response(
                {"node": st.node_id, "reason": f"could not list members: {exc}"}, status=503
            )
        body = {
            "node": st.node_id,
            "leader": _leader_json(info),
            "epoch": info.epoch,
            "members": [_member_json(m) for m in members],
        }
        return web.json_response(body)

    async def _scrape(self, request: web.Request) -> web.Response:
        # On a worker thread: the collector reads the member list from ZooKeeper.
        loop = asyncio.get_running_loop()
        payload = await loop.run_in_executor(None, generate_latest, self._metrics.registry)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _leader_json(info: LeaderInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    rec = info.member.record
    return {"id": rec.id, "address": rec.address, "epoch": info.epoch, "znode": info.member.znode}


def _member_json(view: MemberView) -> dict[str, Any]:
    m = view.member
    doc: dict[str, Any] = {
        "id": m.record.id,
        "address": m.record.address,
        "znode": m.znode,
        "sequence": m.sequence,
        "is_leader": view.is_leader,
        "watches": view.watches,
        "labels": dict(m.record.labels),
    }
    if m.record_error:
        doc["record_error"] = m.record_error
    return doc
