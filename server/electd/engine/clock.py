"""The engine's lease clock: `electd.clock.now` (CLOCK_BOOTTIME), shared with the supervisor,
which holds its own copy of the lease deadline on the same clock."""

from electd.clock import now

__all__ = ["now"]
