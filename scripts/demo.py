"""`make demo`: run both example DAGs end to end against the local Cronofy emulator.

Sets up a throw-away AIRFLOW_HOME with a SQLite metadata database, starts the emulator with
scheduled Meeting Agents and calendar events (and an expired access token, so the run shows the
hook refreshing it), runs each example DAG with ``airflow dags test``, prints what the emulator
saw, and exits non-zero if anything did not happen as it should.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".airflow-home-demo"
DAGS = ROOT / "example_dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

ACCESS_TOKEN = "demo-access-token-expired"
REFRESH_TOKEN = "demo-refresh-token"


def airflow(*args: str, log_name: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([AIRFLOW, *args], capture_output=True, text=True, env=os.environ.copy())
    if log_name:
        (HOME / log_name).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
        raise SystemExit(f"`airflow {' '.join(args)}` failed with exit code {result.returncode}")
    return result


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    from airflow_provider_cronofy.testing import CronofyEmulator

    rows = list(csv.DictReader((DAGS / "data" / "called_off_meetings.csv").open(newline="")))
    called_off = [r["scheduling_key"] for r in rows if r["status"] == "called_off"]
    confirmed = [r["scheduling_key"] for r in rows if r["status"] != "called_off"]

    print(f"1/4 Setting up Airflow in {HOME.relative_to(ROOT)} (SQLite metadata database) ...")
    airflow("db", "migrate", log_name="db-migrate.log")
    airflow("pools", "set", "cronofy_api", "1", "Cronofy API, rate limited per application")

    with CronofyEmulator() as emulator:
        for key in called_off + confirmed:
            emulator.schedule_agent(key)
        emulator.add_access_token(ACCESS_TOKEN, account_id="acc_demo", expired=True)
        emulator.add_refresh_token(REFRESH_TOKEN, account_id="acc_demo")
        emulator.add_calendar("cal_demo", access_token=ACCESS_TOKEN)
        for event_id in ("evt_demo_1", "evt_demo_2", "evt_demo_3"):
            emulator.add_event("cal_demo", event_id, summary=f"Meeting {event_id[-1]}")
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = emulator.airflow_connection_json(
            access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN
        )
        print(f"2/4 Cronofy emulator on {emulator.url}: {len(rows)} scheduled agents, 3 events with agents")

        print("3/4 Running the example DAGs with `airflow dags test` ...")
        for dag_id in ("cronofy_cancel_scheduled_agents", "cronofy_cancel_integrated_agents"):
            result = airflow("dags", "test", dag_id, log_name=f"{dag_id}.log")
            output = result.stdout + result.stderr
            succeeded = "state=success" in output or "DagRunState.SUCCESS" in output
            print(f"    {dag_id}: {'success' if succeeded else 'FAILED'} (log: {HOME.name}/{dag_id}.log)")
            for line in output.splitlines():
                for marker in ("Done: ", "Refreshed the Cronofy", "new refresh token"):
                    if marker in line:
                        message = line[line.find(marker) :]
                        print("      " + message.split(" [airflow")[0])
            if not succeeded:
                return 1

        agents = emulator.scheduled_agents
        events = emulator.events
        requests = emulator.requests

    print("4/4 What the emulator saw:")
    print(f"    {len(requests)} requests on {emulator.connections_opened} TCP connection(s)")
    for method, path in sorted({(r.method, r.path) for r in requests}):
        count = sum(1 for r in requests if (r.method, r.path) == (method, path))
        statuses = sorted({str(r.status) for r in requests if (r.method, r.path) == (method, path)})
        print(f"      {count:3d} x {method:6s} {path}  -> {', '.join(statuses)}")
    print("    Scheduled Meeting Agents:")
    for key, agent in agents.items():
        print(f"      {key:26s} {agent['status']}")
    print("    Calendar cal_demo events:")
    for (_, event_id), event in events.items():
        state = "deleted" if event["deleted"] else f"agent: {event['meeting_agent'] or 'removed'}"
        print(f"      {event_id:26s} {state}")

    problems = [f"{k} not cancelled" for k in called_off if agents[k]["status"] != "cancelled"]
    problems += [f"{k} cancelled but was confirmed" for k in confirmed if agents[k]["status"] != "scheduled"]
    if events[("cal_demo", "evt_demo_1")]["meeting_agent"] is not None:
        problems.append("evt_demo_1 still has its agent")
    if not events[("cal_demo", "evt_demo_2")]["deleted"]:
        problems.append("evt_demo_2 was not deleted")
    if events[("cal_demo", "evt_demo_3")]["meeting_agent"] != "cronofy":
        problems.append("evt_demo_3 was touched")
    if any(r.status == 429 for r in requests):
        problems.append("the emulator rate-limited the run")
    if problems:
        print("DEMO FAILED: " + "; ".join(problems))
        return 1
    print("Demo OK: the called-off meetings' agents are cancelled, the rest untouched.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
