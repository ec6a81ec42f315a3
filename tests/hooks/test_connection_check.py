"""CronofyHook.test_connection (hooks/connection_check.py): proves each credential a run will use.

Moved here from tests/test_hook.py (issue 17): the API key is now checked with one harmless
request, so tests that set an API key also answer that request.
"""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_cronofy.get_provider_info import DATA_CENTERS
from airflow_provider_cronofy.hooks.connection_check import TEST_KEY_PREFIX
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from tests.conftest import ACCESS_TOKEN, API_KEY, CLIENT_ID, REFRESH_TOKEN, SECRETS

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

US = "https://api.cronofy.com"
AGENTS = f"{US}/v1/meeting_agents"
USERINFO = f"{US}/v1/userinfo"


def make_hook(**kwargs) -> CronofyHook:
    return CronofyHook(**kwargs)


# ---------------------------------------------------------------- moved from tests/test_hook.py


def test_test_connection_verifies_access_token(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN, data_center="ca")
    requests_mock.delete(f"{DATA_CENTERS['ca']}/v1/meeting_agents", status_code=404)
    requests_mock.get(f"{DATA_CENTERS['ca']}/v1/userinfo", json={"sub": "acc_1"})
    ok, message = make_hook().test_connection()
    assert ok is True
    assert "access token was accepted" in message
    assert requests_mock.last_request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"


def test_test_connection_reports_bad_settings(set_connection, requests_mock):
    set_connection(data_center="mars")
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "mars" in message
    assert requests_mock.call_count == 0


def test_test_connection_rejected_token_single_attempt(set_connection, requests_mock):
    set_connection(password=None, access_token=ACCESS_TOKEN)
    requests_mock.get(USERINFO, status_code=401)
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "401" in message
    assert ACCESS_TOKEN not in message
    assert requests_mock.call_count == 1


def test_test_connection_without_credentials_fails(set_connection, requests_mock):
    set_connection(password=None)
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "Neither an API key (the password) nor an access token" in message
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- the API key check


@pytest.mark.parametrize("status", [202, 404, 422])
def test_the_api_key_is_proved_by_cancelling_a_key_nobody_scheduled(set_connection, requests_mock, status):
    set_connection()
    requests_mock.delete(AGENTS, status_code=status)
    ok, message = make_hook().test_connection()
    assert ok is True, message
    (request,) = requests_mock.request_history
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    key = json.loads(request.body)["scheduling_key"]
    assert key.startswith(TEST_KEY_PREFIX)
    assert uuid.UUID(hex=key[len(TEST_KEY_PREFIX) :]).version == 4
    assert f"The API key was accepted: cancelling the unscheduled key {key!r}" in message
    assert f"answered {status}" in message
    assert "CancelIntegratedMeetingAgentOperator cannot run" in message  # no access token


def test_each_check_uses_a_new_key(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(AGENTS, status_code=404)
    make_hook().test_connection()
    make_hook().test_connection()
    first, second = (json.loads(r.body)["scheduling_key"] for r in requests_mock.request_history)
    assert first != second


def test_a_rejected_api_key_fails_with_the_usual_explanation(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(AGENTS, status_code=401, text=f"bad key {API_KEY}")
    ok, message = make_hook().test_connection()
    assert ok is False
    assert message.startswith("Cronofy rejected the API key (401 Unauthorized) at data center 'us'")
    assert "password of connection 'cronofy_default'" in message
    assert API_KEY not in message
    assert requests_mock.call_count == 1  # no retry


def test_a_plan_without_meeting_agents_fails_saying_so(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(AGENTS, status_code=402)
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "plan does not include Meeting Agents" in message


def test_a_server_error_fails_after_one_attempt(set_connection, requests_mock, no_sleep):
    set_connection()
    requests_mock.delete(AGENTS, status_code=503)
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "503" in message
    assert requests_mock.call_count == 1 and no_sleep == []


def test_both_credentials_are_checked_and_listed(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(AGENTS, status_code=404)
    requests_mock.get(USERINFO, json={"sub": "acc_1"})
    ok, message = make_hook().test_connection()
    assert ok is True
    assert [(r.method, r.path) for r in requests_mock.request_history] == [
        ("DELETE", "/v1/meeting_agents"),
        ("GET", "/v1/userinfo"),
    ]
    assert "Settings are valid; the API is at https://api.cronofy.com (data center 'us')." in message
    assert "The API key was accepted" in message
    assert "The access token was accepted (GET /v1/userinfo)." in message
    assert "cannot run" not in message


def test_a_rejected_key_and_a_good_token_report_both(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(AGENTS, status_code=401)
    requests_mock.get(USERINFO, json={"sub": "acc_1"})
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "Cronofy rejected the API key" in message
    assert "Checked:" in message and "The access token was accepted" in message


# ---------------------------------------------------------------- the access token, never a refresh


def test_access_token_only_says_the_scheduled_operator_cannot_run(set_connection, requests_mock):
    set_connection(password=None, access_token=ACCESS_TOKEN)
    requests_mock.get(USERINFO, json={"sub": "acc_1"})
    ok, message = make_hook().test_connection()
    assert ok is True
    assert "No API key (password): CancelScheduledMeetingAgentOperator cannot run" in message
    assert requests_mock.call_count == 1


def test_an_expired_token_with_a_refresh_token_is_not_refreshed(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN, client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    requests_mock.delete(AGENTS, status_code=404)
    requests_mock.get(USERINFO, status_code=401)
    token = requests_mock.post(f"{US}/oauth/token", json={"access_token": "new"})
    ok, message = make_hook().test_connection()
    assert ok is True
    assert "refresh token, which was NOT checked" in message
    assert token.call_count == 0


def test_a_refresh_token_without_access_token_is_not_used(set_connection, requests_mock):
    set_connection(client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    requests_mock.delete(AGENTS, status_code=404)
    ok, message = make_hook().test_connection()
    assert ok is True
    assert "not tried now" in message
    assert [r.path for r in requests_mock.request_history] == ["/v1/meeting_agents"]


def test_a_rejected_token_without_refresh_names_the_fix(set_connection, requests_mock):
    set_connection(password=None, access_token=ACCESS_TOKEN)
    requests_mock.get(USERINFO, status_code=401)
    ok, message = make_hook().test_connection()
    assert ok is False
    assert "add client_id and refresh_token" in message


# ---------------------------------------------------------------- over HTTP


def test_against_the_emulator_nothing_changes(cronofy_emulator, monkeypatch):
    cronofy_emulator.add_access_token("tok-cc-5a1b")
    cronofy_emulator.schedule_agent("real-key")
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONOFY_DEFAULT", cronofy_emulator.airflow_connection_json(access_token="tok-cc-5a1b")
    )
    ok, message = CronofyHook().test_connection()
    assert ok is True, message
    assert [(r.method, r.path, r.status) for r in cronofy_emulator.requests] == [
        ("DELETE", "/v1/meeting_agents", 202),
        ("GET", "/v1/userinfo", 200),
    ]
    assert cronofy_emulator.scheduled_agents["real-key"]["status"] == "scheduled"
    assert not any(secret in message for secret in ("tok-cc-5a1b", cronofy_emulator.api_key, *SECRETS))


def test_against_the_emulator_a_wrong_api_key_fails(cronofy_emulator, monkeypatch):
    conn = cronofy_emulator.airflow_connection()
    conn["password"] = "wrong-api-key"
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(conn))
    ok, message = CronofyHook().test_connection()
    assert ok is False
    assert "Cronofy rejected the API key (401 Unauthorized)" in message
    assert "wrong-api-key" not in message
    assert len(cronofy_emulator.requests) == 1
