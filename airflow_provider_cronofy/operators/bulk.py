"""Working through a list of items on one hook: argument checks, progress, failure report.

Shared by the Meeting Agent operators. Every item is validated before the first request; the
hook's bulk engine (:mod:`airflow_provider_cronofy.hooks.engine`) sends them, several at a
time; this module turns its per-item results into the operator's return value (in input order),
progress lines, and one error listing every failed item. Nothing here imports ``requests``: DAG
files import the operators.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyBulkError,
    CronofyError,
    CronofyInputError,
    ItemFailure,
    stops_a_bulk_run,
)
from airflow_provider_cronofy.operators.failure_report import failure_message
from airflow_provider_cronofy.validation import refuse_comma_joined, validate_item
from airflow_provider_cronofy.wording import plural

PROGRESS_EVERY_SECONDS = 10.0
"""A progress line at least this often while a run sends (and at most this often)."""

Item = Hashable
"""What the runner carries: a scheduling key, an event id, a ``(calendar_id, event_id)``: opaque."""

Run = Callable[[Sequence[Any], Callable[[int, Any, Any], None]], list[Any]]
"""Sends every item, calling back ``(index, item, result)`` per item; returns the items never sent."""


def normalise_items(name: str, value: object) -> list[str]:
    """Return ``value`` (one string, or a list or tuple of strings) as a list without duplicates.

    Items are kept exactly as given (no stripping, commas and inner spaces included) and in input
    order; the first of duplicates stays. An item with leading or trailing white space is refused,
    and so is one string holding a comma (it is almost always several ids joined into one).
    Raises :class:`CronofyInputError` naming every bad item.
    """
    if isinstance(value, str):
        validate_item(name, value)
        refuse_comma_joined(name, value)
        return [value]
    if isinstance(value, (bytes, bytearray, dict, set, frozenset)) or not isinstance(value, Sequence):
        raise CronofyInputError(
            f"{name} must be a string or a list of strings, got {type(value).__name__}: {value!r:.100}."
        )
    problems: list[str] = []
    for index, item in enumerate(value):
        try:
            validate_item(f"{name}[{index}]", item)
        except CronofyInputError as error:
            problems.append(str(error))
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more."] if len(problems) > 10 else [])
        raise CronofyInputError(
            f"{len(problems)} of the {len(value)} items of {name} are invalid; nothing was sent:\n  "
            + "\n  ".join(shown)
        )
    return list(dict.fromkeys(value))


DRY_RUN_ITEMS_LOGGED = 100
"""A dry run logs this many items one by one, then how many more there are."""


def log_dry_run(
    task_log: logging.Logger | Any,
    sends: str,
    what: str,
    shown: Sequence[str],
    total: int,
    notes: Sequence[str],
) -> None:
    """Log a dry run: the requests a real run would send (``sends``), ``what`` each carries, the
    items as ``shown`` (at most :data:`DRY_RUN_ITEMS_LOGGED` of the ``total``), then ``notes``.

    No credential is in any of these lines: callers pass ids and requests, never the connection.
    """
    task_log.info("Dry run: nothing is sent. A real run would send %s, one %s each:", sends, what)
    for line in shown[:DRY_RUN_ITEMS_LOGGED]:
        task_log.info("Dry run: would cancel %s", line)
    if total > DRY_RUN_ITEMS_LOGGED:
        task_log.info("Dry run: ... and %d more.", total - DRY_RUN_ITEMS_LOGGED)
    for note in notes:
        task_log.info("Dry run: %s", note)


def describe_failure(error: BaseException) -> tuple[int | None, str]:
    """The HTTP status (or ``None``) and the reason (not yet redacted) a failed item is reported with."""
    status = error.status_code if isinstance(error, CronofyAPIError) else None
    # The provider's own errors are worded for the user; anything else is a bug, which must not
    # lose the report of the other items: it is named by its class.
    reason = str(error) if isinstance(error, CronofyError) else f"{type(error).__name__}: {error}"
    return status, reason


class RunClock:
    """How long a bulk run has taken, from its first ``execute`` to now, and how much of it deferred.

    A run that never deferred is timed on ``clock`` (monotonic seconds) from this object's
    creation. A deferred run resumes in another process (other machine, other monotonic clock):
    :meth:`resumed` gives it the start and the deferred seconds carried across, on the wall clock
    (``wall``, epoch seconds), and from then on this process's share is added on ``clock``.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.wall = wall
        self._mark = clock()
        self._before = 0.0
        self.started_at = wall()
        """When the run started (epoch seconds): this object's creation, or the carried start."""
        self.deferred = 0.0
        """Seconds of the run spent deferred (the worker slot free) so far."""
        self.deferrals = 0
        """How many times the run deferred so far."""

    def elapsed(self) -> float:
        """Seconds since the run started, deferrals included."""
        return self._before + self.clock() - self._mark

    def resumed(self, started_at: float, deferred: float, deferrals: int) -> None:
        """The run started at ``started_at`` (epoch seconds) in an earlier process and has spent
        ``deferred`` seconds deferred, in ``deferrals`` deferrals, until now."""
        self._mark = self.clock()
        # A wall clock set back meanwhile must not make the run's time negative.
        self._before = max(0.0, self.wall() - started_at)
        self.started_at = started_at
        self.deferred = min(max(0.0, deferred), self._before)
        self.deferrals = deferrals

    def took(self) -> str:
        """``"0.4 s"``; after deferrals ``"132.0 s (120.4 s of it deferred, 2 deferrals)"``."""
        text = f"{self.elapsed():.1f} s"
        if self.deferrals:
            text += f" ({self.deferred:.1f} s of it deferred, {plural(self.deferrals, 'deferral')})"
        return text


class BulkTally:
    """The outcome of every item of one run, as the results come in; the run's lines and error.

    :meth:`on_result` takes one result per item (from the engine, in the scheduler's thread);
    :meth:`progress_line` is safe from any thread (the :class:`ProgressReporter`'s);
    :meth:`fill` writes the outcomes into ``results`` in input order; :meth:`summary`,
    :meth:`failure_message` and :meth:`raise_if_failed` word the end of the run.
    """

    def __init__(
        self,
        items: Sequence[Item],
        results: dict[str, list[Any]],
        *,
        outcome_of: Callable[[Any], str],
        noun: str,
        noun_plural: str | None = None,
        redact: Callable[[str], str] = str,
        run_clock: RunClock | None = None,
    ) -> None:
        self.items = items
        self.results = results
        self._outcome_of = outcome_of
        self._noun = (noun, noun_plural)
        self._redact = redact
        self.run_clock = run_clock if run_clock is not None else RunClock()
        # One byte per item (0: no outcome yet, else 1 + the outcome's position): a dict of
        # outcomes cost 60-80 bytes per item, which a 100,000-key run felt.
        self._names = list(results)
        self._code_of = {name: code for code, name in enumerate(self._names, start=1)}
        self._codes = bytearray(len(items))
        self.succeeded = 0
        self.failures: dict[int, ItemFailure] = {}
        self.fatal = False
        self.not_attempted: list[Any] = []
        self._lock = threading.Lock()  # the counters are read by the progress reporter's thread

    def nouns(self, count: int) -> str:
        """``count`` and the run's noun agreeing with it: ``"3 scheduling keys"``."""
        return plural(count, *self._noun)

    @property
    def answered(self) -> int:
        """Items with a result so far (succeeded or failed)."""
        return self.succeeded + len(self.failures)

    def on_result(self, index: int, item: Any, result: Any) -> None:
        """Record the result of ``items[index]``: a value (its outcome) or its exception."""
        if isinstance(result, BaseException):
            status, reason = describe_failure(result)
            failure = ItemFailure(item, status, self._redact(reason))
            with self._lock:
                self.failures[index] = failure
                self.fatal = self.fatal or stops_a_bulk_run(result)
        else:
            code = self._code_of[self._outcome_of(result)]
            with self._lock:
                self._codes[index] = code
                self.succeeded += 1

    def progress_line(self) -> str:
        """``Progress: 20/26 scheduling keys done, 0 failed, 1.9/s.``: what was answered by now."""
        with self._lock:
            done, failed = self.answered, len(self.failures)
        elapsed = max(self.run_clock.elapsed(), 1e-9)
        return (
            f"Progress: {done}/{self.nouns(len(self.items))} done, {failed} failed, {done / elapsed:.1f}/s."
        )

    def fill(self) -> None:
        """Append every item with an outcome to ``results[outcome]``, in input order."""
        for index, code in enumerate(self._codes):  # input order, whatever order the answers came in
            if code:
                self.results[self._names[code - 1]].append(self.items[index])

    def summary(self) -> str:
        """``2 cancelled, 1 not found``: the count of each outcome (after :meth:`fill`)."""
        return ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in self.results.items())

    def done_line(self) -> str:
        """The run's last line: how many, how long (deferrals included, see :class:`RunClock`), each
        outcome, failures, items never sent."""
        unsent = f", {len(self.not_attempted)} not attempted" if self.not_attempted else ""
        return (
            f"Done: {self.nouns(len(self.items))} in {self.run_clock.took()}: {self.summary()}, "
            f"{len(self.failures)} failed{unsent}."
        )

    def ordered_failures(self) -> list[ItemFailure]:
        """The failures in input order."""
        return [self.failures[index] for index in sorted(self.failures)]

    def failure_message(self) -> str:
        """The message of the run's :class:`CronofyBulkError`: every failed item, one line per cause
        (see :func:`~airflow_provider_cronofy.operators.failure_report.failure_message`)."""
        return failure_message(
            self.ordered_failures(),
            total=len(self.items),
            noun=self._noun[0],
            nouns=self._noun[1],
            summary=self.summary(),
            not_attempted=len(self.not_attempted),
            fatal=self.fatal,
        )

    def raise_if_failed(self) -> None:
        """Raise :class:`CronofyBulkError` (fatal when a stopping error ended the run) if any item failed."""
        if self.failures:
            raise CronofyBulkError.of(
                self.failure_message(),
                failures=self.ordered_failures(),
                results=self.results,
                not_attempted=self.not_attempted,
                fatal=self.fatal,
            )


class ProgressReporter:
    """Logs the tally's progress line every ``every`` seconds while a run sends.

    A line is due ``every`` seconds after the last one; :meth:`maybe_report` (after each result)
    logs it when due, and a thread of its own logs it when no result comes in: a run paced to a
    long wait still says what was answered. Use as a context manager around the run.
    """

    def __init__(
        self,
        tally: BulkTally,
        log: logging.Logger | Any,
        every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tally = tally
        self._log = log
        self._every = every
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cronofy-bulk-progress", daemon=True)

    def maybe_report(self) -> None:
        """Log the progress line if one is due."""
        with self._lock:
            now = self._clock()
            if now - self._last < self._every:
                return
            self._last = now
        self._log.info(self._tally.progress_line())

    def _loop(self) -> None:
        while True:
            with self._lock:
                due_in = self._last + self._every - self._clock()
            # A zero interval (tests) still lets the thread breathe between lines.
            if self._stop.wait(max(due_in, 0.05)):
                return
            self.maybe_report()

    def __enter__(self) -> ProgressReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def run_bulk(
    items: Sequence[Any],
    run: Run,
    *,
    outcome_of: Callable[[Any], str],
    noun: str,
    outcomes: Sequence[str],
    log: logging.Logger | Any,
    noun_plural: str | None = None,
    redact: Callable[[str], str] = str,
    results: dict[str, list[Any]] | None = None,
    run_clock: RunClock | None = None,
) -> dict[str, list[Any]]:
    """Send every item with ``run``; return ``{outcome: [items]}`` in input order.

    ``outcome_of`` names the outcome (one of ``outcomes``) of an item's successful result. An
    item's exception fails the item and the run goes on, unless every other item would meet it
    too (:func:`~airflow_provider_cronofy.exceptions.stops_a_bulk_run`): then ``run`` stops
    sending. A progress line (``noun`` is the singular of what the items are, ``noun_plural``
    its plural when not ``noun + "s"``) is logged every :data:`PROGRESS_EVERY_SECONDS` while the
    run sends. Afterwards any failure raises :class:`CronofyBulkError` (a
    :class:`~airflow_provider_cronofy.exceptions.CronofyFatalBulkError` when such an error
    stopped the run) listing each failed item and carrying the results.

    ``results`` (a new dict unless one is passed) is filled in input order even when ``run`` is
    interrupted (an ``execution_timeout``), with every outcome known by then. ``run_clock`` times
    the run (a new one unless passed: a deferrable run's ``run`` sets the carried start on it).
    """
    results = results if results is not None else {}
    for outcome in outcomes:
        results.setdefault(outcome, [])
    tally = BulkTally(
        items,
        results,
        outcome_of=outcome_of,
        noun=noun,
        noun_plural=noun_plural,
        redact=redact,
        run_clock=run_clock,
    )
    try:
        with ProgressReporter(tally, log, PROGRESS_EVERY_SECONDS) as reporter:

            def on_result(index: int, item: Any, result: Any) -> None:
                tally.on_result(index, item, result)
                reporter.maybe_report()

            tally.not_attempted = run(items, on_result)
    finally:
        tally.fill()
    log.info(tally.done_line())
    tally.raise_if_failed()
    return results
