"""The event calls (hooks/events.py): integrated cancellations through POST /v1/batch (entry
mapping, whole-batch failures, 50-entry batches, token refresh, pacing cost) over requests-mock,
then over HTTP against the emulator; then EventCancellation on its own across calendars, and a 404
failing only its calendar through the hook."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyBulkError, CronofyFatalBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.events import EventCancellation, events_path
from airflow_provider_cronofy.hooks.runner import NotSentFailure, failure_of
from airflow_provider_cronofy.hooks.transport import NotSent, Reply, RetryLater
from airflow_provider_cronofy.operators.meeting_agents import CancelIntegratedMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import ACCESS_TOKEN, connect_to_emulator, refreshable_connection

US = "https://api.cronofy.com"
BATCH = f"{US}/v1/batch"


def integrated(event_ids, **kwargs):
    kwargs.setdefault("calendar_id", "cal_1")
    kwargs.setdefault("max_concurrency", 1)  # batches in a known order
    return CancelIntegratedMeetingAgentOperator(task_id="cancel", event_id=event_ids, **kwargs)


def entries_of(request):
    return json.loads(request.body)["batch"]


def events_of(request):
    return [entry["data"]["event_id"] for entry in entries_of(request)]


def answer_entries(plan):
    """A requests-mock callback answering 207, each entry with plan(event_id, nth time seen)."""
    seen: dict[str, int] = {}

    def callback(request, context):
        context.status_code = 207
        answers = []
        for entry in entries_of(request):
            event_id = entry["data"]["event_id"]
            seen[event_id] = seen.get(event_id, 0) + 1
            status = plan(event_id, seen[event_id])
            answer = {"status": status}
            if status == 422:
                answer["data"] = {
                    "errors": {"summary": [{"key": "errors.required", "description": "required"}]}
                }
            answers.append(answer)
        return json.dumps({"batch": answers})

    callback.seen = seen  # type: ignore[attr-defined]
    return callback


@pytest.fixture(autouse=True)
def _conn(set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)


# ---------------------------------------------------------------- wire format


@pytest.mark.parametrize("delete_event", [False, True])
def test_events_go_in_one_batch(requests_mock, delete_event):
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 202))
    assert integrated(["e1", "e2", "e3"], delete_event=delete_event).execute({}) == {
        "cancelled": ["e1", "e2", "e3"]
    }
    (request,) = requests_mock.request_history
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    method = "DELETE" if delete_event else "POST"
    data = (
        (lambda e: {"event_id": e})
        if delete_event
        else (lambda e: {"event_id": e, "meeting_agent": {"profile_id": "none"}})
    )
    assert entries_of(request) == [
        {"method": method, "relative_url": "/v1/calendars/cal_1/events", "data": data(e)}
        for e in ("e1", "e2", "e3")
    ]


def test_calendar_id_is_encoded_in_each_entry(requests_mock):
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 202))
    integrated(["e1"], calendar_id="cal/../x?y").execute({})
    assert (
        entries_of(requests_mock.last_request)[0]["relative_url"] == "/v1/calendars/cal%2F..%2Fx%3Fy/events"
    )


def test_more_than_50_events_go_in_batches_of_50_in_order(requests_mock):
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 202))
    events = [f"e{i:03d}" for i in range(120)]
    assert integrated(events).execute({}) == {"cancelled": events}
    assert [events_of(r) for r in requests_mock.request_history] == [
        events[:50],
        events[50:100],
        events[100:],
    ]


def test_batches_go_concurrently_and_results_stay_in_input_order(requests_mock):
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 404 if e == "gone" else 202))
    events = [f"e{i:03d}" for i in range(260)]
    assert integrated(events, max_concurrency=4).execute({}) == {"cancelled": events}
    sent = sorted(e for r in requests_mock.request_history for e in events_of(r))
    assert sent == events  # each event sent exactly once
    assert all(len(events_of(r)) <= 50 for r in requests_mock.request_history)


# ---------------------------------------------------------------- per-entry results


def test_mixed_202_422_429_entries(requests_mock, tiny_backoff):
    def plan(event_id, nth):
        if event_id == "bad":
            return 422
        if event_id in ("busy1", "busy2"):
            return 429 if nth == 1 else 202
        if event_id == "flaky":
            return 503 if nth < 3 else 202
        return 202

    callback = answer_entries(plan)
    requests_mock.post(BATCH, text=callback)
    events = ["e1", "busy1", "bad", "e2", "busy2", "flaky", "e3"]
    with pytest.raises(CronofyBulkError) as info:
        integrated(events).execute({})
    error = info.value
    assert error.results == {"cancelled": ["e1", "busy1", "e2", "busy2", "flaky", "e3"]}
    assert [(f.item, f.status_code) for f in error.failures] == [("bad", 422)]
    assert "summary: required" in error.failures[0].reason
    assert not isinstance(error, AirflowFailException)
    # The 429/503 entries were re-sent, in later batches, alone: what was done is not sent again.
    batches = [events_of(r) for r in requests_mock.request_history]
    assert batches[0] == events
    assert sorted(batches[1]) == ["busy1", "busy2", "flaky"]
    assert batches[2] == ["flaky"]
    assert callback.seen == {"e1": 1, "busy1": 2, "bad": 1, "e2": 1, "busy2": 2, "flaky": 3, "e3": 1}


def test_an_entry_that_keeps_answering_429_fails_after_its_retries(requests_mock, tiny_backoff):
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 429 if e == "busy" else 202))
    with pytest.raises(CronofyBulkError) as info:
        integrated(["e1", "busy"]).execute({})
    (failure,) = info.value.failures
    assert (failure.item, failure.status_code) == ("busy", 429)
    assert "gave up after 6 attempt(s)" in failure.reason
    assert len(requests_mock.request_history) == 6
    assert not info.value.fatal


def test_unknown_calendar_in_entries_is_fatal(requests_mock):
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 404))
    events = [f"e{i:03d}" for i in range(80)]
    with pytest.raises(CronofyFatalBulkError) as info:
        integrated(events, calendar_id="cal_x").execute({})
    error = info.value
    assert len(requests_mock.request_history) == 1
    assert [f.item for f in error.failures] == events[:50]
    assert "calendar 'cal_x'" in error.failures[0].reason
    assert error.not_attempted == events[50:]
    assert isinstance(error, AirflowFailException)


# ---------------------------------------------------------------- whole-batch failures


@pytest.mark.parametrize(
    "failure", [{"status_code": 503}, {"status_code": 429}, {"exc": requests.ConnectTimeout}]
)
def test_a_whole_batch_failing_is_retried_whole(requests_mock, tiny_backoff, failure):
    answers = answer_entries(lambda e, n: 202)
    requests_mock.post(BATCH, [failure, {"text": answers}])
    events = ["e1", "e2", "e3"]
    assert integrated(events).execute({}) == {"cancelled": events}
    assert [events_of(r) for r in requests_mock.request_history] == [events, events]


def test_a_whole_batch_failing_throughout_fails_each_event_transiently(requests_mock, tiny_backoff):
    requests_mock.post(BATCH, status_code=503)
    events = [f"e{i}" for i in range(60)]
    with pytest.raises(CronofyBulkError) as info:
        integrated(events).execute({})
    error = info.value
    assert [f.item for f in error.failures] == events
    assert all(f.status_code == 503 and "gave up after 6 attempt(s)" in f.reason for f in error.failures)
    assert not isinstance(error, AirflowFailException)  # a later task attempt may succeed
    assert error.not_attempted == []
    # Every event had its whole budget (6 attempts), none more; retries due together may share a
    # batch, which never holds more than 50 entries nor one event twice.
    batches = [events_of(r) for r in requests_mock.request_history]
    assert batches[0] == events[:50] and batches[1] == events[50:]  # neither waited on the other
    sent = [event for batch in batches for event in batch]
    assert {event: sent.count(event) for event in events} == dict.fromkeys(events, 6)
    assert all(len(batch) <= 50 and len(set(batch)) == len(batch) for batch in batches)


@pytest.mark.parametrize(
    ("status", "fragment"), [(403, "lacks the 'create_event' scope"), (402, "402 Payment")]
)
def test_a_whole_batch_refused_fails_every_event_fatally(requests_mock, status, fragment):
    requests_mock.post(BATCH, status_code=status)
    events = [f"e{i}" for i in range(70)]
    with pytest.raises(CronofyFatalBulkError) as info:
        integrated(events).execute({})
    assert [f.item for f in info.value.failures] == events[:50]
    assert fragment in info.value.failures[0].reason
    assert info.value.not_attempted == events[50:]


def test_a_malformed_207_fails_its_events_with_a_clear_message(requests_mock):
    requests_mock.post(BATCH, status_code=207, json={"batch": [{"status": 202}]})
    with pytest.raises(CronofyBulkError) as info:
        integrated(["e1", "e2"]).execute({})
    assert [f.item for f in info.value.failures] == ["e1", "e2"]
    assert "without one status per request" in info.value.failures[0].reason


@pytest.mark.parametrize("status", [200, 202, 204])
@pytest.mark.parametrize("form", ["one calendar", "across calendars"])
def test_a_batch_answered_2xx_but_not_207_cancels_nothing_silently(requests_mock, status, form):
    # A batch says what became of each event only in a 207's per-entry statuses: any other
    # success must not count the events as cancelled.
    requests_mock.post(BATCH, status_code=status)
    if form == "one calendar":
        task = integrated(["e1", "e2"])
    else:
        task = CancelIntegratedMeetingAgentOperator(
            task_id="cancel",
            events=[{"calendar_id": "cal_1", "event_id": "e1"}, {"calendar_id": "cal_2", "event_id": "e2"}],
            max_concurrency=1,
        )
    with pytest.raises(CronofyBulkError) as info:
        task.execute({})
    assert info.value.results["cancelled"] == []
    assert len(info.value.failures) == 2
    assert all(f"answered {status} to a batch" in f.reason for f in info.value.failures)
    assert all("state is unknown" in f.reason for f in info.value.failures)


def test_401_on_a_batch_refreshes_the_token_once(requests_mock, set_connection):
    refreshable_connection(set_connection)
    requests_mock.post(f"{US}/oauth/token", json={"access_token": "fresh-token-1"})
    requests_mock.post(BATCH, [{"status_code": 401}, {"text": answer_entries(lambda e, n: 202)}])
    assert integrated(["e1", "e2"]).execute({}) == {"cancelled": ["e1", "e2"]}
    paths = [(r.path, r.headers.get("Authorization")) for r in requests_mock.request_history]
    assert paths == [
        ("/v1/batch", f"Bearer {ACCESS_TOKEN}"),
        ("/oauth/token", None),
        ("/v1/batch", "Bearer fresh-token-1"),
    ]


def test_use_batch_false_sends_one_request_per_event(requests_mock):
    requests_mock.post(f"{US}/v1/calendars/cal_1/events", status_code=202)
    assert integrated(["e1", "e2"], use_batch=False).execute({}) == {"cancelled": ["e1", "e2"]}
    assert [r.path for r in requests_mock.request_history] == ["/v1/calendars/cal_1/events"] * 2


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_use_batch_must_be_a_bool(requests_mock, value):
    from airflow_provider_cronofy.exceptions import CronofyInputError

    with pytest.raises(CronofyInputError, match="use_batch must be True or False"):
        integrated(["e1"], use_batch=value).execute({})
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- pacing cost


def test_batch_counts_as_one_request_by_default(requests_mock, set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=5, rate_limit_per_minute=0)
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 202))
    events = [f"e{i:03d}" for i in range(120)]
    integrated(events).execute({})
    assert [len(events_of(r)) for r in requests_mock.request_history] == [50, 50, 20]


def test_batch_rate_cost_entries_sizes_batches_to_the_limit(
    requests_mock, set_connection, monkeypatch, stepped_clock
):
    from airflow_provider_cronofy.hooks import pacing

    set_connection(
        access_token=ACCESS_TOKEN,
        rate_limit_per_second=20,
        rate_limit_per_minute=0,
        batch_rate_cost="entries",
    )
    costs = []
    original = pacing.RequestPacer.acquire

    def acquire(self, cost=1, **kwargs):
        costs.append(cost)
        return original(self, cost, **kwargs)

    monkeypatch.setattr(pacing.RequestPacer, "acquire", acquire)
    requests_mock.post(BATCH, text=answer_entries(lambda e, n: 202))
    events = [f"e{i:03d}" for i in range(45)]
    integrated(events).execute({})
    assert [len(events_of(r)) for r in requests_mock.request_history] == [20, 20, 5]
    assert costs == [20, 20, 5]  # each batch weighs its entries


def test_bad_batch_rate_cost_is_refused_before_any_request(requests_mock, set_connection):
    from airflow_provider_cronofy.exceptions import CronofyConfigError

    set_connection(access_token=ACCESS_TOKEN, batch_rate_cost="per-event")
    with pytest.raises(
        CronofyConfigError, match="batch_rate_cost 'per-event' is refused: use one of request, entries"
    ):
        integrated(["e1"]).execute({})
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- over HTTP, the emulator


TOKEN = "emulator-batch-token"


@pytest.fixture
def emulator(monkeypatch):
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None, latency=0.02) as emu:
        emu.add_access_token(TOKEN, account_id="acc_b")
        emu.add_calendar("cal_b", access_token=TOKEN)
        yield emu


def connect(emu, monkeypatch, **extra):
    connect_to_emulator(monkeypatch, emu, access_token=TOKEN, **extra)


def test_over_http_each_event_changed_exactly_once(emulator, monkeypatch):
    events = [f"evt_{i:03d}" for i in range(170)]
    for event in events:
        emulator.add_event("cal_b", event)
    connect(emulator, monkeypatch, max_concurrency=4)
    op = CancelIntegratedMeetingAgentOperator(task_id="t", calendar_id="cal_b", event_id=events)
    assert op.execute({}) == {"cancelled": events}
    batches = [r for r in emulator.requests if r.path == "/v1/batch"]
    assert len(batches) == 4 and all(r.status == 207 for r in batches)
    assert sorted(len(r.batch_entries) for r in batches) == [20, 50, 50, 50]
    assert all(emulator.event_writes[("cal_b", e)] == 1 for e in events)
    assert all(emulator.events[("cal_b", e)]["meeting_agent"] is None for e in events)


def test_over_http_mixed_entries_and_a_whole_batch_failing(emulator, monkeypatch, tiny_backoff):
    events = [f"evt_{i:03d}" for i in range(60)]
    for event in events:
        emulator.add_event("cal_b", event)
    connect(emulator, monkeypatch, max_concurrency=1)
    emulator.fail_next(1, 503, path="/v1/batch")  # the first batch fails whole
    emulator.fail_next_batch_entries(3, 429)  # then three entries answer 429
    # An event the calendar does not have: removing its agent is an upsert missing its fields.
    op = CancelIntegratedMeetingAgentOperator(
        task_id="t", calendar_id="cal_b", event_id=[*events, "evt_unknown"]
    )
    with pytest.raises(CronofyBulkError) as info:
        op.execute({})
    error = info.value
    assert error.results == {"cancelled": events}
    assert [(f.item, f.status_code) for f in error.failures] == [("evt_unknown", 422)]
    assert "required" in error.failures[0].reason
    assert all(emulator.event_writes[("cal_b", e)] == 1 for e in events)
    statuses = [r.status for r in emulator.requests]
    assert statuses[0] == 503 and set(statuses[1:]) == {207}
    assert emulator.fault_counts["entry_429"] == 3


def test_over_http_unknown_calendar_stops_the_run(emulator, monkeypatch):
    connect(emulator, monkeypatch, max_concurrency=1)
    events = [f"evt_{i:03d}" for i in range(75)]
    op = CancelIntegratedMeetingAgentOperator(task_id="t", calendar_id="cal_nope", event_id=events)
    with pytest.raises(CronofyFatalBulkError) as info:
        op.execute({})
    assert len(emulator.requests) == 1
    assert info.value.not_attempted == events[50:]
    assert "cal_nope" in info.value.failures[0].reason


@pytest.mark.parametrize("cost", ["request", "entries"])
def test_over_http_paced_batches_meet_no_429_in_real_time(monkeypatch, cost):
    # Real time: a batch waits for its slot while another is on its way (a stepped clock skipping
    # the wait would delay that one). 60 events at 30/s: two batches of 30 a second apart, or one
    # batch of 50 and one of 10 when a batch counts as one request.
    with CronofyEmulator(rate_limit_per_second=30, rate_limit_per_minute=None, batch_rate_cost=cost) as emu:
        emu.add_access_token(TOKEN, account_id="acc_b")
        emu.add_calendar("cal_b", access_token=TOKEN)
        events = [f"evt_{i:03d}" for i in range(60)]
        for event in events:
            emu.add_event("cal_b", event)
        connect(emu, monkeypatch, rate_limit_per_second=30, batch_rate_cost=cost)
        op = CancelIntegratedMeetingAgentOperator(task_id="t", calendar_id="cal_b", event_id=events)
        assert op.execute({}) == {"cancelled": events}
        assert emu.fault_counts["rate_limited"] == 0
        sizes = sorted(len(r.batch_entries) for r in emu.requests)
        assert sizes == ([30, 30] if cost == "entries" else [10, 50])


def test_over_http_expired_token_refreshed_once_for_concurrent_batches(emulator, monkeypatch):
    emulator.add_refresh_token("emulator-batch-refresh", account_id="acc_b")
    events = [f"evt_{i:03d}" for i in range(300)]
    for event in events:
        emulator.add_event("cal_b", event)
    emulator.expire_access_token(TOKEN)
    connect(emulator, monkeypatch, refresh_token="emulator-batch-refresh", max_concurrency=6)
    op = CancelIntegratedMeetingAgentOperator(task_id="t", calendar_id="cal_b", event_id=events)
    assert op.execute({}) == {"cancelled": events}
    assert [r.path for r in emulator.requests].count("/oauth/token") == 1
    assert all(emulator.event_writes[("cal_b", e)] == 1 for e in events)


# ---------------------------------------------------------------- the job on its own, across calendars
# What EventCancellation sends for (calendar_id, event_id) items, and what it makes of each answer,
# with a recording sender (no HTTP).

STOP = threading.Event()


def reply(status, body=None):
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(body).encode() if body else b"")


class RecordingSender:
    """Stands for :class:`~airflow_provider_cronofy.hooks.tokens.Sender`: records each request and
    answers it with ``answer(request)``; words an error as ``"<status> for <event id>"``."""

    def __init__(self, answer):
        self.answer = answer
        self.sent = []

    def send(self, request, cost=1, stop=None):
        assert stop is STOP  # the run's stop event reaches every send
        self.sent.append((request, cost))
        return self.answer(request)

    def error(self, rep, item, scope=None):
        return CronofyAPIError(f"{rep.status} for {item} ({scope})", status_code=rep.status, item=item)


def job(answer, **kwargs):
    sender = RecordingSender(answer)
    kwargs.setdefault("delete_event", False)
    return EventCancellation(sender, **kwargs), sender.sent


def batch_answer(statuses):
    def answer(request):
        return reply(207, {"batch": [{"status": statuses(e["relative_url"])} for e in request.body["batch"]]})

    return answer


def test_one_batch_carries_each_items_own_calendar_path():
    made, sent = job(batch_answer(lambda url: 202))
    items = [("cal_a", "e1"), ("cal/b", "e2")]
    assert made(items, STOP) == ["cancelled", "cancelled"]
    [(request, cost)] = sent
    assert (request.method, request.path, cost) == ("POST", "/v1/batch", 1)
    assert [e["relative_url"] for e in request.body["batch"]] == [
        events_path("cal_a"),
        "/v1/calendars/cal%2Fb/events",
    ]
    assert request.item == "2 events"


def test_a_404_entry_marks_its_calendar_and_its_later_events_are_not_sent():
    made, sent = job(batch_answer(lambda url: 404 if "cal_gone" in url else 202))
    first = made([("cal_gone", "g1"), ("cal_ok", "k1")], STOP)
    assert first[1] == "cancelled"
    assert first[0].status_code == 404 and not first[0].fatal and "calendar 'cal_gone'" in str(first[0])
    assert failure_of(("cal_gone", "g1"), first[0]).sent is True
    second = made([("cal_gone", "g2"), ("cal_ok", "k2")], STOP)
    assert [e["data"]["event_id"] for e in sent[1][0].body["batch"]] == ["k2"]
    assert isinstance(second[0], NotSentFailure) and second[1] == "cancelled"
    assert second[0].status_code is None and str(second[0]).startswith("not sent: calendar 'cal_gone'")
    assert failure_of(("cal_gone", "g2"), second[0]).sent is False  # the XCom says it was never sent
    # A unit of unknown calendars only sends nothing at all.
    (third,) = made([("cal_gone", "g3")], STOP)
    assert isinstance(third, NotSentFailure)
    assert len(sent) == 2


def test_calendars_known_unknown_from_before_a_deferral_are_not_sent():
    made, sent = job(batch_answer(lambda url: 202), unknown_calendars=["cal_gone"])
    results = made([("cal_gone", "g1"), ("cal_ok", "k1")], STOP)
    assert isinstance(results[0], NotSentFailure) and results[1] == "cancelled"
    assert [e["data"]["event_id"] for e in sent[0][0].body["batch"]] == ["k1"]


def test_a_retryable_entry_is_retried_and_a_whole_batch_404_names_no_calendar():
    made, _ = job(batch_answer(lambda url: 503 if "cal_busy" in url else 202))
    busy, ok = made([("cal_busy", "b1"), ("cal_ok", "k1")], STOP)
    assert isinstance(busy, RetryLater) and ok == "cancelled"
    # Its retries spent, the entry's last answer is worded as its own answer.
    given_up = busy.give_up(6)
    assert str(given_up) == "503 for b1 (create_event)" and given_up.status_code == 503
    refused, sent = job(lambda request: reply(404))
    (result,) = refused([("cal_a", "e1")], STOP)
    assert str(result) == "404 for e1 (create_event)"
    refused([("cal_a", "e2")], STOP)  # the 404 of the batch named no calendar: cal_a is asked again
    assert len(sent) == 2


@pytest.mark.parametrize("failure", [reply(503), reply(429, {"errors": {}})])
def test_a_whole_batch_retryable_retries_every_event_each_worded_as_its_own(failure):
    def answer(request):
        raise RetryLater(failure, what="POST /v1/batch")

    made, _ = job(answer)
    results = made([("cal_a", "e1"), ("cal_b", "e2")], STOP)
    assert all(isinstance(result, RetryLater) for result in results)
    assert [str(result.give_up(6)) for result in results] == [
        f"{failure.status} for e1 (create_event)",
        f"{failure.status} for e2 (create_event)",
    ]


def test_a_batch_counts_its_entries_against_the_pacer_when_asked():
    made, sent = job(batch_answer(lambda url: 202), cost_per_entry=True, unit_size=20)
    made([("cal_a", f"e{i}") for i in range(3)], STOP)
    assert made.unit_size == 20 and sent[0][1] == 3
    per_event, _ = job(lambda request: reply(202), cost_per_entry=True, use_batch=False)
    assert (per_event.unit_size, per_event.cost_per_entry) == (1, False)


@pytest.mark.parametrize("delete_event", [False, True])
def test_without_batch_one_request_per_event_to_its_calendar(delete_event):
    made, sent = job(lambda request: reply(202), use_batch=False, delete_event=delete_event)
    assert made.unit_size == 1
    assert made([("cal_b", "e9")], STOP) == ["cancelled"]
    [(request, cost)] = sent
    assert (request.method, request.path, request.body["event_id"], request.item, cost) == (
        "DELETE" if delete_event else "POST",
        "/v1/calendars/cal_b/events",
        "e9",
        "e9",
        1,
    )
    refused, _ = job(lambda request: reply(403), use_batch=False, delete_event=delete_event)
    (error,) = refused([("cal_b", "e9")], STOP)
    assert str(error) == f"403 for e9 ({'delete_event' if delete_event else 'create_event'})"


def test_a_404_of_one_event_fails_its_calendar_not_the_unit():
    # What was the one-calendar job's fatal 404 is now an answer about that calendar only: the
    # calendar_id form of the operator stops the run on it (test_unknown_calendar_in_entries_is_fatal).
    made, sent = job(batch_answer(lambda url: 404))
    (result,) = made([("cal/x", "e1")], STOP)
    assert not result.fatal and result.status_code == 404 and result.item == "e1"
    assert "calendar 'cal/x'" in str(result)
    [(request, _)] = sent
    assert request.item == "event 'e1' of calendar 'cal/x'"
    assert request.body["batch"][0]["relative_url"] == "/v1/calendars/cal%2Fx/events"


def test_a_stopped_run_sends_nothing_and_every_event_is_not_sent():
    def answer(request):
        raise NotSent

    made, _ = job(answer)
    results = made([("cal_a", "e1"), ("cal_b", "e2")], STOP)
    assert [type(result) for result in results] == [NotSent, NotSent]


def test_an_unusable_calendar_is_refused_before_any_request(requests_mock):
    from airflow_provider_cronofy.exceptions import CronofyInputError

    with pytest.raises(CronofyInputError, match=r"'\.\.'"):
        events_path("..")
    with pytest.raises(CronofyInputError, match="events\\[0\\]"):
        CancelIntegratedMeetingAgentOperator(
            task_id="cancel", events=[{"calendar_id": "..", "event_id": "e1"}]
        ).execute({})
    with pytest.raises(CronofyInputError):
        integrated(["e1"], calendar_id="..").execute({})
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- through the hook, across calendars


def test_a_404_fails_only_its_calendar_and_its_later_events_are_not_sent(requests_mock):
    requests_mock.post(f"{US}/v1/calendars/cal_gone/events", status_code=404)
    requests_mock.post(f"{US}/v1/calendars/cal_ok/events", status_code=202)
    events = [("cal_gone", "g1"), ("cal_ok", "k1"), ("cal_gone", "g2"), ("cal_ok", "k2"), ("cal_gone", "g3")]
    hook = CronofyHook(max_concurrency=1)
    result = hook.cancel_events(events, use_batch=False)
    assert result.outcomes == [None, "cancelled", None, "cancelled", None]
    assert not result.stopped and result.not_attempted == []
    assert [(i, f.item, f.status_code, f.sent) for i, f in sorted(result.failures.items())] == [
        (0, ("cal_gone", "g1"), 404, True),
        (2, ("cal_gone", "g2"), None, False),
        (4, ("cal_gone", "g3"), None, False),
    ]
    assert [r.path for r in requests_mock.request_history] == [
        "/v1/calendars/cal_gone/events",
        "/v1/calendars/cal_ok/events",
        "/v1/calendars/cal_ok/events",
    ]
