"""The architecture holds in the imports (ARCHITECTURE.md): only zk/ imports kazoo; grpc and
the generated code are imported only by rpc/ and client/; the engine imports nothing of zk/,
rpc/, config/ or client/; config/ and cli.py stay free of kazoo and grpc; the supervisor
imports neither grpc nor the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "electd"


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def modules() -> list[tuple[str, set[str]]]:
    return [
        (str(p.relative_to(PACKAGE)), imports(p))
        for p in sorted(PACKAGE.rglob("*.py"))
        if "v1" not in p.relative_to(PACKAGE).parts
    ]


def owners(prefix: str) -> set[str]:
    return {
        name
        for name, imported in modules()
        if any(m == prefix or m.startswith(prefix + ".") for m in imported)
    }


def test_only_zk_imports_kazoo() -> None:
    assert {n for n in owners("kazoo") if not n.startswith("zk/")} == set()


@pytest.mark.parametrize("prefix", ["grpc", "grpc_health", "grpc_reflection", "electd.v1"])
def test_grpc_and_generated_code_only_in_rpc_and_client(prefix: str) -> None:
    assert {n for n in owners(prefix) if not n.startswith(("rpc/", "client/"))} == set()


@pytest.mark.parametrize(
    ("area", "forbidden"),
    [
        ("engine/", ("electd.zk", "electd.rpc", "electd.config", "electd.client", "electd.app")),
        (
            "elections/",
            ("electd.zk", "electd.rpc", "electd.config", "electd.client", "electd.app", "grpc"),
        ),
        ("config/", ("electd.engine", "electd.zk", "electd.rpc", "electd.client")),
        ("zk/", ("electd.rpc", "electd.client", "electd.config")),
        ("rpc/", ("electd.zk", "electd.config", "electd.client")),
        ("names.py", ("electd.",)),
        ("clock.py", ("electd.",)),
        ("logfields.py", ("electd.",)),
        ("credentials.py", ("electd.",)),
        ("supervisor/", ("electd.engine", "electd.rpc", "electd.client", "electd.app", "grpc")),
        ("ops/", ("electd.zk", "electd.rpc", "electd.client", "electd.config")),
        ("top/", ("electd.engine", "electd.zk", "electd.rpc", "electd.config", "electd.ops")),
    ],
)
def test_imports_point_one_way(area: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        (name, m)
        for name, imported in modules()
        if name.startswith(area)
        for m in imported
        if m.startswith(forbidden)
    }
    assert bad == set()


def test_the_supervisor_process_loads_neither_grpc_nor_the_engine() -> None:
    """What the supervisor imports when it runs (and when it closes a dead node's session)."""
    import subprocess
    import sys

    code = (
        "import sys; import electd.cli, electd.supervisor.supervisor, electd.zk.session, "
        "electd.config; print(sorted(m for m in sys.modules "
        "if m.startswith(('grpc', 'electd.engine', 'electd.rpc', 'electd.v1'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
