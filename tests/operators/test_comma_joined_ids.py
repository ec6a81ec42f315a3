"""One id given as a string holding commas is refused before any request; list items are sent
exactly as given, commas included (through both operators, over requests-mock and the emulator)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy._compat import AirflowFailException
from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from tests.conftest import ACCESS_TOKEN, connect_to_emulator, sent_keys

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

AGENTS = "https://api.cronofy.com/v1/meeting_agents"
EVENTS = "https://api.cronofy.com/v1/calendars/cal_1/events"


@pytest.fixture
def _conn(set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)


@pytest.mark.usefixtures("_conn")
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_comma_joined_scheduling_key_is_refused_and_nothing_is_sent(requests_mock, dry_run):
    operator = CancelScheduledMeetingAgentOperator(
        task_id="cancel", scheduling_key="deal-1,deal-2,deal-3", dry_run=dry_run
    )
    with pytest.raises(CronofyInputError) as info:
        operator.execute({})
    assert isinstance(info.value, AirflowFailException)  # Airflow spends no retry on it
    message = str(info.value)
    assert "scheduling_key 'deal-1,deal-2,deal-3' looks like 3 ids joined by commas" in message
    assert "Pass a list instead (['deal-1', 'deal-2', 'deal-3'])" in message
    assert "one-item list (['deal-1,deal-2,deal-3'])" in message
    assert requests_mock.call_count == 0


@pytest.mark.usefixtures("_conn")
def test_a_comma_joined_event_id_is_refused_and_nothing_is_sent(requests_mock):
    operator = CancelIntegratedMeetingAgentOperator(
        task_id="cancel", calendar_id="cal_1", event_id="evt_1, evt_2", use_batch=False
    )
    with pytest.raises(CronofyInputError, match=r"event_id 'evt_1, evt_2' looks like 2 ids joined"):
        operator.execute({})
    assert requests_mock.call_count == 0


@pytest.mark.usefixtures("_conn")
@pytest.mark.parametrize("container", [list, tuple])
def test_list_items_holding_commas_are_sent_exactly_as_given(requests_mock, container):
    requests_mock.delete(AGENTS, status_code=202)
    operator = CancelScheduledMeetingAgentOperator(
        task_id="cancel", scheduling_key=container(["deal-1,deal-2", "plain"])
    )
    assert operator.execute({}) == {"cancelled": ["deal-1,deal-2", "plain"], "not_found": []}
    assert sent_keys(requests_mock) == ["deal-1,deal-2", "plain"]


@pytest.mark.usefixtures("_conn")
def test_an_event_id_holding_a_comma_in_a_one_item_list_is_sent(requests_mock):
    requests_mock.post(EVENTS, status_code=202)
    operator = CancelIntegratedMeetingAgentOperator(
        task_id="cancel", calendar_id="cal_1", event_id=["evt,1"], use_batch=False
    )
    assert operator.execute({}) == {"cancelled": ["evt,1"]}
    assert [json.loads(r.body)["event_id"] for r in requests_mock.request_history] == ["evt,1"]


def test_over_http_the_emulator_receives_nothing_for_a_joined_string(cronofy_emulator, monkeypatch):
    cronofy_emulator.add_access_token("tok")
    cronofy_emulator.add_calendar("cal_1", access_token="tok")
    cronofy_emulator.add_event("cal_1", "evt,1")
    cronofy_emulator.add_event("cal_1", "evt")
    connect_to_emulator(monkeypatch, cronofy_emulator, access_token="tok")
    for use_batch in (True, False):
        with pytest.raises(CronofyInputError):
            CancelIntegratedMeetingAgentOperator(
                task_id="cancel", calendar_id="cal_1", event_id="evt,1", use_batch=use_batch
            ).execute({})
    assert cronofy_emulator.requests == []
    assert cronofy_emulator.events[("cal_1", "evt,1")]["meeting_agent"] == "cronofy"

    result = CancelIntegratedMeetingAgentOperator(
        task_id="cancel", calendar_id="cal_1", event_id=["evt,1"], use_batch=False
    ).execute({})
    assert result == {"cancelled": ["evt,1"]}
    assert [r.json["event_id"] for r in cronofy_emulator.requests] == ["evt,1"]
    assert cronofy_emulator.events[("cal_1", "evt,1")]["meeting_agent"] is None
    assert cronofy_emulator.events[("cal_1", "evt")]["meeting_agent"] == "cronofy"
