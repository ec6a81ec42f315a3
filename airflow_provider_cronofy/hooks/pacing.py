"""Client-side pacing, so that a bulk run stays under Cronofy's per-application rate limits.

Cronofy allows 50 requests per second and 500 per minute by default and answers 429 beyond that.
:class:`RequestPacer` keeps a log of its recent send times per window (a sliding-window log), so
no window of one second or one minute ever holds more requests than the limit, whichever way the
server counts (fixed or sliding windows). Writing it here costs about thirty lines; the rate
limiting libraries on PyPI bring buckets, back-ends and API churn this does not need.

Within the per-second limit, requests are also spaced at least ``0.5/limit`` seconds apart, so that
many requests in flight at once still reach the server one at a time, in order.

Pacing is per process: a pacer is shared by every hook in the process that talks to the same base
URL with the same limits. Tasks in other processes (other workers, mapped task instances) are not
paced together: bound them with an Airflow pool (see the README).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

# Requests leave the client evenly but reach the server with jittery latency, so two sends
# just over a window apart can land just inside one: pad each window a little.
WINDOW_MARGIN = 1.02
# A wait this long is logged, so that a long bulk run never looks stuck between progress lines.
LOG_WAITS_FROM_SECONDS = 5.0

log = logging.getLogger(__name__)


class Slot:
    """One request's place in the pacer's windows: when it counts as sent (``at``)."""

    __slots__ = ("acquired", "at")

    def __init__(self, at: float) -> None:
        self.acquired = at
        self.at = at


class RequestPacer:
    """Blocks in :meth:`acquire` until one more request fits under every ``(limit, seconds)`` window.

    A limit of ``0`` (or ``None``) turns that window off.

    A request counts from the moment it is let through, but Cronofy counts it when it arrives:
    later, by the network's delay plus whatever held the sending thread back (other threads,
    a busy machine). The common part of that delay shifts every request alike and cancels out;
    the extra part is what :data:`WINDOW_MARGIN` absorbs, up to 2 % of a window. :meth:`release`
    measures it: a request answered later than the fastest answer so far counts as sent that
    much later, so a send held back by 40 ms cannot push a window over its limit.
    """

    def __init__(
        self,
        windows: list[tuple[float | None, float]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._windows = [
            (int(limit), seconds * WINDOW_MARGIN, deque[Slot]()) for limit, seconds in windows if limit
        ]
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._fastest: float | None = None
        self.waited = 0.0
        """Total seconds spent waiting, for the benchmarks and the progress log."""

    @property
    def enabled(self) -> bool:
        """Whether any window is on."""
        return bool(self._windows)

    def acquire(self, cost: int = 1, *, stop: threading.Event | None = None) -> Slot | None:
        """Wait until ``cost`` more requests fit under every window, and count them as sent now.

        Returns their :class:`Slot` (pass it to :meth:`release` once answered), or ``None``
        without counting anything when ``stop`` is set before they fit (a stopped bulk run must
        not sit out a long pacing wait). Callers sharing the pacer queue behind its lock.
        """
        if not self._windows:
            return None if stop is not None and stop.is_set() else _UNPACED
        with self._lock:
            while True:
                if stop is not None and stop.is_set():
                    return None
                now = self._clock()
                delay = 0.0
                for limit, seconds, sent in self._windows:
                    while sent and sent[0].at <= now - seconds:
                        sent.popleft()
                    # A cost above the limit would never fit: let it through on an empty window.
                    over = len(sent) + min(cost, limit) - limit
                    if over > 0:
                        # Slots released late may be out of order: wait for the over-th earliest.
                        oldest = (
                            sorted(slot.at for slot in sent)[over - 1]
                            if over > 1
                            else min(slot.at for slot in sent)
                        )
                        delay = max(delay, oldest + seconds - now)
                if delay <= 0:
                    slot = Slot(now)
                    for _, _, sent in self._windows:
                        sent.extend([slot] * cost)
                    return slot
                self.waited += delay
                if delay >= LOG_WAITS_FROM_SECONDS:
                    log.info(
                        "Pacing under Cronofy's rate limit: waiting %.1f s before the next request.", delay
                    )
                if self._sleep is not None:
                    self._sleep(delay)
                elif stop is not None:
                    stop.wait(delay)
                else:
                    time.sleep(delay)

    def release(self, slot: Slot) -> None:
        """The request of ``slot`` was answered (or failed) now: count it later if it was slow."""
        if slot is _UNPACED:
            return
        took = self._clock() - slot.acquired  # before the lock: a paced wait may hold it
        with self._lock:
            fastest = self._fastest if self._fastest is not None else took
            self._fastest = min(fastest, took)
            slot.at = slot.acquired + max(0.0, took - fastest)


_UNPACED = Slot(0.0)


_shared: dict[tuple[str, float | None, float | None], RequestPacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(base_url: str, per_second: float | None, per_minute: float | None) -> RequestPacer:
    """Return the process-wide pacer for ``base_url`` with these limits (made on first use)."""
    key = (base_url, per_second, per_minute)
    with _shared_lock:
        pacer = _shared.get(key)
        if pacer is None:
            windows: list[tuple[float | None, float]] = [(per_second, 1.0), (per_minute, 60.0)]
            if per_second and per_second > 1:
                # Space sends at least half a per-second slot apart instead of firing the whole
                # budget at once: concurrent sends fired together reach the server tens of
                # milliseconds apart in any order, more jitter than WINDOW_MARGIN covers; spaced
                # ones meet it one at a time. Half a slot keeps the burst a sliding window allows
                # (a run of 300 requests at 50/s still starts with 50 in its first half second).
                windows.append((1, 0.5 / per_second))
            pacer = _shared[key] = RequestPacer(windows)
        return pacer
