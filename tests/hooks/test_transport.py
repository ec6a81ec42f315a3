"""The transport: the retry policy as a value, a stopped run's gate refusing a send, and what a
connection failure is said to be (a refused loopback port fails at once)."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import requests

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyFatalAPIError, CronofyFatalBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.engine import NotSent, RunGate
from airflow_provider_cronofy.hooks.pacing import RequestPacer
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.transport import (
    Reply,
    Request,
    RetryLater,
    RetryPolicy,
    Transport,
    TransportFailure,
    describe_transport_error,
    host_and_port,
    open_session,
    read_reply,
    refused_on_loopback,
    transport_advice,
    transport_failure,
)
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

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


# ---------------------------------------------------------------- connection failures
#
# Each kind is met for real (requests and urllib3 as pinned, over loopback sockets), or, where
# the network cannot be made to do it on demand, with the socket call urllib3 makes replaced:
# the wrapping above it (ConnectionError, MaxRetryError, NewConnectionError, ...) is the real one.

LOOPBACK_SETTINGS = CronofySettings("http://127.0.0.1:8765", None, (10.0, 30.0), 5, 0, 0)


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed: the kernel refuses connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def listener(serve: Callable[[socket.socket], None] | None = None) -> Iterator[int]:
    """A 127.0.0.1 port that accepts connections; ``serve`` handles the first one (else it is left silent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            connection, _ = server.accept()
            accepted.append(connection)
            if serve is not None:
                serve(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        thread.join(5)
        for connection in accepted:
            connection.close()


def failure_of(url: str, timeout: float = 5.0, **kwargs) -> requests.RequestException:
    """The exception one GET of ``url`` raises, on a session as the hook opens it."""
    with open_session(url, 1) as session:
        try:
            response = session.get(url, timeout=timeout, stream=True, **kwargs)
            read_reply(response)
        except requests.RequestException as error:
            return error
    raise AssertionError(f"GET {url} did not fail")


def on_socket_connect(monkeypatch, error: OSError) -> None:
    """Every socket's ``connect`` raises ``error``, as the OS would."""

    def connect(self, address):
        raise error

    monkeypatch.setattr(socket.socket, "connect", connect)


def answers_after(reply: bytes, how: str) -> Callable[[socket.socket], None]:
    def serve(connection: socket.socket) -> None:
        connection.recv(65536)
        if reply:
            connection.sendall(reply)
        if how == "reset":  # SO_LINGER 0: close() sends a RST
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()

    return serve


def test_a_refused_connection_says_nothing_listens_at_host_port():
    port = closed_port()
    settings = replace(LOOPBACK_SETTINGS, base_url=f"http://127.0.0.1:{port}")
    error = failure_of(f"http://127.0.0.1:{port}/v1/meeting_agents")
    assert transport_failure(error) == TransportFailure("refused", "ConnectionRefusedError")
    assert describe_transport_error(error, settings) == (
        f"connection failed (ConnectionError): refused, nothing listens at 127.0.0.1:{port} "
        "(ConnectionRefusedError)"
    )
    assert transport_advice(error, settings) == (
        f"Is the server running and listening at 127.0.0.1:{port} (Cronofy, a proxy, the "
        "emulator), and is the connection's host right?"
    )


def test_a_host_name_that_does_not_resolve_is_named(monkeypatch):
    def getaddrinfo(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings = replace(LOOPBACK_SETTINGS, base_url="https://nonexistent.invalid")
    error = failure_of("https://nonexistent.invalid/v1/meeting_agents")
    assert transport_failure(error) == TransportFailure("name", "NameResolutionError")
    assert describe_transport_error(error, settings) == (
        "connection failed (ConnectionError): the host name 'nonexistent.invalid' does not resolve "
        "(NameResolutionError)"
    )
    assert "host spelled right" in transport_advice(error, settings)
    assert "(DNS)" in transport_advice(error, settings)


def test_a_connection_that_is_not_made_in_time_names_the_connect_timeout(monkeypatch):
    on_socket_connect(monkeypatch, TimeoutError("timed out"))
    error = failure_of("https://192.0.2.10/v1/meeting_agents")  # an IP: no name to resolve
    settings = replace(LOOPBACK_SETTINGS, base_url="https://api.cronofy.com", timeout=(4.0, 30.0))
    assert isinstance(error, requests.ConnectTimeout)
    assert transport_failure(error) == TransportFailure("connect_timeout", "ConnectTimeoutError")
    assert describe_transport_error(error, settings) == (
        "no answer in time (ConnectTimeout): no connection to api.cronofy.com:443 within the "
        "connect timeout (4 s)"
    )
    assert "reachable from the worker" in transport_advice(error, settings)


def test_an_answer_that_does_not_come_in_time_names_the_read_timeout():
    with listener() as port:  # accepts, never answers
        error = failure_of(f"http://127.0.0.1:{port}/v1/meeting_agents", timeout=0.05)
    settings = replace(LOOPBACK_SETTINGS, base_url=f"http://127.0.0.1:{port}", timeout=(10.0, 0.05))
    assert isinstance(error, requests.ReadTimeout)
    assert transport_failure(error) == TransportFailure("read_timeout", "ReadTimeoutError")
    assert describe_transport_error(error, settings) == (
        f"no answer in time (ReadTimeout): connected to 127.0.0.1:{port}, but no answer within the "
        "read timeout (0.05 s)"
    )
    assert "raise the connection's timeout extra" in transport_advice(error, settings)


def test_a_body_that_stops_coming_is_a_read_timeout_too():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"
    with listener(
        lambda connection: (connection.recv(65536), connection.sendall(head), time.sleep(1))
    ) as port:
        error = failure_of(f"http://127.0.0.1:{port}/v1/userinfo", timeout=0.05)
    # requests raises a ConnectionError for it: the head says so, the detail what it was.
    assert transport_failure(error) == TransportFailure("read_timeout", "ReadTimeoutError")
    assert describe_transport_error(error, LOOPBACK_SETTINGS) == (
        "connection failed (ConnectionError): connected to 127.0.0.1:8765, but no answer within "
        "the read timeout (30 s)"
    )


@pytest.mark.parametrize(
    ("reply", "how", "cause"),
    [
        (b"", "close", "RemoteDisconnected"),  # closed without an answer
        (b"", "reset", "ConnectionResetError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", "close", "IncompleteRead"),
    ],
)
def test_a_connection_dropped_before_the_answer_was_complete(reply, how, cause):
    with listener(answers_after(reply, how)) as port:
        error = failure_of(f"http://127.0.0.1:{port}/v1/meeting_agents")
    assert transport_failure(error) == TransportFailure("dropped", cause)
    assert describe_transport_error(error, LOOPBACK_SETTINGS) == (
        f"connection failed ({type(error).__name__}): the connection to 127.0.0.1:8765 was reset "
        f"or closed before the answer was complete ({cause})"
    )
    assert "closed the connection" in transport_advice(error, LOOPBACK_SETTINGS)


def test_no_route_names_the_errno(monkeypatch):
    on_socket_connect(monkeypatch, OSError(errno.ENETUNREACH, "Network is unreachable"))
    error = failure_of("https://192.0.2.10/v1/meeting_agents")  # an IP: no name to resolve
    settings = replace(LOOPBACK_SETTINGS, base_url="https://api.cronofy.com")
    assert transport_failure(error) == TransportFailure("connect", "OSError ENETUNREACH")
    assert describe_transport_error(error, settings) == (
        "connection failed (ConnectionError): could not connect to api.cronofy.com:443 (OSError ENETUNREACH)"
    )
    assert "reachable from the worker" in transport_advice(error, settings)


def test_a_proxy_that_refuses_is_named_and_its_url_is_never_shown():
    port = closed_port()
    proxy = f"http://user:proxy-secret@127.0.0.1:{port}"
    error = failure_of("http://api.example.test/v1/meeting_agents", proxies={"http": proxy})
    settings = replace(LOOPBACK_SETTINGS, base_url="http://api.example.test")
    failure = transport_failure(error)
    text = describe_transport_error(error, settings) + transport_advice(error, settings)
    assert failure == TransportFailure("proxy", "ConnectionRefusedError")
    assert "proxy-secret" not in text
    assert text.startswith(
        "connection failed (ProxyError): the proxy failed, the request did not reach api.example.test:80 "
        "(ConnectionRefusedError)"
    )
    assert "HTTPS_PROXY" in text


def test_without_settings_the_words_name_no_host():
    port = closed_port()
    assert describe_transport_error(failure_of(f"http://127.0.0.1:{port}/")) == (
        "connection failed (ConnectionError): refused, nothing listens at the server (ConnectionRefusedError)"
    )
    assert describe_transport_error(requests.ConnectionError()) == "connection failed (ConnectionError)"
    assert describe_transport_error(requests.ReadTimeout()) == (
        "no answer in time (ReadTimeout): connected to the server, but no answer within the read timeout"
    )
    assert describe_transport_error(None) == "unknown error"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("https://api.cronofy.com", "api.cronofy.com:443"),
        ("http://localhost", "localhost:80"),
        ("http://[::1]:8765/prefix", "[::1]:8765"),
    ],
)
def test_host_and_port_writes_the_default_port_out(base_url, expected):
    assert host_and_port(base_url) == expected


@pytest.mark.parametrize(
    ("base_url", "loopback"),
    [
        ("http://127.0.0.1:8765", True),
        ("http://127.0.5.1:8765", True),
        ("http://localhost:8765", True),
        ("http://[::1]:8765", True),
        ("https://api.cronofy.com", False),
        ("https://10.0.0.5:8443", False),
    ],
)
def test_only_a_refusal_by_a_loopback_host_is_not_retried(base_url, loopback):
    refused = failure_of(f"http://127.0.0.1:{closed_port()}/")
    settings = replace(LOOPBACK_SETTINGS, base_url=base_url)
    assert refused_on_loopback(refused, settings) is loopback
    assert refused_on_loopback(requests.ReadTimeout(), settings) is False


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
