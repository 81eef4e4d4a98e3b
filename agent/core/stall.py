"""Stall detection: a child that is alive but moves nothing is not healthy.

Pure: the supervisor reports progress (bytes arrived, frames counted) with the time, and asks
at a deadline whether the child has stalled.
"""

from __future__ import annotations


class StallDetector:
    """Remembers when progress was last seen and says when it has been too long."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._last = 0.0

    def reset(self, now: float) -> None:
        """Start counting afresh (a new child)."""
        self._last = now

    def progressed(self, now: float) -> None:
        """Progress was observed at ``now``."""
        self._last = max(self._last, now)

    @property
    def last_progress(self) -> float:
        return self._last

    def deadline(self) -> float | None:
        """When the child counts as stalled if nothing moves before then."""
        return None if self.timeout is None else self._last + self.timeout

    def stalled(self, now: float) -> bool:
        """True if no progress was seen for ``timeout`` seconds."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline
