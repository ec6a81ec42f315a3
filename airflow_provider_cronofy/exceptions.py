"""Exceptions raised by the Cronofy hook and operators.

All of them are :class:`AirflowException` subclasses, so a task that raises one fails (and is
retried by Airflow when the task has retries). None of them ever carries an API key or a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_cronofy._compat import AirflowException, AirflowFailException


class CronofyError(AirflowException):
    """Base class of every error this provider raises."""


class CronofyConfigError(CronofyError, ValueError):
    """The connection or the hook's arguments are unusable (raised before any request is sent)."""


class CronofyInputError(CronofyError, AirflowFailException, ValueError):
    """An operator or hook argument is invalid (raised before any request is sent).

    It is an :class:`AirflowFailException`: retrying the task with the same input cannot succeed,
    so Airflow fails the task at once instead of spending its retries.
    """


class CronofyAPIError(CronofyError):
    """Cronofy answered with an error, or could not be reached after every retry.

    :ivar status_code: the HTTP status of the last attempt, or ``None`` when no answer came
        (connection error, timeout).
    :ivar errors: Cronofy's ``errors`` detail from the response body (a dict of field -> list of
        ``{"key", "description"}``), or ``None``.
    :ivar item: the scheduling key or event id the request was about, when there was one.
    :ivar fatal: ``True`` when every other item of a bulk run would fail the same way
        (401, 402, 403, 423, an unknown calendar, a refused refresh token); a bulk run stops.
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


@dataclass(frozen=True)
class ItemFailure:
    """One item of a bulk run that failed: the item, the last HTTP status (or None) and why."""

    item: str
    status_code: int | None
    reason: str


class CronofyBulkError(CronofyAPIError):
    """Some items of a bulk run failed; every other item was attempted (or the run was stopped).

    :ivar failures: each failed item with its status and reason, in input order.
    :ivar results: what did succeed, the same shape as the operator's return value.
    :ivar not_attempted: items not sent because a fatal error stopped the run.
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
