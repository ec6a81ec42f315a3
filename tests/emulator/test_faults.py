"""Scripted and random faults: fail, delay and drop."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_cronofy.testing import running_emulator
from tests.emulator._support import TIMEOUT, TOKEN, bearer, cancel, upsert

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
