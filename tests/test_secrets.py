"""No API key, access token or refresh token in a log line, exception, traceback or XCom.

Every scenario runs with every logger at DEBUG (urllib3 and requests included); what the task
printed, what it logged, the exceptions with their tracebacks and the return values are searched
for each secret, including tokens obtained at run time.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from tests.conftest import ACCESS_TOKEN, API_KEY, CLIENT_ID, REFRESH_TOKEN, FakeTI

US = "https://api.cronofy.com"
FRESH_ACCESS = "fresh-access-token-9911"
ROTATED_REFRESH = "rotated-refresh-token-4422"
ALL_SECRETS = (API_KEY, ACCESS_TOKEN, REFRESH_TOKEN, FRESH_ACCESS, ROTATED_REFRESH)


def echo_secrets(request, context):
    """A misbehaving server that echoes the Authorization header and body into its error."""
    context.status_code = 422
    return json.dumps(
        {
            "errors": {
                "echo": [
                    {
                        "key": "x",
                        "description": request.headers.get("Authorization", "")
                        + " "
                        + (request.body or b"").decode()
                        if isinstance(request.body, bytes)
                        else str(request.body),
                    }
                ]
            }
        }
    )


@pytest.fixture
def transcript(caplog, capsys):
    """Everything the scenario leaves behind, as one text to search."""
    found: list[str] = []
    caplog.set_level(logging.DEBUG)
    for name in ("", "urllib3", "requests", "airflow", "airflow_provider_cronofy", "airflow.task"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    def run(fn):
        try:
            found.append(repr(fn()))
        except Exception as error:  # the scenarios are expected to fail in many ways
            found.append("".join(traceback.format_exception(error)))
            found.append(repr(getattr(error, "__dict__", {})))

    yield run
    captured = capsys.readouterr()
    text = "\n".join([*found, caplog.text, captured.out, captured.err])
    for secret in ALL_SECRETS:
        assert secret not in text, f"a secret leaked: ...{secret[-4:]}"
    assert text.strip(), "the scenarios left nothing to search"


def scheduled(keys):
    return CancelScheduledMeetingAgentOperator(task_id="s", scheduling_key=keys)


def integrated(ids, **kw):
    return CancelIntegratedMeetingAgentOperator(task_id="i", calendar_id="cal_1", event_id=ids, **kw)


def test_no_secret_leaks_from_any_path(set_connection, requests_mock, transcript, no_sleep):
    set_connection(access_token=ACCESS_TOKEN, client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    requests_mock.post(
        f"{US}/oauth/token",
        json={"access_token": FRESH_ACCESS, "refresh_token": ROTATED_REFRESH, "expires_in": 3600},
    )
    requests_mock.delete(f"{US}/v1/meeting_agents", text=echo_secrets)
    calls = {"n": 0}

    def events(request, context):
        calls["n"] += 1
        context.status_code = 401 if calls["n"] in (1, 3, 4) else 202
        return ""

    requests_mock.post(f"{US}/v1/calendars/cal_1/events", text=events)
    requests_mock.delete(f"{US}/v1/calendars/cal_1/events", status_code=503)
    requests_mock.get(f"{US}/v1/userinfo", text=echo_secrets)

    transcript(lambda: scheduled(["k1", "k2"]).execute({}))  # server echoes secrets
    transcript(lambda: integrated(["e1", "e2", "e3"]).execute({}))  # refresh, rotation, 401
    transcript(lambda: integrated(["e1"], delete_event=True).execute({}))  # retries exhausted
    transcript(lambda: CronofyHook().test_connection())
    transcript(lambda: CronofyHook().refresh_access_token())


def test_scheduling_leaks_no_secret_whatever_cronofy_answers(
    set_connection, requests_mock, transcript, no_sleep
):
    from airflow_provider_cronofy.operators.meeting_agents import ScheduleMeetingAgentOperator

    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    answers = iter([422, 503, 503, 503, 503, 503, 503, 401])

    def post(request, context):
        context.status_code = next(answers, 202)
        return echo_secrets(request, context)

    requests_mock.post(f"{US}/v1/meeting_agents", text=post)
    agents = [
        {
            "scheduling_key": f"k{i}",
            "join_url": f"https://meet.example.com/{i}",
            "join_time": "2031-01-01T10:00:00Z",
        }
        for i in range(3)
    ]
    ti = FakeTI()
    op = ScheduleMeetingAgentOperator(task_id="schedule", agents=agents, max_concurrency=1)
    transcript(lambda: op.execute({"ti": ti}))  # a 422 echoing secrets, a lost answer, a 401
    transcript(lambda: ti.pushed)
    transcript(
        lambda: CronofyHook().schedule_meeting_agent(
            "k9", "https://meet.example.com/9", "2031-01-01T10:00:00Z"
        )
    )


def test_no_secret_in_config_errors(set_connection, requests_mock, transcript):
    set_connection(host=f"https://user:{API_KEY}@example.com", access_token=ACCESS_TOKEN)
    transcript(lambda: scheduled("k").execute({}))
    set_connection(data_center=API_KEY)
    transcript(lambda: scheduled("k").execute({}))
    assert requests_mock.call_count == 0


def test_rendered_template_fields_hold_no_secret(set_connection):
    op = scheduled(["a"])
    for field in op.template_fields:
        assert all(secret not in repr(getattr(op, field)) for secret in ALL_SECRETS)


def test_refreshed_tokens_are_registered_with_the_masker(set_connection, requests_mock, monkeypatch):
    import airflow_provider_cronofy.hooks.connection as hook_module
    import airflow_provider_cronofy.hooks.tokens as tokens_module

    masked: list[str] = []
    monkeypatch.setattr(hook_module, "mask_secret", masked.append)  # the connection's secrets
    monkeypatch.setattr(tokens_module, "mask_secret", masked.append)  # refreshed tokens
    set_connection(client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    requests_mock.post(
        f"{US}/oauth/token", json={"access_token": FRESH_ACCESS, "refresh_token": ROTATED_REFRESH}
    )
    CronofyHook().refresh_access_token()
    assert {API_KEY, REFRESH_TOKEN, FRESH_ACCESS, ROTATED_REFRESH} <= set(masked)


def test_an_error_of_a_single_call_holds_no_secret_in_its_detail(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN)
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=422, text=echo_secrets)
    requests_mock.post(f"{US}/v1/calendars/cal_1/events", status_code=404, text=echo_secrets)
    for call in (
        lambda hook: hook.cancel_scheduled_meeting_agent("k1"),
        lambda hook: hook.remove_meeting_agent_from_event("cal_1", "e1"),
        lambda hook: hook.request("DELETE", "/v1/meeting_agents", json={"scheduling_key": "k1"}),
    ):
        with pytest.raises(CronofyAPIError) as info:
            call(CronofyHook())
        shown = repr(info.value.__dict__) + str(info.value)
        assert API_KEY not in shown and ACCESS_TOKEN not in shown and "***" in shown
