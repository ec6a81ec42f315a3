"""What ``CronofyHook.test_connection`` checks: each credential a run will use, with one request.

- The settings are resolved and validated (by the caller, before :func:`check_connection`).
- The API key: ``DELETE /v1/meeting_agents`` for a scheduling key nobody can have scheduled
  (``airflow-connection-test-<uuid4 hex>``). Cronofy has no read-only call that checks an API key;
  cancelling a key that names no agent changes nothing. 202, 404 and 422 mean the key was
  accepted; 401 that it was rejected; 402 that the plan lacks Meeting Agents.
- The access token: ``GET /v1/userinfo``. Never a token refresh (a refresh can rotate the refresh
  token, which the connection could not store back).

One attempt each, no retry: a person is waiting on the test button. No credential is ever put in
the message.
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

    Sends at most two requests (one per credential). ``ok`` is False when a credential was
    rejected, when the plan lacks Meeting Agents, or when the connection has neither an API key
    nor an access token. Transport failures (TLS, connection refused) raise
    :class:`~airflow_provider_cronofy.exceptions.CronofyAPIError` for the caller to report.
    """
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
    """Print ``message`` when ``airflow connections test`` runs us and would drop it.

    Airflow's CLI (2.11 to 3.3) prints only "Connection success!" on success, and disables
    logging while the command runs, so what was checked, and what was not, would never reach the
    user. The UI and the REST API show the message themselves.
    """
    argv = sys.argv
    if ok and len(argv) >= 3 and argv[0].endswith("airflow") and argv[1:3] == ["connections", "test"]:
        print(message, flush=True)
