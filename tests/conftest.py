"""Test set-up shared by every test: a throw-away AIRFLOW_HOME and connections from env vars.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports it. No test needs a metadata database except the DAG runs, which make their own.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
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
    """Record the hook's back-off sleeps instead of sleeping; the hook's clock moves by what it slept."""
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    slept: list[float] = []
    original_init = CronofyHook.__init__
    moved = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        moved[0] += seconds

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.sleep = sleep
        self.clock = lambda: time.monotonic() + moved[0]

    monkeypatch.setattr(CronofyHook, "__init__", init)
    return slept


class SteppedClock:
    """Monotonic seconds that a test can move forward at once: ``time.monotonic()`` plus every
    :meth:`skip`. What reads it (pacers, hooks, an emulator given it) sees a wait pass without
    waiting it out; real time still flows between skips."""

    def __init__(self) -> None:
        self.skipped = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    def skip(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (a sleep that takes no time)."""
        with self._lock:
            self.skipped += max(seconds, 0.0)


@pytest.fixture
def stepped_clock(monkeypatch) -> SteppedClock:
    """The process's pacers (made afresh for the test) run on a :class:`SteppedClock` and skip it
    instead of sleeping, and so do the back-offs of every :class:`CronofyHook`; give it to an
    emulator (``CronofyEmulator(clock=stepped_clock)``) and the emulator's rate limits and token
    lifetimes count on it too.

    Only for runs where nothing is in flight while a wait is skipped (one request at a time, or
    requests-mock): a skip while a request is on its way to the emulator would make it arrive
    later than it was sent, which real time never does on the loopback.
    """
    from airflow_provider_cronofy.hooks import pacing
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    clock = SteppedClock()

    class SteppedPacer(pacing.RequestPacer):
        def __init__(self, windows, **kwargs) -> None:
            super().__init__(windows, **{"clock": clock, "sleep": clock.skip, **kwargs})

    original_init = CronofyHook.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.sleep = clock.skip
        self.clock = clock

    monkeypatch.setattr(pacing, "_shared", {})
    monkeypatch.setattr(pacing, "RequestPacer", SteppedPacer)
    monkeypatch.setattr(CronofyHook, "__init__", init)
    return clock


@pytest.fixture
def tiny_backoff(monkeypatch):
    """Back-offs of a millisecond or two: the bulk engine re-queues a retried item for real time
    (it never sleeps a worker), so tests of retries in bulk runs keep that time short."""
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    monkeypatch.setattr(CronofyHook, "retry_backoff", 0.001)
    monkeypatch.setattr(CronofyHook, "retry_backoff_max", 0.002)


class FakeTI:
    """Records what an operator pushes to XCom (``partial_result``)."""

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def connect_to_emulator(monkeypatch, emulator, **extra):
    """Point ``cronofy_default`` at ``emulator``, pacing off unless ``extra`` sets it."""
    extra.setdefault("rate_limit_per_second", 0)
    extra.setdefault("rate_limit_per_minute", 0)
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", emulator.airflow_connection_json(**extra))


def refreshable_connection(set_connection, **extra):
    """``cronofy_default`` with an access token, what refreshing it needs, and pacing off."""
    extra.setdefault("rate_limit_per_second", 0)
    extra.setdefault("rate_limit_per_minute", 0)
    return set_connection(
        access_token=ACCESS_TOKEN, client_id=CLIENT_ID, refresh_token=REFRESH_TOKEN, **extra
    )


@pytest.fixture(scope="session")
def metadata_db():
    """A migrated SQLite metadata database in the tests' throw-away AIRFLOW_HOME (dag.test needs one)."""
    airflow_cli = Path(sys.executable).with_name("airflow")
    subprocess.run(
        [str(airflow_cli), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    cache_the_in_process_api_server()


def cache_the_in_process_api_server() -> None:
    """Build Airflow's in-process execution API once per test session, as Airflow 3.3 does.

    ``dag.test()`` on Airflow 3.0-3.2 builds that FastAPI app anew for every task it runs (about
    10 s of CPU per run on this machine); 3.3 wraps ``in_process_api_server`` in
    ``functools.lru_cache(maxsize=1)``. The same cache here makes those lines' DAG tests as quick
    as 3.3's; what the tasks do is unchanged.
    """
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:  # Airflow 2: no execution API
        return
    build = supervisor.in_process_api_server
    if not hasattr(build, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)


def sent_keys(requests_mock):
    """The scheduling keys of every DELETE requests-mock received, in order."""
    return [json.loads(r.body)["scheduling_key"] for r in requests_mock.request_history]


def answer_by_key(statuses):
    """A requests-mock callback answering each scheduling key with its own status (default 202)."""

    def callback(request, context):
        context.status_code = statuses.get(json.loads(request.body)["scheduling_key"], 202)
        return ""

    return callback


def seeded_warehouse(path: Path, seed: Path, monkeypatch) -> Path:
    """A SQLite warehouse at ``path``, seeded from the SQL file ``seed``, behind the
    ``meetings_warehouse`` connection the warehouse example DAGs read."""
    import sqlite3

    with sqlite3.connect(path) as db:
        db.executescript(seed.read_text())
    db.close()
    monkeypatch.setenv(
        "AIRFLOW_CONN_MEETINGS_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )
    return path
