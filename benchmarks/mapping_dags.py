"""The DAGs of the "one task versus mapped task instances" benchmark.

bench_mapping.py copies this file into a throw-away DAGs folder (``dag.test()`` on Airflow 3 only runs
DAGs it can find there) and sets ``CRONOFY_BENCH_DAG_KEYS`` to the number of keys.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

KEY_COUNT = int(os.environ.get("CRONOFY_BENCH_DAG_KEYS", "200"))
KEYS = [f"dag-key-{i:06d}" for i in range(KEY_COUNT)]
WARMUP_KEYS = ["dag-warmup-key-1", "dag-warmup-key-2"]
START = datetime(2026, 1, 1)

# Each dag.test() in a process pays one-off costs on its first run (imports, ORM set-up): these
# two small DAGs take them before anything is timed.
with DAG("cronofy_bench_warmup_one_task", schedule=None, start_date=START, catchup=False):
    CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=WARMUP_KEYS)

with DAG("cronofy_bench_warmup_mapped", schedule=None, start_date=START, catchup=False):
    CancelScheduledMeetingAgentOperator.partial(task_id="cancel").expand(scheduling_key=WARMUP_KEYS)

with DAG("cronofy_bench_one_task", schedule=None, start_date=START, catchup=False):
    CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=KEYS)

with DAG("cronofy_bench_mapped", schedule=None, start_date=START, catchup=False):
    CancelScheduledMeetingAgentOperator.partial(task_id="cancel").expand(scheduling_key=KEYS)
