"""Tests of the Cronofy emulator itself, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator, RecordedRequest, running_emulator
from tests.emulator._support import (
    OTHER_TOKEN,
    REFRESH,
    REPO_ROOT,
    TIMEOUT,
    TOKEN,
    api_key,
    bearer,
    cancel,
    delete_event,
    error_keys,
    refresh,
    upsert,
)

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

# ---------------------------------------------------------------- lifecycle and helpers


def test_url_has_no_trailing_slash_and_real_port(emu):
    assert emu.url.startswith("http://127.0.0.1:")
    assert not emu.url.endswith("/")
    assert int(emu.url.rsplit(":", 1)[1]) > 0


def test_url_before_start_raises():
    with pytest.raises(RuntimeError):
        _ = CronofyEmulator().url


def test_stop_is_idempotent_and_closes_the_port():
    emulator = CronofyEmulator().start()
    url = emulator.url
    emulator.stop()
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/userinfo", timeout=TIMEOUT)


def test_stop_closes_idle_keep_alive_connections():
    emulator = CronofyEmulator().start()
    conn = http.client.HTTPConnection("127.0.0.1", int(emulator.url.rsplit(":", 1)[1]), timeout=TIMEOUT)
    conn.request("GET", "/v1/userinfo")
    conn.getresponse().read()
    emulator.stop()
    assert emulator.connections_opened == 1
    # The server end of the idle connection is closed: the client reads EOF, not a timeout.
    conn.sock.settimeout(2)
    assert conn.sock.recv(1) == b""
    conn.close()


def test_running_emulator_context_manager_starts_and_stops():
    with running_emulator(api_key="k") as emulator:
        assert emulator.api_key == "k"
        assert requests.get(f"{emulator.url}/nope", timeout=TIMEOUT).status_code == 404
    with pytest.raises(RuntimeError):
        _ = emulator.url


def test_factory_fixture_applies_settings(cronofy_emulator_factory):
    emulator = cronofy_emulator_factory(unknown_scheduling_key_status=404, api_key="other")
    response = requests.delete(
        f"{emulator.url}/v1/meeting_agents",
        json={"scheduling_key": "never"},
        headers=bearer("other"),
        timeout=TIMEOUT,
    )
    assert response.status_code == 404


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        CronofyEmulator(unknown_scheduling_key_status=422)
    with pytest.raises(ValueError):
        CronofyEmulator(rate_limit_per_second=-1)


def test_airflow_connection(emu):
    conn = emu.airflow_connection(access_token="at", refresh_token="rt", timeout=2)
    assert conn == {
        "conn_type": "cronofy",
        "host": emu.url,
        "password": "emulator-api-key",
        "extra": {
            "access_token": "at",
            "refresh_token": "rt",
            "client_id": "emulator-client-id",
            "timeout": 2,
        },
    }
    assert emu.airflow_connection()["extra"] == {}
    assert emu.airflow_connection(access_token="at")["extra"] == {"access_token": "at"}
    assert json.loads(emu.airflow_connection_json(access_token="at")) == emu.airflow_connection(
        access_token="at"
    )


# ---------------------------------------------------------------- meeting agents


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

    # Without a scheduling key the agent joins now: join_time is not needed and nothing is stored.
    response = session.post(url, json={"join_url": "https://x"}, headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 202
    assert emu.scheduled_agents == {}


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


def test_non_json_body_is_415(emu, session):
    emu.schedule_agent("k1")
    response = session.delete(
        f"{emu.url}/v1/meeting_agents",
        data="scheduling_key=k1",
        headers={**api_key(emu), "Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 415
    assert error_keys(response) == {"body": "errors.unsupported_media_type"}
    assert emu.scheduled_agents["k1"]["status"] == "scheduled"


def test_malformed_json_is_422(emu, session):
    response = session.delete(
        f"{emu.url}/v1/meeting_agents",
        data=b'{"scheduling_key": ',
        headers={**api_key(emu), "Content-Type": "application/json; charset=utf-8"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 422
    assert error_keys(response) == {"body": "errors.invalid_json"}


def test_chunked_request_body_is_read(emu):
    emu.schedule_agent("k1")
    conn = http.client.HTTPConnection("127.0.0.1", int(emu.url.rsplit(":", 1)[1]), timeout=TIMEOUT)
    conn.request(
        "DELETE",
        "/v1/meeting_agents",
        body=iter([b'{"scheduling_key"', b': "k1"}']),
        headers={**api_key(emu), "Content-Type": "application/json"},
        encode_chunked=True,
    )
    assert conn.getresponse().status == 202
    conn.close()
    assert emu.scheduled_agents["k1"]["status"] == "cancelled"


# ---------------------------------------------------------------- events


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


# ---------------------------------------------------------------- userinfo and tokens


def test_userinfo(emu, session):
    response = session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "acc_alice"
    assert body["cronofy.type"] == "account"
    assert body["cronofy.data"]["authorization"]["scope"] == "read_events create_event delete_event"
    assert session.get(f"{emu.url}/v1/userinfo", headers=api_key(emu), timeout=TIMEOUT).status_code == 401


def test_expired_access_token_is_401(emu, session):
    emu.add_access_token("tok_old", account_id="acc_alice", expired=True)
    assert (
        session.get(f"{emu.url}/v1/userinfo", headers=bearer("tok_old"), timeout=TIMEOUT).status_code == 401
    )
    assert session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT).status_code == 200
    emu.expire_access_token(TOKEN)
    response = session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    with pytest.raises(KeyError):
        emu.expire_access_token("never-registered")


def test_refresh_issues_a_working_token_for_the_account(emu, session):
    emu.add_refresh_token(REFRESH, account_id="acc_alice")
    emu.expire_access_token(TOKEN)
    response = refresh(session, emu)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"] == REFRESH
    assert body["scope"] == "read_events create_event delete_event"
    new_token = body["access_token"]
    assert new_token not in (TOKEN, REFRESH)
    emu.add_event("cal_1", "evt_1")
    # The calendar belongs to the account, so the new token reaches it.
    assert upsert(session, emu, {"event_id": "evt_1"}, token=new_token).status_code == 202
    assert refresh(session, emu).json()["access_token"] != new_token


def test_refresh_accepts_a_form_body(emu, session):
    emu.add_refresh_token(REFRESH)
    form = {
        "client_id": emu.client_id,
        "client_secret": emu.api_key,
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
    }
    response = session.post(f"{emu.url}/oauth/token", data=form, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["access_token"]


def test_issued_tokens_expire_after_their_lifetime(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(access_token_lifetime=0)
    emulator.add_refresh_token(REFRESH)
    body = refresh(session, emulator).json()
    assert body["expires_in"] == 0
    response = session.get(
        f"{emulator.url}/v1/userinfo", headers=bearer(body["access_token"]), timeout=TIMEOUT
    )
    assert response.status_code == 401


def test_refresh_errors(emu, session):
    emu.add_refresh_token(REFRESH)
    wrong_secret = refresh(session, emu, client_secret="nope")
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert refresh(session, emu, client_id="nope").json()["error"] == "invalid_client"
    unknown = refresh(session, emu, refresh_token="rt_unknown")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    other_grant = refresh(session, emu, grant_type="authorization_code")
    assert other_grant.status_code == 400
    assert other_grant.json()["error"] == "unsupported_grant_type"


def test_refresh_token_rotation(emu, session):
    emu.add_refresh_token(REFRESH, account_id="acc_alice")
    emu.rotate_refresh_tokens = True
    first = refresh(session, emu).json()
    assert first["refresh_token"] != REFRESH
    assert refresh(session, emu).json()["error"] == "invalid_grant"  # the old one is dead
    second = refresh(session, emu, refresh_token=first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (REFRESH, first["refresh_token"])


def test_refresh_token_revocation(emu, session):
    emu.add_refresh_token(REFRESH)
    assert refresh(session, emu).status_code == 200
    emu.revoke_refresh_token(REFRESH)
    response = refresh(session, emu)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    emu.revoke_refresh_token(REFRESH)  # already revoked: no-op
    with pytest.raises(KeyError):
        emu.revoke_refresh_token("never-registered")


def test_unknown_path_is_404_json(emu, session):
    response = session.get(f"{emu.url}/v1/nothing", headers=api_key(emu), timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "errors" in response.json()
    assert (
        session.get(f"{emu.url}/v1/meeting_agents", headers=api_key(emu), timeout=TIMEOUT).status_code == 404
    )


def test_error_bodies_never_echo_credentials(emu, session):
    emu.add_refresh_token(REFRESH)
    responses = [
        cancel(session, emu, "k", headers=bearer("secret-wrong-key")),
        cancel(session, emu, "k", headers=bearer(TOKEN)),
        upsert(session, emu, {"event_id": "e"}, token="secret-unknown-token"),
        upsert(session, emu, {"event_id": "e"}, calendar="cal_bob"),
        refresh(session, emu, client_secret="secret-wrong-secret"),
        refresh(session, emu, refresh_token="secret-unknown-refresh"),
    ]
    for response in responses:
        assert response.status_code >= 400
        for secret in ("secret-", emu.api_key, TOKEN, REFRESH):
            assert secret not in response.text


# ---------------------------------------------------------------- connections and recording


def test_session_reuses_one_keep_alive_connection(emu, session):
    emu.schedule_agent("k1")
    emu.schedule_agent("k2")
    assert cancel(session, emu, "k1").status_code == 202
    assert cancel(session, emu, "k2").status_code == 202
    assert emu.connections_opened == 1
    assert {r.connection_id for r in emu.requests} == {1}


def test_separate_requests_open_separate_connections(emu):
    emu.schedule_agent("k1")
    for _ in range(2):
        response = requests.delete(
            f"{emu.url}/v1/meeting_agents",
            json={"scheduling_key": "k1"},
            headers=api_key(emu),
            timeout=TIMEOUT,
        )
        assert response.status_code == 202
    assert emu.connections_opened == 2
    assert [r.connection_id for r in emu.requests] == [1, 2]


def test_requests_are_recorded(emu, session):
    emu.schedule_agent("k1")
    cancel(session, emu, "k1")
    session.get(f"{emu.url}/v1/userinfo?x=%20y", headers=bearer(TOKEN), timeout=TIMEOUT)
    recorded = emu.requests
    assert len(recorded) == 2
    first, second = recorded
    assert isinstance(first, RecordedRequest)
    assert first.method == "DELETE"
    assert first.path == "/v1/meeting_agents"
    assert first.headers["authorization"] == f"Bearer {emu.api_key}"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {"scheduling_key": "k1"}
    assert first.json == {"scheduling_key": "k1"}
    assert first.status == 202
    assert second.path == "/v1/userinfo?x=%20y"
    assert second.json is None
    assert second.status == 200
    assert first.time <= second.time
    emu.reset_requests()
    assert emu.requests == []


# ---------------------------------------------------------------- fault scripting


def test_fail_next_with_retry_after(emu, session):
    emu.schedule_agent("k1")
    emu.fail_next(2, 503, retry_after=7)
    first = cancel(session, emu, "k1")
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "7"
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "errors" in first.json()
    assert cancel(session, emu, "k1").status_code == 503
    assert emu.scheduled_agents["k1"]["status"] == "scheduled"  # faults skip normal handling
    assert cancel(session, emu, "k1").status_code == 202
    assert [r.status for r in emu.requests] == [503, 503, 202]
    assert emu.fault_counts["503"] == 2


def test_fail_next_filters_and_custom_body(emu, session):
    emu.schedule_agent("k1")
    emu.fail_next(
        1, 429, body="slow down", content_type="text/plain", method="DELETE", path="/v1/meeting_agents"
    )
    emu.fail_next(1, 502, path="/v1/calendars/*/events")
    assert session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT).status_code == 200
    limited = cancel(session, emu, "k1")
    assert limited.status_code == 429
    assert limited.text == "slow down"
    assert limited.headers["Content-Type"] == "text/plain"
    assert "Retry-After" not in limited.headers
    assert upsert(session, emu, {"event_id": "e"}).status_code == 502
    assert cancel(session, emu, "k1").status_code == 202
    assert emu.fault_counts["429"] == 1
    assert emu.fault_counts["502"] == 1


def test_delay_next_makes_a_client_time_out(emu, session):
    emu.schedule_agent("k1")
    emu.delay_next(1, 0.6)
    with pytest.raises(requests.Timeout):
        session.delete(
            f"{emu.url}/v1/meeting_agents",
            json={"scheduling_key": "k1"},
            headers=api_key(emu),
            timeout=(TIMEOUT, 0.2),
        )
    started = time.monotonic()
    assert session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT).status_code == 200
    assert time.monotonic() - started < 0.5
    assert emu.fault_counts["delay"] == 1


def test_delay_next_then_answers_normally(emu, session):
    emu.schedule_agent("k1")
    emu.delay_next(1, 0.3)
    started = time.monotonic()
    assert cancel(session, emu, "k1").status_code == 202
    assert time.monotonic() - started >= 0.3
    assert emu.scheduled_agents["k1"]["status"] == "cancelled"


def test_drop_next_closes_the_connection_without_response(emu, session):
    emu.schedule_agent("k1")
    emu.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        cancel(session, emu, "k1")
    assert emu.requests[-1].status is None
    assert emu.scheduled_agents["k1"]["status"] == "scheduled"
    assert cancel(session, emu, "k1").status_code == 202
    assert emu.fault_counts["drop"] == 1
    assert emu.connections_opened == 2


def _random_fault_run(seed: int, count: int) -> list[tuple[int, str | None]]:
    """Send ``count`` requests one at a time; return (status, Retry-After) of each."""
    with running_emulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        emulator.set_random_faults(
            seed=seed, p_503=0.3, p_429=0.3, p_429_retry_after=0.5, retry_after_seconds=2
        )
        with requests.Session() as s:
            answers = []
            for _ in range(count):
                response = s.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT)
                answers.append((response.status_code, response.headers.get("Retry-After")))
        statuses = [status for status, _ in answers]
        assert emulator.fault_counts["503"] == statuses.count(503)
        assert emulator.fault_counts["429"] == statuses.count(429)
        return answers


def test_random_faults_are_deterministic_for_a_seed():
    first = _random_fault_run(seed=42, count=40)
    assert first == _random_fault_run(seed=42, count=40)
    assert first != _random_fault_run(seed=7, count=40)
    assert {status for status, _ in first} == {503, 429, 404}
    # Only 429s carry Retry-After, and only some of them.
    assert {retry for status, retry in first if status == 429} == {"2", None}
    assert {retry for status, retry in first if status != 429} == {None}


def test_random_faults_respect_paths_and_can_be_turned_off(emu, session):
    emu.set_random_faults(seed=1, p_503=1.0, paths=("/v1/meeting_agents",))
    assert session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT).status_code == 200
    assert cancel(session, emu, "k").status_code == 503
    emu.set_random_faults(seed=0)
    assert cancel(session, emu, "k").status_code == 202
    with pytest.raises(ValueError):
        emu.set_random_faults(seed=0, p_503=0.7, p_429=0.7)


def test_random_drops(emu, session):
    emu.set_random_faults(seed=3, p_drop=1.0)
    with pytest.raises(requests.ConnectionError):
        session.get(f"{emu.url}/v1/userinfo", headers=bearer(TOKEN), timeout=TIMEOUT)
    assert emu.fault_counts["drop"] == 1


# ---------------------------------------------------------------- rate limiting


def test_rate_limit_per_second(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(rate_limit_per_second=5, rate_limit_per_minute=None)
    statuses = []
    headers = []
    for _ in range(8):
        response = session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT)
        statuses.append(response.status_code)
        headers.append(response.headers)
    assert statuses == [404] * 5 + [429] * 3
    assert all("Retry-After" not in h for h in headers)
    assert emulator.fault_counts["rate_limited"] == 3
    # 429s are not counted, so the window frees up once the admitted requests are a second old.
    time.sleep(1.05)
    assert session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code == 404


def test_rate_limit_per_minute(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(rate_limit_per_second=0, rate_limit_per_minute=3)
    statuses = [session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    assert [r.status for r in emulator.requests] == statuses


def test_rate_limit_off(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(rate_limit_per_second=None, rate_limit_per_minute=None)
    statuses = {session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code for _ in range(60)}
    assert statuses == {404}


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str


@pytest.fixture
def tls_files(tmp_path, monkeypatch) -> TlsFiles:
    """A throw-away self-signed certificate for 127.0.0.1 (IP SAN) and its key, as PEM files.

    The CA bundle variables are cleared: requests lets them override a session's ``verify``.
    """
    # Not skipped when cryptography is missing: it comes with Airflow.
    from airflow_provider_cronofy.testing.certificates import make_self_signed_certificate

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    files = make_self_signed_certificate(tmp_path)
    return TlsFiles(files.cert, files.key)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return context


@pytest.fixture
def tls_emu(cronofy_emulator_factory, tls_files) -> CronofyEmulator:
    return cronofy_emulator_factory(ssl_context=server_context(tls_files))


def port_of(emu: CronofyEmulator) -> int:
    return int(emu.url.rsplit(":", 1)[1])


def test_https_url_and_connection(tls_emu):
    assert tls_emu.url == f"https://127.0.0.1:{port_of(tls_emu)}"
    assert tls_emu.airflow_connection()["host"] == tls_emu.url


def test_https_session_reuses_one_connection(tls_emu, tls_files):
    tls_emu.schedule_agent("k1")
    tls_emu.schedule_agent("k2")
    with requests.Session() as https:
        https.verify = tls_files.cert
        assert cancel(https, tls_emu, "k1").status_code == 202
        assert cancel(https, tls_emu, "k2").status_code == 202
    assert tls_emu.connections_opened == 1
    assert {r.connection_id for r in tls_emu.requests} == {1}
    assert tls_emu.scheduled_agents["k2"]["status"] == "cancelled"
    assert tls_emu.tls_handshake_failures == 0


def test_https_separate_requests_open_separate_connections(tls_emu, tls_files):
    tls_emu.schedule_agent("k1")
    for _ in range(2):
        response = requests.delete(
            f"{tls_emu.url}/v1/meeting_agents",
            json={"scheduling_key": "k1"},
            headers=api_key(tls_emu),
            timeout=TIMEOUT,
            verify=tls_files.cert,
        )
        assert response.status_code == 202
    assert tls_emu.connections_opened == 2
    assert [r.connection_id for r in tls_emu.requests] == [1, 2]


def test_https_failed_handshakes_are_counted_and_serving_goes_on(tls_emu, tls_files):
    with pytest.raises(requests.exceptions.SSLError):  # the client does not trust the certificate
        requests.get(f"{tls_emu.url}/v1/userinfo", timeout=TIMEOUT, verify=True)
    with pytest.raises(requests.ConnectionError):  # plain HTTP to the TLS port
        requests.get(tls_emu.url.replace("https://", "http://") + "/v1/userinfo", timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while tls_emu.tls_handshake_failures < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the server side of a handshake ends in its own thread
    assert tls_emu.tls_handshake_failures == 2
    response = requests.get(
        f"{tls_emu.url}/v1/userinfo", headers=bearer("nope"), timeout=TIMEOUT, verify=tls_files.cert
    )
    assert response.status_code == 401
    assert tls_emu.connections_opened == 1
    assert len(tls_emu.requests) == 1


def test_https_a_stalled_handshake_does_not_hold_up_other_connections(tls_emu, tls_files):
    # A client that connects and never says hello: its handshake waits in its own thread.
    with socket.create_connection(("127.0.0.1", port_of(tls_emu)), timeout=TIMEOUT):
        started = time.monotonic()
        response = requests.get(
            f"{tls_emu.url}/v1/userinfo", headers=bearer("nope"), timeout=TIMEOUT, verify=tls_files.cert
        )
        assert response.status_code == 401
        assert time.monotonic() - started < 2
    assert tls_emu.connections_opened == 1


def test_https_drop_and_delay(tls_emu, tls_files):
    tls_emu.schedule_agent("k1")
    with requests.Session() as https:
        https.verify = tls_files.cert
        tls_emu.drop_next(1)
        with pytest.raises(requests.ConnectionError):
            cancel(https, tls_emu, "k1")
        tls_emu.delay_next(1, 0.6)
        with pytest.raises(requests.Timeout):
            https.delete(
                f"{tls_emu.url}/v1/meeting_agents",
                json={"scheduling_key": "k1"},
                headers=api_key(tls_emu),
                timeout=(TIMEOUT, 0.2),
            )
        assert cancel(https, tls_emu, "k1").status_code == 202
    assert tls_emu.fault_counts["drop"] == 1
    assert tls_emu.fault_counts["delay"] == 1
    # The dropped and the timed-out connections are not reused.
    assert tls_emu.connections_opened == 3
    assert tls_emu.scheduled_agents["k1"]["status"] == "cancelled"


def test_https_stop_closes_idle_keep_alive_connections(tls_files):
    emulator = CronofyEmulator(ssl_context=server_context(tls_files)).start()
    context = ssl.create_default_context(cafile=tls_files.cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port_of(emulator), timeout=TIMEOUT, context=context)
    conn.request("GET", "/v1/userinfo")
    assert conn.getresponse().read()
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 2
    assert emulator.connections_opened == 1
    conn.sock.settimeout(2)
    assert conn.sock.recv(1) == b""  # EOF, not a timeout
    conn.close()


def test_ssl_context_must_be_a_server_context():
    with pytest.raises(ValueError, match="server-side"):
        CronofyEmulator(ssl_context=ssl.create_default_context())
    with pytest.raises(TypeError):
        CronofyEmulator(ssl_context="cert.pem")  # type: ignore[arg-type]


# ---------------------------------------------------------------- CLI


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def _start_cli(*args: str) -> tuple[subprocess.Popen, queue.Queue]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    return proc, lines


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_prints_a_connection_and_stops_cleanly(stop_signal):
    proc, lines = _start_cli("--port", "0", "--seed-demo")
    try:
        url_line = lines.get(timeout=10)
        conn_line = lines.get(timeout=5)
        url = url_line.strip().rsplit(" ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        name, _, quoted = conn_line.strip().partition("=")
        assert name == "AIRFLOW_CONN_CRONOFY_DEFAULT"
        assert quoted.startswith("'") and quoted.endswith("'")
        conn = json.loads(quoted[1:-1])
        assert conn["conn_type"] == "cronofy"
        assert conn["host"] == url
        extra = conn["extra"]
        assert {"access_token", "refresh_token", "client_id"} <= set(extra)

        cancelled = requests.delete(
            f"{url}/v1/meeting_agents",
            json={"scheduling_key": "demo-key-1"},
            headers=bearer(conn["password"]),
            timeout=TIMEOUT,
        )
        assert cancelled.status_code == 202
        removed = requests.post(
            f"{url}/v1/calendars/cal_demo/events",
            json={"event_id": "evt_demo_1", "meeting_agent": {"profile_id": "none"}},
            headers=bearer(extra["access_token"]),
            timeout=TIMEOUT,
        )
        assert removed.status_code == 202
        unknown = requests.post(
            f"{url}/v1/calendars/cal_demo/events",
            json={"event_id": "evt_not_seeded"},
            headers=bearer(extra["access_token"]),
            timeout=TIMEOUT,
        )
        assert unknown.status_code == 422  # not seeded: a new event needs summary/start/end
        token = requests.post(
            f"{url}/oauth/token",
            json={
                "client_id": extra["client_id"],
                "client_secret": conn["password"],
                "grant_type": "refresh_token",
                "refresh_token": extra["refresh_token"],
            },
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_refuses_a_non_loopback_host():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert result.stdout == ""


def test_cli_serves_https_with_a_certificate(tls_files):
    proc, lines = _start_cli("--port", "0", "--certfile", tls_files.cert, "--keyfile", tls_files.key)
    try:
        url = lines.get(timeout=10).strip().rsplit(" ", 1)[1]
        assert url.startswith("https://127.0.0.1:")
        conn = json.loads(lines.get(timeout=5).strip().partition("=")[2][1:-1])
        assert conn["host"] == url
        with requests.Session() as https:
            https.verify = tls_files.cert
            for _ in range(2):
                response = https.get(
                    f"{url}/v1/userinfo", headers=bearer(conn["extra"]["access_token"]), timeout=TIMEOUT
                )
                assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert tls_files.cert in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keyfile", "key.pem"], "--keyfile needs --certfile"),
        (["--certfile", "/nonexistent/cert.pem"], "cannot load --certfile/--keyfile"),
    ],
)
def test_cli_refuses_bad_tls_options(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", "--port", "0", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
