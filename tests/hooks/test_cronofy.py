"""CronofyHook over requests-mock: wire format, retries, token refresh, error messages (the
connection's settings and session: tests/hooks/test_connection.py)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests

from airflow_provider_cronofy import __version__
from airflow_provider_cronofy.exceptions import (
    CronofyAPIError,
    CronofyConfigError,
    CronofyError,
    CronofyInputError,
)
from airflow_provider_cronofy.get_provider_info import DATA_CENTERS
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from tests.conftest import ACCESS_TOKEN, API_KEY, CLIENT_ID, REFRESH_TOKEN

US = "https://api.cronofy.com"
NO_PACING = {"rate_limit_per_second": 0, "rate_limit_per_minute": 0}


def make_hook(**kwargs) -> CronofyHook:
    return CronofyHook(**kwargs)


# ---------------------------------------------------------------- wire format


BASES = [*DATA_CENTERS.items(), ("loopback", "http://127.0.0.1:8765")]


@pytest.mark.parametrize(("dc", "base"), BASES)
def test_cancel_scheduled_wire_format(set_connection, requests_mock, dc, base):
    if dc == "loopback":
        set_connection(host=base)
    else:
        set_connection(data_center=dc)
    requests_mock.delete(f"{base}/v1/meeting_agents", status_code=202)

    assert make_hook().cancel_scheduled_meeting_agent("meeting-42") is True

    (req,) = requests_mock.request_history
    assert req.method == "DELETE"
    assert req.url == f"{base}/v1/meeting_agents"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert req.headers["User-Agent"].startswith(f"airflow-provider-cronofy/{__version__} ")
    assert json.loads(req.body) == {"scheduling_key": "meeting-42"}


@pytest.mark.parametrize(("dc", "base"), BASES)
def test_remove_agent_wire_format(set_connection, requests_mock, dc, base):
    extra = {"access_token": ACCESS_TOKEN}
    if dc == "loopback":
        set_connection(host=base, **extra)
    else:
        set_connection(data_center=dc, **extra)
    requests_mock.post(f"{base}/v1/calendars/cal_123/events", status_code=202)

    make_hook().remove_meeting_agent_from_event("cal_123", "evt-1")

    (req,) = requests_mock.request_history
    assert req.method == "POST"
    assert req.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(req.body) == {"event_id": "evt-1", "meeting_agent": {"profile_id": "none"}}


@pytest.mark.parametrize(("dc", "base"), BASES)
def test_delete_event_wire_format(set_connection, requests_mock, dc, base):
    extra = {"access_token": ACCESS_TOKEN}
    if dc == "loopback":
        set_connection(host=base, **extra)
    else:
        set_connection(data_center=dc, **extra)
    requests_mock.delete(f"{base}/v1/calendars/cal_123/events", status_code=202)

    make_hook().delete_event("cal_123", "evt-1")

    (req,) = requests_mock.request_history
    assert req.method == "DELETE"
    assert req.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(req.body) == {"event_id": "evt-1"}


def test_scheduled_404_means_not_found(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=404)
    assert make_hook().cancel_scheduled_meeting_agent("gone") is False
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("calendar_id", "encoded"),
    [
        ("cal/../../v1/meeting_agents", "cal%2F..%2F..%2Fv1%2Fmeeting_agents"),
        ("...", "..."),
        ("cal?x=1", "cal%3Fx%3D1"),
        ("cal#frag", "cal%23frag"),
        ("cal_ünï", "cal_%C3%BCn%C3%AF"),
        ("cal_abc-1~x", "cal_abc-1~x"),
    ],
)
def test_calendar_id_is_one_encoded_path_segment(set_connection, requests_mock, calendar_id, encoded):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(f"{US}/v1/calendars/{encoded}/events", status_code=202)
    make_hook().delete_event(calendar_id, "evt")
    path = requests_mock.last_request.path
    assert path == f"/v1/calendars/{encoded}/events".lower()
    assert len(path.split("/")) == 5  # '', v1, calendars, the id, events


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("key", [None, 5, "", "   ", ["a"], "['a', 'b']"])
def test_bad_scheduling_key_sends_nothing(set_connection, requests_mock, key):
    set_connection()
    with pytest.raises(CronofyInputError, match="scheduling_key"):
        make_hook().cancel_scheduled_meeting_agent(key)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("calendar_id", [None, 7, "", " ", ".", "..", "cal 1", "cal\n", "cal\t1", "cal\x00"])
def test_bad_calendar_id_sends_nothing(set_connection, requests_mock, calendar_id):
    set_connection(access_token=ACCESS_TOKEN)
    with pytest.raises(CronofyInputError, match="calendar_id"):
        make_hook().remove_meeting_agent_from_event(calendar_id, "evt")
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- retries


def test_retry_after_seconds_is_honoured(set_connection, requests_mock, no_sleep):
    set_connection(**NO_PACING)
    requests_mock.delete(
        f"{US}/v1/meeting_agents",
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}},
            {"status_code": 503, "headers": {"Retry-After": "2"}},
            {"status_code": 202},
        ],
    )
    assert make_hook().cancel_scheduled_meeting_agent("k") is True
    assert no_sleep == [7.0, 2.0]
    assert requests_mock.call_count == 3


def test_retry_after_http_date_is_honoured(set_connection, requests_mock, no_sleep):
    set_connection(**NO_PACING)
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    requests_mock.delete(
        f"{US}/v1/meeting_agents",
        [
            {"status_code": 429, "headers": {"Retry-After": format_datetime(when, usegmt=True)}},
            {"status_code": 202},
        ],
    )
    assert make_hook().cancel_scheduled_meeting_agent("k") is True
    assert len(no_sleep) == 1
    assert 25 <= no_sleep[0] <= 31


def test_retry_after_beyond_cap_fails_without_sleeping(set_connection, requests_mock, no_sleep):
    set_connection(**NO_PACING)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=429, headers={"Retry-After": "7200"})
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert "7200 s" in str(info.value)
    assert "300 s" in str(info.value)
    assert info.value.status_code == 429
    assert no_sleep == []
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_status_exhausts_budget(set_connection, requests_mock, no_sleep, status):
    set_connection(max_retries=3, **NO_PACING)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=status)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.call_count == 4
    assert info.value.status_code == status
    assert "4 attempt(s)" in str(info.value)
    # Exponential back-off with jitter: each wait within [ceiling/2, ceiling], ceilings doubling.
    assert len(no_sleep) == 3
    for attempt, waited in enumerate(no_sleep):
        ceiling = CronofyHook.retry_backoff * 2**attempt
        assert ceiling / 2 <= waited <= ceiling


def test_default_budget_is_six_requests(set_connection, requests_mock, no_sleep):
    set_connection(**NO_PACING)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=503)
    with pytest.raises(CronofyAPIError):
        make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.call_count == 6


@pytest.mark.parametrize("exc", [requests.ConnectionError, requests.ConnectTimeout, requests.ReadTimeout])
def test_transport_errors_are_retried(set_connection, requests_mock, no_sleep, exc):
    set_connection(**NO_PACING)
    requests_mock.delete(f"{US}/v1/meeting_agents", [{"exc": exc}, {"exc": exc}, {"status_code": 202}])
    assert make_hook().cancel_scheduled_meeting_agent("k") is True
    assert requests_mock.call_count == 3


def test_transport_error_after_budget_names_the_cause(set_connection, requests_mock, no_sleep):
    set_connection(max_retries=1, **NO_PACING)
    requests_mock.delete(f"{US}/v1/meeting_agents", exc=requests.ReadTimeout)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert info.value.status_code is None
    assert "no answer in time" in str(info.value)
    assert requests_mock.call_count == 2


@pytest.mark.parametrize("status", [400, 401, 402, 403, 422, 423])
def test_client_errors_are_not_retried(set_connection, requests_mock, no_sleep, status):
    set_connection(**NO_PACING)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=status)
    with pytest.raises(CronofyAPIError):
        make_hook().cancel_scheduled_meeting_agent("k")
    assert requests_mock.call_count == 1
    assert no_sleep == []


def test_404_on_event_call_is_not_retried_and_names_calendar(set_connection, requests_mock, no_sleep):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.post(f"{US}/v1/calendars/cal_nope/events", status_code=404)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().remove_meeting_agent_from_event("cal_nope", "evt")
    assert "cal_nope" in str(info.value)
    assert info.value.fatal
    assert requests_mock.call_count == 1


# ---------------------------------------------------------------- error messages


def test_401_names_data_center(set_connection, requests_mock):
    set_connection(data_center="de")
    requests_mock.delete(f"{DATA_CENTERS['de']}/v1/meeting_agents", status_code=401)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    message = str(info.value)
    assert "'de'" in message
    assert "another data center" in message
    assert info.value.status_code == 401
    assert info.value.fatal


def test_402_says_plan(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=402)
    with pytest.raises(CronofyAPIError, match="plan") as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert "Meeting Agents" in str(info.value)


@pytest.mark.parametrize(
    ("method", "scope"),
    [("remove_meeting_agent_from_event", "create_event"), ("delete_event", "delete_event")],
)
def test_403_names_scope(set_connection, requests_mock, method, scope):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.post(f"{US}/v1/calendars/cal/events", status_code=403)
    requests_mock.delete(f"{US}/v1/calendars/cal/events", status_code=403)
    with pytest.raises(CronofyAPIError) as info:
        getattr(make_hook(), method)("cal", "evt")
    assert f"'{scope}'" in str(info.value)


def test_422_lists_each_field(set_connection, requests_mock):
    set_connection()
    errors = {
        "scheduling_key": [{"key": "errors.invalid", "description": "is invalid"}],
        "other": [{"key": "errors.required", "description": "required"}],
    }
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=422, json={"errors": errors})
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert "scheduling_key: is invalid" in str(info.value)
    assert "other: required" in str(info.value)
    assert info.value.errors == errors


def test_html_error_page_gives_clean_error(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(
        f"{US}/v1/meeting_agents",
        status_code=418,
        text="<html>teapot</html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert "418" in str(info.value)
    assert "text/html" in str(info.value)
    assert "<html>" not in str(info.value)


def test_200_with_garbage_body_is_success(set_connection, requests_mock):
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=200, text="{truncated")
    assert make_hook().cancel_scheduled_meeting_agent("k") is True


def test_errors_are_airflow_exceptions(set_connection, requests_mock):
    from airflow_provider_cronofy._compat import AirflowException

    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=422)
    with pytest.raises(AirflowException):
        make_hook().cancel_scheduled_meeting_agent("k")
    assert issubclass(CronofyError, AirflowException)


# ---------------------------------------------------------------- access tokens


def refreshable(set_connection, **extra):
    return set_connection(client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN, **extra)


def test_refresh_before_first_calendar_call(set_connection, requests_mock):
    refreshable(set_connection)
    requests_mock.post(
        f"{US}/oauth/token",
        json={
            "token_type": "bearer",
            "access_token": "fresh-token-1",
            "expires_in": 3600,
            "refresh_token": REFRESH_TOKEN,
        },
    )
    requests_mock.post(f"{US}/v1/calendars/cal/events", status_code=202)
    make_hook().remove_meeting_agent_from_event("cal", "evt")
    token_req, call = requests_mock.request_history
    assert token_req.path == "/oauth/token"
    assert "Authorization" not in token_req.headers
    assert json.loads(token_req.body) == {
        "client_id": CLIENT_ID,
        "client_secret": API_KEY,
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
    }
    assert call.headers["Authorization"] == "Bearer fresh-token-1"


def test_401_refreshes_once_then_succeeds(set_connection, requests_mock):
    refreshable(set_connection, access_token=ACCESS_TOKEN)
    requests_mock.post(f"{US}/oauth/token", json={"access_token": "fresh-token-2"})
    requests_mock.delete(f"{US}/v1/calendars/cal/events", [{"status_code": 401}, {"status_code": 202}])
    hook = make_hook()
    hook.delete_event("cal", "evt")
    methods = [(r.method, r.path) for r in requests_mock.request_history]
    assert methods == [
        ("DELETE", "/v1/calendars/cal/events"),
        ("POST", "/oauth/token"),
        ("DELETE", "/v1/calendars/cal/events"),
    ]
    assert requests_mock.request_history[0].headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert requests_mock.last_request.headers["Authorization"] == "Bearer fresh-token-2"
    # The fresh token is kept for the next call: no further refresh.
    hook.delete_event("cal", "evt2")
    assert [r.path for r in requests_mock.request_history].count("/oauth/token") == 1


def test_401_after_refresh_is_an_error_with_one_refresh(set_connection, requests_mock):
    refreshable(set_connection, access_token=ACCESS_TOKEN)
    requests_mock.post(f"{US}/oauth/token", json={"access_token": "fresh-token-3"})
    requests_mock.delete(f"{US}/v1/calendars/cal/events", status_code=401)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().delete_event("cal", "evt")
    assert info.value.status_code == 401
    assert "even after refreshing" in str(info.value)
    assert requests_mock.call_count == 3


def test_401_without_refresh_says_how_to_fix(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(f"{US}/v1/calendars/cal/events", status_code=401)
    with pytest.raises(CronofyAPIError, match="refresh_token"):
        make_hook().delete_event("cal", "evt")
    assert requests_mock.call_count == 1


def test_revoked_refresh_token_is_fatal_and_names_fix(set_connection, requests_mock, no_sleep):
    refreshable(set_connection)
    requests_mock.post(f"{US}/oauth/token", status_code=400, json={"error": "invalid_grant"})
    with pytest.raises(CronofyAPIError) as info:
        make_hook().delete_event("cal", "evt")
    assert "invalid_grant" in str(info.value)
    assert "Re-authorise" in str(info.value)
    assert info.value.fatal
    assert requests_mock.call_count == 1


def test_rotated_refresh_token_is_used_and_logged_without_token(set_connection, requests_mock, caplog):
    refreshable(set_connection, access_token=ACCESS_TOKEN)
    requests_mock.post(
        f"{US}/oauth/token",
        [
            {"json": {"access_token": "fresh-a", "refresh_token": "rotated-refresh-1"}},
            {"json": {"access_token": "fresh-b"}},
        ],
    )
    requests_mock.delete(
        f"{US}/v1/calendars/cal/events",
        [{"status_code": 401}, {"status_code": 202}, {"status_code": 401}, {"status_code": 202}],
    )
    hook = make_hook()
    with caplog.at_level(logging.DEBUG):
        hook.delete_event("cal", "e1")
        hook.delete_event("cal", "e2")
    token_requests = [r for r in requests_mock.request_history if r.path == "/oauth/token"]
    assert json.loads(token_requests[1].body)["refresh_token"] == "rotated-refresh-1"
    assert "new refresh token" in caplog.text
    assert "rotated-refresh-1" not in caplog.text


def test_missing_refresh_parts_named(set_connection, requests_mock):
    set_connection(password=None, client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    with pytest.raises(CronofyConfigError, match="access_token"):
        make_hook().delete_event("cal", "evt")
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- request(): any endpoint


def test_request_returns_decoded_json_with_the_api_key(set_connection, requests_mock):
    set_connection()
    requests_mock.post(f"{US}/v1/availability", json={"available_periods": []})
    assert make_hook().request("post", "/v1/availability", json={"x": 1}) == {"available_periods": []}
    (req,) = requests_mock.request_history
    assert req.method == "POST"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(req.body) == {"x": 1}
    assert req.timeout == (10.0, 30.0)


def test_request_with_the_access_token_and_no_body(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.get(f"{US}/v1/userinfo", json={"sub": "acc_1"})
    assert make_hook().request("GET", "/v1/userinfo", auth="access_token") == {"sub": "acc_1"}
    req = requests_mock.last_request
    assert req.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert req.body is None


@pytest.mark.parametrize("status", [200, 202, 204])
def test_request_empty_2xx_body_is_none(set_connection, requests_mock, status):
    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=status, text="")
    assert make_hook().request("DELETE", "/v1/meeting_agents", json={"scheduling_key": "k"}) is None


def test_request_non_json_2xx_body_is_an_error(set_connection, requests_mock):
    set_connection()
    requests_mock.get(f"{US}/v1/userinfo", text="<html>proxy</html>")
    with pytest.raises(CronofyAPIError, match="not JSON"):
        make_hook().request("GET", "/v1/userinfo")


def test_request_retries_with_retry_after(set_connection, requests_mock, no_sleep):
    set_connection()
    requests_mock.get(
        f"{US}/v1/userinfo",
        [{"status_code": 429, "headers": {"Retry-After": "3"}}, {"status_code": 503}, {"json": {"ok": True}}],
    )
    hook = make_hook()
    assert hook.request("GET", "/v1/userinfo") == {"ok": True}
    assert requests_mock.call_count == 3
    assert no_sleep[0] == 3.0 and len(no_sleep) == 2
    assert hook.retries_spent == 2


@pytest.mark.parametrize(
    ("status", "fatal"), [(400, False), (404, False), (409, False), (403, True), (402, True)]
)
def test_request_non_2xx_raises_api_error(set_connection, requests_mock, status, fatal):
    from airflow_provider_cronofy._compat import AirflowFailException

    set_connection()
    requests_mock.get(f"{US}/v1/things", status_code=status, json={"errors": {"x": [{"key": "bad"}]}})
    with pytest.raises(CronofyAPIError) as info:
        make_hook().request("GET", "/v1/things")
    assert info.value.status_code == status
    assert info.value.fatal is fatal
    assert isinstance(info.value, AirflowFailException) is fatal
    assert requests_mock.call_count == 1


def test_request_refreshes_the_access_token_once_on_401(set_connection, requests_mock):
    refreshable(set_connection, access_token=ACCESS_TOKEN)
    requests_mock.post(f"{US}/oauth/token", json={"access_token": "fresh-token-1"})
    requests_mock.get(f"{US}/v1/userinfo", [{"status_code": 401}, {"json": {"sub": "acc"}}])
    assert make_hook().request("GET", "/v1/userinfo", auth="access_token") == {"sub": "acc"}
    calls = [(r.path, r.headers.get("Authorization")) for r in requests_mock.request_history]
    assert calls == [
        ("/v1/userinfo", f"Bearer {ACCESS_TOKEN}"),
        ("/oauth/token", None),
        ("/v1/userinfo", "Bearer fresh-token-1"),
    ]


def test_request_api_key_401_is_not_refreshed(set_connection, requests_mock):
    refreshable(set_connection, access_token=ACCESS_TOKEN)
    requests_mock.get(f"{US}/v1/things", status_code=401)
    with pytest.raises(CronofyAPIError, match="rejected the API key"):
        make_hook().request("GET", "/v1/things")
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "FETCH"}, "method must be one of GET, POST, PUT, PATCH, DELETE, got 'FETCH'"),
        ({"method": None}, "method must be one of"),
        ({"path": "v1/userinfo"}, "must start with '/'"),
        ({"path": "https://evil.example.com/v1"}, "must start with '/'"),
        ({"path": "/v1/user info"}, "no spaces"),
        ({"path": "/v1/x\n"}, "control characters"),
        ({"path": "/v1/../oauth/token"}, "'..' segments"),
        ({"path": "/v1/%2e%2e/oauth"}, "'..' segments"),
        ({"path": "/v1/x#frag"}, "fragment"),
        ({"path": 7}, "path must be a string, got int"),
        ({"auth": "password"}, "auth must be one of api_key, access_token, got 'password'"),
        ({"json": {"when": object()}}, "json is not JSON-serialisable"),
        ({"json": float("nan")}, "json is not JSON-serialisable"),
    ],
)
def test_request_bad_arguments_send_nothing(set_connection, requests_mock, kwargs, message):
    set_connection(access_token=ACCESS_TOKEN)
    args = {"method": "GET", "path": "/v1/userinfo", **kwargs}
    method, path = args.pop("method"), args.pop("path")
    with pytest.raises(CronofyInputError) as info:
        make_hook().request(method, path, **args)
    assert message in str(info.value)
    assert requests_mock.call_count == 0


def test_request_missing_credential_sends_nothing(set_connection, requests_mock):
    set_connection()
    with pytest.raises(CronofyConfigError, match="access_token"):
        make_hook().request("GET", "/v1/userinfo", auth="access_token")
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- fail fast: what Airflow retries


@pytest.mark.parametrize(
    ("status", "fails_fast"),
    [(401, True), (402, True), (403, True), (423, True), (422, False), (400, False), (409, False)],
)
def test_errors_a_retry_cannot_fix_skip_airflow_retries(set_connection, requests_mock, status, fails_fast):
    from airflow_provider_cronofy._compat import AirflowException, AirflowFailException
    from airflow_provider_cronofy.exceptions import CronofyFatalAPIError

    set_connection()
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=status)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert isinstance(info.value, AirflowException)
    assert isinstance(info.value, AirflowFailException) is fails_fast
    assert isinstance(info.value, CronofyFatalAPIError) is fails_fast
    assert info.value.fatal is fails_fast


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_keep_airflow_retries(set_connection, requests_mock, no_sleep, status):
    from airflow_provider_cronofy._compat import AirflowFailException

    set_connection(max_retries=1)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=status)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert not isinstance(info.value, AirflowFailException)
    assert not info.value.fatal


def test_transport_failure_keeps_airflow_retries(set_connection, requests_mock, no_sleep):
    from airflow_provider_cronofy._compat import AirflowFailException

    set_connection(max_retries=1)
    requests_mock.delete(f"{US}/v1/meeting_agents", exc=requests.ConnectTimeout)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert not isinstance(info.value, AirflowFailException)


def test_unknown_calendar_and_refused_refresh_fail_fast(set_connection, requests_mock):
    from airflow_provider_cronofy._compat import AirflowFailException

    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(f"{US}/v1/calendars/cal_x/events", status_code=404)
    with pytest.raises(CronofyAPIError) as info:
        make_hook().delete_event("cal_x", "e1")
    assert isinstance(info.value, AirflowFailException)

    refreshable(set_connection)
    requests_mock.post(f"{US}/oauth/token", status_code=400, json={"error": "invalid_grant"})
    with pytest.raises(CronofyAPIError) as info:
        make_hook().delete_event("cal_x", "e1")
    assert isinstance(info.value, AirflowFailException)


@pytest.mark.parametrize(
    "conn",
    [{"password": None}, {"data_center": "mars"}, {"timeout": "soon"}, {"max_concurrency": 0}],
)
def test_missing_credential_or_bad_setting_fails_fast(set_connection, requests_mock, conn):
    from airflow_provider_cronofy._compat import AirflowFailException

    set_connection(**conn)
    with pytest.raises(CronofyConfigError) as info:
        make_hook().cancel_scheduled_meeting_agent("k")
    assert isinstance(info.value, AirflowFailException)
    assert requests_mock.call_count == 0
