"""Cancel the Meeting Agents provisioned on calendar events.

Two ways, one task each: remove the agent and keep the event (the meeting still happens, without
the agent), or delete the event, which cancels its agent too. Both use the calendar owner's access
token from the ``cronofy_default`` connection; with ``client_id`` and ``refresh_token`` in the
connection the hook refreshes an expired token by itself.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_cronofy.operators.meeting_agents import CancelIntegratedMeetingAgentOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG(
    dag_id="cronofy_cancel_integrated_agents",
    description="Remove a Meeting Agent from one event and delete another event",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"calendar_id": "cal_demo"},
    tags=["cronofy", "example"],
) as dag:
    # [START howto_operator_remove_agent]
    # The meeting goes ahead, but nobody wants the agent in it.
    remove_agent = CancelIntegratedMeetingAgentOperator(
        task_id="remove_agent_from_event",
        calendar_id="{{ params.calendar_id }}",
        event_id="evt_demo_1",
        pool="cronofy_api",
    )
    # [END howto_operator_remove_agent]
    # [START howto_operator_delete_event]
    # The meeting itself was called off: deleting the event cancels its agent as well.
    delete_event = CancelIntegratedMeetingAgentOperator(
        task_id="delete_event",
        calendar_id="{{ params.calendar_id }}",
        event_id=["evt_demo_2"],
        delete_event=True,
        pool="cronofy_api",
    )
    # [END howto_operator_delete_event]
    remove_agent >> delete_event
