"""The nightly sync example DAG (example_dags/sync_meeting_agents.py): a SQLite warehouse,
dag.test() and the emulator over HTTP, in each of the three things a repeated scheduling key may
do at Cronofy; and its SQL and bookkeeping functions alone, without a DAG run."""

from __future__ import annotations

import importlib.util
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelScheduledMeetingAgentOperator,
    ScheduleMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import EXAMPLE_DAGS, seeded_warehouse
from tests.test_example_dags import dag_bag

DAG_ID = "cronofy_sync_meeting_agents"
SEED_SQL = Path(EXAMPLE_DAGS) / "data" / "meetings_sync.sql"
API_KEY = "sync-test-api-key-52c7"
MODES = ("replace", "duplicate", "refuse")


def key(meeting_id: int) -> str:
    return f"crm-meeting-{meeting_id}"


# What the seed holds (example_dags/data/meetings_sync.sql); keys in the order the DAG sends them.
TO_SCHEDULE = [key(5001), key(5002), key(5009)]  # new, new, moved since its agent was scheduled
TO_CANCEL = [key(5004), key(5005), key(5006)]  # called off with an agent
NOT_AT_CRONOFY = key(5006)  # its state row says scheduled, but Cronofy answers 404
ALREADY_SCHEDULED = key(5003)  # confirmed, its agent scheduled as the meeting stands
UNTOUCHED = [key(5007), key(5008)]  # called off and never scheduled; held yesterday
CONFIRMED = [*TO_SCHEDULE, ALREADY_SCHEDULED]


def load_dag_module():
    """The DAG file as a module, for its functions (the DagBag gives only the DAG)."""
    spec = importlib.util.spec_from_file_location(
        "sync_meeting_agents", Path(EXAMPLE_DAGS) / "sync_meeting_agents.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = load_dag_module()


def query(path: Path, sql: str, *parameters: object) -> list[tuple]:
    with sqlite3.connect(path) as db:
        rows = db.execute(sql, parameters).fetchall()
    db.close()
    return rows


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    """A SQLite warehouse seeded from example_dags/data, behind the ``meetings_warehouse`` connection."""
    return seeded_warehouse(tmp_path / "warehouse.db", SEED_SQL, monkeypatch)


def start_emulator(warehouse: Path, monkeypatch, mode: str, **extra: object) -> CronofyEmulator:
    """An emulator holding the agents the seed's state table records (but NOT_AT_CRONOFY's), as
    scheduled by earlier nights, with ``cronofy_default`` pointing at it: one request in flight,
    so the keys arrive in the DAG's order and a scripted fault hits the first."""
    emulator = CronofyEmulator(
        api_key=API_KEY, unknown_scheduling_key_status=404, repeated_scheduling_key=mode
    )
    emulator.start()
    for scheduling_key, join_url, join_time in query(
        warehouse, "SELECT scheduling_key, join_url, join_time FROM cronofy_meeting_agents"
    ):
        if scheduling_key != NOT_AT_CRONOFY:
            emulator.schedule_agent(scheduling_key, join_url=join_url, join_time=join_time)
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONOFY_DEFAULT", emulator.airflow_connection_json(max_concurrency=1, **extra)
    )
    return emulator


@pytest.fixture
def cronofy(request, warehouse, monkeypatch, tiny_backoff):
    emulator = start_emulator(warehouse, monkeypatch, getattr(request, "param", "replace"))
    yield emulator
    emulator.stop()


def run_dag():
    return dag_bag().dags[DAG_ID].test()


def state(run) -> str:
    return str(run.state).rsplit(".", 1)[-1].lower()


def task_states(run) -> dict[str, str]:
    return {ti.task_id: state(ti) for ti in run.get_task_instances()}


def audit(path: Path, run_id: str) -> dict[str, tuple[str, str, str | None]]:
    """``{scheduling_key: (action, outcome, reason)}`` of one run's audit rows (each key once)."""
    rows = query(
        path,
        "SELECT scheduling_key, action, outcome, reason FROM cronofy_sync_audit WHERE run_id = ?",
        run_id,
    )
    assert len({row[0] for row in rows}) == len(rows), rows
    return {k: (action, outcome, reason) for k, action, outcome, reason in rows}


def agent_state(path: Path) -> dict[str, str]:
    return dict(query(path, "SELECT scheduling_key, state FROM cronofy_meeting_agents"))


def join_times(path: Path) -> dict[str, str]:
    return dict(query(path, "SELECT scheduling_key, join_time FROM meetings"))


def sent(emulator: CronofyEmulator, scheduling_key: str) -> list[str]:
    return [
        r.method
        for r in emulator.requests
        if isinstance(r.json, dict) and r.json.get("scheduling_key") == scheduling_key
    ]


def assert_in_step(warehouse: Path, emulator: CronofyEmulator) -> None:
    """Each confirmed meeting has exactly one live agent, at the meeting's time; no other has one."""
    for scheduling_key in CONFIRMED:
        assert emulator.live_agents(scheduling_key) == 1, scheduling_key
        assert emulator.scheduled_agents[scheduling_key]["join_time"] == join_times(warehouse)[scheduling_key]
    for scheduling_key in TO_CANCEL + UNTOUCHED:
        assert emulator.live_agents(scheduling_key) == 0, scheduling_key
    assert agent_state(warehouse) == dict.fromkeys(CONFIRMED, "scheduled")


# ----------------------------------------------------------------- the DAG's shape


def test_sync_dag_passes_the_rows_as_read_and_audits_whatever_happened():
    dag = dag_bag().dags[DAG_ID]
    schedule, cancel = dag.get_task("schedule_meeting_agents"), dag.get_task("cancel_meeting_agents")
    assert isinstance(schedule, ScheduleMeetingAgentOperator)
    assert isinstance(cancel, CancelScheduledMeetingAgentOperator)
    assert schedule.upstream_task_ids == {"read_meetings_to_schedule"}
    assert cancel.upstream_task_ids == {"read_agents_to_cancel"}
    assert schedule.pool == cancel.pool == "cronofy_api"
    assert dag.get_task("read_meetings_to_schedule").show_return_value_in_logs is False  # join_urls
    record = dag.get_task("record_outcomes")
    assert str(record.trigger_rule).rsplit(".", 1)[-1].lower() == "all_done"
    assert record.upstream_task_ids == {"schedule_meeting_agents", "cancel_meeting_agents"}
    failer = dag.get_task("fail_the_run_if_a_task_failed")
    assert str(failer.trigger_rule).rsplit(".", 1)[-1].lower() == "one_failed"
    assert failer.upstream_task_ids == set(dag.task_ids) - {"fail_the_run_if_a_task_failed"}


# ----------------------------------------------------------------- end to end, over HTTP


@pytest.mark.usefixtures("metadata_db")
@pytest.mark.parametrize("cronofy", MODES, indirect=True)
def test_a_run_with_an_answer_lost_after_acting_leaves_one_agent_per_meeting_and_audits_each(
    warehouse, cronofy
):
    cronofy.fail_next(1, 503, method="POST", path="/v1/meeting_agents", after_acting=True)

    first = run_dag()

    assert state(first) == "success", task_states(first)
    assert_in_step(warehouse, cronofy)
    # The lost answer: the pair again (its DELETE cleared the agent the lost POST made).
    assert sent(cronofy, TO_SCHEDULE[0]) == ["DELETE", "POST", "DELETE", "POST"]
    assert [sent(cronofy, k) for k in TO_SCHEDULE[1:]] == [["DELETE", "POST"]] * 2
    assert [sent(cronofy, k) for k in TO_CANCEL] == [["DELETE"]] * 3
    assert [sent(cronofy, k) for k in [ALREADY_SCHEDULED, *UNTOUCHED]] == [[]] * 3
    # The warehouse rows went as they were read; only Cronofy's fields left the DAG.
    posts = [r.json for r in cronofy.requests if r.method == "POST"]
    assert {tuple(sorted(body)) for body in posts} == {("join_time", "join_url", "scheduling_key")}
    assert audit(warehouse, first.run_id) == {
        **{k: ("schedule", "scheduled", None) for k in TO_SCHEDULE},
        key(5004): ("cancel", "cancelled", None),
        key(5005): ("cancel", "cancelled", None),
        NOT_AT_CRONOFY: ("cancel", "not_found", None),
    }


@pytest.mark.usefixtures("metadata_db")
@pytest.mark.parametrize("cronofy", ["duplicate"], indirect=True)  # where a blind resend would show
def test_a_rerun_sends_nothing_and_changes_nothing(warehouse, cronofy):
    cronofy.fail_next(1, 503, method="POST", path="/v1/meeting_agents", after_acting=True)
    first = run_dag()
    assert state(first) == "success", task_states(first)
    state_after_first = query(warehouse, "SELECT * FROM cronofy_meeting_agents ORDER BY scheduling_key")
    agents_after_first = cronofy.agents_by_key

    cronofy.reset_requests()
    second = run_dag()

    assert state(second) == "success", task_states(second)
    assert cronofy.requests == []  # no POST, no DELETE: nothing left to do
    assert audit(warehouse, second.run_id) == {}
    assert (
        query(warehouse, "SELECT * FROM cronofy_meeting_agents ORDER BY scheduling_key") == state_after_first
    )
    assert cronofy.agents_by_key == agents_after_first
    assert_in_step(warehouse, cronofy)


@pytest.mark.usefixtures("metadata_db")
def test_a_run_stopped_by_a_refusal_audits_failed_and_not_attempted_and_the_rerun_finishes(
    warehouse, monkeypatch, tiny_backoff
):
    cronofy = start_emulator(warehouse, monkeypatch, "replace", max_retries=0)
    try:
        cronofy.fail_next(1, 403, method="POST", path="/v1/meeting_agents")

        first = run_dag()

        assert state(first) == "failed"
        assert task_states(first) == {
            "create_tables": "success",
            "read_meetings_to_schedule": "success",
            "read_agents_to_cancel": "success",
            "schedule_meeting_agents": "failed",
            "cancel_meeting_agents": "success",
            "record_outcomes": "success",
            "fail_the_run_if_a_task_failed": "failed",
        }
        rows = audit(warehouse, first.run_id)
        action, outcome, reason = rows[TO_SCHEDULE[0]]
        assert (action, outcome) == ("schedule", "failed") and "403" in reason
        for scheduling_key in TO_SCHEDULE[1:]:
            assert rows[scheduling_key] == (
                "schedule",
                "not_attempted",
                "not sent: schedule_meeting_agents stopped before this key (see its log)",
            )
        assert [rows[k][1] for k in TO_CANCEL] == ["cancelled", "cancelled", "not_found"]
        # The failed key may have an agent (unknown); the unsent ones keep what they had: none for
        # the new meeting, the old time's agent for the moved one.
        assert agent_state(warehouse) == {
            TO_SCHEDULE[0]: "unknown",
            ALREADY_SCHEDULED: "scheduled",
            key(5009): "scheduled",
        }
        assert cronofy.live_agents(key(5002)) == 0
        assert cronofy.scheduled_agents[key(5009)]["join_time"] != join_times(warehouse)[key(5009)]
        cells = [str(cell) for row in query(warehouse, "SELECT * FROM cronofy_sync_audit") for cell in row]
        assert not any(API_KEY in cell or "pwd=" in cell for cell in cells)

        cronofy.reset_requests()
        second = run_dag()

        assert state(second) == "success", task_states(second)
        assert audit(warehouse, second.run_id) == {k: ("schedule", "scheduled", None) for k in TO_SCHEDULE}
        assert_in_step(warehouse, cronofy)
        assert not [r for r in cronofy.requests if r.json.get("scheduling_key") in TO_CANCEL]
    finally:
        cronofy.stop()


# ----------------------------------------------------------------- the DAG's functions alone


def test_the_reads_pick_new_moved_and_unknown_meetings_to_schedule_and_called_off_or_gone_ones_to_cancel(
    warehouse,
):
    hook = sync.warehouse_hook()
    now = datetime.now(timezone.utc)
    rows = sync.meetings_to_schedule(hook, now)
    assert [row["scheduling_key"] for row in rows] == TO_SCHEDULE
    # Every column, as the operator takes them (it drops what Cronofy must not receive).
    assert set(rows[0]) == {
        "meeting_id",
        "scheduling_key",
        "title",
        "organiser",
        "join_url",
        "join_time",
        "status",
    }
    assert sync.agents_to_cancel(hook) == TO_CANCEL

    with sqlite3.connect(warehouse) as db:
        db.execute(
            "UPDATE cronofy_meeting_agents SET state = 'unknown' WHERE scheduling_key = ?",
            (ALREADY_SCHEDULED,),
        )
        db.execute("DELETE FROM meetings WHERE scheduling_key = ?", (ALREADY_SCHEDULED,))
        db.execute(
            "UPDATE meetings SET join_time = ? WHERE scheduling_key = ?",
            (sync.utc_text(now + timedelta(minutes=10)), key(5001)),
        )
    db.close()
    # A meeting gone from the table loses its agent; one starting within the margin is left out.
    assert sync.agents_to_cancel(hook) == sorted([ALREADY_SCHEDULED, *TO_CANCEL])
    assert [row["scheduling_key"] for row in sync.meetings_to_schedule(hook, now)] == TO_SCHEDULE[1:]


def test_key_outcomes_names_each_outcome_and_every_key_gets_one():
    asked = ["a", "b", "c", "d"]
    outcomes = sync.key_outcomes(
        asked,
        {"cancelled": ["a"], "not_found": ["b"]},
        [{"item": "c", "status_code": 500, "reason": "Cronofy answered 500"}],
        ["d"],
        done=("cancelled", "not_found"),
        key_field="item",
        task_id="cancel_meeting_agents",
    )
    assert outcomes == [
        ("a", "cancelled", None),
        ("b", "not_found", None),
        ("c", "failed", "Cronofy answered 500"),
        ("d", "not_attempted", "not sent: cancel_meeting_agents stopped before this key (see its log)"),
    ]
    # A task that failed before reporting anything (bad input, no connection): every key failed.
    assert sync.key_outcomes(
        ["a"],
        None,
        None,
        None,
        done=("scheduled",),
        key_field="scheduling_key",
        task_id="schedule_meeting_agents",
    ) == [("a", "failed", "schedule_meeting_agents failed without reporting this key (see its log)")]
    long = sync.key_outcomes(
        ["a"],
        {"scheduled": []},
        [{"scheduling_key": "a", "reason": "x" * 5000}],
        [],
        done=("scheduled",),
        key_field="scheduling_key",
        task_id="t",
    )
    assert len(long[0][2]) == sync.REASON_MAX_CHARS


def test_state_changes_keep_a_failed_schedule_as_unknown_and_leave_unsent_keys_and_failed_cancels_alone():
    meetings = [
        {
            "scheduling_key": k,
            "join_url": f"https://meet.example.com/{k}",
            "join_time": "2031-01-01T10:00:00Z",
            "organiser": "x",
        }
        for k in ("s1", "s2", "s3")
    ]
    delete, write = sync.state_changes(
        meetings,
        [("s1", "scheduled", None), ("s2", "failed", "lost"), ("s3", "not_attempted", "not sent")],
        [
            ("c1", "cancelled", None),
            ("c2", "not_found", None),
            ("c3", "failed", "500"),
            ("c4", "not_attempted", "x"),
        ],
    )
    assert delete == ["s1", "s2", "c1", "c2"]
    assert write == [
        ("s1", "scheduled", "https://meet.example.com/s1", "2031-01-01T10:00:00Z"),
        ("s2", "unknown", "https://meet.example.com/s2", "2031-01-01T10:00:00Z"),
    ]
