"""Value types of the configuration and their parsers: each parser turns the text of a flag
or an environment variable into a validated value, or raises ConfigError with one message that
names the setting (`what`) and the problem. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from electd.names import HOST, MAX_LABELS, label_problem, node_id_problem

_V = TypeVar("_V")


class ConfigError(ValueError):
    """Invalid configuration; the message names the setting and what is wrong with it."""


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


def parse_host_port(value: str, what: str, allow_zero: bool = False) -> HostPort:
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{what}: {value!r} is not HOST:PORT")
    if not HOST.fullmatch(host):
        raise ConfigError(f"{what}: {host!r} in {value!r} is not a valid host name or address")
    if not port_text.isdigit():
        raise ConfigError(f"{what}: port {port_text!r} in {value!r} is not a number")
    port = int(port_text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(f"{what}: port {port} in {value!r} is out of range {low}-65535")
    return HostPort(host, port)


def parse_zk(value: str, what: str = "--zk") -> ZkTarget:
    """HOST:PORT[,HOST:PORT...][/chroot]"""
    text = value.strip()
    if not text:
        raise ConfigError(f"{what}: empty ZooKeeper connect string")
    hosts_part, slash, chroot_rest = text.partition("/")
    chroot = ""
    if slash:
        chroot = validate_path("/" + chroot_rest, f"{what} chroot")
    servers = []
    for item in hosts_part.split(","):
        if not item.strip():
            raise ConfigError(f"{what}: empty server in {value!r}")
        servers.append(parse_host_port(item, what))
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


def parse_labels(items: Iterable[str], what: str = "--label") -> Mapping[str, str]:
    """KEY=VALUE items (the rule of electd.names), each key once."""
    labels: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep:
            raise ConfigError(f"{what}: {item!r} is not KEY=VALUE")
        problem = label_problem(key, val)
        if problem:
            raise ConfigError(f"{what}: {problem}")
        if key in labels:
            raise ConfigError(f"{what}: key {key!r} given twice")
        labels[key] = val
    if len(labels) > MAX_LABELS:
        raise ConfigError(f"{what}: more than {MAX_LABELS} labels")
    return MappingProxyType(labels)


def parse_node_id(value: str, what: str) -> str:
    text = value.strip()
    problem = node_id_problem(text) if text else None
    if problem:
        raise ConfigError(f"{what}: {problem}")
    return text


def parse_text(value: str, what: str) -> str:
    return value.strip()


def seconds(low: float, high: float) -> Callable[[str, str], float]:
    """A parser of a number of seconds within [low, high]."""

    def parse(value: str, what: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{what}: {value!r} is not a number of seconds") from None
        if not low <= number <= high:
            raise ConfigError(f"{what}: {number:g}s is outside {low:g}-{high:g} seconds")
        return number

    return parse


def integer(low: int, high: int) -> Callable[[str, str], int]:
    """A parser of a whole number within [low, high]."""

    def parse(value: str, what: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigError(f"{what}: {value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ConfigError(f"{what}: {number} is outside {low}-{high}")
        return number

    return parse


def optional(parse: Callable[[str, str], _V]) -> Callable[[str, str], _V | None]:
    """Empty text means "not set" (None); anything else goes through `parse`."""

    def parse_optional(value: str, what: str) -> _V | None:
        return parse(value, what) if value.strip() else None

    return parse_optional
