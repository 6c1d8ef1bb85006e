"""The client example programs (`clients/<lang>/run ...`, built by `make clients`) as running
processes: one per call, its stdout lines collected by a thread (parsed as JSON for `--json`
commands), stopped with a signal. Shared by the cross-language, TLS and campaign tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["python", "go", "rust", "java", "node"]


class ExampleProgram:
    """`clients/<lang>/run ARGS...`; `lines` holds its stdout lines as they come (dicts when
    `json_lines`), `env` is added to the environment."""

    def __init__(
        self, lang: str, *args: str, json_lines: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.lang = lang
        self.lines: list[Any] = []
        self._json = json_lines
        self.proc = subprocess.Popen(
            [str(ROOT / "clients" / lang / "run"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.append(json.loads(line) if self._json else line.strip())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """Send `sig` if it still runs (SIGKILL after `timeout`); (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def watch(lang: str, *args: str) -> ExampleProgram:
    """`run --json watch ARGS...`: one JSON line per leader reported."""
    return ExampleProgram(lang, "--json", "watch", *args, json_lines=True)
