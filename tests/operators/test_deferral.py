"""Deferrable bulk runs: segments under the rate limit, the carried state, resuming, results.

Most tests drive ``execute`` / ``execute_complete`` directly (requests-mock, or the emulator over
HTTP). One runs a real ``dag.test()`` through a minute window of the emulator's enforced rate
limit: the pacer and the emulator run on one clock, which the deferral moves past the window (the
triggerer's wait), so the minute takes no time.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_cronofy._compat import TaskDeferred
from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyError, CronofyInputError
from airflow_provider_cronofy.hooks import pacing
from airflow_provider_cronofy.hooks.pacing import RequestPacer
from airflow_provider_cronofy.operators import bulk
from airflow_provider_cronofy.operators.bulk import RunClock
from airflow_provider_cronofy.operators.deferral import (
    DEFAULT_DEFER_AFTER,
    FORMAT,
    CarriedState,
    fingerprint,
    items_for,
    requests_for,
    slots_for,
)
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from airflow_provider_cronofy.triggers.resume_at import ResumeAtTrigger
from tests.conftest import ACCESS_TOKEN, FakeTI, answer_by_key, sent_keys

US = "https://api.cronofy.com"
AGENTS = f"{US}/v1/meeting_agents"
EVENTS = f"{US}/v1/calendars/cal_1/events"
DAGS = Path(__file__).parent.parent / "dags"
KEYS = [f"key-{i}" for i in range(7)]


def scheduled(keys, **kwargs):
    kwargs.setdefault("deferrable", True)
    return CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys, **kwargs)


def state(keys, *, position, not_found=(), failed=(), sent_at=(), subject="scheduling_key"):
    """A carried state as a deferral writes it, through its public encoding."""
    progress = CarriedState(
        position=position,
        outcomes={i: "not_found" for i in not_found},
        failures={i: (status, reason, True) for i, status, reason in failed},
        sent_at=list(sent_at),
        pacer="another-process",
        deferrals=1,
    )
    return progress.encode(fingerprint(subject, keys))


@pytest.fixture(autouse=True)
def _fresh_pacers(monkeypatch):
    # Pacers are per process, shared by base URL and limits: each test starts with empty windows.
    monkeypatch.setattr(pacing, "_shared", {})


@pytest.fixture
def paced(set_connection):
    """A connection paced at 3 requests a minute (and no per-second limit)."""
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=3)


# ---------------------------------------------------------------------------- arguments


def test_arguments_and_defaults():
    op = CancelScheduledMeetingAgentOperator(task_id="t", scheduling_key="k")
    assert op.deferrable is False  # [operators] default_deferrable is not set in the tests
    assert op.defer_after == DEFAULT_DEFER_AFTER == 10.0
    op = CancelIntegratedMeetingAgentOperator(
        task_id="t", calendar_id="cal_1", event_id="e", deferrable=True, defer_after=2.5
    )
    assert (op.deferrable, op.defer_after) == (True, 2.5)


def test_default_deferrable_follows_airflow_config(tmp_path):
    # The default is read when the operators module is imported: check it in a fresh interpreter.
    env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True", "AIRFLOW_HOME": str(tmp_path)}
    code = (
        "from airflow_provider_cronofy.operators.meeting_agents import "
        "CancelScheduledMeetingAgentOperator as S, CancelIntegratedMeetingAgentOperator as I\n"
        "print(S(task_id='a', scheduling_key='k').deferrable, "
        "I(task_id='b', calendar_id='c', event_id='e').deferrable)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["True", "True"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deferrable": "yes"}, "deferrable must be True or False, got str: 'yes'"),
        ({"defer_after": 0}, "defer_after must be a number of seconds above 0"),
        ({"defer_after": -5}, "got int: -5"),
        ({"defer_after": "10"}, "got str: '10'"),
        ({"defer_after": True}, "got bool: True"),
        ({"defer_after": float("nan")}, "got float: nan"),
        ({"defer_after": float("inf")}, "got float: inf"),
        ({"defer_after": None}, "got NoneType: None"),
    ],
)
def test_bad_deferral_arguments_refused_before_any_request(requests_mock, paced, kwargs, message):
    with pytest.raises(CronofyInputError, match=message.replace("(", r"\(")):
        scheduled(KEYS, **kwargs).execute({})
    with pytest.raises(CronofyInputError, match=message.replace("(", r"\(")):
        CancelIntegratedMeetingAgentOperator(
            task_id="t", calendar_id="cal_1", event_id=["e"], **{"deferrable": True, **kwargs}
        ).execute({})
    assert requests_mock.call_count == 0


# ---------------------------------------------------------------------------- deferring


def test_defers_when_the_window_is_full_and_carries_positions_not_keys(requests_mock, paced):
    requests_mock.delete(AGENTS, text=answer_by_key({"key-1": 404}))
    before = datetime.now(timezone.utc)
    with pytest.raises(TaskDeferred) as info:
        scheduled(KEYS).execute({"ti": FakeTI()})
    # Three sends fill the minute window; the fourth is a minute away: more than 10 s.
    assert sent_keys(requests_mock) == ["key-0", "key-1", "key-2"]
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, ResumeAtTrigger)
    waited = (trigger.moment - before).total_seconds()
    assert 55 < waited < 65  # the window is 60 s (plus the pacer's margin) from the first send
    carried = deferred.kwargs["resume"]
    assert carried == trigger.carry  # the event carries it too (dag.test() keeps only the event)
    assert carried["position"] == 3
    assert carried["outcomes"] == {"not_found": [1, 1]}  # runs: [start, count]
    assert carried["failed"] == []
    assert carried["fingerprint"] == fingerprint("scheduling_key", KEYS)
    assert len(carried["sent_at"]) == 3
    assert not any(key in json.dumps(carried) for key in KEYS)


def test_a_run_that_fits_the_window_does_not_defer(requests_mock, paced):
    requests_mock.delete(AGENTS, status_code=202)
    assert scheduled(KEYS[:3]).execute({}) == {"cancelled": KEYS[:3], "not_found": []}


def test_short_waits_are_sat_out_in_the_worker(requests_mock, set_connection, stepped_clock):
    # 2 a second: the next slot is never more than about a second away, below defer_after.
    set_connection(rate_limit_per_second=2, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=202)
    assert scheduled(KEYS[:5]).execute({}) == {"cancelled": KEYS[:5], "not_found": []}
    (pacer,) = pacing._shared.values()
    assert pacer.waited > 0  # the pacer did wait (on the stepped clock), in the worker


def test_a_batch_slot_sends_many_items(set_connection):
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    set_connection(access_token=ACCESS_TOKEN)
    hook = CronofyHook()
    # What the operators' segments are sized by: their unit (a job; None for one request per key).
    assert (slots_for(scheduled(KEYS).unit(hook), 7), items_for(scheduled(KEYS).unit(hook), 3)) == (7, 3)
    integrated = CancelIntegratedMeetingAgentOperator(task_id="t", calendar_id="cal_1", event_id=["e"])
    assert (slots_for(integrated.unit(hook), 120), items_for(integrated.unit(hook), 2)) == (3, 100)
    batched = hook.event_cancellation_job(delete_event=False, use_batch=True)
    assert (slots_for(batched, 50), items_for(batched, 1)) == (1, 50)
    single = hook.event_cancellation_job(delete_event=False, use_batch=False)
    assert (slots_for(single, 50), items_for(single, 1)) == (50, 1)
    set_connection(access_token=ACCESS_TOKEN, batch_rate_cost="entries")
    hook = CronofyHook()
    entries = hook.event_cancellation_job(delete_event=False, use_batch=True)
    assert (slots_for(entries, 50), items_for(entries, 3), requests_for(entries, 50)) == (50, 3, 1)
    assert (slots_for(integrated.unit(hook), 50), items_for(integrated.unit(hook), 3)) == (50, 3)


def test_an_agent_takes_two_slots_cancel_then_schedule(set_connection):
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    set_connection()
    job = CronofyHook().agent_scheduling_job()
    assert (slots_for(job, 5), items_for(job, 5), items_for(job, 1)) == (10, 2, 0)
    assert requests_for(job, 5) == 10


def test_carried_state_survives_airflows_serialisation_of_next_kwargs():
    carried = {
        "resume": state(
            KEYS,
            position=5,
            not_found=[1, 2, 4],
            failed=[(3, 422, "422: bad key")],
            sent_at=[1.7e9, 1.7e9 + 0.5],
        )
    }
    from airflow.serialization.serialized_objects import BaseSerialization

    assert BaseSerialization.deserialize(BaseSerialization.serialize(carried)) == carried
    assert json.loads(json.dumps(carried)) == carried
    try:  # 3.2+: the task SDK's serde encodes next_kwargs too
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # 2.11, 3.0, 3.1 use BaseSerialization (checked above)
        return
    assert deserialize(serialize(carried)) == carried


def test_trigger_serialises_and_fires_with_the_carried_state():
    import asyncio

    carry = state(KEYS, position=3)
    trigger = ResumeAtTrigger(datetime.now(timezone.utc), carry)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cronofy.triggers.resume_at.ResumeAtTrigger"
    rebuilt = ResumeAtTrigger(**kwargs)

    async def first_event():
        async for event in rebuilt.run():
            return event

    event = asyncio.run(first_event())
    assert event.payload == {"resume": carry}


# ---------------------------------------------------------------------------- resuming


def test_resume_sends_only_the_rest_and_returns_what_a_plain_run_would(requests_mock, set_connection):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, text=answer_by_key({"key-1": 404, "key-5": 404}))
    carried = state(KEYS, position=4, not_found=[1])
    result = scheduled(KEYS).execute_complete({}, event=None, resume=carried)
    # Sent concurrently: in any order, each once.
    assert sorted(sent_keys(requests_mock)) == ["key-4", "key-5", "key-6"]
    expected = {"cancelled": ["key-0", "key-2", "key-3", "key-4", "key-6"], "not_found": ["key-1", "key-5"]}
    assert result == expected
    # The same answers without deferring give the same XCom.
    requests_mock.reset_mock()
    assert scheduled(KEYS, deferrable=False).execute({}) == expected


def test_resume_reads_the_state_from_the_event_when_next_kwargs_lost_it(requests_mock, set_connection):
    # dag.test() on every line resumes with next_kwargs = {"event": payload} only.
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=202)
    event = {"resume": state(KEYS, position=6)}
    assert scheduled(KEYS).execute_complete({}, event=event) == {"cancelled": KEYS, "not_found": []}
    assert sent_keys(requests_mock) == ["key-6"]


def test_resume_without_state_fails_instead_of_sending_everything_again(requests_mock, set_connection):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    with pytest.raises(CronofyError, match="without the state the run carried"):
        scheduled(KEYS).execute_complete({}, event=datetime.now(timezone.utc))
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    "changed",
    [KEYS[:-1], [*KEYS, "key-new"], ["key-x", *KEYS[1:]], list(reversed(KEYS))],
    ids=["shorter", "longer", "replaced", "reordered"],
)
def test_a_changed_list_is_refused_with_a_clear_error(requests_mock, set_connection, changed):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    carried = state(KEYS, position=3)
    with pytest.raises(
        CronofyInputError, match="scheduling keys changed while the task was deferred"
    ) as info:
        scheduled(changed).execute_complete({}, resume=carried)
    assert "stopped after 3 of 7 items" in str(info.value)
    assert f"now renders {len(changed)} items" in str(info.value)
    assert requests_mock.call_count == 0


def test_a_changed_calendar_is_refused_too(requests_mock, set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)
    events = ["e1", "e2", "e3"]
    # The list carried is of (calendar_id, event_id): the same event ids of another calendar differ.
    carried = state(
        [("cal_1", event_id) for event_id in events], position=1, subject="events delete_event=False"
    )
    op = CancelIntegratedMeetingAgentOperator(
        task_id="t", calendar_id="cal_2", event_id=events, deferrable=True
    )
    with pytest.raises(CronofyInputError, match="changed while the task was deferred"):
        op.execute_complete({}, resume=carried)
    assert requests_mock.call_count == 0
    # The same state resumes the run of the calendar it was carried for: only the calendar differed.
    requests_mock.post(EVENTS, status_code=202)
    same = CancelIntegratedMeetingAgentOperator(
        task_id="t", calendar_id="cal_1", event_id=events, deferrable=True, use_batch=False
    )
    assert same.execute_complete({}, resume=carried) == {"cancelled": events}
    assert sorted(json.loads(r.body)["event_id"] for r in requests_mock.request_history) == ["e2", "e3"]


def test_a_state_of_another_format_is_refused(requests_mock, set_connection):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    carried = {**state(KEYS, position=3), "format": FORMAT + 1}
    with pytest.raises(
        CronofyInputError, match=f"format {FORMAT + 1!r}, this provider reads format {FORMAT}"
    ):
        scheduled(KEYS).execute_complete({}, resume=carried)


def test_a_malformed_state_is_refused(requests_mock, set_connection):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    carried = {**state(KEYS, position=3), "outcomes": {"not_found": [1]}}  # a run without its count
    with pytest.raises(CronofyInputError, match="carried state is malformed"):
        scheduled(KEYS).execute_complete({}, resume=carried)
    assert requests_mock.call_count == 0


def test_a_failure_after_a_deferral_reports_every_item_and_keeps_every_success(requests_mock, set_connection):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=0)
    requests_mock.delete(AGENTS, text=answer_by_key({"key-5": 503}))
    carried = state(
        KEYS, position=4, not_found=[1], failed=[(2, 422, "DELETE /v1/meeting_agents: 422 key-2")]
    )
    ti = FakeTI()
    with pytest.raises(CronofyBulkError) as info:
        scheduled(KEYS).execute_complete({"ti": ti}, resume=carried)
    error = info.value
    assert [f.item for f in error.failures] == ["key-2", "key-5"]
    assert [f.status_code for f in error.failures] == [422, 503]
    assert "2 of 7 scheduling keys failed" in str(error)
    assert "'key-2': 422: DELETE /v1/meeting_agents: 422 key-2" in str(error)
    expected = {"cancelled": ["key-0", "key-3", "key-4", "key-6"], "not_found": ["key-1"]}
    assert error.results == expected
    assert ti.pushed["partial_result"] == expected
    assert sent_keys(requests_mock) == ["key-4", "key-5", "key-6"]


def test_a_failure_carried_without_sent_by_an_older_version_counts_as_sent(requests_mock, set_connection):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=202)
    carried = state(KEYS, position=4, failed=[(2, 422, "bad key-2")])
    assert carried["failed"] == [[2, 422, "bad key-2", True]]
    carried["failed"] = [[2, 422, "bad key-2"]]  # as 0.3.0 wrote it
    with pytest.raises(CronofyBulkError) as info:
        scheduled(KEYS).execute_complete({}, resume=carried)
    (failure,) = info.value.failures
    assert (failure.item, failure.status_code, failure.reason, failure.sent) == (
        "key-2",
        422,
        "bad key-2",
        True,
    )
    assert sorted(sent_keys(requests_mock)) == ["key-4", "key-5", "key-6"]  # concurrently: any order


def test_integrated_run_defers_and_resumes(requests_mock, set_connection):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=2)
    requests_mock.post(EVENTS, status_code=202)
    events = ["e1", "e2", "e3"]
    op = CancelIntegratedMeetingAgentOperator(
        task_id="t", calendar_id="cal_1", event_id=events, deferrable=True, use_batch=False
    )
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    assert [json.loads(r.body)["event_id"] for r in requests_mock.request_history] == ["e1", "e2"]
    carried = info.value.kwargs["resume"]
    assert carried["position"] == 2 and carried["outcomes"] == {}
    # A fresh process: its pacer starts empty, then counts the carried send times ...
    pacing._shared.clear()
    with pytest.raises(TaskDeferred) as again:
        op.execute_complete({}, resume=carried)
    assert requests_mock.call_count == 2  # ... so it does not overshoot the window: it defers again
    assert again.value.kwargs["resume"]["deferrals"] == 2
    # Once the window has passed (the carried times are a minute old), it finishes.
    pacing._shared.clear()
    aged = {**carried, "sent_at": [carried["sent_at"][0] - 62_000, *carried["sent_at"][1:]]}
    assert op.execute_complete({}, resume=aged) == {"cancelled": events}
    assert [json.loads(r.body)["event_id"] for r in requests_mock.request_history] == ["e1", "e2", "e3"]


# ---------------------------------------------------------------------------- over HTTP


def test_second_segment_failure_over_http_keeps_the_first_segments_successes(monkeypatch):
    keys = [f"http-{i}" for i in range(8)]
    with CronofyEmulator(unknown_scheduling_key_status=404) as emu:
        for key in keys:
            if key != "http-1":
                emu.schedule_agent(key)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emu.airflow_connection_json(rate_limit_per_second=0, rate_limit_per_minute=5, max_retries=0),
        )
        op = scheduled(keys, max_concurrency=2)
        with pytest.raises(TaskDeferred) as info:
            op.execute({"ti": FakeTI()})
        carried = info.value.kwargs["resume"]
        assert carried["position"] == 5
        # The triggerer waited out the window: a fresh process, its carried send times a minute old.
        pacing._shared.clear()
        carried["sent_at"] = [carried["sent_at"][0] - 62_000, *carried["sent_at"][1:]]
        emu.fail_next(1, 422, body=json.dumps({"errors": {"scheduling_key": [{"key": "invalid"}]}}))
        ti = FakeTI()
        with pytest.raises(CronofyBulkError) as failed:
            op.execute_complete({"ti": ti}, resume=carried)
        sent = Counter(r.json["scheduling_key"] for r in emu.requests if r.json)
    error = failed.value
    assert [f.status_code for f in error.failures] == [422]
    assert error.failures[0].item in keys[5:]
    succeeded = [k for k in keys if k not in ("http-1", error.failures[0].item)]
    assert error.results == {"cancelled": succeeded, "not_found": ["http-1"]}
    assert ti.pushed["partial_result"] == error.results
    assert all(key in error.results["cancelled"] for key in keys[:5] if key != "http-1")
    assert sent == Counter(keys)  # each key sent once, across both segments


# ---------------------------------------------------------------------------- dag.test(), a minute skipped


def dag_bag():
    try:  # 3.2+ (include_examples is gone in 3.3)
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(DAGS))
    except ImportError:  # 2.11, 3.0, 3.1
        from airflow.models import DagBag

        return DagBag(dag_folder=str(DAGS), include_examples=False)


def test_dag_test_run_defers_through_a_minute_window_and_resumes(
    metadata_db, monkeypatch, tmp_path, stepped_clock
):
    """15 keys at 10 a minute, enforced by the emulator: 10 sent, one deferral, 5 sent.

    The deferral's trigger fires at once and the clock the pacer and the emulator count on skips
    the wait it was given: for both, the minute has passed.
    """
    keys = [f"dag-{i:02d}" for i in range(15)]
    deferrals: list[dict] = []
    waits: list[float] = []
    resumes: list[object] = []
    original_defer = CancelScheduledMeetingAgentOperator.defer
    original_resume = CancelScheduledMeetingAgentOperator.execute_complete

    def counting_defer(self, **kwargs):
        deferrals.append(kwargs["kwargs"]["resume"])
        trigger = kwargs["trigger"]
        now = datetime.now(timezone.utc)
        waits.append((trigger.moment - now).total_seconds())
        stepped_clock.skip(waits[-1])  # the triggerer's wait, as the pacer and the emulator see it
        kwargs["trigger"] = ResumeAtTrigger(now, trigger.carry)
        return original_defer(self, **kwargs)

    def counting_resume(self, context, event=None, resume=None):
        resumes.append(event)
        return original_resume(self, context, event=event, resume=resume)

    monkeypatch.setattr(CancelScheduledMeetingAgentOperator, "defer", counting_defer)
    monkeypatch.setattr(CancelScheduledMeetingAgentOperator, "execute_complete", counting_resume)
    xcom_file = tmp_path / "xcom.json"
    # dag.test() on Airflow 3 runs only DAGs it finds in the DAGs folder's bundle, whose path
    # Airflow read when it was imported (the conftest points it at the example DAGs).
    import airflow.settings

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(DAGS))
    with CronofyEmulator(
        rate_limit_per_minute=10, unknown_scheduling_key_status=404, clock=stepped_clock
    ) as emu:
        for key in keys:
            if key != "dag-03":
                emu.schedule_agent(key)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT", emu.airflow_connection_json(rate_limit_per_minute=10)
        )
        run = (
            dag_bag()
            .dags["cronofy_deferrable_cancel"]
            .test(run_conf={"keys": keys, "xcom_file": str(xcom_file)})
        )
        sent = Counter(r.json["scheduling_key"] for r in emu.requests if r.json)
        statuses = emu.status_counts
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert len(deferrals) == 1 and len(resumes) == 1
    assert deferrals[0]["position"] == 10
    assert 55 < waits[0] < 65  # the minute window (plus the pacer's margin) from the first send
    assert json.loads(xcom_file.read_text()) == {
        "cancelled": [k for k in keys if k != "dag-03"],
        "not_found": ["dag-03"],
    }
    assert sent == Counter(keys)  # each key once, none re-sent after the deferral
    assert statuses.get(429, 0) == 0


def test_batched_events_defer_by_slots_not_items_over_http(monkeypatch):
    """A batch of 50 events costs one pacer slot: 2 slots a minute send 100 events, then defer."""
    events = [f"evt-{i:03d}" for i in range(120)]
    with CronofyEmulator() as emu:
        emu.add_access_token(ACCESS_TOKEN, account_id="acc_1")
        emu.add_calendar("cal_1", access_token=ACCESS_TOKEN)
        for event_id in events:
            emu.add_event("cal_1", event_id)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emu.airflow_connection_json(
                access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=2
            ),
        )
        op = CancelIntegratedMeetingAgentOperator(
            task_id="t", calendar_id="cal_1", event_id=events, delete_event=True, deferrable=True
        )
        with pytest.raises(TaskDeferred) as info:
            op.execute({})
        carried = info.value.kwargs["resume"]
        assert carried["position"] == 100
        assert len(emu.requests) == 2
        pacing._shared.clear()
        carried["sent_at"] = [carried["sent_at"][0] - 62_000, *carried["sent_at"][1:]]
        assert op.execute_complete({}, resume=carried) == {"cancelled": events}
        assert len(emu.requests) == 3
        assert all(emu.events[("cal_1", event_id)]["deleted"] for event_id in events)


# ---------------------------------------------------------------------------- the run's time, its lines


class Deferred(Exception):
    def __init__(self, seconds, carried):
        super().__init__(seconds)
        self.seconds = seconds
        self.carried = carried


class Clocks:
    """A monotonic and a wall clock moved together by the fake sends and the fake triggerer."""

    def __init__(self, wall: float, monotonic: float) -> None:
        self.wall_now = wall
        self.mono_now = monotonic

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


class Lines:
    """A task log that keeps each line."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message, *args):
        self.lines.append(message % args if args else message)

    warning = info


def process(clocks, keys, resume, log, monkeypatch):
    """One task process of a deferrable operator run at 3 requests a minute (requests-mock answers
    202): its own pacer and run clock on ``clocks``; each send is answered at once (its slot
    released by the transport), then half a second passes before the next. A deferral raises
    :class:`Deferred` with the wait and the carried state (the trigger's part)."""

    class Pacer(RequestPacer):
        def __init__(self, windows, **kwargs):
            super().__init__(windows, clock=clocks.mono, sleep=clocks.advance)

        def release(self, slot, *, replied=True):
            super().release(slot, replied=replied)
            clocks.advance(0.5)

    def defer(operator, seconds, carried):
        raise Deferred(seconds, carried)

    monkeypatch.setattr(pacing, "_shared", {})  # a fresh process: a pacer of its own
    monkeypatch.setattr(pacing, "RequestPacer", Pacer)
    monkeypatch.setattr(bulk, "RunClock", functools.partial(RunClock, clock=clocks.mono, wall=clocks.wall))
    monkeypatch.setattr(bulk, "defer_for", defer)
    monkeypatch.setattr(CancelScheduledMeetingAgentOperator, "log", property(lambda self: log))
    # One request at a time: the half seconds add up as the lines below say.
    operator = scheduled(keys, max_concurrency=1)
    if resume is None:
        return operator.execute({})
    return operator.execute_complete({}, resume=resume)


def triggerer_waits(clocks, deferred, task_start=5.0):
    """The wait in the triggerer and a task start; the carried send times age as the wall clock did
    (the pacer turns them into epoch times by the real clock, which did not move)."""
    clocks.advance(deferred.seconds + task_start)
    carried = dict(deferred.carried)
    carried["sent_at"] = [
        carried["sent_at"][0] - round((deferred.seconds + task_start) * 1000),
        *carried["sent_at"][1:],
    ]
    return carried


def test_a_deferred_runs_done_line_gives_the_whole_time_and_the_time_deferred(
    set_connection, requests_mock, monkeypatch
):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=3)
    requests_mock.delete(AGENTS, status_code=202)
    t0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    clocks = Clocks(wall=t0, monotonic=1_000.0)
    first, second, third = Lines(), Lines(), Lines()
    with pytest.raises(Deferred) as one:
        process(clocks, KEYS, None, first, monkeypatch)
    # Three sends (1.5 s) fill the minute; the next slot is 58.5 s away.
    assert one.value.seconds == pytest.approx(58.5)
    carried = one.value.carried
    assert (carried["started_at"], carried["deferred"], carried["deferred_at"]) == (t0, 0.0, t0 + 1.5)
    assert json.loads(json.dumps(carried)) == carried  # JSON-native still
    from airflow.serialization.serialized_objects import BaseSerialization

    assert BaseSerialization.deserialize(BaseSerialization.serialize({"resume": carried})) == {
        "resume": carried
    }
    carried = triggerer_waits(clocks, one.value)  # 63.5 s deferred

    clocks.mono_now = 77.0  # another process: its monotonic clock has nothing to do with the first's
    with pytest.raises(Deferred) as two:
        process(clocks, KEYS, carried, second, monkeypatch)
    carried = two.value.carried
    assert (carried["started_at"], carried["deferred"], carried["deferred_at"]) == (t0, 63.5, t0 + 66.5)
    carried = triggerer_waits(clocks, two.value)  # 58.5 + 5 s deferred again

    clocks.mono_now = 5.0
    result = process(clocks, KEYS, carried, third, monkeypatch)
    assert result == {"cancelled": KEYS, "not_found": []}
    # 130.5 s from the first execute to the end, 127 s of it deferred: not the last process's 0.5 s.
    assert third.lines[-1] == (
        "Done: 7 scheduling keys in 130.5 s (127.0 s of it deferred, 2 deferrals): 7 cancelled, "
        "0 not found, 0 failed."
    )
    # One line when it defers (until when, done and left), one when it resumes; nothing else.
    assert first.lines == [
        "Deferring until 22:14:20 UTC, 58.5 s from now (deferral 1): the rate limit's next slot is "
        "more than 10 s away; 3 of 7 scheduling keys done, 4 left. The worker slot is free until then."
    ]
    assert second.lines == [
        "Resumed after deferral 1 (63.5 s deferred): 3 of 7 scheduling keys already done (0 failed), "
        "4 to go.",
        "Deferring until 22:15:25 UTC, 58.5 s from now (deferral 2): the rate limit's next slot is "
        "more than 10 s away; 6 of 7 scheduling keys done, 1 left. The worker slot is free until then.",
    ]
    assert third.lines[0] == (
        "Resumed after deferral 2 (63.5 s deferred): 6 of 7 scheduling keys already done (0 failed), 1 to go."
    )
    assert len(third.lines) == 2


def test_a_run_that_never_deferred_is_timed_on_the_monotonic_clock():
    from airflow_provider_cronofy.operators.bulk import RunClock

    clocks = Clocks(wall=1_700_000_000.0, monotonic=10.0)
    run_clock = RunClock(clock=clocks.mono, wall=clocks.wall)
    clocks.advance(2.5)
    assert run_clock.elapsed() == 2.5
    assert run_clock.took() == "2.5 s"  # no word of deferrals when there were none


def test_a_wall_clock_set_back_never_gives_a_negative_time():
    from airflow_provider_cronofy.operators.bulk import RunClock

    clocks = Clocks(wall=1_700_000_000.0, monotonic=10.0)
    run_clock = RunClock(clock=clocks.mono, wall=clocks.wall)
    run_clock.resumed(started_at=1_700_000_100.0, deferred=60.0, deferrals=1)  # "started" in the future
    assert run_clock.elapsed() == 0.0
    assert run_clock.deferred == 0.0


def text_of(caplog, capsys):
    """The task log's lines: Airflow 3 prints them (structlog), 2.11 records them and prints a copy."""
    records, printed = caplog.text, capsys.readouterr().out
    return records if "airflow_provider_cronofy" in records else printed


def test_the_operator_logs_one_line_per_deferral_and_per_resume(requests_mock, paced, caplog, capsys):
    import logging

    requests_mock.delete(AGENTS, status_code=202)
    with caplog.at_level(logging.INFO), pytest.raises(TaskDeferred) as info:
        scheduled(KEYS).execute({"ti": FakeTI()})
    deferring = text_of(caplog, capsys)
    caplog.clear()
    carried = info.value.kwargs["resume"]
    assert deferring.count("Deferring until ") == 1
    assert "3 of 7 scheduling keys done, 4 left" in deferring
    assert "Resumed" not in deferring and "Done:" not in deferring
    # The triggerer waited out the window (its carried times a minute old), a fresh process resumes.
    pacing._shared.clear()
    aged = {**carried, "sent_at": [carried["sent_at"][0] - 62_000, *carried["sent_at"][1:]]}
    with caplog.at_level(logging.INFO), pytest.raises(TaskDeferred):
        scheduled(KEYS).execute_complete({}, resume=aged)
    resuming = text_of(caplog, capsys)
    assert resuming.count("Resumed after deferral 1 (") == 1
    assert resuming.count("Deferring until ") == 1  # 3 more fill the window again: deferral 2


def test_a_resumed_operator_run_reports_the_whole_runs_time(requests_mock, set_connection, caplog, capsys):
    import logging
    import re
    import time

    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=202)
    now = time.time()
    carried = {
        **state(KEYS, position=4),
        "started_at": now - 132.0,
        "deferred": 50.0,
        "deferred_at": now - 70.0,
    }
    carried["deferrals"] = 2
    with caplog.at_level(logging.INFO):
        assert scheduled(KEYS).execute_complete({}, resume=carried)["cancelled"] == KEYS
    text = text_of(caplog, capsys)
    assert re.search(r"Resumed after deferral 2 \(70\.\d s deferred\)", text), text
    done = re.search(
        r"Done: 7 scheduling keys in ([\d.]+) s \(([\d.]+) s of it deferred, 2 deferrals\)", text
    )
    assert done, text
    assert 132.0 <= float(done.group(1)) < 140.0
    assert 120.0 <= float(done.group(2)) < 121.0  # 50 s before, 70 s for the latest deferral


def test_a_state_without_the_runs_start_still_resumes(requests_mock, set_connection, caplog, capsys):
    # Written by 0.2.0, before the start travelled with the state: the time counts from the resume.
    import logging

    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=202)
    carried = state(KEYS, position=4)
    for name in ("started_at", "deferred", "deferred_at"):
        del carried[name]
    with caplog.at_level(logging.INFO):
        assert scheduled(KEYS).execute_complete({}, resume=carried)["cancelled"] == KEYS
    text = text_of(caplog, capsys)
    assert "Resumed after deferral 1: 4 of 7" in text
    assert "Done: 7 scheduling keys in " in text and "deferred," not in text


# ---------------------------------------------------------------------------- a dry run's estimate


class Settings:
    def __init__(self, per_second, per_minute):
        self.rate_limit_per_second = per_second
        self.rate_limit_per_minute = per_minute


class Job:
    def __init__(self, unit_size=1, cost_per_entry=False):
        self.unit_size = unit_size
        self.cost_per_entry = cost_per_entry


@pytest.mark.parametrize(
    ("count", "took", "deferred"),
    [
        (10_000, "19 min 9 s", "19 times, about 16 min 9 s"),  # 19 gaps of 51 s
        (100_000, "3 h 19 min", "199 times, about 2 h 49 min"),
        (501, "1 min", "1 time, about 51.0 s"),
    ],
)
def test_the_estimate_line_words_long_runs_in_minutes_and_hours(count, took, deferred):
    from airflow_provider_cronofy.operators.deferral import pacing_estimate_line

    line = pacing_estimate_line(Settings(50, 500), Job(), count, deferrable=True, defer_after=10.0)
    assert f"would take about {took} of pacing" in line
    assert f"the run would defer {deferred} of it deferred." in line


def test_the_estimate_line_counts_batches_and_their_slots():
    from airflow_provider_cronofy.operators.deferral import pacing_estimate_line

    line = pacing_estimate_line(Settings(0, 2), Job(unit_size=50), 120, deferrable=False, defer_after=10.0)
    assert line.startswith(
        "at this connection's rate limits (no per-second limit, 2/min) the 3 batches would take about 1 min"
    )
    assert "deferrable=False: the worker waits through it all (deferrable=True would defer 1 time" in line
    line = pacing_estimate_line(
        Settings(10, 0), Job(unit_size=10, cost_per_entry=True), 25, deferrable=False, defer_after=10.0
    )
    assert "the 3 batches, counted as 25 requests (batch_rate_cost=entries), would take about 2.0 s" in line
    assert "deferrable=False" not in line  # nothing to say of deferring when no wait is long
