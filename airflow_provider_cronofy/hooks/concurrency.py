"""The bulk engine: many items through one transport, a bounded number of requests in flight.

One scheduler (the calling thread) hands units of work (one item, or up to a batch of items) to
at most ``max_concurrency`` workers and collects their results. It never holds more than that
many units at once (memory stays flat however long the input), and never blocks on one item:

- a retryable failure re-queues the item with a not-before time, freeing its worker at once;
  other items go on meanwhile, and a later unit picks it up (a batch job merges it with others);
- an error that every other item would meet too (:func:`~airflow_provider_cronofy.exceptions.stops_a_bulk_run`) closes the run's
  :class:`SendGate`: nothing more is sent, units in flight finish and are reported, and the
  items that were never sent come back as ``not_attempted``;
- an interruption of the scheduler (``execution_timeout``, SIGTERM, any ``BaseException``)
  closes the gate too, so no request leaves after it, keeps every result already in hand, and
  propagates.

With ``max_concurrency == 1`` the scheduler runs each unit itself: no thread, no hop.
Every send, retries included, still goes through the transport: pacer, gate, counters.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_cronofy.exceptions import CronofyAPIError, stops_a_bulk_run
from airflow_provider_cronofy.hooks.transport import RetryLater, SendGate, Stopped, Transport

log = logging.getLogger(__name__)

ResultHandler = Callable[[int, str, Any], None]
"""Called with (input index, item, result) once per item: a value, or the item's exception."""


class Job(Protocol):
    """What the engine runs: how to attempt a unit of items, and how to end a spent retry budget."""

    unit_size: int
    """Items per unit (1: one request per item; up to 50 for a batch endpoint)."""

    def attempt(self, items: list[str]) -> list[Any]:
        """Send one attempt for ``items``; return one result per item, in order.

        A result is a value (the item succeeded), an exception (the item failed), or a
        :class:`RetryLater` (worth another attempt). Raising applies to every item of the unit.
        """

    def settle(self, item: str, retry: RetryLater, attempts: int) -> Any:
        """The final result of ``item`` after ``attempts`` attempts ending in ``retry``."""


class RunStopped(CronofyAPIError):
    """An item that was sent, but not finished: the run stopped (a fatal error) before its retry."""


@dataclass(order=True)
class _Waiting:
    not_before: float
    seq: int
    index: int = field(compare=False)
    item: str = field(compare=False)
    attempts: int = field(compare=False)
    retry: RetryLater = field(compare=False)


@dataclass
class _Unit:
    entries: list[tuple[int, str, int]]  # (input index, item, attempts made before this one)
    results: list[Any] | None = None
    sent: bool = False
    interrupted: BaseException | None = None


class BulkEngine:
    """Runs ``job`` over ``items`` on ``transport`` (see the module docstring)."""

    def __init__(self, transport: Transport, job: Job, *, max_concurrency: int) -> None:
        self.transport = transport
        self.job = job
        self.max_concurrency = max(1, max_concurrency)
        self.max_attempts = transport.settings.max_retries + 1
        self.gate = SendGate()
        self._skew = 0.0  # advanced when a replaced sleep() returns before the wait is over
        self._done: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []

    def _now(self) -> float:
        return time.monotonic() + self._skew

    def run(self, items: Sequence[str], on_result: ResultHandler) -> list[str]:
        """Give every item exactly one result through ``on_result``; return the items never sent.

        The returned list is in input order. A ``BaseException`` in the calling thread stops the
        run (no send after it) and propagates once the results already in hand are handed over.
        """
        fresh: Iterator[tuple[int, str]] = iter(enumerate(items))
        fresh_left = True
        waiting: list[_Waiting] = []
        seq = itertools.count()
        in_flight = 0
        stopping = False
        not_attempted: list[int] = []

        def finish(index: int, item: str, result: Any) -> None:
            nonlocal stopping
            on_result(index, item, result)
            if isinstance(result, BaseException) and stops_a_bulk_run(result) and not stopping:
                stopping = True
                self.gate.close()

        def collect(unit: _Unit) -> None:
            nonlocal in_flight
            in_flight -= 1
            if unit.interrupted is not None:
                raise unit.interrupted
            assert unit.results is not None
            not_before: dict[float | None, float] = {}
            for (index, item, before), result in zip(unit.entries, unit.results, strict=True):
                attempts = before + (1 if unit.sent else 0)
                if isinstance(result, Stopped):
                    if attempts == 0:
                        not_attempted.append(index)
                    else:
                        finish(index, item, _stopped_error(item))
                elif isinstance(result, RetryLater):
                    if attempts >= self.max_attempts or stopping:
                        finish(index, item, self._settle(item, result, attempts))
                        continue
                    # Items of one unit (a batch) that failed alike wait alike, to go out together.
                    group = result.retry_after
                    due = not_before.get(group)
                    if due is None:
                        delay = self.transport.backoff(attempts, result)
                        due = not_before[group] = self._now() + delay
                        sharing = sum(
                            1 for r in unit.results if isinstance(r, RetryLater) and r.retry_after == group
                        )
                        what = repr(item) if sharing == 1 else f"{sharing} items from {item!r}"
                        self.transport.note_retry(what, result, delay, attempts + 1, count=sharing)
                    heapq.heappush(waiting, _Waiting(due, next(seq), index, item, attempts, result))
                else:
                    finish(index, item, result)

        def next_unit() -> _Unit | None:
            nonlocal fresh_left
            entries: list[tuple[int, str, int]] = []
            now = self._now()
            while waiting and waiting[0].not_before <= now and len(entries) < self.job.unit_size:
                due = heapq.heappop(waiting)
                entries.append((due.index, due.item, due.attempts))
            while fresh_left and len(entries) < self.job.unit_size:
                nxt = next(fresh, None)
                if nxt is None:
                    fresh_left = False
                else:
                    entries.append((nxt[0], nxt[1], 0))
            return _Unit(entries) if entries else None

        inline = self.max_concurrency == 1
        try:
            while True:
                while not stopping and in_flight < self.max_concurrency:
                    unit = next_unit()
                    if unit is None:
                        break
                    in_flight += 1
                    if inline:
                        self._execute(unit)
                        collect(unit)
                    else:
                        self._dispatch(unit)
                if in_flight == 0:
                    if stopping or not waiting:
                        break
                    # Nothing in flight, nothing due: wait for the earliest retry.
                    wait = waiting[0].not_before - self._now()
                    if wait > 0:
                        self.transport.policy.sleep(wait)
                        self._skew += max(0.0, waiting[0].not_before - self._now())
                    continue
                timeout = None
                if waiting and not stopping and in_flight < self.max_concurrency:
                    timeout = max(0.0, waiting[0].not_before - self._now())
                try:
                    collect(self._done.get(timeout=timeout))
                except queue.Empty:
                    continue
                while True:  # everything else already finished, before sending more
                    try:
                        collect(self._done.get_nowait())
                    except queue.Empty:
                        break
        except BaseException:
            self.gate.close()
            self._hand_over_finished(on_result)
            raise
        finally:
            for _ in self._workers:
                self._work.put(None)
        # Stopped: what was waiting for a retry ends now, what was never taken was never sent.
        for entry in sorted(waiting):
            finish(entry.index, entry.item, self._settle(entry.item, entry.retry, entry.attempts))
        for index, _item in fresh:
            not_attempted.append(index)
        return [items[i] for i in sorted(not_attempted)]

    def _hand_over_finished(self, on_result: ResultHandler) -> None:
        # An interruption keeps what workers already finished: those results are known.
        while True:
            try:
                unit = self._done.get_nowait()
            except queue.Empty:
                return
            for (index, item, _), result in zip(unit.entries, unit.results or [], strict=False):
                if not isinstance(result, (RetryLater, Stopped)):
                    on_result(index, item, result)

    def _settle(self, item: str, retry: RetryLater, attempts: int) -> Any:
        try:
            return self.job.settle(item, retry, attempts)
        except Exception as error:
            return error

    def _dispatch(self, unit: _Unit) -> None:
        if len(self._workers) < self.max_concurrency:
            worker = threading.Thread(
                target=self._work_loop, name=f"cronofy-bulk-{len(self._workers)}", daemon=True
            )
            self._workers.append(worker)
            worker.start()
        self._work.put(unit)

    def _work_loop(self) -> None:
        while True:
            unit = self._work.get()
            if unit is None:
                return
            self._execute(unit)
            self._done.put(unit)

    def _execute(self, unit: _Unit) -> None:
        transport = self.transport
        transport.use_gate(self.gate)
        self.gate.begin_unit()
        items = [item for _, item, _ in unit.entries]
        try:
            results: Any = self.job.attempt(items)
        except (RetryLater, Stopped, Exception) as error:
            results = [error] * len(items)
        except BaseException as error:
            if threading.current_thread() is threading.main_thread():
                raise  # inline mode: an interruption of the task itself
            unit.interrupted = error  # the scheduler re-raises it; this unit has no results
            return
        finally:
            unit.sent = self.gate.unit_sent()
            transport.use_gate(None)
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


def _stopped_error(item: str) -> RunStopped:
    return RunStopped(
        "Sent, but not finished: the run stopped at an error every other item would meet too.",
        item=item,
    )
