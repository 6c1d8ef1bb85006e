"""The `electd` command line: the only place that reads argv and the environment and that
configures logging. The flags of every command come from the settings table (electd.config);
most can also be set by an ELECTD_* environment variable, and a flag wins over the environment.

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
from typing import Any, NoReturn, TypeVar

from electd import __version__
from electd.engine.model import TRANSITION_FIELDS

logger = logging.getLogger("electd")


def _fail(message: str, code: int) -> NoReturn:
    print(f"electd: error: {message}", file=sys.stderr)
    raise SystemExit(code)


# ----- logging -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (unix seconds, µs), level, logger, thread, msg[, exc]; a
    state transition also carries event="transition", node, election, epoch, from_role,
    to_role, reason and leader (electd.engine.model.TRANSITION_FIELDS)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        for key in TRANSITION_FIELDS:
            if key in record.__dict__:
                doc[key] = record.__dict__[key]
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

_ABOUT = {
    "serve": (
        "run a node: join the election and serve gRPC",
        "Join the leader election on ZooKeeper and serve ElectionService, the gRPC health "
        "service and server reflection. Stops gracefully on SIGTERM/SIGINT (leaves the "
        "election first, so the successor takes over at once). Every flag can also be set by "
        "the environment variable named in its help; a flag wins over the environment.",
    ),
    "leader": ("print the current leader", None),
    "nodes": ("list the members in election order", None),
    "watch": ("stream leader changes until interrupted", None),
    "identity": (
        "show or write the cluster identity of an election path",
        "Print the cluster identity the election path carries (its id, epoch base, and the "
        "cluster it carries on). With --epoch-floor, write a new identity whose epochs all "
        "exceed EPOCH, carrying on the present one (or --previous): the procedure after an "
        "ensemble was rebuilt from empty data, whose zxids (and so epochs) would start again "
        "from the bottom. Running nodes of the old cluster accept it at once. With only "
        "--cluster-id, create the first identity of a path for nodes started with "
        "--cluster-id.",
    ),
    "top": (
        "a live view of the cluster in the terminal",
        "Show the members in election order, the leader and its epoch, who watches whom, and "
        "for every member its health and whom it vouches for (asked of that member itself), "
        "with the last leader changes as WatchLeader reports them; redrawn every --interval. "
        "Asks the first node in --target that answers; Ctrl-C ends it.",
    ),
    "dev": (
        "run a local cluster: a real ZooKeeper and N nodes",
        "Start a real standalone ZooKeeper (from the installed ZooKeeper jars) and N electd "
        "nodes on consecutive ports, print their addresses and the leader, stream leader "
        "changes, and stop everything on Ctrl-C.",
    ),
}


_EXAMPLES = {
    "identity": "examples:\n"
    "  electd identity --zk zk1:2181,zk2:2181,zk3:2181\n"
    '      print the identity: {"cluster":"3f2a...","epoch_base":0,"previous":""}\n'
    "  electd identity --zk zk1:2181 --epoch-floor 4294967400\n"
    "      after rebuilding the ensemble: epochs from now on exceed 4294967400 (the nodes'\n"
    "      refusal message names that number and the --previous to give)\n"
    "  electd identity --zk zk1:2181 --cluster-id 0123456789abcdef0123456789abcdef\n"
    "      create the first identity for nodes started with that --cluster-id",
}


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per entry of config.COMMANDS, its flags derived from the settings table."""
    from electd.config import COMMANDS, add_arguments

    parser = argparse.ArgumentParser(
        prog="electd",
        description="electd: leader election and cluster membership over Apache ZooKeeper, "
        "served over gRPC (electd.v1.ElectionService).",
        epilog="Run 'electd COMMAND --help' for the flags of each command.",
    )
    parser.add_argument("--version", action="version", version=f"electd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, classes in COMMANDS.items():
        summary, description = _ABOUT[name]
        cmd = sub.add_parser(
            name,
            help=summary,
            description=description
            or summary.capitalize()
            + ", asking the first node in --target that answers (failover to the next).",
            epilog=_EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter
            if name in _EXAMPLES
            else argparse.HelpFormatter,
        )
        add_arguments(cmd, *classes)
    return parser


# ----- commands --------------------------------------------------------------------------------


_C = TypeVar("_C")


def _load(cls: type[_C], args: argparse.Namespace) -> _C:
    """The validated config of `cls` from the command line and the environment; bad
    configuration is one line on stderr and exit code 2."""
    from electd.config import ConfigError, load_args

    try:
        return load_args(cls, args, os.environ)
    except ConfigError as exc:
        _fail(str(exc), 2)


def cmd_serve(args: argparse.Namespace) -> int:
    from electd.app import StartupError, run_node
    from electd.config import LogConfig, NodeConfig

    cfg, log = _load(NodeConfig, args), _load(LogConfig, args)
    setup_logging(log.log_format, log.log_level)
    try:
        asyncio.run(run_node(cfg))
    except StartupError as exc:
        _fail(str(exc), 1)
    return 0


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _leader_json(leader: Any) -> str:
    return _dumps({"id": leader.node.id, "address": leader.node.address, "epoch": leader.epoch})


def cmd_query(args: argparse.Namespace) -> int:
    from electd.client import ElectdError, ElectionClient
    from electd.config import COMMANDS

    cfg: Any = _load(COMMANDS[args.command][0], args)
    with ElectionClient(cfg.target, call_timeout=cfg.timeout) as client:
        try:
            if args.command == "leader":
                leader = client.get_leader().leader
                if cfg.json:
                    print(_leader_json(leader))
                else:
                    print(
                        f"leader {leader.node.id} at {leader.node.address} "
                        f"(epoch {leader.epoch}, znode {leader.node.znode})"
                    )
            elif args.command == "nodes":
                nodes = client.list_nodes(cfg.selector).nodes
                for n in nodes:
                    if cfg.json:
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
                if not cfg.json:
                    _print_nodes(nodes)
            else:
                return _watch(client, cfg.json)
        except ElectdError as exc:
            _fail(str(exc), 1)
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
    watch = client.watch_leader()
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
    from electd.config import DevConfig
    from electd.devcluster.cluster import DevError, run_dev

    cfg = _load(DevConfig, args)
    try:
        return run_dev(cfg.nodes, cfg.base_port, cfg.session_timeout, cfg.workdir)
    except DevError as exc:
        _fail(str(exc), 1)


def cmd_identity(args: argparse.Namespace) -> int:
    from electd.config import IdentityConfig
    from electd.engine.identity import ClusterIdentity, IdentityError
    from electd.zk.admin import ZkAdmin, ZkAdminError

    cfg = _load(IdentityConfig, args)
    try:
        with ZkAdmin(cfg.zk.hosts, cfg.zk_path, cfg.connect_timeout) as zk:
            found = zk.read()
            current = None
            if found is not None and (found[0] or found[1]):
                try:
                    current = ClusterIdentity.decode(found[0])
                except IdentityError as exc:
                    if cfg.epoch_floor is None:
                        _fail(f"{cfg.election_path} carries no cluster identity ({exc})", 1)
            if cfg.epoch_floor is None and not (cfg.cluster_id and current is None):
                if current is None:
                    _fail(f"{cfg.election_path} has no cluster identity yet", 1)
                print(_dumps(_identity_doc(current)))
                return 0
            try:
                new = ClusterIdentity.new(
                    cfg.cluster_id,
                    cfg.epoch_floor or 0,
                    cfg.previous or (current.cluster if current else ""),
                )
            except IdentityError as exc:
                _fail(str(exc), 2)
            zk.write(new.encode(), None if found is None else found[1])
            print(_dumps(_identity_doc(new)))
    except ZkAdminError as exc:
        _fail(str(exc), 1)
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from electd.config import TopConfig
    from electd.top.app import run_top

    cfg = _load(TopConfig, args)
    return run_top(cfg.target, cfg.interval, cfg.timeout, cfg.once)


def _identity_doc(ident: Any) -> dict[str, Any]:
    return {"cluster": ident.cluster, "epoch_base": ident.epoch_base, "previous": ident.previous}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "dev":
        return cmd_dev(args)
    if args.command == "identity":
        return cmd_identity(args)
    if args.command == "top":
        return cmd_top(args)
    return cmd_query(args)


if __name__ == "__main__":
    raise SystemExit(main())
