"""The message of a bulk run's error: one explanation per cause, the items of each listed compactly.

A wrong API key meets every key in flight the same way; the message says why once ("19 failed:
401: Cronofy rejected the API key ...") and lists the keys after it, instead of repeating the
explanation per key. Every item stays in the error's ``failures`` (and the ``failures`` XCom):
this module only words the message. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from airflow_provider_cronofy.exceptions import ItemFailure
from airflow_provider_cronofy.wording import plural

ITEMS_SHOWN_PER_CAUSE = 10
"""A cause lists this many of its items by name, then how many more there are."""


def format_item(item: Hashable) -> str:
    """How one item reads in a message: ``'key-1'``, or ``'evt_1' in 'cal_1'`` for a
    ``(calendar_id, event_id)`` pair; anything else by its ``repr``."""
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, str) for part in item):
        calendar_id, event_id = item
        return f"{event_id!r} in {calendar_id!r}"
    return repr(item)


def failure_message(
    failures: Sequence[ItemFailure],
    *,
    total: int,
    noun: str,
    nouns: str | None = None,
    summary: str,
    not_attempted: int = 0,
    fatal: bool = False,
    format_item: Callable[[Hashable], str] = format_item,
) -> str:
    """The message of a bulk run's error.

    :param failures: the failed items in input order (``reason`` already redacted).
    :param total: how many items the run had; ``noun`` names one (``"scheduling key"``),
        ``nouns`` several (default ``noun + "s"``); ``summary`` is the outcome counts
        (``"3 cancelled, 1 not found"``).
    :param not_attempted: how many items a fatal error kept from being sent; ``fatal`` whether
        one stopped the run (said in a last line, unless the run had one item only).
    :param format_item: how an item reads (see :func:`format_item`).

    A cause met by one item reads ``- 'k1': 422: <reason>``; one met by several reads
    ``- 2 failed: 503: <reason>`` followed by the items, the first
    :data:`ITEMS_SHOWN_PER_CAUSE` by name. Causes keep the order of their first item.
    """
    lines = [f"{len(failures)} of {plural(total, noun, nouns)} failed ({summary}):"]
    lines += cause_lines(failures, format_item)
    if fatal and total > 1:  # a run of one item has no other item to stop for
        lines.append(stopped_line(not_attempted))
    return "\n".join(lines)


def cause_lines(
    failures: Sequence[ItemFailure], format_item: Callable[[Hashable], str] = format_item
) -> list[str]:
    """One line per cause of ``failures`` (in the order of each cause's first item), its items after it.

    A cause met by one item reads ``  - 'k1': 422: <reason>``; one met by several reads
    ``  - 2 failed: 503: <reason>`` and a line of its items, the first
    :data:`ITEMS_SHOWN_PER_CAUSE` by name.
    """
    groups: dict[tuple[int | None, str], list[ItemFailure]] = {}
    for failure in failures:
        groups.setdefault((failure.status_code, _cause(failure, format_item)), []).append(failure)
    lines = []
    for (status, cause), members in groups.items():
        prefix = f"{status}: " if status else ""
        if len(members) == 1:
            (only,) = members
            lines.append(f"  - {format_item(only.item)}: {prefix}{only.reason}")
            continue
        shown = ", ".join(format_item(member.item) for member in members[:ITEMS_SHOWN_PER_CAUSE])
        more = len(members) - ITEMS_SHOWN_PER_CAUSE
        lines.append(f"  - {len(members)} failed: {prefix}{cause}")
        lines.append(
            f"    {shown}"
            + (f" and {more} more (all in the error's failures and the failures XCom)" if more > 0 else "")
        )
    return lines


def stopped_line(not_attempted: int, noun: str = "item") -> str:
    """The last line of a run a fatal error stopped: how many ``noun`` s were never sent."""
    verb = "was" if not_attempted == 1 else "were"
    return f"The run stopped at an error every other {noun} would meet too: " + (
        f"{plural(not_attempted, noun)} {verb} not attempted."
        if not_attempted
        else f"every {noun} had been sent."
    )


def _cause(failure: ItemFailure, format_item: Callable[[Hashable], str]) -> str:
    # The transport's messages name the request ("DELETE /v1/meeting_agents for 'k1' failed
    # after 5 attempt(s)"): without the item, the same cause reads the same for every item.
    reason = failure.reason
    for shown in {repr(failure.item), format_item(failure.item)}:
        reason = reason.replace(f" for {shown}", "")
    return reason
