"""``POST`` and ``DELETE /v1/meeting_agents``: schedule and cancel Meeting Agents with the API key."""

from __future__ import annotations

import pytest

from tests.emulator._support import TIMEOUT, TOKEN, api_key, cancel, error_keys

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_schedule_meeting_agent(emu, session):
    body = {
        "scheduling_key": "k1",
        "join_url": "https://meet.example.com/x",
        "join_time": "2030-05-01T09:00:00Z",
    }
    response = session.post(f"{emu.url}/v1/meeting_agents", json=body, headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    assert emu.scheduled_agents["k1"] == {
        "status": "scheduled",
        "join_url": "https://meet.example.com/x",
        "join_time": "2030-05-01T09:00:00Z",
        "cancel_requests": 0,
    }


def test_schedule_meeting_agent_validation(emu, session):
    url = f"{emu.url}/v1/meeting_agents"
    response = session.post(url, json={"scheduling_key": "k1"}, headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["errors"]["join_url"] == [{"key": "errors.required", "description": "required"}]
    assert error_keys(response) == {"join_url": "errors.required", "join_time": "errors.required"}

    bad_time = {"scheduling_key": "k1", "join_url": "https://x", "join_time": "tomorrow"}
    response = session.post(url, json=bad_time, headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 422
    assert error_keys(response) == {"join_time": "errors.invalid"}

    # Without a scheduling key the agent joins now: join_time is not needed, nothing is scheduled,
    # and Cronofy documents 200 with the agent it sent (it was 202 before the emulator knew).
    response = session.post(url, json={"join_url": "https://x"}, headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 200
    assert set(response.json()["meeting_agent"]) == {"sub", "state", "resources"}
    assert emu.scheduled_agents == {}
    assert [agent["join_url"] for agent in emu.sent_agents] == ["https://x"]


def test_cancel_scheduled_agent(emu, session):
    emu.schedule_agent("k1")
    response = cancel(session, emu, "k1")
    assert response.status_code == 202
    assert response.content == b""
    assert emu.scheduled_agents["k1"]["status"] == "cancelled"
    assert emu.scheduled_agents["k1"]["cancel_requests"] == 1


def test_cancel_unknown_or_cancelled_key_answers_202_by_default(emu, session):
    emu.schedule_agent("k1")
    assert cancel(session, emu, "k1").status_code == 202
    again = cancel(session, emu, "k1")
    assert again.status_code == 202
    assert again.content == b""
    assert cancel(session, emu, "never-scheduled").status_code == 202
    assert emu.scheduled_agents["k1"]["cancel_requests"] == 2
    assert "never-scheduled" not in emu.scheduled_agents


def test_cancel_unknown_or_cancelled_key_answers_404_when_configured(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(unknown_scheduling_key_status=404)
    emulator.schedule_agent("k1")
    assert cancel(session, emulator, "k1").status_code == 202
    again = cancel(session, emulator, "k1")
    assert again.status_code == 404
    assert again.json() == {
        "errors": {"scheduling_key": [{"key": "errors.not_found", "description": "not found"}]}
    }
    unknown = cancel(session, emulator, "never-scheduled")
    assert unknown.status_code == 404
    assert emulator.scheduled_agents["k1"]["status"] == "cancelled"
    assert emulator.scheduled_agents["k1"]["cancel_requests"] == 2


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({}, "errors.required"),
        ({"scheduling_key": ""}, "errors.required"),
        ({"scheduling_key": 7}, "errors.invalid"),
    ],
)
def test_cancel_validation(emu, session, body, key):
    response = session.delete(
        f"{emu.url}/v1/meeting_agents", json=body, headers=api_key(emu), timeout=TIMEOUT
    )
    assert response.status_code == 422
    assert error_keys(response) == {"scheduling_key": key}


def test_cancel_with_empty_body_is_422(emu, session):
    response = session.delete(f"{emu.url}/v1/meeting_agents", headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 422
    assert error_keys(response) == {"scheduling_key": "errors.required"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": "Basic x"},
    ],
    ids=["missing", "wrong-key", "access-token-is-not-an-api-key", "not-bearer"],
)
def test_cancel_needs_the_api_key(emu, session, headers):
    emu.schedule_agent("k1")
    response = cancel(session, emu, "k1", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert emu.scheduled_agents["k1"]["status"] == "scheduled"
