"""What `electd top` shows, gathered through the public API only, and how it is drawn.

`gather` asks any node for the members (ListNodes), then every member itself for its own view
(GetLeader: whom it vouches for, or why it cannot) and its health; `render` draws one frame
with rich. Blocking; called from `electd top`'s loop. Imports nothing of the server."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from electd.client import ElectdError, ElectionClient, pb, probe


@dataclass(frozen=True)
class NodeState:
    """One member as it answers for itself."""

    node: pb.Node
    health: str  # grpc.health.v1 status name, or UNREACHABLE
    vouches: str  # "n1 @ epoch" or why it cannot vouch


@dataclass
class Frame:
    at: float
    leader: pb.Leader | None = None
    members: list[NodeState] = field(default_factory=list)
    error: str = ""
    changes: list[tuple[float, str, int]] = field(default_factory=list)


def gather(
    client: ElectionClient,
    pool: ThreadPoolExecutor,
    timeout: float,
    tls: Mapping[str, Any] | None = None,
) -> Frame:
    """`tls`: the client's TLS options, for asking each member itself."""
    frame = Frame(time.time())
    try:
        listing = client.list_nodes()
        frame.leader = client.get_leader().leader
    except ElectdError as exc:
        frame.error = str(exc)
        return frame
    frame.members = list(pool.map(lambda n: _ask(n, timeout, dict(tls or {})), listing.nodes))
    return frame


def _ask(node: pb.Node, timeout: float, tls: dict[str, Any]) -> NodeState:
    health = probe(node.address, timeout=timeout, **tls)
    try:
        with ElectionClient([node.address], call_timeout=timeout, **tls) as one:
            leader = one.get_leader().leader
        vouches = f"{leader.node.id or leader.node.znode} @ {leader.epoch}"
    except ElectdError as exc:
        vouches = f"cannot vouch: {exc.details or exc}"
    return NodeState(node, health, vouches)


def render(frame: Frame, targets: Sequence[str]) -> Group:
    stamp = time.strftime("%H:%M:%S", time.localtime(frame.at))
    if frame.error:
        head = Text(f"electd top  {stamp}  no node answered: {frame.error}", style="bold red")
        return Group(head, _changes(frame))
    leader = frame.leader
    who = f"{leader.node.id or '(unreadable)'} at {leader.node.address}" if leader else "-"
    head = Text.assemble(
        ("electd top  ", "bold"),
        f"{stamp}  asking {', '.join(targets)}\n",
        ("leader ", "bold"),
        (who, "bold green"),
        f"   epoch {leader.epoch if leader else '-'}   members {len(frame.members)}",
    )
    table = Table(expand=True)
    for col in ("", "ID", "ADDRESS", "SEQ", "WATCHES", "HEALTH", "VOUCHES FOR", "LABELS"):
        table.add_column(col, no_wrap=col in ("ID", "ADDRESS", "SEQ"))
    for st in frame.members:
        n = st.node
        health_style = "green" if st.health == "SERVING" else "red"
        labels = ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())) or "-"
        table.add_row(
            Text("*", style="bold green") if n.is_leader else "",
            n.id or Text("(unreadable)", style="yellow"),
            n.address,
            str(n.sequence),
            n.watches[-10:] if n.watches else "-",
            Text(st.health, style=health_style),
            st.vouches,
            labels,
        )
    return Group(head, table, _changes(frame))


def _changes(frame: Frame) -> Text:
    lines = Text("last leader changes", style="bold")
    if not frame.changes:
        lines.append("\n  (none seen since start)")
    for at, node_id, epoch in frame.changes[-8:]:
        lines.append(
            f"\n  {time.strftime('%H:%M:%S', time.localtime(at))}  {node_id}  epoch {epoch}"
        )
    return lines
