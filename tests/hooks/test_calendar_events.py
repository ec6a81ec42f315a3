"""CalendarEventsJob on its own: what it sends for (calendar_id, event_id) items, and what it
makes of each answer, with a recording ``send`` (no HTTP)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy.exceptions import CronofyAPIError
from airflow_provider_cronofy.hooks.calendar_events import CalendarEventsJob, events_path
from airflow_provider_cronofy.hooks.engine import RunGate
from airflow_provider_cronofy.hooks.transport import Reply, RetryLater

GATE = RunGate().unit()


def reply(status, body=None):
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(body).encode() if body else b"")


def job(answer, **kwargs):
    sent = []

    def send(request, cost, gate):
        assert gate is GATE  # the unit's gate reaches every send
        sent.append((request, cost))
        return answer(request)

    def api_error(rep, event_id):
        return CronofyAPIError(f"{rep.status} for {event_id}", status_code=rep.status, item=event_id)

    made = CalendarEventsJob(
        delete_event=False, send=send, settle=lambda r, retry, n: retry.reply, api_error=api_error, **kwargs
    )
    return made, sent


def batch_answer(statuses):
    def answer(request):
        return reply(207, {"batch": [{"status": statuses(e["relative_url"])} for e in request.body["batch"]]})

    return answer


def test_one_batch_carries_each_items_own_calendar_path():
    made, sent = job(batch_answer(lambda url: 202))
    items = [("cal_a", "e1"), ("cal/b", "e2")]
    assert made.attempt(items, GATE) == [None, None]
    [(request, cost)] = sent
    assert (request.method, request.path, cost) == ("POST", "/v1/batch", 1)
    assert [e["relative_url"] for e in request.body["batch"]] == [
        events_path("cal_a"),
        "/v1/calendars/cal%2Fb/events",
    ]


def test_a_404_entry_marks_its_calendar_and_its_later_events_are_not_sent():
    made, sent = job(batch_answer(lambda url: 404 if "cal_gone" in url else 202))
    first = made.attempt([("cal_gone", "g1"), ("cal_ok", "k1")], GATE)
    assert first[1] is None
    assert first[0].status_code == 404 and not first[0].fatal and "calendar 'cal_gone'" in str(first[0])
    assert made.unknown_calendars == {"cal_gone"}
    second = made.attempt([("cal_gone", "g2"), ("cal_ok", "k2")], GATE)
    assert [e["data"]["event_id"] for e in sent[1][0].body["batch"]] == ["k2"]
    assert second[0].status_code is None and str(second[0]).startswith("not sent: calendar 'cal_gone'")
    # A unit of unknown calendars only sends nothing at all.
    made.attempt([("cal_gone", "g3")], GATE)
    assert len(sent) == 2


def test_a_retryable_entry_is_retried_and_a_whole_batch_404_names_no_calendar():
    made, _ = job(batch_answer(lambda url: 503 if "cal_busy" in url else 202))
    busy, ok = made.attempt([("cal_busy", "b1"), ("cal_ok", "k1")], GATE)
    assert isinstance(busy, RetryLater) and ok is None
    refused, _ = job(lambda request: reply(404))
    results = refused.attempt([("cal_a", "e1")], GATE)
    assert str(results[0]) == "404 for e1" and refused.unknown_calendars == set()


@pytest.mark.parametrize("delete_event", [False, True])
def test_without_batch_one_request_per_event_to_its_calendar(delete_event):
    made, sent = job(lambda request: reply(202), use_batch=False)
    made.delete_event = delete_event
    assert made.unit_size == 1
    assert made.attempt([("cal_b", "e9")], GATE) == [None]
    [(request, cost)] = sent
    assert (request.method, request.path, request.body["event_id"], cost) == (
        "DELETE" if delete_event else "POST",
        "/v1/calendars/cal_b/events",
        "e9",
        1,
    )
