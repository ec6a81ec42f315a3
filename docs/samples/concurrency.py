"""How-to samples (docs/howto/concurrency.md, docs/howto/integrated.md): requests in flight, and
events one request each instead of in batches.

``tests/test_docs_samples.py`` runs it with ``dag.test()`` against the emulator.
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

with DAG("howto_concurrency", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    # [START howto_operator_max_concurrency]
    CancelScheduledMeetingAgentOperator(
        task_id="cancel_agents",
        scheduling_key=[f"crm-deal-{number}" for number in range(1000, 1040)],
        max_concurrency=5,  # in flight at once (1 to 100; default: the connection's, or its 50/s limit)
        pool="cronofy_api",
    )
    # [END howto_operator_max_concurrency]

    # [START howto_operator_use_batch]
    CancelIntegratedMeetingAgentOperator(
        task_id="delete_events_one_by_one",
        calendar_id="cal_demo",
        event_id=["evt-7", "evt-8", "evt-9"],
        delete_event=True,
        use_batch=False,  # one DELETE per event instead of POST /v1/batch (50 events a request)
        pool="cronofy_api",
    )
    # [END howto_operator_use_batch]
