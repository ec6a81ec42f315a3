"""Client-side pacing, so that a bulk run stays under Cronofy's per-application rate limits.

Cronofy allows 50 requests per second and 500 per minute by default and answers 429 beyond that,
counting each request when it arrives. :class:`RequestPacer` keeps a log of its recent sends per
window (a sliding-window log), so no window of one second or one minute ever holds more requests
than the limit, whichever way the server counts (fixed or sliding windows). A request not yet
answered may still be on its way (a retransmitted SYN, a slow TLS connect): it counts in every
window until its answer comes, and only then from when it is estimated to have arrived. A sliding
window lets its whole budget through at once: a run starts with a burst of the per-second limit,
then sends one request per freed slot.

The wait for a slot is computed under the pacer's lock and sat out outside it, on the run's stop
event when there is one: releasing a slot, asking how far the next one is, or reporting progress
never waits behind another thread's pacing wait, and a stop wakes every waiter at once.

Pacing is per process: a pacer is shared by every hook in the process that talks to the same base
URL with the same limits. Tasks in other processes (other workers, mapped task instances) are not
paced together: bound them with an Airflow pool (see the README).
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
"""At most this much of the fastest answer counts as the time a request took to reach Cronofy.

A request counts from just before it is handed to the HTTP session; it reaches Cronofy a little
later (building it, the way out), which no single answer measures. The fastest answer bounds that
delay from above; this caps the bound, so that a distant server (150 ms answers) costs 10 ms per
window, not a round trip.
"""
PENDING_RECHECK_SECONDS = 0.05
"""How soon a waiter held back by an unanswered request looks again, at the least.

An unanswered request leaves no window before its answer comes, and no sooner than its window's
length after the arrival it would be estimated at if answered now; a waiter sleeps until then
and looks again. When that moment is already past (answers slower than the window is long), it
looks again this often, so it starts at most this late after the answer.
"""
LOG_WAITS_FROM_SECONDS = 5.0
"""A wait this long is logged, so that a long bulk run never looks stuck between progress lines."""

log = logging.getLogger(__name__)


class Slot:
    """One request's place in the pacer's windows.

    ``acquired`` is when it was let through (or left, see :meth:`RequestPacer.mark_sent`);
    ``answered`` whether :meth:`RequestPacer.release` was called; ``at`` when it counts as
    arrived once answered (until then it counts in every window, whatever ``at`` says).
    """

    __slots__ = ("acquired", "answered", "at")

    def __init__(self, at: float, *, answered: bool = False) -> None:
        self.acquired = at
        self.at = at
        self.answered = answered


class RequestPacer:
    """Waits in :meth:`acquire` until one more request fits under every ``(limit, seconds)`` window.

    A limit of ``0`` (or ``None``) turns that window off.

    A request counts from the moment it is let through (or, once :meth:`mark_sent` is called,
    from just before it leaves), but Cronofy counts it when it arrives: later, by whatever held
    the sending thread back and by the network's delay on the way out. Until :meth:`release`
    says it was answered (or failed), it may still be on its way, so it counts in every window
    and never leaves one: a request held up for seconds cannot arrive into a window that its
    slot was freed for. Once answered it counts from its estimated arrival: a request answered
    later than the fastest answer so far counts as sent that much later (plus a share of the
    fastest answer, see :data:`SEND_GUARD_SECONDS`), so a send held back by 40 ms cannot push a
    window over its limit. No window is padded otherwise. Callers must therefore pass every slot
    :meth:`acquire` returns to :meth:`release` once its request is over, whatever the outcome.

    :param clock: monotonic seconds (tests pass a fake one).
    :param sleep: how a wait without a stop event is sat out (default :func:`time.sleep`); with a
        stop event, the wait is ``stop.wait(seconds)`` unless ``sleep`` is given.
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
        # The fastest answer bounds another's way out only once a second answer is measured (one
        # answer is its own fastest): until then, answers count from when they came, and are
        # estimated again then (see release).
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
        """Wait until ``cost`` more requests fit under every window, and count them as sent now.

        Returns their :class:`Slot` (pass it to :meth:`release` once answered), or ``None``
        without counting anything when ``stop`` is set before they fit: a stopped run's waiters
        all wake at once (``stop.set()``) and none of them takes a slot. A wait for an unanswered
        request's slot is sat out in steps (see :data:`PENDING_RECHECK_SECONDS`): the waiter goes
        on soon after the answer, not a whole window later.
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
            if self._sleep is not None:
                self._sleep(delay)
            elif stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)

    def mark_sent(self, slot: Slot) -> None:
        """The request of ``slot`` leaves now: it counts from now (it may have waited at a gate)."""
        if slot is _UNPACED:
            return
        now = self._clock()
        with self._lock:
            slot.acquired = slot.at = max(slot.at, now)

    def release(self, slot: Slot, *, replied: bool = True) -> None:
        """The request of ``slot`` was answered (or failed) now: from now on it counts from its
        estimated arrival (later than it was sent if it was slow), and leaves each window then.

        ``replied``: Cronofy answered it. Only answers measure the fastest way there and back
        (a request refused before it left, or a connection that failed at once, says nothing of
        it). Until two answers are measured nothing bounds how long a request was on its way, so
        it counts as arriving when it was answered; once they are, the earlier ones are estimated
        again like every later one.
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
        """Seconds until ``cost`` more requests fit under every window (``0.0``: now). Counts nothing.

        While a request it depends on is unanswered, the earliest that can be (asked again
        later, it may be further): a run defers only with every request answered.
        """
        with self._lock:
            return _wait_for(self._windows, self._clock(), cost, self._measured())

    def sends_before_wait(self, max_wait: float, at_most: int) -> int:
        """How many requests could go now, one after another, before one would wait over ``max_wait`` s.

        Simulates :meth:`acquire` on a copy of the windows (each send as soon as it fits) and
        counts the sends, up to ``at_most``, until the next one would wait longer than
        ``max_wait`` seconds after the previous one. ``0`` means the next slot itself is further
        away than that. Counts nothing. A deferrable run sends this many, then defers. An
        unanswered request counts as arriving now.
        """
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
        """The send times still inside a window, as Unix epoch seconds, oldest first.

        For a run that continues in another process (a deferral): its monotonic clock differs,
        the wall clock does not. Give them to the next process's :meth:`count_sends_from`. An
        unanswered request (none, at a deferral) is given as arriving now.
        """
        with self._lock:
            now = self._clock()
            offset = time.time() - now
            longest = max(self._windows, key=lambda window: window[1], default=None)
            if longest is None:
                return []
            times = (_settled(slot, now).at for slot in longest[2])
            return sorted(at + offset for at in times if at > now - longest[1])

    def count_sends_from(self, epoch_times: list[float], origin: str) -> bool:
        """Count sends another pacer made (:meth:`recent_send_times`) in every window of this one.

        ``origin`` is the other pacer's :attr:`identity`: when it is this pacer's own (the run
        resumed in the same process, e.g. ``dag.test()``), the sends are already counted and
        nothing changes. Returns whether anything was counted.
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
    """How long ``requests`` requests take under these limits, sent as :class:`RequestPacer` lets
    them go from empty windows, each as soon as it fits; a limit of ``0`` or ``None`` is off.

    A pure function, sending nothing: for a dry run. Each send ``i`` goes at the latest of the
    previous send and, per window, the ``limit``-th send before it plus the window's length (the
    pacer's sliding-window log). Answers take no time here: a real run is slower by its latency.
    """
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
    """When the request of ``slot``, answered at ``now``, counts as having reached Cronofy.

    Never earlier for a later ``now`` or a smaller ``fastest``: asked before the answer, it is
    the earliest the request can count from once answered.
    """
    took = now - slot.acquired
    quickest = took if fastest is None else min(fastest, took)
    return slot.acquired + max(0.0, took - quickest) + min(quickest, SEND_GUARD_SECONDS)


def _settled(slot: Slot, now: float) -> Slot:
    """``slot`` if answered, else an answered slot arriving ``now`` (its arrival is before now)."""
    return slot if slot.answered else Slot(now, answered=True)


def _leaves(slot: Slot, now: float, seconds: float, fastest: float | None) -> float:
    """When ``slot`` leaves a window of ``seconds``: the earliest that can be, if unanswered.

    An unanswered slot is in the window now (it counts as arriving now), and leaves it no sooner
    than a window after the arrival it would count from if answered now.
    """
    if slot.answered:
        return slot.at + seconds
    # A lower bound, also before any answer is measured: an answer counted from when it came is
    # estimated again once a second answer is measured (see release), possibly this early.
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
            # Slots answered late may be out of order, and expired ones may sit behind an
            # unanswered one: wait for the over-th to leave (an expired one: no wait). No slot
            # leaves before its ``at`` + ``seconds``: when the over earliest by ``at`` are all
            # answered, the over-th of them is the one (the usual case, and the cheap one).
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
