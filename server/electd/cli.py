"""The `electd` command line: the only place that reads argv and the environment and that
configures logging. Every flag of `serve` can also be set by an ELECTD_* environment variable;
flags win over the environment.

Exit codes: 0 success, 1 runtime failure (no ZooKeeper, no node answered, port in use),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from electd import __version__

logger = logging.getLogger("electd")

ENV_HELP = "(env %s)"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        _fail(f"{name}: {raw!r} is not a number", 2)


def _fail(message: str, code: int) -> NoReturn:
    print(f"electd: error: {message}", file=sys.stderr)
    raise SystemExit(code)


# ----- logging -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (unix seconds, µs), level, logger, thread, msg[, exc]."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kazoo is chatty at INFO about every reconnect attempt; its warnings still show.
    if level.upper() != "DEBUG":
        logging.getLogger("kazoo").setLevel(logging.WARNING)


# ----- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="electd",
        description="electd: leader election and cluster membership over Apache ZooKeeper, "
        "served over gRPC (electd.v1.ElectionService).",
        epilog="Run 'electd COMMAND --help' for the flags of each command.",
    )
    parser.add_argument("--version", action="version", version=f"electd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run a node: join the election and serve gRPC",
        description="Join the leader election on ZooKeeper and serve ElectionService, the "
        "gRPC health service and server reflection. Stops gracefully on SIGTERM/SIGINT "
        "(leaves the election first, so the successor takes over at once).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument(
        "--zk",
        default=_env("ELECTD_ZK", "127.0.0.1:2181"),
        metavar="HOST:PORT[,HOST:PORT...][/chroot]",
        help="ZooKeeper connect string " + ENV_HELP % "ELECTD_ZK",
    )
    serve.add_argument(
        "--election-path",
        default=_env("ELECTD_ELECTION_PATH", "/election"),
        metavar="PATH",
        help="persistent znode under which members register; created if "
        "missing " + ENV_HELP % "ELECTD_ELECTION_PATH",
    )
    serve.add_argument(
        "--listen",
        default=_env("ELECTD_LISTEN", "127.0.0.1:7000"),
        metavar="HOST:PORT",
        help="gRPC bind address; port 0 picks a free port " + ENV_HELP % "ELECTD_LISTEN",
    )
    serve.add_argument(
        "--advertise",
        default=_env("ELECTD_ADVERTISE", "") or None,
        metavar="HOST:PORT",
        help="address other nodes and clients are told (default: the listen "
        "address with the bound port) " + ENV_HELP % "ELECTD_ADVERTISE",
    )
    serve.add_argument(
        "--node-id",
        default=_env("ELECTD_NODE_ID", "") or None,
        metavar="ID",
        help="stable node id (default: <advertised host>-<port>) " + ENV_HELP % "ELECTD_NODE_ID",
    )
    serve.add_argument(
        "--label",
        action="append",
        metavar="KEY=VALUE",
        default=[x for x in _env("ELECTD_LABELS", "").split(",") if x],
        help="label to publish with the node; repeatable (env ELECTD_LABELS, comma-separated)",
    )
    serve.add_argument(
        "--session-timeout",
        type=float,
        metavar="SECONDS",
        default=_env_float("ELECTD_SESSION_TIMEOUT", 10.0),
        help="ZooKeeper session timeout: a crashed leader is replaced after "
        "about this long; the server's maxSessionTimeout must allow it "
        + ENV_HELP
        % "ELECTD_SESSION_TIMEOUT",
    )
    serve.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        default=_env_float("ELECTD_CONNECT_TIMEOUT", 15.0),
        help="give up at startup if no ZooKeeper server answers within this "
        + ENV_HELP % "ELECTD_CONNECT_TIMEOUT",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="SECONDS",
        default=_env_float("ELECTD_SHUTDOWN_GRACE", 5.0),
        help="how long in-flight calls may finish on shutdown "
        + ENV_HELP % "ELECTD_SHUTDOWN_GRACE",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        metavar="N",
        default=int(_env_float("ELECTD_MAX_STREAMS", 20000)),
        help="cap on concurrent WatchLeader streams (RESOURCE_EXHAUSTED beyond) "
        + ENV_HELP % "ELECTD_MAX_STREAMS",
    )
    serve.add_argument(
        "--leader-command",
        default=_env("ELECTD_LEADER_COMMAND", ""),
        metavar="CMD",
        help="shell command to run only while this node leads; it gets the "
        "fencing epoch in ELECTD_EPOCH and is sent SIGTERM the moment the node "
        "stops leading " + ENV_HELP % "ELECTD_LEADER_COMMAND",
    )
    _add_logging(serve)

    for name, text in (
        ("leader", "print the current leader"),
        ("nodes", "list the members in election order"),
        ("watch", "stream leader changes until interrupted"),
    ):
        cmd = sub.add_parser(
            name,
            help=text,
            description=text.capitalize() + ", asking the "
            "first node in --target that answers (failover to the next).",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        cmd.add_argument(
            "--target",
            action="append",
            metavar="HOST:PORT",
            help="node address; repeatable (default: env ELECTD_TARGET, "
            "comma-separated, else 127.0.0.1:7000)",
        )
        cmd.add_argument("--json", action="store_true", help="print JSON lines for scripts")
        cmd.add_argument(
            "--timeout", type=float, default=2.0, metavar="SECONDS", help="deadline of each call"
        )
        if name == "nodes":
            cmd.add_argument(
                "--selector",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="only nodes with this label; repeatable",
            )

    dev = sub.add_parser(
        "dev",
        help="run a local cluster: a real ZooKeeper and N nodes",
        description="Start a real standalone ZooKeeper (from the installed ZooKeeper jars) and "
        "N electd nodes on consecutive ports, print their addresses and the leader, stream "
        "leader changes, and stop everything on Ctrl-C.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    dev.add_argument("--nodes", type=int, default=3, metavar="N", help="number of nodes (1-50)")
    dev.add_argument(
        "--base-port",
        type=int,
        default=7001,
        metavar="PORT",
        help="gRPC port of the first node; the others follow (0: free ports)",
    )
    dev.add_argument(
        "--session-timeout",
        type=float,
        default=4.0,
        metavar="SECONDS",
        help="session timeout of each node",
    )
    dev.add_argument(
        "--workdir",
        default=None,
        metavar="DIR",
        help="where ZooKeeper data and node logs go (default: a temp dir, removed on exit)",
    )
    return parser


def _add_logging(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=_env("ELECTD_LOG_FORMAT", "text"),
        help="log line format " + ENV_HELP % "ELECTD_LOG_FORMAT",
    )
    cmd.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=_env("ELECTD_LOG_LEVEL", "info").lower(),
        help="log level " + ENV_HELP % "ELECTD_LOG_LEVEL",
    )


# ----- commands --------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from electd.app import StartupError, run_node
    from electd.config import ConfigError, build_node_config

    try:
        cfg = build_node_config(
            zk=args.zk,
            election_path=args.election_path,
            listen=args.listen,
            advertise=args.advertise,
            node_id=args.node_id,
            labels=args.label,
            session_timeout=args.session_timeout,
            connect_timeout=args.connect_timeout,
            shutdown_grace=args.shutdown_grace,
            max_streams=args.max_streams,
            leader_command=args.leader_command,
        )
    except ConfigError as exc:
        _fail(str(exc), 2)
    setup_logging(args.log_format, args.log_level)
    try:
        asyncio.run(run_node(cfg))
    except StartupError as exc:
        _fail(str(exc), 1)
    return 0


def _targets(args: argparse.Namespace) -> list[str]:
    from electd.config import ConfigError, parse_host_port

    raw = args.target or [t for t in _env("ELECTD_TARGET", "127.0.0.1:7000").split(",") if t]
    try:
        return [str(parse_host_port(t, "--target")) for t in raw]
    except ConfigError as exc:
        _fail(str(exc), 2)


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _leader_json(leader: Any) -> str:
    return _dumps({"id": leader.node.id, "address": leader.node.address, "epoch": leader.epoch})


def cmd_query(args: argparse.Namespace) -> int:
    import grpc

    from electd.client import ElectionClient, NoNodeAvailable

    targets = _targets(args)
    selector = {}
    for item in getattr(args, "selector", []):
        key, sep, val = item.partition("=")
        if not sep:
            _fail(f"--selector: {item!r} is not KEY=VALUE", 2)
        selector[key] = val
    with ElectionClient(targets, timeout=args.timeout) as client:
        try:
            if args.command == "leader":
                leader = client.get_leader()
                if args.json:
                    print(_leader_json(leader))
                else:
                    print(
                        f"leader {leader.node.id} at {leader.node.address} "
                        f"(epoch {leader.epoch}, znode {leader.node.znode})"
                    )
            elif args.command == "nodes":
                nodes = client.list_nodes(selector)
                for n in nodes:
                    if args.json:
                        print(
                            _dumps(
                                {
                                    "id": n.id,
                                    "address": n.address,
                                    "sequence": n.sequence,
                                    "is_leader": n.is_leader,
                                    "watches": n.watches,
                                }
                            )
                        )
                if not args.json:
                    _print_nodes(nodes)
            else:
                return _watch(client, args.json)
        except NoNodeAvailable as exc:
            _fail(str(exc), 1)
        except grpc.RpcError as exc:
            _fail(f"{exc.code().name}: {exc.details()}", 1)
    return 0


def _print_nodes(nodes: Sequence[Any]) -> None:
    rows = [("", "ID", "ADDRESS", "SEQ", "WATCHES", "LABELS")]
    for n in nodes:
        labels = ",".join(f"{k}={v}" for k, v in sorted(n.labels.items()))
        rows.append(
            (
                "*" if n.is_leader else "",
                n.id,
                n.address,
                str(n.sequence),
                n.watches[-10:] if n.watches else "-",
                labels or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print("(* = leader; WATCHES = sequence of the predecessor znode it watches)")


def _watch(client: Any, as_json: bool) -> int:
    watch = client.watch()
    stopped = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopped.set()
        watch.cancel()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for leader in watch:
        if as_json:
            print(_leader_json(leader), flush=True)
        else:
            stamp = time.strftime("%H:%M:%S")
            print(
                f"{stamp} leader {leader.node.id} at {leader.node.address} (epoch {leader.epoch})",
                flush=True,
            )
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from electd.devcluster.cluster import DevError, run_dev

    if not 1 <= args.nodes <= 50:
        _fail(f"--nodes: {args.nodes} is outside 1-50", 2)
    if not (args.base_port == 0 or 1024 <= args.base_port <= 65535 - args.nodes):
        _fail(f"--base-port: {args.base_port} leaves no room for {args.nodes} nodes", 2)
    try:
        return run_dev(args.nodes, args.base_port, args.session_timeout, args.workdir)
    except DevError as exc:
        _fail(str(exc), 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "dev":
        return cmd_dev(args)
    return cmd_query(args)


if __name__ == "__main__":
    raise SystemExit(main())
