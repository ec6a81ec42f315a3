"""The bulk engine: many items through one job, a bounded number of requests in flight.

One scheduler (the calling thread) hands units of work (one item, or up to a batch of items) to
at most ``max_concurrency`` workers and collects their results. It never holds more than that
many units at once (memory stays flat however long the input), and never blocks on one item:

- a retryable failure re-queues the item with a not-before time, freeing its worker at once;
  other items go on meanwhile, and a later unit picks it up (a batch job merges it with others);
- an error that every other item would meet too (:func:`~airflow_provider_cronofy.exceptions.stops_a_bulk_run`)
  closes the run's :class:`RunGate` in the worker that met it: every request waiting for a pacer
  slot wakes and is refused (:class:`NotSent`), units in flight finish and are reported, and the
  items that were never sent come back as ``not_attempted``;
- an interruption of the scheduler (``execution_timeout``, SIGTERM, any ``BaseException``)
  closes the gate too, so no request leaves after it, keeps every result already in hand, and
  propagates.

With ``max_concurrency == 1`` the scheduler runs each unit itself: no thread, no hop. Items are
opaque (hashable) values: the engine hands them to the job and to ``on_result``, nothing more.
What a unit's sends need of the run (its gate) is passed to the job as a :class:`UnitGate`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_cronofy.exceptions import CronofyAPIError, stops_a_bulk_run
from airflow_provider_cronofy.hooks.transport import RetryLater, RetryPolicy

log = logging.getLogger(__name__)

Item = Hashable
"""An item of a run: a scheduling key, an event id, ``(calendar_id, event_id)``: opaque here."""

ResultHandler = Callable[[int, Any, Any], None]
"""Called with (input index, item, result) once per item: a value, or the item's exception."""


class NotSent(Exception):
    """Raised at the gate: the run was stopped (a fatal error, an interruption); this request was not sent."""


class StoppedBeforeRetry(CronofyAPIError):
    """An item's result: it was sent, but the run stopped (a fatal error) before its retry."""


class RunGate:
    """The last check before any request of one run leaves: once :meth:`close` returns, nothing more is sent.

    ``stopped`` is set by :meth:`close`: every pacer wait on it wakes at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    def close(self) -> None:
        """Refuse every request from now on (and wake every paced wait)."""
        with self._lock:
            self.stopped.set()

    def unit(self) -> UnitGate:
        """The gate one unit of work sends through (it notes whether the unit sent anything)."""
        return UnitGate(self)

    def _admit(self) -> None:
        with self._lock:
            if self.stopped.is_set():
                raise NotSent


class UnitGate:
    """One unit's view of its run's :class:`RunGate`: what the transport checks before each send."""

    def __init__(self, run: RunGate) -> None:
        self._run = run
        self.stopped = run.stopped
        self.sent = False
        """Whether a request of this unit was admitted (the engine reports never-sent items apart)."""

    def enter(self) -> None:
        """Admit one request, or raise :class:`NotSent` (the run is stopped)."""
        self._run._admit()
        self.sent = True


class Job(Protocol):
    """What the engine runs: how to attempt a unit of items, and how to end a spent retry budget."""

    unit_size: int
    """Items per unit (1: one request per item; up to 50 for a batch endpoint)."""

    def attempt(self, items: list[Any], gate: UnitGate) -> list[Any]:
        """Send one attempt for ``items`` through ``gate``; return one result per item, in order.

        A result is a value (the item succeeded), an exception (the item failed), or a
        :class:`RetryLater` (worth another attempt). Raising applies to every item of the unit.
        """

    def settle(self, item: Any, retry: RetryLater, attempts: int) -> Any:
        """The final result of ``item`` after ``attempts`` attempts ending in ``retry``."""


@dataclass(order=True)
class _Waiting:
    not_before: float
    seq: int
    index: int = field(compare=False)
    item: Any = field(compare=False)
    attempts: int = field(compare=False)
    retry: RetryLater = field(compare=False)


@dataclass
class _Unit:
    entries: list[tuple[int, Any, int]]  # (input index, item, attempts made before this one)
    results: list[Any] | None = None
    sent: bool = False
    interrupted: BaseException | None = None


class BulkEngine:
    """Runs ``job`` over items with up to ``max_concurrency`` units in flight (see the module docstring).

    :param policy: the retry policy: ``max_retries`` bounds each item's retries, and it
        (``delay()``) says how long an item waits before its next attempt.
    :param on_retry: told of every re-queued retry (what, the retry, the delay, the next attempt
        number, how many items): the transport's counter and log line.
    :param clock: monotonic seconds; :param wait: sits out ``seconds`` until the earliest retry
        when nothing is in flight, returning early when the run stops (default: on the gate).
    """

    def __init__(
        self,
        job: Job,
        *,
        max_concurrency: int,
        policy: RetryPolicy,
        on_retry: Callable[[str, RetryLater, float, int, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], None] | None = None,
    ) -> None:
        self.job = job
        self.max_concurrency = max(1, max_concurrency)
        self.policy = policy
        self.gate = RunGate()
        self._on_retry = on_retry
        self._clock = clock
        self._wait = wait if wait is not None else self.gate.stopped.wait
        self._done: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []

    def run(self, items: Sequence[Any], on_result: ResultHandler) -> list[Any]:
        """Give every item exactly one result through ``on_result``; return the items never sent.

        The returned list is in input order. A ``BaseException`` in the calling thread stops the
        run (no send after it) and propagates once the results already in hand are handed over.
        """
        state = _RunState(self, items, on_result)
        try:
            state.drive()
        except BaseException:
            self.gate.close()
            self._hand_over_finished(on_result)
            raise
        finally:
            for _ in self._workers:
                self._work.put(None)
        return state.finish()

    # ------------------------------------------------------------------ units and workers

    def start(self, unit: _Unit) -> None:
        """Run ``unit``: in the calling thread when one unit at a time, else on a worker."""
        if self.max_concurrency == 1:
            self._execute(unit)
            self._done.put(unit)
            return
        if len(self._workers) < self.max_concurrency:
            worker = threading.Thread(
                target=self._work_loop, name=f"cronofy-bulk-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()
        self._work.put(unit)

    def finished(self, timeout: float | None) -> _Unit | None:
        """The next finished unit, waiting at most ``timeout`` seconds (``None``: until one is)."""
        try:
            return self._done.get(timeout=timeout)
        except queue.Empty:
            return None

    def finished_now(self) -> _Unit | None:
        """A finished unit if one is ready, else ``None``."""
        try:
            return self._done.get_nowait()
        except queue.Empty:
            return None

    def now(self) -> float:
        return self._clock()

    def wait(self, seconds: float) -> None:
        """Nothing in flight, nothing due: sit out ``seconds`` (less when the run stops)."""
        self._wait(seconds)

    def settle(self, item: Any, retry: RetryLater, attempts: int) -> Any:
        try:
            return self.job.settle(item, retry, attempts)
        except Exception as error:
            return error

    def note_retry(self, what: str, retry: RetryLater, delay: float, next_attempt: int, count: int) -> None:
        if self._on_retry is not None:
            self._on_retry(what, retry, delay, next_attempt, count)

    def _hand_over_finished(self, on_result: ResultHandler) -> None:
        # An interruption keeps what workers already finished: those results are known.
        while True:
            unit = self.finished_now()
            if unit is None:
                return
            for (index, item, _), result in zip(unit.entries, unit.results or [], strict=False):
                if not isinstance(result, (RetryLater, NotSent)):
                    on_result(index, item, result)

    def _work_loop(self) -> None:
        while True:
            unit = self._work.get()
            if unit is None:
                return
            self._execute(unit)
            self._done.put(unit)

    def _execute(self, unit: _Unit) -> None:
        gate = self.gate.unit()
        items = [item for _, item, _ in unit.entries]
        try:
            results: Any = self.job.attempt(items, gate)
        except (RetryLater, NotSent, Exception) as error:
            results = [error] * len(items)
        except BaseException as error:
            if threading.current_thread() is threading.main_thread():
                raise  # inline mode: an interruption of the task itself
            unit.interrupted = error  # the scheduler re-raises it; this unit has no results
            return
        finally:
            unit.sent = gate.sent
        results = list(results)
        if len(results) != len(items):  # a job's bug must not shift results onto other items
            results = [RuntimeError(f"the job answered {len(results)} results for {len(items)} items")] * len(
                items
            )
        if any(isinstance(result, BaseException) and stops_a_bulk_run(result) for result in results):
            # Closed here, not when the scheduler collects the result: every paced waiter wakes
            # now and none of them sends.
            self.gate.close()
        unit.results = results


class _RunState:
    """One run's bookkeeping in the scheduler's thread: fresh items, retries waiting, units in flight.

    :meth:`drive` loops: start what may start (:meth:`next_unit`), collect what finished
    (:meth:`collect`, which hands results over or :meth:`requeue` s retries), until nothing is
    left or the run stopped. :meth:`finish` settles what was still waiting.
    """

    def __init__(self, engine: BulkEngine, items: Sequence[Any], on_result: ResultHandler) -> None:
        self.engine = engine
        self.items = items
        self.on_result = on_result
        self.fresh: Iterator[tuple[int, Any]] = iter(enumerate(items))
        self.fresh_left = True
        self.waiting: list[_Waiting] = []
        self.seq = itertools.count()
        self.in_flight = 0
        self.stopping = False
        self.not_attempted: list[int] = []

    def drive(self) -> None:
        engine = self.engine
        while True:
            self.start_what_may_start()
            if self.in_flight == 0:
                if self.stopping or not self.waiting:
                    return
                # Nothing in flight, nothing due: wait for the earliest retry.
                wait = self.waiting[0].not_before - engine.now()
                if wait > 0:
                    engine.wait(wait)
                continue
            timeout = None
            if self.waiting and not self.stopping and self.in_flight < engine.max_concurrency:
                timeout = max(0.0, self.waiting[0].not_before - engine.now())
            unit = engine.finished(timeout)
            while unit is not None:  # everything else already finished, before sending more
                self.collect(unit)
                unit = engine.finished_now()

    def start_what_may_start(self) -> None:
        while not self.stopping and self.in_flight < self.engine.max_concurrency:
            unit = self.next_unit()
            if unit is None:
                return
            self.in_flight += 1
            self.engine.start(unit)
            if self.engine.max_concurrency == 1:
                finished = self.engine.finished_now()
                assert finished is not None
                self.collect(finished)

    def next_unit(self) -> _Unit | None:
        """The next unit: retries that are due first, then fresh items, up to the job's unit size."""
        size = self.engine.job.unit_size
        entries: list[tuple[int, Any, int]] = []
        now = self.engine.now()
        while self.waiting and self.waiting[0].not_before <= now and len(entries) < size:
            due = heapq.heappop(self.waiting)
            entries.append((due.index, due.item, due.attempts))
        while self.fresh_left and len(entries) < size:
            nxt = next(self.fresh, None)
            if nxt is None:
                self.fresh_left = False
            else:
                entries.append((nxt[0], nxt[1], 0))
        return _Unit(entries) if entries else None

    def collect(self, unit: _Unit) -> None:
        """Hand over the finished ``unit``'s results; re-queue its retries; note what was never sent."""
        self.in_flight -= 1
        if unit.interrupted is not None:
            raise unit.interrupted
        assert unit.results is not None
        not_before: dict[float | None, float] = {}
        for (index, item, before), result in zip(unit.entries, unit.results, strict=True):
            attempts = before + (1 if unit.sent else 0)
            if isinstance(result, NotSent):
                if attempts == 0:
                    self.not_attempted.append(index)
                else:
                    self.hand_over(index, item, _stopped_before_retry(item))
            elif isinstance(result, RetryLater):
                if self.stopping or not self.engine.policy.may_retry(attempts):
                    self.hand_over(index, item, self.engine.settle(item, result, attempts))
                else:
                    self.requeue(unit, index, item, attempts, result, not_before)
            else:
                self.hand_over(index, item, result)

    def requeue(
        self,
        unit: _Unit,
        index: int,
        item: Any,
        attempts: int,
        retry: RetryLater,
        not_before: dict[float | None, float],
    ) -> None:
        """Queue ``item`` for another attempt after its back-off (items of a unit failing alike wait alike)."""
        group = retry.retry_after
        due = not_before.get(group)
        if due is None:
            delay = self.engine.policy.delay(attempts, retry)
            due = not_before[group] = self.engine.now() + delay
            assert unit.results is not None
            sharing = sum(1 for r in unit.results if isinstance(r, RetryLater) and r.retry_after == group)
            what = repr(item) if sharing == 1 else f"{sharing} items from {item!r}"
            self.engine.note_retry(what, retry, delay, attempts + 1, sharing)
        heapq.heappush(self.waiting, _Waiting(due, next(self.seq), index, item, attempts, retry))

    def hand_over(self, index: int, item: Any, result: Any) -> None:
        """Give ``result`` to ``on_result``; a stopping error stops the run (the gate is closed)."""
        self.on_result(index, item, result)
        if isinstance(result, BaseException) and stops_a_bulk_run(result) and not self.stopping:
            self.stopping = True
            self.engine.gate.close()

    def finish(self) -> list[Any]:
        """Stopped or done: what waited for a retry ends now; return what was never sent, in input order."""
        for entry in sorted(self.waiting):
            self.hand_over(
                entry.index, entry.item, self.engine.settle(entry.item, entry.retry, entry.attempts)
            )
        for index, _item in self.fresh:
            self.not_attempted.append(index)
        return [self.items[i] for i in sorted(self.not_attempted)]


def _stopped_before_retry(item: Any) -> StoppedBeforeRetry:
    return StoppedBeforeRetry(
        "Sent, but not finished: the run stopped at an error every other item would meet too.",
        item=item,
    )
