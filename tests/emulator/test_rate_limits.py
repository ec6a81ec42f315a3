"""Cronofy's rate limits: per second, per minute, and off."""

from __future__ import annotations

from tests.conftest import SteppedClock
from tests.emulator._support import TIMEOUT

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_rate_limit_per_second(cronofy_emulator_factory, session):
    clock = SteppedClock()
    emulator = cronofy_emulator_factory(rate_limit_per_second=5, rate_limit_per_minute=None, clock=clock)
    statuses = []
    headers = []
    for _ in range(8):
        response = session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT)
        statuses.append(response.status_code)
        headers.append(response.headers)
    assert statuses == [404] * 5 + [429] * 3
    assert all("Retry-After" not in h for h in headers)
    assert emulator.fault_counts["rate_limited"] == 3
    # 429s are not counted, so the window frees up once the admitted requests are a second old
    # (on the emulator's clock), and not before.
    clock.skip(0.9)
    assert session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code == 429
    clock.skip(0.15)
    assert session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code == 404


def test_rate_limit_per_minute(cronofy_emulator_factory, session):
    clock = SteppedClock()
    emulator = cronofy_emulator_factory(rate_limit_per_second=0, rate_limit_per_minute=3, clock=clock)
    statuses = [session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    assert [r.status for r in emulator.requests] == statuses
    # A minute later on the emulator's clock, the window has room again.
    clock.skip(60.0)
    assert session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code == 404


def test_rate_limit_off(cronofy_emulator_factory, session):
    emulator = cronofy_emulator_factory(rate_limit_per_second=None, rate_limit_per_minute=None)
    statuses = {session.get(f"{emulator.url}/v1/nothing", timeout=TIMEOUT).status_code for _ in range(60)}
    assert statuses == {404}
