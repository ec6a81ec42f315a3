"""Scripted and random faults: fail, delay and drop."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_cronofy.testing import running_emulator
from tests.emulator._support import TIMEOUT, TOKEN, api_key, bearer, cancel, upsert

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


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
        cancel(session, emu, "k1", timeout=(TIMEOUT, 0.2))
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


# ---------------------------------------------------------------- answers lost after Cronofy acted

SCHEDULE = {
    "scheduling_key": "k1",
    "join_url": "https://meet.example.com/x",
    "join_time": "2030-05-01T09:00:00Z",
}


def _schedule(client, emu, timeout=TIMEOUT):
    return client.post(f"{emu.url}/v1/meeting_agents", json=SCHEDULE, headers=api_key(emu), timeout=timeout)


def test_a_fault_before_acting_records_no_handled_status(emu, session):
    emu.fail_next(1, 503, path="/v1/meeting_agents")
    assert _schedule(session, emu).status_code == 503
    assert emu.live_agents("k1") == 0
    assert (emu.requests[-1].status, emu.requests[-1].handled_status) == (503, None)


def test_fail_next_after_acting_schedules_then_answers_503(emu, session):
    emu.fail_next(1, 503, method="POST", path="/v1/meeting_agents", after_acting=True)
    response = _schedule(session, emu)
    assert response.status_code == 503
    assert "errors" in response.json()
    assert emu.live_agents("k1") == 1
    record = emu.requests[-1]
    assert (record.status, record.handled_status) == (503, 202)
    assert emu.fault_counts["503"] == 1
    assert emu.status_counts.get(202, 0) == 0  # the client never saw the 202


@pytest.mark.parametrize(
    ("mode", "retry_status", "live"), [("replace", 202, 1), ("duplicate", 202, 2), ("refuse", 422, 1)]
)
def test_a_blind_retry_after_a_lost_answer_meets_the_repeated_key_mode(
    cronofy_emulator_factory, session, mode, retry_status, live
):
    emulator = cronofy_emulator_factory(repeated_scheduling_key=mode)
    emulator.fail_next(1, 503, path="/v1/meeting_agents", after_acting=True)
    assert _schedule(session, emulator).status_code == 503
    assert _schedule(session, emulator).status_code == retry_status
    assert emulator.live_agents("k1") == live


def test_fail_next_after_acting_on_a_rate_limited_request_acts_on_nothing(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(
        rate_limit_per_second=1, rate_limit_per_minute=None, clock=lambda: 100.0
    )
    emulator.schedule_agent("seeded")
    assert cancel(session, emulator, "seeded").status_code == 202  # the second's only request
    emulator.fail_next(1, 503, after_acting=True)
    assert _schedule(session, emulator).status_code == 503
    assert emulator.requests[-1].handled_status == 429
    assert emulator.live_agents("k1") == 0


def test_drop_next_after_acting_schedules_then_closes_without_an_answer(emu, session):
    emu.drop_next(1, method="POST", after_acting=True)
    with pytest.raises(requests.ConnectionError):
        _schedule(session, emu)
    assert emu.live_agents("k1") == 1
    record = emu.requests[-1]
    assert (record.status, record.handled_status) == (None, 202)
    assert emu.fault_counts["drop"] == 1


def test_drop_next_after_acting_a_cancel_cancels(emu, session):
    emu.schedule_agent("k1")
    emu.drop_next(1, after_acting=True)
    with pytest.raises(requests.ConnectionError):
        cancel(session, emu, "k1")
    assert emu.scheduled_agents["k1"]["status"] == "cancelled"


def test_delay_next_after_acting_leaves_the_agent_created_when_the_client_times_out(emu, session):
    # The delay is never waited out: the client gives up after 0.1 s and stop() cuts the rest short.
    emu.delay_next(1, 30, path="/v1/meeting_agents", after_acting=True)
    with pytest.raises(requests.Timeout):
        _schedule(session, emu, timeout=(TIMEOUT, 0.1))
    # Handled on arrival; polled rather than assumed, for a machine too busy to serve in 0.1 s.
    deadline = time.monotonic() + TIMEOUT
    while emu.requests[-1].handled_status is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.live_agents("k1") == 1
    assert emu.requests[-1].handled_status == 202
    assert emu.requests[-1].status is None  # the answer has not left: it waits out the delay
    assert emu.fault_counts["delay"] == 1


def test_delay_next_by_default_acts_only_after_the_delay(emu, session):
    emu.delay_next(1, 30, path="/v1/meeting_agents")
    with pytest.raises(requests.Timeout):
        _schedule(session, emu, timeout=(TIMEOUT, 0.1))
    # Still sleeping: Cronofy has not acted when the client gives up (stop() ends the sleep
    # without handling it).
    assert emu.live_agents("k1") == 0
    assert emu.requests[-1].handled_status is None


def test_delay_next_after_acting_then_answers_the_real_answer(emu, session):
    emu.delay_next(1, 0.05, after_acting=True)
    assert _schedule(session, emu).status_code == 202
    assert (emu.requests[-1].status, emu.requests[-1].handled_status) == (202, 202)
