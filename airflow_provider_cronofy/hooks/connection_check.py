"""What ``CronofyHook.test_connection`` checks: each credential a run will use, one request and one
attempt each, never a token refresh; what each answer means: docs/connection.md.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable

from airflow_provider_cronofy.hooks import error_messages
from airflow_provider_cronofy.hooks.error_messages import Where
from airflow_provider_cronofy.hooks.settings import Credentials, CronofySettings
from airflow_provider_cronofy.hooks.transport import Reply, Request, Transport

TEST_KEY_PREFIX = "airflow-connection-test-"
"""The scheduling key the API key check cancels is this prefix and a random uuid4 hex."""

KEY_ACCEPTED_STATUSES = frozenset({202, 404, 422})
"""Answers to the test cancellation that mean the API key was accepted."""


def check_connection(
    settings: CronofySettings,
    credentials: Credentials,
    transport: Transport,
    where: Where,
    *,
    can_refresh: bool,
    redact: Callable[[str], str] = str,
) -> tuple[bool, str]:
    """Check every credential of the connection; return ``(ok, what was checked and found)``.
    Transport failures raise :class:`~airflow_provider_cronofy.exceptions.CronofyAPIError`."""
    api = settings.base_url + (f" (data center '{settings.data_center}')" if settings.data_center else "")
    checked = [f"Settings are valid; the API is at {api}."]
    problems: list[str] = []
    if not credentials.api_key and not credentials.access_token:
        problems.append(
            "Neither an API key (the password) nor an access token (the access_token extra) is "
            "set: this connection can cancel nothing."
        )
    if credentials.api_key:
        problem, note = _check_api_key(credentials.api_key, transport, where)
        _note(problem, note, problems, checked)
    else:
        checked.append(
            "No API key (password): CancelScheduledMeetingAgentOperator cannot run with this connection."
        )
    if credentials.access_token:
        problem, note = _check_access_token(credentials.access_token, transport, where, can_refresh)
        _note(problem, note, problems, checked)
    elif can_refresh:
        checked.append(
            "No access token: a run gets one with the refresh token at its first calendar call "
            "(not tried now: a refresh can rotate the refresh token)."
        )
    elif credentials.api_key:
        checked.append(
            "No access token (access_token extra, or client_id and refresh_token): "
            "CancelIntegratedMeetingAgentOperator cannot run with this connection."
        )
    if problems:
        return False, redact(" ".join([*problems, "Checked:", *checked]))
    return True, redact(" ".join(checked))


def _note(problem: str | None, note: str, problems: list[str], checked: list[str]) -> None:
    if problem:
        problems.append(problem)
    else:
        checked.append(note)


def _check_api_key(api_key: str, transport: Transport, where: Where) -> tuple[str | None, str]:
    key = TEST_KEY_PREFIX + uuid.uuid4().hex
    request = Request("DELETE", "/v1/meeting_agents", {"scheduling_key": key}, api_key, key)
    reply = _one_attempt(transport, request)
    if reply.status in KEY_ACCEPTED_STATUSES:
        return None, (
            f"The API key was accepted: cancelling the unscheduled key {key!r} "
            f"(DELETE /v1/meeting_agents) answered {reply.status}, which changes nothing."
        )
    error = error_messages.api_error(reply, where, item=None, credential="API key")
    return str(error), ""


def _check_access_token(
    token: str, transport: Transport, where: Where, can_refresh: bool
) -> tuple[str | None, str]:
    request = Request("GET", "/v1/userinfo", None, token)
    reply = _one_attempt(transport, request)
    if reply.status == 200:
        return None, "The access token was accepted (GET /v1/userinfo)."
    if reply.status == 401 and can_refresh:
        # An expired token is normal (Cronofy's live an hour); a run refreshes it first.
        return None, (
            "The stored access token was rejected (GET /v1/userinfo answered 401: expired or "
            "revoked); a run refreshes it with the refresh token, which was NOT checked (a "
            "refresh can rotate the refresh token)."
        )
    error = error_messages.api_error(reply, where, item=None, credential="access token", can_refresh=False)
    return str(error), ""


def _one_attempt(transport: Transport, request: Request) -> Reply:
    return transport.with_retries(lambda: transport.exchange(request), retries=0)


def show_on_airflow_cli(ok: bool, message: str) -> None:
    """Print ``message`` when ``airflow connections test`` runs us: its CLI prints only "Connection
    success!" and disables logging meanwhile (the UI and REST API show the message themselves)."""
    argv = sys.argv
    if ok and len(argv) >= 3 and argv[0].endswith("airflow") and argv[1:3] == ["connections", "test"]:
        print(message, flush=True)
