"""Access tokens: one refresh however many threads meet an expired token; a refusal is remembered;
every credential redacted. The Sender: the credential it sends, a refresh on a 401, its errors."""

from __future__ import annotations

import json
import threading

import pytest

from airflow_provider_cronofy.exceptions import CronofyConfigError, CronofyFatalAPIError
from airflow_provider_cronofy.hooks.error_messages import Where
from airflow_provider_cronofy.hooks.pacing import RequestPacer
from airflow_provider_cronofy.hooks.settings import Credentials, CronofySettings
from airflow_provider_cronofy.hooks.tokens import AccessTokens, Sender
from airflow_provider_cronofy.hooks.transport import Reply, Request, RetryPolicy, Transport, open_session

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


# ---------------------------------------------------------------- redaction and the Sender


def test_redact_hides_every_credential_a_refreshed_token_too(requests_mock):
    requests_mock.post(
        f"{BASE}/oauth/token", json={"access_token": "new-access-9999", "refresh_token": "new-refresh-4321"}
    )
    state = tokens()
    text = "api-key-1234 old-access refresh-5678 client"
    assert state.redact(text) == "*** *** *** client"  # the client id is no secret
    state.refresh(transport(), WHERE)
    assert state.redact("new-access-9999 new-refresh-4321 old-access") == "*** *** ***"


def test_redact_all_hides_credentials_in_every_string_of_a_json_value():
    detail = {"echo": [{"key": "api-key-1234", "description": "Bearer old-access"}], "n": 3, "ok": None}
    assert tokens().redact_all(detail) == {
        "echo": [{"key": "***", "description": "Bearer ***"}],
        "n": 3,
        "ok": None,
    }


def sender(auth: str, credentials: Credentials | None = None) -> Sender:
    state = AccessTokens(
        credentials or Credentials("api-key-1234", "old-access", "client", "refresh-5678"), "cronofy_default"
    )
    return Sender(transport(), state, WHERE, auth)


AGENTS = f"{BASE}/v1/meeting_agents"


def test_the_api_key_is_sent_as_bearer_and_a_401_is_returned_without_a_refresh(requests_mock):
    requests_mock.delete(AGENTS, status_code=401)
    requests_mock.post(f"{BASE}/oauth/token", json={"access_token": "new-access"})
    reply = sender("api_key").send(
        Request("DELETE", "/v1/meeting_agents", {"scheduling_key": "k"}, None, "k")
    )
    assert reply.status == 401
    (request,) = requests_mock.request_history
    assert request.headers["Authorization"] == "Bearer api-key-1234"


def test_an_access_token_rejected_once_is_refreshed_and_the_request_sent_again(requests_mock):
    requests_mock.post(f"{BASE}/oauth/token", json={"access_token": "new-access"})
    requests_mock.post(f"{BASE}/v1/calendars/cal/events", [{"status_code": 401}, {"status_code": 202}])
    made = sender("access_token")
    reply = made.send(Request("POST", "/v1/calendars/cal/events", {"event_id": "e"}, None, "e"))
    assert reply.status == 202
    sent = [(r.path, r.headers.get("Authorization")) for r in requests_mock.request_history]
    assert sent == [
        ("/v1/calendars/cal/events", "Bearer old-access"),
        ("/oauth/token", None),
        ("/v1/calendars/cal/events", "Bearer new-access"),
    ]
    assert made.token() == "new-access"


@pytest.mark.parametrize(
    ("auth", "credentials", "named"),
    [
        ("api_key", Credentials(None, "old-access", None, None), "password"),
        ("access_token", Credentials("api-key-1234", None, None, None), "access_token"),
    ],
)
def test_a_missing_credential_is_named_and_nothing_is_sent(requests_mock, auth, credentials, named):
    made = sender(auth, credentials)
    with pytest.raises(CronofyConfigError, match=named) as info:
        made.send(Request("DELETE", "/v1/meeting_agents", {"scheduling_key": "k"}, None, "k"))
    assert "cronofy_default" in str(info.value)
    assert requests_mock.call_count == 0


def test_an_error_hides_a_credential_cronofy_echoed_back():
    made = sender("api_key")
    body = json.dumps({"errors": {"scheduling_key": [{"key": "invalid", "description": "api-key-1234"}]}})
    error = made.error(Reply(422, {}, body.encode()), "k")
    assert error.status_code == 422 and error.item == "k"
    assert "api-key-1234" not in str(error) and "scheduling_key: ***" in str(error)


def test_a_403_names_the_scope_the_call_needs():
    error = sender("access_token").error(Reply(403, {}, b""), "e1", scope="delete_event")
    assert isinstance(error, CronofyFatalAPIError)
    assert "the access token lacks the 'delete_event' scope" in str(error)


def test_the_lock_is_free_while_a_refresh_is_on_the_wire_and_its_end_wakes_every_waiter(requests_mock):
    state = tokens()
    on_the_wire, answer = threading.Event(), threading.Event()
    lock_was_free: list[bool] = []

    def slow_token(request, context):
        on_the_wire.set()
        # Another thread takes the tokens' lock now: the refresher does not hold it while it waits.
        taker = threading.Thread(target=lambda: lock_was_free.append(state._lock.acquire(timeout=2)))
        taker.start()
        taker.join()
        state._lock.release()
        answer.wait(5)
        return json.dumps({"access_token": "new-access-9999"})

    requests_mock.post(f"{BASE}/oauth/token", text=slow_token)
    got: list[str] = []
    threads = [
        threading.Thread(target=lambda: got.append(state.current(transport(), WHERE))) for _ in range(3)
    ]
    state.access_token = None
    for thread in threads:
        thread.start()
    assert on_the_wire.wait(5)
    answer.set()
    for thread in threads:
        thread.join(5)
    assert lock_was_free == [True]
    assert got == ["new-access-9999"] * 3 and requests_mock.call_count == 1  # still one refresh
