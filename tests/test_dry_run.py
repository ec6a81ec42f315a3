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
    assert f"{method} (50 to a POST /v1/batch) https://api.cronofy.com/v1/calendars/cal%2F1/events" in text
    assert "would cancel event_id='e1'" in text


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
