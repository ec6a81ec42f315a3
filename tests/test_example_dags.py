"""The example DAGs: import cleanly, survive serialisation, and run end to end against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import EXAMPLE_DAGS

CALLED_OFF = ["crm-deal-1042-kickoff", "crm-deal-1044-review", "crm-deal-1045-intro"]
CONFIRMED = ["crm-deal-1043-demo", "crm-deal-1046-renewal"]
TOKEN = "dag-test-access-token"


def dag_bag(folder: str = EXAMPLE_DAGS):
    try:  # 3.2+ (include_examples is gone in 3.3)
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=folder)
    except ImportError:  # 2.11, 3.0, 3.1
        from airflow.models import DagBag

        return DagBag(dag_folder=folder, include_examples=False)


def test_example_dags_import_without_errors():
    bag = dag_bag()
    assert bag.import_errors == {}
    assert set(bag.dags) == {
        "cronofy_cancel_scheduled_agents",
        "cronofy_cancel_integrated_agents",
        "cronofy_cancel_from_warehouse",
        "cronofy_cancel_integrated_from_warehouse",
        "cronofy_sync_meeting_agents",
    }


def test_example_dags_use_the_rate_limit_pool():
    bag = dag_bag()
    for dag in bag.dags.values():
        for task in dag.tasks:
            if isinstance(task, (CancelScheduledMeetingAgentOperator, CancelIntegratedMeetingAgentOperator)):
                assert task.pool == "cronofy_api"


def roundtrip(dag):
    try:  # 3.2+
        from airflow.serialization.serialized_objects import DagSerialization

        return DagSerialization.from_dict(DagSerialization.to_dict(dag))
    except ImportError:  # 2.11, 3.0, 3.1
        from airflow.serialization.serialized_objects import SerializedDAG

    return SerializedDAG.from_dict(SerializedDAG.to_dict(dag))


def test_plain_and_mapped_operators_survive_serialisation():
    try:
        from airflow.sdk import DAG
    except ImportError:
        from airflow import DAG
    from datetime import datetime

    with DAG("serialise_me", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        CancelScheduledMeetingAgentOperator(
            task_id="plain_scheduled", scheduling_key=["a", "b"], cronofy_conn_id="cronofy_eu"
        )
        CancelIntegratedMeetingAgentOperator(
            task_id="plain_integrated", calendar_id="cal_1", event_id="evt_1", delete_event=True
        )
        CancelScheduledMeetingAgentOperator.partial(task_id="mapped_scheduled").expand(
            scheduling_key=["k1", "k2", "k3"]
        )
        CancelIntegratedMeetingAgentOperator.partial(
            task_id="mapped_integrated", calendar_id="cal_2", delete_event=True
        ).expand(event_id=["e1", "e2"])
    back = roundtrip(dag)
    plain = back.get_task("plain_scheduled")
    assert plain.scheduling_key == ["a", "b"]
    assert plain.cronofy_conn_id == "cronofy_eu"
    # Airflow serialises a plain operator's template fields (what the UI shows); the worker
    # re-parses the DAG file for everything else, so delete_event need not survive there.
    integrated = back.get_task("plain_integrated")
    assert (integrated.calendar_id, integrated.event_id) == ("cal_1", "evt_1")
    mapped = back.get_task("mapped_scheduled")
    assert mapped.expand_input.value["scheduling_key"] == ["k1", "k2", "k3"]
    mapped_integrated = back.get_task("mapped_integrated")
    assert mapped_integrated.partial_kwargs["calendar_id"] == "cal_2"
    assert mapped_integrated.partial_kwargs["delete_event"] is True
    assert mapped_integrated.expand_input.value["event_id"] == ["e1", "e2"]


@pytest.fixture
def emulator(monkeypatch):
    with CronofyEmulator() as emu:
        emu.add_access_token(TOKEN, account_id="acc_demo")
        emu.add_calendar("cal_demo", access_token=TOKEN)
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", emu.airflow_connection_json(access_token=TOKEN))
        yield emu


def run_dag(dag_id: str, **kwargs):
    dag = dag_bag().dags[dag_id]
    return dag.test(**kwargs)


def test_scheduled_example_dag_cancels_called_off_meetings(metadata_db, emulator, monkeypatch):
    # One request in flight: the keys go one after another over one kept-alive connection (a
    # burst of concurrent sends would open one connection per request in flight).
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRONOFY_DEFAULT",
        emulator.airflow_connection_json(access_token=TOKEN, max_concurrency=1),
    )
    for key in CALLED_OFF + CONFIRMED:
        emulator.schedule_agent(key)
    run = run_dag("cronofy_cancel_scheduled_agents")
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    agents = emulator.scheduled_agents
    assert [key for key, agent in agents.items() if agent["status"] == "cancelled"] == CALLED_OFF
    assert all(agents[key]["status"] == "scheduled" for key in CONFIRMED)
    assert emulator.connections_opened == 1


def test_integrated_example_dag_removes_agent_and_deletes_event(metadata_db, emulator):
    emulator.add_event("cal_demo", "evt_demo_1")
    emulator.add_event("cal_demo", "evt_demo_2")
    emulator.add_event("cal_demo", "evt_demo_3")
    run = run_dag("cronofy_cancel_integrated_agents")
    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    events = emulator.events
    assert events[("cal_demo", "evt_demo_1")]["meeting_agent"] is None
    assert events[("cal_demo", "evt_demo_1")]["deleted"] is False
    assert events[("cal_demo", "evt_demo_2")]["deleted"] is True
    assert events[("cal_demo", "evt_demo_3")]["meeting_agent"] == "cronofy"
    assert events[("cal_demo", "evt_demo_3")]["deleted"] is False
