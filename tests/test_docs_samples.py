"""Every code sample of the docs runs: the DAGs under docs/samples/ with ``dag.test()`` against the
emulator (the quickstart's against the emulator's command line, as the quickstart starts it), and
the pytest sample with pytest, as a user's test module would run.

The samples are included into the docs between their ``[START howto_...]`` markers
(``tests/test_docs.py`` checks the markers); what these tests prove is that the code shown works.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cronofy.testing import CronofyEmulator
from tests.test_example_dags import dag_bag

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "docs" / "samples"
TOKEN = "docs-sample-access-token"


@pytest.fixture
def samples_folder(monkeypatch):
    # dag.test() on Airflow 3 runs only DAGs it finds in the DAGs folder's bundle, whose path
    # Airflow read when it was imported (the conftest points it at the example DAGs).
    import airflow.settings

    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(SAMPLES))


def run_sample(dag_id: str) -> str:
    return str(run_sample_dag(dag_id).state)


def run_sample_dag(dag_id: str) -> Any:
    bag = dag_bag(str(SAMPLES))
    assert bag.import_errors == {}
    return bag.dags[dag_id].test()


def returned_value(run: Any, task_id: str, key: str = "return_value") -> Any:
    """The XCom ``key`` (the return value by default) a task of ``run`` pushed, read from the
    metadata database (``None`` when it pushed none)."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        rows = session.execute(
            text(
                "SELECT value FROM xcom WHERE dag_id = :dag AND run_id = :run AND task_id = :task AND key = :key"
            ),
            {"dag": run.dag_id, "run": run.run_id, "task": task_id, "key": key},
        ).all()
    if not rows:
        return None
    (value,) = [row[0] for row in rows]
    if isinstance(value, (bytes, bytearray, memoryview)):  # Airflow 2.11 stores JSON bytes
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value


def task_state(run: Any, task_id: str) -> str:
    state = run.get_task_instance(task_id).state
    return str(getattr(state, "value", state))


def succeeded(state: str) -> bool:
    return state in ("success", "DagRunState.SUCCESS")


@pytest.fixture
def emulator(monkeypatch):
    with CronofyEmulator() as emu:
        emu.add_access_token(TOKEN, account_id="acc_docs")
        emu.add_calendar("cal_demo", access_token=TOKEN)
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", emu.airflow_connection_json(access_token=TOKEN))
        yield emu


@pytest.fixture
def emulator_cli(monkeypatch):
    """``python -m airflow_provider_cronofy.testing --seed-demo --verbose`` as the quickstart runs
    it, its printed connection line exported as the quickstart exports it. Yields a callable that
    stops the emulator and returns its request log (stderr), the lines the quickstart shows."""
    command = [sys.executable, "-m", "airflow_provider_cronofy.testing", "--seed-demo", "--verbose"]
    process = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def stop_and_read_log() -> list[str]:
        process.terminate()
        _, log = process.communicate(timeout=10)
        return [line for line in log.splitlines() if '"' in line]

    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[0].startswith("Cronofy emulator listening on http://127.0.0.1:"), lines
        name, _, value = lines[1].rstrip("\n").partition("=")
        assert name == "AIRFLOW_CONN_CRONOFY_DEFAULT", lines
        (connection,) = shlex.split(value)  # what `export` makes of the printed line
        monkeypatch.setenv(name, connection)
        assert json.loads(connection)["conn_type"] == "cronofy"
        yield stop_and_read_log
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_quickstart_dag_runs_against_the_emulator_cli(metadata_db, samples_folder, emulator_cli):
    run = run_sample_dag("my_cronofy_cancellations")
    assert succeeded(str(run.state))
    # The report task shows the cancellation's return value, as the quickstart says it does.
    assert returned_value(run, "report") == {"cancelled": ["demo-key-1", "demo-key-2"], "not_found": []}
    # What the quickstart says the emulator's log shows: one batch (the event), two cancellations.
    requests_seen = sorted(line.split('"')[1] + line.split('"')[2][:4] for line in emulator_cli())
    assert requests_seen == [
        "DELETE /v1/meeting_agents HTTP/1.1 202",
        "DELETE /v1/meeting_agents HTTP/1.1 202",
        "POST /v1/batch HTTP/1.1 207",
    ]


def test_quickstart_report_shows_what_a_failed_cancellation_kept_and_fails_the_run(
    metadata_db, samples_folder, emulator, monkeypatch, capfd
):
    connection = json.loads(os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"])
    connection["password"] = "not-the-emulator-api-key"
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(connection))
    run = run_sample_dag("my_cronofy_cancellations")
    # The report task runs after the failure (all_done), then fails, and so does the run: a
    # trigger rule of all_done alone would have turned the failed cancellation into a green run.
    assert not succeeded(str(run.state))
    assert (task_state(run, "cancel_scheduled_agents"), task_state(run, "report")) == ("failed", "failed")
    assert returned_value(run, "report") is None
    kept = {
        key: returned_value(run, "cancel_scheduled_agents", key)
        for key in ("partial_result", "failures", "not_attempted")
    }
    assert kept["partial_result"] == {"cancelled": [], "not_found": []}
    # The 401 stops the run: the key not yet sent (if any) is in not_attempted, none is lost.
    assert kept["failures"][0]["status_code"] == 401
    failed = [failure["item"] for failure in kept["failures"]]
    assert sorted(failed + kept["not_attempted"]) == ["demo-key-1", "demo-key-2"]
    assert "not-the-emulator-api-key" not in json.dumps(kept)


def test_dry_run_sample_sends_nothing(metadata_db, samples_folder, emulator):
    assert succeeded(run_sample("howto_dry_run"))
    assert emulator.requests_received == 0


def test_concurrency_sample_cancels_and_deletes(metadata_db, samples_folder, emulator):
    keys = [f"crm-deal-{number}" for number in range(1000, 1040)]
    for key in keys:
        emulator.schedule_agent(key)
    for event_id in ("evt-7", "evt-8", "evt-9"):
        emulator.add_event("cal_demo", event_id)
    assert succeeded(run_sample("howto_concurrency"))
    assert all(emulator.scheduled_agents[key]["status"] == "cancelled" for key in keys)
    assert emulator.max_in_flight <= 5
    assert all(emulator.events[("cal_demo", e)]["deleted"] for e in ("evt-7", "evt-8", "evt-9"))
    # use_batch=False: one DELETE per event, no POST /v1/batch.
    assert not [r for r in emulator.requests if r.path.startswith("/v1/batch")]


def test_deferrable_sample_cancels(metadata_db, samples_folder, emulator):
    for key in ("crm-deal-1042-kickoff", "crm-deal-1044-review"):
        emulator.schedule_agent(key)
    assert succeeded(run_sample("howto_deferrable"))
    assert {agent["status"] for agent in emulator.scheduled_agents.values()} == {"cancelled"}


def test_native_template_sample_sends_the_list(metadata_db, samples_folder, emulator):
    for key in ("crm-deal-1042-kickoff", "crm-deal-1044-review"):
        emulator.schedule_agent(key)
    assert succeeded(run_sample("howto_native_template"))
    # Each key of the list is its own request (concurrent requests arrive in any order).
    assert sorted(r.json["scheduling_key"] for r in emulator.requests) == [
        "crm-deal-1042-kickoff",
        "crm-deal-1044-review",
    ]


def test_hook_request_sample_calls_userinfo(metadata_db, samples_folder, emulator):
    assert succeeded(run_sample("howto_hook_request"))
    assert [(r.method, r.path, r.status) for r in emulator.requests] == [("GET", "/v1/userinfo", 200)]


def test_pytest_sample_passes_as_a_users_test_module():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(SAMPLES / "test_with_emulator.py"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
