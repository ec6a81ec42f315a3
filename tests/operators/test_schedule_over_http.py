"""ScheduleMeetingAgentOperator over real HTTP against the emulator, in each of the three things a
repeated scheduling key may do at Cronofy (replace, duplicate, refuse), with answers lost after
Cronofy acted: never two live agents for one key, and no key lost."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy.exceptions import CronofyBulkError
from airflow_provider_cronofy.operators.meeting_agents import ScheduleMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import FakeTI

MODES = ("replace", "duplicate", "refuse")
JOIN_TIME = "2031-05-01T10:00:00+02:00"


def rows(count: int, prefix: str = "m") -> list[dict[str, str]]:
    return [
        {
            "scheduling_key": f"{prefix}-{i}",
            "join_url": f"https://meet.example.com/{prefix}-{i}?pwd=secret{i}",
            "join_time": JOIN_TIME,
            "meeting_id": f"warehouse-{i}",  # a warehouse column Cronofy must not receive
        }
        for i in range(count)
    ]


def schedule(agents, **kwargs) -> ScheduleMeetingAgentOperator:
    return ScheduleMeetingAgentOperator(task_id="schedule", agents=agents, **kwargs)


@pytest.fixture(params=MODES)
def emulator(request, monkeypatch, tiny_backoff):
    with CronofyEmulator(
        rate_limit_per_second=None, rate_limit_per_minute=None, repeated_scheduling_key=request.param
    ) as emu:
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emu.airflow_connection_json(rate_limit_per_second=0, rate_limit_per_minute=0, timeout=0.4),
        )
        yield emu


def test_each_agent_is_scheduled_once_with_only_its_fields(emulator):
    result = schedule(rows(5)).execute({})
    assert result == {"scheduled": [f"m-{i}" for i in range(5)]}
    assert emulator.live_agent_counts == {f"m-{i}": 1 for i in range(5)}
    posts = [r for r in emulator.requests if r.method == "POST"]
    assert {tuple(sorted(r.json)) for r in posts} == {("join_time", "join_url", "scheduling_key")}
    assert {r.json["join_time"] for r in posts} == {"2031-05-01T08:00:00Z"}  # in UTC
    # Each key is cancelled before it is scheduled.
    for i in range(5):
        methods = [r.method for r in emulator.requests if r.json.get("scheduling_key") == f"m-{i}"]
        assert methods == ["DELETE", "POST"]


def test_a_rerun_leaves_one_agent_per_key(emulator):
    schedule(rows(4)).execute({})
    assert schedule(rows(4)).execute({}) == {"scheduled": [f"m-{i}" for i in range(4)]}
    assert emulator.live_agent_counts == {f"m-{i}": 1 for i in range(4)}


@pytest.mark.parametrize("lose", ["503_after_acting", "drop_after_acting", "read_timeout_after_acting"])
def test_an_answer_lost_after_cronofy_acted_leaves_one_agent(emulator, lose):
    if lose == "503_after_acting":
        emulator.fail_next(1, 503, method="POST", path="/v1/meeting_agents", after_acting=True)
    elif lose == "drop_after_acting":
        emulator.drop_next(1, method="POST", path="/v1/meeting_agents", after_acting=True)
    else:
        emulator.delay_next(1, 1.0, method="POST", path="/v1/meeting_agents", after_acting=True)
    result = schedule(rows(3), max_concurrency=1).execute({})
    assert result == {"scheduled": ["m-0", "m-1", "m-2"]}
    assert emulator.live_agent_counts == {"m-0": 1, "m-1": 1, "m-2": 1}
    # The lost one was cancelled and scheduled again: DELETE, POST (lost), DELETE, POST.
    methods = [r.method for r in emulator.requests if r.json.get("scheduling_key") == "m-0"]
    assert methods == ["DELETE", "POST", "DELETE", "POST"]


def test_answers_lost_every_time_fail_the_key_with_its_state_unknown_and_never_two(emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONOFY_DEFAULT",
        emulator.airflow_connection_json(rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=2),
    )
    emulator.fail_next(3, 503, method="POST", path="/v1/meeting_agents", after_acting=True)
    ti = FakeTI()
    with pytest.raises(CronofyBulkError) as info:
        schedule(rows(1)).execute({"ti": ti})
    assert info.value.results == {"scheduled": []}
    (failure,) = info.value.failures
    assert failure.item == "m-0" and failure.status_code == 503
    assert "may or may not have created the agent: at most one exists" in failure.reason
    assert emulator.live_agents("m-0") == 1  # each of the 3 POSTs acted; never two at once
    assert [r.method for r in emulator.requests] == ["DELETE", "POST"] * 3
    assert ti.pushed["failures"] == [{"scheduling_key": "m-0", "status_code": 503, "reason": failure.reason}]
    assert ti.pushed["partial_result"] == {"scheduled": []}
    assert ti.pushed["not_attempted"] == []
    # A re-run settles it: one agent, reported scheduled.
    assert schedule(rows(1)).execute({}) == {"scheduled": ["m-0"]}
    assert emulator.live_agents("m-0") == 1


def test_a_failure_before_cronofy_acted_is_retried_and_scheduled_once(emulator):
    emulator.fail_next(2, 503, method="POST", path="/v1/meeting_agents")  # refused, nothing acted
    assert schedule(rows(1)).execute({}) == {"scheduled": ["m-0"]}
    assert emulator.live_agents("m-0") == 1


def test_two_hundred_agents_go_out_under_the_pacer(emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONOFY_DEFAULT",
        emulator.airflow_connection_json(rate_limit_per_second=1000, rate_limit_per_minute=0),
    )
    result = schedule(rows(200)).execute({})
    assert len(result["scheduled"]) == 200
    assert set(emulator.live_agent_counts.values()) == {1} and len(emulator.live_agent_counts) == 200
    assert emulator.status_counts.get(429, 0) == 0
