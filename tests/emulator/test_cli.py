"""``python -m airflow_provider_cronofy.testing``: serve from the shell."""

from __future__ import annotations

import argparse
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from airflow_provider_cronofy.testing import CronofyEmulator
from airflow_provider_cronofy.testing.__main__ import build_parser, parse_latency, seed_given
from tests.emulator._support import REPO_ROOT, TIMEOUT, bearer

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


@contextmanager
def _running_cli(*args: str) -> Iterator[tuple[subprocess.Popen, queue.Queue]]:
    """The CLI in a child process and a queue of its stdout lines; killed afterwards if still up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_prints_a_connection_and_stops_cleanly(stop_signal):
    with _running_cli("--port", "0", "--seed-demo") as (proc, lines):
        url_line = lines.get(timeout=10)
        conn_line = lines.get(timeout=5)
        url = url_line.strip().rsplit(" ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")
        name, _, quoted = conn_line.strip().partition("=")
        assert name == "AIRFLOW_CONN_CRONOFY_DEFAULT"
        assert quoted.startswith("'") and quoted.endswith("'")
        conn = json.loads(quoted[1:-1])
        assert conn["conn_type"] == "cronofy"
        assert conn["host"] == url
        extra = conn["extra"]
        assert {"access_token", "refresh_token", "client_id"} <= set(extra)

        cancelled = requests.delete(
            f"{url}/v1/meeting_agents",
            json={"scheduling_key": "demo-key-1"},
            headers=bearer(conn["password"]),
            timeout=TIMEOUT,
        )
        assert cancelled.status_code == 202
        removed = requests.post(
            f"{url}/v1/calendars/cal_demo/events",
            json={"event_id": "evt_demo_1", "meeting_agent": {"profile_id": "none"}},
            headers=bearer(extra["access_token"]),
            timeout=TIMEOUT,
        )
        assert removed.status_code == 202
        unknown = requests.post(
            f"{url}/v1/calendars/cal_demo/events",
            json={"event_id": "evt_not_seeded"},
            headers=bearer(extra["access_token"]),
            timeout=TIMEOUT,
        )
        assert unknown.status_code == 422  # not seeded: a new event needs summary/start/end
        token = requests.post(
            f"{url}/oauth/token",
            json={
                "client_id": extra["client_id"],
                "client_secret": conn["password"],
                "grant_type": "refresh_token",
                "refresh_token": extra["refresh_token"],
            },
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
        proc.send_signal(stop_signal)
        try:
            returncode = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the CLI did not stop on {stop_signal.name}; stderr:\n{proc.stderr.read()}")
        assert returncode == 0


def test_cli_refuses_a_non_loopback_host():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
    assert result.stdout == ""


def test_cli_serves_https_with_a_certificate(tls_files):
    with _running_cli("--port", "0", "--certfile", tls_files.cert, "--keyfile", tls_files.key) as (
        proc,
        lines,
    ):
        url = lines.get(timeout=10).strip().rsplit(" ", 1)[1]
        assert url.startswith("https://127.0.0.1:")
        conn = json.loads(lines.get(timeout=5).strip().partition("=")[2][1:-1])
        assert conn["host"] == url
        with requests.Session() as https:
            https.verify = tls_files.cert
            for _ in range(2):
                response = https.get(
                    f"{url}/v1/userinfo", headers=bearer(conn["extra"]["access_token"]), timeout=TIMEOUT
                )
                assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert tls_files.cert in proc.stderr.read()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keyfile", "key.pem"], "--keyfile needs --certfile"),
        (["--certfile", "/nonexistent/cert.pem"], "cannot load --certfile/--keyfile"),
    ],
)
def test_cli_refuses_bad_tls_options(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", "--port", "0", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_cli_latency_values():
    assert parse_latency("0.15") == 0.15
    assert parse_latency("0.2:0.2") == 0.2
    draw = parse_latency("0.1:0.2")
    assert callable(draw)
    assert all(0.1 <= draw() <= 0.2 for _ in range(100))
    for bad in ("fast", "-1", "0.3:0.1", "1:", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_latency(bad)
    args = build_parser().parse_args(["--latency", "0.05", "--batch-rate-cost", "entries"])
    assert (args.latency, args.batch_rate_cost) == (0.05, "entries")


# ---------------------------------------------------------------- seeding one's own data, --verbose


def _connection_of(lines: queue.Queue) -> tuple[str, dict]:
    url = lines.get(timeout=10).strip().rsplit(" ", 1)[1]
    conn = json.loads(lines.get(timeout=5).strip().partition("=")[2][1:-1])
    return url, conn


def test_cli_seeds_agents_and_events_and_logs_their_ids_but_no_secret(monkeypatch):
    from airflow_provider_cronofy.operators.meeting_agents import (
        CancelIntegratedMeetingAgentOperator,
        CancelScheduledMeetingAgentOperator,
    )

    args = ["--port", "0", "--agent", "deal-1", "--agent", "deal-2", "--unknown-key-status", "404"]
    args += [
        "--event",
        "cal_team:evt_1",
        "--event",
        "cal_team:evt:2",
        "--event",
        "cal_demo:evt_3",
        "--verbose",
    ]
    with _running_cli(*args) as (proc, lines):
        url, conn = _connection_of(lines)
        extra = conn["extra"]
        # The operators, on the connection the CLI printed (its calendars belong to its token).
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(conn))
        scheduled = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=["deal-1", "deal-2", "deal-typo"], max_concurrency=1
        ).execute({})
        assert scheduled == {"cancelled": ["deal-1", "deal-2"], "not_found": ["deal-typo"]}
        integrated = CancelIntegratedMeetingAgentOperator(
            task_id="cancel_events", calendar_id="cal_team", event_id=["evt_1", "evt:2"]
        ).execute({})
        assert integrated == {"cancelled": ["evt_1", "evt:2"]}
        one = CancelIntegratedMeetingAgentOperator(
            task_id="cancel_event", calendar_id="cal_demo", event_id="evt_3", use_batch=False
        ).execute({})
        assert one == {"cancelled": ["evt_3"]}
        # An event the CLI did not seed is unknown: a new event needs summary/start/end.
        unknown = requests.post(
            f"{url}/v1/calendars/cal_team/events",
            json={"event_id": "evt_not_seeded", "meeting_agent": {"profile_id": "none"}},
            headers=bearer(extra["access_token"]),
            timeout=TIMEOUT,
        )
        assert unknown.status_code == 422
        token = requests.post(
            f"{url}/oauth/token",
            json={
                "client_id": extra["client_id"],
                "client_secret": conn["password"],
                "grant_type": "refresh_token",
                "refresh_token": extra["refresh_token"],
            },
            timeout=TIMEOUT,
        )
        assert token.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read()
    for carried in (
        "scheduling_key='deal-1'",
        "scheduling_key='deal-typo'",
        "batch of 2: calendar:event 'cal_team:evt_1', 'cal_team:evt:2'",
        "event_id='evt_3'",
        "event_id='evt_not_seeded'",
    ):
        assert carried in stderr, carried
    assert 'DELETE /v1/meeting_agents HTTP/1.1" 404 ' in stderr
    assert "Calendars cal_demo, cal_team belong to the access token's account" in stderr
    for secret in (
        conn["password"],
        extra["access_token"],
        extra["refresh_token"],
        token.json()["access_token"],
    ):
        assert secret not in stderr


def test_cli_help_shows_how_to_make_typos_visible():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "--unknown-key-status {202,404}" in help_text
    assert "Use 404 to make typos visible" in help_text
    assert "--agent KEY" in help_text and "--event CALENDAR_ID:EVENT_ID" in help_text


@pytest.mark.parametrize("value", ["no-colon", ":evt_1", "cal_1:", " : "])
def test_cli_refuses_an_event_that_is_not_calendar_colon_event(value):
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_cronofy.testing", "--port", "0", "--event", value],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "is not CALENDAR_ID:EVENT_ID" in result.stderr
    assert result.stdout == ""


def test_cli_event_and_agent_values():
    args = build_parser().parse_args(["--agent", "k,1", "--event", "cal_1:evt:with:colons"])
    assert args.agent == ["k,1"]
    assert args.event == [("cal_1", "evt:with:colons")]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--agent", "  "])


# ---------------------------------------------------------------- --repeated-scheduling-key


def test_cli_repeated_scheduling_key_values(capsys):
    assert build_parser().parse_args([]).repeated_scheduling_key == "replace"
    for mode in ("replace", "duplicate", "refuse"):
        assert build_parser().parse_args(["--repeated-scheduling-key", mode]).repeated_scheduling_key == mode
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--repeated-scheduling-key", "dupe"])
    message = capsys.readouterr().err
    assert "--repeated-scheduling-key: invalid choice: 'dupe'" in message
    assert "'replace', 'duplicate', 'refuse'" in message


def test_cli_agent_seeding_follows_the_mode():
    emulator = CronofyEmulator(repeated_scheduling_key="duplicate")
    seed_given(emulator, ["deal-1", "deal-1", "deal-2"], [])
    assert emulator.live_agent_counts == {"deal-1": 2, "deal-2": 1}


def test_cli_refuse_mode_answers_a_seeded_key_422_and_logs_no_join_url():
    args = ["--port", "0", "--repeated-scheduling-key", "refuse", "--agent", "deal-1", "--verbose"]
    with _running_cli(*args) as (proc, lines):
        url, conn = _connection_of(lines)
        body = {
            "scheduling_key": "deal-1",
            "join_url": "https://meet.example.com/j/1?pwd=passcode-s3cret",
            "join_time": "2030-05-01T09:00:00Z",
        }

        def schedule():
            return requests.post(
                f"{url}/v1/meeting_agents", json=body, headers=bearer(conn["password"]), timeout=TIMEOUT
            )

        refused = schedule()
        assert refused.status_code == 422
        assert refused.json()["errors"]["scheduling_key"][0]["key"] == "errors.already_exists"
        cancelled = requests.delete(
            f"{url}/v1/meeting_agents",
            json={"scheduling_key": "deal-1"},
            headers=bearer(conn["password"]),
            timeout=TIMEOUT,
        )
        assert cancelled.status_code == 202
        assert schedule().status_code == 202  # every agent of the key cancelled: schedules anew
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read()
    assert "\"POST /v1/meeting_agents HTTP/1.1\" 422 - scheduling_key='deal-1'" in stderr
    assert "\"POST /v1/meeting_agents HTTP/1.1\" 202 - scheduling_key='deal-1'" in stderr
    assert "s3cret" not in stderr
    assert conn["password"] not in stderr


def test_cli_refuse_mode_refuses_a_key_seeded_twice():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_cronofy.testing",
            "--port",
            "0",
            "--repeated-scheduling-key",
            "refuse",
            "--agent",
            "deal-1",
            "--agent",
            "deal-1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "--agent: scheduling key 'deal-1' has a live agent already" in result.stderr
    assert result.stdout == ""
