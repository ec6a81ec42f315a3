"""How-to sample (docs/howto/scheduled.md): a list from a template, with native rendering.

``tests/test_docs_samples.py`` runs it with ``dag.test()`` against the emulator.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

# [START howto_operator_native_template]
with DAG(
    "howto_native_template",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"scheduling_keys": ["crm-deal-1042-kickoff", "crm-deal-1044-review"]},
    # A template renders to text unless the DAG renders natively: "{{ params.scheduling_keys }}"
    # would otherwise be the string "['crm-deal-1042-kickoff', ...]", which the operator refuses.
    render_template_as_native_obj=True,
) as dag:
    CancelScheduledMeetingAgentOperator(
        task_id="cancel_from_params",
        scheduling_key="{{ params.scheduling_keys }}",
        pool="cronofy_api",
    )
# [END howto_operator_native_template]
