"""The warehouse example DAG end to end: a SQLite warehouse, dag.test() and the emulator over HTTP.

Each run reads ``crm_meetings`` through the ``meetings_warehouse`` connection, cancels on the
emulator, and writes ``cronofy_cancellation_audit``; the tests read that table back.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from airflow_provider_cronofy.exceptions import CronofyBulkError
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import EXAMPLE_DAGS, seeded_warehouse
from tests.test_example_dags import dag_bag

DAG_ID = "cronofy_cancel_from_warehouse"
SEED_SQL = Path(EXAMPLE_DAGS) / "data" / "meetings_warehouse.sql"
# Sent in this order (the read query sorts by key); the emulator's scripted faults hit the first.
CALLED_OFF = ["crm-deal-2001-kickoff", "crm-deal-2003-review", "crm-deal-2004-intro", "crm-deal-2005-renewal"]
NEVER_SCHEDULED = "crm-deal-2004-intro"
CONFIRMED = ["crm-deal-2002-demo", "crm-deal-2006-training"]
API_KEY = "warehouse-test-api-key-9d41"
UNPROCESSABLE = json.dumps(
    {"errors": {"scheduling_key": [{"key": "errors.locked", "description": "the meeting has started"}]}}
)


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    """A SQLite warehouse seeded from example_dags/data, behind the ``meetings_warehouse`` connection."""
    return seeded_warehouse(tmp_path / "warehouse.db", SEED_SQL, monkeypatch)


@pytest.fixture
def cronofy(monkeypatch):
    # 404 for keys it does not know, so the never-scheduled meeting comes back not_found.
    with CronofyEmulator(api_key=API_KEY, unknown_scheduling_key_status=404) as emulator:
        for key in CALLED_OFF + CONFIRMED:
            if key != NEVER_SCHEDULED:
                emulator.schedule_agent(key)
        # One request in flight: the keys reach the emulator in input order, so its scripted
        # fault hits the first key (a burst of concurrent sends arrives in any order).
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT", emulator.airflow_connection_json(max_retries=0, max_concurrency=1)
        )
        yield emulator


def audit(path: Path, run_id: str) -> dict[str, tuple[str, str | None]]:
    """``{scheduling_key: (outcome, reason)}`` of one run's audit rows (each key at most once)."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT scheduling_key, outcome, reason FROM cronofy_cancellation_audit WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    db.close()
    assert len({key for key, _, _ in rows}) == len(rows), rows
    return {key: (outcome, reason) for key, outcome, reason in rows}


def all_audit_cells(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM cronofy_cancellation_audit").fetchall()
    db.close()
    return [str(cell) for row in rows for cell in row]


def sent_keys(emulator: CronofyEmulator) -> list[str]:
    return [r.json["scheduling_key"] for r in emulator.requests if r.method == "DELETE"]  # type: ignore[index]


def run_dag():
    return dag_bag().dags[DAG_ID].test()


def state(run) -> str:
    return str(run.state).rsplit(".", 1)[-1].lower()


def task_states(run) -> dict[str, str]:
    return {ti.task_id: state(ti) for ti in run.get_task_instances()}


def test_warehouse_dag_imports_and_audits_even_when_the_cancel_task_fails():
    dag = dag_bag().dags[DAG_ID]
    cancel = dag.get_task("cancel_meeting_agents")
    assert isinstance(cancel, CancelScheduledMeetingAgentOperator)
    assert cancel.pool == "cronofy_api"
    assert str(dag.get_task("record_outcomes").trigger_rule).rsplit(".", 1)[-1].lower() == "all_done"
    assert dag.get_task("record_outcomes").upstream_task_ids >= {"cancel_meeting_agents"}


@pytest.mark.usefixtures("metadata_db")
def test_first_run_audits_each_outcome_and_the_rerun_sends_only_what_is_not_cancelled(
    warehouse,
    cronofy,
):
    cronofy.fail_next(1, 422, method="DELETE", path="/v1/meeting_agents", body=UNPROCESSABLE)

    first = run_dag()

    # The failed key fails the cancel task and the run; the audit task still succeeds.
    assert state(first) == "failed"
    assert task_states(first) == {
        "create_audit_table": "success",
        "read_called_off_meetings": "success",
        "cancel_meeting_agents": "failed",
        "record_outcomes": "success",
        "fail_the_run_if_a_task_failed": "failed",
    }
    assert sent_keys(cronofy) == CALLED_OFF  # every called-off key, no confirmed one
    rows = audit(warehouse, first.run_id)
    assert set(rows) == set(CALLED_OFF)
    outcome, reason = rows["crm-deal-2001-kickoff"]
    assert outcome == "failed"
    assert "422" in reason and "the meeting has started" in reason
    assert rows["crm-deal-2003-review"] == ("cancelled", None)
    assert rows["crm-deal-2004-intro"] == ("not_found", None)
    assert rows["crm-deal-2005-renewal"] == ("cancelled", None)
    agents = cronofy.scheduled_agents
    assert all(agents[key]["status"] == "scheduled" for key in CONFIRMED)
    assert agents["crm-deal-2001-kickoff"]["status"] == "scheduled"

    cronofy.reset_requests()
    second = run_dag()

    assert state(second) == "success"
    assert task_states(second)["fail_the_run_if_a_task_failed"] == "skipped"
    assert second.run_id != first.run_id
    # Nothing for the two keys the audit shows as cancelled; the failed and not-found ones again.
    assert sent_keys(cronofy) == ["crm-deal-2001-kickoff", "crm-deal-2004-intro"]
    assert cronofy.scheduled_agents["crm-deal-2003-review"]["cancel_requests"] == 1
    assert cronofy.scheduled_agents["crm-deal-2005-renewal"]["cancel_requests"] == 1
    assert audit(warehouse, second.run_id) == {
        "crm-deal-2001-kickoff": ("cancelled", None),
        "crm-deal-2004-intro": ("not_found", None),
    }
    # The first run's rows are kept as they were.
    assert audit(warehouse, first.run_id) == rows
    # One timestamp per run, written by its audit task.
    with sqlite3.connect(warehouse) as db:
        stamps = db.execute("SELECT DISTINCT run_id, recorded_at FROM cronofy_cancellation_audit").fetchall()
    db.close()
    assert sorted(run_id for run_id, _ in stamps) == sorted([first.run_id, second.run_id])
    recorded = {run_id: datetime.fromisoformat(stamp) for run_id, stamp in stamps}
    assert recorded[first.run_id] <= recorded[second.run_id]


@pytest.mark.usefixtures("metadata_db")
def test_fatal_error_audits_every_key_the_run_did_not_reach_and_no_secret(warehouse, cronofy, monkeypatch):
    wrong_key = "wrong-api-key-must-not-leak-7731"
    # One request in flight, so the 401 stops the run with keys left unsent (with more in flight,
    # every key may already be on the wire when the 401 comes back).
    connection = cronofy.airflow_connection(max_retries=0, max_concurrency=1)
    connection["password"] = wrong_key
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(connection))

    run = run_dag()

    assert state(run) == "failed"
    assert sent_keys(cronofy) == CALLED_OFF[:1]  # a 401 stops the run at the first key
    rows = audit(warehouse, run.run_id)
    assert set(rows) == set(CALLED_OFF)
    assert rows[CALLED_OFF[0]][0] == "failed" and "401" in rows[CALLED_OFF[0]][1]
    for key in CALLED_OFF[1:]:
        assert rows[key] == ("failed", "not sent: the cancel task stopped before this key (see its log)")
    assert not any(wrong_key in cell or API_KEY in cell for cell in all_audit_cells(warehouse))


@pytest.mark.usefixtures("metadata_db")
def test_cancel_task_failing_before_any_request_audits_every_key_failed(warehouse, cronofy, monkeypatch):
    connection = cronofy.airflow_connection()
    del connection["password"]  # no API key: the operator refuses before sending anything
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(connection))

    run = run_dag()

    assert state(run) == "failed"
    assert cronofy.requests == []
    reason = "not cancelled: the cancel task failed without reporting results (see its log)"
    assert audit(warehouse, run.run_id) == dict.fromkeys(CALLED_OFF, ("failed", reason))


def test_failed_operator_pushes_each_failure_next_to_partial_result(cronofy):
    """The XCom ``failures`` the audit reads: pushed by the operator itself, over real HTTP."""

    class FakeTI:
        def __init__(self):
            self.pushed = {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

    cronofy.fail_next(1, 422, method="DELETE", path="/v1/meeting_agents", body=UNPROCESSABLE)
    ti = FakeTI()
    operator = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=CALLED_OFF)
    with pytest.raises(CronofyBulkError) as info:
        operator.execute({"ti": ti})
    assert ti.pushed["partial_result"] == {
        "cancelled": ["crm-deal-2003-review", "crm-deal-2005-renewal"],
        "not_found": ["crm-deal-2004-intro"],
    }
    [failure] = info.value.failures
    assert ti.pushed["failures"] == [
        {"item": "crm-deal-2001-kickoff", "status_code": 422, "reason": failure.reason}
    ]
    assert "the meeting has started" in failure.reason
    json.dumps(ti.pushed)  # XCom values must be JSON-serialisable
