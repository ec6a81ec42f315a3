"""How-to sample (docs/howto/deferrable.md): free the worker while the rate limit's window refills.

``tests/test_docs_samples.py`` runs it with ``dag.test()`` against the emulator (a short list, so
it never needs to defer there; ``tests/test_deferral.py`` proves the deferral itself).
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG("howto_deferrable", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

    @task
    def called_off_today() -> list[str]:
        return ["crm-deal-1042-kickoff", "crm-deal-1044-review"]  # thousands, in real life

    # [START howto_operator_deferrable]
    CancelScheduledMeetingAgentOperator(
        task_id="cancel_agents",
        scheduling_key=called_off_today(),
        deferrable=True,  # or [operators] default_deferrable = True for every deferrable operator
        defer_after=10,  # seconds (default): defer only when the next send is further away
        pool="cronofy_api",
    )
    # [END howto_operator_deferrable]
