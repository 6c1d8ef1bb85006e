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
import textwrap
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

from electd import __version__
from electd.logfields import TRANSITION_FIELDS

logger = logging.getLogger("electd")


def _fail(message: str, code: int) -> NoReturn:
    print(f"electd: error: {message}", file=sys.stderr)
    raise SystemExit(code)


# ----- logging -------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (unix seconds, µs), mono (CLOCK_MONOTONIC seconds, µs: one
    clock for every process of the host that never steps, to order lines across processes when
    the wall clock is stepped), level, logger, thread, msg[, exc]; a state transition also
    carries event="transition", node, election, epoch, from_role, to_role, reason and leader
    (electd.logfields.TRANSITION_FIELDS)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "mono": round(getattr(record, "mono", time.monotonic()), 6),
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


def _stamp_monotonic(record: logging.LogRecord) -> bool:
    """A handler filter: `mono` (time.monotonic()) read as the record reaches the handler,
    before it waits for the handler's lock behind another thread's line."""
    record.mono = time.monotonic()
    return True


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.addFilter(_stamp_monotonic)
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
        "service and server reflection. Runs as two processes: a small supervisor and the node "
        "process it watches; the supervisor runs --leader-command only while the node leads, "
        "ends it before the lease runs out whatever happens to the node, and when the node "
        "process dies it closes the dead node's ZooKeeper session (the successor leads in "
        "milliseconds) and starts the node again. Stops gracefully on SIGTERM/SIGINT (ends the "
        "leader command, then leaves the election, so the successor takes over at once); "
        "SIGHUP is forwarded to the leader command. Every flag can also be set by the "
        "environment variable named in its help; a flag wins over the environment.",
    ),
    "run": (
        "run one command only while this process leads an election",
        "Join the election at --election-path (created if missing) and run CMD only while "
        "this process leads, the way `consul lock` does: CMD gets the fencing epoch in "
        "ELECTD_EPOCH (and ELECTD_ZNODE, ELECTD_LEASE_DEADLINE_BOOTTIME, ELECTD_NODE_ID, "
        "ELECTD_ADDRESS); when the term ends (another node leads, ZooKeeper is lost, the lease "
        "runs out, this process or its node dies) CMD and every process it started get SIGTERM "
        "and, --command-grace later, SIGKILL, before the lease runs out. CMD is executed "
        "directly (no shell unless --shell). SIGTERM and SIGINT end CMD first, then leave the "
        "election; SIGHUP is forwarded to CMD. The node also serves gRPC (--listen, a free port "
        "by default), so `electd leader --target` works against it.",
    ),
    "leader": ("print the current leader", None),
    "nodes": ("list the members in election order", None),
    "watch": ("stream leader changes until interrupted", None),
    "campaign": (
        "campaign in a named election as a candidate (and run a command while leading)",
        "Enter the named ELECTION as candidate --id through the first node in --target that "
        "answers (failing over to the next), and print one line per event: queued "
        "(position, whom it waits for), leading (the fencing epoch), lost (the epoch and why), "
        "stopped. The node holds the candidate's entry on its own ZooKeeper session and grants "
        "leases to its pings; leadership ends locally, before the lease runs out, whatever "
        "happens to the node or the network. With -- CMD, CMD runs only while this candidate "
        "leads, with ELECTD_EPOCH, ELECTD_ELECTION and ELECTD_CANDIDATE_ID in its "
        "environment: when the term ends (lost, or the lease deadline is 10 % of the lease, "
        "at least 50 ms, away without a renewal) CMD's process group gets SIGTERM, and SIGKILL "
        "just before the deadline. A term that is lost is campaigned for again (a higher "
        "epoch) unless --stop-on-loss. SIGTERM/SIGINT end CMD, resign, and exit 0.",
    ),
    "resign": (
        "end the current term of a named election (an operator's resign)",
        "End the current term of the named ELECTION, whose leader has the fencing epoch EPOCH "
        "(as `electd leader --election ELECTION` prints it): its entry is deleted, its "
        "candidate is told (lost, reason deleted) and campaigns again at the back of the "
        "queue; the next candidate leads once the old one stopped or its lease ran out. "
        "Prints the leader whose term was ended. Asks the first node in --target that answers.",
    ),
    "elections": ("list the named elections and their numbers of candidates", None),
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
    "run": "examples:\n"
    "  electd run --zk zk1:2181,zk2:2181 --election-path /scheduler -- ./scheduler --once\n"
    "      one scheduler for the whole fleet: start this on every machine\n"
    "  electd run --election-path /backup --shell -- 'pg_dump db > /backups/$ELECTD_EPOCH.sql'\n"
    "      a shell command; it exits when done, and so does electd run (--command-exit exit)\n"
    "  electd run --election-path /worker --command-exit restart -- ./worker\n"
    "      restart the worker with backoff if it exits while this process leads\n"
    "\n"
    "exit codes:\n"
    "  0     stopped by SIGTERM/SIGINT (CMD was ended first), or CMD exited with 0\n"
    "  N     CMD exited on its own with code N (--command-exit exit)\n"
    "  128+S CMD was killed by signal S (not by electd)\n"
    "  1     runtime failure: no ZooKeeper within --connect-timeout, port in use\n"
    "  2     bad usage or configuration (also: CMD not found)",
    "campaign": "examples:\n"
    "  electd campaign scheduler --id host-1 --target n1:7000 --target n2:7000\n"
    "      campaign and print the events; Ctrl-C resigns\n"
    "  electd campaign backup --id host-1 --stop-on-loss -- ./backup.sh\n"
    "      run ./backup.sh while leading (ELECTD_EPOCH is its fencing token); stop after a loss\n"
    "  electd campaign web --id host-2 --value 10.0.0.2:8080 --json\n"
    "      announce a value to watchers (electd leader --election web), JSON lines\n"
    "\n"
    "exit codes:\n"
    "  0  stopped by SIGTERM/SIGINT (after resigning), after a loss with --stop-on-loss, or CMD\n"
    "     exited 0 on its own\n"
    "  N  CMD exited on its own with code N (128+S: killed by signal S); the candidate resigned\n"
    "  1  no node answered, or the campaign was refused (e.g. ALREADY_EXISTS)\n"
    "  2  bad usage (also: CMD not found)",
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
            description=textwrap.fill(description, 88)
            if description and name in _EXAMPLES
            else description
            or summary.capitalize()
            + ", asking the first node in --target that answers (failover to the next).",
            epilog=_EXAMPLES.get(name),
            formatter_class=argparse.RawDescriptionHelpFormatter
            if name in _EXAMPLES
            else argparse.HelpFormatter,
        )
        add_arguments(cmd, *classes)
        if name in ("campaign", "resign"):
            cmd.add_argument("election", metavar="ELECTION", help="the named election")
        if name == "resign":
            cmd.add_argument("epoch", metavar="EPOCH", help="the current leader's fencing epoch")
        if name == "campaign":
            # `-- CMD [ARGS...]` is split off by main() before parsing, so that the flags may
            # come before or after ELECTION.
            cmd.usage = "electd campaign ELECTION --id ID [options] [-- CMD [ARGS...]]"
            cmd.set_defaults(cmd=[])
        if name == "run":
            cmd.add_argument(
                "cmd",
                nargs=argparse.REMAINDER,
                metavar="-- CMD [ARGS...]",
                help="the command to run while this node leads (after --)",
            )
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


def cmd_serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`electd serve` and `electd run`: the supervisor, which starts this same command line
    again as its node process (told apart by the supervisor's pipe in the environment)."""
    from electd.config import LogConfig, NodeConfig, RunConfig
    from electd.supervisor.protocol import ENV_FD

    running = args.command == "run"
    cfg = _load(RunConfig if running else NodeConfig, args)
    log = _load(LogConfig, args)
    command = _run_command(args, cfg) if running else None
    setup_logging(log.log_format, log.log_level)
    if os.environ.get(ENV_FD):
        return _node(cfg, has_command=running or bool(cfg.leader_command))
    from electd.supervisor.command import Policy
    from electd.supervisor.supervisor import Plan, supervise

    if command is None and cfg.leader_command:
        command = ["/bin/sh", "-c", cfg.leader_command]
    plan = Plan(
        node_argv=[sys.executable, "-m", "electd", *argv],
        zk_hosts=cfg.zk.hosts,
        zk_security=cfg,
        command=command,
        grace=cfg.effective_command_grace(),
        margin=cfg.command_margin(),
        policy=Policy(cfg.command_exit),
        shutdown_grace=cfg.shutdown_grace,
        session_timeout=cfg.session_timeout,
    )
    return supervise(plan)


def _run_command(args: argparse.Namespace, cfg: Any) -> list[str]:
    """CMD ARGS of `electd run`, checked before anything starts."""
    import shutil

    words = list(args.cmd or [])
    if words[:1] == ["--"]:
        words = words[1:]
    if not words:
        _fail("electd run: give the command after --, for example: electd run -- ./worker", 2)
    if cfg.leader_command:
        _fail("electd run: the command goes after --, not in --leader-command", 2)
    if cfg.shell:
        if len(words) != 1:
            _fail("electd run --shell: give the shell command as one argument", 2)
        return ["/bin/sh", "-c", words[0]]
    if shutil.which(words[0]) is None:
        _fail(f"electd run: command not found or not executable: {words[0]!r}", 2)
    return words


def _node(cfg: Any, has_command: bool) -> int:
    from electd.app import StartupError, run_node

    try:
        asyncio.run(run_node(cfg, has_command=has_command))
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
    with ElectionClient(cfg.target, call_timeout=cfg.timeout, **cfg.tls_options()) as client:
        try:
            if args.command == "leader":
                leader = client.get_leader(cfg.election).leader
                if cfg.json:
                    print(_leader_json(leader))
                else:
                    print(
                        f"leader {leader.node.id} at {leader.node.address} "
                        f"(epoch {leader.epoch}, znode {leader.node.znode})"
                    )
            elif args.command == "nodes":
                nodes = client.list_nodes(cfg.selector, cfg.election).nodes
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
            elif args.command == "resign":
                election, epoch = _election_arg(args.election), _epoch_arg(args.epoch)
                leader = client.resign(election, epoch).leader
                if cfg.json:
                    print(_leader_json(leader))
                else:
                    print(f"resigned {leader.node.id} (epoch {leader.epoch}) in {election}")
            elif args.command == "elections":
                found = client.list_elections().elections
                for e in found:
                    if cfg.json:
                        print(_dumps({"name": e.name, "candidates": e.candidates}))
                if not cfg.json:
                    width = max([len("ELECTION")] + [len(e.name) for e in found])
                    print(f"{'ELECTION'.ljust(width)}  CANDIDATES")
                    for e in found:
                        print(f"{e.name.ljust(width)}  {e.candidates}")
            else:
                return _watch(client, cfg.json, cfg.election)
        except ElectdError as exc:
            _fail(str(exc), 1)
    return 0


def _election_arg(text: str) -> str:
    from electd.config import ConfigError
    from electd.config.commands import parse_election

    try:
        name = parse_election(text, "ELECTION")
    except ConfigError as exc:
        _fail(str(exc), 2)
    if not name:
        _fail("ELECTION: give the name of a named election", 2)
    return name


def _epoch_arg(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        _fail(f"EPOCH: {text!r} is not a positive whole number (the leader's fencing epoch)", 2)
    return int(text)


def cmd_campaign(args: argparse.Namespace) -> int:
    """`electd campaign ELECTION --id ID [-- CMD...]`: the Python campaign helper with one
    line per event, running CMD (if given) while leading."""
    from electd.client import ElectdError, ElectionClient
    from electd.config import COMMANDS

    cfg: Any = _load(COMMANDS["campaign"][0], args)
    election = _election_arg(args.election)
    command = _campaign_command(args)
    try:
        client = ElectionClient(cfg.target, call_timeout=cfg.timeout, **cfg.tls_options())
    except ElectdError as exc:
        _fail(str(exc), 2)

    def on_event(event: Any) -> None:
        _print_campaign_event(event, cfg.json)

    work = _command_work(command, election, cfg.candidate_id) if command else None
    with client:
        try:
            running = client.campaign(
                election,
                cfg.candidate_id,
                work,
                value=cfg.value.encode(),
                labels=cfg.labels,
                priority=cfg.priority,
                never_lead=cfg.never_lead,
                on_loss="stop" if cfg.stop_on_loss else "recampaign",
                on_event=on_event,
            )
        except ElectdError as exc:
            _fail(str(exc), 2)

        def on_signal(signum: int, frame: Any) -> None:
            running.resign(wait=False)  # non-blocking: safe in a signal handler

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not running.wait(0.1):  # short waits: the handler runs between them
            pass
        try:
            value = running.result()
        except ElectdError as exc:
            _fail(str(exc), 1)
    return value if isinstance(value, int) else 0


KILL_SLACK = 0.02
"""CMD gets SIGKILL this long before the lease deadline if SIGTERM did not end it."""


def _command_work(command: list[str], election: str, candidate_id: str) -> Any:
    """The campaign's work for `electd campaign ... -- CMD`: CMD in a session (process group)
    of its own while the term lasts. When the term ends, the group gets SIGTERM, and SIGKILL
    KILL_SLACK before the deadline; the work returns once CMD is gone. CMD exiting on its own
    ends the campaign (resign) with its exit code (128+S when killed by signal S)."""
    import contextlib
    import subprocess

    def kill(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(proc.pid, sig)

    def work(term: Any) -> int | None:
        env = {
            **os.environ,
            "ELECTD_EPOCH": str(term.epoch),
            "ELECTD_ELECTION": election,
            "ELECTD_CANDIDATE_ID": candidate_id,
        }
        proc = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            while proc.poll() is None and not term.cancelled.is_set():
                term.cancelled.wait(0.05)
            code = proc.poll()
            if code is not None and not term.cancelled.is_set():
                return code if code >= 0 else 128 - code  # on its own: the campaign ends
            kill(proc, signal.SIGTERM)
            while proc.poll() is None and time.monotonic() < term.deadline - KILL_SLACK:
                time.sleep(0.01)
            return None
        finally:
            if proc.poll() is None:
                kill(proc, signal.SIGKILL)
                proc.wait()

    return work


def _campaign_command(args: argparse.Namespace) -> list[str]:
    import shutil

    words = list(args.cmd or [])
    if words and shutil.which(words[0]) is None:
        _fail(f"electd campaign: command not found or not executable: {words[0]!r}", 2)
    return words


def _print_campaign_event(event: Any, as_json: bool) -> None:
    """One line per event on stdout (failovers and refusals on stderr for people)."""
    kind = event.kind
    doc: dict[str, Any]
    if kind == "queued":
        doc = {"position": event.position, "waiting_for": event.waiting_for}
        if event.never_lead:
            doc["never_lead"] = True
    elif kind == "leading":
        doc = {"epoch": event.epoch, "address": event.address}
    elif kind == "lost":
        doc = {"epoch": event.epoch, "reason": event.reason, "detail": event.detail}
    elif kind == "stopped":
        doc = {"reason": event.reason}
    elif kind in ("failover", "refused"):
        doc = {"address": event.address, "reason": event.reason, "detail": event.detail}
        if not as_json:
            detail = f" ({event.detail})" if event.detail else ""
            print(f"({kind} {event.address}: {event.reason}{detail})", file=sys.stderr, flush=True)
            return
    else:
        doc = {}
    if as_json:
        print(_dumps({"event": kind, **doc}), flush=True)
    else:
        words = " ".join(f"{k}={v}" for k, v in doc.items() if v != "" and k != "detail")
        detail = f" ({doc['detail']})" if doc.get("detail") else ""
        print(f"{kind} {words}".rstrip() + detail, flush=True)


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


def _watch(client: Any, as_json: bool, election: str = "") -> int:
    watch = client.watch_leader(election=election)
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
        return run_dev(cfg.nodes, cfg.base_port, cfg.session_timeout, cfg.workdir, cfg.secure)
    except DevError as exc:
        _fail(str(exc), 1)


def cmd_identity(args: argparse.Namespace) -> int:
    from electd.config import IdentityConfig
    from electd.engine.identity import ClusterIdentity, IdentityError
    from electd.zk.admin import ZkAdmin, ZkAdminError
    from electd.zk.security import client_options, lock_acl

    cfg = _load(IdentityConfig, args)
    try:
        with ZkAdmin(cfg.zk.hosts, cfg.zk_path, cfg.connect_timeout, client_options(cfg)) as zk:
            if cfg.apply_acl:  # lock an existing path down (SECURITY.md, "ZooKeeper")
                print(_dumps(zk.apply_acl(lock_acl(cfg)).doc()))
                return 0
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
    return run_top(cfg.target, cfg.interval, cfg.timeout, cfg.once, cfg.tls_options())


def _identity_doc(ident: Any) -> dict[str, Any]:
    return {"cluster": ident.cluster, "epoch_base": ident.epoch_base, "previous": ident.previous}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words: list[str] = []
    if argv[:1] == ["campaign"] and "--" in argv:
        cut = argv.index("--")
        argv, words = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    if args.command == "campaign":
        args.cmd = words
    if args.command in ("serve", "run"):
        return cmd_serve(args, argv)
    if args.command == "dev":
        return cmd_dev(args)
    if args.command == "identity":
        return cmd_identity(args)
    if args.command == "top":
        return cmd_top(args)
    if args.command == "campaign":
        return cmd_campaign(args)
    return cmd_query(args)


if __name__ == "__main__":
    raise SystemExit(main())
