"""Benchmark 9, election as a service: named elections whose candidates are gRPC clients holding
a `Campaign` stream to an electd node (the node's one ZooKeeper session holds their entries).

(a) Resign handover. A 3-node electd cluster, one named election, 3 candidates, each holding its
    stream to a different node and pinging. Per trial the leading candidate sends `resign` on
    its stream (t0 right before the write) -> the next candidate's stream says `leading`, and
    -> a WatchLeader(election) stream on the third node (the node of neither) shows the new
    epoch. A fresh candidate then joins at the back on the resigned one's node, so there are
    always 3, one per node. Beside it, in the same run: the ZooKeeper floor (bench/zkbase.py:
    session A deletes a znode -> session B's watch fires) and etcd's Resign -> the next
    Campaign returns / -> an Observe stream has it (bench/etcd.py `handover`).
(b) Scale. N named elections x 3 candidates on the same cluster (1,000; `--quick`: 20): the
    time to create them all (with a progress line) and each candidate's start -> first answer;
    node RSS per candidate (the three node processes before / after, divided by the
    candidates) beside the harness's own; node CPU while they all ping; the handover of (a) at
    the 1st election while it is the only one, and at the N-th (and again the 1st) with all of
    them live; ZooKeeper requests per handover and per join, from ZooKeeper's own counters (the
    `mntr` four-letter word, which electd.devcluster's zoo.cfg allows), less the background
    rate measured idle just before.

The client side is raw generated stubs (electd.v1) on grpc.aio, all streams in this process on
one event loop; every time is `time.perf_counter()` of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from bench import etcd, nodes, procs, zkbase
from bench.context import ROOT, Context
from bench.etcdpeer import EtcdMissing, EtcdServer
from bench.progress import Progress
from bench.report import Target
from bench.watch import ToolMissing
from electd.devcluster.zookeeper import four_letter
from electd.v1 import election_service_pb2 as pb
from electd.v1 import election_service_pb2_grpc as pb_grpc

NAME = "campaign"
WARMUP = 2
REST_S = 0.2  # pause between trials (as benchmark 1)
SETTLE_S = 0.3  # after a handover / a join, before ZooKeeper's counters are read again
BATCH = 50  # elections created concurrently during (b)
STREAMS_PER_CONN = 100  # as the fan-out benchmark
HANDOVER = "3 candidates"


# ----- the client side ---------------------------------------------------------------------------


class StreamFailed(RuntimeError):
    pass


@dataclass
class Seen:
    at: float  # perf_counter() when the message was read
    epoch: int


class Candidate:
    """One candidate: a Campaign stream to one node; it pings every `ping_s` (random phase),
    acknowledges a Lost it did not cause, and records when it first read each answer."""

    def __init__(self, stub: Any, node: str, election: str, ident: str, ping_s: float) -> None:
        self.stub, self.node, self.election, self.id, self.ping_s = (
            stub,
            node,
            election,
            ident,
            ping_s,
        )
        self.call: Any = None
        self.started = 0.0
        self.answered = 0.0  # the first answer (queued or leading)
        self.leading: Seen | None = None  # the first Leading of the current term
        self.position = -1  # the last CampaignQueued.position
        self.lost: list[tuple[Seen, int]] = []  # (when, epoch), reason
        self.changed = asyncio.Event()  # set on every message and at the stream's end
        self.ended = False
        self.code: Any = None
        self.error: str = ""
        self.resigning = False
        self._closing = False
        self._nonce = 0
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"candidate {self.id}@{self.node}"

    async def start(self) -> None:
        self.call = self.stub.Campaign()
        self.started = time.perf_counter()
        start = pb.CampaignStart(election=self.election, candidate_id=self.id)
        async with self._lock:
            await self.call.write(pb.CampaignRequest(start=start))
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._ping())]

    async def _write(self, request: Any) -> None:
        async with self._lock:
            if not self.ended:
                await self.call.write(request)

    async def _ping(self) -> None:
        await asyncio.sleep(random.uniform(0, self.ping_s))
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            while not (self.resigning or self.ended):
                self._nonce += 1
                await self._write(pb.CampaignRequest(ping=pb.CampaignPing(nonce=self._nonce)))
                await asyncio.sleep(self.ping_s)

    async def _read(self) -> None:
        try:
            while True:
                resp = await self.call.read()
                if resp is grpc.aio.EOF:
                    break
                now = time.perf_counter()
                if not self.answered:
                    self.answered = now
                kind = resp.WhichOneof("response")
                if kind == "leading":
                    if self.leading is None or self.leading.epoch != resp.leading.epoch:
                        self.leading = Seen(now, resp.leading.epoch)
                elif kind == "queued":
                    self.position = resp.queued.position
                elif kind == "lost":
                    self.lost.append((Seen(now, resp.lost.epoch), resp.lost.reason))
                    self.leading = None
                    if resp.lost.reason != pb.LOSS_REASON_RESIGNED and not self.resigning:
                        ack = pb.CampaignAck(epoch=resp.lost.epoch)
                        await self._write(pb.CampaignRequest(ack=ack))
                elif kind == "refused":
                    self.error = f"refused {resp.refused.request}: {resp.refused.reason}"
                self.changed.set()
            self.code = await self.call.code()
            if self.code != grpc.StatusCode.OK and not self._closing:
                self.error = f"stream ended with {self.code}: {await self.call.details()}"
        except grpc.RpcError as exc:
            if not self._closing:
                self.error = f"{exc.code()}: {exc.details()}"
        finally:
            self.ended = True
            self.changed.set()

    def check(self) -> None:
        if self.error:
            raise StreamFailed(f"{self}, election {self.election}: {self.error}")

    async def resign(self) -> float:
        """Send `resign`; returns perf_counter() taken right before the write."""
        async with self._lock:
            self.resigning = True
            t0 = time.perf_counter()
            await self.call.write(pb.CampaignRequest(resign=pb.CampaignResign()))
        return t0

    async def close(self) -> None:
        self._closing = True
        if self.call is not None:
            self.call.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                await task


class Watch:
    """A WatchLeader(election) stream on one node: the latest elected epoch and when it came."""

    def __init__(self, stub: Any, node: str, election: str) -> None:
        self.node, self.election = node, election
        self.epoch = 0
        self.leader = ""
        self.at = 0.0
        self.changed = asyncio.Event()
        self.error = ""
        self._closing = False
        self.call = stub.WatchLeader(pb.WatchLeaderRequest(election=election))
        self._task = asyncio.create_task(self._read())

    def __repr__(self) -> str:
        return f"WatchLeader({self.election}) on {self.node}"

    async def _read(self) -> None:
        try:
            async for resp in self.call:
                now = time.perf_counter()
                if resp.state == pb.LEADER_STATE_ELECTED and resp.leader.epoch != self.epoch:
                    self.epoch, self.at, self.leader = resp.leader.epoch, now, resp.leader.node.id
                self.changed.set()
            if not self._closing:
                self.error = f"stream ended ({await self.call.code()})"
        except grpc.RpcError as exc:
            if not self._closing:
                self.error = f"{exc.code()}: {exc.details()}"
        finally:
            self.changed.set()

    def check(self) -> None:
        if self.error:
            raise StreamFailed(f"{self}: {self.error}")

    async def close(self) -> None:
        self._closing = True
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
            await self._task


Source = Candidate | Watch


async def until(
    pred: Callable[[], bool], timeout: float, what: str, sources: Sequence[Source]
) -> None:
    """Wait until `pred()` holds, woken by the sources' messages; fail fast if one failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for s in sources:
            s.check()
        if pred():
            return
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        for s in sources:
            s.changed.clear()
        if pred():
            return
        waits = [asyncio.create_task(s.changed.wait()) for s in sources]
        try:
            await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()


# The nodes run at electd's default session timeout: an idle candidate's cost (its engine's
# heartbeat, every T/8) scales with 1/T, and the candidate lease is then its default of 2 s.
SESSION_TIMEOUT = 10.0


class Server(Protocol):
    """What the harness needs of a server process: where it listens, how it stops."""

    @property
    def address(self) -> str: ...

    def stop(self) -> object: ...

    def log_records(self) -> list[dict[str, Any]]: ...


class FloorServer:
    """One bench/campaignfloor.py process."""

    def __init__(self, ctx: Context, path: str) -> None:
        self.proc = subprocess.Popen(
            [ctx.python(), "-m", "bench.campaignfloor", ctx.zk().connect_string, path],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        ctx.stack.callback(procs.stop, self.proc)
        assert self.proc.stdout is not None
        self.address = f"127.0.0.1:{int(self.proc.stdout.readline())}"

    def stop(self) -> None:
        procs.stop(self.proc)

    def log_records(self) -> list[dict[str, Any]]:
        return []  # it logs nothing


class Cluster:
    """Three servers (electd nodes, or the floor's) and this process's channels to them
    (`conns` per server)."""

    def __init__(self, servers: dict[str, Server], pids: list[int]) -> None:
        self.procs = servers
        self.names = list(servers)
        self.pids = pids
        self.channels: dict[str, list[Any]] = {}
        self._used: dict[str, int] = {}

    @classmethod
    def electd(cls, ctx: Context, names: Sequence[str] = ("c1", "c2", "c3")) -> Cluster:
        path = f"/bench/campaign-{uuid.uuid4().hex[:8]}"
        servers: dict[str, Server] = {}
        pids = []
        for name in names:
            proc = nodes.start(ctx, name, path, session_timeout=SESSION_TIMEOUT)
            nodes.wait_serving(proc)
            servers[name] = proc
            pids.append(nodes.node_process(proc))
        return cls(servers, pids)

    @classmethod
    def floor(cls, ctx: Context, names: Sequence[str] = ("f1", "f2", "f3")) -> Cluster:
        """bench/campaignfloor.py servers, all on one election path."""
        path = f"/bench/campaign-floor-{uuid.uuid4().hex[:8]}"
        floors = [FloorServer(ctx, path) for _ in names]
        return cls(dict(zip(names, floors, strict=True)), [f.proc.pid for f in floors])

    def connect(self, conns: int) -> None:
        for name, proc in self.procs.items():
            self.channels[name] = [
                grpc.aio.insecure_channel(
                    proc.address, options=[("grpc.use_local_subchannel_pool", 1)]
                )
                for _ in range(conns)
            ]
            self._used[name] = 0

    def stub(self, node: str) -> Any:
        """A stub on the next connection to `node` (STREAMS_PER_CONN streams per connection)."""
        chans = self.channels[node]
        i = self._used[node] // STREAMS_PER_CONN % len(chans)
        self._used[node] += 1
        return pb_grpc.ElectionServiceStub(chans[i])  # type: ignore[no-untyped-call]

    async def close_channels(self) -> None:
        for chans in self.channels.values():
            for ch in chans:
                await ch.close()
        self.channels = {}

    def node_pids(self) -> list[int]:
        return list(self.pids)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


class Election:
    """One named election: its candidates in election order (leader first), one per node."""

    def __init__(self, cluster: Cluster, name: str, ping_s: float) -> None:
        self.cluster, self.name, self.ping_s = cluster, name, ping_s
        self.queue: list[Candidate] = []
        self.watches: dict[str, Watch] = {}
        self._n = 0

    def candidate(self, node: str) -> Candidate:
        self._n += 1
        return Candidate(
            self.cluster.stub(node), node, self.name, f"{self.name}-{self._n}", self.ping_s
        )

    async def fill(self, first: int = 0, timeout: float = 30.0) -> None:
        """Three candidates, one after the other (the first leads before the second starts,
        each next one queued behind the others), on the nodes from index `first` on."""
        names = self.cluster.names
        for i in range(3):
            await self.join(names[(first + i) % len(names)], timeout)

    async def join(self, node: str, timeout: float = 30.0) -> Candidate:
        """A fresh candidate at the back; returns once its node placed it there."""
        c = self.candidate(node)
        await c.start()
        place = len(self.queue)
        self.queue.append(c)
        try:
            if place == 0:
                await until(lambda: c.leading is not None, timeout, f"{c} to lead", [c])
            else:
                await until(lambda: c.position == place, timeout, f"{c} queued at {place}", [c])
        except TimeoutError as exc:
            state = f"answered: {c.answered > 0}, last position {c.position}, lost {c.lost}"
            raise TimeoutError(f"{exc} ({state})") from exc
        return c

    def watch_all(self) -> None:
        for node in self.cluster.names:
            self.watches[node] = Watch(self.cluster.stub(node), node, self.name)

    async def close(self) -> None:
        for c in self.queue:
            await c.close()
        for w in self.watches.values():
            await w.close()
        self.queue, self.watches = [], {}


@dataclass
class Trial:
    leading_ms: float  # resign -> the next candidate's stream says leading
    watch_ms: float  # resign -> WatchLeader on the third node has the new epoch
    lost_ms: float  # resign -> the resigning candidate reads Lost(RESIGNED)


async def handover(e: Election, meter: Meter | None = None, timeout: float = 10.0) -> Trial:
    """One resign handover on `e` (three candidates on three nodes), then a fresh candidate joins
    at the back on the resigned one's node. With `meter`, ZooKeeper's counters are read before
    the resign, SETTLE_S after the handover and SETTLE_S after the join."""
    leader, successor, third = e.queue[0], e.queue[1], e.queue[2]
    watch = e.watches[third.node]  # the node of neither the leader nor the successor
    if leader.leading is None:
        raise StreamFailed(f"{leader} should lead election {e.name} but does not")
    old = leader.leading.epoch
    await until(lambda: watch.epoch == old, timeout, f"{watch} to show epoch {old}", [watch])
    if meter is not None:
        meter.mark()
    t0 = await leader.resign()
    await until(
        lambda: successor.leading is not None and watch.epoch > old and leader.ended,
        timeout,
        f"{successor} to lead, {watch} to show it and {leader}'s stream to end",
        [successor, watch, third, leader],
    )
    if meter is not None:
        await meter.settle("handover")
    assert successor.leading is not None
    if watch.epoch != successor.leading.epoch or third.leading is not None:
        raise StreamFailed(
            f"election {e.name}: {successor} leads epoch {successor.leading.epoch}, {watch} "
            f"shows {watch.epoch} ({watch.leader}); {third} leading: {third.leading}"
        )
    resigned = [s for s, reason in leader.lost if reason == pb.LOSS_REASON_RESIGNED]
    if not resigned or leader.code != grpc.StatusCode.OK:
        raise StreamFailed(f"{leader} resigned: lost {leader.lost}, stream {leader.code}")
    trial = Trial(
        (successor.leading.at - t0) * 1000, (watch.at - t0) * 1000, (resigned[0].at - t0) * 1000
    )
    e.queue.pop(0)
    await leader.close()
    await e.join(leader.node, timeout)
    if meter is not None:
        await meter.settle("join")
    return trial


async def side_by_side(e: Election, f: Election, n: int, label: str) -> tuple[Series, Series]:
    """`WARMUP` + `n` handovers on each of `e` and `f`, alternating (so that both see the
    machine alike): (e's series, f's series)."""
    out = (Series(), Series())
    with Progress(label, n) as p:
        for i in range(n + WARMUP):
            for election, series in zip((e, f), out, strict=True):
                await asyncio.sleep(REST_S)
                t = await handover(election)
                if i >= WARMUP:
                    series.add(t)
            if i >= WARMUP:
                p.step(f"last {out[0].leading[-1]:.2f} ms, floor {out[1].leading[-1]:.2f} ms")
    return out


# ----- ZooKeeper's own counters ------------------------------------------------------------------


@dataclass
class Counters:
    at: float
    reads: int  # requests without a transaction (reads, syncs, pings): zk_cnt_readlatency
    writes: int  # transactions (create, delete, setData, multi): zk_cnt_updatelatency
    packets: int  # zk_packets_received


def counters(ctx: Context) -> Counters:
    server = ctx.zk().servers[0]
    text = four_letter(server.host, server.client_port, "mntr", timeout=5.0)
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition("\t")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    try:
        return Counters(
            time.perf_counter(),
            values["zk_cnt_readlatency"],
            values["zk_cnt_updatelatency"],
            values["zk_packets_received"],
        )
    except KeyError as exc:
        raise RuntimeError(f"ZooKeeper's mntr has no {exc}: got {text[:200]!r}") from exc


@dataclass
class Rate:
    """Background requests per second (reads, writes), measured idle."""

    reads: float
    writes: float

    def less(self, a: Counters, b: Counters) -> tuple[float, float]:
        dt = b.at - a.at
        return b.reads - a.reads - self.reads * dt, b.writes - a.writes - self.writes * dt


async def background(ctx: Context, seconds: float) -> Rate:
    a = counters(ctx)
    await asyncio.sleep(seconds)
    b = counters(ctx)
    dt = b.at - a.at
    return Rate((b.reads - a.reads) / dt, (b.writes - a.writes) / dt)


@dataclass
class Series:
    leading: list[float] = field(default_factory=list)
    watch: list[float] = field(default_factory=list)
    lost: list[float] = field(default_factory=list)
    zk: dict[str, list[float]] = field(default_factory=dict)  # "handover_reads" -> samples

    def add(self, t: Trial) -> None:
        self.leading.append(t.leading_ms)
        self.watch.append(t.watch_ms)
        self.lost.append(t.lost_ms)


class Meter:
    """ZooKeeper requests per step of a trial: the counters' difference from the previous
    reading, less the background `rate` over that time; recorded into `out` when `record`."""

    def __init__(self, ctx: Context, rate: Rate, out: Series) -> None:
        self.ctx, self.rate, self.out = ctx, rate, out
        self.record = False
        self._last: Counters | None = None

    def mark(self) -> None:
        self._last = counters(self.ctx)

    async def settle(self, step: str) -> None:
        await asyncio.sleep(SETTLE_S)
        now = counters(self.ctx)
        assert self._last is not None, "Meter.mark() first"
        reads, writes = self.rate.less(self._last, now)
        self._last = now
        if self.record:
            self.out.zk.setdefault(f"{step}_reads", []).append(reads)
            self.out.zk.setdefault(f"{step}_writes", []).append(writes)


async def trials(ctx: Context, e: Election, n: int, label: str, rate: Rate | None = None) -> Series:
    """`WARMUP` + `n` handovers on `e`; with `rate`, ZooKeeper's requests per handover and per
    join too (`Meter`)."""
    out = Series()
    meter = Meter(ctx, rate, out) if rate is not None else None
    with Progress(label, n) as p:
        for i in range(n + WARMUP):
            await asyncio.sleep(REST_S)
            if meter is not None:
                meter.record = i >= WARMUP
            t = await handover(e, meter)
            if i < WARMUP:
                continue
            out.add(t)
            p.step(f"last {t.leading_ms:.2f}/{t.watch_ms:.2f} ms")
    return out


# ----- the benchmark -----------------------------------------------------------------------------


def run(ctx: Context) -> None:
    n = ctx.opts.n(40, 3)
    hosts = ctx.zk().connect_string
    res = ctx.results
    with Progress("campaign: ZooKeeper floor", n) as p:
        floor = zkbase.floor(hosts, f"/bench/campaign-floor-{uuid.uuid4().hex[:8]}", n, p.step)
    res.add(
        "campaign.zk_floor",
        bench=NAME,
        metric="ZK floor: delete -> other session's watch",
        system="kazoo raw",
        size="2 sessions",
        samples=floor,
    )
    etcd_rows(ctx, n)
    cluster = Cluster.electd(ctx)
    floor_cluster = Cluster.floor(ctx)
    try:
        asyncio.run(electd(ctx, cluster, floor_cluster, n))
    finally:
        cluster.stop()
        floor_cluster.stop()


def etcd_rows(ctx: Context, n: int) -> None:
    try:
        server = EtcdServer(ctx)
    except EtcdMissing as exc:
        ctx.results.note(f"campaign: no etcd baseline ({exc})")
        return
    try:
        campaign, observed = etcd.handover(ctx, server, n, "campaign: etcd resign")
    except ToolMissing as exc:
        ctx.results.note(f"campaign: no etcd baseline ({exc})")
        return
    finally:
        server.stop()
    for key, metric, samples in (
        ("etcd_campaign", "etcd: Resign -> next Campaign returns", campaign),
        ("etcd_observe", "etcd: Resign -> Observe stream has it", observed),
    ):
        ctx.results.add(
            f"campaign.{key}",
            bench=NAME,
            metric=metric,
            system="etcd election",
            size="3 campaigners",
            samples=samples,
            baseline="campaign.zk_floor",
        )


async def electd(ctx: Context, cluster: Cluster, floor: Cluster, n: int) -> None:
    ping_s = ctx.opts.campaign_ping_s
    elections = ctx.opts.campaign_elections
    cluster.connect(max(1, -(-elections // STREAMS_PER_CONN)))
    floor.connect(1)
    try:
        await part_a(ctx, cluster, floor, n, ping_s)
        await floor.close_channels()
        floor.stop()  # idle from here on
        await part_b(ctx, cluster, ctx.opts.n(20, 3), elections, ping_s)
    finally:
        await cluster.close_channels()
        await floor.close_channels()


async def part_a(ctx: Context, cluster: Cluster, floor: Cluster, n: int, ping_s: float) -> None:
    res = ctx.results
    e = Election(cluster, f"handover-{uuid.uuid4().hex[:8]}", ping_s)
    f = Election(floor, "floor", ping_s)
    try:
        for each in (e, f):
            each.watch_all()
            await each.fill()
        got, shape = await side_by_side(e, f, n, "campaign: electd resign handover, and its floor")
    finally:
        await e.close()
        await f.close()
    extra = {"ping_s": ping_s}
    for key, metric, samples in (
        ("floor_leading", "floor of this design: resign -> next leads", shape.leading),
        ("floor_watch", "floor of this design: resign -> WatchLeader", shape.watch),
    ):
        res.add(
            f"campaign.{key}",
            bench=NAME,
            metric=metric,
            system="bare grpc.aio + kazoo",
            size=HANDOVER,
            samples=samples,
            baseline="campaign.zk_floor",
        )
    res.add(
        "campaign.electd_lost",
        bench=NAME,
        metric="resign -> resigning candidate reads Lost",
        system="electd",
        size=HANDOVER,
        samples=got.lost,
        extra=extra,
    )
    res.add(
        "campaign.electd_leading",
        bench=NAME,
        metric="resign -> next candidate's stream: leading",
        system="electd",
        size=HANDOVER,
        samples=got.leading,
        baseline="campaign.zk_floor",
        target=Target("p50 <= 2x ZK floor", factor=2.0, ref="campaign.zk_floor"),
        extra=extra,
    )
    res.add(
        "campaign.electd_vs_etcd",
        bench=NAME,
        metric="next candidate leads, vs etcd Campaign",
        system="electd",
        size=HANDOVER,
        samples=got.leading,
        baseline="campaign.etcd_campaign",
        target=Target("p50 < etcd Campaign p50", op="<", ref="campaign.etcd_campaign"),
        keep_samples=False,
    )
    res.add(
        "campaign.electd_watch",
        bench=NAME,
        metric="resign -> WatchLeader(election), 3rd node",
        system="electd",
        size=HANDOVER,
        samples=got.watch,
        baseline="campaign.zk_floor",
        extra=extra,
    )
    res.add(
        "campaign.electd_watch_vs_etcd",
        bench=NAME,
        metric="WatchLeader(election) vs etcd Observe",
        system="electd",
        size=HANDOVER,
        samples=got.watch,
        baseline="campaign.etcd_observe",
        keep_samples=False,
    )
    for key, metric, samples, ref in (
        ("electd_vs_floor", "next leads, vs the floor of this design", got.leading, "leading"),
        ("electd_watch_vs_floor", "WatchLeader, vs the floor of this design", got.watch, "watch"),
    ):
        res.add(
            f"campaign.{key}",
            bench=NAME,
            metric=metric,
            system="electd",
            size=HANDOVER,
            samples=samples,
            baseline=f"campaign.floor_{ref}",
            keep_samples=False,
        )


def rss_kib(pids: Sequence[int]) -> int:
    return sum(procs.rss_kib(pid) for pid in pids)


def cpu_s(pids: Sequence[int]) -> float:
    return sum(procs.cpu_seconds(pid) for pid in pids)


async def part_b(ctx: Context, cluster: Cluster, n: int, elections: int, ping_s: float) -> None:
    """(b): rows are added as soon as they are measured, so a failure later keeps them."""
    tag = uuid.uuid4().hex[:6]
    pids = cluster.node_pids()
    me = [os.getpid()]
    bg_s = 1.0 if ctx.opts.quick else 3.0
    rows = ScaleRows(ctx, elections, ping_s)
    await asyncio.sleep(1.0)
    rss0, mine0 = rss_kib(pids), rss_kib(me)
    rows.idle("0", "0 elections", await background(ctx, bg_s))
    live: list[Election] = []
    try:
        first = Election(cluster, f"scale-{tag}-{1:05d}", ping_s)
        live.append(first)
        first.watch_all()
        await first.fill()
        joins = [(c.answered - c.started) * 1000 for c in first.queue]
        rate1 = await background(ctx, bg_s)
        rows.idle("1", rows.one, rate1)
        one = await trials(ctx, first, n, "campaign: handover, 1 election", rate1)
        rows.handover("first", one, rows.one, "1st election", None)

        more: list[float] = []
        t_create = time.perf_counter()
        with Progress(f"campaign: create {elections} x 3 candidates", elections - 1) as p:
            names = [f"scale-{tag}-{i:05d}" for i in range(2, elections + 1)]
            rest, last_name = names[:-1], names[-1]
            for i in range(0, len(rest), BATCH):
                batch = [Election(cluster, name, ping_s) for name in rest[i : i + BATCH]]
                live.extend(batch)
                await create_batch(batch, i, more)
                for _ in batch:
                    p.step()
            last = Election(cluster, last_name, ping_s)
            live.append(last)
            await last.fill(first=elections - 1, timeout=120.0)
            more += [c.answered - c.started for c in last.queue]
            p.step()
        rows.created(time.perf_counter() - t_create, joins + [j * 1000 for j in more])

        await asyncio.sleep(2.0)
        rows.memory(rss0, rss_kib(pids), mine0, rss_kib(me))
        cpu_secs = 2.0 if ctx.opts.quick else 5.0
        c0, m0, w0 = cpu_s(pids), cpu_s(me), time.monotonic()
        await asyncio.sleep(cpu_secs)
        c1, m1, w1 = cpu_s(pids), cpu_s(me), time.monotonic()
        rows.cpu((c1 - c0) / (w1 - w0), (m1 - m0) / (w1 - w0))
        rate_n = await background(ctx, bg_s)
        rows.idle("n", rows.all, rate_n)
        last.watch_all()
        at_last = await trials(ctx, last, n, f"campaign: handover at the {elections}th", rate_n)
        rows.handover("last", at_last, rows.all, f"{elections:,}th election", "first")
        at_first = await trials(ctx, first, n, f"campaign: 1st, {elections} live", rate_n)
        rows.handover("first_all", at_first, rows.all, "1st election", "first", zk=False)
    except Exception:
        rows.node_trouble(cluster, live)
        raise
    finally:
        with Progress("campaign: closing the candidates", len(live)) as p:
            for e in live:
                await e.close()
                p.step()


class ScaleRows:
    """The rows of (b)."""

    def __init__(self, ctx: Context, elections: int, ping_s: float) -> None:
        self.res = ctx.results
        self.elections = elections
        self.candidates = 3 * elections
        self.one = "1 election x 3"
        self.all = f"{elections:,} elections x 3"
        self.extra = {"ping_s": ping_s, "elections": elections, "candidates": self.candidates}
        self.ping_s = ping_s

    def handover(
        self, key: str, got: Series, size: str, what: str, base: str | None, zk: bool = True
    ) -> None:
        add, extra = self.res.add, self.extra
        add(
            f"campaign.scale_{key}_leading",
            bench=NAME,
            metric=f"{what}: resign -> next leads",
            system="electd",
            size=size,
            samples=got.leading,
            baseline=base and f"campaign.scale_{base}_leading",
            extra=extra,
        )
        add(
            f"campaign.scale_{key}_watch",
            bench=NAME,
            metric=f"{what}: resign -> WatchLeader, 3rd node",
            system="electd",
            size=size,
            samples=got.watch,
            baseline=base and f"campaign.scale_{base}_watch",
            extra=extra,
        )
        for kind, samples in got.zk.items() if zk else ():
            step, what_zk = kind.split("_")
            add(
                f"campaign.scale_{key}_zk_{kind}",
                bench=NAME,
                metric=f"{what}: ZK {what_zk} per {step}",
                system="electd",
                size=size,
                unit="count",
                samples=samples,
                baseline=base and f"campaign.scale_{base}_zk_{kind}",
                extra=extra,
            )

    def one_value(
        self, key: str, metric: str, system: str, unit: str, value: float, **kw: Any
    ) -> None:
        self.res.add(
            f"campaign.scale_{key}",
            bench=NAME,
            metric=metric,
            system=system,
            size=self.all,
            unit=unit,
            stats={"n": 1, "p50": value, "p99": float("nan")},
            extra={**self.extra, **kw},
        )

    def created(self, seconds: float, joins: list[float]) -> None:
        self.one_value(
            "create",
            f"create {self.candidates - 3:,} more candidates ({BATCH} elections at once)",
            "electd",
            "s",
            seconds,
        )
        self.res.add(
            "campaign.scale_join",
            bench=NAME,
            metric="candidate start -> first answer (creation)",
            system="electd",
            size=self.all,
            samples=joins,
            extra=self.extra,
        )

    def memory(self, nodes0: int, nodes1: int, mine0: int, mine1: int) -> None:
        self.one_value(
            "node_rss",
            "node RSS per candidate (3 node processes)",
            "electd",
            "KiB",
            (nodes1 - nodes0) / self.candidates,
            before_kib=nodes0,
            after_kib=nodes1,
        )
        self.one_value(
            "harness_rss",
            "harness RSS per candidate (this process)",
            "harness",
            "KiB",
            (mine1 - mine0) / self.candidates,
            before_kib=mine0,
            after_kib=mine1,
        )

    def cpu(self, nodes: float, mine: float) -> None:
        self.one_value(
            "node_cpu",
            f"node CPU, all pinging every {self.ping_s:g} s (3 nodes)",
            "electd",
            "%",
            nodes * 100,
        )
        self.one_value(
            "harness_cpu", "harness CPU meanwhile (this process)", "harness", "%", mine * 100
        )

    def idle(self, key: str, size: str, rate: Rate) -> None:
        self.res.add(
            f"campaign.scale_zk_idle_{key}",
            bench=NAME,
            metric="ZK requests/s, idle (reads + writes)",
            system="electd",
            size=size,
            unit="count",
            stats={"n": 1, "p50": rate.reads + rate.writes, "p99": float("nan")},
            extra={**self.extra, "reads_per_s": rate.reads, "writes_per_s": rate.writes},
        )

    def node_trouble(self, cluster: Cluster, live: list[Election]) -> None:
        """After a failure: how far the elections got, and the nodes' last warnings."""
        waiting = [c for e in live for c in e.queue if not c.answered]
        self.res.note(
            f"campaign: {len(live)} elections started, {sum(len(e.queue) for e in live)} "
            f"candidates, {len(waiting)} of them never answered"
        )
        for name, proc in cluster.procs.items():
            bad = [r for r in proc.log_records() if r.get("level") in ("WARNING", "ERROR")]
            for r in bad[-3:]:
                self.res.note(
                    f"campaign: node {name} logged {r.get('level')}: {str(r.get('msg'))[:300]}"
                )


async def create_batch(batch: list[Election], offset: int, joins: list[float]) -> None:
    """Fill several elections at once: every first candidate, then every second, then every
    third (each wave waits until its candidates were answered); leaders spread over the
    nodes."""
    names = batch[0].cluster.names
    for wave in range(3):
        cands = []
        for j, e in enumerate(batch):
            node = names[(offset + j + 1 + wave) % len(names)]
            c = e.candidate(node)
            e.queue.append(c)
            cands.append(c)
        await asyncio.gather(*(c.start() for c in cands))
        for c in cands:
            await answered(c)
            joins.append(c.answered - c.started)


async def answered(c: Candidate, timeout: float = 60.0) -> None:
    await until(lambda: c.answered > 0, timeout, f"{c} to be answered", [c])
