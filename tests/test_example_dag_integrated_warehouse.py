"""The many-accounts warehouse DAG end to end: SQLite warehouse, dag.test(), the emulator over HTTP.

``cronofy_cancel_integrated_from_warehouse`` reads ``integrated_meetings``, maps one
``CancelIntegratedMeetingAgentOperator`` per account (``cronofy_<account>`` connections), and
writes ``cronofy_event_cancellation_audit``; the tests read that table back.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_cronofy.testing import CronofyEmulator
from tests import test_example_dag_warehouse as scheduled_example
from tests.conftest import EXAMPLE_DAGS
from tests.test_example_dags import dag_bag

DAG_ID = "cronofy_cancel_integrated_from_warehouse"
warehouse = scheduled_example.warehouse  # the same SQLite warehouse, seeded with both tables
state = scheduled_example.state
TOKENS = {"acme": "acme-warehouse-token-51c0", "globex": "globex-warehouse-token-d3a8"}
CALENDARS = {"acme": ["cal_acme_sales", "cal_acme_support"], "globex": ["cal_globex_main"]}
UNSHARED = "cal_globex_shared"  # in the table, but not (yet) a calendar the globex token can see
CALLED_OFF = {
    ("acme", "cal_acme_sales", "evt-3001"),
    ("acme", "cal_acme_support", "evt-3003"),
    ("acme", "cal_acme_support", "evt-3004"),
    ("globex", "cal_globex_main", "evt-4001"),
    ("globex", "cal_globex_main", "evt-4005"),
    ("globex", UNSHARED, "evt-4003"),
    ("globex", UNSHARED, "evt-4004"),
}
CONFIRMED = {("acme", "cal_acme_sales", "evt-3002"), ("globex", "cal_globex_main", "evt-4002")}


@pytest.fixture
def cronofy(monkeypatch):
    with CronofyEmulator() as emulator:
        for account, token in TOKENS.items():
            emulator.add_access_token(token, account_id=f"acc_{account}")
            for calendar in CALENDARS[account]:
                emulator.add_calendar(calendar, access_token=token)
            monkeypatch.setenv(
                f"AIRFLOW_CONN_CRONOFY_{account.upper()}",
                emulator.airflow_connection_json(access_token=token, max_retries=0),
            )
        for _account, calendar, event in CALLED_OFF | CONFIRMED:
            if calendar != UNSHARED:
                emulator.add_event(calendar, event)
        yield emulator


def audit(path: Path, run_id: str) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT account, calendar_id, event_id, outcome, reason FROM cronofy_event_cancellation_audit "
            "WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    db.close()
    assert len({tuple(r[:3]) for r in rows}) == len(rows), rows
    return {(a, c, e): (outcome, reason) for a, c, e, outcome, reason in rows}


def sent_events(emulator: CronofyEmulator) -> list[tuple[str, str, str]]:
    """(token's account, relative_url's calendar, event id) of every batch entry received."""
    by_token = {f"Bearer {token}": account for account, token in TOKENS.items()}
    sent = []
    for request in emulator.requests:
        if request.path == "/v1/batch":
            for entry in request.json["batch"]:  # type: ignore[index]
                calendar = entry["relative_url"].split("/")[3]
                sent.append((by_token[request.headers["authorization"]], calendar, entry["data"]["event_id"]))
    return sent


def run_dag():
    return dag_bag().dags[DAG_ID].test()


def task_states(run) -> dict[str, str]:
    """State by task id, mapped tasks as ``task_id[map_index]``."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): state(ti)
        for ti in run.get_task_instances()
    }


def test_the_dag_maps_one_cancel_task_per_account_from_the_rows():
    dag = dag_bag().dags[DAG_ID]
    assert dag.get_task("cancel_integrated_events").pool == "cronofy_api"
    assert str(dag.get_task("record_event_outcomes").trigger_rule).rsplit(".", 1)[-1].lower() == "all_done"
    spec = importlib.util.spec_from_file_location(
        "warehouse_example", Path(EXAMPLE_DAGS) / "cancel_from_warehouse.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    group_events_by_account = module.group_events_by_account

    rows = [
        {"account": "acme", "calendar_id": "c1", "event_id": "e1"},
        {"account": "globex", "calendar_id": "c2", "event_id": "e2"},
        {"account": "acme", "calendar_id": "c3", "event_id": "e3"},
    ]
    assert group_events_by_account(rows) == [
        {
            "cronofy_conn_id": "cronofy_acme",
            "events": [{"calendar_id": "c1", "event_id": "e1"}, {"calendar_id": "c3", "event_id": "e3"}],
        },
        {"cronofy_conn_id": "cronofy_globex", "events": [{"calendar_id": "c2", "event_id": "e2"}]},
    ]


@pytest.mark.usefixtures("metadata_db")
def test_two_accounts_an_unknown_calendar_costs_its_events_only_and_the_rerun_sends_the_rest(
    warehouse, cronofy
):
    first = run_dag()

    assert state(first) == "failed"
    states = task_states(first)
    assert {k: v for k, v in states.items() if k.startswith("cancel_integrated_events")} == {
        "cancel_integrated_events[0]": "success",  # acme
        "cancel_integrated_events[1]": "failed",  # globex: one calendar it cannot see
    }
    assert states["record_event_outcomes"] == "success"
    assert states["fail_the_run_if_a_task_failed"] == "failed"
    # One batch per account, each holding every calendar of it; nothing confirmed was sent.
    assert sorted(sent_events(cronofy)) == sorted(CALLED_OFF)
    batches = [r for r in cronofy.requests if r.path == "/v1/batch"]
    assert len(batches) == 2
    rows = audit(warehouse, first.run_id)
    assert set(rows) == CALLED_OFF
    for key in CALLED_OFF:
        if key[1] == UNSHARED:
            outcome, reason = rows[key]
            assert outcome == "failed" and "404" in reason and UNSHARED in reason
        else:
            assert rows[key] == ("cancelled", None)
            assert cronofy.events[key[1:]]["meeting_agent"] is None
    for _, calendar, event in CONFIRMED:
        assert cronofy.events[(calendar, event)]["meeting_agent"] == "cronofy"

    # The calendar is shared with the account again; the re-run sends only what is not cancelled.
    cronofy.add_calendar(UNSHARED, access_token=TOKENS["globex"])
    for _, calendar, event in CALLED_OFF:
        if calendar == UNSHARED:
            cronofy.add_event(calendar, event)
    cronofy.reset_requests()
    second = run_dag()

    assert state(second) == "success"
    assert sorted(sent_events(cronofy)) == sorted(k for k in CALLED_OFF if k[1] == UNSHARED)
    assert audit(warehouse, second.run_id) == {k: ("cancelled", None) for k in CALLED_OFF if k[1] == UNSHARED}
    assert audit(warehouse, first.run_id) == rows


@pytest.mark.usefixtures("metadata_db")
def test_a_revoked_token_fails_its_accounts_task_only_and_no_token_is_audited(warehouse, cronofy):
    cronofy.expire_access_token(TOKENS["acme"])

    run = run_dag()

    states = task_states(run)
    assert states["cancel_integrated_events[0]"] == "failed"
    assert states["cancel_integrated_events[1]"] == "failed"  # globex's unknown calendar
    rows = audit(warehouse, run.run_id)
    acme = {k: v for k, v in rows.items() if k[0] == "acme"}
    assert len(acme) == 3 and all(
        outcome == "failed" and "401" in reason for outcome, reason in acme.values()
    )
    assert rows[("globex", "cal_globex_main", "evt-4001")] == ("cancelled", None)
    with sqlite3.connect(warehouse) as db:
        cells = [str(c) for row in db.execute("SELECT * FROM cronofy_event_cancellation_audit") for c in row]
    db.close()
    assert not any(token in cell for cell in cells for token in TOKENS.values())
