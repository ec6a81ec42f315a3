"""``POST`` and ``DELETE /v1/calendars/{calendar_id}/events``: upsert and delete events."""

from __future__ import annotations

import pytest

from tests.emulator._support import OTHER_TOKEN, TIMEOUT, TOKEN, delete_event, error_keys, upsert

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_upsert_removes_and_adds_the_meeting_agent_with_a_partial_body(emu, session):
    emu.add_event("cal_1", "evt_1", summary="Standup")
    response = upsert(session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}})
    assert response.status_code == 202
    assert response.content == b""
    event = emu.events[("cal_1", "evt_1")]
    assert event["meeting_agent"] is None
    assert event["summary"] == "Standup"
    assert event["deleted"] is False

    assert (
        upsert(session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "cronofy"}}).status_code
        == 202
    )
    assert emu.events[("cal_1", "evt_1")]["meeting_agent"] == "cronofy"


def test_upsert_without_meeting_agent_leaves_it_alone(emu, session):
    emu.add_event("cal_1", "evt_1")
    assert upsert(session, emu, {"event_id": "evt_1", "summary": "Renamed"}).status_code == 202
    event = emu.events[("cal_1", "evt_1")]
    assert event["summary"] == "Renamed"
    assert event["meeting_agent"] == "cronofy"


def test_upsert_rejects_other_profile_ids(emu, session):
    emu.add_event("cal_1", "evt_1")
    response = upsert(session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "zoom"}})
    assert response.status_code == 422
    assert "meeting_agent.profile_id" in response.json()["errors"]
    assert emu.events[("cal_1", "evt_1")]["meeting_agent"] == "cronofy"


def test_upsert_new_event_needs_summary_start_end(emu, session):
    response = upsert(session, emu, {"event_id": "evt_new"})
    assert response.status_code == 422
    assert error_keys(response) == {
        "summary": "errors.required",
        "start": "errors.required",
        "end": "errors.required",
    }
    assert ("cal_1", "evt_new") not in emu.events

    full = {
        "event_id": "evt_new",
        "summary": "Kick-off",
        "start": "2030-01-01T10:00:00Z",
        "end": "2030-01-01T11:00:00Z",
        "meeting_agent": {"profile_id": "cronofy"},
    }
    assert upsert(session, emu, full).status_code == 202
    event = emu.events[("cal_1", "evt_new")]
    assert (event["summary"], event["start"], event["meeting_agent"], event["deleted"]) == (
        "Kick-off",
        "2030-01-01T10:00:00Z",
        "cronofy",
        False,
    )


def test_upsert_needs_event_id(emu, session):
    response = upsert(session, emu, {"summary": "x", "start": "s", "end": "e"})
    assert response.status_code == 422
    assert error_keys(response) == {"event_id": "errors.required"}


def test_upsert_needs_create_event_scope(emu, session):
    emu.add_access_token("tok_read_only", scopes=("read_events",), account_id="acc_alice")
    emu.add_event("cal_1", "evt_1")
    response = upsert(
        session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}, token="tok_read_only"
    )
    assert response.status_code == 403
    assert response.json() == {
        "errors": {"scope": [{"key": "errors.missing_scope", "description": "create_event"}]}
    }
    assert emu.events[("cal_1", "evt_1")]["meeting_agent"] == "cronofy"


def test_calendar_unknown_or_not_owned_is_404(emu, session):
    emu.add_event("cal_bob", "evt_1")
    body = {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}
    assert upsert(session, emu, body, calendar="cal_missing").status_code == 404
    assert upsert(session, emu, body, calendar="cal_bob", token=TOKEN).status_code == 404
    assert (
        delete_event(session, emu, {"event_id": "evt_1"}, calendar="cal_bob", token=TOKEN).status_code == 404
    )
    assert emu.events[("cal_bob", "evt_1")]["meeting_agent"] == "cronofy"
    # The owner can.
    assert upsert(session, emu, body, calendar="cal_bob", token=OTHER_TOKEN).status_code == 202


def test_calendar_calls_need_an_access_token(emu, session):
    response = upsert(session, emu, {"event_id": "evt_1"}, token=emu.api_key)
    assert response.status_code == 401
    response = session.post(f"{emu.url}/v1/calendars/cal_1/events", json={"event_id": "e"}, timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_percent_encoded_calendar_id_is_one_segment(emu, session):
    emu.add_calendar("cal/x", access_token=TOKEN)
    emu.add_event("cal/x", "evt_1")
    response = upsert(
        session, emu, {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}, calendar="cal%2Fx"
    )
    assert response.status_code == 202
    assert emu.events[("cal/x", "evt_1")]["meeting_agent"] is None
    assert emu.requests[-1].path == "/v1/calendars/cal%2Fx/events"
    # Unencoded, the slash makes another path.
    assert upsert(session, emu, {"event_id": "evt_1"}, calendar="cal/x").status_code == 404


def test_delete_event(emu, session):
    emu.add_event("cal_1", "evt_1")
    response = delete_event(session, emu, {"event_id": "evt_1"})
    assert response.status_code == 202
    assert response.content == b""
    event = emu.events[("cal_1", "evt_1")]
    assert event["deleted"] is True
    assert event["meeting_agent"] is None
    # Idempotent, and unknown ids are accepted too.
    assert delete_event(session, emu, {"event_id": "evt_1"}).status_code == 202
    assert delete_event(session, emu, {"event_id": "evt_never"}).status_code == 202


def test_delete_event_errors(emu, session):
    emu.add_access_token("tok_no_delete", scopes=("read_events", "create_event"), account_id="acc_alice")
    emu.add_event("cal_1", "evt_1")
    response = delete_event(session, emu, {"event_id": "evt_1"}, token="tok_no_delete")
    assert response.status_code == 403
    assert response.json()["errors"]["scope"][0]["description"] == "delete_event"
    missing = delete_event(session, emu, {})
    assert missing.status_code == 422
    assert error_keys(missing) == {"event_id": "errors.required"}
    assert emu.events[("cal_1", "evt_1")]["deleted"] is False


def test_add_event_needs_a_known_calendar(emu):
    with pytest.raises(ValueError):
        emu.add_event("cal_missing", "evt_1")
