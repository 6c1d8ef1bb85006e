"""Node configuration: frozen dataclasses and the validation that makes bad config fail here,
at the edge, with one message naming the problem. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class ConfigError(ValueError):
    """Invalid configuration; the message names the setting and what is wrong with it."""


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9.]+)$")
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
MAX_LABEL_VALUE = 256
MAX_LABELS = 64


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ZkTarget:
    """A ZooKeeper connect string: servers and an optional chroot."""

    servers: tuple[HostPort, ...]
    chroot: str = ""

    @property
    def hosts(self) -> str:
        return ",".join(str(s) for s in self.servers)

    def __str__(self) -> str:
        return self.hosts + self.chroot


@dataclass(frozen=True)
class NodeConfig:
    zk: ZkTarget
    election_path: str = "/election"
    listen: HostPort = HostPort("127.0.0.1", 7000)
    advertise: HostPort | None = None
    node_id: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    session_timeout: float = 10.0
    connect_timeout: float = 15.0
    shutdown_grace: float = 5.0
    max_streams: int = 20_000
    leader_command: str = ""

    @property
    def zk_path(self) -> str:
        """The election path as seen from ZooKeeper's root (chroot included)."""
        return self.zk.chroot + self.election_path

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


def parse_host_port(value: str, what: str, allow_zero: bool = False) -> HostPort:
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT")
    if not _HOST.match(host):
        raise ConfigError(f"{what}: {host!r} in {value!r} is not a valid host name or address")
    if not port_text.isdigit():
        raise ConfigError(f"{what}: port {port_text!r} in {value!r} is not a number")
    port = int(port_text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(f"{what}: port {port} in {value!r} is out of range {low}-65535")
    return HostPort(host, port)


def parse_zk(value: str) -> ZkTarget:
    """HOST:PORT[,HOST:PORT...][/chroot]"""
    text = value.strip()
    if not text:
        raise ConfigError("--zk: empty ZooKeeper connect string")
    hosts_part, slash, chroot_rest = text.partition("/")
    chroot = ""
    if slash:
        chroot = validate_path("/" + chroot_rest, "--zk chroot")
    servers = []
    for item in hosts_part.split(","):
        if not item.strip():
            raise ConfigError(f"--zk: empty server in {value!r}")
        servers.append(parse_host_port(item, "--zk"))
    return ZkTarget(tuple(servers), chroot)


def validate_path(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise ConfigError(f"{what}: {path!r} must start with '/'")
    if path == "/":
        raise ConfigError(f"{what}: the root '/' cannot be used")
    if path.endswith("/"):
        raise ConfigError(f"{what}: {path!r} must not end with '/'")
    for part in path[1:].split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(f"{what}: {path!r} has an empty, '.' or '..' segment")
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in part):
            raise ConfigError(f"{what}: {path!r} contains control characters")
    if path == "/zookeeper" or path.startswith("/zookeeper/"):
        raise ConfigError(f"{what}: {path!r} is under ZooKeeper's reserved /zookeeper")
    return path


def parse_labels(items: Iterable[str]) -> Mapping[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep:
            raise ConfigError(f"--label: {item!r} is not KEY=VALUE")
        if not _LABEL_KEY.match(key):
            raise ConfigError(
                f"--label: key {key!r} must be 1-63 letters, digits, '.', '_', '/' or '-', "
                "starting with a letter or digit"
            )
        if len(val) > MAX_LABEL_VALUE:
            raise ConfigError(f"--label: value of {key!r} is longer than {MAX_LABEL_VALUE}")
        if key in labels:
            raise ConfigError(f"--label: key {key!r} given twice")
        labels[key] = val
    if len(labels) > MAX_LABELS:
        raise ConfigError(f"--label: more than {MAX_LABELS} labels")
    return MappingProxyType(labels)


def build_node_config(
    *,
    zk: str,
    election_path: str,
    listen: str,
    advertise: str | None,
    node_id: str | None,
    labels: Iterable[str],
    session_timeout: float,
    connect_timeout: float,
    shutdown_grace: float = 5.0,
    max_streams: int = 20_000,
    leader_command: str = "",
) -> NodeConfig:
    """Validate raw settings (from flags or environment) into a NodeConfig."""
    if node_id and not _NODE_ID.match(node_id):
        raise ConfigError(
            f"--node-id: {node_id!r} must be 1-128 letters, digits, '.', '_', ':', '@' or '-', "
            "starting with a letter or digit"
        )
    if not 0.1 <= session_timeout <= 600:
        raise ConfigError(f"--session-timeout: {session_timeout:g}s is outside 0.1-600 seconds")
    if not 0.1 <= connect_timeout <= 3600:
        raise ConfigError(f"--connect-timeout: {connect_timeout:g}s is outside 0.1-3600 seconds")
    if not 0 <= shutdown_grace <= 600:
        raise ConfigError(f"--shutdown-grace: {shutdown_grace:g}s is outside 0-600 seconds")
    if max_streams < 1:
        raise ConfigError(f"--max-streams: {max_streams} must be at least 1")
    return NodeConfig(
        zk=parse_zk(zk),
        election_path=validate_path(election_path, "--election-path"),
        listen=parse_host_port(listen, "--listen", allow_zero=True),
        advertise=parse_host_port(advertise, "--advertise") if advertise else None,
        node_id=node_id or "",
        labels=parse_labels(labels),
        session_timeout=session_timeout,
        connect_timeout=connect_timeout,
        shutdown_grace=shutdown_grace,
        max_streams=max_streams,
        leader_command=leader_command.strip(),
    )
