"""Working through a list of items on one hook: argument checks, progress, failure report.

Shared by the Meeting Agent operators. Every item is validated before the first request; every
item is attempted unless a fatal error (401, 402, 403, ...) makes the rest pointless; the task
fails with one error that lists each failed item, and keeps what succeeded.
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
)
from airflow_provider_cronofy.validation import validate_item

PROGRESS_EVERY_SECONDS = 10.0


def normalise_items(name: str, value: object) -> list[str]:
    """Return ``value`` (one string, or a list or tuple of strings) as a list without duplicates.

    Items are kept exactly as given (no stripping) and in input order; the first of duplicates
    stays. Raises :class:`CronofyInputError` naming every bad item.
    """
    if isinstance(value, str):
        validate_item(name, value)
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


def run_bulk(
    items: Sequence[str],
    call: Callable[[str], str],
    *,
    noun: str,
    outcomes: Sequence[str],
    log: logging.Logger | Any,
    redact: Callable[[str], str] = str,
    results: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """Call ``call(item)`` for each item; return ``{outcome: [items]}`` in input order.

    ``call`` returns the item's outcome (one of ``outcomes``); the item is appended to
    ``results[outcome]`` (a new dict unless one is passed) as soon as it is known. A
    :class:`CronofyAPIError` fails the item and the run goes on, unless the error is fatal: then
    the run stops. After the run, any failure raises :class:`CronofyBulkError` listing each failed
    item and carrying the results.
    """
    # The caller may pass its own dict, to keep what succeeded if the run is interrupted
    # (an execution_timeout raises a BaseException in the middle of a request).
    results = results if results is not None else {}
    for outcome in outcomes:
        results.setdefault(outcome, [])
    failures: list[ItemFailure] = []
    not_attempted: list[str] = []
    total = len(items)
    started = last_report = time.monotonic()
    fatal = False
    for index, item in enumerate(items):
        try:
            results[call(item)].append(item)
        except CronofyError as error:
            status = error.status_code if isinstance(error, CronofyAPIError) else None
            failures.append(ItemFailure(item, status, redact(str(error))))
            # A settings or credential problem is the same for every item: stop, like a 401.
            if not isinstance(error, CronofyAPIError) or error.fatal:
                fatal = True
                not_attempted = list(items[index + 1 :])
                break
        except Exception as error:  # a bug must not lose the report of what already succeeded
            failures.append(ItemFailure(item, None, redact(f"{type(error).__name__}: {error}")))
        now = time.monotonic()
        if now - last_report >= PROGRESS_EVERY_SECONDS:
            last_report = now
            done = index + 1
            log.info(
                "Progress: %d/%d %s done, %d failed, %.1f/s.",
                done,
                total,
                noun,
                len(failures),
                done / (now - started),
            )
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in results.items())
    log.info(
        "Done: %d %s in %.1f s: %s, %d failed%s.",
        total,
        noun,
        elapsed,
        summary,
        len(failures),
        f", {len(not_attempted)} not attempted" if not_attempted else "",
    )
    if failures:
        lines = [
            f"  - {f.item!r}: " + (f"{f.status_code}: " if f.status_code else "") + f.reason for f in failures
        ]
        message = f"{len(failures)} of {total} {noun} failed ({summary}):\n" + "\n".join(lines)
        if fatal:
            message += (
                f"\nThe run stopped at this error, which every other item would meet too: "
                f"{len(not_attempted)} item(s) were not attempted."
            )
        raise CronofyBulkError(
            message, failures=failures, results=results, not_attempted=not_attempted, fatal=fatal
        )
    return results
