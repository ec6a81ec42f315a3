"""The wording of every error Cronofy's answers lead to, in one place; each function returns the
exception (callers still ``redact`` it, a guard against a server echoing a credential back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyConfigError, CronofyFatalAPIError
from airflow_provider_cronofy.hooks.transport import RETRYABLE_STATUSES, Reply, status_text

FATAL_STATUSES = frozenset({401, 402, 403, 423})
"""Statuses after which every other item of a bulk run would fail the same way."""


@dataclass(frozen=True)
class Where:
    """What a message needs to know about the connection: its id and where it points."""

    conn_id: str
    base_url: str
    data_center: str | None

    def describe(self) -> str:
        if self.data_center:
            return f"data center '{self.data_center}' ({self.base_url})"
        return self.base_url


def api_error(
    reply: Reply,
    where: Where,
    *,
    item: str | None,
    credential: str,
    can_refresh: bool = False,
    scope: str | None = None,
) -> CronofyAPIError:
    """The error for a final non-2xx ``reply`` to a call authorised by ``credential`` (fatal for
    :data:`FATAL_STATUSES`)."""
    status = reply.status
    errors = errors_of(reply.body)
    if status == 401:
        if credential == "API key":
            message = (
                f"Cronofy rejected the API key (401 Unauthorized) at {where.describe()}. Check that the "
                f"password of connection '{where.conn_id}' is the application's API key "
                "(client secret); a key from another data center is rejected too, so check the "
                "connection's data_center extra."
            )
        else:
            fix = (
                "even after refreshing it; re-authorise the user and update the connection"
                if can_refresh
                else "it may have expired or been revoked: add client_id and refresh_token to "
                "the connection so the hook can refresh it"
            )
            message = (
                f"Cronofy rejected the access token (401 Unauthorized) at {where.describe()}, {fix}. A "
                "token from another data center is rejected too: check the data_center extra."
            )
    elif status == 402:
        message = (
            "Cronofy answered 402 Payment Required: the application's plan does not include "
            "Meeting Agents (the Emerging plan or above, with the Meeting Agents feature "
            "switched on)."
        )
    elif status == 403:
        needed = _missing_scope(errors) or scope
        message = (
            f"Cronofy answered 403 Forbidden: the {credential} lacks the '{needed}' scope. "
            "Re-authorise the user with that scope."
            if needed
            else f"Cronofy answered 403 Forbidden: the {credential} is not allowed to do this."
        )
    elif status == 422:
        message = "Cronofy rejected the request (422 Unprocessable Entity): " + (
            describe_errors(errors) or "no detail given"
        )
    elif status == 423:
        message = "Cronofy answered 423 Locked: the account is locked."
    elif status in RETRYABLE_STATUSES:
        # Earlier attempts may have met other faults (a timeout, another status): name the last.
        message = (
            f"Cronofy answered {status} {status_text(status)}; gave up after {reply.attempts} attempt(s)."
        )
    else:
        message = f"Cronofy answered {status} {status_text(status)}" + (
            f": {describe_errors(errors)}" if errors else f" ({_body_summary(reply)})."
        )
    kind = CronofyFatalAPIError if status in FATAL_STATUSES else CronofyAPIError
    return kind(message, status_code=status, errors=errors, item=item, fatal=status in FATAL_STATUSES)


def unknown_calendar_error(
    calendar_id: str, reply: Reply, *, item: str | None, fatal: bool = True
) -> CronofyAPIError:
    """A 404 on a calendar call; ``fatal`` (one calendar's run) stops the run."""
    kind = CronofyFatalAPIError if fatal else CronofyAPIError
    return kind(
        f"Cronofy answered 404 for calendar '{calendar_id}': the calendar does not exist or "
        "is not accessible to the connection's access token (a token of another user or "
        "data center).",
        status_code=404,
        errors=errors_of(reply.body),
        item=item,
        fatal=fatal,
    )


def token_error(reply: Reply, where: Where) -> CronofyFatalAPIError:
    """The error for a refused ``POST /oauth/token`` (a revoked refresh token, wrong client)."""
    payload = json_or_none(reply.body)
    code = payload.get("error") if isinstance(payload, dict) else None
    if code == "invalid_grant":
        message = (
            "Cronofy refused the refresh token of connection "
            f"'{where.conn_id}' (400 invalid_grant): it was revoked, or belongs to another "
            "application or data center. Re-authorise the user and put the new refresh token "
            "in the connection's refresh_token extra."
        )
    elif code == "invalid_client" or reply.status == 401:
        message = (
            "Cronofy refused the client credentials while refreshing the access token "
            f"(invalid_client): check the client_id extra and the API key (password) of "
            f"connection '{where.conn_id}', and its data center."
        )
    else:
        message = (
            f"Refreshing the access token failed: Cronofy answered {reply.status} "
            f"{status_text(reply.status)}" + (f" ({code})." if isinstance(code, str) else ".")
        )
    return CronofyFatalAPIError(message, status_code=reply.status, fatal=True)


def token_missing_error(status: int) -> CronofyFatalAPIError:
    """Cronofy's token endpoint answered 200 but gave no access token."""
    return CronofyFatalAPIError(
        "Cronofy's token endpoint answered 200 without an access token; cannot go on.",
        status_code=status,
        fatal=True,
    )


def api_key_missing(conn_id: str) -> CronofyConfigError:
    """The connection has no API key (password)."""
    return CronofyConfigError(
        "Cancelling a scheduled agent needs the API key in the connection's password "
        f"(connection '{conn_id}' has none)."
    )


def access_token_missing(conn_id: str) -> CronofyConfigError:
    """The connection has no access token and cannot get one."""
    return CronofyConfigError(
        "Changing calendar events needs a user's access token: set the extra "
        f"access_token of connection '{conn_id}', or client_id and "
        "refresh_token (with the API key as password) so the hook can get one."
    )


def refresh_settings_missing(missing: list[str], conn_id: str) -> CronofyConfigError:
    """Refreshing the access token needs what ``missing`` names."""
    return CronofyConfigError(
        f"Refreshing the access token needs {', '.join(missing)} in connection '{conn_id}'."
    )


def json_or_none(body: bytes) -> Any:
    """``body`` decoded as JSON, or ``None`` when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def errors_of(body: bytes) -> Any:
    """Cronofy's ``errors`` detail from an error body, or ``None``."""
    payload = json_or_none(body)
    return payload.get("errors") if isinstance(payload, dict) else None


def describe_errors(errors: Any) -> str:
    """``field: description, ...; field: ...`` from Cronofy's ``errors`` detail."""
    if not isinstance(errors, dict):
        return ""
    parts = []
    for field, problems in errors.items():
        descriptions = [
            str(p.get("description") or p.get("key")) if isinstance(p, dict) else str(p)
            for p in (problems if isinstance(problems, list) else [problems])
        ]
        parts.append(f"{field}: {', '.join(descriptions)}")
    return "; ".join(parts)


def _missing_scope(errors: Any) -> str | None:
    if isinstance(errors, dict):
        for problems in errors.values():
            for problem in problems if isinstance(problems, list) else []:
                if isinstance(problem, dict) and "scope" in str(problem.get("key", "")):
                    return str(problem.get("description") or "") or None
    return None


def _body_summary(reply: Reply) -> str:
    kind = reply.headers.get("Content-Type", "no content type")
    return f"{len(reply.body)} byte body of {kind}"
