"""Deferrable runs of ``events``: the carried state covers calendar and event ids, resumes finish
with the same result and the same failures (grouped by calendar) as a run that never deferred."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy._compat import TaskDeferred
from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyInputError
from airflow_provider_cronofy.hooks import pacing
from airflow_provider_cronofy.operators.deferral import fingerprint
from airflow_provider_cronofy.operators.meeting_agents import CancelIntegratedMeetingAgentOperator
from tests.conftest import ACCESS_TOKEN, FakeTI

US = "https://api.cronofy.com"


def ev(calendar_id, event_id):
    return {"calendar_id": calendar_id, "event_id": event_id}


EVENTS = [ev("cal_a", "e1"), ev("cal_b", "e1"), ev("cal_a", "e2"), ev("cal_b", "e2"), ev("cal_c", "e3")]


@pytest.fixture(autouse=True)
def _paced(monkeypatch, set_connection):
    monkeypatch.setattr(pacing, "_shared", {})
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=2)


def deferrable(events):
    return CancelIntegratedMeetingAgentOperator(
        task_id="t", events=events, deferrable=True, use_batch=False, max_concurrency=1
    )


def aged(carried):
    """The carried state a minute later: its send times are out of the window."""
    pacing._shared.clear()  # a fresh process
    return {**carried, "sent_at": [carried["sent_at"][0] - 62_000, *carried["sent_at"][1:]]}


def sent(requests_mock):
    return [(r.path.split("/")[3], json.loads(r.body)["event_id"]) for r in requests_mock.request_history]


def test_the_fingerprint_covers_calendar_and_event_ids():
    keys = [("cal_a", "e1"), ("cal_b", "e2")]
    assert fingerprint("events", keys) == fingerprint("events", list(keys))
    assert fingerprint("events", keys) != fingerprint("events", [("cal_a", "e1"), ("cal_c", "e2")])
    assert fingerprint("events", keys) != fingerprint("events", [("cal_a", "e1"), ("cal_b", "e3")])
    assert fingerprint("events", keys) != fingerprint("events", [("cal_b", "e2"), ("cal_a", "e1")])
    assert fingerprint("events", keys).startswith("2:")


def test_defers_and_resumes_with_the_events_xcom(requests_mock):
    for calendar in ("cal_a", "cal_b", "cal_c"):
        requests_mock.post(f"{US}/v1/calendars/{calendar}/events", status_code=202)
    op = deferrable(EVENTS)
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    carried = info.value.kwargs["resume"]
    assert carried["position"] == 2
    json.dumps(carried)  # JSON-native: the keys are not carried, only positions
    assert "cal_a" not in json.dumps(carried)
    with pytest.raises(TaskDeferred) as again:
        op.execute_complete({}, resume=aged(carried))
    assert again.value.kwargs["resume"]["position"] == 4
    assert op.execute_complete({}, resume=aged(again.value.kwargs["resume"])) == {"cancelled": EVENTS}
    assert sent(requests_mock) == [(e["calendar_id"], e["event_id"]) for e in EVENTS]


def test_a_changed_calendar_in_the_list_is_refused_on_resume(requests_mock):
    for calendar in ("cal_a", "cal_b", "cal_c", "cal_x"):
        requests_mock.post(f"{US}/v1/calendars/{calendar}/events", status_code=202)
    with pytest.raises(TaskDeferred) as info:
        deferrable(EVENTS).execute({})
    changed = [ev("cal_x", "e1"), *EVENTS[1:]]  # the same event ids, another calendar
    before = requests_mock.call_count
    with pytest.raises(CronofyInputError, match="events changed while the task was deferred"):
        deferrable(changed).execute_complete({}, resume=aged(info.value.kwargs["resume"]))
    assert requests_mock.call_count == before


def test_an_unknown_calendar_met_before_a_deferral_is_reported_after_it(requests_mock):
    requests_mock.post(f"{US}/v1/calendars/cal_a/events", status_code=202)
    requests_mock.post(f"{US}/v1/calendars/cal_b/events", status_code=404, json={})
    requests_mock.post(f"{US}/v1/calendars/cal_c/events", status_code=202)
    op = deferrable(EVENTS)
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    state = info.value.kwargs["resume"]
    ti = FakeTI()
    error = None
    for _ in range(3):
        try:
            op.execute_complete({"ti": ti}, resume=aged(state))
        except TaskDeferred as deferred:
            state = deferred.kwargs["resume"]
        except CronofyBulkError as failed:
            error = failed
            break
    assert error is not None, "the run never finished"
    assert error.results == {"cancelled": [ev("cal_a", "e1"), ev("cal_a", "e2"), ev("cal_c", "e3")]}
    # cal_b's first event met the 404 before the deferral; its second was not sent after it.
    assert [(f.item, f.status_code) for f in error.failures] == [
        (ev("cal_b", "e1"), 404),
        (ev("cal_b", "e2"), None),
    ]
    assert ("cal_b", "e2") not in sent(requests_mock)
    message = str(error)
    assert "Cronofy answered 404 for calendar 'cal_b'" in message
    assert "Its 2 events failed (1 not sent): 'e1', 'e2'" in message
    assert ti.pushed["partial_result"] == error.results
    assert [f["event_id"] for f in ti.pushed["failures"]] == ["e1", "e2"]
