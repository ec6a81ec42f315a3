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


# ---------------------------------------------------------------- POST as Cronofy documents it

JOIN_TIME = "2030-05-01T09:00:00Z"


def schedule(session, emu, key, join_url="https://meet.example.com/x", join_time=JOIN_TIME, **fields):
    body = {"scheduling_key": key, "join_url": join_url, "join_time": join_time, **fields}
    return session.post(f"{emu.url}/v1/meeting_agents", json=body, headers=api_key(emu), timeout=TIMEOUT)


WEBHOOK = {
    "type": "webhook",
    "uri": "https://hooks.example.com/cronofy",
    "interactions": [{"type": "meeting_agent_activated"}, {"type": "meeting_agent_failed"}],
}


def test_an_agent_sent_now_answers_200_with_the_agent(emu, session):
    body = {
        "join_url": "https://meet.example.com/now",
        "on_behalf_of_attendee": {"email": "ada@example.com"},
        "subscriptions": [WEBHOOK],
    }
    first = session.post(f"{emu.url}/v1/meeting_agents", json=body, headers=api_key(emu), timeout=TIMEOUT)
    second = session.post(f"{emu.url}/v1/meeting_agents", json=body, headers=api_key(emu), timeout=TIMEOUT)
    assert first.status_code == second.status_code == 200
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    agent = first.json()["meeting_agent"]
    assert agent == {"sub": agent["sub"], "state": "pending", "resources": {}}
    assert agent["sub"] != second.json()["meeting_agent"]["sub"]
    sent = emu.sent_agents
    assert [a["sub"] for a in sent] == [agent["sub"], second.json()["meeting_agent"]["sub"]]
    assert sent[0]["on_behalf_of_attendee"] == {"email": "ada@example.com"}
    assert sent[0]["subscriptions"] == [WEBHOOK]
    assert sent[0]["join_time"] is None
    assert emu.scheduled_agents == {} and emu.live_agent_counts == {}


def test_a_scheduled_agent_keeps_its_attendee_and_subscriptions(emu, session):
    response = schedule(
        session, emu, "k1", on_behalf_of_attendee={"email": "ada@example.com"}, subscriptions=[WEBHOOK]
    )
    assert response.status_code == 202
    assert response.content == b""
    [agent] = emu.agents_by_key["k1"]
    assert agent == {
        "sub": agent["sub"],
        "status": "scheduled",
        "join_url": "https://meet.example.com/x",
        "join_time": JOIN_TIME,
        "on_behalf_of_attendee": {"email": "ada@example.com"},
        "subscriptions": [WEBHOOK],
        "replaced": 0,
    }
    assert agent["sub"].startswith("mag_")
    assert emu.live_agents("k1") == 1
    assert emu.live_agents("never-scheduled") == 0
    assert emu.sent_agents == []


def _webhook(**changes):
    return [{**WEBHOOK, **changes}]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"join_url": "not a url"}, {"join_url": "errors.invalid"}),
        ({"join_url": "ftp://meet.example.com/x"}, {"join_url": "errors.invalid"}),
        ({"join_url": "https://"}, {"join_url": "errors.invalid"}),
        ({"join_url": 7}, {"join_url": "errors.invalid"}),
        ({"join_time": "2030-05-01T09:00:00"}, {"join_time": "errors.invalid"}),
        ({"join_time": "2030-05-01"}, {"join_time": "errors.invalid"}),
        ({"join_time": None}, {"join_time": "errors.required"}),
        ({"scheduling_key": None}, {"scheduling_key": "errors.required"}),
        ({"scheduling_key": ""}, {"scheduling_key": "errors.invalid"}),
        ({"on_behalf_of_attendee": "ada@example.com"}, {"on_behalf_of_attendee": "errors.invalid"}),
        ({"on_behalf_of_attendee": {}}, {"on_behalf_of_attendee.email": "errors.required"}),
        ({"on_behalf_of_attendee": {"email": "ada"}}, {"on_behalf_of_attendee.email": "errors.invalid"}),
        ({"subscriptions": WEBHOOK}, {"subscriptions": "errors.invalid"}),
        ({"subscriptions": ["https://hooks.example.com"]}, {"subscriptions.0": "errors.invalid"}),
        ({"subscriptions": _webhook(type="email")}, {"subscriptions.0.type": "errors.invalid"}),
        ({"subscriptions": _webhook(uri=None)}, {"subscriptions.0.uri": "errors.required"}),
        ({"subscriptions": _webhook(uri="hooks")}, {"subscriptions.0.uri": "errors.invalid"}),
        ({"subscriptions": _webhook(interactions=[])}, {"subscriptions.0.interactions": "errors.invalid"}),
        (
            {"subscriptions": _webhook(interactions=[{"type": "meeting_agent_joined"}])},
            {"subscriptions.0.interactions.0.type": "errors.invalid"},
        ),
    ],
)
def test_a_bad_field_answers_422_naming_it_and_stores_nothing(emu, session, fields, expected):
    response = schedule(session, emu, "k1", **fields)
    assert response.status_code == 422
    assert error_keys(response) == expected
    assert emu.scheduled_agents == {} and emu.sent_agents == []


def test_join_time_without_a_scheduling_key_is_422(emu, session):
    body = {"join_url": "https://meet.example.com/x", "join_time": JOIN_TIME}
    response = session.post(f"{emu.url}/v1/meeting_agents", json=body, headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 422
    assert response.json()["errors"]["scheduling_key"] == [
        {"key": "errors.required", "description": "required with join_time"}
    ]
    assert emu.sent_agents == []


def test_scheduling_needs_the_api_key(emu, session):
    body = {"scheduling_key": "k1", "join_url": "https://meet.example.com/x", "join_time": JOIN_TIME}
    response = session.post(
        f"{emu.url}/v1/meeting_agents",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert emu.scheduled_agents == {}


# ---------------------------------------------------------------- a repeated scheduling key


def test_replace_is_the_default_and_keeps_one_live_agent(emu, session):
    assert emu.repeated_scheduling_key == "replace"
    assert schedule(session, emu, "k1").status_code == 202
    again = schedule(
        session, emu, "k1", join_url="https://meet.example.com/moved", join_time="2030-06-01T08:00:00Z"
    )
    assert again.status_code == 202
    assert emu.live_agents("k1") == 1
    assert emu.scheduled_agents["k1"] == {
        "status": "scheduled",
        "join_url": "https://meet.example.com/moved",
        "join_time": "2030-06-01T08:00:00Z",
        "cancel_requests": 0,
    }
    [agent] = emu.agents_by_key["k1"]
    assert agent["replaced"] == 1


def test_duplicate_holds_several_live_agents_and_a_cancel_cancels_them_all(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(
        repeated_scheduling_key="duplicate", unknown_scheduling_key_status=404
    )
    for join_url in ("https://meet.example.com/a", "https://meet.example.com/b"):
        assert schedule(session, emulator, "k1", join_url=join_url).status_code == 202
    schedule(session, emulator, "other")
    assert emulator.live_agents("k1") == 2
    agents = emulator.agents_by_key["k1"]
    assert [a["join_url"] for a in agents] == ["https://meet.example.com/a", "https://meet.example.com/b"]
    assert agents[0]["sub"] != agents[1]["sub"]
    assert emulator.scheduled_agents["k1"]["join_url"] == "https://meet.example.com/b"

    assert cancel(session, emulator, "k1").status_code == 202
    assert emulator.live_agent_counts == {"k1": 0, "other": 1}
    assert [a["status"] for a in emulator.agents_by_key["k1"]] == ["cancelled", "cancelled"]
    assert emulator.scheduled_agents["k1"]["status"] == "cancelled"
    # Nothing live is left under the key: a second cancel is a cancel of an unknown key.
    assert cancel(session, emulator, "k1").status_code == 404
    assert emulator.scheduled_agents["k1"]["cancel_requests"] == 2


def test_refuse_answers_422_on_the_key_and_changes_nothing(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(repeated_scheduling_key="refuse")
    assert schedule(session, emulator, "k1").status_code == 202
    refused = schedule(session, emulator, "k1", join_url="https://meet.example.com/moved")
    assert refused.status_code == 422
    assert refused.json() == {
        "errors": {
            "scheduling_key": [
                {
                    "key": "errors.already_exists",
                    "description": "a Meeting Agent is already scheduled with this scheduling_key",
                }
            ]
        }
    }
    assert emulator.live_agents("k1") == 1
    assert [a["join_url"] for a in emulator.agents_by_key["k1"]] == ["https://meet.example.com/x"]


@pytest.mark.parametrize("mode", ["replace", "duplicate", "refuse"])
def test_a_key_whose_agents_are_cancelled_schedules_anew_in_every_mode(
    cronofy_emulator_factory, session, mode
):
    emulator = cronofy_emulator_factory(repeated_scheduling_key=mode)
    assert schedule(session, emulator, "k1").status_code == 202
    assert cancel(session, emulator, "k1").status_code == 202
    assert schedule(session, emulator, "k1", join_url="https://meet.example.com/new").status_code == 202
    assert emulator.live_agents("k1") == 1
    agents = emulator.agents_by_key["k1"]
    assert [(a["status"], a["join_url"]) for a in agents] == [
        ("cancelled", "https://meet.example.com/x"),
        ("scheduled", "https://meet.example.com/new"),
    ]
    assert emulator.scheduled_agents["k1"]["status"] == "scheduled"


def test_the_mode_can_change_while_it_runs(emu, session):
    schedule(session, emu, "k1")
    emu.repeated_scheduling_key = "duplicate"
    schedule(session, emu, "k1")
    assert emu.live_agents("k1") == 2
    emu.repeated_scheduling_key = "refuse"
    assert schedule(session, emu, "k1").status_code == 422
    assert emu.live_agents("k1") == 2


def test_schedule_agent_follows_the_mode(cronofy_emulator_factory):
    emulator = cronofy_emulator_factory(repeated_scheduling_key="duplicate")
    emulator.schedule_agent("k1")
    emulator.schedule_agent("k1", join_url="https://meet.example.com/b")
    assert emulator.live_agents("k1") == 2
    emulator.repeated_scheduling_key = "refuse"
    with pytest.raises(ValueError, match=r"'k1' has a live agent already .* \"refuse\""):
        emulator.schedule_agent("k1")
    assert emulator.live_agents("k1") == 2


def test_the_new_route_is_counted_and_recorded(emu, session):
    schedule(session, emu, "k1")
    schedule(session, emu, "k1", join_url="bad")
    session.post(
        f"{emu.url}/v1/meeting_agents",
        json={"join_url": "https://x.example"},
        headers=api_key(emu),
        timeout=TIMEOUT,
    )
    assert [(r.method, r.path, r.status, r.handled_status) for r in emu.requests] == [
        ("POST", "/v1/meeting_agents", 202, 202),
        ("POST", "/v1/meeting_agents", 422, 422),
        ("POST", "/v1/meeting_agents", 200, 200),
    ]
    assert emu.requests[0].json["scheduling_key"] == "k1"
    assert {status: emu.status_counts.get(status) for status in (200, 202, 422)} == {200: 1, 202: 1, 422: 1}
