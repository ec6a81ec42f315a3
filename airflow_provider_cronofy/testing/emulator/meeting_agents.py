"""Meeting Agents: ``POST /v1/meeting_agents`` (schedule or send) and ``DELETE /v1/meeting_agents`` (cancel).

Both take the application's API key. A POST with ``scheduling_key`` and ``join_time`` schedules
an agent for later (202, empty body); one with neither sends an agent at once (200 with
``{"meeting_agent": {"sub", "state", "resources"}}``). A POST whose key has a live agent already
does what the ``repeated_scheduling_key`` setting says (``"replace"``, ``"duplicate"`` or
``"refuse"``: Cronofy's real behaviour is unconfirmed). A DELETE cancels every live agent of the
key; cancelling an unknown or already-cancelled key answers the ``unknown_scheduling_key_status``
setting (202, or 404: also unconfirmed). Run with the state's lock held.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from typing import Any

from airflow_provider_cronofy.testing.emulator.accounts import require_api_key
from airflow_provider_cronofy.testing.emulator.answers import (
    REQUIRED,
    FieldErrors,
    Response,
    error,
    errors,
    invalid,
    json_body,
    json_response,
    require_string,
)
from airflow_provider_cronofy.testing.emulator.state import CronofyState, MeetingAgent, RepeatedKeyRefused

INTERACTIONS = ("meeting_agent_activated", "meeting_agent_complete", "meeting_agent_failed")
"""The interaction types a webhook subscription may ask for."""

SENT_AGENT_STATE = "pending"
"""``state`` of an agent sent at once, in the 200 answer (a placeholder: Cronofy's values are not
documented)."""


def _is_iso8601_time(value: str) -> bool:
    # Python 3.10's fromisoformat does not know "Z".
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return "T" in text.upper() and parsed.tzinfo is not None


def _is_web_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and value.strip() == value


def _url_field(data: dict[str, Any], name: str, field_errors: FieldErrors) -> str | None:
    value = require_string(data, name, field_errors)
    if value is not None and not _is_web_url(value):
        field_errors[name] = invalid("must be an http(s) URL, e.g. https://meet.example.com/abc")
        return None
    return value


def _attendee(data: dict[str, Any], field_errors: FieldErrors) -> dict[str, Any] | None:
    attendee = data.get("on_behalf_of_attendee")
    if attendee is None:
        return None
    if not isinstance(attendee, dict):
        field_errors["on_behalf_of_attendee"] = invalid('must be an object, e.g. {"email": "a@example.com"}')
        return None
    email = attendee.get("email")
    if email is None or email == "":
        field_errors["on_behalf_of_attendee.email"] = REQUIRED
    elif not isinstance(email, str) or "@" not in email:
        field_errors["on_behalf_of_attendee.email"] = invalid("must be an email address")
    return attendee


def _subscriptions(data: dict[str, Any], field_errors: FieldErrors) -> list[Any] | None:
    subscriptions = data.get("subscriptions")
    if subscriptions is None:
        return None
    if not isinstance(subscriptions, list):
        field_errors["subscriptions"] = invalid("must be a list of subscriptions")
        return None
    for index, subscription in enumerate(subscriptions):
        name = f"subscriptions.{index}"
        if not isinstance(subscription, dict):
            field_errors[name] = invalid('must be an object with "type", "uri" and "interactions"')
            continue
        if subscription.get("type") != "webhook":
            field_errors[f"{name}.type"] = invalid('must be "webhook"')
        uri_errors: FieldErrors = {}
        _url_field(subscription, "uri", uri_errors)
        if uri_errors:
            field_errors[f"{name}.uri"] = uri_errors["uri"]
        interactions = subscription.get("interactions")
        if not isinstance(interactions, list) or not interactions:
            field_errors[f"{name}.interactions"] = invalid("must be a non-empty list of interactions")
            continue
        for position, interaction in enumerate(interactions):
            kind = interaction.get("type") if isinstance(interaction, dict) else None
            if kind not in INTERACTIONS:
                field_errors[f"{name}.interactions.{position}.type"] = invalid(
                    f"must be one of {', '.join(INTERACTIONS)}"
                )
    return subscriptions


def schedule_meeting_agent(state: CronofyState, headers: dict[str, str], body: bytes) -> Response:
    require_api_key(state, headers)
    data = json_body(headers, body)
    field_errors: FieldErrors = {}
    join_url = _url_field(data, "join_url", field_errors)
    scheduling_key = data.get("scheduling_key")
    if scheduling_key is not None and (not isinstance(scheduling_key, str) or not scheduling_key):
        field_errors["scheduling_key"] = invalid("must be a non-empty string")
    join_time: str | None = None
    if scheduling_key is not None or data.get("join_time") is not None:
        join_time = require_string(data, "join_time", field_errors)
        if join_time is not None and not _is_iso8601_time(join_time):
            field_errors["join_time"] = invalid(
                "must be an ISO 8601 time with a zone, e.g. 2030-01-01T10:00:00Z"
            )
        if scheduling_key is None:
            # An agent for later that no key could ever cancel: most likely a client's mistake.
            field_errors["scheduling_key"] = [
                {"key": "errors.required", "description": "required with join_time"}
            ]
    attendee = _attendee(data, field_errors)
    subscriptions = _subscriptions(data, field_errors)
    if field_errors or join_url is None:
        return errors(422, field_errors)
    agent = MeetingAgent("", join_url, join_time, attendee, subscriptions)
    if scheduling_key is None:
        sent = state.send_agent(agent)
        return json_response(
            200, {"meeting_agent": {"sub": sent.sub, "state": SENT_AGENT_STATE, "resources": {}}}
        )
    try:
        state.store_agent(agent, scheduling_key)
    except RepeatedKeyRefused:
        return error(
            422,
            "scheduling_key",
            "errors.already_exists",
            "a Meeting Agent is already scheduled with this scheduling_key",
        )
    return Response(202)


def cancel_meeting_agent(state: CronofyState, headers: dict[str, str], body: bytes) -> Response:
    require_api_key(state, headers)
    data = json_body(headers, body)
    field_errors: FieldErrors = {}
    scheduling_key = require_string(data, "scheduling_key", field_errors)
    if scheduling_key is None:
        return errors(422, field_errors)
    if state.cancel_agents(scheduling_key):
        return Response(202)
    if state.settings.unknown_scheduling_key_status == 404:
        return error(404, "scheduling_key", "errors.not_found", "not found")
    return Response(202)
