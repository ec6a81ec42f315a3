"""Keep Cronofy's Meeting Agents in step with a warehouse's meetings table, every night.

DAG ``cronofy_sync_meeting_agents``: confirmed meetings get an agent, called-off ones lose theirs,
each outcome goes into an audit table, and a re-run finds nothing left to do.

The warehouse holds ``meetings`` (the CRM's table, only read here: ``meeting_id``,
``scheduling_key``, ``title``, ``organiser``, ``join_url``, ``join_time``, ``status``), and the DAG
keeps two tables of its own, created when missing:

- ``cronofy_meeting_agents``: the state, one row per scheduling key that has an agent (``state``
  ``scheduled``, with the ``join_url`` and ``join_time`` it was scheduled for) or may have one
  (``state`` ``unknown``: scheduling it failed, see below). The CRM loader may rewrite
  ``meetings`` every night; this table is the DAG's alone, so what Cronofy holds is not lost.
- ``cronofy_sync_audit``: one row per key acted on per run (``scheduling_key``, ``action``
  ``schedule`` or ``cancel``, ``outcome``, ``reason``, ``run_id``, ``recorded_at``).

Every night:

1. ``create_tables``: the two tables, ``CREATE TABLE IF NOT EXISTS``.
2. ``read_meetings_to_schedule``: the ``meetings`` rows, every column, that are ``confirmed``, start
   more than ``SCHEDULE_MARGIN`` from now, and have no ``scheduled`` state row for the same
   ``join_url`` and ``join_time`` (never scheduled, moved since, or ``unknown``).
   ``read_agents_to_cancel``: the keys of state rows whose meeting is ``called_off`` or gone
   from ``meetings``.
3. ``schedule_meeting_agents``: one ``ScheduleMeetingAgentOperator`` with ``agents=`` the rows as
   read; it sends ``scheduling_key``, ``join_url`` and ``join_time`` and drops the other columns.
   It cancels each key before it schedules it, so a moved meeting's old agent goes and no key
   ever has two agents, whatever Cronofy does with a repeated key.
   ``cancel_meeting_agents``: one ``CancelScheduledMeetingAgentOperator`` for the keys read.
   Both authorise with the ``cronofy_default`` connection's API key, in the ``cronofy_api`` pool.
4. ``record_outcomes`` (trigger rule ``all_done``: it runs when a task failed too): from each
   operator's return value, or when it failed its ``partial_result``, ``failures`` and
   ``not_attempted`` XComs, one audit row per key: ``scheduled``, ``cancelled``, ``not_found``,
   ``failed`` (with the reason), or ``not_attempted`` (the run stopped before sending it). In the
   same transaction it updates the state: ``scheduled`` writes a ``scheduled`` row;
   ``cancelled`` and ``not_found`` delete the row; a ``failed`` schedule writes an ``unknown``
   row (the answer may have been lost after Cronofy acted: the key has at most one agent,
   perhaps none), so the next run schedules it again if the meeting is still confirmed, or
   cancels it if it was called off; ``not_attempted`` and a failed cancel change nothing (the
   next run sends them again).
5. ``fail_the_run_if_a_task_failed`` (trigger rule ``one_failed``): makes a failure visible, which
   the audit task's success would otherwise hide.

The operators have no Airflow retries: the next run is the retry, and it sends only what is not
done. ``max_active_runs=1`` keeps two runs from sending the same keys at once.

**Another database**: as for ``cancel_from_warehouse.py``: point ``WAREHOUSE_CONN_ID`` at a
Postgres or Snowflake connection; every value is a DB-API parameter with the hook's own
placeholder. ``join_time`` must compare with an ISO 8601 UTC string (a text column in that form,
or a ``TIMESTAMP WITH TIME ZONE``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from airflow_provider_cronofy.operators.meeting_agents import (
    CancelScheduledMeetingAgentOperator,
    ScheduleMeetingAgentOperator,
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
MEETINGS_TABLE = "meetings"
STATE_TABLE = "cronofy_meeting_agents"
AUDIT_TABLE = "cronofy_sync_audit"
SCHEDULE_TASK_ID = "schedule_meeting_agents"
CANCEL_TASK_ID = "cancel_meeting_agents"
REASON_MAX_CHARS = 1000  # the reason column's width
# The operator refuses the whole list if one join_time has passed by the time it sends (an agent
# cannot join a meeting that has begun), so meetings this close are left out of the read.
SCHEDULE_MARGIN = timedelta(minutes=15)
AUDIT_FIELDS = ("scheduling_key", "action", "outcome", "reason", "run_id", "recorded_at")
STATE_FIELDS = ("scheduling_key", "state", "join_url", "join_time", "run_id", "updated_at")

log = logging.getLogger(__name__)

CREATE_TABLES = [
    f"""
    CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
        scheduling_key VARCHAR(255) NOT NULL PRIMARY KEY,
        state VARCHAR(16) NOT NULL,
        join_url VARCHAR(1000) NOT NULL,
        join_time VARCHAR(32) NOT NULL,
        run_id VARCHAR(250) NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
        scheduling_key VARCHAR(255) NOT NULL,
        action VARCHAR(16) NOT NULL,
        outcome VARCHAR(16) NOT NULL,
        reason VARCHAR({REASON_MAX_CHARS}),
        run_id VARCHAR(250) NOT NULL,
        recorded_at TIMESTAMP NOT NULL
    )
    """,
]

# {p} is the hook's DB-API placeholder; the values are parameters, never spliced into the text.
# Parameters: 'confirmed', the earliest join_time to schedule, 'scheduled'.
CONFIRMED_WITHOUT_AGENT = f"""
SELECT m.*
FROM {MEETINGS_TABLE} m
LEFT JOIN {STATE_TABLE} a ON a.scheduling_key = m.scheduling_key
WHERE m.status = {{p}}
  AND m.join_time > {{p}}
  AND (a.scheduling_key IS NULL OR a.state <> {{p}} OR a.join_url <> m.join_url OR a.join_time <> m.join_time)
ORDER BY m.scheduling_key
"""

# Parameters: 'called_off'.
AGENTS_OF_CALLED_OFF = f"""
SELECT a.scheduling_key
FROM {STATE_TABLE} a
LEFT JOIN {MEETINGS_TABLE} m ON m.scheduling_key = a.scheduling_key
WHERE m.scheduling_key IS NULL OR m.status = {{p}}
ORDER BY a.scheduling_key
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


def utc_text(moment: datetime) -> str:
    """``moment`` as the ``join_time`` column holds it: ISO 8601 in UTC, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def meetings_to_schedule(hook: DbApiHook, now: datetime) -> list[dict[str, Any]]:
    """Confirmed meetings starting after ``now`` + ``SCHEDULE_MARGIN`` without a scheduled agent
    for their ``join_url`` and ``join_time``: every column, one dict per row."""
    sql = CONFIRMED_WITHOUT_AGENT.format(p=hook.placeholder)
    parameters = ("confirmed", utc_text(now + SCHEDULE_MARGIN), "scheduled")

    def as_dicts(cursor: Any) -> list[dict[str, Any]]:
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return hook.run(sql, parameters=parameters, handler=as_dicts) or []


def agents_to_cancel(hook: DbApiHook) -> list[str]:
    """Keys with a state row whose meeting is called off or no longer in the table."""
    sql = AGENTS_OF_CALLED_OFF.format(p=hook.placeholder)
    return [row[0] for row in hook.get_records(sql, parameters=("called_off",))]


def key_outcomes(
    asked: Sequence[str],
    result: Mapping[str, Sequence[str]] | None,
    failures: Iterable[Mapping[str, Any]] | None,
    not_attempted: Iterable[str] | None,
    *,
    done: Sequence[str],
    key_field: str,
    task_id: str,
) -> list[tuple[str, str, str | None]]:
    """``(scheduling_key, outcome, reason)`` for each key ``asked`` of one operator task.

    ``result`` is the task's return value, or its ``partial_result`` when it failed (None when it
    failed before reporting any); ``failures`` and ``not_attempted`` its XComs of those names;
    ``done`` the outcome names of its return value; ``key_field`` the key's field in a failure.
    """
    reported = {name: set((result or {}).get(name, ())) for name in done}
    reasons = {failure[key_field]: str(failure["reason"]) for failure in failures or ()}
    unsent = set(not_attempted or ())
    rows: list[tuple[str, str, str | None]] = []
    for key in asked:
        outcome = next((name for name in done if key in reported[name]), None)
        if outcome is not None:
            rows.append((key, outcome, None))
        elif key in reasons:
            rows.append((key, "failed", reasons[key][:REASON_MAX_CHARS]))
        elif key in unsent:
            rows.append((key, "not_attempted", f"not sent: {task_id} stopped before this key (see its log)"))
        else:  # the task failed before reporting (bad input, no connection, killed): unknown
            rows.append((key, "failed", f"{task_id} failed without reporting this key (see its log)"))
    return rows


def state_changes(
    meetings: Sequence[Mapping[str, Any]],
    scheduled: Sequence[tuple[str, str, str | None]],
    cancelled: Sequence[tuple[str, str, str | None]],
) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """The keys whose state row goes, and the ``(key, state, join_url, join_time)`` rows to write
    in their place, from the outcomes of the schedule task (over ``meetings``, the rows it was
    given) and of the cancel task. See the module docstring for the rules."""
    meeting_of = {str(m["scheduling_key"]): m for m in meetings}
    delete: list[str] = []
    write: list[tuple[str, str, str, str]] = []
    for key, outcome, _ in scheduled:
        if outcome in ("scheduled", "failed"):  # failed: the key may have an agent (state unknown)
            meeting = meeting_of[key]
            state = "scheduled" if outcome == "scheduled" else "unknown"
            delete.append(key)
            write.append((key, state, str(meeting["join_url"]), str(meeting["join_time"])))
    delete += [key for key, outcome, _ in cancelled if outcome in ("cancelled", "not_found")]
    return delete, write


def task_report(ti: Any, task_id: str) -> tuple[Any, Any, Any]:
    """An operator task's return value (or ``partial_result``), ``failures`` and ``not_attempted``."""
    result = ti.xcom_pull(task_ids=task_id)  # None unless the task succeeded
    if result is None:
        result = ti.xcom_pull(task_ids=task_id, key="partial_result")
    failures = ti.xcom_pull(task_ids=task_id, key="failures")
    return result, failures, ti.xcom_pull(task_ids=task_id, key="not_attempted")


def write_outcomes(
    hook: DbApiHook,
    audit: Sequence[tuple[str, ...] | tuple[Any, ...]],
    delete: Sequence[str],
    write: Sequence[tuple[str, str, str, str]],
    run_id: str,
    now: str,
) -> None:
    """Insert the audit rows and replace the state rows, in one transaction."""
    p = hook.placeholder
    with closing(hook.get_conn()) as conn:
        cursor = conn.cursor()
        if audit:
            columns, marks = ", ".join(AUDIT_FIELDS), ", ".join([p] * len(AUDIT_FIELDS))
            cursor.executemany(f"INSERT INTO {AUDIT_TABLE} ({columns}) VALUES ({marks})", list(audit))
        if delete:
            cursor.executemany(
                f"DELETE FROM {STATE_TABLE} WHERE scheduling_key = {p}", [(k,) for k in delete]
            )
        if write:
            columns, marks = ", ".join(STATE_FIELDS), ", ".join([p] * len(STATE_FIELDS))
            cursor.executemany(
                f"INSERT INTO {STATE_TABLE} ({columns}) VALUES ({marks})",
                [(*row, run_id, now) for row in write],
            )
        conn.commit()


with DAG(
    dag_id="cronofy_sync_meeting_agents",
    description="Schedule agents for confirmed meetings and cancel them for called-off ones, with an audit",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["cronofy", "example", "sql"],
) as dag:
    create_tables = SQLExecuteQueryOperator(
        task_id="create_tables",
        conn_id=WAREHOUSE_CONN_ID,
        sql=CREATE_TABLES,
        do_xcom_push=False,
    )

    # [START howto_dag_sync_meeting_agents]
    # The rows' join_urls may hold meeting passcodes: kept out of the task log (they are in
    # the XCom, which the operator reads).
    @task(show_return_value_in_logs=False)
    def read_meetings_to_schedule() -> list[dict[str, Any]]:
        """Rows of confirmed meetings without a scheduled agent for their time and URL."""
        return meetings_to_schedule(warehouse_hook(), datetime.now(timezone.utc))

    @task
    def read_agents_to_cancel() -> list[str]:
        """Keys of agents whose meeting was called off (or is gone)."""
        return agents_to_cancel(warehouse_hook())

    meetings = read_meetings_to_schedule()
    keys = read_agents_to_cancel()

    schedule = ScheduleMeetingAgentOperator(
        task_id=SCHEDULE_TASK_ID,
        # The rows as read, every column: the operator sends scheduling_key, join_url and
        # join_time (in UTC) and drops the rest (meeting_id, organiser, status, ...).
        agents=meetings,
        pool="cronofy_api",
        retries=0,  # the next run is the retry: it reads what is still not scheduled
    )
    cancel = CancelScheduledMeetingAgentOperator(
        task_id=CANCEL_TASK_ID,
        scheduling_key=keys,
        pool="cronofy_api",
        retries=0,
    )

    @task(trigger_rule="all_done")
    def record_outcomes(ti=None, run_id=None) -> dict[str, int]:
        """One audit row per key sent (or meant to be), and the state updated, in one transaction."""
        asked = ti.xcom_pull(task_ids="read_meetings_to_schedule") or []
        to_cancel = ti.xcom_pull(task_ids="read_agents_to_cancel") or []
        scheduled = key_outcomes(
            [str(m["scheduling_key"]) for m in asked],
            *task_report(ti, SCHEDULE_TASK_ID),
            done=("scheduled",),
            key_field="scheduling_key",
            task_id=SCHEDULE_TASK_ID,
        )
        cancelled = key_outcomes(
            to_cancel,
            *task_report(ti, CANCEL_TASK_ID),
            done=("cancelled", "not_found"),
            key_field="item",
            task_id=CANCEL_TASK_ID,
        )
        if not scheduled and not cancelled:
            log.info("Nothing to schedule or cancel: the warehouse and Cronofy agree.")
            return {}
        # A string, not a datetime: sqlite3's datetime adapter is deprecated (Python 3.12), and
        # Postgres and Snowflake cast this form into a TIMESTAMP column.
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        audit = [(key, "schedule", outcome, reason, run_id, now) for key, outcome, reason in scheduled]
        audit += [(key, "cancel", outcome, reason, run_id, now) for key, outcome, reason in cancelled]
        delete, write = state_changes(asked, scheduled, cancelled)
        write_outcomes(warehouse_hook(), audit, delete, write, run_id, now)
        counts: dict[str, int] = {}
        for row in audit:
            counts[row[2]] = counts.get(row[2], 0) + 1
        log.info("Recorded %d outcome(s) in %s: %s", len(audit), AUDIT_TABLE, counts)
        return counts

    # [END howto_dag_sync_meeting_agents]

    @task(trigger_rule="one_failed")
    def fail_the_run_if_a_task_failed() -> None:
        """Runs only when a task failed: fails the run, which the audit's success would hide."""
        raise RuntimeError(f"A task of this run failed; {AUDIT_TABLE} records each key's outcome and reason.")

    recorded = record_outcomes()
    create_tables >> [meetings, keys]
    [schedule, cancel] >> recorded
    [create_tables, meetings, keys, schedule, cancel, recorded] >> fail_the_run_if_a_task_failed()
