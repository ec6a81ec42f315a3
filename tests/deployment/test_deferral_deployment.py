"""End to end: a deferrable cancellation across a real scheduler and triggerer, in real time.

Every other deferral test runs in one process (``dag.test()``, or ``execute`` /
``execute_complete`` called directly). This one deploys Airflow as it runs in production, each
component a process of its own: ``airflow scheduler`` and ``airflow triggerer`` (on Airflow 3 also
``airflow dag-processor`` and ``airflow api-server``, which the tasks report to), in a throw-away
AIRFLOW_HOME with SQLite. The DAG, written by the test, cancels six scheduling keys at the
emulator (in this process) under a limit of two requests a second that the connection and the
emulator both enforce, with ``defer_after=0.2``: the run sends two, defers about a second, and a
fresh task process resumes when the triggerer fires the trigger, twice over.

Nothing here can be stepped: the processes have their own clocks and the triggerer waits in real
time. The test takes about 15 s on Airflow 2.11 and 20-30 s on 3.x on 2 cores (most of it
Airflow starting up, then a task start per resume), so it is marked ``slow``, which ``make test``
runs. The DAG is unpaused by configuration (``dags_are_paused_at_creation``) and runs ``@once``:
no ``airflow dags`` command, each of which would cost an Airflow start of its own.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from airflow_provider_cronofy._compat import AIRFLOW_V_3
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.lines import LINE

pytestmark = pytest.mark.slow

AIRFLOW = Path(sys.executable).with_name("airflow")
DAG_ID = "cronofy_deferral_deployment"
KEYS = [f"deploy-key-{number}" for number in range(1, 7)]
API_KEY = "deploy-api-key-7d41c0"
ACCESS_TOKEN = "deploy-access-token-e58a2b"
RUN_DEADLINE = 150.0
"""Seconds from starting the components to the run's end before the test fails with the logs."""
PARENT_TRIGGER_LINES = (
    "trigger starting",
    "sleeping 1 second",
    "seconds remaining; sleeping",
    "yielding event",
)
"""What ``DateTimeTrigger.run`` logs (at least its first and last, whatever the wait): the quiet
``ResumeAtTrigger.run`` logs none of it."""
STOP_GRACE = 10.0
"""Seconds a component has to exit after SIGTERM before its process group is killed."""

DAG_FILE = f'''\
"""Written by tests/deployment/test_deferral_deployment.py: runs once, as soon as it is parsed."""
from datetime import datetime

from airflow_provider_cronofy._compat import AIRFLOW_V_3
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

if AIRFLOW_V_3:
    from airflow.sdk import DAG
else:
    from airflow import DAG

with DAG({DAG_ID!r}, schedule="@once", start_date=datetime(2026, 1, 1), catchup=False):
    CancelScheduledMeetingAgentOperator(
        task_id="cancel", scheduling_key={KEYS!r}, deferrable=True, defer_after=0.2
    )
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def airflow_env(home: Path, emulator: CronofyEmulator, api_port: int) -> dict[str, str]:
    """The components' environment: this session's, without its Airflow settings, plus the home's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        # Airflow 2's SequentialExecutor runs `airflow tasks run` found on the PATH: this venv's.
        PATH=f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        # The DAG is unpaused from the start: its @once run is created as soon as it is parsed.
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        # SQLite allows one task at a time: Airflow 2's SequentialExecutor, Airflow 3's LocalExecutor.
        AIRFLOW__CORE__EXECUTOR="LocalExecutor" if AIRFLOW_V_3 else "SequentialExecutor",
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__SCHEDULER__PARSING_PROCESSES="1",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        # The scheduler signs the tasks' tokens and the API server checks them: one secret for both.
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(16),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW_CONN_CRONOFY_DEFAULT=emulator.airflow_connection_json(
            access_token=ACCESS_TOKEN, rate_limit_per_second=2, rate_limit_per_minute=0
        ),
    )
    return env


class Components:
    """Airflow processes, each in a process group of its own, output in ``logs/<name>.out``."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with open(self.logs / f"{name}.out", "wb") as out:
            self.processes[name] = subprocess.Popen(
                [str(AIRFLOW), *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with all it started
            )

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop(self) -> None:
        """SIGTERM every group, SIGKILL what is left after :data:`STOP_GRACE`."""
        for process in self.processes.values():
            signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in self.processes.values():
            with suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            signal_group(process.pid, signal.SIGKILL)  # children that outlived their leader too
            process.wait()

    def output(self, name: str) -> str:
        return (self.logs / f"{name}.out").read_text(errors="replace")


def signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def processes_of(home: Path) -> list[int]:
    """Live processes started with ``AIRFLOW_HOME=home`` (whatever group they moved to)."""
    marker = f"AIRFLOW_HOME={home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@contextmanager
def deployed(home: Path, emulator: CronofyEmulator) -> Iterator[Components]:
    """A migrated metadata database, then the components running; stopped on the way out."""
    logs = home / "logs"
    logs.mkdir(parents=True)
    api_port = free_port()
    env = airflow_env(home, emulator, api_port)
    with open(logs / "db-migrate.out", "wb") as out:
        migrate = subprocess.run(
            [str(AIRFLOW), "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120
        )
    if migrate.returncode != 0:
        pytest.fail(
            f"airflow db migrate exited {migrate.returncode}:\n{(logs / 'db-migrate.out').read_text()}"
        )
    components = Components(env, logs)
    try:
        if AIRFLOW_V_3:
            components.start("api-server", "api-server", "--apps", "execution", "--port", str(api_port))
        # No log servers: the logs are read from the files, and their ports (8793, 8794) and
        # Airflow 2's gunicorn control socket (~/.gunicorn) are shared with any other Airflow.
        components.start("scheduler", "scheduler", "--skip-serve-logs")
        components.start("triggerer", "triggerer", "--skip-serve-logs")
        if AIRFLOW_V_3:
            # Parsing waits for the API server: a task queued before it listens would fail.
            wait_for(
                lambda: answers(f"http://127.0.0.1:{api_port}/execution/health"), components, "api-server"
            )
            components.start("dag-processor", "dag-processor")
        yield components
    finally:
        components.stop()
        leftovers = processes_of(home)
        for pid in leftovers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"processes outlived their process group: {leftovers}"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def wait_for(ready, components: Components, what: str, timeout: float = RUN_DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if components.exited() or time.monotonic() > deadline:
            pytest.fail(f"{what} not ready: exited {components.exited()}\n{everything_logged(components)}")
        time.sleep(0.3)


def run_state(db: Path) -> tuple[str | None, str | None]:
    """The DAG run's state and its task's (``None`` until they exist)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            run = conn.execute("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchone()
            task = conn.execute(
                "SELECT state FROM task_instance WHERE dag_id = ? AND task_id = 'cancel'", (DAG_ID,)
            ).fetchone()
    except sqlite3.OperationalError:  # not migrated yet, or locked by a writer: ask again
        return None, None
    return (run[0] if run else None), (task[0] if task else None)


def log_files(home: Path) -> dict[str, str]:
    logs = home / "logs"
    return {
        str(path.relative_to(logs)): path.read_text(errors="replace")
        for path in sorted(logs.rglob("*"))
        if path.is_file()
    }


def everything_logged(components: Components, tail: int = 4000) -> str:
    return "\n".join(
        f"----- {name} (last {tail} characters)\n{text[-tail:]}"
        for name, text in log_files(components.logs.parent).items()
    )


def task_log(home: Path) -> str:
    """Every attempt's log of the task (the worker's lines, not the trigger's)."""
    return "".join(
        text
        for name, text in log_files(home).items()
        if f"dag_id={DAG_ID}" in name and "task_id=cancel" in name and ".trigger." not in name
    )


def test_deferral_across_a_real_scheduler_and_triggerer_in_real_time(tmp_path):
    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / f"{DAG_ID}.py").write_text(DAG_FILE)
    emulator = CronofyEmulator(api_key=API_KEY, rate_limit_per_second=2, rate_limit_per_minute=0)
    with emulator:
        emulator.add_access_token(ACCESS_TOKEN)
        for key in KEYS:
            emulator.schedule_agent(key)
        with deployed(home, emulator) as components:
            states = (None, None)
            deadline = time.monotonic() + RUN_DEADLINE
            while states[0] not in ("success", "failed"):
                if components.exited() or time.monotonic() > deadline:
                    pytest.fail(
                        f"{LINE}: the run did not end (states {states}, exited {components.exited()})\n"
                        + everything_logged(components)
                    )
                time.sleep(0.5)
                states = run_state(home / "airflow.db")
        agents = emulator.scheduled_agents
        statuses = emulator.status_counts

    logged = log_files(home)
    assert states == ("success", "success"), everything_logged(components)
    # Every key cancelled exactly once, never refused for the rate: the pacer carried its window
    # across the deferrals and the processes.
    assert {key: (agent["status"], agent["cancel_requests"]) for key, agent in agents.items()} == {
        key: ("cancelled", 1) for key in KEYS
    }
    assert statuses.get(429, 0) == 0, statuses
    # Deferred twice (two keys a second, and 0.2 s the longest wait a task sits out), and resumed as
    # often, each time in a fresh task process that the trigger's event woke.
    task = task_log(home)
    deferrals = [int(n) for n in re.findall(r"Deferring until .*? \(deferral (\d+)\)", task)]
    resumes = [int(n) for n in re.findall(r"Resumed after deferral (\d+) \(", task)]
    assert len(deferrals) >= 2, task
    assert deferrals == resumes == list(range(1, len(deferrals) + 1)), task
    done = r"Done: 6 scheduling keys in .*? (\d+) deferrals\): 6 cancelled, 0 not found, 0 failed\."
    assert [int(n) for n in re.findall(done, task)] == [len(deferrals)], task
    # The triggers ran in the triggerer (its output, or the trigger logs it writes beside the task's
    # on Airflow 3), and quietly: none of the lines of DateTimeTrigger's own run.
    triggers = components.output("triggerer") + "".join(
        text for name, text in logged.items() if ".trigger." in name
    )
    assert re.search(rf"trigger {DAG_ID}/\S+/cancel/\S+ \(ID \d+\) starting", triggers), triggers
    noisy = [(name, line) for name, text in logged.items() for line in PARENT_TRIGGER_LINES if line in text]
    assert not noisy, noisy
    # No secret in any log: the components', the tasks', the triggers'.
    leaks = [
        (name, secret)
        for name, text in logged.items()
        for secret in (API_KEY, ACCESS_TOKEN)
        if secret in text
    ]
    assert not leaks, leaks
