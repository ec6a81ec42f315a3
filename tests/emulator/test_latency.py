"""The emulator's latency and concurrency: answers come late, and concurrent requests overlap."""

from __future__ import annotations

import http.client
import itertools
import json
import threading

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator
from tests.emulator._support import TIMEOUT, api_key, cancel

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_fixed_latency_delays_the_answer_not_the_state_change(cronofy_emulator_factory, session):
    emu = cronofy_emulator_factory(latency=30.0)
    emu.schedule_agent("key-1")
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.delete(
            f"{emu.url}/v1/meeting_agents",
            json={"scheduling_key": "key-1"},
            headers=api_key(emu),
            timeout=0.5,
        )
    # Cronofy handled the request on arrival; only the answer is late.
    assert emu.scheduled_agents["key-1"]["status"] == "cancelled"
    emu.latency = 0
    assert cancel(session, emu, "key-2").status_code == 202


def test_latency_callable_is_drawn_once_per_answer_faults_included(cronofy_emulator_factory, session):
    draws: list[float] = []

    def draw() -> float:
        draws.append(0.0)
        return 0.0

    emu = cronofy_emulator_factory(latency=draw)
    emu.fail_next(1, 503)
    assert cancel(session, emu, "key-1").status_code == 503
    assert cancel(session, emu, "key-1").status_code == 202
    assert session.get(f"{emu.url}/nowhere", timeout=TIMEOUT).status_code == 404
    assert len(draws) == 3
    assert emu.latency is draw


def test_a_request_waiting_out_its_latency_holds_up_no_other(cronofy_emulator_factory):
    # The first request draws a long latency, every later one none: the second is answered while
    # the first is still in flight, so the wait holds no lock and no serving thread of another.
    emu = cronofy_emulator_factory(latency=itertools.chain([30.0], itertools.repeat(0.0)).__next__)
    errors: list[BaseException] = []

    def slow_client() -> None:
        try:
            requests.get(f"{emu.url}/v1/first", timeout=60)
        except requests.exceptions.ConnectionError as exc:  # stop() cuts the wait short
            errors.append(exc)

    thread = threading.Thread(target=slow_client)
    thread.start()
    try:
        while emu.requests_received < 1:
            threading.Event().wait(0.01)
        with requests.Session() as session:
            assert session.get(f"{emu.url}/v1/second", timeout=TIMEOUT).status_code == 404
        assert emu.in_flight == 1
        assert [r.status for r in emu.requests] == [None, 404]
    finally:
        emu.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(errors) == 1


def test_fifty_keep_alive_clients_with_300ms_latency_are_served_in_parallel(cronofy_emulator_factory):
    clients = 50
    # Every request waits in its latency until all fifty are in flight at once: served one at a
    # time (or with a listen backlog that drops a burst of connections) the barrier breaks and
    # the requests answer 500 instead.
    barrier = threading.Barrier(clients)

    def latency() -> float:
        barrier.wait(timeout=20)
        return 0.3

    emu = cronofy_emulator_factory(latency=latency, rate_limit_per_second=None, rate_limit_per_minute=None)
    port = int(emu.url.rsplit(":", 1)[1])
    results: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for round_ in range(2):
                body = json.dumps({"scheduling_key": f"key-{number}-{round_}"})
                headers = {**api_key(emu), "Content-Type": "application/json"}
                connection.request("DELETE", "/v1/meeting_agents", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                with lock:
                    results.append(response.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [202] * (2 * clients)
    assert emu.max_in_flight == clients
    assert emu.in_flight == 0
    # Keep-alive: each client's two requests travelled on its one connection.
    assert emu.connections_opened == clients
    by_connection = [r.connection_id for r in emu.requests]
    assert sorted(by_connection.count(c) for c in set(by_connection)) == [2] * clients


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "0.1", True, None])
def test_bad_latency_settings_are_refused(value):
    with pytest.raises(ValueError, match="latency must be a finite number of seconds >= 0"):
        CronofyEmulator(latency=value)
    emulator = CronofyEmulator()
    with pytest.raises(ValueError, match="latency"):
        emulator.latency = value
    assert emulator.latency == 0.0


def test_a_bad_latency_draw_answers_500(cronofy_emulator_factory, session, capsys):
    emu = cronofy_emulator_factory(latency=lambda: -1.0)
    response = cancel(session, emu, "key")
    assert response.status_code == 500
    assert response.json()["errors"]["base"][0]["key"] == "errors.internal"
    assert "latency must be a finite number of seconds >= 0, got -1.0" in capsys.readouterr().err
