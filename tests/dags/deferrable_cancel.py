"""A DAG for the deferral tests: a deferrable cancellation of the keys in the run's conf.

``record`` writes the cancellation's return value (its XCom) to the file named in the conf, so the
test reads the final XCom the same way on every Airflow line.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from airflow_provider_cronofy._compat import AIRFLOW_V_3
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

if AIRFLOW_V_3:
    from airflow.sdk import DAG, task
else:
    from airflow import DAG
    from airflow.decorators import task


@task
def record(result: Any, path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(result, out)


with DAG(
    "cronofy_deferrable_cancel",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={"keys": [], "xcom_file": ""},
) as dag:
    cancel = CancelScheduledMeetingAgentOperator(
        task_id="cancel",
        scheduling_key="{{ params['keys'] }}",
        deferrable=True,
    )
    record(cancel.output, "{{ params['xcom_file'] }}")
