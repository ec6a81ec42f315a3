"""The transport: the retry policy as a value, and a stopped run's gate refusing a send."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_cronofy.hooks.engine import NotSent, RunGate
from airflow_provider_cronofy.hooks.pacing import RequestPacer
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.transport import (
    Reply,
    Request,
    RetryLater,
    RetryPolicy,
    Transport,
    open_session,
)

BASE = "https://api.cronofy.com"


def transport(pacer: RequestPacer | None = None) -> Transport:
    settings = CronofySettings(BASE, "us", (1.0, 1.0), 2, 0, 0)
    policy = RetryPolicy(max_retries=2, backoff=0.5, backoff_max=1.5, sleep=lambda seconds, stop: None)
    return Transport(settings, pacer or RequestPacer([]), policy, open_session(BASE, 2))


def test_retry_policy_honours_retry_after_then_backs_off_with_a_cap():
    policy = RetryPolicy(max_retries=5, backoff=0.5, backoff_max=1.5)
    told = RetryLater(Reply(429, {"Retry-After": "7"}, b""))
    assert policy.delay(1, told) == 7.0
    untold = RetryLater(Reply(503, {}, b""))
    assert 0.25 <= policy.delay(1, untold) <= 0.5
    assert 0.75 <= policy.delay(5, untold) <= 1.5  # 0.5 x 2^4 capped at 1.5, full jitter


def test_one_retry_rule_bounds_single_calls_and_bulk_runs_alike(requests_mock):
    from airflow_provider_cronofy.hooks.engine import BulkEngine

    policy = RetryPolicy(max_retries=2, backoff=0.001, backoff_max=0.002, sleep=lambda seconds, stop: None)
    assert [policy.may_retry(n) for n in (1, 2, 3)] == [True, True, False]
    busy = Reply(503, {}, b"")

    single_attempts: list[int] = []

    def single() -> Reply:
        single_attempts.append(1)
        raise RetryLater(busy)

    request = Request("DELETE", "/v1/meeting_agents", None, None, "k")
    last = transport().with_retries(single, request)
    assert (last.status, last.attempts, len(single_attempts)) == (503, 3, 3)

    class AlwaysBusy:
        unit_size = 1
        attempts = 0

        def attempt(self, items, gate):
            gate.enter()  # as a send does: the attempt counts
            self.attempts += 1
            return [RetryLater(busy)]

        def settle(self, item, retry, attempts):
            return attempts

    job = AlwaysBusy()
    results: list[object] = []
    BulkEngine(job, max_concurrency=1, policy=policy).run(["k"], lambda i, item, r: results.append(r))
    assert (results, job.attempts) == ([3], 3)  # the same budget: three attempts, then settled


def test_a_closed_gate_refuses_the_send_and_nothing_reaches_the_wire(requests_mock):
    requests_mock.delete(f"{BASE}/v1/meeting_agents", status_code=202)
    gate = RunGate()
    unit = gate.unit()
    gate.close()
    with pytest.raises(NotSent):
        transport().exchange(
            Request("DELETE", "/v1/meeting_agents", {"scheduling_key": "k"}, "key"), gate=unit
        )
    assert requests_mock.call_count == 0
    assert unit.sent is False


def test_a_send_waiting_for_a_slot_is_refused_when_the_run_stops(requests_mock):
    requests_mock.delete(f"{BASE}/v1/meeting_agents", status_code=202)
    pacer = RequestPacer([(1, 3600.0)])  # one send an hour: the second waits
    sender = transport(pacer)
    gate = RunGate()
    request = Request("DELETE", "/v1/meeting_agents", {"scheduling_key": "k"}, "key")
    assert sender.exchange(request, gate=gate.unit()).status == 202
    outcome: list[BaseException] = []
    waiting = threading.Thread(
        target=lambda: _catch(outcome, lambda: sender.exchange(request, gate=gate.unit()))
    )
    waiting.start()
    gate.close()
    waiting.join(30)
    assert not waiting.is_alive(), "the waiting send slept through the stop"
    assert [type(error) for error in outcome] == [NotSent]
    assert requests_mock.call_count == 1


def _catch(into: list[BaseException], call) -> None:
    try:
        call()
    except BaseException as error:  # handed to the test
        into.append(error)
