"""The ``events`` argument of the integrated operator: events of many calendars in one task.

Checks the list before the first request, turns it into ``(calendar_id, event_id)`` items for
the bulk runner and engine (which treat items as opaque values), and turns the items back into
``{"calendar_id", "event_id"}`` dicts at the edges: the return value (XCom), a dry run's list,
the error's ``results`` / ``failures`` / ``not_attempted`` and the ``partial_result`` and
``failures`` XComs. Nothing here imports ``requests``: DAG files import the operators.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyBulkError,
    CronofyInputError,
    ItemFailure,
)
from airflow_provider_cronofy.operators.bulk import DRY_RUN_ITEMS_LOGGED, Run, log_dry_run
from airflow_provider_cronofy.operators.failure_report import cause_lines, stopped_line
from airflow_provider_cronofy.validation import calendar_path_segment, refuse_comma_joined, validate_item
from airflow_provider_cronofy.wording import NOT_SENT, plural

EventKey = tuple[str, str]
"""One event: ``(calendar_id, event_id)``."""

FIELDS = ("calendar_id", "event_id")
PROBLEMS_SHOWN = 10


def normalise_events(value: object) -> list[EventKey]:
    """Return ``value`` (a list of ``{"calendar_id", "event_id"}`` mappings) as event keys.

    Duplicates (same calendar and event) once, input order kept; other keys of a mapping (a
    warehouse row's ``account``, ``status``) are ignored. Every entry is checked: both ids
    present, non-blank strings, no dot-segment or whitespace calendar id, no commas joining
    several event ids into one. Raises :class:`CronofyInputError` naming each bad entry by its
    position (nothing is sent).
    """
    if isinstance(value, (str, bytes, bytearray, Mapping, set, frozenset)) or not isinstance(value, Sequence):
        # A template rendered to text (no render_template_as_native_obj) arrives as a string.
        hint = (
            " Pass the list itself (an XComArg, or a template with render_template_as_native_obj=True "
            "on the DAG)."
            if isinstance(value, str)
            else ""
        )
        raise CronofyInputError(
            'events must be a list of {"calendar_id": ..., "event_id": ...} dicts, got '
            f"{type(value).__name__}: {value!r:.100}.{hint}"
        )
    problems: list[str] = []
    keys: list[EventKey] = []
    for index, entry in enumerate(value):
        problem = _entry_problem(f"events[{index}]", entry)
        if problem:
            problems.append(problem)
        else:
            keys.append((entry["calendar_id"], entry["event_id"]))
    if problems:
        shown = problems[:PROBLEMS_SHOWN]
        if len(problems) > PROBLEMS_SHOWN:
            shown.append(f"... and {len(problems) - PROBLEMS_SHOWN} more.")
        raise CronofyInputError(
            f"{len(problems)} of the {plural(len(value), 'entry', 'entries')} of events are invalid; "
            "nothing was sent:\n  " + "\n  ".join(shown)
        )
    return list(dict.fromkeys(keys))


def _entry_problem(where: str, entry: object) -> str | None:
    if not isinstance(entry, Mapping):
        return (
            f'{where} must be a dict {{"calendar_id": ..., "event_id": ...}}, got '
            f"{type(entry).__name__}: {entry!r:.100}."
        )
    missing = [name for name in FIELDS if name not in entry]
    if missing:
        return (
            f"{where} has no {' and no '.join(missing)} (its keys: {', '.join(map(str, entry)) or 'none'})."
        )
    found = []
    try:
        calendar_path_segment(entry["calendar_id"])
    except CronofyInputError as error:
        found.append(str(error))
    event_id = entry["event_id"]
    try:
        validate_item("event_id", event_id)
    except CronofyInputError as error:
        found.append(str(error))
    else:
        try:
            refuse_comma_joined("event_id", event_id)
        except CronofyInputError:
            found.append(
                f"event_id {event_id!r:.100} looks like several ids joined by commas: give each "
                "event an entry of its own. (An event id that really holds a comma can be sent with "
                "calendar_id + event_id=[...] instead.)"
            )
    return f"{where}: " + " ".join(found) if found else None


def as_dict(item: Sequence[str]) -> dict[str, str]:
    """``{"calendar_id": ..., "event_id": ...}`` of an event key."""
    calendar_id, event_id = item
    return {"calendar_id": calendar_id, "event_id": event_id}


def present_results(results: Mapping[str, Sequence[Any]]) -> dict[str, list[dict[str, str]]]:
    """``results`` with each event key as a dict (the return value and ``partial_result``)."""
    return {outcome: [as_dict(item) for item in items] for outcome, items in results.items()}


def present_error(error: BaseException, total: int) -> BaseException:
    """A :class:`CronofyBulkError` of event keys, reworded and reshaped with dicts; other errors as is.

    The message lists each failed event by calendar and event id; the events of an unknown
    calendar (a 404) are grouped under that calendar, named once with Cronofy's answer.
    """
    if not isinstance(error, CronofyBulkError):
        return error
    failures = [ItemFailure(as_dict(f.item), f.status_code, f.reason) for f in error.failures]
    results = present_results(error.results)
    not_attempted = [as_dict(item) for item in error.not_attempted]
    summary = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in results.items())
    lines = _failure_lines(error.failures)
    message = f"{len(failures)} of {plural(total, 'event')} failed ({summary}):\n" + "\n".join(lines)
    if error.fatal and total > 1:  # as failure_report words it: one event has no other to stop for
        message += "\n" + stopped_line(len(not_attempted), "event")
    return CronofyBulkError.of(
        message, failures=failures, results=results, not_attempted=not_attempted, fatal=error.fatal
    )


def _failure_lines(failures: Sequence[ItemFailure]) -> list[str]:
    unknown: dict[str, list[ItemFailure]] = {}
    others: list[ItemFailure] = []
    for failure in failures:
        calendar_id = failure.item[0]
        if failure.status_code == 404 or failure.reason.startswith(NOT_SENT):
            unknown.setdefault(calendar_id, []).append(failure)
        else:
            others.append(failure)
    lines = []
    for calendar_id, of_calendar in unknown.items():
        # Cronofy's answer names the calendar; an answer met before a deferral is not at hand.
        answered = next((f.reason for f in of_calendar if f.status_code == 404), None)
        why = answered or f"Calendar {calendar_id!r} is unknown (Cronofy answered 404 for its events)."
        unsent = sum(1 for f in of_calendar if f.reason.startswith(NOT_SENT))
        events = ", ".join(repr(f.item[1]) for f in of_calendar)
        lines.append(
            f"  - {why} Its {plural(len(of_calendar), 'event')} failed"
            + (f" ({unsent} not sent)" if unsent else "")
            + f": {events}"
        )
    # Any other cause once, with its events after it, as a run of one calendar words it.
    return lines + cause_lines(others, _format_event)


def _format_event(item: Any) -> str:
    calendar_id, event_id = item
    return f"calendar {calendar_id!r}, event {event_id!r}"


def remember_unknown_calendars(run: Run, job: Any) -> Run:
    """``run``, telling ``job`` (``job.note_unknown_calendar(calendar_id)``) of each 404 result.

    A resumed deferrable run replays the outcomes carried across the deferral through
    ``on_result``; the job of the fresh process learns from them which calendars answered 404,
    so their events not sent yet fail without being sent, as in a run that never deferred.
    """

    def wrapped(items: Sequence[Any], on_result: Callable[[int, Any, Any], None]) -> list[Any]:
        def noting(index: int, item: Any, result: Any) -> None:
            if isinstance(result, CronofyAPIError) and result.status_code == 404:
                job.note_unknown_calendar(item[0])
            on_result(index, item, result)

        return run(items, noting)

    return wrapped


def event_requests(
    job: Any, base_url: str, path: str, count: int, noun: str, *, calendars: int | None = None
) -> str:
    """What a real run of ``job`` sends for ``count`` events whose own request is ``path``, as a
    dry run words it: ``POST <base>/v1/batch for 120 events across 2 calendars (3 batches of up to
    50 events, each entry a DELETE /v1/calendars/{calendar_id}/events)``, or one request per event.

    ``noun`` names the events (``"item"``, ``"event"``); ``calendars``: how many they span, when
    they are of several calendars.
    """
    method = "DELETE" if job.delete_event else "POST"
    what = plural(count, noun)
    if calendars is not None:
        what += f" across {plural(calendars, 'calendar')}"
    if job.use_batch:
        batches = -(-count // job.unit_size)
        mixed = ", calendars mixed" if calendars is not None and calendars > 1 else ""
        return (
            f"POST {base_url}/v1/batch for {what} ({plural(batches, 'batch', 'batches')} of up to "
            f"{job.unit_size} events{mixed}, each entry a {method} {path})"
        )
    return f"{method} {base_url}{path} for {what} (one request per event)"


UNKNOWABLE_CALENDARS_NAMED = 5
"""A dry run's note names this many calendars, then says how many more."""


def unknowable_calendars(calendars: Sequence[str], *, across: bool) -> str:
    """A dry run's note: sending nothing, it cannot tell whether ``calendars`` exist.

    ``across``: the ``events`` form, where an unknown calendar fails only its own events (with
    ``calendar_id``, its 404 stops the run).
    """
    named = ", ".join(repr(calendar_id) for calendar_id in calendars[:UNKNOWABLE_CALENDARS_NAMED])
    if len(calendars) > UNKNOWABLE_CALENDARS_NAMED:
        named += f" and {len(calendars) - UNKNOWABLE_CALENDARS_NAMED} more"
    subject = f"calendar {named} exists" if len(calendars) == 1 else f"calendars {named} exist"
    outcome = (
        "fails the events of an unknown calendar and goes on with the others"
        if across
        else "stops at an unknown calendar"
    )
    return (
        f"nothing was sent, so it cannot tell whether {subject} or the events are there: "
        f"would_cancel lists every event given; a real run {outcome} (Cronofy answers 404)."
    )


def dry_run_events(
    task_log: logging.Logger | Any, sends: str, items: Sequence[EventKey], notes: Sequence[str]
) -> dict[str, list[dict[str, str]]]:
    """Log what a run would send for ``items`` (``sends``: the requests, see :func:`event_requests`;
    see :func:`~.bulk.log_dry_run`); return ``{"would_cancel": [dicts]}``."""
    shown = [f"calendar_id={c!r} event_id={e!r}" for c, e in items[:DRY_RUN_ITEMS_LOGGED]]
    log_dry_run(task_log, sends, "event_id", shown, len(items), notes)
    return {"would_cancel": [as_dict(item) for item in items]}
