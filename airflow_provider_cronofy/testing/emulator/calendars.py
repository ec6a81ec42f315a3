"""Events in calendars: ``POST`` (upsert) and ``DELETE /v1/calendars/{calendar_id}/events``.

Both take an access token with the right scope (``create_event``, ``delete_event``) whose account
owns the calendar (404 otherwise). An upsert of an existing event accepts a partial body
(``event_id`` plus the fields to change) unless the emulator's ``partial_event_updates`` is off;
deleting an unknown event id answers 202, as deleting
is idempotent at Cronofy. Every 202 counts in the state's ``event_writes``. Run with the state's
lock held.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from airflow_provider_cronofy.testing.emulator import answers
from airflow_provider_cronofy.testing.emulator.accounts import require_access_token, require_scope
from airflow_provider_cronofy.testing.emulator.state import AccessToken, CronofyState


def events_calendar(bare_path: str) -> str | None:
    """The calendar id of ``/v1/calendars/{calendar_id}/events``, or ``None`` for another path."""
    # Split before decoding: "cal%2Fx" is one segment naming the calendar "cal/x".
    segments = bare_path.split("/")
    if (
        len(segments) == 5
        and segments[:3] == ["", "v1", "calendars"]
        and segments[3]
        and segments[4] == "events"
    ):
        return urllib.parse.unquote(segments[3])
    return None


def event_call(
    state: CronofyState, method: str, calendar_id: str, headers: dict[str, str], body: bytes, now: float
) -> answers.Response:
    """``POST`` (upsert) or ``DELETE`` on the calendar's events: token, scope, calendar, then body."""
    token = require_access_token(state, headers, now)
    require_scope(token, "create_event" if method == "POST" else "delete_event")
    _require_calendar(state, token, calendar_id)
    data = answers.json_body(headers, body)
    field_errors: answers.FieldErrors = {}
    event_id = answers.require_string(data, "event_id", field_errors)
    if method == "POST":
        return _upsert_event(state, calendar_id, data, event_id, field_errors)
    if event_id is None:
        return answers.errors(422, field_errors)
    event = state.events.get((calendar_id, event_id))
    state.count_event_write(calendar_id, event_id)
    if event is not None:
        event["deleted"] = True
        event["meeting_agent"] = None
    return answers.Response(202)


def _require_calendar(state: CronofyState, token: AccessToken, calendar_id: str) -> None:
    owner_token = state.calendars.get(calendar_id)
    owner = state.access_tokens.get(owner_token) if owner_token is not None else None
    if owner is None or owner.account_id != token.account_id:
        raise answers.Reject(answers.error(404, "calendar_id", "errors.not_found", "not found"))


def _upsert_event(
    state: CronofyState,
    calendar_id: str,
    data: dict[str, Any],
    event_id: str | None,
    field_errors: answers.FieldErrors,
) -> answers.Response:
    agent_given = "meeting_agent" in data
    agent_value: str | None = None
    if agent_given:
        setting = data["meeting_agent"]
        profile = setting.get("profile_id") if isinstance(setting, dict) else None
        if profile == "cronofy":
            agent_value = "cronofy"
        elif profile != "none":
            field_errors["meeting_agent.profile_id"] = answers.invalid('must be "cronofy" or "none"')
    existing = state.events.get((calendar_id, event_id)) if event_id is not None else None
    if existing is None or existing["deleted"] or not state.settings.partial_event_updates:
        # A new event needs its required fields; an existing one accepts a partial update,
        # unless the emulator plays a Cronofy that wants them on every upsert.
        for name in ("summary", "start", "end"):
            if data.get(name) in (None, ""):
                field_errors[name] = answers.REQUIRED
    if field_errors or event_id is None:
        return answers.errors(422, field_errors)
    if existing is None or existing["deleted"]:
        existing = {"meeting_agent": None}
        state.events[(calendar_id, event_id)] = existing
    state.count_event_write(calendar_id, event_id)
    existing["deleted"] = False
    for name, value in data.items():
        if name not in ("event_id", "meeting_agent", "deleted"):
            existing[name] = value
    if agent_given:
        existing["meeting_agent"] = agent_value
    return answers.Response(202)
