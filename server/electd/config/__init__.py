"""Configuration at the edge: the settings table (table.py), the config of each command built
from it (commands.py) and the value types and parsers (values.py). Bad configuration fails
here, at start, with one message naming the setting. Imports neither kazoo nor grpc.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from electd.config.commands import (
    COMMANDS,
    DevConfig,
    IdentityConfig,
    LogConfig,
    NodeConfig,
    NodesConfig,
    QueryConfig,
    RunConfig,
    TopConfig,
)
from electd.config.table import Setting, add_arguments, load, load_args, settings_of, to_argv
from electd.config.values import (
    ConfigError,
    HostPort,
    ZkTarget,
    parse_host_port,
    parse_labels,
    parse_zk,
    validate_path,
)


def build_node_config(environ: Mapping[str, str] | None = None, **given: Any) -> NodeConfig:
    """Validate raw settings (by name, as typed on a command line) into a NodeConfig; what is
    not given comes from `environ` (default: none), else the table's default."""
    return load(NodeConfig, given, environ if environ is not None else {})


def serve_argv(**values: Any) -> list[str]:
    """`electd serve` flags for these settings (for process launchers)."""
    return to_argv(NodeConfig, **values)


__all__ = [
    "COMMANDS",
    "ConfigError",
    "DevConfig",
    "HostPort",
    "IdentityConfig",
    "LogConfig",
    "NodeConfig",
    "NodesConfig",
    "QueryConfig",
    "RunConfig",
    "Setting",
    "TopConfig",
    "ZkTarget",
    "add_arguments",
    "build_node_config",
    "load",
    "load_args",
    "parse_host_port",
    "parse_labels",
    "parse_zk",
    "serve_argv",
    "settings_of",
    "to_argv",
    "validate_path",
]
