"""The bulk runner (hooks/runner.py) under concurrency: order, one outcome per item, fatal stop
bounded by the in-flight set, one token refresh per expiry, no send after an interruption; and,
over real HTTP against the emulator, a stop while paced sends nothing that was waiting for a slot.
Then BulkRun on its own, with jobs that answer without HTTP: retries re-queued, results of a
stopped run, a job's bug or interruption.

requests-mock serialises every send behind one global lock, so the tests that need requests to
overlap answer at the requests adapter instead (``fake_api``): the last layer before the socket.
Every test makes the interleaving it checks happen (barriers, events), never waits on a clock.
"""

from __future__ import annotations

import io
import json
import logging
import random
import signal
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import (
    CronofyBulkError,
    CronofyFatalAPIError,
    CronofyFatalBulkError,
    CronofyInputError,
    ItemFailure,
)
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.runner import PROGRESS_EVERY_SECONDS, BulkRun, Report, RunSettings
from airflow_provider_cronofy.hooks.transport import NotSent, Reply, RetryLater, RetryPolicy
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import ACCESS_TOKEN, FakeTI, refreshable_connection
from tests.operators.test_meeting_agents import AGENTS, EVENTS, US, scheduled


def per_event(event_ids, **kwargs):
    return CancelIntegratedMeetingAgentOperator(
        task_id="t", calendar_id="cal_1", event_id=event_ids, use_batch=False, **kwargs
    )


def key_of(request):
    return json.loads(request.body)["scheduling_key"]


class FakeRequest:
    """What a handler sees of one request (the subset of requests-mock's that the tests read)."""

    def __init__(self, prepared: requests.PreparedRequest) -> None:
        self.method = prepared.method
        self.path = urlsplit(prepared.url).path
        self.headers = prepared.headers
        self.body = prepared.body


class FakeContext:
    def __init__(self) -> None:
        self.status_code = 200
        self.headers: dict[str, str] = {}


class FakeAPI:
    """Answers every request at ``HTTPAdapter.send`` with ``handler(request, context) -> body``."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Callable[[Any, Any], str]] = {}
        self.request_history: list[FakeRequest] = []
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        url: str,
        text: Callable[[Any, Any], str] | None = None,
        *,
        status_code=200,
        json_body=None,
    ):
        def fixed(request, context):
            context.status_code = status_code
            return json.dumps(json_body) if json_body is not None else ""

        self.handlers[(method, urlsplit(url).path)] = text or fixed

    @property
    def call_count(self) -> int:
        return len(self.request_history)

    def send(
        self, adapter: HTTPAdapter, prepared: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        request = FakeRequest(prepared)
        with self._lock:
            self.request_history.append(request)
        context = FakeContext()
        body = self.handlers[(request.method, request.path)](request, context)
        response = requests.Response()
        response.status_code = context.status_code
        response.headers = CaseInsensitiveDict(context.headers)
        response.raw = io.BytesIO((body or "").encode())
        response.url = prepared.url
        response.request = prepared
        return response


@pytest.fixture
def fake_api(monkeypatch):
    api = FakeAPI()
    monkeypatch.setattr(
        HTTPAdapter, "send", lambda adapter, prepared, **kwargs: api.send(adapter, prepared, **kwargs)
    )
    return api


@pytest.fixture(autouse=True)
def _conn(set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)


class ObservedStop(threading.Event):
    """A run's stop event that also sets ``seen`` when it is set."""

    def __init__(self, seen: threading.Event) -> None:
        super().__init__()
        self._seen = seen

    def set(self) -> None:
        super().set()
        self._seen.set()


@pytest.fixture
def run_stopped(monkeypatch):
    """An event set the moment a bulk run sets its stop event (a fatal error, an interruption)."""
    stopped = threading.Event()
    original = BulkRun.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.stop = ObservedStop(stopped)

    monkeypatch.setattr(BulkRun, "__init__", init)
    return stopped


# ---------------------------------------------------------------- order and outcomes


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_results_in_input_order_one_outcome_per_item(fake_api, tiny_backoff, concurrency):
    keys = [f"k{i:03d}" for i in range(150)]
    rng = random.Random(concurrency)
    plan = {k: rng.choice(["202", "404", "422", "503-then-202", "503-always"]) for k in keys}
    seen: dict[str, int] = {}
    lock = threading.Lock()
    release_order = threading.Event()

    def callback(request, context):
        key = key_of(request)
        with lock:
            seen[key] = seen.get(key, 0) + 1
            count = seen[key]
        # Answers leave out of order: even items wait for a later one to be answered first.
        if int(key[1:]) % 2 == 0 and concurrency > 1:
            release_order.wait(0.05)
        else:
            release_order.set()
        kind = plan[key]
        status = {"202": 202, "404": 404, "422": 422}.get(kind)
        if kind == "503-then-202":
            status = 503 if count == 1 else 202
        if kind == "503-always":
            status = 503
        context.status_code = status
        return json.dumps({"errors": {"scheduling_key": [{"key": "bad"}]}}) if status == 422 else ""

    fake_api.add("DELETE", AGENTS, callback)
    with pytest.raises(CronofyBulkError) as info:
        scheduled(keys, max_concurrency=concurrency).execute({})
    error = info.value
    cancelled = [k for k in keys if plan[k] in ("202", "503-then-202")]
    assert error.results == {"cancelled": cancelled, "not_found": [k for k in keys if plan[k] == "404"]}
    failed = [k for k in keys if plan[k] in ("422", "503-always")]
    assert [f.item for f in error.failures] == failed
    assert error.not_attempted == []
    # Exactly one outcome per item, none lost, none twice.
    outcomes = error.results["cancelled"] + error.results["not_found"] + [f.item for f in error.failures]
    assert sorted(outcomes) == keys
    assert not isinstance(error, AirflowFailException)  # only transient and 422 failures
    assert all(seen[k] == 6 for k in keys if plan[k] == "503-always")
    assert all(seen[k] == 2 for k in keys if plan[k] == "503-then-202")


def test_a_retried_item_does_not_hold_up_the_others(fake_api, no_sleep):
    """One key meets 503 with a long Retry-After; every other key is cancelled meanwhile."""
    keys = [f"k{i}" for i in range(30)]
    order = []
    lock = threading.Lock()
    first_retry_due = threading.Event()

    def callback(request, context):
        key = key_of(request)
        with lock:
            order.append(key)
            attempts = order.count(key)
        if key == "k0" and attempts == 1:
            context.status_code = 503
            context.headers["Retry-After"] = "60"
            return ""
        if key == "k0":
            first_retry_due.set()
        context.status_code = 202
        return ""

    fake_api.add("DELETE", AGENTS, callback)
    result = scheduled(keys, max_concurrency=2).execute({})
    assert result == {"cancelled": keys, "not_found": []}
    # k0's retry went out after every other key: its back-off held no worker.
    assert order[0] == "k0" and order[-1] == "k0"
    assert sorted(order[1:-1]) == sorted(keys[1:])
    # The one wait was the run's loop's, once nothing else was left to send (no_sleep records it),
    # sat out in steps of at most 10 s so that a progress line comes meanwhile.
    assert 55 < sum(no_sleep) <= 60 and max(no_sleep) <= 10


# ---------------------------------------------------------------- fatal stop


@pytest.mark.parametrize("status", [401, 403, 423])
def test_fatal_stop_is_bounded_by_the_in_flight_set(fake_api, run_stopped, status):
    concurrency = 4
    keys = [f"k{i}" for i in range(40)]
    in_flight = threading.Barrier(concurrency)

    def callback(request, context):
        key = key_of(request)
        in_flight.wait(timeout=10)  # the first four are in flight together
        if key == "k0":
            context.status_code = status
        else:
            run_stopped.wait(timeout=10)  # the others finish only after the run stopped
            context.status_code = 202
        return ""

    fake_api.add("DELETE", AGENTS, callback)
    ti = FakeTI()
    with pytest.raises(CronofyFatalBulkError) as info:
        scheduled(keys, max_concurrency=concurrency).execute({"ti": ti})
    error = info.value
    sent = [key_of(r) for r in fake_api.request_history]
    assert sorted(sent) == ["k0", "k1", "k2", "k3"]  # nothing sent after the fatal answer
    assert [f.item for f in error.failures] == ["k0"]
    assert error.results == {"cancelled": ["k1", "k2", "k3"], "not_found": []}  # in flight: reported
    assert error.not_attempted == keys[4:]  # exactly the items never sent, in input order
    assert ti.pushed["partial_result"] == error.results
    assert isinstance(error, AirflowFailException)
    assert "36 items were not attempted" in str(error)


def test_unknown_calendar_is_fatal_under_concurrency(fake_api):
    fake_api.add("POST", EVENTS, status_code=404)
    events = [f"e{i}" for i in range(30)]
    with pytest.raises(CronofyFatalBulkError) as info:
        per_event(events, max_concurrency=5).execute({})
    sent = {json.loads(r.body)["event_id"] for r in fake_api.request_history}
    error = info.value
    assert sent | set(error.not_attempted) == set(events)
    assert not sent & set(error.not_attempted)
    assert {f.item for f in error.failures} == sent  # every event sent met the 404 and is listed
    assert len(sent) <= 5 + 4  # the in-flight set, plus at most one refill per worker that finished first


# ---------------------------------------------------------------- token refresh


def test_one_refresh_per_expiry_however_many_workers_meet_the_401(fake_api, set_connection):
    refreshable_connection(set_connection)
    concurrency = 6
    together = threading.Barrier(concurrency)
    tokens = iter(["fresh-token-1", "fresh-token-2"])
    valid = {"token": None}  # the connection's access token has expired
    lock = threading.Lock()

    def token_endpoint(request, context):
        with lock:
            valid["token"] = next(tokens)
        return json.dumps({"access_token": valid["token"]})

    def events(request, context):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token == ACCESS_TOKEN:
            together.wait(timeout=10)  # six workers meet the 401 of the expired token at once
        context.status_code = 202 if token == valid["token"] else 401
        return ""

    fake_api.add("POST", f"{US}/oauth/token", token_endpoint)
    fake_api.add("POST", EVENTS, events)
    event_ids = [f"e{i}" for i in range(40)]
    result = per_event(event_ids, max_concurrency=concurrency).execute({})
    assert result == {"cancelled": event_ids}
    paths = [r.path for r in fake_api.request_history]
    assert paths.count("/oauth/token") == 1
    # Every event sent with the new token after the refresh: six 401s, then one success each.
    assert paths.count("/v1/calendars/cal_1/events") == len(event_ids) + concurrency


def test_a_refused_refresh_is_asked_once_under_concurrency(fake_api, set_connection):
    refreshable_connection(set_connection)
    fake_api.add("POST", f"{US}/oauth/token", status_code=400, json_body={"error": "invalid_grant"})
    fake_api.add("POST", EVENTS, status_code=401)
    event_ids = [f"e{i}" for i in range(40)]
    with pytest.raises(CronofyFatalBulkError) as info:
        per_event(event_ids, max_concurrency=8).execute({})
    paths = [r.path for r in fake_api.request_history]
    assert paths.count("/oauth/token") == 1
    sent = {json.loads(r.body)["event_id"] for r in fake_api.request_history if r.path != "/oauth/token"}
    assert sent | set(info.value.not_attempted) == set(event_ids)
    assert all("invalid_grant" in f.reason for f in info.value.failures)


# ---------------------------------------------------------------- interruption


class Interrupted(BaseException):
    """Stands for AirflowTaskTimeout: raised in the main thread by a signal handler."""


def test_no_send_after_an_interruption_and_partial_result_kept(fake_api, run_stopped):
    concurrency = 4
    keys = [f"k{i}" for i in range(100)]
    blocked = threading.Semaphore(0)
    answered_first = threading.Event()
    main = threading.main_thread().ident
    lock = threading.Lock()
    counts = {"blocked": 0}

    def handler(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGUSR1, handler)

    def callback(request, context):
        key = key_of(request)
        if key in ("k0", "k1", "k2"):
            context.status_code = 404 if key == "k1" else 202
            if key == "k2":
                answered_first.set()
            return ""
        answered_first.wait(timeout=10)
        with lock:
            counts["blocked"] += 1
            if counts["blocked"] == concurrency:
                # Four requests in flight: execution_timeout fires in the main thread now.
                signal.pthread_kill(main, signal.SIGUSR1)
        run_stopped.wait(timeout=10)
        blocked.release()
        context.status_code = 202
        return ""

    fake_api.add("DELETE", AGENTS, callback)
    ti = FakeTI()
    try:
        with pytest.raises(Interrupted):
            scheduled(keys, max_concurrency=concurrency).execute({"ti": ti})
        for _ in range(concurrency):  # the four requests in flight finish on their own
            assert blocked.acquire(timeout=10)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    sent = [key_of(r) for r in fake_api.request_history]
    assert len(sent) == 3 + concurrency  # nothing sent after the interruption
    partial = ti.pushed["partial_result"]
    assert partial["cancelled"][:2] == ["k0", "k2"] and partial["not_found"] == ["k1"]
    assert set(partial["cancelled"]) <= set(sent)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize("value", [0, -1, 101, 2.5, "4", True, [4]])
def test_bad_max_concurrency_argument_sends_nothing(fake_api, value):
    with pytest.raises(
        CronofyInputError, match="max_concurrency must be a whole number from 1 to 100"
    ) as info:
        scheduled(["k"], max_concurrency=value).execute({})
    assert repr(value) in str(info.value)
    assert fake_api.call_count == 0


@pytest.mark.parametrize("value", [0, 101, "many", -3, 1.5])
def test_bad_max_concurrency_extra_sends_nothing(fake_api, set_connection, value):
    from airflow_provider_cronofy.exceptions import CronofyConfigError

    set_connection(max_concurrency=value)
    with pytest.raises(CronofyConfigError, match="max_concurrency must be a whole number from 1 to 100"):
        scheduled(["k"]).execute({})
    assert fake_api.call_count == 0


def test_operator_argument_overrides_the_extra_and_sizes_the_pool(set_connection):
    set_connection(max_concurrency=3)
    assert CronofyHook().settings.max_concurrency == 3
    hook = CronofyHook(max_concurrency=12)
    assert hook.settings.max_concurrency == 12
    adapter = hook.get_conn().get_adapter(US)
    assert adapter._pool_maxsize == 12
    set_connection(rate_limit_per_second=0)
    assert CronofyHook().settings.max_concurrency == 20  # no per-second limit: the fixed default
    set_connection()
    # Little's law on the burst: the default 50/s goes out at once only with 50 in flight.
    assert CronofyHook().settings.max_concurrency == 50
    set_connection(rate_limit_per_second=2)
    assert CronofyHook().settings.max_concurrency == 2


def test_an_interruption_raised_in_a_worker_reaches_the_task(fake_api):
    def callback(request, context):
        if key_of(request) == "k5":
            raise Interrupted()
        context.status_code = 202
        return ""

    fake_api.add("DELETE", AGENTS, callback)
    ti = FakeTI()
    keys = [f"k{i}" for i in range(50)]
    with pytest.raises(Interrupted):
        scheduled(keys, max_concurrency=4).execute({"ti": ti})
    partial = ti.pushed["partial_result"]
    assert "k5" not in partial["cancelled"]
    assert partial["cancelled"] == [k for k in keys if k in set(partial["cancelled"])]
    sent = {key_of(r) for r in fake_api.request_history}
    assert set(partial["cancelled"]) <= sent - {"k5"}


# ---------------------------------------------------------------- a stop while paced, over real HTTP

HANG_GUARD_SECONDS = 60


def run_with_hang_guard(target):
    """Run ``target()`` in this (the main) thread; return what it returned or raised, failing if it hangs.

    The main thread, because Airflow 2.11 refuses ``execute`` outside it; SIGALRM ends a hang.
    """

    def hang(signum, frame):
        raise TimeoutError(f"the run did not end within {HANG_GUARD_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(HANG_GUARD_SECONDS)
    try:
        return {"value": target()}
    except TimeoutError:
        raise
    except BaseException as error:  # handed to the test
        return {"error": error}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("max_concurrency", [None, 20])
def test_a_401_while_paced_sends_no_request_that_was_waiting_for_a_slot(monkeypatch, max_concurrency):
    """Wrong API key, 30 keys, paced at 2/s: the first window (2 requests) goes out at once and
    both meet the 401; every other request was waiting for a slot and must never be sent."""
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        keys = [f"key-{i:02d}" for i in range(30)]
        for key in keys:
            emulator.schedule_agent(key)
        conn = emulator.airflow_connection(rate_limit_per_second=2, rate_limit_per_minute=0)
        conn["password"] = "not-the-api-key"
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(conn))
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, max_concurrency=max_concurrency
        )
        outcome = run_with_hang_guard(lambda: operator.execute({}))
        error = outcome.get("error")
        assert isinstance(error, CronofyFatalBulkError), outcome
        # At most the per-second budget was ever in flight at once: the first window.
        assert len(emulator.requests) <= 2
        assert {request.status for request in emulator.requests} == {401}
        assert len(error.failures) == len(emulator.requests)
        assert len(error.not_attempted) == 30 - len(emulator.requests)
        assert all(agent["status"] != "cancelled" for agent in emulator.scheduled_agents.values())


# ---------------------------------------------------------------- BulkRun on its own
# Jobs answering without HTTP, on a clock that only the jobs and the run's sleep move: no test
# waits out a back-off.


class FakeTime:
    """A monotonic clock that moves only when told; ``sleep`` moves it (and records the wait)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def bulk_run(items, job, fake_time, *, max_concurrency=1, unit_size=1, max_retries=5, log=None):
    settings = RunSettings(
        max_concurrency=max_concurrency,
        policy=RetryPolicy(max_retries=max_retries),
        unit_size=unit_size,
        clock=fake_time,
        sleep=fake_time.sleep,
    )
    return BulkRun(items, job, settings, Report(log or logging.getLogger(__name__), "key"))


def busy(seconds: str = "5") -> RetryLater:
    return RetryLater(Reply(503, {"Retry-After": seconds}, b""), what="DELETE /v1/meeting_agents")


def test_a_due_retry_goes_first_in_the_next_unit_and_fresh_items_fill_it():
    fake_time = FakeTime()
    units: list[list[str]] = []

    def job(items, stop):
        units.append(list(items))
        fake_time.advance(5)  # each unit takes five seconds: the retry is due after the second
        return [busy() if item == "i0" and len(units) == 1 else "ok" for item in items]

    items = [f"i{n}" for n in range(8)]
    run = bulk_run(items, job, fake_time, unit_size=3)
    result = run.run()
    assert units == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i0", "i6", "i7"]]
    assert result.outcomes == ["ok"] * 8 and result.failures == {} and run.retries == 1
    assert fake_time.slept == []  # a unit was always in flight: nothing to sit out


def test_a_fatal_error_stops_the_run_waiting_retries_fail_and_the_rest_is_not_attempted():
    fake_time = FakeTime()
    sent: list[str] = []

    def job(items, stop):
        (item,) = items
        sent.append(item)
        if item == "k0":
            return [busy("100")]
        if item == "k1":
            return [CronofyFatalAPIError("Cronofy answered 401.", status_code=401, item=item, fatal=True)]
        return ["cancelled"]

    run = bulk_run([f"k{n}" for n in range(5)], job, fake_time)
    result = run.run()
    assert sent == ["k0", "k1"]  # k0's retry was not sent after the stop either
    assert result.stopped and run.stop.is_set()
    assert result.not_attempted == [2, 3, 4]
    assert result.outcomes == [None] * 5
    assert (result.failures[0].status_code, result.failures[0].sent) == (503, True)
    assert "gave up after 1 attempt(s)" in result.failures[0].reason
    assert result.failures[1].status_code == 401
    assert fake_time.slept == []  # the stop ended the run: nobody sat out k0's Retry-After


def test_not_sent_is_not_attempted_unless_the_item_was_sent_before():
    fake_time = FakeTime()
    calls: dict[str, int] = {}

    def job(items, stop):
        (item,) = items
        calls[item] = calls.get(item, 0) + 1
        if item == "retried" and calls[item] == 1:
            return [busy("1")]
        return [NotSent()]  # as a send finding the run stopped answers

    result = bulk_run(["retried", "fresh"], job, fake_time).run()
    assert result.not_attempted == [1]
    (failure,) = result.failures.values()
    assert isinstance(failure, ItemFailure) and failure.item == "retried"
    assert failure.sent is True  # it was sent once, just not retried
    assert failure.reason.startswith("Sent, but not finished")
    assert fake_time.slept == [1.0]  # the one wait: for the retry, when nothing else was in flight


def test_a_job_bug_fails_its_own_items_only_and_named_by_its_class():
    fake_time = FakeTime()

    def job(items, stop):
        if items == ["short"]:
            return []  # one result too few: must not shift results onto other items
        if items == ["boom"]:
            raise ValueError("no such thing")
        return ["ok"]

    result = bulk_run(["a", "short", "b", "boom", "c"], job, fake_time, max_concurrency=3).run()
    assert result.outcomes == ["ok", None, "ok", None, "ok"]
    assert result.failures[1].reason == "RuntimeError: the job answered 0 results for 1 items"
    assert result.failures[3].reason == "ValueError: no such thing"
    assert not result.stopped and result.not_attempted == []


def test_a_progress_line_every_ten_seconds_of_the_run(caplog):
    fake_time = FakeTime()

    def job(items, stop):
        fake_time.advance(4)
        return ["ok"]

    with caplog.at_level(logging.INFO, logger="runner-progress"):
        bulk_run([f"k{n}" for n in range(10)], job, fake_time, log=logging.getLogger("runner-progress")).run()
    assert PROGRESS_EVERY_SECONDS == 10.0
    lines = [r.getMessage() for r in caplog.records if r.name == "runner-progress"]
    assert lines == [
        "Progress: 3/10 keys done, 0 failed, 0.2/s.",
        "Progress: 6/10 keys done, 0 failed, 0.2/s.",
        "Progress: 9/10 keys done, 0 failed, 0.2/s.",
    ]


def test_a_long_wait_for_a_retry_with_nothing_in_flight_still_logs_progress(caplog):
    fake_time = FakeTime()
    calls = {"n": 0}

    def job(items, stop):
        calls["n"] += 1
        return [busy("25")] if calls["n"] == 1 else ["ok"]

    with caplog.at_level(logging.INFO, logger="runner-wait"):
        result = bulk_run(["k"], job, fake_time, log=logging.getLogger("runner-wait")).run()
    assert result.outcomes == ["ok"]
    # 25 s of Retry-After sat out as 10 + 10 + 5: a line at 10 s and at 20 s, while nothing was in flight.
    assert fake_time.slept == [10.0, 10.0, 5.0]
    lines = [r.getMessage() for r in caplog.records if r.name == "runner-wait"]
    assert lines == ["Progress: 0/1 key done, 0 failed, 0.0/s.", "Progress: 0/1 key done, 0 failed, 0.0/s."]


def test_a_fatal_result_sets_the_stop_before_the_unit_reaches_the_runs_loop():
    fake_time = FakeTime()
    run = bulk_run(["k1"], lambda items, stop: [CronofyFatalAPIError("401", status_code=401)], fake_time)
    seen: list[bool] = []
    handed_over = run._done

    class Observed:
        def put(self, finished):
            seen.append(run.stop.is_set())  # what a paced waiter sees as the unit is handed over
            handed_over.put(finished)

        def get(self, timeout=None):
            return handed_over.get(timeout=timeout)

        def get_nowait(self):
            return handed_over.get_nowait()

    run._done = Observed()  # type: ignore[assignment]
    result = run.run()
    assert seen == [True] and result.stopped
