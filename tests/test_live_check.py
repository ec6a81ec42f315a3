"""scripts/live_check.py (`make test-live`) run against the emulator: the same code a user runs
against the real Cronofy, so that it is never dead code."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.testing import CronofyEmulator

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "live_check.py"
TOKEN = "live-check-access-token-6e6e"
CALENDAR = "cal_live"


def _load():
    spec = importlib.util.spec_from_file_location("live_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["live_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


live_check = _load()


@pytest.fixture
def live_emulator(cronofy_emulator_factory, monkeypatch):
    def make(**kwargs) -> CronofyEmulator:
        emulator = cronofy_emulator_factory(**kwargs)
        emulator.add_access_token(TOKEN, account_id="acc_live")
        emulator.add_calendar(CALENDAR, access_token=TOKEN)
        monkeypatch.setenv(live_check.CONN_VARIABLE, emulator.airflow_connection_json(access_token=TOKEN))
        monkeypatch.setenv(live_check.CALENDAR_VARIABLE, CALENDAR)
        return emulator

    return make


def _no_secret(text: str, emulator: CronofyEmulator) -> None:
    for secret in (TOKEN, emulator.api_key):
        assert secret not in text


@pytest.mark.parametrize("unknown_status", [202, 404])
def test_against_the_emulator_every_step_passes_and_nothing_is_left(live_emulator, capsys, unknown_status):
    emulator = live_emulator(unknown_scheduling_key_status=unknown_status)
    assert live_check.main([]) == 0
    out, err = capsys.readouterr()
    assert "Cronofy live check against http://127.0.0.1:" in out and f"calendar {CALENDAR!r}" in out
    assert "[ok] Does test_connection pass (API key and access token)?" in out
    if unknown_status == 404:
        assert "404: the operator reports such a key in not_found, so a typo shows." in out
    else:
        assert "2xx (accepted): the operator reports such a key as cancelled" in out
    assert out.count("yes: Cronofy accepted it") == 2  # batched and not
    assert "yes: Cronofy accepted the delete" in out
    assert "[ok] Does a 429 carry Retry-After?" in out
    assert out.rstrip().endswith("Result: passed.")
    assert "FAILED" not in out
    _no_secret(out + err, emulator)

    events = emulator.events
    assert len(events) == 2 and all(key[0] == CALENDAR for key in events)
    assert all(event["deleted"] for event in events.values())  # nothing left in the calendar
    remove = next(event_id for _, event_id in events if event_id.endswith("-remove-agent"))
    writes = [
        (r.method, r.path, r.json.get("event_id") if isinstance(r.json, dict) else None)
        for r in emulator.requests
        if r.path != "/v1/userinfo"
    ]
    # The agent was removed in a batch, then (after it was put back) with one POST of its own.
    batches = [r for r in emulator.requests if r.path == "/v1/batch"]
    assert [entry.data for entry in batches[0].batch_entries] == [
        {"event_id": remove, "meeting_agent": {"profile_id": "none"}}
    ]
    partial_alone = [w for w in writes if w == ("POST", f"/v1/calendars/{CALENDAR}/events", remove)]
    assert len(partial_alone) == 3  # created, agent put back, agent removed without a batch
    created_then = [r.json for r in emulator.requests if r.method == "POST" and r.path.endswith("/events")]
    assert created_then[0]["meeting_agent"] == {"profile_id": "cronofy"}
    assert {"summary", "start", "end"} <= set(created_then[0])
    assert created_then[0]["start"] > "2026"  # in the future, a week from now


def test_a_cronofy_refusing_partial_bodies_fails_the_check_and_still_cleans_up(live_emulator, capsys):
    emulator = live_emulator()
    emulator.partial_event_updates = False
    assert live_check.main([]) == 1
    out, _ = capsys.readouterr()
    assert out.count("no: 422: Cronofy rejected the request (422 Unprocessable Entity)") == 2
    assert "would fail the same way; use delete_event=True" in out
    assert "yes: Cronofy accepted the delete" in out
    assert "[ok] Were the test events deleted afterwards?" in out
    assert "Result: FAILED (2 of 8 steps)." in out  # 8: the repeated-key step passes
    assert all(event["deleted"] for event in emulator.events.values())


def test_a_step_stopped_by_an_error_still_deletes_what_was_created(live_emulator, capsys):
    emulator = live_emulator()
    emulator.fail_next(1, 401, path="/v1/batch")
    assert live_check.main([]) == 1
    out, _ = capsys.readouterr()
    assert "Cronofy rejected the access token (401 Unauthorized)" in out
    assert "[ok] Were the test events deleted afterwards?" in out
    assert emulator.events and all(event["deleted"] for event in emulator.events.values())


def test_events_left_behind_are_reported(live_emulator, capsys):
    emulator = live_emulator()
    emulator.fail_next(50, 403, method="DELETE", path=f"/v1/calendars/{CALENDAR}/events")
    assert live_check.main([]) == 1
    out, _ = capsys.readouterr()
    assert "[FAILED] Were the test events deleted afterwards?" in out
    assert "NOT deleted, delete by hand:" in out


def test_a_rejected_connection_stops_after_test_connection(live_emulator, capsys, monkeypatch):
    emulator = live_emulator()
    emulator.expire_access_token(TOKEN)
    assert live_check.main([]) == 1
    out, _ = capsys.readouterr()
    assert "[FAILED] Does test_connection pass" in out
    assert "Cronofy rejected the access token" in out
    assert [r.path for r in emulator.requests] == ["/v1/meeting_agents", "/v1/userinfo"]
    assert emulator.events == {}


@pytest.mark.parametrize(
    ("conn", "calendar", "named"),
    [
        (
            {"conn_type": "cronofy", "host": "ftp://example.com", "password": "pw-live-1234"},
            CALENDAR,
            "ftp://",
        ),
        ({"conn_type": "cronofy", "password": "pw-live-1234"}, "..", "dot segment"),
    ],
)
def test_an_unusable_connection_or_calendar_fails_naming_it(monkeypatch, capsys, conn, calendar, named):
    monkeypatch.setenv(live_check.CONN_VARIABLE, json.dumps(conn))
    monkeypatch.setenv(live_check.CALENDAR_VARIABLE, calendar)
    assert live_check.main([]) == 1
    out, err = capsys.readouterr()
    assert named in err and "is unusable" in err
    assert "pw-live-1234" not in out + err


@pytest.mark.parametrize("present", [(), ("conn",), ("calendar",)])
def test_without_both_settings_it_fails_at_once_naming_both(cronofy_emulator, capsys, present):
    environ = {}
    if "conn" in present:
        environ[live_check.CONN_VARIABLE] = cronofy_emulator.airflow_connection_json()
    if "calendar" in present:
        environ[live_check.CALENDAR_VARIABLE] = CALENDAR
    assert live_check.main([], environ=environ) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "AIRFLOW_CONN_CRONOFY_LIVE" in err and "CRONOFY_LIVE_CALENDAR_ID" in err
    assert "Nothing was sent." in err
    assert cronofy_emulator.requests == []


def test_make_test_live_without_settings_fails_never_skips():
    environ = {
        key: value
        for key, value in __import__("os").environ.items()
        if key not in (live_check.CONN_VARIABLE, live_check.CALENDAR_VARIABLE)
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=60, env=environ
    )
    assert result.returncode == 2
    assert "Missing: AIRFLOW_CONN_CRONOFY_LIVE, CRONOFY_LIVE_CALENDAR_ID" in result.stderr


def test_make_test_live_is_not_part_of_make_test_or_ci():
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest-live: $(STAMP)\n\t$(BIN)/python scripts/live_check.py\n" in makefile
    test_recipe = makefile.split("\ntest: lint\n", 1)[1].split("\n\n", 1)[0]
    assert "live" not in test_recipe
    assert "test-live" not in (ROOT / ".ci" / "run").read_text()


# ---------------------------------------------------------------- the repeated scheduling key

REPEATED = "What does scheduling the same scheduling_key twice do (replace, duplicate or refuse)?"


def _finding(out: str, question: str) -> str:
    """The lines of one finding of a rendered report: its question and its answer."""
    start = out.index(question)
    end = min(
        (i for i in (out.find("\n  [", start), out.find("\nResult:", start)) if i != -1), default=len(out)
    )
    return out[start:end]


@pytest.mark.parametrize("unknown_status", [202, 404])
def test_the_repeated_key_step_schedules_twice_cancels_and_reports_what_the_emulator_does(
    live_emulator, capsys, unknown_status
):
    emulator = live_emulator(unknown_scheduling_key_status=unknown_status)
    assert live_check.main([]) == 0
    out, err = capsys.readouterr()
    finding = _finding(out, REPEATED)
    assert f"[ok] {REPEATED}" in out
    # main's emulator keeps one agent per key: it replaces. With 202 for a key nobody scheduled
    # too, the second cancel cannot show that, and the check says so instead of guessing.
    if unknown_status == 404:
        assert (
            "replace: both schedules were accepted and the second cancel answered like a key nobody scheduled (404)"
            in finding
        )
        assert "cancels of the key: 202 (empty body); 404 " in finding
    else:
        assert "cannot tell: cancelling a key nobody scheduled answers 202 (empty body)" in finding
        assert "cancels of the key: 202 (empty body); 202 (empty body)" in finding
    assert "first POST: 202 (empty body)" in finding
    assert "same key, join_time an hour later: 202 (empty body)" in finding
    assert "cancel by hand" not in finding
    _no_secret(out + err, emulator)

    posts = [r for r in emulator.requests if r.method == "POST" and r.path == "/v1/meeting_agents"]
    assert len(posts) == 2
    first, second = (r.json for r in posts)
    key = first["scheduling_key"]
    assert key.startswith("airflow-live-check-") and second["scheduling_key"] == key
    assert first["join_url"] == f"https://meet.example.com/{key}" and second["join_url"] == first["join_url"]
    assert set(first) == {"scheduling_key", "join_url", "join_time"}
    joins = [datetime.strptime(body["join_time"], "%Y-%m-%dT%H:%M:%SZ") for body in (first, second)]
    assert joins[1] - joins[0] == timedelta(hours=1)
    assert joins[0] - datetime.now(timezone.utc).replace(tzinfo=None) > timedelta(days=59)  # far ahead
    deletes = [
        r.json["scheduling_key"]
        for r in emulator.requests
        if r.method == "DELETE" and r.path == "/v1/meeting_agents"
    ]
    assert deletes.count(key) == 2
    assert emulator.scheduled_agents[key]["status"] == "cancelled"  # nothing left scheduled


def test_the_repeated_key_step_cancels_its_key_even_when_scheduling_failed(live_emulator, capsys):
    emulator = live_emulator(unknown_scheduling_key_status=404)
    emulator.fail_next(1, 402, method="POST", path="/v1/meeting_agents")
    assert live_check.main([]) == 1
    out, _ = capsys.readouterr()
    finding = _finding(out, REPEATED)
    assert f"[FAILED] {REPEATED}" in out
    assert "cannot tell: the first schedule was not accepted (402 " in finding
    # The repeat was still sent (and accepted), and the key cancelled: nothing is left.
    assert "cancels of the key: 202 (empty body); 404 " in finding
    (key,) = {
        r.json["scheduling_key"]
        for r in emulator.requests
        if r.method == "POST" and r.path == "/v1/meeting_agents"
    }
    assert emulator.scheduled_agents[key]["status"] == "cancelled"


def test_a_key_that_cannot_be_cancelled_is_reported_for_cancelling_by_hand(live_emulator):
    emulator = live_emulator(unknown_scheduling_key_status=404)
    # After test_connection's own cancel: every cancel is refused from here on.
    emulator.fail_next(20, 403, method="DELETE", path="/v1/meeting_agents")
    report = live_check.Report("the emulator")
    with CronofyHook(live_check.CONN_ID) as hook:
        live_check._repeated_key_step(hook, "run1", datetime(2030, 3, 1, tzinfo=timezone.utc), report)
    (finding,) = report.findings
    assert finding.question == REPEATED and not finding.ok
    assert "cannot tell: cancelling the key was not accepted (403 " in finding.answer
    assert "cancel of a key nobody scheduled: 403 " in finding.answer
    assert (
        'cancel it by hand with DELETE /v1/meeting_agents {"scheduling_key": "airflow-live-check-run1"} '
        "and the API key." in finding.answer
    )
    assert emulator.scheduled_agents["airflow-live-check-run1"]["status"] == "scheduled"  # indeed left
    _no_secret(finding.answer, emulator)


def _ok(status=202, body="", attempts=1):
    return live_check.Answer(True, status, body, attempts)


def _no(status, body='{"errors": {}}', attempts=1):
    return live_check.Answer(False, status, body, attempts)


@pytest.mark.parametrize(
    ("answers", "behaviour", "said"),
    [
        # A Cronofy that replaces: the second cancel answers like a key nobody scheduled.
        ((_ok(), _ok(), _ok(), _no(404), _no(404)), "replace", "one agent per key"),
        ((_ok(200, '{"meeting_agent": {}}'), _ok(), _ok(), _no(422), _no(422)), "replace", "(422)"),
        # A Cronofy that duplicates: a second agent was still there to cancel.
        ((_ok(), _ok(), _ok(), _ok(), _no(404)), "duplicate", "two agents were live for one key"),
        # A Cronofy that refuses the repeated key (whatever the cancels then say).
        ((_ok(), _no(409), _ok(), _no(404), _no(404)), "refuse", "Cronofy refused the repeated key (409"),
        ((_ok(), _no(422), _ok(), _ok(), _ok()), "refuse", "the first agent stays"),
        # Cannot tell, and why.
        ((_ok(), _ok(), _ok(), _ok(), _ok()), "cannot tell", "cancelling a key nobody scheduled answers 202"),
        ((_ok(), _ok(), _ok(), _no(404), None), "cannot tell", "answers not asked"),
        (
            (_ok(), _ok(), _ok(), _no(403), _no(403)),
            "cannot tell",
            "cancelling a key nobody scheduled answers 403",
        ),
        ((_ok(), _ok(), _ok(), _no(None, "timed out"), _no(None)), "cannot tell", "answers no answer"),
        (
            (_no(402), _ok(), _ok(), _no(404), _no(404)),
            "cannot tell",
            "the first schedule was not accepted (402",
        ),
        (
            (_ok(), _no(None, "timed out"), _ok(), _no(404), _no(404)),
            "cannot tell",
            "no usable answer (no answer timed out)",
        ),
        ((_ok(), _no(503), _ok(), _no(404), _no(404)), "cannot tell", "no usable answer (503"),
        ((_ok(), _no(429), _ok(), _no(404), _no(404)), "cannot tell", "no usable answer (429"),
        ((_ok(), _ok(attempts=2), _ok(), _ok(), _no(404)), "cannot tell", "sent more than once"),
        ((_ok(attempts=3), _ok(), _ok(), _no(404), _no(404)), "cannot tell", "sent more than once"),
        ((_ok(), _ok(), _no(403), None, _no(404)), "cannot tell", "cancelling the key was not accepted (403"),
        ((_ok(), _ok(), None, None, _no(404)), "cannot tell", "(not sent)"),
        ((_ok(), _ok(), _ok(), None, _no(404)), "cannot tell", "cancelled only once"),
        (
            (_ok(), _ok(), _ok(), _no(500), _no(404)),
            "cannot tell",
            "neither accepted nor what a key nobody scheduled answers (404)",
        ),
    ],
)
def test_the_classifier_tells_the_three_behaviours_and_why_it_cannot(answers, behaviour, said):
    got, why = live_check.classify_repeated_key(*answers)
    assert got == behaviour
    assert said in why


def test_the_answer_renders_status_body_and_retries():
    assert live_check.Answer(True, 202).render() == "202 (empty body)"
    assert live_check.Answer(True, None, '{"a": 1}').render() == '2xx {"a": 1}'
    assert live_check.Answer(False, None, "timed out", 3).render() == "no answer timed out (after 3 attempts)"
    assert len(live_check.Answer(False, 422, "x" * 1000).render()) == len("422 ") + live_check.BODY_SHOWN
