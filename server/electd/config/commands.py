"""The config of each command, as frozen dataclasses whose fields are the settings table
(config/table.py derives the parser, the loading and the launchers' argv from them).

`NodeConfig` is what `electd serve` runs with; `LogConfig` its logging; `QueryConfig` and
`NodesConfig` the query commands; `DevConfig` `electd dev`. `COMMANDS` says which command takes
which settings. Checks that involve two settings live in a `check` method, called by `load`.
Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from electd.config.security import ClientTlsConfig, ServerSecurityConfig, ZkSecurityConfig
from electd.config.table import setting
from electd.config.values import (
    ConfigError,
    HostPort,
    ZkTarget,
    integer,
    optional,
    parse_host_port,
    parse_labels,
    parse_node_id,
    parse_text,
    parse_zk,
    seconds,
    validate_path,
)


def parse_cluster_id(value: str, what: str) -> str:
    text = value.strip().lower()
    if text and not re.fullmatch(r"[0-9a-f]{32}", text):
        raise ConfigError(f"{what}: {value!r} is not 32 hex digits")
    return text


def _listen(value: str, what: str) -> HostPort:
    return parse_host_port(value, what, allow_zero=True)


def _targets(values: list[str], what: str) -> tuple[str, ...]:
    return tuple(str(parse_host_port(v, what)) for v in values)


@dataclass(frozen=True)
class ZkConnectConfig:
    """Where the election is (ZkConfig's first settings)."""

    zk: ZkTarget = setting(
        "--zk",
        parse=parse_zk,
        default="127.0.0.1:2181",
        metavar="HOST:PORT[,HOST:PORT...][/chroot]",
        env=True,
        help="ZooKeeper connect string: every ensemble member, with an optional chroot prefix",
    )
    election_path: str = setting(
        "--election-path",
        parse=validate_path,
        default="/election",
        metavar="PATH",
        env=True,
        help="persistent znode under which members register; created if missing",
    )
    connect_timeout: float = setting(
        "--connect-timeout",
        parse=seconds(0.1, 3600),
        default="15",
        metavar="SECONDS",
        env=True,
        help="give up at startup if no ZooKeeper server answers within this",
    )

    @property
    def zk_path(self) -> str:
        """The election path as seen from ZooKeeper's root (chroot included)."""
        return self.zk.chroot + self.election_path


@dataclass(frozen=True)
class ZkConfig(ZkSecurityConfig, ZkConnectConfig):
    """How to reach the election, and with which credentials: every command that talks to
    ZooKeeper takes these (the connection first, then TLS, credentials and ACL)."""


@dataclass(frozen=True)
class NodeConfig(ServerSecurityConfig, ZkConfig):
    """A node: `electd serve`."""

    listen: HostPort = setting(
        "--listen",
        parse=_listen,
        default="127.0.0.1:7000",
        metavar="HOST:PORT",
        env=True,
        help="gRPC bind address; port 0 picks a free port",
    )
    advertise: HostPort | None = setting(
        "--advertise",
        parse=optional(parse_host_port),
        default="",
        metavar="HOST:PORT",
        env=True,
        shown_default="the listen address with the bound port",
        help="address other nodes and clients are told",
    )
    http_listen: HostPort | None = setting(
        "--http-listen",
        parse=optional(_listen),
        default="",
        metavar="HOST:PORT",
        env=True,
        shown_default="off",
        help="HTTP listener for /metrics (Prometheus), the probes /leader, /healthz, /readyz and "
        "the JSON view /cluster; port 0 picks a free port",
    )
    node_id: str = setting(
        "--node-id",
        parse=parse_node_id,
        default="",
        metavar="ID",
        env=True,
        shown_default="ADVERTISED_HOST-PORT",
        help="stable, readable node id",
    )
    labels: Mapping[str, str] = setting(
        "--label",
        parse=parse_labels,
        default=(),
        metavar="KEY=VALUE",
        env="ELECTD_LABELS",
        repeatable=True,
        help="label published with the node, filterable in ListNodes; repeatable",
    )
    session_timeout: float = setting(
        "--session-timeout",
        parse=seconds(0.1, 600),
        default="10",
        metavar="SECONDS",
        env=True,
        help="ZooKeeper session timeout: a crashed leader is replaced after about this long; "
        "the server's maxSessionTimeout must allow it",
    )
    shutdown_grace: float = setting(
        "--shutdown-grace",
        parse=seconds(0, 600),
        default="5",
        metavar="SECONDS",
        env=True,
        help="how long in-flight calls may finish on shutdown",
    )
    max_streams: int = setting(
        "--max-streams",
        parse=integer(1, 10_000_000),
        default="20000",
        metavar="N",
        env=True,
        help="cap on concurrent WatchLeader streams (RESOURCE_EXHAUSTED beyond)",
    )
    elections_root: str = setting(
        "--elections-root",
        parse=validate_path,
        default="/elections",
        metavar="PATH",
        env=True,
        help="persistent znode under which the named elections of Campaign live (one child "
        "per election, under the chroot of --zk); created by the first candidate",
    )
    candidate_lease: float | None = setting(
        "--candidate-lease",
        parse=optional(seconds(0.001, 600)),
        default="",
        metavar="SECONDS",
        env=True,
        shown_default="min(2, 2T/3 - T/8) for session timeout T",
        help="the longest lease a Campaign ping is granted (CampaignLeading.lease_ms): a "
        "candidate that stops pinging stops leading within this; at most 2T/3 - T/8, so that "
        "a heartbeat of the node's lease can keep it",
    )
    candidate_timeout: float = setting(
        "--candidate-timeout",
        parse=seconds(0.1, 3600),
        default="5",
        metavar="SECONDS",
        env=True,
        help="end a Campaign stream that sent no request for this long (its entry goes once "
        "its last lease ran out)",
    )
    max_candidates: int = setting(
        "--max-candidates",
        parse=integer(1, 10_000_000),
        default="10000",
        metavar="N",
        env=True,
        help="cap on the candidates campaigning through this node (RESOURCE_EXHAUSTED beyond)",
    )
    cluster_id: str = setting(
        "--cluster-id",
        parse=parse_cluster_id,
        default="",
        metavar="HEX32",
        env=True,
        help="the cluster identity to insist on: refuse (NOT_SERVING, and say why) to join an "
        "election path of another cluster, for example after a --zk typo; the path must carry "
        "it already (electd identity --cluster-id HEX32). Without it a node takes the path's "
        "identity (or creates one) and holds on to it while it runs",
    )
    leader_command: str = setting(
        "--leader-command",
        parse=parse_text,
        default="",
        metavar="CMD",
        env=True,
        help="shell command the supervisor runs only while this node leads, bound to the term: "
        "its environment has ELECTD_EPOCH (the fencing epoch), ELECTD_ZNODE, "
        "ELECTD_LEASE_DEADLINE_BOOTTIME, ELECTD_NODE_ID and ELECTD_ADDRESS; its whole tree is "
        "sent SIGTERM the moment the term ends and SIGKILL before the lease runs out",
    )
    command_grace: float | None = setting(
        "--command-grace",
        parse=optional(seconds(0, 600)),
        default="",
        metavar="SECONDS",
        env=True,
        shown_default="the most the lease allows: T/8 - max(0.05, T/40) for session timeout T",
        help="how long the leader command has between SIGTERM and SIGKILL when its term ends; "
        "it must be dead before the lease runs out, so at most the default (on shutdown it "
        "gets --shutdown-grace instead, while the node still renews its lease)",
    )
    command_exit: str = setting(
        "--command-exit",
        parse=parse_text,
        default="restart",
        choices=("restart", "step-down", "idle", "exit"),
        env=True,
        help="what to do when the leader command exits on its own while the node leads: "
        "restart it (backoff 0.1 s doubling to 10 s), step-down (leave the election and join "
        "again at the back of the queue), idle (stay leader, run nothing until the next "
        "term), or exit (electd exits with the command's exit code)",
    )

    def command_margin(self) -> float:
        """How long before the lease deadline the leader command must be dead."""
        return max(0.05, self.session_timeout / 40)

    def max_command_grace(self) -> float:
        """The longest SIGTERM -> SIGKILL the lease allows. A healthy leader renews every T/8
        and keeps at least T/6 of lease (engine/lease.py); the supervisor starts the SIGTERM
        `grace + margin` before its deadline, so a grace above T/8 - margin would end healthy
        terms too; T/24 is left for a late heartbeat."""
        return max(0.0, self.session_timeout / 8 - self.command_margin())

    def effective_command_grace(self) -> float:
        return self.max_command_grace() if self.command_grace is None else self.command_grace

    def max_candidate_lease(self) -> float:
        """The longest grant a heartbeat can keep: a healthy node's lease, renewed every T/8,
        has at least 2T/3 - T/8 left after each renewal (engine/lease.py)."""
        return self.session_timeout * (2.0 / 3.0 - 1.0 / 8.0)

    def effective_candidate_lease(self) -> float:
        """--candidate-lease, else min(2 s, 2T/3 - T/8)."""
        if self.candidate_lease is not None:
            return self.candidate_lease
        return min(2.0, self.max_candidate_lease())

    @property
    def elections_zk_root(self) -> str:
        """The elections root as seen from ZooKeeper's root (chroot included)."""
        return self.zk.chroot + self.elections_root

    def check(self) -> None:
        lease_limit = self.max_candidate_lease()
        if self.candidate_lease is not None and self.candidate_lease > lease_limit:
            raise ConfigError(
                f"--candidate-lease: {self.candidate_lease:g}s is longer than the node's lease "
                f"can keep at --session-timeout {self.session_timeout:g}: at most "
                f"{lease_limit:.3f}s (2T/3 - T/8); raise --session-timeout for longer grants"
            )
        root, node = self.elections_root, self.election_path
        if root == node or root.startswith(node + "/") or node.startswith(root + "/"):
            raise ConfigError(
                f"--elections-root: {root!r} must be apart from --election-path {node!r} "
                f"(neither the same znode nor one under the other)"
            )
        limit = self.max_command_grace()
        if self.command_grace is not None and self.command_grace > limit:
            raise ConfigError(
                f"--command-grace: {self.command_grace:g}s is longer than the lease allows at "
                f"--session-timeout {self.session_timeout:g}: the leader command must be dead "
                f"before its lease runs out, so at most {limit:.3f}s (T/8 - "
                f"{self.command_margin():g}s); raise --session-timeout for a longer grace"
            )

    def advertised(self, bound_port: int) -> HostPort:
        """The address clients are told: --advertise, else the listen address with the port
        actually bound (a wildcard host becomes this machine's host name)."""
        if self.advertise is not None:
            return self.advertise
        host = self.listen.host
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = socket.gethostname()
        return HostPort(host, bound_port)

    def resolved_node_id(self, bound_port: int) -> str:
        """--node-id, else a stable, readable default: <host>-<port> of the advertised address."""
        if self.node_id:
            return self.node_id
        adv = self.advertised(bound_port)
        return re.sub(r"[^A-Za-z0-9._-]", "-", f"{adv.host}-{adv.port}").strip("-")


@dataclass(frozen=True)
class RunConfig(NodeConfig):
    """`electd run -- CMD ARGS...`: a node that exists to run one command while it leads."""

    listen: HostPort = setting(
        "--listen",
        parse=_listen,
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        env=True,
        help="gRPC bind address; port 0 (the default) picks a free port",
    )
    command_exit: str = setting(
        "--command-exit",
        parse=parse_text,
        default="exit",
        choices=("restart", "step-down", "idle", "exit"),
        env=True,
        help="what to do when CMD exits on its own while this node leads: exit (electd run "
        "exits with CMD's exit code), restart it (backoff), step-down (leave the election, "
        "join again at the back), idle (stay leader, run nothing until the next term)",
    )
    shell: bool = setting(
        "--shell",
        parse=lambda v, w: bool(v),
        default=False,
        switch=True,
        help="run CMD (one argument) with sh -c instead of executing it directly",
    )


@dataclass(frozen=True)
class IdentityConfig(ZkConfig):
    """`electd identity`: show or write the cluster identity of an election path."""

    epoch_floor: int | None = setting(
        "--epoch-floor",
        parse=optional(integer(0, 2**62)),  # engine/identity.py's MAX_EPOCH_BASE
        default="",
        metavar="EPOCH",
        help="write a new identity whose epochs all exceed EPOCH (after rebuilding the "
        "ensemble: the highest epoch the old one gave, which the nodes' refusal names)",
    )
    previous: str = setting(
        "--previous",
        parse=parse_cluster_id,
        default="",
        metavar="HEX32",
        shown_default="the identity the path has now",
        help="with --epoch-floor: the cluster the new identity carries on (nodes of that cluster "
        "accept it)",
    )
    cluster_id: str = setting(
        "--cluster-id",
        parse=parse_cluster_id,
        default="",
        metavar="HEX32",
        shown_default="a new random one",
        help="the id of the identity to write (with --epoch-floor, or to create the first one "
        "for nodes started with --cluster-id)",
    )

    apply_acl: bool = setting(
        "--apply-acl",
        parse=lambda v, w: bool(v),
        default=False,
        switch=True,
        help="set the ACL of --zk-acl (with --zk-auth-file's identities) on the election path "
        "and on every znode under it, to lock down a path created open; refused while a node "
        "runs without the credentials (restart every node with --zk-auth-file first)",
    )

    def check(self) -> None:
        if self.previous and self.epoch_floor is None:
            raise ConfigError("--previous: only with --epoch-floor")
        if self.apply_acl and (self.epoch_floor is not None or self.cluster_id):
            raise ConfigError("--apply-acl: on its own, not with --epoch-floor or --cluster-id")
        if self.apply_acl and self.zk_auth_file is None:
            raise ConfigError(
                "--apply-acl: needs --zk-auth-file (the identities that may change the ACL)"
            )


@dataclass(frozen=True)
class LogConfig:
    """Logging of a long-running command."""

    log_format: str = setting(
        "--log-format",
        parse=parse_text,
        default="text",
        choices=("text", "json"),
        env=True,
        help="one line per event; json for log pipelines",
    )
    log_level: str = setting(
        "--log-level",
        parse=parse_text,
        default="info",
        choices=("debug", "info", "warning", "error"),
        env=True,
        help="debug shows per-request detail and kazoo's own logs",
    )


@dataclass(frozen=True)
class QueryConfig(ClientTlsConfig):
    """`electd leader`, `nodes` and `watch`: which nodes to ask, and how."""

    target: tuple[str, ...] = setting(
        "--target",
        parse=_targets,
        default=("127.0.0.1:7000",),
        metavar="HOST:PORT",
        env=True,
        repeatable=True,
        help="node address; repeatable (the first that answers is used, then the next)",
    )
    json: bool = setting(
        "--json", parse=lambda v, w: bool(v), default=False, switch=True, help="print JSON lines"
    )
    timeout: float = setting(
        "--timeout",
        parse=seconds(0.01, 3600),
        default="2",
        metavar="SECONDS",
        help="deadline of each call",
    )


#: A named election (CampaignStart.election): 1-128 letters, digits, '.', '_' or '-',
#: starting with a letter or digit.
ELECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def parse_election(value: str, what: str) -> str:
    """A named election's name, or "" (the nodes' own election) when empty."""
    text = value.strip()
    if text and not ELECTION_NAME.fullmatch(text):
        raise ConfigError(
            f"{what}: {value[:140]!r} must be 1-128 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit"
        )
    return text


def _election_setting() -> str:
    return setting(  # type: ignore[no-any-return]
        "--election",
        parse=parse_election,
        default="",
        metavar="NAME",
        shown_default="the nodes' own election",
        help="a named election (one that candidates enter with `electd campaign`, under the "
        "nodes' --elections-root)",
    )


@dataclass(frozen=True)
class LeaderConfig(QueryConfig):
    """`electd leader` and `electd watch`."""

    election: str = _election_setting()


@dataclass(frozen=True)
class NodesConfig(QueryConfig):
    """`electd nodes`."""

    selector: Mapping[str, str] = setting(
        "--selector",
        parse=parse_labels,
        default=(),
        metavar="KEY=VALUE",
        repeatable=True,
        help="only nodes with this label; repeatable",
    )
    election: str = _election_setting()


@dataclass(frozen=True)
class CampaignConfig(QueryConfig):
    """`electd campaign ELECTION --id ID [-- CMD...]`: a candidate of a named election."""

    candidate_id: str = setting(
        "--id",
        parse=parse_node_id,
        default="",
        metavar="ID",
        env="ELECTD_CANDIDATE_ID",
        help="the candidate's id (required; the rule of node ids), shown as Node.id",
    )
    value: str = setting(
        "--value",
        parse=lambda v, w: _bounded(v, w, 16 * 1024),
        default="",
        metavar="TEXT",
        help="what the candidate says about itself (Node.value, at most 16 KiB of UTF-8)",
    )
    labels: Mapping[str, str] = setting(
        "--label",
        parse=parse_labels,
        default=(),
        metavar="KEY=VALUE",
        repeatable=True,
        help="label shown with the candidate (Node.labels); repeatable",
    )
    priority: int = setting(
        "--priority",
        parse=integer(-(2**31), 2**31 - 1),
        default="0",
        metavar="N",
        help="a waiting candidate of higher priority preempts the leader",
    )
    never_lead: bool = setting(
        "--never-lead",
        parse=lambda v, w: bool(v),
        default=False,
        switch=True,
        help="be a member only: listed, never leads, never holds anyone back",
    )
    stop_on_loss: bool = setting(
        "--stop-on-loss",
        parse=lambda v, w: bool(v),
        default=False,
        switch=True,
        help="end after the first term is lost (default: campaign again, for a higher epoch)",
    )

    def check(self) -> None:
        if not self.candidate_id:
            raise ConfigError("--id: the candidate's id is required (electd campaign NAME --id ID)")


def _bounded(value: str, what: str, limit: int) -> str:
    if len(value.encode()) > limit:
        raise ConfigError(f"{what}: {len(value.encode())} bytes is more than {limit}")
    return value


@dataclass(frozen=True)
class TopConfig(QueryConfig):
    """`electd top`."""

    interval: float = setting(
        "--interval",
        parse=seconds(0.1, 3600),
        default="1",
        metavar="SECONDS",
        help="how often the screen is redrawn from a fresh look at every member",
    )
    once: bool = setting(
        "--once",
        parse=lambda v, w: bool(v),
        default=False,
        switch=True,
        help="print one frame and exit (exit code 1 when no node answered)",
    )


@dataclass(frozen=True)
class DevConfig:
    """`electd dev`: a local cluster."""

    nodes: int = setting(
        "--nodes", parse=integer(1, 50), default="3", metavar="N", help="number of nodes"
    )
    base_port: int = setting(
        "--base-port",
        parse=integer(0, 65535),
        default="7001",
        metavar="PORT",
        help="gRPC port of the first node; the others follow (0: free ports)",
    )
    session_timeout: float = setting(
        "--session-timeout",
        parse=seconds(0.1, 600),
        default="4",
        metavar="SECONDS",
        help="session timeout of each node",
    )
    workdir: str | None = setting(
        "--workdir",
        parse=optional(parse_text),
        default="",
        metavar="DIR",
        shown_default="a temporary directory, removed on exit",
        help="where ZooKeeper data and node logs go",
    )
    secure: bool = setting(
        "--secure",
        parse=lambda v, w: bool(v),
        default=False,
        switch=True,
        help="throwaway CA and certificates; ZooKeeper 3.9.5 over TLS with digest auth, the "
        "nodes authenticated with locked-down znodes and mutual TLS on gRPC; prints the "
        "commands that work against it",
    )

    def check(self) -> None:
        if not (self.base_port == 0 or 1024 <= self.base_port <= 65535 - self.nodes):
            raise ConfigError(
                f"--base-port: {self.base_port} leaves no room for {self.nodes} nodes"
            )


#: Which settings each command takes.
COMMANDS: dict[str, tuple[type, ...]] = {
    "serve": (NodeConfig, LogConfig),
    "run": (RunConfig, LogConfig),
    "leader": (LeaderConfig,),
    "nodes": (NodesConfig,),
    "watch": (LeaderConfig,),
    "campaign": (CampaignConfig,),
    "resign": (QueryConfig,),
    "elections": (QueryConfig,),
    "top": (TopConfig,),
    "dev": (DevConfig,),
    "identity": (IdentityConfig,),
}
