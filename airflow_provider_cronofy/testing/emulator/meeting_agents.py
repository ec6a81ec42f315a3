"""Meeting Agents: ``POST /v1/meeting_agents`` (schedule) and ``DELETE /v1/meeting_agents`` (cancel).

Both take the application's API key. Cancelling an unknown or already-cancelled key answers the
``unknown_scheduling_key_status`` setting (202, or 404: Cronofy's real answer is unconfirmed).
Run with the state's lock held.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_cronofy.testing.emulator.accounts import require_api_key
from airflow_provider_cronofy.testing.emulator.answers import (
    FieldErrors,
    Response,
    error,
    errors,
    invalid,
    json_body,
    require_string,
)
from airflow_provider_cronofy.testing.emulator.state import CronofyState


def _is_iso8601_time(value: str) -> bool:
    # Python 3.10's fromisoformat does not know "Z".
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text.upper() and parsed.tzinfo is not None


def schedule_meeting_agent(state: CronofyState, headers: dict[str, str], body: bytes) -> Response:
    require_api_key(state, headers)
    data = json_body(headers, body)
    field_errors: FieldErrors = {}
    join_url = require_string(data, "join_url", field_errors)
    scheduling_key = data.get("scheduling_key")
    if scheduling_key is not None and (not isinstance(scheduling_key, str) or not scheduling_key):
        field_errors["scheduling_key"] = invalid("must be a non-empty string")
        scheduling_key = None
    join_time: str | None = None
    if scheduling_key is not None or data.get("join_time") is not None:
        join_time = require_string(data, "join_time", field_errors)
        if join_time is not None and not _is_iso8601_time(join_time):
            field_errors["join_time"] = invalid(
                "must be an ISO 8601 time with a zone, e.g. 2030-01-01T10:00:00Z"
            )
    if field_errors:
        return errors(422, field_errors)
    if scheduling_key is not None and join_url is not None and join_time is not None:
        state.store_agent(scheduling_key, join_url, join_time)
    return Response(202)


def cancel_meeting_agent(state: CronofyState, headers: dict[str, str], body: bytes) -> Response:
    require_api_key(state, headers)
    data = json_body(headers, body)
    field_errors: FieldErrors = {}
    scheduling_key = require_string(data, "scheduling_key", field_errors)
    if scheduling_key is None:
        return errors(422, field_errors)
    agent = state.agents.get(scheduling_key)
    if agent is not None:
        agent["cancel_requests"] += 1
        if agent["status"] == "scheduled":
            agent["status"] = "cancelled"
            return Response(202)
    if state.settings.unknown_scheduling_key_status == 404:
        return error(404, "scheduling_key", "errors.not_found", "not found")
    return Response(202)
