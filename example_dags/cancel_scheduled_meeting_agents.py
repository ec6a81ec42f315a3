"""Cancel the scheduled Meeting Agents of meetings that were called off.

An upstream task reads today's called-off meetings (here a small bundled CSV; in real life a CRM
export or a warehouse table) and returns their scheduling keys. One
``CancelScheduledMeetingAgentOperator`` task cancels them all on one HTTP session, paced under
Cronofy's rate limit. The ``cronofy_api`` pool (one slot) keeps parallel runs of this DAG, and
other DAGs using the pool, from adding up past the application's rate limit: the hook's pacing is
per process, the pool is per Airflow deployment. Create it once:
``airflow pools set cronofy_api 1 "Cronofy API (rate limited per application)" --include-deferred``.
"""

from __future__ import annotations

# [START howto_dag_cancel_scheduled]
import csv
from datetime import datetime
from pathlib import Path

from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

try:  # Airflow 3
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

CALLED_OFF_FILE = Path(__file__).parent / "data" / "called_off_meetings.csv"

with DAG(
    dag_id="cronofy_cancel_scheduled_agents",
    description="Cancel the Meeting Agents of called-off meetings",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        # Trigger with {"scheduling_keys": [...]} to cancel a hand-picked list instead of the file's.
        "scheduling_keys": Param(None, type=["null", "array"], items={"type": "string"}),
    },
    tags=["cronofy", "example"],
) as dag:

    @task
    def called_off_scheduling_keys(params: dict | None = None) -> list[str]:
        """Today's called-off meetings: their scheduling keys, from the params or the file."""
        if params and params.get("scheduling_keys") is not None:
            return list(params["scheduling_keys"])
        with CALLED_OFF_FILE.open(newline="") as rows:
            return [row["scheduling_key"] for row in csv.DictReader(rows) if row["status"] == "called_off"]

    CancelScheduledMeetingAgentOperator(
        task_id="cancel_meeting_agents",
        # A list from the upstream task's XCom: cancelled in one task, one HTTP session.
        scheduling_key=called_off_scheduling_keys(),
        cronofy_conn_id="cronofy_default",
        pool="cronofy_api",
        retries=2,  # a re-run is harmless: cancelling twice answers 202 or 404 (not_found)
    )
# [END howto_dag_cancel_scheduled]
