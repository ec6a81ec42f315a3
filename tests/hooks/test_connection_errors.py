"""Connection and TLS failures told apart and worded (hooks/connection_errors.py), on real sockets where the OS is involved."""

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
from airflow_provider_cronofy.exceptions import CronofyFatalAPIError, stops_a_bulk_run
from airflow_provider_cronofy.hooks.connection_errors import (
    TransportFailure,
    describe_transport_error,
    host_and_port,
    loopback_refused_error,
    refused_on_loopback,
    transport_advice,
    transport_failure,
)
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.transport import open_session, read_reply


def refused(url: str) -> requests.ConnectionError:
    """What requests raises for ``url`` when nothing listens there (a real refusal)."""
    with open_session(url, 1) as session:
        try:
            session.get(url, timeout=5)
        except requests.ConnectionError as error:
            return error
    raise AssertionError(f"GET {url} was answered")


@pytest.fixture
def a_closed_port() -> int:
    return closed_port()


@pytest.mark.parametrize(("host", "shown"), [("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")])
def test_a_refused_loopback_port_names_host_port_and_what_to_check(a_closed_port, host, shown):
    closed_port = a_closed_port
    base_url = f"http://{host}:{closed_port}"
    settings = CronofySettings(base_url, None, (10.0, 30.0), 5, 0, 0)
    error = loopback_refused_error(settings, refused(f"{base_url}/v1/meeting_agents"), item="k1")
    assert isinstance(error, CronofyFatalAPIError) and isinstance(error, AirflowFailException)
    assert error.fatal and stops_a_bulk_run(error)
    assert (error.item, error.status_code) == ("k1", None)
    assert str(error) == (
        f"Connection refused by {shown}:{closed_port}: nothing listens there (ConnectionRefusedError). "
        "Is the Cronofy emulator (or the server the connection's host names) running and listening "
        f"at {shown}:{closed_port}, and is the connection's host right? A refused connection to a "
        "loopback host is not retried: every other request would meet it too. Start the server, "
        "then try again."
    )


def test_the_message_never_carries_the_exceptions_own_text(a_closed_port):
    closed_port = a_closed_port
    # The text of a requests error names the URL; a message built from it could carry whatever
    # the URL held. Ours is built from the settings' host:port and class names only.
    settings = CronofySettings(f"http://127.0.0.1:{closed_port}", None, (10.0, 30.0), 5, 0, 0)
    error = refused(f"http://127.0.0.1:{closed_port}/v1/calendars/secret-calendar/events?token=t0ken")
    assert "t0ken" in str(error)
    message = str(loopback_refused_error(settings, error, item=None))
    assert "t0ken" not in message and "secret-calendar" not in message


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
        lambda connection: (connection.recv(65536), connection.sendall(head), time.sleep(0.3))
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
