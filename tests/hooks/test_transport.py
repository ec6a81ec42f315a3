"""The transport: the retry policy as a value, a stopped run's stop event refusing a send, and what
a connection failure is said to be (a refused loopback port fails at once)."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyFatalAPIError, CronofyFatalBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.pacing import RequestPacer
from airflow_provider_cronofy.hooks.runner import BulkRun, Report, RunSettings
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.transport import (
    NotSent,
    Reply,
    Request,
    RetryLater,
    RetryPolicy,
    Transport,
    open_session,
)
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from tests.hooks.test_connection_errors import closed_port

BASE = "https://api.cronofy.com"


def transport(pacer: RequestPacer | None = None) -> Transport:
    settings = CronofySettings(BASE, "us", (1.0, 1.0), 2, 0, 0)
    policy = RetryPolicy(max_retries=2, backoff=0.5, backoff_max=1.5, sleep=lambda seconds: None)
    return Transport(settings, pacer or RequestPacer([]), policy, open_session(BASE, 2))


def test_retry_policy_honours_retry_after_then_backs_off_with_a_cap():
    policy = RetryPolicy(max_retries=5, backoff=0.5, backoff_max=1.5)
    told = RetryLater(Reply(429, {"Retry-After": "7"}, b""))
    assert policy.delay(1, told) == 7.0
    untold = RetryLater(Reply(503, {}, b""))
    assert 0.25 <= policy.delay(1, untold) <= 0.5
    assert 0.75 <= policy.delay(5, untold) <= 1.5  # 0.5 x 2^4 capped at 1.5, full jitter


def test_one_retry_rule_bounds_single_calls_and_bulk_runs_alike():
    policy = RetryPolicy(max_retries=2, backoff=0.001, backoff_max=0.002, sleep=lambda seconds: None)
    assert [policy.may_retry(n) for n in (1, 2, 3)] == [True, True, False]
    busy = Reply(503, {}, b"")

    single_attempts: list[int] = []

    def single() -> Reply:
        single_attempts.append(1)
        raise RetryLater(busy, what="DELETE /v1/meeting_agents for 'k'")

    last = transport().with_retries(single)
    assert (last.status, last.attempts, len(single_attempts)) == (503, 3, 3)

    bulk_attempts: list[list[str]] = []

    def always_busy(items: list[str], stop: threading.Event) -> list[object]:
        bulk_attempts.append(items)
        return [RetryLater(busy, what="DELETE /v1/meeting_agents for 'k'")]

    now = [0.0]  # the run sits out its back-offs on this clock: no real wait

    def sleep(seconds: float) -> None:
        now[0] += seconds

    settings = RunSettings(max_concurrency=1, policy=policy, clock=lambda: now[0], sleep=sleep)
    run = BulkRun(["k"], always_busy, settings, Report(logging.getLogger(__name__), "key"))
    result = run.run()
    assert bulk_attempts == [["k"]] * 3  # the same budget: three attempts, then given up
    (failure,) = result.failures.values()
    assert (failure.item, failure.status_code) == ("k", 503)
    assert "gave up after 3 attempt(s)" in failure.reason
    assert (result.outcomes, result.not_attempted, run.retries) == ([None], [], 2)


def test_a_stopped_run_refuses_the_send_and_nothing_reaches_the_wire(requests_mock):
    requests_mock.delete(f"{BASE}/v1/meeting_agents", status_code=202)
    stop = threading.Event()
    stop.set()
    sender = transport()
    with pytest.raises(NotSent):
        sender.exchange(Request("DELETE", "/v1/meeting_agents", {"scheduling_key": "k"}, "key"), stop=stop)
    assert requests_mock.call_count == 0
    assert sender.requests_sent == 0


def test_a_send_waiting_for_a_slot_is_refused_when_the_run_stops(requests_mock):
    requests_mock.delete(f"{BASE}/v1/meeting_agents", status_code=202)
    pacer = RequestPacer([(1, 3600.0)])  # one send an hour: the second waits
    sender = transport(pacer)
    stop = WatchedStop()
    request = Request("DELETE", "/v1/meeting_agents", {"scheduling_key": "k"}, "key")
    assert sender.exchange(request, stop=stop).status == 202
    outcome: list[BaseException] = []
    waiting = threading.Thread(target=lambda: _catch(outcome, lambda: sender.exchange(request, stop=stop)))
    waiting.start()
    assert stop.waited_on.wait(30), "the second send never waited for its slot"
    stop.set()
    waiting.join(30)
    assert not waiting.is_alive(), "the waiting send slept through the stop"
    assert [type(error) for error in outcome] == [NotSent]
    assert requests_mock.call_count == 1
    assert sender.requests_sent == 1


class WatchedStop(threading.Event):
    """A run's stop event that says when a thread starts waiting on it (the pacer's wait)."""

    def __init__(self) -> None:
        super().__init__()
        self.waited_on = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waited_on.set()
        return super().wait(timeout)


def _catch(into: list[BaseException], call) -> None:
    try:
        call()
    except BaseException as error:  # handed to the test
        into.append(error)


# ---------------------------------------------------------------- over real sockets, through the hook


def test_a_closed_loopback_port_fails_at_once_with_one_fatal_error(set_connection, no_sleep):
    port = closed_port()
    set_connection(host=f"http://127.0.0.1:{port}", rate_limit_per_second=0, rate_limit_per_minute=0)
    hook = CronofyHook()
    started = time.monotonic()
    with pytest.raises(CronofyFatalAPIError) as info:
        hook.cancel_scheduled_meeting_agent("k1")
    elapsed = time.monotonic() - started
    assert isinstance(info.value, AirflowFailException)  # Airflow spends no task retry on it either
    assert (hook.requests_sent, hook.retries_spent, no_sleep) == (1, 0, [])
    assert elapsed < 0.5, elapsed  # the default budget was 6 attempts and ~13 s of back-off
    message = str(info.value)
    assert message.startswith(f"Connection refused by 127.0.0.1:{port}: nothing listens there")
    assert "Is the Cronofy emulator" in message and "is the connection's host right?" in message
    assert info.value.item == "k1" and info.value.status_code is None


def test_a_refusal_by_another_host_keeps_the_retries(set_connection, no_sleep, monkeypatch):
    # cronofy.test resolves to a closed 127.0.0.1 port: a real refusal, by a host not written as loopback.
    port = closed_port()
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, *args, **kwargs: real_getaddrinfo("127.0.0.1", *args, **kwargs)
    )
    set_connection(
        host=f"https://cronofy.test:{port}", max_retries=2, rate_limit_per_second=0, rate_limit_per_minute=0
    )
    hook = CronofyHook()
    with pytest.raises(CronofyAPIError) as info:
        hook.cancel_scheduled_meeting_agent("k1")
    assert not isinstance(info.value, CronofyFatalAPIError)
    assert (hook.requests_sent, hook.retries_spent, len(no_sleep)) == (3, 2, 2)
    assert str(info.value) == (
        "DELETE /v1/meeting_agents for 'k1' failed after 3 attempt(s): connection failed (ConnectionError): "
        f"refused, nothing listens at cronofy.test:{port} (ConnectionRefusedError) (base URL "
        f"https://cronofy.test:{port}; timeouts 10 s to connect, 30 s to read). Is the server running "
        f"and listening at cronofy.test:{port} (Cronofy, a proxy, the emulator), and is the "
        "connection's host right?"
    )


@pytest.mark.parametrize("max_concurrency", [1, 8])
def test_a_bulk_run_stops_at_a_closed_loopback_port_and_reports_the_rest_not_attempted(
    set_connection, no_sleep, max_concurrency
):
    port = closed_port()
    set_connection(host=f"http://localhost:{port}", rate_limit_per_second=0, rate_limit_per_minute=0)
    keys = [f"k{number}" for number in range(1, 41)]
    operator = CancelScheduledMeetingAgentOperator(
        task_id="cancel", scheduling_key=keys, max_concurrency=max_concurrency
    )
    started = time.monotonic()
    with pytest.raises(CronofyFatalBulkError) as info:
        operator.execute({})
    elapsed = time.monotonic() - started
    error = info.value
    failed = [failure.item for failure in error.failures]
    assert elapsed < 1.0, elapsed
    assert no_sleep == []
    # Those in flight when the first refusal came failed with it; none was sent after it.
    assert sorted(failed + error.not_attempted, key=keys.index) == keys
    assert error.not_attempted == [key for key in keys if key not in failed]
    assert 1 <= len(failed) <= max_concurrency
    if max_concurrency == 1:
        assert failed == ["k1"]
    assert {failure.status_code for failure in error.failures} == {None}
    assert f"Connection refused by localhost:{port}: nothing listens there" in str(error)
    assert f"{len(error.not_attempted)} items were not attempted" in str(error)
