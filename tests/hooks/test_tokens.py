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
        Credentials("api-key-1234", "old-access", "client", "refresh-5678"), "cronofy_default", str
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
