"""How-to sample (docs/howto/dry-run.md): a dry run, which checks and logs but sends nothing.

``tests/test_docs_samples.py`` runs it with ``dag.test()`` against the emulator and checks that
the emulator received no request.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG("howto_dry_run", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    # [START howto_operator_dry_run]
    CancelScheduledMeetingAgentOperator(
        task_id="what_tonight_would_cancel",
        scheduling_key=["crm-deal-1042-kickoff", "crm-deal-1044-review"],
        dry_run=True,  # checks the input and the API key, logs each request, sends nothing
    )
    CancelIntegratedMeetingAgentOperator(
        task_id="what_tonight_would_delete",
        calendar_id="cal_demo",
        event_id=["evt-7", "evt-8"],
        delete_event=True,
        dry_run=True,  # checks the access token (or what refreshing one needs); no refresh either
    )
    CancelScheduledMeetingAgentOperator(
        task_id="how_long_the_backlog_would_take",
        scheduling_key=[f"crm-deal-{number}" for number in range(1200)],
        deferrable=True,
        dry_run=True,  # also estimates the pacing at the connection's rate limits, and the deferrals
    )
    # [END howto_operator_dry_run]
