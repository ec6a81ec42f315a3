"""Docs sample (issue 17): several ids are a list; one string holding commas is refused.

tests/operators/test_docs_samples.py runs this file's tasks against the emulator.
"""

from __future__ import annotations

from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

# [START howto_comma_joined_ids]
# Several keys: a list (or an upstream task's XCom holding one).
cancel_deals = CancelScheduledMeetingAgentOperator(
    task_id="cancel_deals",
    scheduling_key=["deal-1", "deal-2", "deal-3"],
)

# Refused before any request (CronofyInputError): one string that looks like three keys.
# cancel_deals = CancelScheduledMeetingAgentOperator(task_id="x", scheduling_key="deal-1,deal-2,deal-3")

# A key that really holds a comma: a one-item list; list items are sent exactly as given.
cancel_odd_key = CancelScheduledMeetingAgentOperator(
    task_id="cancel_odd_key",
    scheduling_key=["invoice-7,2026"],
)
# [END howto_comma_joined_ids]
