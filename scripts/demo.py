"""`make demo`: run the example DAGs end to end against the local Cronofy emulator.

Sets up a throw-away AIRFLOW_HOME with a SQLite metadata database, starts the emulator with
scheduled Meeting Agents and calendar events (and an expired access token, so the run shows the
hook refreshing it), runs each example DAG with ``airflow dags test``, prints what the emulator
saw, and exits non-zero if anything did not happen as it should.

The warehouse DAG (``cancel_from_warehouse.py``) reads a SQLite "warehouse" seeded from
``example_dags/data/meetings_warehouse.sql`` and runs twice: the first run meets a Cronofy outage
(503 asking to wait an hour) on one key, the second finishes the job and sends nothing for the
keys the first one cancelled. The demo proves that from the emulator's request log and prints the
audit table.

The many-accounts DAG (``cronofy_cancel_integrated_from_warehouse``, same file) reads the
warehouse's ``integrated_meetings`` and maps one cancel task per Cronofy account (``acme`` and
``globex``, connections ``cronofy_acme`` and ``cronofy_globex``). In run 1 one of globex's
calendars is unknown to its token (404): only that calendar's events fail. The calendar is shared
again before run 2, which sends only those events. The demo prints the event audit table.

The sync DAG (``sync_meeting_agents.py``, ``cronofy_sync_meeting_agents``) reads the warehouse's
``meetings`` (seeded from ``example_dags/data/meetings_sync.sql``), schedules agents for confirmed
meetings without one and cancels those of called-off meetings, and runs twice with the emulator
playing the worst answer to a repeated scheduling key (``duplicate``): in run 1 the answer to the
first schedule is lost after Cronofy acted (503), and the key still ends with one agent; run 2
sends nothing. The demo prints the sync audit table.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".airflow-home-demo"
DAGS = ROOT / "example_dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

ACCESS_TOKEN = "demo-access-token-expired"
REFRESH_TOKEN = "demo-refresh-token"

WAREHOUSE = HOME / "warehouse.db"
WAREHOUSE_DAG = "cronofy_cancel_from_warehouse"
SYNC_DAG = "cronofy_sync_meeting_agents"
SYNC_NOT_AT_CRONOFY = "crm-meeting-5006"  # its agent was cancelled in the dashboard: Cronofy says 404
INTEGRATED_DAG = "cronofy_cancel_integrated_from_warehouse"
ACCOUNT_TOKENS = {"acme": "demo-acme-access-token", "globex": "demo-globex-access-token"}
UNSHARED_CALENDAR = "cal_globex_shared"  # unknown to globex's token during run 1
# Sent first (the DAG reads keys in order, one request in flight); the emulator answers it 503
# during run 1.
OUTAGE_KEY = "crm-deal-2001-kickoff"
NEVER_SCHEDULED = "crm-deal-2004-intro"  # called off before its agent was ever scheduled


def airflow(
    *args: str, log_name: str | None = None, may_fail: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if log_name:
        (HOME / log_name).write_text(result.stdout + result.stderr)
    if result.returncode != 0 and not may_fail:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
        raise SystemExit(f"`airflow {' '.join(args)}` failed with exit code {result.returncode}")
    return result


def seed_warehouse() -> tuple[list[str], list[str]]:
    """Create the SQLite warehouse; return the called-off and the confirmed scheduling keys."""
    with sqlite3.connect(WAREHOUSE) as db:
        db.executescript((DAGS / "data" / "meetings_warehouse.sql").read_text())
        db.executescript((DAGS / "data" / "meetings_sync.sql").read_text())
        rows = db.execute(
            "SELECT scheduling_key, status FROM crm_meetings ORDER BY scheduling_key"
        ).fetchall()
    db.close()
    return [k for k, s in rows if s == "called_off"], [k for k, s in rows if s != "called_off"]


def audit_table() -> list[tuple[Any, ...]]:
    with sqlite3.connect(WAREHOUSE) as db:
        rows = db.execute(
            "SELECT run_id, recorded_at, scheduling_key, outcome, reason FROM cronofy_cancellation_audit "
            "ORDER BY recorded_at, run_id, scheduling_key"
        ).fetchall()
    db.close()
    return rows


def deleted_keys(requests: list[Any]) -> list[tuple[str, int | None]]:
    """(scheduling key, status answered) of each DELETE /v1/meeting_agents, in arrival order."""
    return [
        (r.json["scheduling_key"], r.status)
        for r in requests
        if r.method == "DELETE" and r.path == "/v1/meeting_agents" and isinstance(r.json, dict)
    ]


def run_warehouse_dag(emulator: Any, run: int, connection: str) -> tuple[bool, list[tuple[str, int | None]]]:
    """Run the warehouse DAG once; return whether the run succeeded and the keys it sent."""
    before = len(emulator.requests)
    log_name = f"{WAREHOUSE_DAG}-run{run}.log"
    env = {"AIRFLOW_CONN_CRONOFY_DEFAULT": connection}
    result = airflow("dags", "test", WAREHOUSE_DAG, log_name=log_name, may_fail=True, env=env)
    output = result.stdout + result.stderr
    succeeded = result.returncode == 0 and ("state=success" in output or "DagRunState.SUCCESS" in output)
    sent = deleted_keys(emulator.requests[before:])
    print(
        f"    run {run}: {'success' if succeeded else 'failed'} (log: {HOME.name}/{log_name}); DELETE requests:"
    )
    for key in dict.fromkeys(k for k, _ in sent):
        statuses = [str(status) for k, status in sent if k == key]
        print(f"      {key:26s} -> {', '.join(statuses)}")
    return succeeded, sent


def integrated_rows() -> list[tuple[str, str, str, str]]:
    """(account, calendar_id, event_id, status) of the warehouse's integrated_meetings."""
    with sqlite3.connect(WAREHOUSE) as db:
        rows = db.execute(
            "SELECT account, calendar_id, event_id, status FROM integrated_meetings "
            "ORDER BY account, calendar_id, event_id"
        ).fetchall()
    db.close()
    return rows


def event_audit_table() -> list[tuple[Any, ...]]:
    with sqlite3.connect(WAREHOUSE) as db:
        rows = db.execute(
            "SELECT run_id, account, calendar_id, event_id, outcome, reason "
            "FROM cronofy_event_cancellation_audit ORDER BY recorded_at, run_id, account, calendar_id, event_id"
        ).fetchall()
    db.close()
    return rows


def batch_entries(emulator: Any, since: int) -> list[tuple[str, str, str, int]]:
    """(account, calendar, event id, entry status) of each batch entry received since request ``since``."""
    account_of = {f"Bearer {token}": account for account, token in ACCOUNT_TOKENS.items()}
    entries = []
    for request in emulator.requests[since:]:
        if request.path == "/v1/batch" and request.batch_entries:
            account = account_of.get(request.headers.get("authorization", ""), "?")
            for entry in request.batch_entries:
                entries.append(
                    (account, entry.relative_url.split("/")[3], entry.data["event_id"], entry.status)
                )
    return entries


def run_integrated_warehouse_dag(emulator: Any) -> list[str]:
    """Step 5: the many-accounts DAG twice; print what was sent and the audit; return the problems."""
    rows = integrated_rows()
    env = {
        f"AIRFLOW_CONN_CRONOFY_{account.upper()}": emulator.airflow_connection_json(access_token=token)
        for account, token in ACCOUNT_TOKENS.items()
    }
    for account, token in ACCOUNT_TOKENS.items():
        emulator.add_access_token(token, account_id=f"acc_{account}")
    for account, calendar, event_id, _ in rows:
        if calendar != UNSHARED_CALENDAR:
            emulator.add_calendar(calendar, access_token=ACCOUNT_TOKENS[account])
            emulator.add_event(calendar, event_id)
    called_off = {(a, c, e) for a, c, e, status in rows if status == "called_off"}
    accounts = sorted({a for a, *_ in rows})
    print(
        f"5/7 Running {INTEGRATED_DAG} twice: {len(called_off)} called-off events of {len(rows)} in "
        f"integrated_meetings, accounts {', '.join(accounts)} (one mapped task each, connections "
        f"{', '.join('cronofy_' + a for a in accounts)}); in run 1 {UNSHARED_CALENDAR} is unknown to "
        "globex's token, and is shared again before run 2:"
    )
    outcomes = []
    for run in (1, 2):
        if run == 2:
            emulator.add_calendar(UNSHARED_CALENDAR, access_token=ACCOUNT_TOKENS["globex"])
            for _account, calendar, event_id, _ in rows:
                if calendar == UNSHARED_CALENDAR:
                    emulator.add_event(calendar, event_id)
        before = len(emulator.requests)
        log_name = f"{INTEGRATED_DAG}-run{run}.log"
        result = airflow("dags", "test", INTEGRATED_DAG, log_name=log_name, may_fail=True, env=env)
        output = result.stdout + result.stderr
        ok = result.returncode == 0 and ("state=success" in output or "DagRunState.SUCCESS" in output)
        sent = batch_entries(emulator, before)
        batches = sum(1 for r in emulator.requests[before:] if r.path == "/v1/batch")
        print(
            f"    run {run}: {'success' if ok else 'failed'} (log: {HOME.name}/{log_name}); {batches} batch(es):"
        )
        for account, calendar, event_id, status in sent:
            print(f"      {account:8s} {calendar:20s} {event_id:10s} -> {status}")
        outcomes.append((ok, sent))
    audit = event_audit_table()
    print(f"    Audit table cronofy_event_cancellation_audit ({len(audit)} rows):")
    print(f"      {'run_id':42s} {'account':8s} {'calendar_id':20s} {'event_id':10s} {'outcome':10s} reason")
    for run_id, account, calendar, event_id, outcome, reason in audit:
        print(f"      {run_id:42s} {account:8s} {calendar:20s} {event_id:10s} {outcome:10s} {reason or ''}")

    problems = []
    (first_ok, first_sent), (second_ok, second_sent) = outcomes
    unshared = {k for k in called_off if k[1] == UNSHARED_CALENDAR}
    if first_ok:
        problems.append(f"{INTEGRATED_DAG} run 1 succeeded although {UNSHARED_CALENDAR} was unknown")
    if not second_ok:
        problems.append(f"{INTEGRATED_DAG} run 2 failed")
    if {(a, c, e) for a, c, e, _ in first_sent} != called_off:
        problems.append(f"{INTEGRATED_DAG} run 1 did not send exactly the called-off events")
    if {(a, c, e) for a, c, e, _ in second_sent} != unshared:
        problems.append(f"{INTEGRATED_DAG} run 2 sent {second_sent}, expected only {sorted(unshared)}")
    runs = list(dict.fromkeys(run_id for run_id, *_ in audit))
    if len(runs) != 2:
        problems.append(f"the event audit holds {len(runs)} run(s), expected 2")
    else:
        first = {(a, c, e): o for r, a, c, e, o, _ in audit if r == runs[0]}
        second = {(a, c, e): o for r, a, c, e, o, _ in audit if r == runs[1]}
        expected = {k: "failed" if k in unshared else "cancelled" for k in called_off}
        if first != expected:
            problems.append(f"event audit of run 1: {first}, expected {expected}")
        if second != dict.fromkeys(unshared, "cancelled"):
            problems.append(f"event audit of run 2: {second}")
    events = emulator.events
    for _account, calendar, event_id, status in rows:
        has_agent = events[(calendar, event_id)]["meeting_agent"] is not None
        if has_agent == (status == "called_off"):
            problems.append(f"{calendar}/{event_id} ({status}) agent {'kept' if has_agent else 'removed'}")
    return problems


def sync_tables() -> tuple[list[tuple[Any, ...]], dict[str, str], list[tuple[Any, ...]]]:
    """The sync DAG's view: (scheduling_key, status, join_time) of each meeting, its state table
    as {key: state}, and its audit rows (run_id, scheduling_key, action, outcome, reason)."""
    with sqlite3.connect(WAREHOUSE) as db:
        meetings = db.execute(
            "SELECT scheduling_key, status, join_time FROM meetings ORDER BY scheduling_key"
        ).fetchall()
        agents = dict(db.execute("SELECT scheduling_key, state FROM cronofy_meeting_agents").fetchall())
        audit = db.execute(
            "SELECT run_id, scheduling_key, action, outcome, reason FROM cronofy_sync_audit "
            "ORDER BY recorded_at, run_id, action, scheduling_key"
        ).fetchall()
    db.close()
    return meetings, agents, audit


def run_sync_dag(emulator: Any) -> list[str]:
    """Step 6: the sync DAG twice, with an answer lost after acting in run 1; return the problems."""
    with sqlite3.connect(WAREHOUSE) as db:  # the audit table is the DAG's: not there before run 1
        earlier = db.execute(
            "SELECT scheduling_key, join_url, join_time FROM cronofy_meeting_agents"
        ).fetchall()
    db.close()
    for key, join_url, join_time in earlier:  # the agents earlier nights scheduled
        if key != SYNC_NOT_AT_CRONOFY:
            emulator.schedule_agent(key, join_url=join_url, join_time=join_time)
    emulator.repeated_scheduling_key = "duplicate"  # the worst case: a repeated key adds an agent
    print(
        f"6/7 Running {SYNC_DAG} twice: {len(earlier)} agents scheduled by earlier nights; the emulator "
        "adds a second agent when a key is scheduled again (duplicate), and in run 1 the answer to the "
        "first schedule is lost after Cronofy acted (503):"
    )
    emulator.fail_next(1, 503, method="POST", path="/v1/meeting_agents", after_acting=True)
    env = {"AIRFLOW_CONN_CRONOFY_DEFAULT": emulator.airflow_connection_json(max_concurrency=1)}
    outcomes = []
    for run in (1, 2):
        before = len(emulator.requests)
        log_name = f"{SYNC_DAG}-run{run}.log"
        result = airflow("dags", "test", SYNC_DAG, log_name=log_name, may_fail=True, env=env)
        output = result.stdout + result.stderr
        ok = result.returncode == 0 and ("state=success" in output or "DagRunState.SUCCESS" in output)
        sent = [
            (r.method, r.json["scheduling_key"], r.status)
            for r in emulator.requests[before:]
            if r.path == "/v1/meeting_agents" and isinstance(r.json, dict)
        ]
        print(
            f"    run {run}: {'success' if ok else 'failed'} (log: {HOME.name}/{log_name}); {len(sent)} request(s):"
        )
        for method, key, status in sent:
            print(f"      {method:6s} {key:18s} -> {status}")
        outcomes.append((ok, sent))
        if "pwd=" in output:  # the seed's join_urls carry passcodes; no log line may show one
            outcomes[-1] = (False, sent)
            print(f"    a join_url's passcode is in {log_name}")
    emulator.repeated_scheduling_key = "replace"
    meetings, agents, audit = sync_tables()
    print(f"    Audit table cronofy_sync_audit ({len(audit)} rows):")
    print(f"      {'run_id':42s} {'scheduling_key':18s} {'action':8s} {'outcome':10s} reason")
    for run_id, key, action, outcome, reason in audit:
        print(f"      {run_id:42s} {key:18s} {action:8s} {outcome:10s} {reason or ''}")

    problems = []
    (first_ok, first_sent), (second_ok, second_sent) = outcomes
    if not (first_ok and second_ok):
        problems.append(f"{SYNC_DAG} run {'1' if not first_ok else '2'} failed")
    lost = next((key for method, key, _ in first_sent if method == "POST"), None)
    if [m for m, k, _ in first_sent if k == lost] != ["DELETE", "POST", "DELETE", "POST"]:
        problems.append(f"{SYNC_DAG} run 1 did not send the lost schedule of {lost} again as a pair")
    if second_sent:
        problems.append(f"{SYNC_DAG} run 2 sent {second_sent}, expected nothing")
    if len({run_id for run_id, *_ in audit}) != 1:
        problems.append(
            f"the sync audit holds {len({r for r, *_ in audit})} run(s), expected 1 (run 2 had nothing to do)"
        )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, status, join_time in meetings:
        wanted = 1 if status == "confirmed" and join_time > now else 0
        if emulator.live_agents(key) != wanted:
            problems.append(
                f"{key} ({status}) has {emulator.live_agents(key)} live agent(s), expected {wanted}"
            )
        if (agents.get(key) == "scheduled") != bool(wanted):
            problems.append(f"{key} ({status}): the state table says {agents.get(key)}")
    return problems


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

    print(f"1/7 Setting up Airflow in {HOME.relative_to(ROOT)} (SQLite metadata database) ...")
    airflow("db", "migrate", log_name="db-migrate.log")
    airflow(
        "pools", "set", "cronofy_api", "1", "Cronofy API (rate limited per application)", "--include-deferred"
    )
    wh_called_off, wh_confirmed = seed_warehouse()
    os.environ["AIRFLOW_CONN_MEETINGS_WAREHOUSE"] = json.dumps(
        {"conn_type": "sqlite", "host": str(WAREHOUSE)}
    )

    # 404 for a key it does not know (Cronofy's answer is unconfirmed; the provider handles both).
    with CronofyEmulator(unknown_scheduling_key_status=404) as emulator:
        for key in called_off + confirmed + wh_called_off + wh_confirmed:
            if key != NEVER_SCHEDULED:
                emulator.schedule_agent(key)
        emulator.add_access_token(ACCESS_TOKEN, account_id="acc_demo", expired=True)
        emulator.add_refresh_token(REFRESH_TOKEN, account_id="acc_demo")
        emulator.add_calendar("cal_demo", access_token=ACCESS_TOKEN)
        for event_id in ("evt_demo_1", "evt_demo_2", "evt_demo_3"):
            emulator.add_event("cal_demo", event_id, summary=f"Meeting {event_id[-1]}")
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = emulator.airflow_connection_json(
            access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN
        )
        print(
            f"2/7 Cronofy emulator on {emulator.url}: {len(emulator.scheduled_agents)} scheduled agents, "
            f"3 events with agents; SQLite warehouse {HOME.name}/{WAREHOUSE.name}: "
            f"{len(wh_called_off)} called-off meetings, {len(wh_confirmed)} confirmed"
        )

        print("3/7 Running the example DAGs with `airflow dags test` ...")
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

        print(
            f"4/7 Running {WAREHOUSE_DAG} twice; during run 1 Cronofy answers 503 to {OUTAGE_KEY} and asks "
            "to wait an hour (Retry-After: 3600, more than the hook sleeps for, so the key fails at once; "
            "this demo's connection keeps one request in flight, so that key is the first one sent):"
        )
        one_in_flight = emulator.airflow_connection_json(
            access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN, max_concurrency=1
        )
        emulator.fail_next(1, 503, retry_after=3600, method="DELETE", path="/v1/meeting_agents")
        first_ok, first_sent = run_warehouse_dag(emulator, 1, one_in_flight)
        emulator.clear_faults()
        second_ok, second_sent = run_warehouse_dag(emulator, 2, one_in_flight)
        cancelled_by_first = [k for k, status in first_sent if status == 202]
        resent = sorted({k for k, _ in second_sent} & set(cancelled_by_first))
        print(
            f"    Run 1 failed because one key failed; its audit task ran anyway (trigger rule all_done). "
            f"Run 2 sent {len(second_sent)} request(s), {len(resent)} of them for the "
            f"{len(cancelled_by_first)} key(s) run 1 cancelled ({', '.join(cancelled_by_first)})."
        )

        audit = audit_table()
        print(f"    Audit table cronofy_cancellation_audit ({len(audit)} rows):")
        print(f"      {'run_id':42s} {'recorded_at':19s}  {'scheduling_key':24s} {'outcome':10s} reason")
        for run_id, recorded_at, key, outcome, reason in audit:
            print(f"      {run_id:42s} {recorded_at:19s}  {key:24s} {outcome:10s} {reason or ''}")

        integrated_problems = run_integrated_warehouse_dag(emulator)
        sync_problems = run_sync_dag(emulator)

        agents = emulator.scheduled_agents
        events = {key: event for key, event in emulator.events.items() if key[0] == "cal_demo"}
        requests = emulator.requests

    print("7/7 What the emulator saw:")
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
    problems += warehouse_problems(
        first_ok, second_ok, first_sent, second_sent, audit, agents, wh_called_off, wh_confirmed
    )
    problems += integrated_problems
    problems += sync_problems
    if problems:
        print("DEMO FAILED: " + "; ".join(problems))
        return 1
    print(
        "Demo OK: the called-off meetings' agents are cancelled, the rest untouched; the warehouse "
        "DAGs' re-runs sent nothing for what their first runs cancelled; an unknown calendar cost "
        "only its own events; the sync DAG left one agent per confirmed meeting and its re-run sent nothing."
    )
    return 0


def warehouse_problems(
    first_ok: bool,
    second_ok: bool,
    first_sent: list[tuple[str, int | None]],
    second_sent: list[tuple[str, int | None]],
    audit: list[tuple[Any, ...]],
    agents: dict[str, dict[str, Any]],
    called_off: list[str],
    confirmed: list[str],
) -> list[str]:
    """What went wrong with the warehouse DAG's two runs, if anything."""
    problems = []
    if first_ok:
        problems.append(f"warehouse run 1 succeeded although {OUTAGE_KEY} failed")
    if not second_ok:
        problems.append("warehouse run 2 failed")
    first_keys = list(dict.fromkeys(k for k, _ in first_sent))
    if first_keys != called_off:
        problems.append(f"warehouse run 1 sent {first_keys}, expected {called_off}")
    cancelled_by_first = {k for k, status in first_sent if status == 202}
    if cancelled_by_first & {k for k, _ in second_sent}:
        problems.append("warehouse run 2 re-sent keys run 1 had cancelled")
    runs = list(dict.fromkeys(run_id for run_id, *_ in audit))
    outcomes = {(run_id, key): (outcome, reason) for run_id, _, key, outcome, reason in audit}
    expected_first = {k: "cancelled" for k in called_off} | {
        OUTAGE_KEY: "failed",
        NEVER_SCHEDULED: "not_found",
    }
    expected_second = {OUTAGE_KEY: "cancelled", NEVER_SCHEDULED: "not_found"}
    if len(runs) != 2:
        problems.append(f"the audit table holds {len(runs)} run(s), expected 2")
    else:
        for run_id, expected in zip(runs, (expected_first, expected_second), strict=True):
            got = {key: outcome for (r, key), (outcome, _) in outcomes.items() if r == run_id}
            if got != expected:
                problems.append(f"audit of {run_id}: {got}, expected {expected}")
        reason = outcomes.get((runs[0], OUTAGE_KEY), ("", None))[1] or ""
        if "503" not in reason:
            problems.append(f"the audit's reason for {OUTAGE_KEY} does not name the 503: {reason!r}")
    for key in called_off:
        if key != NEVER_SCHEDULED and agents[key]["status"] != "cancelled":
            problems.append(f"{key} not cancelled")
    problems += [f"{k} cancelled but was confirmed" for k in confirmed if agents[k]["status"] != "scheduled"]
    return problems


if __name__ == "__main__":
    sys.exit(main())
