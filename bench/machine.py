"""Facts about the machine and the software versions, recorded in every results file."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.context import ROOT, tool


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _pkg(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _module_version(binary: str, module: str) -> str:
    """The version of `module` a Go binary was built from (`go version -m`)."""
    for line in _run(["go", "version", "-m", binary]).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod" and parts[1] == module:
            return parts[2]
    return ""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict[str, Any]:
    etcd = tool("etcd")
    ghz = tool("ghz")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "kernel": platform.release(),
        "os": _run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "versions": {
            "electd": _pkg("electd"),
            "kazoo": _pkg("kazoo"),
            "grpcio": _pkg("grpcio"),
            "protobuf": _pkg("protobuf"),
            "zookeeper": _run(["dpkg-query", "-W", "-f=${Version}", "zookeeper"]),
            "java": _run(["java", "-version"]).splitlines()[0] if tool("java") else "",
            "etcd": _run([etcd, "--version"]).splitlines()[0] if etcd else "",
            "ghz": _module_version(ghz, "github.com/bojand/ghz") if ghz else "",
            "go": _run(["go", "version"]) if tool("go") else "",
        },
        "git": _run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }
