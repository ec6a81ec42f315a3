"""The cancel operators over requests-mock: inputs, bulk semantics, return values, failures."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_cronofy._compat import TaskDeferred
from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyConfigError, CronofyInputError
from airflow_provider_cronofy.hooks import runner
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from tests.conftest import ACCESS_TOKEN, FakeTI, answer_by_key, sent_keys

US = "https://api.cronofy.com"
AGENTS = f"{US}/v1/meeting_agents"
EVENTS = f"{US}/v1/calendars/cal_1/events"


def scheduled(keys, **kwargs):
    return CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys, **kwargs)


def integrated(event_ids, **kwargs):
    kwargs.setdefault("calendar_id", "cal_1")
    kwargs.setdefault("use_batch", False)  # one request per event; the batch tests are in test_batch.py
    return CancelIntegratedMeetingAgentOperator(task_id="cancel_evt", event_id=event_ids, **kwargs)


@pytest.fixture(autouse=True)
def _conn(set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)


# ---------------------------------------------------------------- scheduled agents


def test_one_key(requests_mock):
    requests_mock.delete(AGENTS, status_code=202)
    assert scheduled("k1").execute({}) == {"cancelled": ["k1"], "not_found": []}
    assert sent_keys(requests_mock) == ["k1"]


@pytest.mark.parametrize("container", [list, tuple])
def test_list_keeps_order_sends_duplicates_once(requests_mock, container):
    requests_mock.delete(AGENTS, text=answer_by_key({"b": 404}))
    result = scheduled(container(["c", "a", "b", "a", "c"])).execute({})
    assert result == {"cancelled": ["c", "a"], "not_found": ["b"]}
    assert sent_keys(requests_mock) == ["c", "a", "b"]


def test_keys_sent_exactly_as_given(requests_mock):
    requests_mock.delete(AGENTS, status_code=202)
    scheduled(["inner space", "Ünïcode-key"]).execute({})
    assert sent_keys(requests_mock) == ["inner space", "Ünïcode-key"]


@pytest.mark.parametrize("padded", [" padded", "padded ", "deal-1    ", "\tdeal-1", "deal-1\n"])
def test_a_padded_key_is_refused_naming_it_and_the_fix(requests_mock, padded):
    # A warehouse CHAR(n) column pads its values: Cronofy would take them for other keys.
    with pytest.raises(CronofyInputError) as info:
        scheduled(["ok", padded]).execute({})
    text = str(info.value)
    assert f"scheduling_key[1] {padded!r}" in text
    assert "leading or trailing white space" in text
    assert repr(padded.strip()) in text
    assert requests_mock.call_count == 0


def test_empty_list_sends_nothing(requests_mock):
    assert scheduled([]).execute({}) == {"cancelled": [], "not_found": []}
    assert requests_mock.call_count == 0


def test_one_session_for_the_whole_list(requests_mock, monkeypatch):
    import requests

    sessions = []
    original = requests.Session.__init__

    def init(self, *a, **k):
        sessions.append(self)
        original(self, *a, **k)

    monkeypatch.setattr(requests.Session, "__init__", init)
    requests_mock.delete(AGENTS, status_code=202)
    scheduled([f"k{i}" for i in range(20)]).execute({})
    assert len(sessions) == 1
    assert requests_mock.call_count == 20


BAD_KEYS = [
    (None, "got NoneType"),
    (5, "got int"),
    (5.5, "got float"),
    ("", "non-blank"),
    ("   ", "non-blank"),
    (["ok", 3], "scheduling_key[1] must be a string"),
    (["ok", None], "scheduling_key[1] must be a string"),
    (["ok", ""], "scheduling_key[1] must be a non-blank"),
    ([["nested"]], "scheduling_key[0] must be a string, got list"),
    ({"k": 1}, "got dict"),
    ({"a", "b"}, "got set"),
    (b"bytes", "got bytes"),
    ("['a', 'b']", "looks like a list rendered to a string"),
    ('["a"]', "looks like a list rendered to a string"),
]


@pytest.mark.parametrize(("value", "message"), BAD_KEYS)
def test_bad_keys_refused_before_any_request(requests_mock, value, message):
    with pytest.raises(CronofyInputError, match="scheduling_key") as info:
        scheduled(value).execute({})
    assert message in str(info.value)
    assert requests_mock.call_count == 0


def test_every_bad_item_named_at_once(requests_mock):
    with pytest.raises(CronofyInputError) as info:
        scheduled(["a", 1, "b", None, " "]).execute({})
    text = str(info.value)
    assert "3 of the 5 items" in text
    for index in (1, 3, 4):
        assert f"scheduling_key[{index}]" in text
    assert requests_mock.call_count == 0


def test_missing_api_key_before_any_request(requests_mock, set_connection):
    set_connection(password=None)
    with pytest.raises(CronofyConfigError, match="API key"):
        scheduled(["a", "b"]).execute({})
    assert requests_mock.call_count == 0


def test_partial_failure_attempts_all_and_lists_each(requests_mock, no_sleep):
    requests_mock.delete(AGENTS, text=answer_by_key({"bad1": 422, "gone": 404, "bad2": 503}))
    ti = FakeTI()
    with pytest.raises(CronofyBulkError) as info:
        scheduled(["a", "bad1", "b", "gone", "bad2", "c"]).execute({"ti": ti})
    error = info.value
    assert [f.item for f in error.failures] == ["bad1", "bad2"]
    assert [f.status_code for f in error.failures] == [422, 503]
    assert "'bad1': 422" in str(error)
    assert "'bad2': 503" in str(error)
    assert "2 of 6" in str(error)
    assert error.results == {"cancelled": ["a", "b", "c"], "not_found": ["gone"]}
    assert ti.pushed["partial_result"] == error.results
    # Every key attempted; the 503 one with its whole retry budget (6 requests).
    assert sent_keys(requests_mock).count("bad2") == 6
    assert {"a", "b", "c", "gone", "bad1"} <= set(sent_keys(requests_mock))


@pytest.mark.parametrize("status", [401, 402, 403, 423])
def test_fatal_status_stops_the_run(requests_mock, status):
    # One request in flight: the stop is exact (see tests/hooks/test_engine.py for the bounded version).
    requests_mock.delete(AGENTS, text=answer_by_key({"k2": status}))
    with pytest.raises(CronofyBulkError) as info:
        scheduled(["k1", "k2", "k3", "k4", "k5"], max_concurrency=1).execute({})
    assert sent_keys(requests_mock) == ["k1", "k2"]
    assert info.value.not_attempted == ["k3", "k4", "k5"]
    assert "3 items were not attempted" in str(info.value)
    assert info.value.results["cancelled"] == ["k1"]


def test_a_stopped_run_pushes_every_item_to_one_of_three_xcoms(requests_mock):
    # partial_result, failures and not_attempted: a downstream audit loses no key.
    requests_mock.delete(AGENTS, text=answer_by_key({"k2": 401}))
    ti = FakeTI()
    with pytest.raises(CronofyBulkError):
        scheduled(["k1", "k2", "k3", "k4"], max_concurrency=1).execute({"ti": ti})
    assert ti.pushed["partial_result"] == {"cancelled": ["k1"], "not_found": []}
    assert [failure["item"] for failure in ti.pushed["failures"]] == ["k2"]
    assert ti.pushed["not_attempted"] == ["k3", "k4"]


def test_progress_is_logged(requests_mock, monkeypatch, caplog, capsys):
    monkeypatch.setattr(runner, "PROGRESS_EVERY_SECONDS", 0.0)
    requests_mock.delete(AGENTS, status_code=202)
    with caplog.at_level(logging.INFO):
        scheduled(["a", "b", "c"]).execute({})
    # The task logger is stdlib logging on Airflow 2 and structlog (printed) on Airflow 3.
    text = caplog.text + capsys.readouterr().out
    assert "Progress: 1/3 scheduling keys done, 0 failed," in text
    assert "Progress: 3/3 scheduling keys done, 0 failed," in text
    assert "Done: 3 scheduling keys" in text


def test_template_fields():
    assert set(CancelScheduledMeetingAgentOperator.template_fields) == {"scheduling_key", "cronofy_conn_id"}
    assert set(CancelIntegratedMeetingAgentOperator.template_fields) == {
        "calendar_id",
        "event_id",
        "events",
        "cronofy_conn_id",
    }


def test_init_does_not_validate_or_connect(requests_mock):
    # Templates are rendered after __init__: it must store arguments unchanged.
    op = scheduled("{{ ti.xcom_pull('keys') }}", cronofy_conn_id="{{ var.value.conn }}")
    assert op.scheduling_key == "{{ ti.xcom_pull('keys') }}"
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------- integrated agents


def test_remove_agent_is_default(requests_mock):
    requests_mock.post(EVENTS, status_code=202)
    assert integrated(["e1", "e2"]).execute({}) == {"cancelled": ["e1", "e2"]}
    assert [json.loads(r.body) for r in requests_mock.request_history] == [
        {"event_id": "e1", "meeting_agent": {"profile_id": "none"}},
        {"event_id": "e2", "meeting_agent": {"profile_id": "none"}},
    ]


def test_delete_event(requests_mock):
    requests_mock.delete(EVENTS, status_code=202)
    assert integrated("e1", delete_event=True).execute({}) == {"cancelled": ["e1"]}
    assert requests_mock.last_request.method == "DELETE"
    assert json.loads(requests_mock.last_request.body) == {"event_id": "e1"}


def test_unknown_calendar_stops_and_names_it(requests_mock):
    requests_mock.post(f"{US}/v1/calendars/cal_x/events", status_code=404)
    with pytest.raises(CronofyBulkError) as info:
        integrated(["e1", "e2", "e3"], calendar_id="cal_x", max_concurrency=1).execute({})
    assert "cal_x" in str(info.value)
    assert requests_mock.call_count == 1
    assert info.value.not_attempted == ["e2", "e3"]


def test_event_422_fails_item_others_go_on(requests_mock):
    def callback(request, context):
        context.status_code = 422 if json.loads(request.body)["event_id"] == "bad" else 202
        return ""

    requests_mock.post(EVENTS, text=callback)
    with pytest.raises(CronofyBulkError) as info:
        integrated(["e1", "bad", "e2"]).execute({})
    assert info.value.results == {"cancelled": ["e1", "e2"]}
    assert [f.item for f in info.value.failures] == ["bad"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"event_id": None}, "event_id must be a string"),
        ({"event_id": 12}, "event_id must be a string"),
        ({"event_id": ""}, "event_id must be a non-blank"),
        ({"event_id": ["e1", 2]}, "event_id[1]"),
        ({"event_id": "e1", "delete_event": "yes"}, "delete_event must be True or False"),
        ({"event_id": "e1", "delete_event": 1}, "delete_event must be True or False"),
        ({"event_id": "e1", "calendar_id": None}, "calendar_id must be a string"),
        ({"event_id": "e1", "calendar_id": "  "}, "calendar_id must be a non-blank"),
        ({"event_id": "e1", "calendar_id": ".."}, "dot segment"),
        ({"event_id": "e1", "calendar_id": "cal 1"}, "whitespace"),
        ({"event_id": "e1", "calendar_id": "cal_1 "}, "leading or trailing white space"),
        ({"event_id": ["e1", "e2 "]}, "event_id[1] 'e2 ' has leading or trailing white space"),
        ({"event_id": "e1   "}, "event_id 'e1   ' has leading or trailing white space"),
        ({"event_id": "e1", "calendar_id": ["cal_1"]}, "calendar_id must be a string"),
    ],
)
def test_integrated_bad_input_sends_nothing(requests_mock, kwargs, message):
    event_ids = kwargs.pop("event_id")
    with pytest.raises(CronofyInputError) as info:
        integrated(event_ids, **kwargs).execute({})
    assert message in str(info.value)
    assert requests_mock.call_count == 0


def test_integrated_without_token_fails_before_request(requests_mock, set_connection):
    set_connection()
    with pytest.raises(CronofyConfigError, match="access token"):
        integrated(["e1"]).execute({})
    assert requests_mock.call_count == 0


def test_integrated_empty_list(requests_mock):
    assert integrated([]).execute({}) == {"cancelled": []}
    assert requests_mock.call_count == 0


def test_all_not_found_warns(requests_mock, caplog, capsys):
    requests_mock.delete(AGENTS, status_code=404)
    with caplog.at_level(logging.WARNING):
        assert scheduled(["a", "b"]).execute({}) == {"cancelled": [], "not_found": ["a", "b"]}
    assert "404 for all 2 scheduling keys" in caplog.text + capsys.readouterr().out


def test_malformed_url_stops_the_run(requests_mock, set_connection):
    # A host name requests cannot encode (a label over 63 characters once IDNA-encoded): every
    # item would fail the same way, so the first stops the run.
    host = "https://" + "\u00e9" * 70 + ".example.com"
    set_connection(host=host, rate_limit_per_second=0, rate_limit_per_minute=0)
    with pytest.raises(CronofyBulkError) as info:
        scheduled(["a", "b", "c"], max_concurrency=1).execute({})
    assert info.value.not_attempted == ["b", "c"]


@pytest.mark.parametrize("text", ["('a', 'b')", "{'a': 1}", '{"k": "v"}', "('solo',)"])
def test_rendered_tuple_or_dict_text_refused(requests_mock, text):
    with pytest.raises(CronofyInputError, match="rendered to a string"):
        scheduled(text).execute({})
    assert requests_mock.call_count == 0


# "(a, b)" holds a comma: given alone it is refused as comma-joined ids (issue 17), so it goes in
# a one-item list, where items are sent exactly as given and the bracket check still applies.
@pytest.mark.parametrize("key", ["(meeting)", "{abc}", ["(a, b)"], "x[1]"])
def test_bracketed_keys_that_are_not_literals_are_sent(requests_mock, key):
    requests_mock.delete(AGENTS, status_code=202)
    expected = key if isinstance(key, list) else [key]
    assert scheduled(key).execute({}) == {"cancelled": expected, "not_found": []}


class Interrupted(BaseException):
    """Stands for AirflowTaskTimeout, which execution_timeout raises in the middle of a request."""


def test_interrupted_run_keeps_what_succeeded(requests_mock):
    def callback(request, context):
        if json.loads(request.body)["scheduling_key"] == "c":
            raise Interrupted()
        context.status_code = 404 if json.loads(request.body)["scheduling_key"] == "b" else 202
        return ""

    requests_mock.delete(AGENTS, text=callback)
    ti = FakeTI()
    with pytest.raises(Interrupted):
        scheduled(["a", "b", "c", "d"], max_concurrency=1).execute({"ti": ti})
    assert ti.pushed["partial_result"] == {"cancelled": ["a"], "not_found": ["b"]}


# ---------------------------------------------------------------- fail fast: what Airflow retries


def test_a_bulk_run_stopped_by_a_fatal_error_fails_fast(requests_mock):
    from airflow_provider_cronofy._compat import AirflowFailException
    from airflow_provider_cronofy.exceptions import CronofyFatalBulkError

    requests_mock.delete(AGENTS, text=answer_by_key({"k2": 403}))
    with pytest.raises(CronofyBulkError) as info:  # users' `except CronofyBulkError` still works
        scheduled(["k1", "k2", "k3"], max_concurrency=1).execute({})
    assert isinstance(info.value, CronofyFatalBulkError)
    assert isinstance(info.value, AirflowFailException)
    assert info.value.fatal


def test_a_bulk_run_with_only_transient_failures_keeps_airflow_retries(requests_mock, no_sleep):
    from airflow_provider_cronofy._compat import AirflowException, AirflowFailException

    requests_mock.delete(AGENTS, text=answer_by_key({"k2": 503}))
    with pytest.raises(CronofyBulkError) as info:
        scheduled(["k1", "k2", "k3"], max_concurrency=1).execute({})
    assert isinstance(info.value, AirflowException)
    assert not isinstance(info.value, AirflowFailException)
    assert not info.value.fatal
    assert info.value.results["cancelled"] == ["k1", "k3"]


# ---------------------------------------------------------------- ScheduleMeetingAgentOperator


def agent_rows(count, join_time="2031-05-01T10:00:00Z"):
    return [
        {
            "scheduling_key": f"s-{i}",
            "join_url": f"https://meet.example.com/s-{i}?pwd=p{i}",
            "join_time": join_time,
        }
        for i in range(count)
    ]


def schedule_op(agents, **kwargs):
    from airflow_provider_cronofy.operators.meeting_agents import ScheduleMeetingAgentOperator

    return ScheduleMeetingAgentOperator(task_id="schedule", agents=agents, **kwargs)


def test_schedule_sends_the_pair_per_agent_and_returns_keys_in_input_order(requests_mock, set_connection):
    set_connection()
    requests_mock.delete(AGENTS, status_code=202)
    requests_mock.post(AGENTS, status_code=202)
    rows = agent_rows(3)
    rows[1]["status"] = "confirmed"  # a warehouse column: never sent
    assert schedule_op(rows).execute({}) == {"scheduled": ["s-0", "s-1", "s-2"]}
    posts = [r.json() for r in requests_mock.request_history if r.method == "POST"]
    assert sorted(p["scheduling_key"] for p in posts) == ["s-0", "s-1", "s-2"]
    assert all(set(p) == {"scheduling_key", "join_url", "join_time"} for p in posts)


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        (
            [{"scheduling_key": "a", "join_url": "http://x.com/a", "join_time": "2031-01-01T00:00:00Z"}],
            r"agents\[0\]\.join_url",
        ),
        (
            [{"scheduling_key": "a", "join_url": "https://x.com/a", "join_time": "2031-01-01T00:00:00"}],
            r"agents\[0\]\.join_time",
        ),
        (
            [{"scheduling_key": "a", "join_url": "https://x.com/a", "join_time": "2001-01-01T00:00:00Z"}],
            r"agents\[0\]\.join_time",
        ),
        (
            [{"scheduling_key": "", "join_url": "https://x.com/a", "join_time": "2031-01-01T00:00:00Z"}],
            r"agents\[0\]\.scheduling_key",
        ),
        (["not a dict"], r"agents\[0\]"),
        ("a string", "list"),
    ],
)
def test_schedule_bad_input_sends_nothing(requests_mock, set_connection, agents, message):
    set_connection()
    with pytest.raises(CronofyInputError, match=message):
        schedule_op(agents).execute({})
    assert requests_mock.request_history == []


def test_schedule_one_key_for_two_meetings_is_refused_and_identical_rows_sent_once(
    requests_mock, set_connection
):
    set_connection()
    requests_mock.delete(AGENTS, status_code=202)
    requests_mock.post(AGENTS, status_code=202)
    conflicting = [agent_rows(1)[0], {**agent_rows(1)[0], "join_url": "https://meet.example.com/other"}]
    with pytest.raises(CronofyInputError, match=r"agents\[0\].*agents\[1\]|agents\[1\].*agents\[0\]"):
        schedule_op(conflicting).execute({})
    assert requests_mock.request_history == []
    assert schedule_op(agent_rows(1) * 2).execute({}) == {"scheduled": ["s-0"]}
    assert [r.method for r in requests_mock.request_history] == ["DELETE", "POST"]


def test_schedule_partial_failure_pushes_what_succeeded_and_each_failure(requests_mock, set_connection):
    set_connection()
    requests_mock.delete(AGENTS, status_code=202)

    def post(request, context):
        context.status_code = 422 if request.json()["scheduling_key"] == "s-1" else 202
        return '{"errors": {"join_url": [{"key": "errors.invalid", "description": "not a meeting"}]}}'

    requests_mock.post(AGENTS, text=post)
    ti = FakeTI()
    with pytest.raises(CronofyBulkError) as info:
        schedule_op(agent_rows(3)).execute({"ti": ti})
    assert info.value.results == {"scheduled": ["s-0", "s-2"]}
    assert ti.pushed["partial_result"] == {"scheduled": ["s-0", "s-2"]}
    (failure,) = ti.pushed["failures"]
    assert failure["scheduling_key"] == "s-1" and failure["status_code"] == 422
    assert "not a meeting" in failure["reason"]
    assert "1 of 3 agents failed (2 scheduled)" in str(info.value)


def test_schedule_empty_list_sends_nothing(requests_mock, set_connection):
    set_connection()
    assert schedule_op([]).execute({}) == {"scheduled": []}
    assert requests_mock.request_history == []


def test_schedule_dry_run_sends_nothing_and_logs_no_passcode(requests_mock, set_connection, caplog, capsys):
    set_connection()
    with caplog.at_level(logging.INFO):
        assert schedule_op(agent_rows(2), dry_run=True).execute({}) == {"would_schedule": ["s-0", "s-1"]}
    text = caplog.text + capsys.readouterr().out  # stdlib logging on Airflow 2, structlog on 3
    assert requests_mock.request_history == []
    assert "would schedule scheduling_key='s-0'" in text
    assert "DELETE then POST https://api.cronofy.com/v1/meeting_agents for 2 agents" in text
    assert "pwd=" not in text


def test_schedule_defers_by_two_slots_per_agent(requests_mock, set_connection, monkeypatch):
    from airflow_provider_cronofy.hooks import pacing

    monkeypatch.setattr(pacing, "_shared", {})
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=5)
    requests_mock.delete(AGENTS, status_code=202)
    requests_mock.post(AGENTS, status_code=202)
    with pytest.raises(TaskDeferred) as info:
        schedule_op(agent_rows(4), deferrable=True).execute({"ti": FakeTI()})
    # Five slots a minute hold two whole pairs: the third agent waits for the next window.
    assert [r.method for r in requests_mock.request_history] == ["DELETE", "POST"] * 2
    carried = info.value.kwargs["resume"]
    assert carried["position"] == 2
    assert not any("s-0" in str(value) for value in carried.values())


def test_schedule_resumes_after_a_deferral_and_sends_only_the_rest(
    requests_mock, set_connection, monkeypatch
):
    from airflow_provider_cronofy.hooks import pacing

    monkeypatch.setattr(pacing, "_shared", {})
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=5)
    requests_mock.delete(AGENTS, status_code=202)
    requests_mock.post(AGENTS, status_code=202)
    rows = agent_rows(3)
    with pytest.raises(TaskDeferred) as info:
        schedule_op(rows, deferrable=True).execute({"ti": FakeTI()})
    carried = info.value.kwargs["resume"]
    requests_mock.reset_mock()
    monkeypatch.setattr(pacing, "_shared", {})  # the resume is another process: a fresh pacer
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    result = schedule_op(rows, deferrable=True).execute_complete({}, event=None, resume=carried)
    assert result == {"scheduled": ["s-0", "s-1", "s-2"]}
    assert [r.json()["scheduling_key"] for r in requests_mock.request_history] == ["s-2", "s-2"]
    # The list is checked against the carried fingerprint: another list is refused, nothing sent.
    requests_mock.reset_mock()
    with pytest.raises(CronofyInputError, match="changed while the task was deferred"):
        schedule_op(agent_rows(4), deferrable=True).execute_complete({}, event=None, resume=carried)
    assert requests_mock.request_history == []
