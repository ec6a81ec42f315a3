"""CronofyEmulator itself: lifecycle, settings, the pytest fixtures and the Airflow connection."""

from __future__ import annotations

import http.client
import json
import re

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator, running_emulator
from tests.conftest import SteppedClock
from tests.emulator._support import TIMEOUT, bearer

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


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


def test_clock_times_arrivals_and_token_lifetimes(cronofy_emulator_factory, session):
    clock = SteppedClock()
    emulator = cronofy_emulator_factory(access_token_lifetime=600, clock=clock)
    emulator.add_refresh_token("rt_clock")
    form = {
        "client_id": emulator.client_id,
        "client_secret": emulator.api_key,
        "grant_type": "refresh_token",
        "refresh_token": "rt_clock",
    }
    token = session.post(f"{emulator.url}/oauth/token", data=form, timeout=TIMEOUT).json()["access_token"]
    userinfo = f"{emulator.url}/v1/userinfo"
    clock.skip(599.0)
    assert session.get(userinfo, headers=bearer(token), timeout=TIMEOUT).status_code == 200
    clock.skip(2.0)  # past the 600 s lifetime on the emulator's clock: the token stopped working
    assert session.get(userinfo, headers=bearer(token), timeout=TIMEOUT).status_code == 401
    first, before, after = (r.time for r in emulator.requests)
    assert 599.0 <= before - first < 600.0 < after - first


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


@pytest.mark.parametrize("mode", ["replica", "", None, "REPLACE"])
def test_an_unknown_repeated_scheduling_key_mode_is_refused_naming_the_modes(mode):
    expected = "repeated_scheduling_key must be one of 'replace', 'duplicate', 'refuse', got " + re.escape(
        repr(mode)
    )
    with pytest.raises(ValueError, match=expected):
        CronofyEmulator(repeated_scheduling_key=mode)
    emulator = CronofyEmulator(repeated_scheduling_key="refuse")
    with pytest.raises(ValueError, match=expected):
        emulator.repeated_scheduling_key = mode
    assert emulator.repeated_scheduling_key == "refuse"


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
