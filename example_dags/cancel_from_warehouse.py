"""Cancel the Meeting Agents of meetings a warehouse table marks as called off, and audit each one.

Two DAGs: ``cronofy_cancel_from_warehouse`` (scheduled agents, by scheduling key, below) and
``cronofy_cancel_integrated_from_warehouse`` (agents on calendar events, across calendars and
Cronofy accounts; see the second part of this docstring).

Every night:

1. ``create_audit_table``: ``CREATE TABLE IF NOT EXISTS`` the audit table (drop this task if your
   schema is managed elsewhere).
2. ``read_called_off_meetings``: the scheduling keys of ``crm_meetings`` rows whose status is
   ``called_off``, minus the keys the audit table already shows as ``cancelled``, so a re-run (or
   tomorrow's run) never re-sends them. Keys that came back ``not_found`` or ``failed`` are sent
   again: a retry is harmless (Cronofy answers 202 or 404) and a failure may have been transient.
3. ``cancel_meeting_agents``: one ``CancelScheduledMeetingAgentOperator`` for the whole list (one
   HTTP session, paced under Cronofy's rate limit, in the ``cronofy_api`` pool).
4. ``record_outcomes`` (trigger rule ``all_done``, so it runs when some keys failed too): one audit
   row per key: ``cancelled``, ``not_found`` or ``failed``, the reason (for ``failed``), the run id
   and the time (UTC). It reads the operator's return value, or when the operator failed, its
   ``partial_result`` and ``failures`` XComs. A key the run did not reach (a fatal error stopped it
   first, or a timeout) is ``failed`` with that reason. Reasons come from the provider's errors,
   which never hold the API key or a token.
5. ``fail_the_run_if_a_task_failed`` (trigger rule ``one_failed``): without it the run would be
   green whenever the audit succeeded (Airflow derives a run's state from its last tasks); it fails
   the run so that a failed cancellation is seen. The audit is written all the same.

The cancel task has no Airflow retries on purpose: the next run is the retry (it re-sends every
key not yet cancelled), and the hook already retries 429s, 5xx and timeouts. ``max_active_runs=1``
keeps two runs from sending the same keys at once.

**Another database.** The SQL goes through common-sql's ``DbApiHook`` of connection
``meetings_warehouse``, SQLite by default (``make demo`` defines it as
``{"conn_type": "sqlite", "host": "/path/to/warehouse.db"}``). To use Postgres or Snowflake:

- define ``meetings_warehouse`` as a ``postgres`` or ``snowflake`` connection (or point
  ``WAREHOUSE_CONN_ID`` at an existing one) and install ``apache-airflow-providers-postgres`` or
  ``-snowflake``;
- schema-qualify ``SOURCE_TABLE`` / ``AUDIT_TABLE`` if they are not in the connection's default
  schema.

Nothing else: the SQL is portable (``VARCHAR``, ``TIMESTAMP``, ``CREATE TABLE IF NOT EXISTS``,
``NOT EXISTS``), values travel as DB-API parameters written with the hook's own placeholder
(``?`` for SQLite, ``%s`` for Postgres and Snowflake), and the audit rows go in through
``DbApiHook.insert_rows``, which does the same.

**Integrated meetings, many accounts** (``cronofy_cancel_integrated_from_warehouse``). The table
``integrated_meetings`` (``account, calendar_id, event_id, status``) holds meetings whose agents
sit on calendar events, in the calendars of several Cronofy accounts. Each account has its own
Airflow connection, ``cronofy_<account>`` (its access token, or what refreshing one needs; a
secrets backend holds thousands as well as two). Every night:

1. ``create_event_audit_table``: the audit table, one row per event and run.
2. ``read_called_off_events``: the called-off rows the audit does not show as ``cancelled`` yet
   (a re-run sends only what is not cancelled, as for scheduled agents).
3. ``group_by_account``: one ``{"cronofy_conn_id": "cronofy_<account>", "events": [...]}`` per
   account.
4. ``cancel_integrated_events``: ``CancelIntegratedMeetingAgentOperator`` mapped over those
   (``expand_kwargs``): one task per account, each sending all of its account's events, calendars
   mixed, 50 to a ``POST /v1/batch``. An unknown calendar (Cronofy answers 404: the calendar was
   removed or is no longer shared with the account) fails only its own events; a revoked token
   fails only its account's task.
5. ``record_event_outcomes`` (``all_done``): one audit row per event (account, calendar, event,
   ``cancelled`` or ``failed``, the reason, the run id, the time), from each mapped task's return
   value, or its ``partial_result`` and ``failures`` XComs when it failed.
6. ``fail_the_run_if_a_task_failed`` (``one_failed``), as above.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task
try:  # Airflow 3.1+
    from airflow.sdk import BaseHook
except ImportError:  # Airflow 2.11, 3.0
    from airflow.hooks.base import BaseHook

WAREHOUSE_CONN_ID = "meetings_warehouse"
SOURCE_TABLE = "crm_meetings"
AUDIT_TABLE = "cronofy_cancellation_audit"
CANCEL_TASK_ID = "cancel_meeting_agents"
REASON_MAX_CHARS = 1000  # the reason column's width

log = logging.getLogger(__name__)

CREATE_AUDIT_TABLE = f"""
CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
    scheduling_key VARCHAR(255) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    reason VARCHAR({REASON_MAX_CHARS}),
    run_id VARCHAR(250) NOT NULL,
    recorded_at TIMESTAMP NOT NULL
)
"""

# {p} is the hook's DB-API placeholder; the values are parameters, never spliced into the text.
CALLED_OFF_NOT_YET_CANCELLED = f"""
SELECT m.scheduling_key
FROM {SOURCE_TABLE} m
WHERE m.status = {{p}}
  AND NOT EXISTS (
      SELECT 1 FROM {AUDIT_TABLE} a
      WHERE a.scheduling_key = m.scheduling_key AND a.outcome = {{p}}
  )
ORDER BY m.scheduling_key
"""


def warehouse_hook() -> DbApiHook:
    """The connection's own common-sql hook: SqliteHook, PostgresHook, SnowflakeHook, ..."""
    hook = BaseHook.get_connection(WAREHOUSE_CONN_ID).get_hook()
    if not isinstance(hook, DbApiHook):
        raise TypeError(
            f"Connection {WAREHOUSE_CONN_ID!r} gives a {type(hook).__name__}, not a common-sql DbApiHook: "
            "use a SQL database connection (sqlite, postgres, snowflake, ...)."
        )
    return hook


def audit_rows(
    asked: list[str],
    result: dict[str, list[str]] | None,
    failures: list[dict] | None,
    run_id: str,
    recorded_at: str,
) -> list[tuple[str, str, str | None, str, str]]:
    """One ``(scheduling_key, outcome, reason, run_id, recorded_at)`` row per key asked for.

    ``result`` is the cancel task's return value, or its ``partial_result`` when it failed (None
    when it failed before any); ``failures`` its ``failures`` XCom (each failed key's reason).
    """
    result = result or {}
    reasons = {f["item"]: f["reason"] for f in failures or []}
    if not result:
        not_reached = "not cancelled: the cancel task failed without reporting results (see its log)"
    else:
        not_reached = "not sent: the cancel task stopped before this key (see its log)"
    cancelled, not_found = set(result.get("cancelled", ())), set(result.get("not_found", ()))
    rows = []
    for key in asked:
        if key in cancelled:
            outcome, reason = "cancelled", None
        elif key in not_found:
            outcome, reason = "not_found", None
        else:
            outcome, reason = "failed", reasons.get(key, not_reached)[:REASON_MAX_CHARS]
        rows.append((key, outcome, reason, run_id, recorded_at))
    return rows


with DAG(
    dag_id="cronofy_cancel_from_warehouse",
    description="Cancel the Meeting Agents of called-off meetings from a warehouse table, with an audit",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["cronofy", "example", "sql"],
) as dag:
    create_audit_table = SQLExecuteQueryOperator(
        task_id="create_audit_table",
        conn_id=WAREHOUSE_CONN_ID,
        sql=CREATE_AUDIT_TABLE,
        do_xcom_push=False,
    )

    # [START howto_dag_warehouse_scheduled]
    @task
    def read_called_off_meetings() -> list[str]:
        """Scheduling keys of called-off meetings the audit does not show as cancelled yet."""
        hook = warehouse_hook()
        sql = CALLED_OFF_NOT_YET_CANCELLED.format(p=hook.placeholder)
        return [row[0] for row in hook.get_records(sql, parameters=("called_off", "cancelled"))]

    keys = read_called_off_meetings()

    cancel = CancelScheduledMeetingAgentOperator(
        task_id=CANCEL_TASK_ID,
        scheduling_key=keys,
        pool="cronofy_api",
        retries=0,  # the next run is the retry: it re-sends every key not cancelled yet
    )
    # [END howto_dag_warehouse_scheduled]

    @task(trigger_rule="all_done")
    def record_outcomes(ti=None, run_id=None) -> dict[str, int]:
        """Write one audit row per key read, whatever became of the cancel task."""
        asked = ti.xcom_pull(task_ids="read_called_off_meetings")
        if not asked:
            log.info("No keys were read (none called off, or the read failed): nothing to record.")
            return {}
        result = ti.xcom_pull(task_ids=CANCEL_TASK_ID)  # None unless the task succeeded
        if result is None:
            result = ti.xcom_pull(task_ids=CANCEL_TASK_ID, key="partial_result")
        failures = ti.xcom_pull(task_ids=CANCEL_TASK_ID, key="failures")
        # A string, not a datetime: sqlite3's datetime adapter is deprecated (Python 3.12), and
        # Postgres and Snowflake cast this ISO form into a TIMESTAMP column.
        recorded_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows = audit_rows(asked, result, failures, run_id, recorded_at)
        warehouse_hook().insert_rows(
            AUDIT_TABLE, rows, target_fields=["scheduling_key", "outcome", "reason", "run_id", "recorded_at"]
        )
        counts: dict[str, int] = {}
        for _, outcome, *_rest in rows:
            counts[outcome] = counts.get(outcome, 0) + 1
        log.info("Recorded %d outcome(s) in %s: %s", len(rows), AUDIT_TABLE, counts)
        return counts

    @task(trigger_rule="one_failed")
    def fail_the_run_if_a_task_failed() -> None:
        """Runs only when a task failed: fails the run, which the audit's success would hide."""
        raise RuntimeError(f"A task of this run failed; {AUDIT_TABLE} records each key's outcome and reason.")

    recorded = record_outcomes()
    create_audit_table >> keys >> cancel >> recorded
    [create_audit_table, keys, cancel, recorded] >> fail_the_run_if_a_task_failed()


# ---------------------------------------------------------------- integrated meetings, many accounts

EVENTS_TABLE = "integrated_meetings"
EVENT_AUDIT_TABLE = "cronofy_event_cancellation_audit"
CANCEL_EVENTS_TASK_ID = "cancel_integrated_events"
EVENT_AUDIT_FIELDS = ["account", "calendar_id", "event_id", "outcome", "reason", "run_id", "recorded_at"]

CREATE_EVENT_AUDIT_TABLE = f"""
CREATE TABLE IF NOT EXISTS {EVENT_AUDIT_TABLE} (
    account VARCHAR(64) NOT NULL,
    calendar_id VARCHAR(255) NOT NULL,
    event_id VARCHAR(255) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    reason VARCHAR({REASON_MAX_CHARS}),
    run_id VARCHAR(250) NOT NULL,
    recorded_at TIMESTAMP NOT NULL
)
"""

CALLED_OFF_EVENTS_NOT_YET_CANCELLED = f"""
SELECT m.account, m.calendar_id, m.event_id
FROM {EVENTS_TABLE} m
WHERE m.status = {{p}}
  AND NOT EXISTS (
      SELECT 1 FROM {EVENT_AUDIT_TABLE} a
      WHERE a.account = m.account AND a.calendar_id = m.calendar_id AND a.event_id = m.event_id
        AND a.outcome = {{p}}
  )
ORDER BY m.account, m.calendar_id, m.event_id
"""


# [START howto_group_events_by_account]
def group_events_by_account(rows: list[dict[str, str]]) -> list[dict[str, object]]:
    """One ``{"cronofy_conn_id", "events"}`` per account of ``rows``, accounts in first-seen order."""
    by_account: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        event = {"calendar_id": row["calendar_id"], "event_id": row["event_id"]}
        by_account.setdefault(row["account"], []).append(event)
    return [
        {"cronofy_conn_id": f"cronofy_{account}", "events": events} for account, events in by_account.items()
    ]


# [END howto_group_events_by_account]


def event_audit_rows(
    account: str,
    asked: list[dict[str, str]],
    result: dict[str, list[dict[str, str]]] | None,
    failures: list[dict] | None,
    run_id: str,
    recorded_at: str,
) -> list[tuple[str, str, str, str, str | None, str, str]]:
    """One audit row (see ``EVENT_AUDIT_FIELDS``) per event ``asked`` of one account's task.

    ``result`` is the task's return value, or its ``partial_result`` when it failed (None when it
    failed before any); ``failures`` its ``failures`` XCom (each failed event's reason).
    """
    cancelled = {(e["calendar_id"], e["event_id"]) for e in (result or {}).get("cancelled", ())}
    reasons = {(f["calendar_id"], f["event_id"]): f["reason"] for f in failures or []}
    if not result:
        not_reached = "not cancelled: the cancel task failed without reporting results (see its log)"
    else:
        not_reached = "not sent: the cancel task stopped before this event (see its log)"
    rows = []
    for event in asked:
        key = (event["calendar_id"], event["event_id"])
        if key in cancelled:
            outcome, reason = "cancelled", None
        else:
            outcome, reason = "failed", reasons.get(key, not_reached)[:REASON_MAX_CHARS]
        rows.append((account, *key, outcome, reason, run_id, recorded_at))
    return rows


with DAG(
    dag_id="cronofy_cancel_integrated_from_warehouse",
    description="Cancel the agents of called-off calendar events, one task per Cronofy account, with an audit",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["cronofy", "example", "sql"],
) as integrated_dag:
    create_event_audit_table = SQLExecuteQueryOperator(
        task_id="create_event_audit_table",
        conn_id=WAREHOUSE_CONN_ID,
        sql=CREATE_EVENT_AUDIT_TABLE,
        do_xcom_push=False,
    )

    # [START howto_operator_cancel_integrated_events]
    # Rows as {"account", "calendar_id", "event_id"} dicts: what `events` takes (other keys are
    # ignored), so with one account this XCom goes straight into
    # CancelIntegratedMeetingAgentOperator(task_id=..., events=read_called_off_events()).
    @task
    def read_called_off_events() -> list[dict[str, str]]:
        """``{"account", "calendar_id", "event_id"}`` of called-off events not cancelled yet."""
        hook = warehouse_hook()
        sql = CALLED_OFF_EVENTS_NOT_YET_CANCELLED.format(p=hook.placeholder)
        rows = hook.get_records(sql, parameters=("called_off", "cancelled"))
        return [{"account": a, "calendar_id": c, "event_id": e} for a, c, e in rows]

    # [END howto_operator_cancel_integrated_events]

    called_off_events = read_called_off_events()

    # [START howto_operator_cancel_integrated_many_accounts]
    @task
    def group_by_account(rows: list[dict[str, str]]) -> list[dict[str, object]]:
        """One set of operator arguments per account: its connection and its events."""
        return group_events_by_account(rows)

    # One mapped task per account, each with its own connection (cronofy_<account>) and a list of
    # {"calendar_id", "event_id"} dicts: every calendar of the account in one task.
    cancel_events = CancelIntegratedMeetingAgentOperator.partial(
        task_id=CANCEL_EVENTS_TASK_ID,
        pool="cronofy_api",
        retries=0,  # the next run is the retry: it re-sends every event not cancelled yet
    ).expand_kwargs(group_by_account(called_off_events))
    # [END howto_operator_cancel_integrated_many_accounts]

    @task(trigger_rule="all_done")
    def record_event_outcomes(ti=None, run_id=None) -> dict[str, int]:
        """Write one audit row per event read, whatever became of each account's task."""
        groups = ti.xcom_pull(task_ids="group_by_account")
        if not groups:
            log.info("No events were read (none called off, or the read failed): nothing to record.")
            return {}
        recorded_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        rows = []
        for index, group in enumerate(groups):  # map index i is the task of groups[i]
            result = ti.xcom_pull(task_ids=CANCEL_EVENTS_TASK_ID, map_indexes=index)
            if result is None:  # the task failed: what it did cancel, and why the rest failed
                result = ti.xcom_pull(task_ids=CANCEL_EVENTS_TASK_ID, map_indexes=index, key="partial_result")
            failures = ti.xcom_pull(task_ids=CANCEL_EVENTS_TASK_ID, map_indexes=index, key="failures")
            account = group["cronofy_conn_id"].removeprefix("cronofy_")
            rows += event_audit_rows(account, group["events"], result, failures, run_id, recorded_at)
        warehouse_hook().insert_rows(EVENT_AUDIT_TABLE, rows, target_fields=EVENT_AUDIT_FIELDS)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row[3]] = counts.get(row[3], 0) + 1
        log.info("Recorded %d outcome(s) in %s: %s", len(rows), EVENT_AUDIT_TABLE, counts)
        return counts

    @task(trigger_rule="one_failed", task_id="fail_the_run_if_a_task_failed")
    def fail_the_integrated_run_if_a_task_failed() -> None:
        """Runs only when a task failed: fails the run, which the audit's success would hide."""
        raise RuntimeError(
            f"A task of this run failed; {EVENT_AUDIT_TABLE} records each event's outcome and reason."
        )

    events_recorded = record_event_outcomes()
    create_event_audit_table >> called_off_events
    cancel_events >> events_recorded
    [create_event_audit_table, called_off_events, cancel_events, events_recorded] >> (
        fail_the_integrated_run_if_a_task_failed()
    )
