"""HTTPS: the emulator with a server-side ``ssl_context``."""

from __future__ import annotations

import http.client
import socket
import ssl
import time

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator
from tests.emulator._support import TIMEOUT, bearer, cancel, port_of, server_context

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


@pytest.fixture
def tls_emu(cronofy_emulator_factory, tls_files) -> CronofyEmulator:
    return cronofy_emulator_factory(ssl_context=server_context(tls_files))


def test_https_url_and_connection(tls_emu):
    assert tls_emu.url == f"https://127.0.0.1:{port_of(tls_emu)}"
    assert tls_emu.airflow_connection()["host"] == tls_emu.url


def test_https_session_reuses_one_connection(tls_emu, tls_files):
    tls_emu.schedule_agent("k1")
    tls_emu.schedule_agent("k2")
    with requests.Session() as https:
        https.verify = tls_files.cert
        assert cancel(https, tls_emu, "k1").status_code == 202
        assert cancel(https, tls_emu, "k2").status_code == 202
    assert tls_emu.connections_opened == 1
    assert {r.connection_id for r in tls_emu.requests} == {1}
    assert tls_emu.scheduled_agents["k2"]["status"] == "cancelled"
    assert tls_emu.tls_handshake_failures == 0


def test_https_separate_requests_open_separate_connections(tls_emu, tls_files):
    tls_emu.schedule_agent("k1")
    for _ in range(2):
        response = cancel(requests, tls_emu, "k1", verify=tls_files.cert)
        assert response.status_code == 202
    assert tls_emu.connections_opened == 2
    assert [r.connection_id for r in tls_emu.requests] == [1, 2]


def test_https_failed_handshakes_are_counted_and_serving_goes_on(tls_emu, tls_files):
    with pytest.raises(requests.exceptions.SSLError):  # the client does not trust the certificate
        requests.get(f"{tls_emu.url}/v1/userinfo", timeout=TIMEOUT, verify=True)
    with pytest.raises(requests.ConnectionError):  # plain HTTP to the TLS port
        requests.get(tls_emu.url.replace("https://", "http://") + "/v1/userinfo", timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while tls_emu.tls_handshake_failures < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the server side of a handshake ends in its own thread
    assert tls_emu.tls_handshake_failures == 2
    response = requests.get(
        f"{tls_emu.url}/v1/userinfo", headers=bearer("nope"), timeout=TIMEOUT, verify=tls_files.cert
    )
    assert response.status_code == 401
    assert tls_emu.connections_opened == 1
    assert len(tls_emu.requests) == 1


def test_https_a_stalled_handshake_does_not_hold_up_other_connections(tls_emu, tls_files):
    # A client that connects and never says hello: its handshake waits in its own thread.
    with socket.create_connection(("127.0.0.1", port_of(tls_emu)), timeout=TIMEOUT):
        started = time.monotonic()
        response = requests.get(
            f"{tls_emu.url}/v1/userinfo", headers=bearer("nope"), timeout=TIMEOUT, verify=tls_files.cert
        )
        assert response.status_code == 401
        assert time.monotonic() - started < 2
    assert tls_emu.connections_opened == 1


def test_https_drop_and_delay(tls_emu, tls_files):
    tls_emu.schedule_agent("k1")
    with requests.Session() as https:
        https.verify = tls_files.cert
        tls_emu.drop_next(1)
        with pytest.raises(requests.ConnectionError):
            cancel(https, tls_emu, "k1")
        tls_emu.delay_next(1, 0.6)
        with pytest.raises(requests.Timeout):
            cancel(https, tls_emu, "k1", timeout=(TIMEOUT, 0.2))
        assert cancel(https, tls_emu, "k1").status_code == 202
    assert tls_emu.fault_counts["drop"] == 1
    assert tls_emu.fault_counts["delay"] == 1
    # The dropped and the timed-out connections are not reused.
    assert tls_emu.connections_opened == 3
    assert tls_emu.scheduled_agents["k1"]["status"] == "cancelled"


def test_https_stop_closes_idle_keep_alive_connections(tls_files):
    emulator = CronofyEmulator(ssl_context=server_context(tls_files)).start()
    context = ssl.create_default_context(cafile=tls_files.cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port_of(emulator), timeout=TIMEOUT, context=context)
    conn.request("GET", "/v1/userinfo")
    assert conn.getresponse().read()
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 2
    assert emulator.connections_opened == 1
    conn.sock.settimeout(2)
    assert conn.sock.recv(1) == b""  # EOF, not a timeout
    conn.close()


def test_ssl_context_must_be_a_server_context():
    with pytest.raises(ValueError, match="server-side"):
        CronofyEmulator(ssl_context=ssl.create_default_context())
    with pytest.raises(TypeError):
        CronofyEmulator(ssl_context="cert.pem")  # type: ignore[arg-type]
