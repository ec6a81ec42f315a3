"""Access tokens: one refresh however many threads meet an expired token; a refusal is remembered."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_cronofy.exceptions import CronofyFatalAPIError
from airflow_provider_cronofy.hooks.error_messages import Where
from airflow_provider_cronofy.hooks.pacing import RequestPacer
from airflow_provider_cronofy.hooks.settings import Credentials, CronofySettings
from airflow_provider_cronofy.hooks.tokens import AccessTokens
from airflow_provider_cronofy.hooks.transport import RetryPolicy, Transport, open_session

BASE = "https://api.cronofy.com"
WHERE = Where("cronofy_default", BASE, "us")


def transport() -> Transport:
    settings = CronofySettings(BASE, "us", (1.0, 1.0), 0, 0, 0)
    return Transport(settings, RequestPacer([]), RetryPolicy(max_retries=0), open_session(BASE, 4))


def tokens() -> AccessTokens:
    return AccessTokens(
        Credentials("api-key-1234", "old-access", "client", "refresh-5678"), "cronofy_default"
    )


def test_threads_meeting_the_same_401_refresh_once(requests_mock):
    requests_mock.post(f"{BASE}/oauth/token", json={"access_token": "new-access"})
    state, sender = tokens(), transport()
    barrier = threading.Barrier(8)

    def meet_401():
        barrier.wait(30)
        state.after_401("old-access", sender, WHERE)

    threads = [threading.Thread(target=meet_401) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert requests_mock.call_count == 1
    assert state.access_token == "new-access"


def test_a_refused_refresh_is_raised_again_without_asking(requests_mock):
    requests_mock.post(f"{BASE}/oauth/token", status_code=400, json={"error": "invalid_grant"})
    state, sender = tokens(), transport()
    with pytest.raises(CronofyFatalAPIError):
        state.after_401("old-access", sender, WHERE)
    with pytest.raises(CronofyFatalAPIError):
        state.after_401("old-access", sender, WHERE)
    assert requests_mock.call_count == 1


def test_a_stop_ends_a_refresh_sitting_out_its_back_off_and_wakes_its_waiters(requests_mock):
    # The refresh holds the single-flight lock while it retries; a back-off slept under that lock
    # would keep the run's other workers (waiting for the token) past a stop, for up to a
    # Retry-After. A stop must end the back-off, and nothing waiting may be sent after it.
    from airflow_provider_cronofy.hooks.transport import NotSent

    requests_mock.post(f"{BASE}/oauth/token", status_code=503, headers={"Retry-After": "60"})
    settings = CronofySettings(BASE, "us", (1.0, 1.0), 3, 0, 0)
    sender = Transport(settings, RequestPacer([]), RetryPolicy(max_retries=3), open_session(BASE, 4))
    state, stop = tokens(), threading.Event()
    outcomes: list[object] = []

    def meet_401():
        try:
            state.after_401("old-access", sender, WHERE, stop)
            outcomes.append("refreshed")
        except NotSent:
            outcomes.append("not sent")

    threads = [threading.Thread(target=meet_401) for _ in range(4)]
    for thread in threads:
        thread.start()
    while requests_mock.call_count == 0:  # the refresh met its 503 and sits out Retry-After: 60
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)
    stop.set()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads), "a stop left a thread waiting"
    assert outcomes == ["not sent"] * 4
    assert requests_mock.call_count == 1  # nothing that waited was sent after the stop
