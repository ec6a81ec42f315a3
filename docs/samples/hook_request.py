"""How-to sample (docs/howto/request.md): any other Cronofy endpoint through ``CronofyHook.request``.

``tests/test_docs_samples.py`` runs it with ``dag.test()`` against the emulator.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

# [START howto_hook_request]
from airflow_provider_cronofy.hooks.cronofy import CronofyHook


@task
def whose_calendars() -> str:
    """The Cronofy account the connection's access token belongs to."""
    with CronofyHook(cronofy_conn_id="cronofy_default") as hook:  # paced, retried, masked
        userinfo = hook.request("GET", "/v1/userinfo", auth="access_token")
    return userinfo["sub"]


# [END howto_hook_request]

with DAG("howto_hook_request", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    whose_calendars()
