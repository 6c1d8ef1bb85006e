"""Checks over a journal of published views: (node id, View) in the order they were published
in this process (several engines, one list)."""

from __future__ import annotations

from electd.engine import Role, View


def never_two_leaders(journal: list[tuple[str, View]]) -> None:
    """Replay the views in publish order: never two nodes in the LEADER role at once."""
    leading: set[str] = set()
    for node, view in journal:
        if view.role is Role.LEADER and view.leader is not None:
            leading.add(node)
        else:
            leading.discard(node)
        assert len(leading) <= 1, f"two leaders at once: {sorted(leading)}"
