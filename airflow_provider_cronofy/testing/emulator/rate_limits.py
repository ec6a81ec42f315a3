"""Cronofy's per-application rate limits: requests per second and per minute, over sliding windows.

A request over either limit answers 429 (without ``Retry-After``: whether Cronofy sends one is
unconfirmed). A limit of ``None`` or 0 is off.
"""

from __future__ import annotations

from collections import deque


class RateLimiter:
    """Admission times of the requests let through; not thread-safe (the routes hold the lock)."""

    def __init__(self) -> None:
        self._admitted: deque[float] = deque()

    def admit(self, now: float, cost: int, per_second: int | None, per_minute: int | None) -> bool:
        """Let ``cost`` requests through at ``now`` and return True, or return False (a 429) when
        that would exceed a limit."""
        if self._limited(now, cost, per_second or 0, per_minute or 0):
            return False
        self._admitted.extend([now] * cost)
        return True

    def _limited(self, now: float, cost: int, per_second: int, per_minute: int) -> bool:
        window = self._admitted
        horizon = 60.0 if per_minute else 1.0
        while window and window[0] <= now - horizon:
            window.popleft()
        if per_minute and len(window) + cost > per_minute:
            return True
        if per_second:
            recent = 0
            for admitted_at in reversed(window):
                if admitted_at <= now - 1.0:
                    break
                recent += 1
            if recent + cost > per_second:
                return True
        return False
