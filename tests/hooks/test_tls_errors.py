"""TLS failures over real HTTP: fatal at once (one attempt, no retry), and the message says what to
do (the http:// URL to write when https:// was only assumed; REQUESTS_CA_BUNDLE for a certificate)."""

from __future__ import annotations

import ssl
import time
from types import SimpleNamespace

import pytest

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyFatalAPIError, CronofyFatalBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.settings import resolve_settings
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from tests.conftest import SECRETS

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


@pytest.fixture
def tls_files(tmp_path, monkeypatch):
    """A throw-away self-signed certificate for 127.0.0.1; no CA bundle variable set."""
    from airflow_provider_cronofy.testing.certificates import make_self_signed_certificate

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return make_self_signed_certificate(tmp_path)


def _port(emulator) -> int:
    return int(emulator.url.rsplit(":", 1)[1])


@pytest.fixture
def plain_emulator(cronofy_emulator_factory):
    emulator = cronofy_emulator_factory(rate_limit_per_second=0, rate_limit_per_minute=0)
    emulator.schedule_agent("k1")
    return emulator


def _connect(set_connection, emulator, host):
    set_connection(
        host=host, password=emulator.api_key, rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=5
    )


def test_a_host_without_scheme_on_a_plain_http_server_fails_once_naming_the_http_url(
    plain_emulator, set_connection, no_sleep
):
    port = _port(plain_emulator)
    _connect(set_connection, plain_emulator, f"127.0.0.1:{port}")
    hook = CronofyHook()
    with pytest.raises(CronofyFatalAPIError) as info:
        hook.cancel_scheduled_meeting_agent("k1")
    assert isinstance(info.value, AirflowFailException)  # Airflow spends no retry on it either
    message = str(info.value)
    assert f"TLS handshake with https://127.0.0.1:{port} failed (WRONG_VERSION_NUMBER)" in message
    assert "no scheme, so https:// was assumed" in message
    assert f"write the host as http://127.0.0.1:{port} " in message
    assert hook.requests_sent == 1 and hook.retries_spent == 0 and no_sleep == []
    assert plain_emulator.connections_opened == 1  # one attempt reached the server
    assert plain_emulator.scheduled_agents["k1"]["status"] == "scheduled"
    assert not any(secret in message for secret in (*SECRETS, plain_emulator.api_key))


def test_the_http_url_the_message_names_works(plain_emulator, set_connection):
    port = _port(plain_emulator)
    _connect(set_connection, plain_emulator, f"127.0.0.1:{port}")
    with pytest.raises(CronofyFatalAPIError) as info:
        CronofyHook().cancel_scheduled_meeting_agent("k1")
    suggested = str(info.value).split("write the host as ", 1)[1].split(" ", 1)[0]
    _connect(set_connection, plain_emulator, suggested)
    assert CronofyHook().cancel_scheduled_meeting_agent("k1") is True


def test_a_bulk_run_stops_at_the_tls_error_and_fails_the_task(plain_emulator, set_connection, no_sleep):
    port = _port(plain_emulator)
    _connect(set_connection, plain_emulator, f"127.0.0.1:{port}")
    keys = [f"k{number}" for number in range(1, 41)]
    operator = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys, max_concurrency=1)
    with pytest.raises(CronofyFatalBulkError) as info:
        operator.execute({})
    error = info.value
    assert isinstance(error, AirflowFailException)
    assert [failure.item for failure in error.failures] == ["k1"]
    assert error.not_attempted == keys[1:]
    assert f"http://127.0.0.1:{port}" in str(error)
    assert plain_emulator.connections_opened == 1


def test_a_scheme_given_explicitly_gets_no_rewrite_hint(plain_emulator, set_connection):
    port = _port(plain_emulator)
    _connect(set_connection, plain_emulator, f"https://127.0.0.1:{port}")
    with pytest.raises(CronofyFatalAPIError) as info:
        CronofyHook().cancel_scheduled_meeting_agent("k1")
    message = str(info.value)
    assert "TLS handshake with" in message and "was assumed" not in message
    assert "serving https://" in message


def test_an_untrusted_certificate_names_requests_ca_bundle(
    cronofy_emulator_factory, set_connection, tls_files, monkeypatch, no_sleep
):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files.cert, tls_files.key)
    emulator = cronofy_emulator_factory(ssl_context=context, rate_limit_per_second=0, rate_limit_per_minute=0)
    emulator.schedule_agent("k1")
    _connect(set_connection, emulator, emulator.url)
    hook = CronofyHook()
    with pytest.raises(CronofyFatalAPIError) as info:
        hook.cancel_scheduled_meeting_agent("k1")
    message = str(info.value)
    assert f"TLS certificate check failed talking to {emulator.url} (self-signed certificate)" in message
    assert "REQUESTS_CA_BUNDLE" in message
    assert "http://" not in message
    assert hook.requests_sent == 1 and no_sleep == []
    # The server counts the failed handshake in its connection thread, maybe after we returned.
    deadline = time.monotonic() + 5
    while emulator.tls_handshake_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.tls_handshake_failures == 1

    # What the message says to do works.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files.cert)
    assert CronofyHook().cancel_scheduled_meeting_agent("k1") is True


def test_test_connection_reports_the_tls_hint(plain_emulator, set_connection):
    port = _port(plain_emulator)
    set_connection(host=f"127.0.0.1:{port}", password=None, access_token="tok")
    ok, message = CronofyHook().test_connection()
    assert ok is False
    assert f"http://127.0.0.1:{port}" in message


@pytest.mark.parametrize(
    ("host", "defaulted"),
    [
        ("127.0.0.1:8765", True),
        ("api.example.com", True),
        ("https://api.example.com", False),
        ("http://localhost:1", False),
        (None, False),
    ],
)
def test_settings_record_whether_the_scheme_was_defaulted(host, defaulted):
    conn = SimpleNamespace(conn_id="c", host=host, port=None, extra_dejson={})
    assert resolve_settings(conn, {}).scheme_defaulted is defaulted
