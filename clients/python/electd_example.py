"""The Python example client, exactly as the other languages' examples (clients/README.md):

    leader    ADDR...                  the current leader (--election NAME: of a named election)
    nodes     ADDR...                  the members in election order (--election NAME)
    watch     ADDR...                  leader changes until SIGINT/SIGTERM (--election NAME)
    campaign  ELECTION ID ADDR...      campaign as ID until SIGINT/SIGTERM (then resign); prints
                                       "queued position=P", "leading epoch=E",
                                       "lost epoch=E reason=R", "stopped"; while leading appends
                                       "E ID" every 100 ms to $ELECTD_CAMPAIGN_LOG when set
                                       (--value V, --priority N, --stop-on-loss)
    resign    ELECTION EPOCH ADDR...   end the term EPOCH of ELECTION (an operator's resign)
    elections ADDR...                  the named elections and their numbers of candidates

Built on `electd_client`, the client-only distribution in this folder (pip install
./clients/python). Exit codes: 0 success (and on SIGINT/SIGTERM for watch and campaign), 1 no
node answered or another failure, 2 bad usage."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from electd_client import CampaignEvent, ElectdError, ElectionClient, Term, validate_address

COMMANDS = ("leader", "nodes", "watch", "campaign", "resign", "elections")
LOG_EVERY = 0.1  # seconds between the lines the campaign's work appends


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="electd-python", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("args", nargs="+", metavar="ARG", help="the command's arguments")
    parser.add_argument("--election", default="", metavar="NAME", help="a named election")
    parser.add_argument("--value", default="", metavar="V", help="campaign: the value")
    parser.add_argument("--priority", default=0, type=int, metavar="N", help="campaign")
    parser.add_argument("--stop-on-loss", action="store_true", help="campaign: stop on loss")
    # The four TLS options of clients/README.md, named as the electd command line names them.
    parser.add_argument("--tls-ca", default="", metavar="FILE", help="PEM CAs of the nodes")
    parser.add_argument("--tls-cert", default="", metavar="FILE", help="client certificate")
    parser.add_argument("--tls-key", default="", metavar="FILE", help="its private key")
    parser.add_argument("--tls-server-name", default="", metavar="NAME", help="expected name")
    # --json and the flags may come before or after the command.
    args = parser.parse_intermixed_args(argv)
    positional: list[str] = list(args.args)
    need = {"campaign": 2, "resign": 2}.get(args.command, 0)
    if len(positional) <= need:
        usage = {"campaign": "ELECTION ID ADDR...", "resign": "ELECTION EPOCH ADDR..."}
        parser.error(f"{args.command}: want {usage.get(args.command, 'ADDR...')}")
    if args.command != "campaign" and (args.value or args.priority or args.stop_on_loss):
        parser.error("--value, --priority and --stop-on-loss: only with campaign")
    if args.election and args.command not in ("leader", "nodes", "watch"):
        parser.error(f"--election: not an option of {args.command}")
    head, rest = positional[:need], positional[need:]
    if args.command == "resign" and not (head[1].isdigit() and int(head[1]) > 0):
        parser.error(f"resign: EPOCH must be a positive integer, got {head[1]!r}")
    try:
        addresses = [validate_address(a) for a in rest]
        client = ElectionClient(
            addresses,
            tls_ca=args.tls_ca,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_server_name=args.tls_server_name,
        )
    except ElectdError as exc:
        parser.error(str(exc).replace("tls_", "--tls-").replace("_name", "-name"))
    with client:
        try:
            if args.command == "campaign":
                return campaign(client, head[0], head[1], args)
            run(client, args, head)
        except ElectdError as exc:
            print(f"electd-python: {exc}", file=sys.stderr)
            return 1
    return 0


def leader_line(leader: Any, as_json: bool) -> str:
    doc = {"id": leader.node.id, "address": leader.node.address, "epoch": leader.epoch}
    if as_json:
        return dumps(doc)
    return f"leader {doc['id']} at {doc['address']} (epoch {doc['epoch']})"


def run(client: ElectionClient, args: argparse.Namespace, head: list[str]) -> None:
    if args.command == "leader":
        print(leader_line(client.get_leader(args.election).leader, args.json))
    elif args.command == "nodes":
        for n in client.list_nodes(election=args.election).nodes:
            doc = {
                "id": n.id,
                "address": n.address,
                "sequence": n.sequence,
                "is_leader": n.is_leader,
                "watches": n.watches,
            }
            print(
                dumps(doc)
                if args.json
                else f"{'*' if n.is_leader else ' '} {n.id} {n.address} seq={n.sequence}"
            )
    elif args.command == "resign":
        print(leader_line(client.resign(head[0], int(head[1])).leader, args.json))
    elif args.command == "elections":
        for e in client.list_elections().elections:
            doc = {"name": e.name, "candidates": e.candidates}
            print(dumps(doc) if args.json else f"{e.name} candidates={e.candidates}")
    else:
        # Failovers go to stderr for people; stdout keeps the leader lines only.
        watch = client.watch_leader(
            on_failover=None
            if args.json
            else lambda addr, why: print(f"(left {addr}: {why})", file=sys.stderr),
            election=args.election,
        )
        # SIGINT/SIGTERM end the watch at once (also during a backoff or a pending
        # connection); the program then exits 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: watch.cancel())
        for leader in watch:
            print(leader_line(leader, args.json), flush=True)


def campaign(client: ElectionClient, election: str, candidate_id: str, args: Any) -> int:
    """Campaign until SIGINT/SIGTERM (then resign and exit 0), or until a loss with
    --stop-on-loss. The work appends "EPOCH ID" lines to $ELECTD_CAMPAIGN_LOG while leading."""
    log_path = os.environ.get("ELECTD_CAMPAIGN_LOG", "")

    def work(term: Term) -> None:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_path else -1
        line = f"{term.epoch} {candidate_id}\n".encode()
        try:
            # Only while the term lasts: checked right before each write.
            while not term.cancelled.is_set():
                if fd >= 0:
                    os.write(fd, line)
                term.cancelled.wait(LOG_EVERY)
        finally:
            if fd >= 0:
                os.close(fd)

    def on_event(event: CampaignEvent) -> None:
        if event.kind == "queued":
            say(f"queued position={event.position}")
        elif event.kind == "leading":
            say(f"leading epoch={event.epoch}")
        elif event.kind == "lost":
            say(f"lost epoch={event.epoch} reason={event.reason}")
        elif event.kind == "stopped":
            say("stopped")
        elif event.kind == "failover":
            print(f"(left {event.address}: {event.reason})", file=sys.stderr, flush=True)
        elif event.kind == "refused":
            print(f"(refused {event.reason}: {event.detail})", file=sys.stderr, flush=True)

    running = client.campaign(
        election,
        candidate_id,
        work,
        value=args.value.encode(),
        priority=args.priority,
        on_loss="stop" if args.stop_on_loss else "recampaign",
        on_event=on_event,
    )

    def on_signal(*_: object) -> None:
        running.resign(wait=False)  # non-blocking: safe in a signal handler

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    while not running.wait(0.1):  # short waits: the handler runs between them
        pass
    try:
        running.result()
    except ElectdError as exc:
        print(f"electd-python: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
