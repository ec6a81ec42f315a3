"""Test set-up shared by every test: a throw-away AIRFLOW_HOME and connections from env vars.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports it. No test needs a metadata database except the DAG runs, which make their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_home = tempfile.mkdtemp(prefix="cronofy-airflow-home-")
os.environ["AIRFLOW_HOME"] = _home
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
EXAMPLE_DAGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_dags")
# dag.test() on Airflow 3 runs only DAGs it can find in the DAGs folder: point it at the examples.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = EXAMPLE_DAGS

import pytest  # noqa: E402

API_KEY = "test-api-key-5f2e9c"
ACCESS_TOKEN = "test-access-token-81ab"
REFRESH_TOKEN = "test-refresh-token-77cd"
CLIENT_ID = "test-client-id"
SECRETS = (API_KEY, ACCESS_TOKEN, REFRESH_TOKEN)


@pytest.fixture
def set_connection(monkeypatch):
    """Define a ``cronofy`` connection through an ``AIRFLOW_CONN_*`` env var (no database)."""

    def _set(conn_id: str = "cronofy_default", *, password=API_KEY, host=None, **extra):
        conn = {"conn_type": "cronofy", "extra": extra}
        if password is not None:
            conn["password"] = password
        if host is not None:
            conn["host"] = host
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return _set


@pytest.fixture
def no_sleep(monkeypatch):
    """Record the hook's back-off sleeps instead of sleeping."""
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    slept: list[float] = []
    original_init = CronofyHook.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.sleep = slept.append

    monkeypatch.setattr(CronofyHook, "__init__", init)
    return slept


@pytest.fixture(scope="session")
def metadata_db():
    """A migrated SQLite metadata database in the tests' throw-away AIRFLOW_HOME (dag.test needs one)."""
    airflow_cli = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow_cli), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
