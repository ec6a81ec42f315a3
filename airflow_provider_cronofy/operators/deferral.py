"""Deferrable bulk runs: send while the rate limit allows, wait for the next window in the triggerer.

A bulk run longer than one minute's allowance spends most of its wall time waiting for Cronofy's
per-minute window. With ``deferrable=True`` the operator sends in **segments** instead: it asks
the pacer how many requests can go before one would wait more than ``defer_after`` seconds
(:meth:`~airflow_provider_cronofy.hooks.pacing.RequestPacer.sends_before_wait`), sends that many
through the bulk engine (concurrency, retries and all), and when the next slot is further away it
defers to Airflow's ``DateTimeTrigger`` for that moment. The worker slot is free meanwhile; the
triggerer only waits (no Cronofy request ever runs there: a trigger can run twice after a
triggerer restart). A fresh task process then calls ``execute_complete`` and the run goes on
exactly where it stopped.

What is carried across a deferral (``next_kwargs["resume"]``, JSON-native, see :class:`Progress`):

- the position reached in the input list: every item before it has an outcome;
- the positions of the items whose outcome is not the first one (``not_found``), as runs
  ``[start, count, ...]``, and of failed items with their status and (redacted) reason; every
  other item before the position was cancelled. Never the items themselves: the list is re-read
  from the rendered template field, and a fingerprint (its length and a SHA-256) proves it is the
  same list, or the run stops with :class:`~airflow_provider_cronofy.exceptions.CronofyInputError`;
- the send times still inside a rate-limit window (epoch milliseconds, as deltas), so the
  resumed process's pacer starts where the last one stopped and the minute window is never
  overshot;
- when the run started, when it deferred (both epoch seconds: the wall clock, which another
  process shares) and the seconds it spent deferred before, so the done line gives the whole
  run's time and how much of it was deferred (:class:`~airflow_provider_cronofy.operators.bulk.RunClock`).
  A state without them (written by 0.2.0) resumes too; its time then counts from the resume.

Decisions: a segment is a whole bulk-engine run, so retries of a segment's items are finished
before the run defers (nothing half-done is carried; a retry that finds the window full waits for
a slot in the worker, like any paced request). The first outcome named (``cancelled``) is the one
not stored: it is the common case. The final result, the error that lists every failure and the
``partial_result`` XCom are built by :func:`~airflow_provider_cronofy.operators.bulk.run_bulk` from
every segment's outcomes (replayed from the carried state), so they are the same as a run that
never deferred.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyError, CronofyInputError
from airflow_provider_cronofy.operators.bulk import Run, RunClock, describe_failure
from airflow_provider_cronofy.validation import check_bool
from airflow_provider_cronofy.wording import plural

if TYPE_CHECKING:
    from airflow_provider_cronofy.hooks.pacing import RequestPacer

FORMAT = 1
"""Version of the carried state's layout; a state of another version is refused with a message."""
DEFAULT_DEFER_AFTER = 10.0
"""Seconds: a run defers when its next allowed send is further away than this."""
RESUME_METHOD = "execute_complete"

ResultHandler = Callable[[int, str, Any], None]


def check_deferral_args(deferrable: object, defer_after: object) -> float:
    """Return ``defer_after`` as a float; raise :class:`CronofyInputError` for unusable values.

    ``deferrable`` must be a bool; ``defer_after`` a finite number of seconds above 0.
    """
    check_bool("deferrable", deferrable)
    if (
        isinstance(defer_after, bool)
        or not isinstance(defer_after, (int, float))
        or not math.isfinite(defer_after)
        or defer_after <= 0
    ):
        raise CronofyInputError(
            f"defer_after must be a number of seconds above 0 (e.g. {DEFAULT_DEFER_AFTER:g}), got "
            f"{type(defer_after).__name__}: {defer_after!r:.100}."
        )
    return float(defer_after)


def fingerprint(subject: str, items: Sequence[Any]) -> str:
    """``"<count>:<sha256 prefix>"`` of ``subject`` and ``items`` (length-prefixed, so unambiguous).

    An item is a string, or a tuple of strings (``(calendar_id, event_id)``: every part counts).
    """
    digest = hashlib.sha256()
    for text in (subject, *(part for item in items for part in _parts(item))):
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return f"{len(items)}:{digest.hexdigest()[:32]}"


def _parts(item: Any) -> tuple[str, ...]:
    return tuple(item) if isinstance(item, tuple) else (item,)


@dataclass
class Progress:
    """Where a segmented run stands: everything a resumed run needs, and nothing it can re-read.

    :ivar position: items before this index have an outcome; from it on nothing was sent.
    :ivar outcomes: index -> outcome, for the items whose outcome is not the default one.
    :ivar failures: index -> (HTTP status or ``None``, redacted reason).
    :ivar sent_at: the recent send times (epoch seconds) of the pacer, at the deferral.
    :ivar pacer: the identity of the pacer that made them.
    :ivar deferrals: how many times the run deferred so far.
    :ivar started_at: when the run started (epoch seconds); ``None``: not known (an old state).
    :ivar deferred: seconds spent deferred before the latest deferral.
    :ivar deferred_at: when the latest deferral began (epoch seconds); ``None``: not known.
    """

    position: int = 0
    outcomes: dict[int, str] = field(default_factory=dict)
    failures: dict[int, tuple[int | None, str]] = field(default_factory=dict)
    sent_at: list[float] = field(default_factory=list)
    pacer: str = ""
    deferrals: int = 0
    started_at: float | None = None
    deferred: float = 0.0
    deferred_at: float | None = None

    def encode(self, list_fingerprint: str) -> dict[str, Any]:
        """The JSON-native form carried in ``next_kwargs`` (ints, floats, strings, ``None``, lists and
        dicts only)."""
        by_outcome: dict[str, list[int]] = {}
        for index in sorted(self.outcomes):
            by_outcome.setdefault(self.outcomes[index], []).append(index)
        return {
            "format": FORMAT,
            "fingerprint": list_fingerprint,
            "position": self.position,
            "deferrals": self.deferrals,
            "outcomes": {name: _runs(indexes) for name, indexes in by_outcome.items()},
            "failed": [[index, status, reason] for index, (status, reason) in sorted(self.failures.items())],
            "pacer": self.pacer,
            "sent_at": _deltas_ms(self.sent_at),
            "started_at": _rounded(self.started_at),
            "deferred": round(self.deferred, 3),
            "deferred_at": _rounded(self.deferred_at),
        }

    @classmethod
    def decode(cls, data: Mapping[str, Any], list_fingerprint: str, *, name: str) -> Progress:
        """Read an :meth:`encode`-d state back, checking it belongs to the list ``list_fingerprint``.

        :raises CronofyInputError: the state is not one this version wrote, or the list changed
            while the task was deferred (``name`` is the argument holding it).
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise CronofyInputError(
                f"Cannot resume: the carried state has format {found!r}, this provider reads format "
                f"{FORMAT}. Clear the task to start the run again."
            )
        carried = data.get("fingerprint")
        position = data.get("position")
        if carried != list_fingerprint:
            raise CronofyInputError(
                f"Cannot resume: {name} changed while the task was deferred. The run stopped after "
                f"{position} of {str(carried).split(':')[0]} items (list fingerprint {carried}); {name} "
                f"now renders {list_fingerprint.split(':')[0]} items (fingerprint {list_fingerprint}). "
                "The outcomes carried across the deferral belong to the old list, so nothing more is "
                "sent. Clear the task to run it with the new list (cancelling again is harmless)."
            )
        try:
            outcomes = {
                index: str(outcome) for outcome, runs in data["outcomes"].items() for index in _unruns(runs)
            }
            failures = {int(index): (status, str(reason)) for index, status, reason in data["failed"]}
            return cls(
                position=int(position),  # type: ignore[arg-type]  # None: TypeError below
                outcomes=outcomes,
                failures=failures,
                sent_at=_undeltas_ms(data["sent_at"]),
                pacer=str(data["pacer"]),
                deferrals=int(data["deferrals"]),
                # Absent from a state written by 0.2.0: the run's time then counts from the resume.
                started_at=_optional_float(data.get("started_at")),
                deferred=float(data.get("deferred", 0.0)),
                deferred_at=_optional_float(data.get("deferred_at")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CronofyInputError(
                f"Cannot resume: the carried state is malformed ({type(error).__name__}: {error}). "
                "Clear the task to start the run again."
            ) from None


class SegmentedRun:
    """A bulk ``Run`` that sends in segments under the rate limit and defers between them.

    Called like the engine's run (``(items, on_result) -> items never sent``), so
    :func:`~airflow_provider_cronofy.operators.bulk.run_bulk` drives it unchanged: it first hands
    over the carried outcomes of earlier segments (``on_result`` for each item before the
    position), then sends the rest segment by segment with ``send``, and calls ``defer`` (which
    raises Airflow's ``TaskDeferred``) when the next slot is more than ``defer_after`` s away.

    :param send: the engine's run for one segment.
    :param pacer: the hook's pacer: asked how far the next slot is, carries its send times.
    :param items_per_slot: items one pacer slot sends (a batch sends many): a segment of ``n``
        free slots holds ``n * items_per_slot`` items.
    :param result_values: outcome name -> the result value the hook's call returns for it; the
        first is the default outcome, not stored in the carried state.
    :param subject: names the list, for the fingerprint and messages (``"scheduling_key"``); put
        anything else the outcomes depend on in it too (the calendar id).
    :param name: the items in messages (``"scheduling keys"``).
    :param redact: applied to failure reasons before they are carried.
    :param defer: ``defer(seconds, state)`` defers the task for ``seconds`` carrying ``state``.
    :param log: the task's logger (a line per deferral and per resume).
    :param resume: the carried state of a resumed run (``None`` on the first segment).
    :param run_clock: times the whole run; on a resume it is given the carried start and deferred
        seconds (the same :class:`~airflow_provider_cronofy.operators.bulk.RunClock` given to
        :func:`~airflow_provider_cronofy.operators.bulk.run_bulk`).
    """

    def __init__(
        self,
        send: Run,
        *,
        pacer: RequestPacer,
        items_per_slot: int,
        defer_after: float,
        result_values: Mapping[str, Any],
        subject: str,
        name: str,
        redact: Callable[[str], str],
        defer: Callable[[float, dict[str, Any]], NoReturn],
        log: Any,
        resume: Mapping[str, Any] | None = None,
        run_clock: RunClock | None = None,
    ) -> None:
        self.send = send
        self.pacer = pacer
        self.items_per_slot = items_per_slot
        self.defer_after = defer_after
        self.result_values = dict(result_values)
        self.default_outcome = next(iter(self.result_values))
        self.subject = subject
        self.name = name
        self.redact = redact
        self.defer = defer
        self.log = log
        self.resume = resume
        self.run_clock = run_clock if run_clock is not None else RunClock()

    def __call__(self, items: Sequence[str], on_result: ResultHandler) -> list[str]:
        total = len(items)
        list_fingerprint = fingerprint(self.subject, items)
        progress = Progress()
        if self.resume is not None:
            progress = Progress.decode(self.resume, list_fingerprint, name=self.name)
            if not 0 <= progress.position <= total:
                raise CronofyInputError(
                    f"Cannot resume: the carried position {progress.position} is outside the list of "
                    f"{total} {self.name}. Clear the task to start the run again."
                )
            for index in range(progress.position):
                on_result(index, items[index], self._result_of(progress, index, items[index]))
            self.pacer.count_sends_from(progress.sent_at, progress.pacer)
            waited = self._resume_clock(progress)
            self.log.info(
                "Resumed after deferral %d%s: %d of %d %s already done (%d failed), %d to go.",
                progress.deferrals,
                "" if waited is None else f" ({waited:.1f} s deferred)",
                progress.position,
                total,
                self.name,
                len(progress.failures),
                total - progress.position,
            )
        while progress.position < total:
            left = total - progress.position
            slots = self.pacer.sends_before_wait(self.defer_after, -(-left // self.items_per_slot))
            budget = min(left, slots * self.items_per_slot)
            if budget == 0:
                self._defer(progress, list_fingerprint, total)
            start = progress.position
            segment = items[start : start + budget]

            def record(index: int, item: str, result: Any, start: int = start) -> None:
                self._record(progress, start + index, result)
                on_result(start + index, item, result)

            never_sent = self.send(segment, record)
            progress.position = start + len(segment)
            if never_sent:  # an error every other item would meet stopped the run
                return [*never_sent, *items[progress.position :]]
        return []

    def _resume_clock(self, progress: Progress) -> float | None:
        """Give the run clock the carried start and deferred time; return this deferral's seconds."""
        if progress.started_at is None:  # a state of 0.2.0: the time counts from here
            return None
        now = self.run_clock.wall()
        waited = max(0.0, now - progress.deferred_at) if progress.deferred_at is not None else 0.0
        self.run_clock.resumed(progress.started_at, progress.deferred + waited, progress.deferrals)
        return waited

    def _defer(self, progress: Progress, list_fingerprint: str, total: int) -> NoReturn:
        wait = self.pacer.next_slot_in()
        now = self.run_clock.wall()
        progress.deferrals += 1
        progress.sent_at = self.pacer.recent_send_times()
        progress.pacer = self.pacer.identity
        progress.started_at = self.run_clock.started_at
        progress.deferred = self.run_clock.deferred
        progress.deferred_at = now
        until = datetime.fromtimestamp(now + wait, timezone.utc)
        self.log.info(
            "Deferring until %s UTC, %.1f s from now (deferral %d): the rate limit's next slot is "
            "more than %g s away; %d of %d %s done, %d left. The worker slot is free until then.",
            until.strftime("%H:%M:%S"),
            wait,
            progress.deferrals,
            self.defer_after,
            progress.position,
            total,
            self.name,
            total - progress.position,
        )
        self.defer(wait, progress.encode(list_fingerprint))

    def _record(self, progress: Progress, index: int, result: Any) -> None:
        if isinstance(result, BaseException):
            # The same wording run_bulk gives the failure, redacted before it is stored.
            status, reason = describe_failure(result)
            progress.failures[index] = (status, self.redact(reason))
            return
        for outcome, value in self.result_values.items():
            if result == value:
                if outcome != self.default_outcome:
                    progress.outcomes[index] = outcome
                return
        raise TypeError(f"unexpected result {result!r:.100} for item {index}")

    def _result_of(self, progress: Progress, index: int, item: str) -> Any:
        failure = progress.failures.get(index)
        if failure is not None:
            status, reason = failure
            return CronofyAPIError(reason, status_code=status, item=item)
        return self.result_values[progress.outcomes.get(index, self.default_outcome)]


def defer_for(operator: Any, seconds: float, state: dict[str, Any]) -> NoReturn:
    """Defer ``operator`` for ``seconds``, carrying ``state``; Airflow resumes it in ``execute_complete``.

    The state goes in ``defer()``'s kwargs (``next_kwargs["resume"]``) and in the trigger's event
    (see :mod:`airflow_provider_cronofy.triggers.resume_at` for why both).
    """
    from airflow_provider_cronofy.triggers.resume_at import ResumeAtTrigger

    moment = datetime.now(timezone.utc) + timedelta(seconds=max(seconds, 0.0))
    operator.defer(
        trigger=ResumeAtTrigger(moment, state), method_name=RESUME_METHOD, kwargs={"resume": state}
    )
    raise AssertionError("defer() returned")  # pragma: no cover - defer always raises


def carried_state(event: Any, resume: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The state a resumed run continues from: ``next_kwargs["resume"]``, else the event's.

    :raises CronofyError: neither holds one (the run cannot know where it stopped; rather than
        send every item again, it fails: clear the task to start over).
    """
    if resume is not None:
        return resume
    if isinstance(event, Mapping) and isinstance(event.get("resume"), Mapping):
        return event["resume"]
    raise CronofyError(
        "Resumed from a deferral without the state the run carried (no 'resume' in next_kwargs or "
        "in the trigger event), so where it stopped is unknown. Nothing was sent; clear the task "
        "to run the whole list again (cancelling again is harmless)."
    )


def _rounded(epoch: float | None) -> float | None:
    return None if epoch is None else round(epoch, 3)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _runs(indexes: list[int]) -> list[int]:
    """Sorted indexes as ``[start, count, start, count, ...]``."""
    out: list[int] = []
    for index in indexes:
        if out and out[-2] + out[-1] == index:
            out[-1] += 1
        else:
            out.extend((index, 1))
    return out


def _unruns(runs: Sequence[int]) -> list[int]:
    return [
        index
        for start, count in zip(runs[::2], runs[1::2], strict=True)
        for index in range(start, start + count)
    ]


def _deltas_ms(epoch_times: Sequence[float]) -> list[int]:
    """Epoch seconds as ``[first ms, delta ms, ...]``, rounded up (a later time paces more, never less)."""
    out: list[int] = []
    previous = 0
    for t in sorted(epoch_times):
        ms = math.ceil(t * 1000)
        out.append(ms - previous)
        previous = ms
    return out


def _undeltas_ms(deltas: Sequence[int]) -> list[float]:
    out: list[float] = []
    ms = 0
    for delta in deltas:
        ms += int(delta)
        out.append(ms / 1000)
    return out


def items_per_slot(job: Any) -> int:
    """How many items one pacer slot sends for the bulk ``job``: a batch of ``unit_size`` items
    costs one slot, unless the connection counts batches per entry (``cost_per_entry``)."""
    if getattr(job, "cost_per_entry", False):
        return 1
    return unit_size(job)


def unit_size(job: Any) -> int:
    """Items the bulk ``job`` sends in one request (a batch of events: up to 50; else 1)."""
    return max(1, int(getattr(job, "unit_size", 1)))


def pacing_estimate_line(settings: Any, job: Any, count: int, *, deferrable: bool, defer_after: float) -> str:
    """A dry run's line on how long ``count`` items of ``job`` would take under the connection's pacer.

    Computed, not sent (:func:`~airflow_provider_cronofy.hooks.pacing.estimate_pacing`): the
    requests (a batch carries ``job.unit_size`` events), the pacer slots they cost
    (:func:`items_per_slot`), the windows of ``settings``, and with ``deferrable`` how many times
    the run would defer after ``defer_after``.
    """
    from airflow_provider_cronofy.hooks.pacing import estimate_pacing

    per_second, per_minute = settings.rate_limit_per_second, settings.rate_limit_per_minute
    unit = unit_size(job)
    requests = -(-count // unit)
    sent = plural(requests, "batch", "batches") if unit > 1 else plural(requests, "request")
    if not per_second and not per_minute:
        return (
            f"this connection's pacing is off (rate_limit_per_second and rate_limit_per_minute "
            f"are 0): the {sent} would go as fast as Cronofy answers them."
        )
    slots = -(-count // items_per_slot(job))
    if slots != requests:
        sent += f", counted as {plural(slots, 'request')} (batch_rate_cost=entries),"
    limits = ", ".join(
        f"{limit}/{short}" if limit else f"no {window} limit"
        for limit, short, window in ((per_second, "s", "per-second"), (per_minute, "min", "per-minute"))
    )
    estimate = estimate_pacing(slots, per_second, per_minute, defer_after)
    line = (
        f"at this connection's rate limits ({limits}) the {sent} would take about "
        f"{_duration(estimate.seconds)} of pacing"
    )
    deferrals = plural(estimate.deferrals, "time")
    deferred = _duration(estimate.deferred_seconds)
    if deferrable:
        line += f"; with deferrable=True (defer_after={defer_after:g} s) the run would " + (
            f"defer {deferrals}, about {deferred} of it deferred" if estimate.deferrals else "not defer"
        )
    elif estimate.deferrals:
        line += (
            f"; deferrable=False: the worker waits through it all (deferrable=True would defer "
            f"{deferrals}, about {deferred} of it)"
        )
    resumes = ", and each resume a task start" if deferrable and estimate.deferrals else ""
    return f"{line}. An estimate of the pacing only: each answer's latency adds to it{resumes}."


def _duration(seconds: float) -> str:
    """``"9.5 s"``, ``"2 min 3 s"``, ``"2 min"``, ``"1 h 5 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min" + (f" {whole % 60} s" if whole % 60 else "")
    return f"{whole // 3600} h" + (f" {whole % 3600 // 60} min" if whole % 3600 // 60 else "")


def segmented_if_deferrable(
    operator: Any,
    send: Run,
    hook: Any,
    job: Any,
    *,
    resume: Mapping[str, Any] | None,
    subject: str,
    name: str,
    result_values: Mapping[str, Any],
    run_clock: RunClock | None = None,
) -> Run:
    """``send`` as is for a plain run; a :class:`SegmentedRun` when ``operator.deferrable`` or resuming.

    ``run_clock`` is the clock the run's done line reads (see :class:`SegmentedRun`).
    """
    if not operator.deferrable and resume is None:
        return send
    return SegmentedRun(
        send,
        pacer=hook.pacer,
        items_per_slot=items_per_slot(job),
        defer_after=operator.defer_after,
        result_values=result_values,
        subject=subject,
        name=name,
        redact=hook.redact,
        defer=partial(defer_for, operator),
        log=operator.log,
        resume=resume,
        run_clock=run_clock,
    )
