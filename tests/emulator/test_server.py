"""The HTTP server: keep-alive connections, request bodies, what is recorded and the counters."""

from __future__ import annotations

import http.client
import json

import requests

from airflow_provider_cronofy.testing import RecordedRequest
from tests.emulator._support import TIMEOUT, TOKEN, api_key, bearer, cancel

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_session_reuses_one_keep_alive_connection(emu, session):
    emu.schedule_agent("k1")
    emu.schedule_agent("k2")
    assert cancel(session, emu, "k1").status_code == 202
    assert cancel(session, emu, "k2").status_code == 202
    assert emu.connections_opened == 1
    assert {r.connection_id for r in emu.requests} == {1}


def test_separate_requests_open_separate_connections(emu):
    emu.schedule_agent("k1")
    for _ in range(2):
        response = cancel(requests, emu, "k1")
        assert response.status_code == 202
    assert emu.connections_opened == 2
    assert [r.connection_id for r in emu.requests] == [1, 2]


def test_chunked_request_body_is_read(emu):
    emu.schedule_agent("k1")
    conn = http.client.HTTPConnection("127.0.0.1", int(emu.url.rsplit(":", 1)[1]), timeout=TIMEOUT)
    conn.request(
        "DELETE",
        "/v1/meeting_agents",
        body=iter([b'{"scheduling_key"', b': "k1"}']),
        headers={**api_key(emu), "Content-Type": "application/json"},
        encode_chunked=True,
    )
    assert conn.getresponse().status == 202
    conn.close()
    assert emu.scheduled_agents["k1"]["status"] == "cancelled"


def test_requests_are_recorded(emu, session):
    emu.schedule_agent("k1")
    cancel(session, emu, "k1")
    session.get(f"{emu.url}/v1/userinfo?x=%20y", headers=bearer(TOKEN), timeout=TIMEOUT)
    recorded = emu.requests
    assert len(recorded) == 2
    first, second = recorded
    assert isinstance(first, RecordedRequest)
    assert first.method == "DELETE"
    assert first.path == "/v1/meeting_agents"
    assert first.headers["authorization"] == f"Bearer {emu.api_key}"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == {"scheduling_key": "k1"}
    assert first.json == {"scheduling_key": "k1"}
    assert first.status == 202
    assert second.path == "/v1/userinfo?x=%20y"
    assert second.json is None
    assert second.status == 200
    assert first.time <= second.time
    emu.reset_requests()
    assert emu.requests == []


def test_counters(cronofy_emulator_factory, session):
    emu = cronofy_emulator_factory(rate_limit_per_second=None, rate_limit_per_minute=2)
    emu.fail_next(1, 503)
    codes = [cancel(session, emu, "key").status_code for _ in range(4)]
    assert codes == [503, 202, 202, 429]
    emu.reset_requests()
    assert emu.requests == []
    assert emu.requests_received == 4
    assert emu.status_counts == {503: 1, 202: 2, 429: 1}
    assert emu.fault_counts["rate_limited"] == 1
    assert emu.max_in_flight == 1
    assert emu.in_flight == 0
