"""`make test-live`: check the provider against the real Cronofy before the first production run.

Opt in: not part of `make test` or CI. It reads the connection ``cronofy_live`` from
``AIRFLOW_CONN_CRONOFY_LIVE`` (an API key, and an access token with the ``create_event`` and
``delete_event`` scopes) and ``CRONOFY_LIVE_CALENDAR_ID`` (a calendar that token owns, for test
events). Without either it fails at once, naming both. With them it:

1. runs ``test_connection`` (one harmless cancel for the API key, ``GET /v1/userinfo``);
2. cancels a scheduling key nobody scheduled with ``CancelScheduledMeetingAgentOperator`` and
   records what Cronofy answered (a typo in a key is only visible if that is a 404);
3. schedules a Meeting Agent 60 days ahead under a fresh scheduling key, schedules the same key
   again with another ``join_time``, records Cronofy's status and body both times, cancels the
   key until it is gone (also when a step failed) and reports what a repeated key does:
   replace, duplicate, refuse, or "cannot tell" and why (:func:`classify_repeated_key`);
4. creates an event a week ahead with a Meeting Agent and removes the agent with
   ``CancelIntegratedMeetingAgentOperator``, batched and then without ``use_batch``, recording
   whether Cronofy accepts the partial body (``event_id`` and ``meeting_agent`` only);
5. creates another and deletes it with ``delete_event=True``;
6. deletes every event it created, also when a step failed;

and prints a short report (stdout) of each open question and what Cronofy answered: no credential
in it. Exit status 0 when every step passed, 1 when one failed, 2 when the settings are missing.

The test suite runs the same code against the emulator (tests/test_live_check.py).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

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


MAX_CANCELS = 5
"""How many times the repeated-key step cancels its key at most (two POSTs, and retries of them)."""
BODY_SHOWN = 300


@dataclass(frozen=True)
class Answer:
    """What Cronofy answered one request of the repeated-key step, as it came.

    ``accepted``: a 2xx. ``status``: the status of the final answer as seen on the wire, or
    ``None`` when no answer came (or, for a 2xx, when the hook's session could not be observed).
    ``body``: the body (JSON as text; Cronofy's ``errors`` of an error answer) or the error's
    message. ``attempts``: how many times the hook sent it (more than 1 after a 429, a 5xx or a
    timeout: Cronofy may have received it more than once).
    """

    accepted: bool
    status: int | None
    body: str = ""
    attempts: int = 1

    def render(self) -> str:
        status = str(self.status) if self.status is not None else ("2xx" if self.accepted else "no answer")
        text = f"{status} {self.body[:BODY_SHOWN] or '(empty body)'}"
        return text + (f" (after {self.attempts} attempts)" if self.attempts > 1 else "")


def means_no_agent(answer: Answer | None) -> bool:
    """Whether ``answer`` (to cancelling a key nobody scheduled) is one that says "no such agent".

    A 4xx other than those that refuse the request itself (401, 402, 403, 423, 429): a key that
    answers the same has no agent left. A 2xx says nothing: it may be Cronofy's answer to both.
    """
    return (
        answer is not None
        and not answer.accepted
        and answer.status is not None
        and 400 <= answer.status < 500
        and answer.status not in (401, 402, 403, 423, 429)
    )


REPLACE, DUPLICATE, REFUSE, CANNOT_TELL = "replace", "duplicate", "refuse", "cannot tell"


def classify_repeated_key(
    first: Answer,
    second: Answer,
    cancel: Answer | None,
    cancel_again: Answer | None,
    unknown: Answer | None,
) -> tuple[str, str]:
    """Which of replace, duplicate or refuse Cronofy showed for a repeated ``scheduling_key``.

    ``first`` and ``second`` answered the two ``POST /v1/meeting_agents`` of one key;
    ``cancel`` and ``cancel_again`` the two ``DELETE /v1/meeting_agents`` of it that followed
    (``None``: not sent); ``unknown`` the cancel of a key nobody scheduled, the reference for
    "no agent left". Returns ``(behaviour, why)``: behaviour is ``"replace"``, ``"duplicate"``,
    ``"refuse"`` or ``"cannot tell"``.
    """
    if not first.accepted:
        return (
            CANNOT_TELL,
            f"the first schedule was not accepted ({first.render()}), so nothing was repeated.",
        )
    retried = [answer for answer in (first, second) if answer.attempts > 1]
    if retried:
        return CANNOT_TELL, (
            "a schedule request was sent more than once (retried after a 429, 5xx or timeout), so "
            "Cronofy may have seen the key more often than twice; run the check again."
        )
    if not second.accepted:
        if second.status is None or second.status == 429 or second.status >= 500:
            return CANNOT_TELL, f"the repeated schedule got no usable answer ({second.render()})."
        return REFUSE, f"Cronofy refused the repeated key ({second.render()}); the first agent stays."
    if cancel is None or not cancel.accepted:
        what = cancel.render() if cancel is not None else "not sent"
        return CANNOT_TELL, f"cancelling the key was not accepted ({what}), so what it held is unknown."
    if cancel_again is None:
        return CANNOT_TELL, "the key was cancelled only once, so a second agent could not be looked for."
    if not means_no_agent(unknown):
        what = unknown.render() if unknown is not None else "not asked"
        return CANNOT_TELL, (
            f"cancelling a key nobody scheduled answers {what}, so the second cancel's answer "
            f"({cancel_again.render()}) does not show whether a second agent remained. Both "
            "schedules were accepted: replace or duplicate."
        )
    if not cancel_again.accepted and cancel_again.status == unknown.status:
        return REPLACE, (
            f"both schedules were accepted and the second cancel answered like a key nobody "
            f"scheduled ({cancel_again.status}): one agent per key. (No endpoint reads agents, so "
            "which join_time it held is not known; a Cronofy keeping two agents but cancelling "
            "both with one DELETE would look the same.)"
        )
    if cancel_again.accepted:
        return DUPLICATE, (
            f"both schedules were accepted and a second cancel was accepted too "
            f"({cancel_again.render()}; a key nobody scheduled answers {unknown.status}): two "
            "agents were live for one key."
        )
    return CANNOT_TELL, (
        f"the second cancel answered {cancel_again.render()}: neither accepted nor what a key "
        f"nobody scheduled answers ({unknown.status})."
    )


class _Wire:
    """The statuses of the answers to ``path`` as they come off the hook's session.

    ``CronofyHook.request`` returns the body of a 2xx but not its status (200 and 202 mean
    different things here). This observes the session's answers (a ``requests`` response hook)
    without changing what is sent; where the hook has no ``requests`` session it observes
    nothing and a 2xx is recorded as ``2xx``.
    """

    def __init__(self, hook: Any, path: str) -> None:
        self.path = path
        self.statuses: list[int] = []
        session = hook.get_conn()
        self._hooks: list[Any] | None = getattr(session, "hooks", {}).get("response")

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> None:
        if urlsplit(response.url).path.endswith(self.path):
            self.statuses.append(response.status_code)

    def __enter__(self) -> _Wire:
        if self._hooks is not None:
            self._hooks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._hooks is not None:
            self._hooks.remove(self)

    def ask(self, hook: Any, method: str, body: dict[str, Any]) -> Answer:
        """Send ``method`` to the path with ``body`` (API key); return what Cronofy answered."""
        from airflow_provider_cronofy.exceptions import CronofyAPIError

        self.statuses.clear()
        retries = hook.retries_spent
        try:
            payload = hook.request(method, self.path, json=body, auth="api_key")
        except CronofyAPIError as error:
            errors = (
                json.dumps(error.errors, sort_keys=True) if error.errors else str(error).replace("\n", " ")
            )
            status = self.statuses[-1] if self.statuses else error.status_code
            return Answer(False, status, errors, 1 + hook.retries_spent - retries)
        status = self.statuses[-1] if self.statuses else None
        text = json.dumps(payload, sort_keys=True) if payload is not None else ""
        return Answer(True, status, text, 1 + hook.retries_spent - retries)


def _left_behind(key: str) -> str:
    return (
        "The key may still hold an agent (60 days ahead): cancel it by hand with DELETE "
        f'/v1/meeting_agents {{"scheduling_key": "{key}"}} and the API key.'
    )


def _repeated_key_step(hook: Any, run: str, start: datetime, report: Report) -> None:
    """Schedule one key twice, cancel it until it is gone, and report what Cronofy did."""
    from airflow_provider_cronofy.agent_rows import normalise_agents

    key = f"{PREFIX}{run}"
    row = {"scheduling_key": key, "join_url": f"https://meet.example.com/{PREFIX}{run}", "join_time": start}
    (body,) = normalise_agents([row], now=start - timedelta(days=1))  # the body the operator sends
    # The same key and meeting URL, joining an hour later: a change Cronofy could apply or refuse.
    (again,) = normalise_agents([{**row, "join_time": start + timedelta(hours=1)}], now=start)
    question = "What does scheduling the same scheduling_key twice do (replace, duplicate or refuse)?"
    answers: list[Answer] = []
    cancels: list[Answer] = []
    unknown: Answer | None = None
    with _Wire(hook, "/v1/meeting_agents") as wire:
        try:
            answers.append(wire.ask(hook, "POST", body))
            answers.append(wire.ask(hook, "POST", again))
            unknown = wire.ask(hook, "DELETE", {"scheduling_key": f"{key}-never-scheduled-reference"})
        finally:
            # Cancel until the key answers like a key nobody scheduled: with a Cronofy that
            # duplicates, each cancel may remove one agent. Where both answer 2xx, twice.
            left = False
            for _ in range(MAX_CANCELS):
                cancel = wire.ask(hook, "DELETE", {"scheduling_key": key})
                cancels.append(cancel)
                if not cancel.accepted:
                    left = not (means_no_agent(unknown) and cancel.status == unknown.status)
                    break
                if len(cancels) >= 2 and (unknown is None or unknown.accepted):
                    break
            else:
                left = True
            if len(answers) < 2 or unknown is None:
                what = "; ".join(cancel.render() for cancel in cancels)
                report.add(
                    question,
                    f"not answered: a step failed before both schedules were sent (cancels of the key: "
                    f"{what})." + (f" {_left_behind(key)}" if left else ""),
                    False,
                )
    if len(answers) < 2 or unknown is None:
        return
    behaviour, why = classify_repeated_key(
        answers[0],
        answers[1],
        cancels[0] if cancels else None,
        cancels[1] if len(cancels) > 1 else None,
        unknown,
    )
    lines = [
        f"{behaviour}: {why}",
        f"first POST: {answers[0].render()}",
        f"same key, join_time an hour later: {answers[1].render()}",
        "cancels of the key: " + "; ".join(cancel.render() for cancel in cancels),
        f"cancel of a key nobody scheduled: {unknown.render()}",
    ]
    if left:
        lines.append(_left_behind(key))
    report.add(question, "\n         ".join(lines), answers[0].accepted and not left)


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

        _repeated_key_step(hook, run, (now() + timedelta(days=60)).replace(microsecond=0), report)

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
