"""The wording of errors built in hooks/error_messages.py that no other test words in full."""

from __future__ import annotations

import socket

import pytest
import requests

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyFatalAPIError, stops_a_bulk_run
from airflow_provider_cronofy.hooks.error_messages import loopback_refused_error
from airflow_provider_cronofy.hooks.settings import CronofySettings
from airflow_provider_cronofy.hooks.transport import open_session


def refused(url: str) -> requests.ConnectionError:
    """What requests raises for ``url`` when nothing listens there (a real refusal)."""
    with open_session(url, 1) as session:
        try:
            session.get(url, timeout=5)
        except requests.ConnectionError as error:
            return error
    raise AssertionError(f"GET {url} was answered")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("host", "shown"), [("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")])
def test_a_refused_loopback_port_names_host_port_and_what_to_check(closed_port, host, shown):
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


def test_the_message_never_carries_the_exceptions_own_text(closed_port):
    # The text of a requests error names the URL; a message built from it could carry whatever
    # the URL held. Ours is built from the settings' host:port and class names only.
    settings = CronofySettings(f"http://127.0.0.1:{closed_port}", None, (10.0, 30.0), 5, 0, 0)
    error = refused(f"http://127.0.0.1:{closed_port}/v1/calendars/secret-calendar/events?token=t0ken")
    assert "t0ken" in str(error)
    message = str(loopback_refused_error(settings, error, item=None))
    assert "t0ken" not in message and "secret-calendar" not in message
