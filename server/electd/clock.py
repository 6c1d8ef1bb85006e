"""The clock every lease is measured on: CLOCK_BOOTTIME where the system has it.

CLOCK_MONOTONIC stops while the machine is suspended: a lease taken before a suspend would
look fresh after the resume although ZooKeeper, whose clocks kept running, may long have
expired the session and let another node lead. CLOCK_BOOTTIME counts the suspended time too.
Every reading that is compared with a lease (the engine's, the store's handshake times, the
gRPC side's "is the lease still good?") comes from `now`. Imports nothing.
"""

from __future__ import annotations

import time

_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def now() -> float:
    """Seconds on the lease clock (CLOCK_BOOTTIME on Linux, else time.monotonic)."""
    if _BOOTTIME is not None:
        return time.clock_gettime(_BOOTTIME)
    return time.monotonic()
