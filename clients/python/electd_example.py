"""The Python example client: `leader`, `nodes`, `watch` over one or more node addresses,
exactly as the other languages' examples (clients/README.md). Built on `electd_client`, the
client-only distribution in this folder (pip install ./clients/python)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from electd_client import ElectdError, ElectionClient, validate_address


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="electd-python", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("command", choices=("leader", "nodes", "watch"))
    parser.add_argument("addresses", nargs="+", metavar="ADDR", help="node HOST:PORT")
    # The four TLS options of clients/README.md, named as the electd command line names them.
    parser.add_argument("--tls-ca", default="", metavar="FILE", help="PEM CAs of the nodes")
    parser.add_argument("--tls-cert", default="", metavar="FILE", help="client certificate")
    parser.add_argument("--tls-key", default="", metavar="FILE", help="its private key")
    parser.add_argument("--tls-server-name", default="", metavar="NAME", help="expected name")
    # --json and the TLS flags may come before or after the command.
    args = parser.parse_intermixed_args(argv)
    try:
        addresses = [validate_address(a) for a in args.addresses]
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
            if args.command == "leader":
                leader = client.get_leader().leader
                doc = {"id": leader.node.id, "address": leader.node.address, "epoch": leader.epoch}
                print(
                    dumps(doc)
                    if args.json
                    else f"leader {doc['id']} at {doc['address']} (epoch {doc['epoch']})"
                )
            elif args.command == "nodes":
                for n in client.list_nodes().nodes:
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
            else:
                # Failovers go to stderr for people; stdout keeps the leader lines only.
                watch = client.watch_leader(
                    on_failover=None
                    if args.json
                    else lambda addr, why: print(f"(left {addr}: {why})", file=sys.stderr)
                )
                # SIGINT/SIGTERM end the watch at once (also during a backoff or a pending
                # connection); the program then exits 0.
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: watch.cancel())
                for leader in watch:
                    doc = {
                        "id": leader.node.id,
                        "address": leader.node.address,
                        "epoch": leader.epoch,
                    }
                    print(
                        dumps(doc)
                        if args.json
                        else f"leader {doc['id']} at {doc['address']} (epoch {doc['epoch']})",
                        flush=True,
                    )
        except ElectdError as exc:
            print(f"electd-python: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
