"""A one-line progress display on stderr (`\\r`-rewritten on a terminal, silent otherwise).

Long benchmarks call `Progress.step()` once per trial; the line shows the benchmark, the trial
count, the elapsed time and an estimate of the time left. No dependencies, no threads.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, enabled: bool | None = None) -> None:
        self.label = label
        self.total = max(1, total)
        self.done = 0
        self.started = time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._draw()

    def step(self, note: str = "") -> None:
        self.done += 1
        self._draw(note)

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _draw(self, note: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 20
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"  {self.label} [{bar}] {self.done}/{self.total} "
            f"{elapsed:5.0f}s elapsed, ~{left:4.0f}s left {note}"
        )
        sys.stderr.write("\r\033[K" + line[:160])
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
