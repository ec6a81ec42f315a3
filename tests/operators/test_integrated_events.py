"""The integrated operator's ``events`` argument over requests-mock: checks, wire format, results.

One task for events of many calendars: every entry checked before the first request, batches
mixing calendars, per-event requests to each event's own calendar, an unknown calendar failing
only its own events, the run-stopping statuses, dry run, XCom shapes and secrets.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyFatalBulkError, CronofyInputError
from airflow_provider_cronofy.operators.meeting_agents import CancelIntegratedMeetingAgentOperator
from tests.conftest import ACCESS_TOKEN, API_KEY, CLIENT_ID, REFRESH_TOKEN, SECRETS, FakeTI

US = "https://api.cronofy.com"
BATCH = f"{US}/v1/batch"
TOKEN_URL = f"{US}/oauth/token"


def ev(calendar_id, event_id, **extra):
    return {"calendar_id": calendar_id, "event_id": event_id, **extra}


def integrated(events, **kwargs):
    kwargs.setdefault("max_concurrency", 1)  # batches in a known order
    return CancelIntegratedMeetingAgentOperator(task_id="cancel", events=events, **kwargs)


def entries_of(request):
    return json.loads(request.body)["batch"]


def sent_pairs(request):
    """(relative_url, event_id) of each entry of one batch request."""
    return [(e["relative_url"], e["data"]["event_id"]) for e in entries_of(request)]


def answer_by_calendar(statuses):
    """A 207 callback answering each entry with its calendar's status (default 202)."""

    def callback(request, context):
        context.status_code = 207
        answers = []
        for entry in entries_of(request):
            calendar = entry["relative_url"].split("/")[3]
            status = statuses.get(calendar, 202)
            answer = {"status": status}
            if status == 404:
                answer["data"] = {"errors": {"calendar_id": [{"key": "errors.not_found"}]}}
            answers.append(answer)
        return json.dumps({"batch": answers})

    return callback


@pytest.fixture(autouse=True)
def _conn(set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)


EVENTS = [ev("cal_a", "a1"), ev("cal_b", "b1"), ev("cal_a", "a2"), ev("cal_c", "c1")]


# ---------------------------------------------------------------- the arguments


def test_calendar_id_and_event_id_are_optional_once_events_is_given():
    op = integrated(EVENTS)
    assert op.events == EVENTS and op.calendar_id is None and op.event_id is None
    assert "events" in CancelIntegratedMeetingAgentOperator.template_fields


@pytest.mark.parametrize(
    "kwargs",
    [
        {"events": EVENTS, "calendar_id": "cal_a"},
        {"events": EVENTS, "event_id": ["a1"]},
        {"events": EVENTS, "calendar_id": "cal_a", "event_id": "a1"},
        {"events": [], "calendar_id": "cal_a", "event_id": "a1"},
    ],
)
def test_both_forms_are_refused_before_any_request(requests_mock, kwargs):
    op = CancelIntegratedMeetingAgentOperator(task_id="cancel", **kwargs)
    with pytest.raises(CronofyInputError, match="either events or calendar_id \\+ event_id, not both"):
        op.execute({})
    assert requests_mock.call_count == 0


def test_neither_form_is_refused_before_any_request(requests_mock):
    with pytest.raises(CronofyInputError, match="none of them was given"):
        CancelIntegratedMeetingAgentOperator(task_id="cancel").execute({})
    assert requests_mock.call_count == 0


def test_every_bad_entry_is_named_by_its_position_and_nothing_is_sent(requests_mock):
    events = [
        ev("cal_a", "ok"),
        {"event_id": "e1"},  # 1: no calendar
        ev("cal_a", ""),  # 2: blank event id
        ev("..", "e3"),  # 3: dot segment
        ev("cal_a", 4),  # 4: not a string
        ev(None, "e5"),  # 5: not a string
        ev("cal_a", "e6,e7"),  # 6: commas joining ids
        "cal_a/e8",  # 7: not a dict
        ev("cal a", "e9"),  # 8: whitespace in a calendar id
        ev("cal_b", "  "),  # 9: blank
        {},  # 10: neither
    ]
    with pytest.raises(CronofyInputError) as info:
        integrated(events).execute({})
    message = str(info.value)
    assert message.startswith("10 of the 11 entries of events are invalid; nothing was sent:")
    for fragment in (
        "events[1] has no calendar_id (its keys: event_id)",
        "events[2]: event_id must be a non-blank string, got ''",
        "events[3]: calendar_id '..' is a path dot segment",
        "events[4]: event_id must be a string, got int: 4",
        "events[5]: calendar_id must be a string, got NoneType",
        "events[6]: event_id 'e6,e7' looks like several ids joined by commas",
        "events[7] must be a dict",
        "events[8]: calendar_id 'cal a' holds whitespace",
        "events[9]: event_id must be a non-blank string",
    ):
        assert fragment in message, fragment
    assert "events[0]" not in message
    assert "events[10] has no calendar_id and no event_id (its keys: none)." in message
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("value", ["cal_a:e1", {"calendar_id": "cal_a", "event_id": "e1"}, 5])
def test_events_that_is_not_a_list_is_refused(requests_mock, value):
    with pytest.raises(CronofyInputError, match="events must be a list of"):
        integrated(value).execute({})
    assert requests_mock.call_count == 0


def test_a_list_rendered_to_text_says_how_to_pass_the_list(requests_mock):
    rendered = str([ev("cal_a", "e1")])  # a Jinja template without render_template_as_native_obj
    with pytest.raises(CronofyInputError, match="render_template_as_native_obj=True"):
        integrated(rendered).execute({})
    assert requests_mock.call_count == 0


def test_more_than_ten_bad_entries_are_counted(requests_mock):
    with pytest.raises(CronofyInputError) as info:
        integrated([ev("cal_a", "")] * 12).execute({})
    assert "12 of the 12 entries" in str(info.value) and "... and 2 more." in str(info.value)
    assert requests_mock.call_count == 0


def test_an_empty_list_sends_nothing_and_succeeds(requests_mock):
    assert integrated([]).execute({}) == {"cancelled": []}
    assert requests_mock.call_count == 0


def test_other_keys_of_a_row_are_ignored_and_duplicates_are_sent_once(requests_mock):
    requests_mock.post(BATCH, text=answer_by_calendar({}))
    rows = [
        ev("cal_a", "a1", account="acme", status="called_off"),
        ev("cal_b", "a1"),  # the same event id in another calendar is another event
        ev("cal_a", "a1", account="acme"),  # a duplicate
        ev("cal_a", "a2"),
    ]
    assert integrated(rows).execute({}) == {
        "cancelled": [ev("cal_a", "a1"), ev("cal_b", "a1"), ev("cal_a", "a2")]
    }
    [request] = requests_mock.request_history
    assert sent_pairs(request) == [
        ("/v1/calendars/cal_a/events", "a1"),
        ("/v1/calendars/cal_b/events", "a1"),
        ("/v1/calendars/cal_a/events", "a2"),
    ]


# ---------------------------------------------------------------- the wire format


@pytest.mark.parametrize("delete_event", [False, True])
def test_one_batch_holds_entries_of_different_calendars(requests_mock, delete_event):
    requests_mock.post(BATCH, text=answer_by_calendar({}))
    result = integrated(EVENTS, delete_event=delete_event).execute({})
    assert result == {"cancelled": EVENTS}
    [request] = requests_mock.request_history
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    method = "DELETE" if delete_event else "POST"

    def data(event_id):
        if delete_event:
            return {"event_id": event_id}
        return {"event_id": event_id, "meeting_agent": {"profile_id": "none"}}

    assert entries_of(request) == [
        {
            "method": method,
            "relative_url": f"/v1/calendars/{e['calendar_id']}/events",
            "data": data(e["event_id"]),
        }
        for e in EVENTS
    ]


def test_calendar_ids_are_encoded_as_one_path_segment_in_each_entry(requests_mock):
    requests_mock.post(BATCH, text=answer_by_calendar({}))
    integrated([ev("cal/../x?y", "e1"), ev("cal_b", "e2")]).execute({})
    assert [url for url, _ in sent_pairs(requests_mock.last_request)] == [
        "/v1/calendars/cal%2F..%2Fx%3Fy/events",
        "/v1/calendars/cal_b/events",
    ]


def test_batches_of_50_mix_calendars_in_input_order(requests_mock):
    requests_mock.post(BATCH, text=answer_by_calendar({}))
    events = [ev(f"cal_{i % 3}", f"e{i:03d}") for i in range(120)]
    assert integrated(events).execute({}) == {"cancelled": events}
    batches = [[event_id for _, event_id in sent_pairs(r)] for r in requests_mock.request_history]
    ids = [e["event_id"] for e in events]
    assert batches == [ids[:50], ids[50:100], ids[100:]]
    assert len({url for url, _ in sent_pairs(requests_mock.request_history[0])}) == 3


@pytest.mark.parametrize("delete_event", [False, True])
def test_without_batch_each_event_goes_to_its_own_calendar(requests_mock, delete_event):
    method = requests_mock.delete if delete_event else requests_mock.post
    for calendar in ("cal_a", "cal_b", "cal_c"):
        method(f"{US}/v1/calendars/{calendar}/events", status_code=202)
    assert integrated(EVENTS, use_batch=False, delete_event=delete_event).execute({}) == {"cancelled": EVENTS}
    sent = [(r.method, r.path, json.loads(r.body)["event_id"]) for r in requests_mock.request_history]
    verb = "DELETE" if delete_event else "POST"
    assert sent == [(verb, f"/v1/calendars/{e['calendar_id']}/events", e["event_id"]) for e in EVENTS]


# ---------------------------------------------------------------- an unknown calendar


def test_an_unknown_calendar_fails_its_own_events_only(requests_mock):
    requests_mock.post(BATCH, text=answer_by_calendar({"cal_b": 404}))
    events = [ev("cal_a", "a1"), ev("cal_b", "b1"), ev("cal_a", "a2"), ev("cal_b", "b2"), ev("cal_c", "c1")]
    ti = FakeTI()
    with pytest.raises(CronofyBulkError) as info:
        integrated(events).execute({"ti": ti})
    error = info.value
    cancelled = [ev("cal_a", "a1"), ev("cal_a", "a2"), ev("cal_c", "c1")]
    assert error.results == {"cancelled": cancelled}
    assert [(f.item, f.status_code) for f in error.failures] == [
        (ev("cal_b", "b1"), 404),
        (ev("cal_b", "b2"), 404),
    ]
    assert not error.fatal and error.not_attempted == []
    message = str(error)
    assert message.startswith("2 of 5 events failed (3 cancelled):")
    assert message.count("calendar 'cal_b'") == 1  # named once, with Cronofy's answer
    assert "Cronofy answered 404 for calendar 'cal_b'" in message
    assert "Its 2 events failed: 'b1', 'b2'" in message
    # What downstream tasks (an audit) read.
    assert ti.pushed["partial_result"] == {"cancelled": cancelled}
    assert ti.pushed["failures"] == [
        {"calendar_id": "cal_b", "event_id": "b1", "status_code": 404, "reason": error.failures[0].reason},
        {"calendar_id": "cal_b", "event_id": "b2", "status_code": 404, "reason": error.failures[1].reason},
    ]
    json.dumps(ti.pushed)


def test_other_causes_are_explained_once_with_their_events_after_them(requests_mock):
    # Events of several calendars refused for the same reason (422) read as one cause, as a
    # one-calendar run words it, not one repeated explanation per event.
    requests_mock.post(BATCH, text=answer_by_calendar({"cal_a": 422, "cal_b": 422}))
    events = [ev("cal_a", "a1"), ev("cal_b", "b1"), ev("cal_c", "c1"), ev("cal_a", "a2")]
    with pytest.raises(CronofyBulkError) as info:
        integrated(events).execute({})
    message = str(info.value)
    assert [f.item for f in info.value.failures] == [ev("cal_a", "a1"), ev("cal_b", "b1"), ev("cal_a", "a2")]
    assert message.startswith("3 of 4 events failed (1 cancelled):")
    assert "  - 3 failed: 422: " in message
    assert (
        "    calendar 'cal_a', event 'a1', calendar 'cal_b', event 'b1', calendar 'cal_a', event 'a2'"
        in message
    )
    assert message.count("Cronofy rejected the request") == 1  # the reason once, not once per event


def test_events_of_an_unknown_calendar_not_sent_yet_fail_without_being_sent(requests_mock):
    # 60 events of cal_gone: the first batch meets the 404; the 10 left fail without being sent.
    requests_mock.post(BATCH, text=answer_by_calendar({"cal_gone": 404}))
    gone = [ev("cal_gone", f"g{i:02d}") for i in range(60)]
    kept = [ev("cal_ok", f"k{i}") for i in range(5)]
    with pytest.raises(CronofyBulkError) as info:
        integrated(gone + kept).execute({})
    error = info.value
    second = sent_pairs(requests_mock.request_history[1])
    assert len(requests_mock.request_history) == 2
    assert second == [("/v1/calendars/cal_ok/events", e["event_id"]) for e in kept]  # no cal_gone entry
    assert error.results == {"cancelled": kept}
    assert [f.item for f in error.failures] == gone
    unsent = error.failures[50:]
    assert all(
        f.status_code is None and f.reason.startswith("not sent: calendar 'cal_gone' is unknown")
        for f in unsent
    )
    assert all(f.status_code == 404 for f in error.failures[:50])
    message = str(error)
    assert "Its 60 events failed (10 not sent): 'g00', 'g01'" in message
    assert message.count("calendar 'cal_gone'") == 1


def test_an_unknown_calendar_without_batch_fails_its_events_after_one_request(requests_mock):
    requests_mock.post(f"{US}/v1/calendars/cal_gone/events", status_code=404, json={"errors": {}})
    requests_mock.post(f"{US}/v1/calendars/cal_ok/events", status_code=202)
    events = [ev("cal_gone", "g1"), ev("cal_ok", "k1"), ev("cal_gone", "g2"), ev("cal_ok", "k2")]
    with pytest.raises(CronofyBulkError) as info:
        integrated(events, use_batch=False).execute({})
    assert [r.path for r in requests_mock.request_history] == [
        "/v1/calendars/cal_gone/events",
        "/v1/calendars/cal_ok/events",
        "/v1/calendars/cal_ok/events",
    ]
    assert info.value.results == {"cancelled": [ev("cal_ok", "k1"), ev("cal_ok", "k2")]}
    assert [(f.item["event_id"], f.status_code) for f in info.value.failures] == [("g1", 404), ("g2", None)]


# ---------------------------------------------------------------- errors that stop the run


@pytest.mark.parametrize("status", [401, 402, 403, 423])
def test_account_wide_errors_still_stop_the_whole_run(requests_mock, status):
    requests_mock.post(BATCH, status_code=status, json={})
    events = [ev(f"cal_{i % 4}", f"e{i:03d}") for i in range(80)]
    ti = FakeTI()
    with pytest.raises(CronofyFatalBulkError) as info:
        integrated(events).execute({"ti": ti})
    error = info.value
    assert isinstance(error, AirflowFailException)
    assert requests_mock.call_count == 1
    assert [f.item for f in error.failures] == events[:50]
    assert error.not_attempted == events[50:]
    assert "30 events were not attempted" in str(error)
    assert ti.pushed["partial_result"] == {"cancelled": []}


def test_a_refused_refresh_token_stops_the_whole_run(requests_mock, set_connection):
    set_connection(
        client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0
    )
    requests_mock.post(TOKEN_URL, status_code=400, json={"error": "invalid_grant"})
    requests_mock.post(BATCH, text=answer_by_calendar({}))
    events = [ev(f"cal_{i % 2}", f"e{i:03d}") for i in range(120)]
    with pytest.raises(CronofyFatalBulkError) as info:
        integrated(events).execute({})
    assert [r.url for r in requests_mock.request_history] == [TOKEN_URL]
    assert "invalid_grant" in str(info.value)
    assert len(info.value.failures) + len(info.value.not_attempted) == 120


# ---------------------------------------------------------------- dry run, secrets


def test_dry_run_lists_calendar_and_event_and_sends_nothing(requests_mock, caplog, capsys):
    op = integrated([*EVENTS, EVENTS[0]], dry_run=True, delete_event=True)
    with caplog.at_level("INFO"):
        assert op.execute({}) == {"would_cancel": EVENTS}
    assert requests_mock.call_count == 0
    text = caplog.text + capsys.readouterr().out
    # What would really be sent: one POST /v1/batch, its entries the per-calendar DELETEs.
    assert (
        "A real run would send POST https://api.cronofy.com/v1/batch for 4 events across 3 calendars "
        "(1 batch of up to 50 events, calendars mixed, each entry a DELETE "
        "/v1/calendars/{calendar_id}/events), one event_id each:"
    ) in text
    assert "would cancel calendar_id='cal_b' event_id='b1'" in text


def test_dry_run_without_batches_names_one_request_per_event(requests_mock, caplog, capsys):
    op = integrated(EVENTS, dry_run=True, use_batch=False)
    with caplog.at_level("INFO"):
        assert op.execute({}) == {"would_cancel": EVENTS}
    text = caplog.text + capsys.readouterr().out
    assert (
        "A real run would send POST https://api.cronofy.com/v1/calendars/{calendar_id}/events for "
        "4 events across 3 calendars (one request per event), one event_id each:"
    ) in text
    assert "/v1/batch" not in text
    assert requests_mock.call_count == 0


def test_dry_run_counts_the_batches_and_the_pacing_they_would_meet(
    requests_mock, set_connection, caplog, capsys
):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=50, rate_limit_per_minute=2)
    events = [ev(f"cal_{i % 2}", f"e{i}") for i in range(120)]
    with caplog.at_level("INFO"):
        integrated(events, dry_run=True, deferrable=True).execute({})
    text = caplog.text + capsys.readouterr().out
    assert "for 120 events across 2 calendars (3 batches of up to 50 events, calendars mixed," in text
    # Two batches fill the minute, the third goes a minute later: one deferral.
    assert (
        "at this connection's rate limits (50/s, 2/min) the 3 batches would take about 1 min of "
        "pacing; with deferrable=True (defer_after=10 s) the run would defer 1 time, about 1 min of "
        "it deferred."
    ) in text
    assert requests_mock.call_count == 0


def test_dry_run_says_it_cannot_tell_whether_the_calendars_exist(requests_mock, caplog, capsys):
    with caplog.at_level("INFO"):
        integrated([ev("cal_known", "e1"), ev("cal_typo", "e2")], dry_run=True).execute({})
    text = caplog.text + capsys.readouterr().out
    assert (
        "Dry run: nothing was sent, so it cannot tell whether calendars 'cal_known', 'cal_typo' exist "
        "or the events are there: would_cancel lists every event given; a real run fails the events "
        "of an unknown calendar and goes on with the others (Cronofy answers 404)."
    ) in text
    many = [ev(f"cal_{i}", "e") for i in range(8)]
    with caplog.at_level("INFO"):
        integrated(many, dry_run=True).execute({})
    text = caplog.text + capsys.readouterr().out
    assert "calendars 'cal_0', 'cal_1', 'cal_2', 'cal_3', 'cal_4' and 3 more exist" in text
    assert requests_mock.call_count == 0


def test_no_secret_in_the_xcom_the_error_or_the_log(requests_mock, set_connection, caplog, capsys):
    set_connection(
        access_token=ACCESS_TOKEN,
        client_id=CLIENT_ID,
        refresh_token=REFRESH_TOKEN,
        rate_limit_per_second=0,
        rate_limit_per_minute=0,
    )

    def echo(request, context):  # a server echoing the credential back in every entry
        context.status_code = 207
        answers = []
        for entry in entries_of(request):
            status = 404 if "cal_b" in entry["relative_url"] else 422
            answers.append(
                {
                    "status": status,
                    "data": {
                        "errors": {
                            "event_id": [{"key": "x", "description": request.headers["Authorization"]}]
                        }
                    },
                }
            )
        return json.dumps({"batch": answers})

    requests_mock.post(BATCH, text=echo)
    ti = FakeTI()
    with caplog.at_level("DEBUG"), pytest.raises(CronofyBulkError) as info:
        integrated(EVENTS).execute({"ti": ti})
    logged = caplog.text + "".join(capsys.readouterr())
    texts = [str(info.value), json.dumps(ti.pushed), logged, *(f.reason for f in info.value.failures)]
    for text in texts:
        for secret in (*SECRETS, API_KEY):
            assert secret not in text
    assert len(info.value.failures) == 4
