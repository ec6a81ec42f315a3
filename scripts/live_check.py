"""`make test-live`: check the provider against the real Cronofy before the first production run.

Opt in: not part of `make test` or CI. It reads the connection ``cronofy_live`` from
``AIRFLOW_CONN_CRONOFY_LIVE`` (an API key, and an access token with the ``create_event`` and
``delete_event`` scopes) and ``CRONOFY_LIVE_CALENDAR_ID`` (a calendar that token owns, for test
events). Without either it fails at once, naming both. With them it:

1. runs ``test_connection`` (one harmless cancel for the API key, ``GET /v1/userinfo``);
2. cancels a scheduling key nobody scheduled with ``CancelScheduledMeetingAgentOperator`` and
   records what Cronofy answered (a typo in a key is only visible if that is a 404);
3. creates an event a week ahead with a Meeting Agent and removes the agent with
   ``CancelIntegratedMeetingAgentOperator``, batched and then without ``use_batch``, recording
   whether Cronofy accepts the partial body (``event_id`` and ``meeting_agent`` only);
4. creates another and deletes it with ``delete_event=True``;
5. deletes every event it created, also when a step failed;

and prints a short report (stdout) of each open question and what Cronofy answered: no credential
in it. Exit status 0 when every step passed, 1 when one failed, 2 when the settings are missing.

The test suite runs the same code against the emulator (tests/test_live_check.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CONN_ID = "cronofy_live"
CONN_VARIABLE = "AIRFLOW_CONN_CRONOFY_LIVE"
CALENDAR_VARIABLE = "CRONOFY_LIVE_CALENDAR_ID"
PREFIX = "airflow-live-check-"
SUMMARY = "airflow-provider-cronofy live check (safe to delete)"


@dataclass
class Finding:
    """One step: the question it answers, what Cronofy answered, and whether the step passed."""

    question: str
    answer: str
    ok: bool = True


@dataclass
class Report:
    """What the check found, in the order it found it."""

    where: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, question: str, answer: str, ok: bool = True) -> None:
        self.findings.append(Finding(question, answer, ok))

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(finding.ok for finding in self.findings)

    def render(self) -> str:
        lines = [f"Cronofy live check against {self.where}"]
        for finding in self.findings:
            lines.append(f"  [{'ok' if finding.ok else 'FAILED'}] {finding.question}")
            lines.append(f"         {finding.answer}")
        failed = sum(not finding.ok for finding in self.findings)
        lines.append(
            "Result: " + ("passed." if self.ok else f"FAILED ({failed} of {len(self.findings)} steps).")
        )
        return "\n".join(lines)


def missing_settings(environ: Mapping[str, str]) -> str | None:
    """The message to fail with when a setting is missing, or ``None`` when both are set."""
    missing = [name for name in (CONN_VARIABLE, CALENDAR_VARIABLE) if not environ.get(name, "").strip()]
    if not missing:
        return None
    return (
        f"make test-live needs {CONN_VARIABLE} (the connection {CONN_ID!r}, as JSON or a URI: the "
        "API key as password, and an access_token extra with the create_event and delete_event "
        f"scopes) and {CALENDAR_VARIABLE} (a calendar that token owns, for test events). "
        f"Missing: {', '.join(missing)}. Nothing was sent."
    )


def _event_body(event_id: str, start: datetime, agent: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "summary": SUMMARY,
        "description": "Created by `make test-live` of airflow-provider-cronofy; deleted by it too.",
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tzid": "Etc/UTC",
        "meeting_agent": {"profile_id": agent},
    }


def _failure_answer(error: BaseException) -> str:
    """What a failed operator run answered, in a line: the first failure's status and reason."""
    from airflow_provider_cronofy.exceptions import CronofyBulkError

    if isinstance(error, CronofyBulkError) and error.failures:
        first = error.failures[0]
        return f"{first.status_code or 'no answer'}: {first.reason}".replace("\n", " ")
    return f"{type(error).__name__}: {error}".replace("\n", " ")


def run_checks(
    calendar_id: str,
    *,
    conn_id: str = CONN_ID,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> Report:
    """Run every step against connection ``conn_id`` and ``calendar_id``; return the report.

    Every event created is deleted before returning, whatever failed.
    """
    from airflow_provider_cronofy.exceptions import CronofyError
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook
    from airflow_provider_cronofy.operators.meeting_agents import (
        CancelIntegratedMeetingAgentOperator,
        CancelScheduledMeetingAgentOperator,
    )
    from airflow_provider_cronofy.validation import calendar_path_segment

    run = uuid.uuid4().hex[:12]
    hook = CronofyHook(conn_id)
    report = Report(f"{hook.base_url}, calendar {calendar_id!r}")
    events_path = f"/v1/calendars/{calendar_path_segment(calendar_id)}/events"
    created: list[str] = []
    start = (now() + timedelta(days=7)).replace(second=0, microsecond=0)

    def create_event(event_id: str) -> None:
        created.append(event_id)  # before sending: a timeout may still have created it
        hook.request("POST", events_path, json=_event_body(event_id, start, "cronofy"), auth="access_token")

    def integrated(task_id: str, event_id: str, **kwargs: Any) -> dict[str, list[str]]:
        operator = CancelIntegratedMeetingAgentOperator(
            task_id=task_id, cronofy_conn_id=conn_id, calendar_id=calendar_id, event_id=[event_id], **kwargs
        )
        return operator.execute({})

    try:
        ok, message = CronofyHook(conn_id).test_connection()
        report.add("Does test_connection pass (API key and access token)?", message, ok)
        if not ok:
            return report

        key = f"{PREFIX}{run}-never-scheduled"
        question = "What does cancelling a scheduling key nobody scheduled answer?"
        try:
            result = CancelScheduledMeetingAgentOperator(
                task_id="live_unknown_key", cronofy_conn_id=conn_id, scheduling_key=[key]
            ).execute({})
            if result["not_found"]:
                report.add(question, "404: the operator reports such a key in not_found, so a typo shows.")
            else:
                report.add(
                    question,
                    "2xx (accepted): the operator reports such a key as cancelled, so a typo in a key "
                    "does not show; check keys against the system that scheduled them.",
                )
        except CronofyError as error:
            report.add(question, f"{_failure_answer(error)} (the operator fails such a key).", False)

        with_agent = f"{PREFIX}{run}-remove-agent"
        for use_batch in (True, False):
            question = (
                "Is removing an agent with a partial body (event_id and meeting_agent only) accepted "
                + ("in a POST /v1/batch?" if use_batch else "without use_batch (one POST per event)?")
            )
            try:
                # The first pass creates the event, the second puts its agent back.
                if use_batch:
                    create_event(with_agent)
                else:
                    body = _event_body(with_agent, start, "cronofy")
                    hook.request("POST", events_path, json=body, auth="access_token")
            except CronofyError as error:
                report.add(question, f"could not create the test event: {_failure_answer(error)}", False)
                continue
            try:
                result = integrated(f"live_remove_agent_batch_{use_batch}", with_agent, use_batch=use_batch)
                report.add(question, f"yes: Cronofy accepted it ({result['cancelled']!r} cancelled).")
            except CronofyError as error:
                report.add(
                    question,
                    f"no: {_failure_answer(error)}. Tonight's CancelIntegratedMeetingAgentOperator runs "
                    "would fail the same way; use delete_event=True, or report this.",
                    False,
                )

        deleted = f"{PREFIX}{run}-delete-event"
        question = "Does delete_event=True delete an event with a Meeting Agent?"
        try:
            create_event(deleted)
            result = integrated("live_delete_event", deleted, delete_event=True, use_batch=False)
            report.add(question, f"yes: Cronofy accepted the delete ({result['cancelled']!r}).")
        except CronofyError as error:
            report.add(question, _failure_answer(error), False)

        report.add(
            "Does a 429 carry Retry-After?",
            "not tested: this check sends about ten requests, far below the 50/s limit. The hook "
            "honours Retry-After when present and backs off with jitter when not.",
        )
    finally:
        if created:
            _clean_up(hook, events_path, created, report)
        hook.close()
    return report


def _clean_up(hook: Any, events_path: str, created: Sequence[str], report: Report) -> None:
    from airflow_provider_cronofy.exceptions import CronofyError

    left: list[str] = []
    for event_id in created:
        try:
            hook.request("DELETE", events_path, json={"event_id": event_id}, auth="access_token")
        except CronofyError as error:
            left.append(f"{event_id!r} ({_failure_answer(error)})")
    question = "Were the test events deleted afterwards?"
    if left:
        report.add(question, f"NOT deleted, delete by hand: {', '.join(left)}", False)
    else:
        report.add(question, f"yes: {', '.join(repr(event_id) for event_id in created)}.")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the check; print the report to stdout; return the exit status."""
    environ = os.environ if environ is None else environ
    problem = missing_settings(environ)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Airflow writes its configuration into AIRFLOW_HOME on import: not into ~/airflow.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cronofy-live-check-"))
    from airflow_provider_cronofy.exceptions import CronofyError
    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    try:
        report = run_checks(environ[CALENDAR_VARIABLE].strip())
    except CronofyError as error:  # an unusable connection or calendar id: nothing was sent
        print(f"error: {CONN_VARIABLE} or {CALENDAR_VARIABLE} is unusable: {error}", file=sys.stderr)
        return 1
    # The report is built from our own words and Cronofy's answers; this is the last guard.
    # After the operators' own log lines (Airflow 3 writes them to stdout too).
    print("\n" + CronofyHook(CONN_ID).redact(report.render()), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
