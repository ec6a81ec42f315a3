"""The bulk operators' shared run (operators/bulk.py): the tally of a run across segments, its
progress lines, and its end: the error's message (one explanation per cause, see
tests/test_exceptions.py for the lines themselves), every item kept in ``failures``.

The runner logs progress from its own loop, which wakes on real time (it speaks up when no result
comes in), so the progress test waits: a second of pacing, at a line every quarter second.
"""

from __future__ import annotations

import json
import re
import threading

import pytest

from airflow_provider_cronofy.exceptions import (
    CronofyBulkError,
    CronofyFatalBulkError,
    ItemFailure,
    stopped_line,
)
from airflow_provider_cronofy.hooks import runner
from airflow_provider_cronofy.hooks.runner import RunResult
from airflow_provider_cronofy.operators.bulk import RunClock, Tally
from airflow_provider_cronofy.operators.deferral import CarriedState
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import ACCESS_TOKEN, API_KEY, FakeTI

AGENTS = "https://api.cronofy.com/v1/meeting_agents"
EVENTS = "https://api.cronofy.com/v1/calendars/cal_1/events"


class RecordingLog:
    """A task log that notes, with each line, how many requests the emulator had answered then."""

    def __init__(self, emulator: CronofyEmulator) -> None:
        self.emulator = emulator
        self.lines: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def info(self, message: str, *args: object) -> None:
        answered = len(self.emulator.requests)
        with self._lock:
            self.lines.append((message % args if args else message, answered))

    warning = info


@pytest.mark.parametrize("max_concurrency", [None, 1, 8])
def test_progress_lines_while_the_pacer_waits_in_real_time_report_what_was_answered(
    monkeypatch, max_concurrency
):
    monkeypatch.setattr(runner, "PROGRESS_EVERY_SECONDS", 0.25)
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        keys = [f"key-{i}" for i in range(4)]
        for key in keys:
            emulator.schedule_agent(key)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emulator.airflow_connection_json(rate_limit_per_second=2, rate_limit_per_minute=0),
        )
        log = RecordingLog(emulator)
        # The operator's task log is where the run's lines go (BaseOperator.log is a property).
        monkeypatch.setattr(CancelScheduledMeetingAgentOperator, "log", property(lambda self: log))
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, max_concurrency=max_concurrency
        )
        result = operator.execute({})
    assert result["cancelled"] == keys
    progress = [(line, answered) for line, answered in log.lines if line.startswith("Progress:")]
    # 4 keys at 2/s take 1 s: a line each quarter second while it sends, not only when a result
    # comes in (the 2 answers of the first window come at once, the other 2 a second later).
    assert len(progress) >= 2, log.lines
    for line, answered in progress:
        done = int(re.match(r"Progress: (\d+)/4 scheduling keys done", line).group(1))  # type: ignore[union-attr]
        # What the emulator answered by then, less at most the two answers of one window on the way back.
        assert answered - 2 <= done <= answered, (line, answered)
    assert log.lines[-1][0].startswith("Done: 4 scheduling keys in ")


# ---------------------------------------------------------------- the tally across segments


def test_a_tally_places_each_segment_at_its_position():
    tally = Tally(6)
    tally.add(RunResult(["cancelled", None, "not_found"], {1: ItemFailure("b", 503, "x")}), 0)
    tally.add(RunResult(["cancelled", "cancelled"]), 3)
    assert tally.outcomes == ["cancelled", None, "not_found", "cancelled", "cancelled", None]
    assert list(tally.failures) == [1] and tally.failures[1].item == "b"
    assert (tally.position, tally.stopped, tally.not_attempted) == (5, False, [])


def test_a_stopped_segment_leaves_the_rest_of_the_list_not_attempted():
    tally = Tally(8)
    tally.add(RunResult(["cancelled", "cancelled"]), 0)
    # The second segment (items 2 to 5) stopped at item 3: 4 and 5 were never sent, nor 6 and 7.
    tally.add(RunResult(["cancelled", None, None, None], {1: ItemFailure("d", 401, "x")}, [2, 3], True), 2)
    assert tally.stopped
    assert tally.not_attempted == [4, 5, 6, 7]
    assert tally.position == 8  # nothing more is sent


def test_a_resumed_tally_is_what_the_carried_state_says():
    items = ["a", "b", "c", "d", "e"]
    state = CarriedState(position=3, outcomes={1: "not_found"}, failures={2: (422, "bad", True)})
    tally = Tally.resumed(state, items, "cancelled")
    assert tally.outcomes == ["cancelled", "not_found", None, None, None]
    assert tally.failures == {2: ItemFailure("c", 422, "bad", True)}
    assert tally.position == 3


def test_a_carried_tally_names_only_the_outcomes_that_are_not_the_default():
    # A deferral of a run of 10,000 keys carries the few not_found, not 10,000 "cancelled".
    tally = Tally(5)
    tally.add(RunResult(["cancelled", "not_found", None, "cancelled"], {2: ItemFailure("c", 422, "bad")}), 0)
    state = tally.carried([1.7e9], "pacer-id", RunClock(), "cancelled")
    assert state.outcomes == {1: "not_found"}
    assert state.failures == {2: (422, "bad", True)}
    assert state.position == 4
    # ... and a resumed tally reads them back as they were.
    resumed = Tally.resumed(state, ["a", "b", "c", "d", "e"], "cancelled")
    assert resumed.outcomes == tally.outcomes
    assert resumed.failures == tally.failures


# ---------------------------------------------------------------- the end: the error and its XComs


def test_a_wrong_api_key_stops_the_run_and_its_message_says_what_was_not_attempted(
    set_connection, requests_mock
):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=401)
    keys = [f"deal-{number}" for number in range(40)]
    with pytest.raises(CronofyFatalBulkError) as info:
        CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys, max_concurrency=1).execute(
            {}
        )
    error = info.value
    (failure,) = error.failures
    assert failure.item == "deal-0" and failure.status_code == 401
    assert str(error) == "\n".join(
        [
            "1 of 40 scheduling keys failed (0 cancelled, 0 not found):",
            f"  - 'deal-0': 401: {failure.reason}",
            "The run stopped at an error every other item would meet too: 39 items were not attempted.",
        ]
    )
    assert error.not_attempted == keys[1:]
    assert requests_mock.call_count == 1


def test_a_wrong_api_key_over_many_keys_is_explained_once(set_connection, requests_mock):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=401)
    keys = [f"deal-{number}" for number in range(40)]
    ti = FakeTI()
    with pytest.raises(CronofyFatalBulkError) as info:
        CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, max_concurrency=20
        ).execute({"ti": ti})
    error = info.value
    message = str(error)
    assert message.count("Cronofy rejected the API key") == 1
    sent = [json.loads(r.body)["scheduling_key"] for r in requests_mock.request_history]
    failed = [failure.item for failure in error.failures]
    assert failed == [key for key in keys if key in sent]  # every sent key kept, in input order
    assert error.not_attempted == [key for key in keys if key not in sent]
    assert f"{len(failed)} of 40 scheduling keys failed" in message
    assert (
        (f"  - {len(failed)} failed: 401: " in message) if len(failed) > 1 else ("'deal-0': 401" in message)
    )
    assert message.endswith(stopped_line(len(error.not_attempted)))
    assert [entry["item"] for entry in ti.pushed["failures"]] == failed
    assert all(entry["status_code"] == 401 for entry in ti.pushed["failures"])
    assert ti.pushed["not_attempted"] == error.not_attempted
    assert API_KEY not in message


def test_mixed_failures_keep_every_item_in_failures(set_connection, requests_mock, no_sleep, tiny_backoff):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=0)
    statuses = {"k1": 422, "k3": 503, "k4": 503, "k6": 503}

    def answer(request, context):
        context.status_code = statuses.get(json.loads(request.body)["scheduling_key"], 202)
        return ""

    requests_mock.delete(AGENTS, text=answer)
    with pytest.raises(CronofyBulkError) as info:
        CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=[f"k{n}" for n in range(8)], max_concurrency=1
        ).execute({})
    error = info.value
    assert not error.fatal
    assert [(f.item, f.status_code) for f in error.failures] == [
        ("k1", 422),
        ("k3", 503),
        ("k4", 503),
        ("k6", 503),
    ]
    message = str(error)
    assert message.startswith("4 of 8 scheduling keys failed (4 cancelled, 0 not found):\n")
    assert "  - 'k1': 422: " in message
    assert (
        "  - 3 failed: 503: Cronofy answered 503 Service Unavailable; gave up after 1 attempt(s).\n"
        in message
    )
    assert "    'k3', 'k4', 'k6'" in message
    assert "not attempted" not in message


def test_a_fatal_error_of_a_run_of_one_item_does_not_speak_of_other_items(set_connection, requests_mock):
    set_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.delete(AGENTS, status_code=401)
    with pytest.raises(CronofyFatalBulkError) as info:
        CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=["k1"]).execute({})
    (failure,) = info.value.failures
    assert str(info.value) == (
        f"1 of 1 scheduling key failed (0 cancelled, 0 not found):\n  - 'k1': 401: {failure.reason}"
    )


def event_answers(statuses):
    """A requests-mock callback answering each event with its own status (default 202)."""

    def callback(request, context):
        context.status_code = statuses.get(json.loads(request.body)["event_id"], 202)
        return ""

    return callback


def test_the_message_names_the_events_of_one_calendar_in_its_own_plural(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.post(EVENTS, text=event_answers({"e2": 422}))
    with pytest.raises(CronofyBulkError) as info:
        CancelIntegratedMeetingAgentOperator(
            task_id="t", calendar_id="cal_1", event_id=["e1", "e2", "e3"], use_batch=False
        ).execute({})
    assert str(info.value).startswith(
        "1 of 3 events of calendar 'cal_1' failed (2 cancelled):\n  - 'e2': 422: "
    )
    assert info.value.results == {"cancelled": ["e1", "e3"]}


def test_a_stop_after_every_event_of_a_batch_was_sent_says_so(set_connection, requests_mock):
    set_connection(access_token=ACCESS_TOKEN, rate_limit_per_second=0, rate_limit_per_minute=0)
    requests_mock.post("https://api.cronofy.com/v1/batch", status_code=401)
    events = [{"calendar_id": f"cal_{n}", "event_id": f"e{n}"} for n in range(3)]
    with pytest.raises(CronofyFatalBulkError) as info:
        CancelIntegratedMeetingAgentOperator(task_id="t", events=events).execute({})
    error = info.value
    assert [f.item for f in error.failures] == events
    assert error.not_attempted == []
    message = str(error)
    assert message.startswith("3 of 3 events failed (0 cancelled):\n  - 3 failed: 401: ")
    assert (
        "    calendar 'cal_0', event 'e0', calendar 'cal_1', event 'e1', calendar 'cal_2', event 'e2'"
        in message
    )
    assert message.endswith("every other event would meet too: every event had been sent.")
    assert requests_mock.call_count == 1
