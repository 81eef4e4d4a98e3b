"""Restart delays: exponential backoff with jitter, and when it resets.

Pure: the supervisor asks for a delay and decides when a run counts as stable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait before the n-th consecutive restart.

    The first retry waits about ``initial`` seconds, each next one ``factor`` times longer, never
    more than ``cap``; ``jitter`` spreads each delay by ±that fraction so many children that
    failed together do not retry in lockstep. A child that ran for ``reset_after`` seconds
    counts as stable and its next failure starts the schedule again.
    """

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.1
    reset_after: float = 30.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.cap < self.initial:
            raise ValueError("backoff needs initial > 0, factor >= 1 and cap >= initial")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def base_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based), without jitter."""
        if attempt < 1:
            return 0.0
        # min() before pow() overflow: factor**attempt grows without bound.
        exponent = min(attempt - 1, 64)
        return min(self.cap, self.initial * self.factor**exponent)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The jittered delay before retry number ``attempt``; never above ``cap``."""
        base = self.base_delay(attempt)
        spread = base * self.jitter * (2.0 * rand() - 1.0)
        return max(0.0, min(self.cap, base + spread))

    def is_stable(self, ran_for: float) -> bool:
        """Whether a run of ``ran_for`` seconds resets the schedule."""
        return ran_for >= self.reset_after
