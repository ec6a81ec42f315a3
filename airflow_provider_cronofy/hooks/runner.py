"""The bulk runner: many items through one job, at most ``max_concurrency`` units in flight.

How a run goes (retries re-queued, a stop, progress): docs/howto/concurrency.md ("What a run does").
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyError, ItemFailure, stops_a_bulk_run
from airflow_provider_cronofy.hooks.pacing import sit_out
from airflow_provider_cronofy.hooks.transport import (
    NotSent,
    Reply,
    Request,
    RetryLater,
    RetryPolicy,
    log_retry,
)
from airflow_provider_cronofy.wording import plural

if TYPE_CHECKING:
    from airflow_provider_cronofy.hooks.tokens import Sender

PROGRESS_EVERY_SECONDS = 10.0
"""A progress line at least this often while a run sends (and at most this often)."""

Job = Callable[[list[Any], threading.Event], list[Any]]
"""Sends one unit of items once, checking the run's stop event; returns per item, in order, an
outcome name, an exception, a :class:`~.transport.RetryLater` or a :class:`~.transport.NotSent`."""


@dataclass(frozen=True)
class RunSettings:
    """How a run sends: ``max_concurrency`` units in flight, ``unit_size`` items per unit,
    ``policy`` for retries, ``clock`` (monotonic seconds) for not-before times, and ``sleep``
    to sit out the earliest retry when nothing is in flight (``None``: a wait the stop event ends)."""

    max_concurrency: int
    policy: RetryPolicy
    unit_size: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] | None = None


@dataclass(frozen=True)
class Report:
    """What the run's progress lines say: ``noun`` / ``nouns`` name the items, ``total`` the whole
    list's length (a segment of a longer run), ``done`` and ``failed`` what earlier segments did."""

    log: logging.Logger | Any
    noun: str
    nouns: str | None = None
    total: int | None = None
    done: int = 0
    failed: int = 0


@dataclass
class RunResult:
    """Each item's result, in input order.

    :ivar outcomes: per item, its outcome name, or ``None`` (it failed or was never sent).
    :ivar failures: input index -> :class:`~airflow_provider_cronofy.exceptions.ItemFailure`.
    :ivar not_attempted: indexes of the items never sent (a failure stopped the run), in order.
    :ivar stopped: whether a failure every other item would meet too stopped the run.
    """

    outcomes: list[str | None]
    failures: dict[int, ItemFailure] = field(default_factory=dict)
    not_attempted: list[int] = field(default_factory=list)
    stopped: bool = False

    @property
    def answered(self) -> int:
        """Items with an outcome or a failure."""
        return len(self.outcomes) - self.outcomes.count(None) + len(self.failures)


class StoppedBeforeRetry(CronofyAPIError):
    """An item's failure: it was sent, but the run stopped before its retry."""


class NotSentFailure(CronofyAPIError):
    """An item's failure without its request being sent (an event of a calendar known to be unknown)."""


def failure_of(item: Any, error: BaseException, redact: Callable[[str], str] = str) -> ItemFailure:
    """``item``'s :class:`ItemFailure` for ``error``: its HTTP status and its reason, redacted."""
    status = error.status_code if isinstance(error, CronofyAPIError) else None
    # The provider's own errors are worded for the user; anything else is a bug, which must not
    # lose the report of the other items: it is named by its class.
    reason = str(error) if isinstance(error, CronofyError) else f"{type(error).__name__}: {error}"
    return ItemFailure(item, status, redact(reason), sent=not isinstance(error, NotSentFailure))


@dataclass(order=True)
class _Waiting:
    not_before: float
    seq: int
    index: int = field(compare=False)
    attempts: int = field(compare=False)
    retry: RetryLater = field(compare=False)


class BulkRun:
    """One run of ``job`` over ``items``; :meth:`run` sends them, at most
    ``settings.max_concurrency`` units at once. A :class:`~.transport.RetryLater` re-queues the
    item with a not-before time, freeing its worker; a failure every other item would meet too
    (a fatal :class:`~airflow_provider_cronofy.exceptions.CronofyAPIError`, a bad setting) or an
    interruption sets :attr:`stop`: no waiting request is sent, and the items never sent are
    ``not_attempted``. A progress line is logged at least every 10 s.
    """

    def __init__(self, items: Sequence[Any], job: Job, settings: RunSettings, report: Report) -> None:
        self.items = items
        self.result = RunResult([None] * len(items))
        """What the run did so far: complete once :meth:`run` returns; after an interruption,
        every result that was in hand."""
        self.stop = threading.Event()
        """Set when the run stops (a failure every item would meet, an interruption): no request
        waiting for a pacer slot is sent after it."""
        self._job = job
        self._settings = settings
        self._report = report
        self._clock = settings.clock
        self._waiting: list[_Waiting] = []
        self._seq = itertools.count()
        self._done: queue.SimpleQueue[tuple[list[tuple[int, int]], list[Any] | BaseException]] = (
            queue.SimpleQueue()
        )
        self._retries = 0

    def run(self) -> RunResult:
        """Send every item; return :attr:`result`."""
        workers = max(1, self._settings.max_concurrency)
        fresh = iter(range(len(self.items)))
        started = self._clock()
        next_line = started + PROGRESS_EVERY_SECONDS
        in_flight = 0
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cronofy-bulk")
        try:
            while True:
                while not self.stop.is_set() and in_flight < workers:
                    unit = self._next_unit(fresh)
                    if not unit:
                        break
                    pool.submit(self._work, unit)
                    in_flight += 1
                if in_flight == 0:
                    if self.stop.is_set() or not self._waiting:
                        break
                    # Nothing in flight: sit out the earliest retry, saying so every 10 s meanwhile.
                    self._sit_out(min(self._waiting[0].not_before, next_line) - self._clock())
                    if self._clock() >= next_line:
                        next_line = self._clock() + PROGRESS_EVERY_SECONDS
                        self._log_progress(started)
                    continue
                due = next_line
                if self._waiting and not self.stop.is_set() and in_flight < workers:
                    due = min(due, self._waiting[0].not_before)
                try:
                    finished = self._done.get(timeout=max(0.0, due - self._clock()))
                except queue.Empty:
                    finished = None
                while finished is not None:
                    in_flight -= 1
                    self._collect(*finished)
                    if self._clock() >= next_line:
                        next_line = self._clock() + PROGRESS_EVERY_SECONDS
                        self._log_progress(started)
                    finished = self._done_now()
                if self._clock() >= next_line:  # nothing answered for a while: say so anyway
                    next_line = self._clock() + PROGRESS_EVERY_SECONDS
                    self._log_progress(started)
        except BaseException:
            self.stop.set()  # nothing leaves after an interruption
            pool.shutdown(wait=False, cancel_futures=True)
            self._collect_finished()
            raise
        pool.shutdown()
        self._finish(fresh)
        return self.result

    def _next_unit(self, fresh: Any) -> list[tuple[int, int]]:
        """``(index, attempts so far)`` of the next unit: due retries first, then fresh items."""
        size = self._settings.unit_size
        unit: list[tuple[int, int]] = []
        now = self._clock()
        while self._waiting and self._waiting[0].not_before <= now and len(unit) < size:
            due = heapq.heappop(self._waiting)
            unit.append((due.index, due.attempts))
        while len(unit) < size:
            index = next(fresh, None)
            if index is None:
                break
            unit.append((index, 0))
        return unit

    def _work(self, unit: list[tuple[int, int]]) -> None:
        try:
            results: list[Any] | BaseException = self._job([self.items[i] for i, _ in unit], self.stop)
        except BaseException as error:  # recorded as every item's result, or re-raised if not an Exception
            results = error
        answers = results if isinstance(results, list) else [results]
        if any(isinstance(r, BaseException) and stops_a_bulk_run(r) for r in answers):
            # Set here, not when the run's loop collects the unit: every paced waiter wakes now.
            self.stop.set()
        self._done.put((unit, results))

    def _sit_out(self, seconds: float) -> None:
        if seconds > 0:
            sit_out(seconds, self._settings.sleep, self.stop)

    def _done_now(self) -> tuple[list[tuple[int, int]], list[Any] | BaseException] | None:
        try:
            return self._done.get_nowait()
        except queue.Empty:
            return None

    def _collect_finished(self) -> None:
        # An interruption keeps what the workers already finished: those results are known.
        while (finished := self._done_now()) is not None:
            unit, results = finished
            if isinstance(results, list):
                for (index, _), result in zip(unit, results, strict=False):
                    if not isinstance(result, (RetryLater, NotSent)):
                        self._record(index, 0, result)

    def _collect(self, unit: list[tuple[int, int]], answered: list[Any] | BaseException) -> None:
        """Record a finished unit's results; re-queue its retries."""
        if isinstance(answered, BaseException) and not isinstance(answered, Exception):
            raise answered  # an interruption inside the job
        results = [answered] * len(unit) if isinstance(answered, BaseException) else list(answered)
        if len(results) != len(unit):  # a job's bug must not shift results onto other items
            results = [RuntimeError(f"the job answered {len(results)} results for {len(unit)} items")] * len(
                unit
            )
        delays: dict[float | None, float] = {}  # items of a unit failing alike wait alike
        for (index, before), result in zip(unit, results, strict=True):
            if isinstance(result, NotSent):
                if before == 0:
                    self.result.not_attempted.append(index)
                else:
                    self._record(
                        index,
                        before,
                        StoppedBeforeRetry(
                            "Sent, but not finished: the run stopped at an error every other item would meet too."
                        ),
                    )
            elif isinstance(result, RetryLater):
                attempts = before + 1
                if self.stop.is_set() or not self._settings.policy.may_retry(attempts):
                    self._record(index, before, result.give_up(attempts))
                else:
                    self._requeue(index, attempts, result, delays, results)
            else:
                self._record(index, before, result)

    def _requeue(
        self, index: int, attempts: int, retry: RetryLater, delays: dict[float | None, float], unit: list[Any]
    ) -> None:
        group = retry.retry_after
        if group not in delays:
            delays[group] = self._settings.policy.delay(attempts, retry)
            sharing = sum(1 for r in unit if isinstance(r, RetryLater) and r.retry_after == group)
            what = retry.what if sharing == 1 else f"{sharing} items from {retry.what}"
            log_retry(what, retry, delays[group], attempts + 1, self._settings.policy)
            self._retries += sharing
        not_before = self._clock() + delays[group]
        heapq.heappush(self._waiting, _Waiting(not_before, next(self._seq), index, attempts, retry))

    def _record(self, index: int, attempts: int, result: Any) -> None:
        if isinstance(result, BaseException):
            failure = failure_of(self.items[index], result)
            if attempts and not failure.sent:  # sent before, just not retried
                failure = ItemFailure(failure.item, failure.status_code, failure.reason)
            self.result.failures[index] = failure
            if stops_a_bulk_run(result) and not self.result.stopped:
                self.result.stopped = True
                self.stop.set()  # every paced waiter wakes now and none of them sends
        else:
            self.result.outcomes[index] = result

    def _finish(self, fresh: Any) -> None:
        """Stopped or done: what waited for a retry fails now; the rest was never sent."""
        for waiting in sorted(self._waiting):
            self._record(waiting.index, waiting.attempts, waiting.retry.give_up(waiting.attempts))
        self.result.not_attempted.extend(fresh)
        self.result.not_attempted.sort()

    @property
    def retries(self) -> int:
        """Retries spent by this run so far."""
        return self._retries

    def _log_progress(self, started: float) -> None:
        report = self._report
        done = report.done + self.result.answered
        total = report.total if report.total is not None else len(self.items)
        rate = self.result.answered / max(self._clock() - started, 1e-9)
        report.log.info(
            "Progress: %d/%s done, %d failed, %.1f/s.",
            done,
            plural(total, report.noun, report.nouns),
            report.failed + len(self.result.failures),
            rate,
        )


class PerItem:
    """A job sending one request per item with ``sender``: a subclass says which (:meth:`request`)
    and what its final answer means (:meth:`read`: an outcome name, or the item's error, returned)."""

    unit_size = 1

    def __init__(self, sender: Sender) -> None:
        self.sender = sender

    def request(self, item: Any) -> Request:
        raise NotImplementedError

    def read(self, reply: Reply, item: Any) -> Any:
        raise NotImplementedError

    def __call__(self, items: list[Any], stop: threading.Event) -> list[Any]:
        (item,) = items
        try:
            reply = self.sender.send(self.request(item), 1, stop)
        except RetryLater as retry:
            return [retry.worded_by(lambda reply: self.read(reply, item))]
        except Exception as error:  # NotSent, a fatal error: the item's result
            return [error]
        return [self.read(reply, item)]
