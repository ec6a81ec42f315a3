"""Exceptions raised by the Cronofy hook and operators: all :class:`AirflowException` subclasses.

Those a retry cannot fix (a bad argument or setting, a missing or rejected credential, 402, 423,
an unknown calendar) are also :class:`AirflowFailException` subclasses, so Airflow does not spend
the task's ``retries`` on them; transient ones (429/5xx, timeouts) stay plain. None of them ever
carries an API key or a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_cronofy._compat import AirflowException, AirflowFailException
from airflow_provider_cronofy.wording import plural

ITEMS_SHOWN_PER_CAUSE = 10
"""A bulk error's message names this many items of one cause, then says how many more there are."""


class CronofyError(AirflowException):
    """Base class of every error this provider raises."""


class CronofyConfigError(CronofyError, AirflowFailException, ValueError):
    """The connection or the hook's arguments are unusable, or a credential is missing (raised
    before any request is sent; an :class:`AirflowFailException`)."""


class CronofyInputError(CronofyError, AirflowFailException, ValueError):
    """An operator or hook argument is invalid (raised before any request is sent; an
    :class:`AirflowFailException`)."""


class CronofyAPIError(CronofyError):
    """Cronofy answered with an error, or could not be reached after every retry.

    :ivar status_code: the HTTP status of the last attempt, or ``None`` when no answer came
        (connection error, timeout).
    :ivar errors: Cronofy's ``errors`` detail from the response body (a dict of field -> list of
        ``{"key", "description"}``), or ``None``.
    :ivar item: the scheduling key or event id the request was about, when there was one.
    :ivar fatal: ``True`` when every other item of a bulk run would fail the same way
        (401, 402, 403, 423, an unknown calendar, a refused refresh token, a TLS failure, a
        connection refused by a loopback host); a bulk run stops. Such errors are
        :class:`CronofyFatalAPIError` instances.
    """

    status_code: int | None  # type: ignore[assignment, unused-ignore]  # AirflowException's is an HTTPStatus

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        errors: Any = None,
        item: str | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.errors = errors
        self.item = item
        self.fatal = fatal


class CronofyFatalAPIError(CronofyAPIError, AirflowFailException):
    """An answer that a retry cannot change: 401, 402, 403, 423, an unknown calendar (404 on a
    calendar call), a refused refresh token, a TLS failure, a connection refused by a loopback
    host (nothing listens there), a malformed request URL. ``fatal`` is always ``True``.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **{**details, "fatal": True})


def stops_a_bulk_run(error: BaseException) -> bool:
    """Whether every other item of a bulk run would fail as ``error`` did: a fatal
    :class:`CronofyAPIError`, or any other :class:`CronofyError` (a bad setting, a credential)."""
    if isinstance(error, CronofyAPIError):
        return error.fatal
    return isinstance(error, CronofyError)


@dataclass(frozen=True)
class ItemFailure:
    """One item of a bulk run that failed: the item, the last HTTP status (or None) and why.

    The item is a scheduling key or an event id; for the integrated operator's ``events``, a
    ``{"calendar_id", "event_id"}`` dict. ``sent`` is ``False`` for an item that failed without
    being sent (an event of a calendar that answered 404 for another of its events).
    """

    item: Any
    status_code: int | None
    reason: str
    sent: bool = True


class CronofyBulkError(CronofyAPIError):
    """Some items of a bulk run failed; every other item was attempted (or the run was stopped).

    Raised as is (a plain ``AirflowException``, so Airflow's task retries apply) when every
    failure may pass on a later attempt; raised as :class:`CronofyFatalBulkError` (an
    ``AirflowFailException``) when an error that a retry cannot fix stopped the run. Catch
    ``CronofyBulkError`` to handle both.

    :ivar failures: each failed item with its status and reason, in input order.
    :ivar results: what did succeed, the same shape as the operator's return value.
    :ivar not_attempted: items not sent because a fatal error stopped the run, in input order.
    """

    def __init__(
        self,
        message: str,
        *,
        failures: Sequence[ItemFailure],
        results: dict[str, list[str]],
        not_attempted: Sequence[str] = (),
        fatal: bool = False,
    ) -> None:
        last = failures[-1] if failures else None
        super().__init__(message, status_code=last.status_code if last else None, fatal=fatal)
        self.failures = list(failures)
        self.results = results
        self.not_attempted = list(not_attempted)

    @classmethod
    def of(cls, message: str, *, fatal: bool = False, **details: Any) -> CronofyBulkError:
        """The right class for the run (:class:`CronofyFatalBulkError` when ``fatal``), made with
        the arguments of :class:`CronofyBulkError`."""
        kind = CronofyFatalBulkError if fatal else CronofyBulkError
        return kind(message, fatal=fatal, **details)


class CronofyFatalBulkError(CronofyBulkError, AirflowFailException):
    """A bulk run stopped by an error that a retry cannot fix (see :class:`CronofyFatalAPIError`);
    an :class:`AirflowFailException`."""


def cause_lines(failures: Sequence[ItemFailure]) -> list[str]:
    """A bulk error's lines on ``failures``, one per cause in the order of its first item:
    ``  - 'k1': 422: <reason>``, or ``  - 2 failed: 503: <reason>`` and a line naming the first
    :data:`ITEMS_SHOWN_PER_CAUSE` items."""
    lines = []
    groups: dict[tuple[int | None, str], list[ItemFailure]] = {}
    for failure in failures:
        groups.setdefault((failure.status_code, _cause(failure)), []).append(failure)
    for (status, cause), members in groups.items():
        prefix = f"{status}: " if status else ""
        if len(members) == 1:
            lines.append(f"  - {format_item(members[0].item)}: {prefix}{members[0].reason}")
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


def format_item(item: Any) -> str:
    """How one item reads in a message: ``'key-1'``; an event dict ``calendar 'c', event 'e'``."""
    if isinstance(item, dict) and set(item) == {"calendar_id", "event_id"}:
        return f"calendar {item['calendar_id']!r}, event {item['event_id']!r}"
    return repr(item)


def _cause(failure: ItemFailure) -> str:
    # The transport's messages name the request ("DELETE /v1/meeting_agents for 'k1' failed
    # after 5 attempt(s)"): without the item, the same cause reads the same for every item.
    reason = failure.reason
    item = failure.item
    for shown in {
        repr(item),
        format_item(item),
        repr(item.get("event_id")) if isinstance(item, dict) else "",
    }:
        if shown:
            reason = reason.replace(f" for {shown}", "")
    return reason


def event_cause_lines(failures: Sequence[ItemFailure]) -> list[str]:
    """:func:`cause_lines` for events of many calendars (``{"calendar_id", "event_id"}`` items):
    the events of an unknown calendar (a 404) grouped under it, named once."""
    unknown: dict[str, list[ItemFailure]] = {}
    others: list[ItemFailure] = []
    for failure in failures:
        if failure.status_code == 404 or not failure.sent:
            unknown.setdefault(failure.item["calendar_id"], []).append(failure)
        else:
            others.append(failure)
    lines = []
    for calendar_id, of_calendar in unknown.items():
        # Cronofy's answer names the calendar; an answer met before a deferral is not at hand.
        answered = next((f.reason for f in of_calendar if f.status_code == 404), None)
        why = answered or f"Calendar {calendar_id!r} is unknown (Cronofy answered 404 for its events)."
        unsent = sum(1 for f in of_calendar if not f.sent)
        listed = ", ".join(repr(f.item["event_id"]) for f in of_calendar)
        lines.append(
            f"  - {why} Its {plural(len(of_calendar), 'event')} failed"
            + (f" ({unsent} not sent)" if unsent else "")
            + f": {listed}"
        )
    return lines + cause_lines(others)
