"""Working through a list of items on one hook: argument checks, progress, failure report.

Shared by the Meeting Agent operators. Every item is validated before the first request; the
hook's bulk engine (:mod:`airflow_provider_cronofy.hooks.concurrency`) sends them, several at a
time; this module turns its per-item results into the operator's return value (in input order),
progress lines, and one error listing every failed item. Nothing here imports ``requests``: DAG
files import the operators.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
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

Run = Callable[[Sequence[str], Callable[[int, str, Any], None]], list[str]]
"""Sends every item, calling back ``(index, item, result)`` per item; returns the items never sent."""


def normalise_items(name: str, value: object) -> list[str]:
    """Return ``value`` (one string, or a list or tuple of strings) as a list without duplicates.

    Items are kept exactly as given (no stripping, commas included) and in input order; the first
    of duplicates stays. One string holding a comma is refused (it is almost always several ids
    joined into one). Raises :class:`CronofyInputError` naming every bad item.
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


def describe_failure(error: BaseException) -> tuple[int | None, str]:
    """The HTTP status (or ``None``) and the reason (not yet redacted) a failed item is reported with."""
    status = error.status_code if isinstance(error, CronofyAPIError) else None
    # The provider's own errors are worded for the user; anything else is a bug, which must not
    # lose the report of the other items: it is named by its class.
    reason = str(error) if isinstance(error, CronofyError) else f"{type(error).__name__}: {error}"
    return status, reason


def run_bulk(
    items: Sequence[str],
    run: Run,
    *,
    outcome_of: Callable[[Any], str],
    noun: str,
    nouns: str | None = None,
    outcomes: Sequence[str],
    log: logging.Logger | Any,
    redact: Callable[[str], str] = str,
    results: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """Send every item with ``run``; return ``{outcome: [items]}`` in input order.

    ``noun`` names one item in log lines and the error (``"scheduling key"``), ``nouns`` several
    (default: ``noun + "s"``). ``outcome_of`` names the outcome (one of ``outcomes``) of an
    item's successful result. An
    item's exception fails the item and the run goes on, unless every other item would meet it
    too (:func:`~airflow_provider_cronofy.exceptions.stops_a_bulk_run`): then ``run`` stops
    sending. Afterwards any failure raises :class:`CronofyBulkError` (a
    :class:`~airflow_provider_cronofy.exceptions.CronofyFatalBulkError` when such an error
    stopped the run) listing each failed item and carrying the results.

    ``results`` (a new dict unless one is passed) is filled in input order even when ``run`` is
    interrupted (an ``execution_timeout``), with every outcome known by then.
    """
    results = results if results is not None else {}
    for outcome in outcomes:
        results.setdefault(outcome, [])
    # One byte per item (0: no outcome yet, else 1 + the outcome's position): a dict of outcomes
    # cost 60-80 bytes per item, which a 100,000-key run felt.
    names = list(results)
    code_of = {name: code for code, name in enumerate(names, start=1)}
    codes = bytearray(len(items))
    succeeded = 0
    failures: dict[int, ItemFailure] = {}
    fatal = False
    total = len(items)
    started = last_report = time.monotonic()

    def on_result(index: int, item: str, result: Any) -> None:
        nonlocal fatal, last_report, succeeded
        if isinstance(result, BaseException):
            status, reason = describe_failure(result)
            failures[index] = ItemFailure(item, status, redact(reason))
            fatal = fatal or stops_a_bulk_run(result)
        else:
            codes[index] = code_of[outcome_of(result)]
            succeeded += 1
        now = time.monotonic()
        if now - last_report >= PROGRESS_EVERY_SECONDS:
            last_report = now
            done = succeeded + len(failures)
            log.info(
                "Progress: %d/%s done, %d failed, %.1f/s.",
                done,
                plural(total, noun, nouns),
                len(failures),
                done / max(now - started, 1e-9),
            )

    try:
        not_attempted = run(items, on_result)
    finally:
        for index, code in enumerate(codes):  # input order, whatever order the answers came in
            if code:
                results[names[code - 1]].append(items[index])
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in results.items())
    log.info(
        "Done: %s in %.1f s: %s, %d failed%s.",
        plural(total, noun, nouns),
        elapsed,
        summary,
        len(failures),
        f", {len(not_attempted)} not attempted" if not_attempted else "",
    )
    if failures:
        ordered = [failures[index] for index in sorted(failures)]
        message = failure_message(
            ordered,
            total=total,
            noun=noun,
            nouns=nouns,
            summary=summary,
            not_attempted=len(not_attempted),
            fatal=fatal,
        )
        raise CronofyBulkError.of(
            message, failures=ordered, results=results, not_attempted=not_attempted, fatal=fatal
        )
    return results
