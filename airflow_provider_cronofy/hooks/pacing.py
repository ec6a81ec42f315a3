"""Client-side pacing under Cronofy's per-application rate limits (a sliding-window log per limit).

Why and how it paces as it does: docs/rate-limits.md ("How the pacer works").
"""

from __future__ import annotations

import heapq
import logging
import operator
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SEND_GUARD_SECONDS = 0.01
"""At most this much of the fastest answer counts as a request's way out to Cronofy."""
PENDING_RECHECK_SECONDS = 0.05
"""A waiter held back by an unanswered request looks again at least this often."""
LOG_WAITS_FROM_SECONDS = 5.0
"""A wait this long is logged, so that a long run never looks stuck between progress lines."""

log = logging.getLogger(__name__)


class Slot:
    """One request's place in the windows: let through at ``acquired``, counted from ``at`` once
    ``answered`` (until then it counts in every window)."""

    __slots__ = ("acquired", "answered", "at")

    def __init__(self, at: float, *, answered: bool = False) -> None:
        self.acquired = at
        self.at = at
        self.answered = answered


class RequestPacer:
    """Waits in :meth:`acquire` until one more request fits under every ``(limit, seconds)`` window
    (a limit of ``0`` or ``None`` turns it off). Pass every slot :meth:`acquire` returns to
    :meth:`release` once its request is over, whatever the outcome: until then it counts in every
    window.

    :param clock: monotonic seconds (tests pass a fake one).
    :param sleep: how a wait is sat out; default ``stop.wait(seconds)``, or :func:`time.sleep`
        without a stop event.
    """

    def __init__(
        self,
        windows: list[tuple[float | None, float]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._windows = [(int(limit), float(seconds), deque[Slot]()) for limit, seconds in windows if limit]
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._fastest: float | None = None
        # One answer is its own fastest: answers count from when they came until a second one.
        self._replies = 0
        self._provisional: list[tuple[Slot, float]] = []
        self.waited = 0.0
        """Total seconds spent waiting, for the benchmarks and the progress log."""
        self.identity = uuid.uuid4().hex
        """Tells this pacer's exported send times from another process's (see :meth:`count_sends_from`)."""

    @property
    def enabled(self) -> bool:
        """Whether any window is on."""
        return bool(self._windows)

    def acquire(self, cost: int = 1, *, stop: threading.Event | None = None) -> Slot | None:
        """Wait until ``cost`` more requests fit under every window and count them as sent now.

        :return: their :class:`Slot`, or ``None`` (nothing counted) once ``stop`` is set.
        """
        if not self._windows:
            return None if stop is not None and stop.is_set() else _UNPACED
        while True:
            with self._lock:
                if stop is not None and stop.is_set():
                    return None
                now = self._clock()
                delay = _wait_for(self._windows, now, cost, self._measured())
                if delay <= 0:
                    slot = Slot(now)
                    for _, _, sent in self._windows:
                        sent.extend([slot] * cost)
                    return slot
                self.waited += delay
            # Outside the lock: release(), next_slot_in() and the other waiters go on meanwhile.
            if delay >= LOG_WAITS_FROM_SECONDS:
                log.info("Pacing under Cronofy's rate limit: waiting %.1f s before the next request.", delay)
            sit_out(delay, self._sleep, stop)

    def mark_sent(self, slot: Slot) -> None:
        """The request of ``slot`` leaves now: it counts from now (it may have waited at a gate)."""
        if slot is _UNPACED:
            return
        now = self._clock()
        with self._lock:
            slot.acquired = slot.at = max(slot.at, now)

    def release(self, slot: Slot, *, replied: bool = True) -> None:
        """The request of ``slot`` is over: it counts from its estimated arrival from now on.

        :param replied: Cronofy answered it (only answers measure the fastest round trip).
        """
        if slot is _UNPACED:
            return
        with self._lock:
            now = self._clock()
            if replied:
                took = now - slot.acquired
                self._fastest = took if self._fastest is None else min(self._fastest, took)
                self._replies += 1
            slot.answered = True
            if self._replies < 2 or self._fastest is None:
                slot.at = now
                if replied:  # at most one: the second answer ends the wait for a measure
                    self._provisional.append((slot, now))
                return
            slot.at = _arrival(slot, now, self._fastest)
            for early, answered_at in self._provisional:
                early.at = _arrival(early, answered_at, self._fastest)
            self._provisional.clear()

    def _measured(self) -> float | None:
        """The fastest answer, once it bounds anything (two answers measured); else ``None``."""
        return self._fastest if self._replies >= 2 else None

    # ------------------------------------------------------------------ deferrable runs

    def next_slot_in(self, cost: int = 1) -> float:
        """Seconds until ``cost`` more requests fit (``0.0``: now; the earliest, while one it waits
        for is unanswered). Counts nothing."""
        with self._lock:
            return _wait_for(self._windows, self._clock(), cost, self._measured())

    def sends_before_wait(self, max_wait: float, at_most: int) -> int:
        """How many requests (up to ``at_most``) could go one after another before one would wait
        over ``max_wait`` s after the previous one; a deferrable run sends this many, then defers.
        Counts nothing; an unanswered request counts as arriving now."""
        with self._lock:
            # No wait is ever longer than the longest window: short windows never stop a run.
            if all(seconds <= max_wait for _, seconds, _ in self._windows):
                return at_most
            t = self._clock()
            windows = [
                (limit, seconds, deque(_settled(slot, t) for slot in sent))
                for limit, seconds, sent in self._windows
            ]
            count = 0
            while count < at_most:
                delay = _wait_for(windows, t, 1, None)
                if delay > max_wait:
                    break
                t += max(delay, 0.0)
                slot = Slot(t, answered=True)
                for _, _, sent in windows:
                    sent.append(slot)
                count += 1
            return count

    def recent_send_times(self) -> list[float]:
        """The send times still inside a window, as Unix epoch seconds, oldest first, for the
        next process's :meth:`count_sends_from` (a deferral)."""
        with self._lock:
            now = self._clock()
            offset = time.time() - now
            longest = max(self._windows, key=lambda window: window[1], default=None)
            if longest is None:
                return []
            times = (_settled(slot, now).at for slot in longest[2])
            return sorted(at + offset for at in times if at > now - longest[1])

    def count_sends_from(self, epoch_times: list[float], origin: str) -> bool:
        """Count another pacer's :meth:`recent_send_times` in every window of this one, unless
        ``origin`` (its :attr:`identity`) is this pacer's own. Returns whether anything was counted.
        """
        if origin == self.identity or not self._windows:
            return False
        with self._lock:
            now = self._clock()
            offset = time.time() - now
            for _, seconds, sent in self._windows:
                carried = [Slot(t - offset, answered=True) for t in epoch_times if t - offset > now - seconds]
                merged = sorted([*sent, *carried], key=lambda slot: slot.at)
                sent.clear()
                sent.extend(merged)
            return True


_UNPACED = Slot(0.0)
_AT = operator.attrgetter("at")


@dataclass(frozen=True)
class PacingEstimate:
    """What pacing alone makes of a run (see :func:`estimate_pacing`)."""

    seconds: float
    """From the first send to the last: the pacer's waits, no answer's latency."""
    deferrals: int
    """Waits longer than ``defer_after`` between two sends: the deferrals of a deferrable run."""
    deferred_seconds: float
    """The seconds of those waits (a deferrable run spends them deferred)."""


def estimate_pacing(
    requests: int, per_second: float | None, per_minute: float | None, defer_after: float
) -> PacingEstimate:
    """How long ``requests`` requests take under these limits from empty windows, each sent as
    soon as it fits, answers taking no time (for a dry run; sends nothing)."""
    windows = [(int(limit), seconds) for limit, seconds in limit_windows(per_second, per_minute) if limit]
    recent: deque[float] = deque(maxlen=max((limit for limit, _ in windows), default=1))
    previous = 0.0
    deferrals = 0
    deferred = 0.0
    for index in range(requests):
        at = previous
        for limit, seconds in windows:
            if index >= limit:
                at = max(at, recent[-limit] + seconds)
        if at - previous > defer_after:
            deferrals += 1
            deferred += at - previous
        recent.append(at)
        previous = at
    return PacingEstimate(previous, deferrals, deferred)


def _arrival(slot: Slot, now: float, fastest: float | None) -> float:
    """When ``slot``'s request, answered at ``now``, counts as having reached Cronofy (never
    earlier for a later ``now``)."""
    took = now - slot.acquired
    quickest = took if fastest is None else min(fastest, took)
    return slot.acquired + max(0.0, took - quickest) + min(quickest, SEND_GUARD_SECONDS)


def _settled(slot: Slot, now: float) -> Slot:
    """``slot`` if answered, else an answered slot arriving ``now`` (its arrival is before now)."""
    return slot if slot.answered else Slot(now, answered=True)


def _leaves(slot: Slot, now: float, seconds: float, fastest: float | None) -> float:
    """When ``slot`` leaves a window of ``seconds``: the earliest that can be, if unanswered."""
    if slot.answered:
        return slot.at + seconds
    return max(_arrival(slot, now, fastest) + seconds, now + PENDING_RECHECK_SECONDS)


def _wait_for(
    windows: list[tuple[int, float, deque[Slot]]], now: float, cost: int, fastest: float | None
) -> float:
    """Seconds from ``now`` until ``cost`` more requests may fit under every window (drops expired
    slots): exact when every slot it waits for is answered, else the earliest it can be."""
    delay = 0.0
    for limit, seconds, sent in windows:
        while sent and sent[0].answered and sent[0].at <= now - seconds:
            sent.popleft()
        if len(sent) > 2 * limit:  # expired slots kept behind a long-unanswered one
            live = [slot for slot in sent if not slot.answered or slot.at > now - seconds]
            sent.clear()
            sent.extend(live)
        # A cost above the limit would never fit: let it through on an empty window.
        over = len(sent) + min(cost, limit) - limit
        if over > 0:
            # Late answers leave slots out of order: wait for the over-th to leave. When the over
            # earliest by ``at`` are answered, the over-th of them is the one (the cheap case).
            earliest = [min(sent, key=_AT)] if over == 1 else heapq.nsmallest(over, sent, key=_AT)
            if all(slot.answered for slot in earliest):
                nth = earliest[-1].at + seconds
            else:
                leaves = [_leaves(slot, now, seconds, fastest) for slot in sent]
                nth = min(leaves) if over == 1 else heapq.nsmallest(over, leaves)[-1]
            delay = max(delay, nth - now)
    return delay


def limit_windows(per_second: float | None, per_minute: float | None) -> list[tuple[float | None, float]]:
    """Cronofy's two limits as ``(limit, seconds)`` windows, as :class:`RequestPacer` takes them."""
    return [(per_second, 1.0), (per_minute, 60.0)]


_shared: dict[tuple[str, float | None, float | None], RequestPacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(base_url: str, per_second: float | None, per_minute: float | None) -> RequestPacer:
    """Return the process-wide pacer for ``base_url`` with these limits (made on first use)."""
    key = (base_url, per_second, per_minute)
    with _shared_lock:
        pacer = _shared.get(key)
        if pacer is None:
            pacer = _shared[key] = RequestPacer(limit_windows(per_second, per_minute))
        return pacer


def sit_out(seconds: float, sleep: Callable[[float], None] | None, stop: threading.Event | None) -> None:
    """Wait ``seconds`` with ``sleep`` (a test's), else on ``stop`` (a set stop ends the wait at once),
    else with :func:`time.sleep`."""
    if sleep is not None:
        sleep(seconds)
    elif stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)
