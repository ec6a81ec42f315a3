"""Scheduling agents, cancel then schedule (hooks/meeting_agents.py), over requests-mock: the pair's
requests, what a spent retry says about the agent's state, and the hook's one-agent method."""

from __future__ import annotations

import threading

import pytest
import requests

from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyFatalAPIError, CronofyInputError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.meeting_agents import PairRetry, may_have_left
from airflow_provider_cronofy.hooks.transport import NotSent, RetryLater
from tests.conftest import API_KEY

US = "https://api.cronofy.com"
AGENT = {
    "scheduling_key": "k1",
    "join_url": "https://meet.example.com/k1",
    "join_time": "2031-01-01T10:00:00Z",
}


@pytest.fixture
def hook(set_connection, no_sleep):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=2)
    with CronofyHook() as hook:
        yield hook


def methods(requests_mock) -> list[str]:
    return [request.method for request in requests_mock.request_history]


def test_the_key_is_cancelled_then_the_agent_scheduled_with_the_api_key(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=404)
    requests_mock.post(f"{US}/v1/meeting_agents", status_code=202)
    job = hook.agent_scheduling_job()
    assert job([AGENT], threading.Event()) == ["scheduled"]
    delete, post = requests_mock.request_history
    assert (delete.method, delete.json()) == ("DELETE", {"scheduling_key": "k1"})
    assert (post.method, post.json()) == ("POST", AGENT)
    assert {r.headers["Authorization"] for r in requests_mock.request_history} == {f"Bearer {API_KEY}"}


def test_a_lost_answer_is_retried_as_the_pair_and_a_spent_one_says_the_state_is_unknown(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    requests_mock.post(f"{US}/v1/meeting_agents", status_code=503)
    with pytest.raises(CronofyAPIError) as info:
        hook.schedule_meeting_agent("k1", "https://meet.example.com/k1", "2031-01-01T10:00:00Z")
    assert methods(requests_mock) == ["DELETE", "POST"] * 3
    assert info.value.status_code == 503 and info.value.item == "k1"
    assert "may or may not have created the agent" in str(info.value)
    assert hook.retries_spent == 2


def test_a_spent_429_says_no_agent_was_created(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    requests_mock.post(f"{US}/v1/meeting_agents", status_code=429)
    with pytest.raises(CronofyAPIError) as info:
        hook.schedule_meeting_agent("k1", "https://meet.example.com/k1", "2031-01-01T10:00:00Z")
    assert "may or may not" not in str(info.value) and "gave up after 3 attempt(s)" in str(info.value)


def test_a_cancel_failing_on_the_first_attempt_never_scheduled_anything(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=503)
    requests_mock.post(f"{US}/v1/meeting_agents", status_code=202)
    job = hook.agent_scheduling_job()
    (retry,) = job([AGENT], threading.Event())
    assert isinstance(retry, PairRetry) and methods(requests_mock) == ["DELETE"]
    assert "may or may not" not in str(retry.give_up(1))
    # After an earlier attempt (whose POST may have acted), the same failure leaves it unknown.
    assert "may or may not" in str(retry.give_up(2))


def test_a_fatal_answer_to_the_cancel_sends_no_post(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=401)
    requests_mock.post(f"{US}/v1/meeting_agents", status_code=202)
    (result,) = hook.agent_scheduling_job()([AGENT], threading.Event())
    assert isinstance(result, CronofyFatalAPIError) and methods(requests_mock) == ["DELETE"]


def test_a_refused_agent_fails_with_cronofys_reason(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)
    requests_mock.post(
        f"{US}/v1/meeting_agents",
        status_code=422,
        json={"errors": {"join_url": [{"key": "errors.invalid", "description": "is not a meeting"}]}},
    )
    (result,) = hook.agent_scheduling_job()([AGENT], threading.Event())
    assert isinstance(result, CronofyAPIError) and result.status_code == 422
    assert "is not a meeting" in str(result)


def test_a_stop_between_the_cancel_and_the_schedule_fails_the_key_saying_so(hook, requests_mock):
    stop = threading.Event()

    def cancelled(request, context):
        stop.set()  # the run stops while the DELETE is on its way
        context.status_code = 202
        return ""

    requests_mock.delete(f"{US}/v1/meeting_agents", text=cancelled)
    requests_mock.post(f"{US}/v1/meeting_agents", status_code=202)
    (result,) = hook.agent_scheduling_job()([AGENT], stop)
    assert isinstance(result, CronofyAPIError) and not isinstance(result, NotSent)
    assert "its key was cancelled" in str(result) and methods(requests_mock) == ["DELETE"]


def test_a_stopped_run_sends_nothing(hook, requests_mock):
    stop = threading.Event()
    stop.set()
    (result,) = hook.agent_scheduling_job()([AGENT], stop)
    assert isinstance(result, NotSent) and requests_mock.request_history == []


def test_bad_input_to_the_one_agent_method_sends_nothing(hook, requests_mock):
    with pytest.raises(CronofyInputError, match=r"join_url"):
        hook.schedule_meeting_agent("k1", "http://meet.example.com/k1", "2031-01-01T10:00:00Z")
    with pytest.raises(CronofyInputError, match=r"join_time"):
        hook.schedule_meeting_agent("k1", "https://meet.example.com/k1", "2001-01-01T10:00:00Z")
    assert requests_mock.request_history == []


@pytest.mark.parametrize(
    ("error", "left"),
    [
        (requests.ConnectionError(ConnectionRefusedError(111, "refused")), False),
        (requests.exceptions.ConnectTimeout("connect timed out"), False),
        (requests.exceptions.ReadTimeout("read timed out"), True),
        (requests.ConnectionError(ConnectionResetError(104, "reset")), True),
    ],
)
def test_may_have_left_tells_a_request_that_never_reached_cronofy(error, left):
    assert may_have_left(error) is left


def test_a_spent_pair_retry_of_a_connect_failure_is_not_unknown(hook):
    retry = RetryLater(
        None, requests.exceptions.ConnectTimeout("connect timed out"), what="POST /v1/meeting_agents"
    )
    retry.item = "k1"
    pair = PairRetry.of(retry, hook.sender("api_key"), scheduling=True)
    assert "may or may not" not in str(pair.give_up(3))
    lost = RetryLater(None, requests.exceptions.ReadTimeout("read timed out"), what="POST /v1/meeting_agents")
    lost.item = "k1"
    assert "may or may not" in str(PairRetry.of(lost, hook.sender("api_key"), scheduling=True).give_up(3))


def test_schedule_agents_runs_a_list_and_returns_each_outcome_by_position(hook, requests_mock):
    requests_mock.delete(f"{US}/v1/meeting_agents", status_code=202)

    def post(request, context):
        context.status_code = 422 if request.json()["scheduling_key"] == "k2" else 202
        return ""

    requests_mock.post(f"{US}/v1/meeting_agents", text=post)
    agents = [{**AGENT, "scheduling_key": key} for key in ("k1", "k2", "k3")]
    result = hook.schedule_agents(agents)
    assert result.outcomes == ["scheduled", None, "scheduled"]
    assert list(result.failures) == [1] and result.failures[1].status_code == 422
    assert result.not_attempted == [] and not result.stopped
