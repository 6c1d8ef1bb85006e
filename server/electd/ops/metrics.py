"""The Prometheus metrics of a node, with the official client, in a registry of the node's own.

Names are chosen once (dashboards break when they change: Patroni 4 renamed one); they follow
Prometheus conventions (`electd_` prefix, base units, `_total` for counters) and are listed in
the README's "Operating electd". State is read at scrape time from `NodeStatus` (nothing is
done on the election's hot path); RPCs are counted by `observe_rpc`, called by rpc/'s
interceptor on the loop thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from electd.engine import Role
from electd.ops.status import NodeStatus

logger = logging.getLogger(__name__)

# Latency buckets for a service whose answers come from memory (ms) or one ZooKeeper read.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class CampaignFigures(Protocol):
    """The Campaign servicer's counters (rpc/campaign.py's `CampaignCounters`), read at
    scrape time from the scraping thread (plain numbers, replaced on the loop thread)."""

    @property
    def candidates(self) -> int: ...

    @property
    def grants(self) -> int: ...

    def losses(self) -> Mapping[str, int]: ...


class Metrics:
    def __init__(self, status: NodeStatus, campaigns: CampaignFigures | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_NodeCollector(status))
        if campaigns is not None:
            self.registry.register(_CampaignCollector(campaigns))
        self._requests = Counter(
            "electd_grpc_requests",
            "gRPC calls answered by this node, by method and status code (streams count when "
            "they end).",
            ["method", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "electd_grpc_request_duration_seconds",
            "How long unary gRPC calls took to answer, by method.",
            ["method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe_rpc(self, method: str, code: str, seconds: float | None) -> None:
        """One finished call (`seconds` None for streams, whose length says nothing)."""
        self._requests.labels(method, code).inc()
        if seconds is not None:
            self._latency.labels(method).observe(seconds)


class _NodeCollector(Collector):
    def __init__(self, status: NodeStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        st = self._status
        view, stats, now = st.view(), st.stats(), st.now()
        leader = view.vouched(now)
        election = [st.election]

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, text, labels=["election"])
            g.add_metric(election, value)
            return g

        yield gauge(
            "electd_is_leader",
            "1 if this node leads the election and vouches for it now (within its lease), else 0.",
            1.0 if view.is_leader(now) else 0.0,
        )
        yield gauge(
            "electd_has_leader",
            "1 if this node vouches for a leader (itself or another) now, else 0.",
            1.0 if leader is not None else 0.0,
        )
        yield gauge(
            "electd_leader_epoch",
            "The fencing epoch of the leader this node vouches for (0 when none).",
            float(leader.epoch) if leader is not None else 0.0,
        )
        if leader is not None:  # a node that cannot vouch does not list members either
            try:
                members = len(st.members())  # a ZooKeeper read: scrapes run on a worker thread
            except Exception as exc:  # noqa: BLE001 - ZooKeeper trouble: leave the gauge out
                logger.info("metrics: could not list members: %s", exc)
            else:
                yield gauge(
                    "electd_members", "Valid members of the election, read at scrape time.", members
                )
        yield gauge(
            "electd_lease_remaining_seconds",
            "How long this node may still vouch without hearing from ZooKeeper's quorum "
            "(negative once the lease has run out).",
            _finite(st.lease_remaining()),
        )
        changes = CounterMetricFamily(
            "electd_leader_changes_seen",
            "Changes of the leader (or of its epoch) this node has seen.",
            labels=["election"],
        )
        changes.add_metric(election, float(stats.leader_changes))
        yield changes

        role = GaugeMetricFamily(
            "electd_node_role",
            "1 for this node's current role in the election, 0 for the others.",
            labels=["election", "role"],
        )
        for r in Role:
            role.add_metric([st.election, r.value.lower()], 1.0 if view.role is r else 0.0)
        yield role

        yield GaugeMetricFamily(
            "electd_zookeeper_last_answer_age_seconds",
            "Seconds since ZooKeeper's quorum last answered this node (a sync); +Inf before the "
            "first answer.",
            value=st.since_zookeeper(),
        )
        for name, text, value in (
            ("electd_zookeeper_connects", "ZooKeeper connections established.", stats.connects),
            ("electd_zookeeper_disconnects", "ZooKeeper connections lost.", stats.suspensions),
            ("electd_zookeeper_session_expiries", "ZooKeeper sessions lost.", stats.expiries),
            (
                "electd_registrations",
                "Entries this node created in the election.",
                stats.registrations,
            ),
        ):
            yield CounterMetricFamily(name, text, value=float(value))
        yield GaugeMetricFamily(
            "electd_watch_streams", "WatchLeader streams open on this node.", value=st.streams()
        )

        cmd = st.command()
        yield GaugeMetricFamily(
            "electd_leader_command_running",
            "1 while the --leader-command runs, else 0.",
            value=1.0 if cmd.running else 0.0,
        )
        yield CounterMetricFamily(
            "electd_leader_command_starts", "Starts of the --leader-command.", value=cmd.starts
        )
        exits = CounterMetricFamily(
            "electd_leader_command_exits",
            "Exits of the --leader-command, by exit code (negative: killed by that signal).",
            labels=["code"],
        )
        for code, count in sorted(cmd.exits.items()):
            exits.add_metric([str(code)], float(count))
        yield exits
        yield CounterMetricFamily(
            "electd_leader_command_spawn_failures",
            "Failed starts of the --leader-command (retried with backoff).",
            value=cmd.spawn_failures,
        )


class _CampaignCollector(Collector):
    """Candidates of named elections held through this node (no label per election: there
    may be thousands)."""

    def __init__(self, figures: CampaignFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        figures = self._figures
        yield GaugeMetricFamily(
            "electd_candidates",
            "Candidates campaigning through this node now (open Campaign streams with an entry).",
            value=figures.candidates,
        )
        yield CounterMetricFamily(
            "electd_candidate_grants",
            "Leases granted to leading candidates (CampaignLeading answers to pings).",
            value=figures.grants,
        )
        losses = CounterMetricFamily(
            "electd_candidate_losses",
            "Terms of candidates that ended (CampaignLost sent), by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(figures.losses().items()):
            losses.add_metric([reason], float(count))
        yield losses


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -1e9
