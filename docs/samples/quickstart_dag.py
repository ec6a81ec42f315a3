"""The quickstart's DAG (docs/quickstart.md): cancel two scheduled Meeting Agents and remove the
agent from one calendar event, against the emulator (``--seed-demo``) or against Cronofy.

``tests/test_docs_samples.py`` runs it with ``dag.test()`` against the emulator on every Airflow
line; the quickstart copies it into a dags folder and runs it with ``airflow dags test``.
"""

from __future__ import annotations

# [START howto_quickstart_dag]
from datetime import datetime
from typing import Any

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="my_cronofy_cancellations",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
) as dag:

    @task
    def called_off() -> list[str]:
        """The scheduling keys to cancel: in real life, a query of your CRM or warehouse."""
        return ["demo-key-1", "demo-key-2"]

    # Every key of the list in one task: one HTTP session, paced under Cronofy's rate limits.
    cancel_scheduled = CancelScheduledMeetingAgentOperator(
        task_id="cancel_scheduled_agents",
        scheduling_key=called_off(),
        cronofy_conn_id="cronofy_default",
        pool="cronofy_api",  # created in the quickstart's step 2
    )

    # The meeting still happens, without its agent (the calendar owner's access token).
    CancelIntegratedMeetingAgentOperator(
        task_id="remove_agent_from_event",
        calendar_id="cal_demo",
        event_id="evt_demo_1",
        cronofy_conn_id="cronofy_default",
        pool="cronofy_api",
    )

    @task(trigger_rule="all_done")  # runs after a failure too
    def report(ti: Any = None) -> dict[str, Any]:
        """Show what the cancellation returned (its XCom): the place for an audit table or an alert.

        Fails when the cancellation failed, so that the DAG run fails too (this task is a leaf).
        """
        outcome = ti.xcom_pull(task_ids="cancel_scheduled_agents")
        if outcome is not None:
            print(f"cancel_scheduled_agents returned {outcome}")
            return outcome
        # It failed: what it cancelled before failing, why the rest failed, what it never sent
        # (all None when it failed before sending anything, e.g. on bad input).
        kept = {
            key: ti.xcom_pull(task_ids="cancel_scheduled_agents", key=key)
            for key in ("partial_result", "failures", "not_attempted")
        }
        print(f"cancel_scheduled_agents failed and kept {kept}")
        raise RuntimeError("cancel_scheduled_agents failed: its log says why, the line above what it kept")

    cancel_scheduled >> report()
# [END howto_quickstart_dag]
