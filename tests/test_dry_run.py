"""dry_run=True on both operators: the same checks as a real run, a log of what would be sent,
nothing sent (proved against requests-mock and against the emulator)."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_cronofy.exceptions import CronofyConfigError, CronofyInputError
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import ACCESS_TOKEN, API_KEY, CLIENT_ID, REFRESH_TOKEN, SECRETS


def scheduled(keys, **kwargs):
    return CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys, dry_run=True, **kwargs)


def integrated(event_ids, **kwargs):
    kwargs.setdefault("calendar_id", "cal_1")
    return CancelIntegratedMeetingAgentOperator(task_id="cancel", event_id=event_ids, dry_run=True, **kwargs)


@pytest.fixture(autouse=True)
def _conn(set_connection):
    set_connection(access_token=ACCESS_TOKEN)


def test_scheduled_dry_run_returns_the_keys_and_sends_nothing(requests_mock, caplog, capsys):
    with caplog.at_level(logging.INFO):
        result = scheduled(["c", "a", "b", "a", "c"]).execute({})
    assert result == {"would_cancel": ["c", "a", "b"]}
    assert requests_mock.call_count == 0
    text = caplog.text + capsys.readouterr().out
    assert "A real run would send DELETE https://api.cronofy.com/v1/meeting_agents for 3 items" in text
    assert "would cancel scheduling_key='b'" in text
    assert not any(secret in text for secret in SECRETS)


@pytest.mark.parametrize(("delete_event", "method"), [(False, "POST"), (True, "DELETE")])
def test_integrated_dry_run_returns_the_events_and_sends_nothing(
    requests_mock, caplog, capsys, delete_event, method
):
    with caplog.at_level(logging.INFO):
        result = integrated(["e2", "e1", "e2"], delete_event=delete_event, calendar_id="cal/1").execute({})
    assert result == {"would_cancel": ["e2", "e1"]}
    assert requests_mock.call_count == 0
    text = caplog.text + capsys.readouterr().out
    # The requests go to /v1/batch, each entry the calendar's own request.
    assert (
        "A real run would send POST https://api.cronofy.com/v1/batch for 2 items (1 batch of up to 50 "
        f"events, each entry a {method} /v1/calendars/cal%2F1/events), one event_id each:"
    ) in text
    assert "would cancel event_id='e1'" in text


@pytest.mark.parametrize(("delete_event", "method"), [(False, "POST"), (True, "DELETE")])
def test_integrated_dry_run_without_batches_names_the_calendars_path(
    requests_mock, caplog, capsys, delete_event, method
):
    with caplog.at_level(logging.INFO):
        integrated(["e2", "e1"], delete_event=delete_event, use_batch=False).execute({})
    text = caplog.text + capsys.readouterr().out
    assert (
        f"A real run would send {method} https://api.cronofy.com/v1/calendars/cal_1/events for 2 items "
        "(one request per event), one event_id each:"
    ) in text
    assert "/v1/batch" not in text


def test_integrated_dry_run_counts_batches_of_50(requests_mock, caplog, capsys):
    with caplog.at_level(logging.INFO):
        integrated([f"e{i}" for i in range(101)]).execute({})
    text = caplog.text + capsys.readouterr().out
    assert "/v1/batch for 101 items (3 batches of up to 50 events, each entry a POST" in text
    assert "the 3 batches would take about 0.0 s of pacing" in text


def test_integrated_dry_run_with_batches_counted_per_entry(requests_mock, set_connection, caplog, capsys):
    # batch_rate_cost=entries: a batch holds at most the smallest limit, and costs one slot per entry.
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=10, batch_rate_cost="entries")
    with caplog.at_level(logging.INFO):
        integrated([f"e{i}" for i in range(25)]).execute({})
    text = caplog.text + capsys.readouterr().out
    assert "for 25 items (3 batches of up to 10 events," in text
    assert "the 3 batches, counted as 25 requests (batch_rate_cost=entries), would take about 2.0 s" in text


def test_integrated_dry_run_cannot_tell_whether_the_calendar_exists(requests_mock, caplog, capsys):
    with caplog.at_level(logging.INFO):
        integrated(["e1"], calendar_id="cal_maybe").execute({})
    text = caplog.text + capsys.readouterr().out
    assert (
        "Dry run: nothing was sent, so it cannot tell whether calendar 'cal_maybe' exists or the "
        "events are there: would_cancel lists every event given; a real run stops at an unknown "
        "calendar (Cronofy answers 404)."
    ) in text


def test_scheduled_dry_run_cannot_tell_which_keys_are_scheduled(requests_mock, caplog, capsys):
    with caplog.at_level(logging.INFO):
        scheduled(["k1"]).execute({})
    text = caplog.text + capsys.readouterr().out
    assert "nothing was sent, so it cannot tell which of these keys are scheduled" in text
    assert "a real run reports those Cronofy answers 404 for as not_found." in text


# ---------------------------------------------------------------------------- the estimate


KEYS_30 = [f"key-{i}" for i in range(30)]


@pytest.fixture
def ten_a_minute(set_connection, monkeypatch):
    from airflow_provider_cronofy.hooks import pacing

    monkeypatch.setattr(pacing, "_shared", {})  # each test starts with empty windows
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_minute=10)


def test_dry_run_estimates_the_pacing_and_the_deferrals(requests_mock, ten_a_minute, caplog, capsys):
    # The run of issue 24: 30 keys at 10 a minute, deferrable.
    with caplog.at_level(logging.INFO):
        scheduled(KEYS_30, deferrable=True).execute({})
    text = caplog.text + capsys.readouterr().out
    assert (
        "Dry run: at this connection's rate limits (50/s, 10/min) the 30 requests would take about "
        "2 min of pacing; with deferrable=True (defer_after=10 s) the run would defer 2 times, about "
        "2 min of it deferred. An estimate of the pacing only: each answer's latency adds to it, and "
        "each resume a task start."
    ) in text
    with caplog.at_level(logging.INFO):
        scheduled(KEYS_30, deferrable=True, defer_after=90).execute({})
    assert "the run would not defer. An estimate" in caplog.text + capsys.readouterr().out
    assert requests_mock.call_count == 0


def test_dry_run_of_a_run_that_is_not_deferrable_says_what_deferring_would_do(
    requests_mock, ten_a_minute, caplog, capsys
):
    with caplog.at_level(logging.INFO):
        scheduled(KEYS_30).execute({})
    text = caplog.text + capsys.readouterr().out
    assert (
        "the 30 requests would take about 2 min of pacing; deferrable=False: the worker waits through "
        "it all (deferrable=True would defer 2 times, about 2 min of it). An estimate of the pacing "
        "only: each answer's latency adds to it."
    ) in text


def test_dry_run_without_pacing_says_so(requests_mock, set_connection, caplog, capsys):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)
    with caplog.at_level(logging.INFO):
        scheduled(KEYS_30).execute({})
    text = caplog.text + capsys.readouterr().out
    assert "this connection's pacing is off" in text
    assert "the 30 requests would go as fast as Cronofy answers them." in text


def test_the_estimated_deferrals_are_the_real_runs(requests_mock, ten_a_minute, caplog, capsys):
    import re

    from airflow_provider_cronofy._compat import TaskDeferred
    from airflow_provider_cronofy.hooks import pacing

    with caplog.at_level(logging.INFO):
        scheduled(KEYS_30, deferrable=True).execute({})
    estimated = re.search(r"the run would defer (\d+) times", caplog.text + capsys.readouterr().out)
    assert estimated
    requests_mock.delete("https://api.cronofy.com/v1/meeting_agents", status_code=202)
    op = CancelScheduledMeetingAgentOperator(task_id="real", scheduling_key=KEYS_30, deferrable=True)
    deferrals, resume = 0, None
    while True:
        try:
            result = op.execute({}) if resume is None else op.execute_complete({}, resume=resume)
            break
        except TaskDeferred as deferred:
            deferrals += 1
            resume = deferred.kwargs["resume"]
            # The triggerer waited out the minute; a fresh process resumes (the send times aged).
            pacing._shared.clear()
            resume["sent_at"] = [resume["sent_at"][0] - 61_000, *resume["sent_at"][1:]]
    assert result == {"cancelled": KEYS_30, "not_found": []}
    assert deferrals == int(estimated.group(1)) == 2
    assert requests_mock.call_count == 30


def test_dry_run_of_a_long_list_logs_a_bounded_number_of_lines(requests_mock, caplog, capsys):
    keys = [f"k{i}" for i in range(250)]
    with caplog.at_level(logging.INFO):
        assert scheduled(keys).execute({}) == {"would_cancel": keys}
    text = caplog.text + capsys.readouterr().out
    assert "would cancel scheduling_key='k99'" in text
    assert "would cancel scheduling_key='k100'" not in text
    assert "... and 150 more." in text


def test_dry_run_of_an_empty_list(requests_mock):
    assert scheduled([]).execute({}) == {"would_cancel": []}
    assert integrated([]).execute({}) == {"would_cancel": []}
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("value", [None, ["a", 3], "['a', 'b']", ""])
def test_dry_run_refuses_bad_input_like_a_real_run(requests_mock, value):
    with pytest.raises(CronofyInputError) as dry:
        scheduled(value).execute({})
    with pytest.raises(CronofyInputError) as real:
        CancelScheduledMeetingAgentOperator(task_id="real", scheduling_key=value).execute({})
    assert str(dry.value) == str(real.value)
    assert requests_mock.call_count == 0


def test_dry_run_checks_the_credential_the_run_would_need(requests_mock, set_connection):
    set_connection(password=None, access_token=ACCESS_TOKEN)
    with pytest.raises(CronofyConfigError, match="API key"):
        scheduled(["k"]).execute({})
    set_connection(password=API_KEY)
    with pytest.raises(CronofyConfigError, match="access token"):
        integrated(["e"]).execute({})
    # An access token that can be refreshed is enough, and is not refreshed by a dry run.
    set_connection(password=API_KEY, client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN)
    assert integrated(["e"]).execute({}) == {"would_cancel": ["e"]}
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("extra", [{"data_center": "mars"}, {"timeout": -1}, {"max_concurrency": 500}])
def test_dry_run_checks_the_settings(requests_mock, set_connection, extra):
    set_connection(access_token=ACCESS_TOKEN, **extra)
    with pytest.raises(CronofyConfigError):
        scheduled(["k"]).execute({})
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_dry_run_must_be_a_bool(requests_mock, value):
    with pytest.raises(CronofyInputError, match="dry_run must be True or False"):
        CancelScheduledMeetingAgentOperator(task_id="t", scheduling_key="k", dry_run=value).execute({})
    assert requests_mock.call_count == 0


def test_airflow_own_dry_run_method_still_works():
    # BaseOperator.dry_run() renders template fields (`airflow tasks test --dry-run`): not shadowed.
    from airflow_provider_cronofy._compat import BaseOperator

    if not hasattr(BaseOperator, "dry_run"):
        pytest.skip("this Airflow line's BaseOperator has no dry_run() to shadow (3.0)")
    op = scheduled(["k"])
    assert callable(op.dry_run)
    op.dry_run()


def test_dry_run_reaches_no_emulator(monkeypatch):
    with CronofyEmulator() as emu:
        emu.add_access_token(ACCESS_TOKEN)
        emu.add_calendar("cal_1", access_token=ACCESS_TOKEN)
        emu.schedule_agent("k1")
        emu.add_event("cal_1", "e1")
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT", emu.airflow_connection_json(access_token=ACCESS_TOKEN)
        )
        assert scheduled(["k1", "k2"]).execute({}) == {"would_cancel": ["k1", "k2"]}
        assert integrated(["e1"]).execute({}) == {"would_cancel": ["e1"]}
        assert integrated(["e1"], delete_event=True, use_batch=False).execute({}) == {"would_cancel": ["e1"]}
        assert emu.requests_received == 0
        assert emu.connections_opened == 0
        assert emu.requests == []
        assert emu.scheduled_agents["k1"]["status"] != "cancelled"
        assert emu.events[("cal_1", "e1")]["meeting_agent"] is not None


# ---------------------------------------------------------------------------- the docs


def test_the_dry_run_page_shows_what_the_samples_tasks_log(requests_mock, set_connection, caplog, capsys):
    """docs/howto/dry-run.md quotes the log of docs/samples/dry_run.py's third task: each line is real."""
    import importlib.util
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "howto" / "dry-run.md").read_text()
    (quoted,) = re.findall(r"```text\n(.*?)```", page, re.S)
    lines = quoted.strip().splitlines()
    assert len(lines) >= 5
    spec = importlib.util.spec_from_file_location("dry_run_sample", root / "docs" / "samples" / "dry_run.py")
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    set_connection(access_token=ACCESS_TOKEN)  # the default rate limits, the default host
    with caplog.at_level(logging.INFO):
        sample.dag.get_task("how_long_the_backlog_would_take").execute({})
    logged = caplog.text + capsys.readouterr().out
    for line in lines:
        assert line in logged
    assert requests_mock.call_count == 0
