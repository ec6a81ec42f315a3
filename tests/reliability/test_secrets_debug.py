"""No API key (client secret), access token or refresh token anywhere, with every logger at DEBUG.

Searched: every log record (root, urllib3, requests, airflow, airflow.task, the provider), what was
printed to stdout/stderr (Airflow 3's task logger prints through structlog), every exception with
its full chain and formatted traceback, XCom values pushed to a fake task instance, return values
and rendered template fields. Tokens Cronofy issues during a run (refreshed access tokens, rotated
refresh tokens) are searched for too: they are read from the Authorization headers and token
request bodies the emulator recorded, and from the hook itself after the run.

Each scenario also asserts that the channels were live (a log line it must have produced is in the
text searched), so that a capture that caught nothing cannot pass for "no leak".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import airflow_provider_cronofy.hooks.connection as hook_module
import airflow_provider_cronofy.hooks.tokens as tokens_module
from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.reliability._support import (
    FakeTI,
    assert_clean_error,
    controlled_hooks,
    expire_before_calls,
    set_connection,
)

API_KEY = "rel-sec-API-KEY-7f3a9c"  # also the OAuth client secret
WRONG_API_KEY = "rel-sec-WRONG-API-KEY-5e6f01"
ACCESS = "rel-sec-ACCESS-TOKEN-1b2c3d"
REFRESH = "rel-sec-REFRESH-TOKEN-9d8e7f"
REVOKED = "rel-sec-REVOKED-REFRESH-4a4a4a"
CLIENT_ID = "rel-sec-client-id"  # not a secret
STATIC_SECRETS = {API_KEY, WRONG_API_KEY, ACCESS, REFRESH, REVOKED}
LOGGERS = ("", "urllib3", "requests", "airflow", "airflow.task", "airflow_provider_cronofy")


class Transcript:
    """Everything scenarios leave behind, searched for secrets at the end."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
        self.caplog = caplog
        self.capfd = capfd
        self.found: list[str] = []
        self.errors: list[BaseException] = []

    def run(self, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except Exception as error:  # the scenarios fail in many ways on purpose
            self.errors.append(error)
            self.found.append("".join(traceback.format_exception(error)))
            seen: list[BaseException] = []
            current: BaseException | None = error
            while current is not None and current not in seen:  # the full chain, suppressed too
                seen.append(current)
                self.found += [str(current), repr(current), repr(vars(current))]
                current = current.__cause__ or current.__context__
            return error
        self.found.append(repr(result))
        return result

    def add(self, *values: Any) -> None:
        self.found += [repr(v) for v in values]

    def check(self, secrets: Iterable[str], *, live: Iterable[str]) -> None:
        captured = self.capfd.readouterr()
        records = [f"{r.name} {r.levelname} {r.getMessage()}" for r in self.caplog.records]
        text = "\n".join([*self.found, *records, self.caplog.text, captured.out, captured.err])
        for must in live:
            assert must in text, f"the capture missed {must!r}: the search would prove nothing"
        for secret in set(secrets):
            assert len(secret) >= 8
            assert secret not in text, f"a secret leaked: ...{secret[-6:]}"


@pytest.fixture
def transcript(caplog, capfd):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return Transcript(caplog, capfd)


@pytest.fixture
def emulator():
    with CronofyEmulator(
        api_key=API_KEY, client_id=CLIENT_ID, rate_limit_per_second=None, rate_limit_per_minute=None
    ) as emu:
        emu.add_access_token(ACCESS, account_id="acc_sec")
        emu.add_refresh_token(REFRESH, account_id="acc_sec")
        emu.add_refresh_token(REVOKED, account_id="acc_sec")
        emu.revoke_refresh_token(REVOKED)
        emu.add_calendar("cal_sec", access_token=ACCESS)
        for i in range(30):
            emu.add_event("cal_sec", f"evt_{i:02d}")
        yield emu


def issued_secrets(emu: CronofyEmulator, hooks: Iterable[CronofyHook] = ()) -> set[str]:
    """Every credential seen on the wire or held by a hook: the static ones and those issued."""
    found: set[str] = set()
    for request in emu.requests:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential:
            found.add(credential)
        if request.path == "/oauth/token" and isinstance(request.json, dict):
            found |= {
                str(request.json.get(k)) for k in ("client_secret", "refresh_token") if request.json.get(k)
            }
    for hook in hooks:
        found |= {t for t in (hook.tokens().access_token, hook.tokens().refresh_token) if t}
    return found


def scheduled(keys: Any) -> CancelScheduledMeetingAgentOperator:
    return CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys)


def integrated(events: Any, **kwargs: Any) -> CancelIntegratedMeetingAgentOperator:
    return CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_sec", event_id=events, **kwargs
    )


# ---------------------------------------------------------------------- scenarios


def test_bulk_runs_with_and_without_faults_leak_nothing(emulator, transcript):
    keys = [f"sec-{i:03d}" for i in range(200)]
    for key in keys:
        emulator.schedule_agent(key)
    with controlled_hooks() as control:
        set_connection(emulator)
        transcript.run(lambda: scheduled(keys[:50]).execute({}))

        set_connection(emulator, timeout=0.25, max_retries=1)
        emulator.set_random_faults(
            seed=3, p_503=0.2, p_429=0.1, retry_after_seconds=1, p_drop=0.05, p_delay=0.02, delay_seconds=0.5
        )
        ti = FakeTI()
        error = transcript.run(lambda: scheduled(keys[50:]).execute({"ti": ti}))
        transcript.add(ti.pushed)
    assert isinstance(error, CronofyBulkError)  # some keys ran out of their one retry
    assert ti.pushed["partial_result"]["cancelled"]
    transcript.check(
        STATIC_SECRETS | issued_secrets(emulator, control.hooks),
        live=[
            "Starting new HTTP connection",  # urllib3 at DEBUG
            "DELETE /v1/meeting_agents for 'sec-000' -> 202",  # the provider at DEBUG
            "retrying in",
            "Done: 50 scheduling keys",  # the task logger
        ],
    )


def test_401s_and_refresh_with_rotation_leak_nothing(emulator, transcript):
    emulator.rotate_refresh_tokens = True
    emulator.schedule_agent("k1")
    with controlled_hooks() as control:
        # A wrong API key: 401 on the first key, the run stops.
        set_connection(emulator)
        conn_wrong = emulator.airflow_connection()
        conn_wrong["password"] = WRONG_API_KEY
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(conn_wrong)
        assert isinstance(transcript.run(lambda: scheduled(["k1", "k2"]).execute({})), CronofyBulkError)

        # The access token expires twice mid-run: refreshed, with the refresh token rotated each time.
        set_connection(emulator, access_token=ACCESS, refresh_token=REFRESH, max_concurrency=1)
        events = [f"evt_{i:02d}" for i in range(30)]
        with expire_before_calls(emulator, {10, 20}):
            assert transcript.run(lambda: integrated(events, use_batch=False).execute({})) == {
                "cancelled": events
            }

        # The token in the connection is dead, the refresh token was rotated away: 401 then 400.
        ti = FakeTI()
        transcript.run(lambda: integrated(["evt_00"], delete_event=True).execute({"ti": ti}))
        transcript.add(ti.pushed)

        # test_connection with a good token, then with an expired one.
        emulator.add_access_token("rel-sec-SECOND-ACCESS-2f2f2f", account_id="acc_sec")
        set_connection(emulator, access_token="rel-sec-SECOND-ACCESS-2f2f2f")
        assert transcript.run(lambda: CronofyHook().test_connection())[0] is True
        emulator.expire_access_token("rel-sec-SECOND-ACCESS-2f2f2f")
        ok, message = transcript.run(lambda: CronofyHook().test_connection())
        assert not ok and "401" in message

    token_requests = [r for r in emulator.requests if r.path == "/oauth/token"]
    assert len(token_requests) >= 3
    secrets = STATIC_SECRETS | issued_secrets(emulator, control.hooks) | {"rel-sec-SECOND-ACCESS-2f2f2f"}
    assert len(secrets - STATIC_SECRETS) >= 5  # refreshed access tokens and rotated refresh tokens
    transcript.check(
        secrets,
        live=[
            "Refreshed the Cronofy access token",
            "Cronofy issued a new refresh token",
            "Cronofy rejected the API key (401 Unauthorized)",
            "400 invalid_grant",
        ],
    )


def test_revoked_refresh_and_refused_client_secret_leak_nothing(emulator, transcript):
    with controlled_hooks() as control:
        set_connection(emulator, refresh_token=REVOKED)
        error = transcript.run(lambda: integrated(["evt_01", "evt_02"]).execute({}))
        assert isinstance(error, CronofyBulkError) and "invalid_grant" in str(error)

        conn = emulator.airflow_connection(
            refresh_token=REFRESH, rate_limit_per_second=0, rate_limit_per_minute=0
        )
        conn["password"] = WRONG_API_KEY
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(conn)
        error = transcript.run(lambda: CronofyHook().refresh_access_token())
        assert isinstance(error, CronofyAPIError) and "invalid_client" in str(error)
    assert [r.path for r in emulator.requests] == ["/oauth/token", "/oauth/token"]
    transcript.check(
        STATIC_SECRETS | issued_secrets(emulator, control.hooks),
        live=["refresh token of connection 'cronofy_default' (400 invalid_grant)", "invalid_client"],
    )


# ---------------------------------------------------------------------- redirects


class _Redirector(BaseHTTPRequestHandler):
    """A misbehaving front: answers everything with a 307 to another host."""

    protocol_version = "HTTP/1.1"
    target = ""
    seen: list[str]

    def _redirect(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _redirect

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirector():
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as elsewhere:
        handler = type(
            "Handler", (_Redirector,), {"target": elsewhere.url.replace("127.0.0.1", "localhost"), "seen": []}
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen, elsewhere
        finally:
            server.shutdown()
            server.server_close()


def test_a_redirect_is_not_followed_with_credentials(redirector, transcript, monkeypatch):
    url, seen, elsewhere = redirector
    conn = {
        "conn_type": "cronofy",
        "host": url,
        "password": API_KEY,
        "extra": {
            "client_id": CLIENT_ID,
            "refresh_token": REFRESH,
            "rate_limit_per_second": 0,
            "rate_limit_per_minute": 0,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(conn))
    with controlled_hooks():
        cancel_error = transcript.run(lambda: CronofyHook().cancel_scheduled_meeting_agent("k1"))
        refresh_error = transcript.run(lambda: CronofyHook().refresh_access_token())
    assert elsewhere.requests == []  # neither the API key nor the refresh token went anywhere else
    assert seen == ["DELETE /v1/meeting_agents", "POST /oauth/token"]
    for error in (cancel_error, refresh_error):
        assert isinstance(error, CronofyAPIError)
        assert_clean_error(error)
        assert "307" in str(error)
    transcript.check(STATIC_SECRETS, live=["307"])


# ---------------------------------------------------------------------- templates and the masker


def test_rendered_template_fields_hold_no_secret(emulator, transcript):
    emulator.schedule_agent("key-from-params")
    set_connection(emulator, access_token=ACCESS, refresh_token=REFRESH)
    op = CancelScheduledMeetingAgentOperator(
        task_id="cancel", scheduling_key=["{{ params.key }}"], cronofy_conn_id="{{ params.conn }}"
    )
    op.render_template_fields(context={"params": {"key": "key-from-params", "conn": "cronofy_default"}})
    assert (op.scheduling_key, op.cronofy_conn_id) == (["key-from-params"], "cronofy_default")
    ti = FakeTI()
    transcript.run(lambda: op.execute({"ti": ti}))
    transcript.add(*(getattr(op, name) for name in op.template_fields), ti.pushed)
    transcript.check(STATIC_SECRETS, live=["key-from-params", "cronofy_default"])


def _airflow_redact(value: str) -> Any:
    try:  # 3.1+
        from airflow.sdk.log import redact
    except ImportError:
        try:  # 3.0: the task side's masker (airflow.utils.log's is the API server's)
            from airflow.sdk.execution_time.secrets_masker import redact
        except ImportError:  # 2.11
            from airflow.utils.log.secrets_masker import redact
    return redact(value)


def test_refreshed_and_rotated_tokens_are_registered_with_the_masker(emulator, monkeypatch):
    registered: list[str] = []
    real_mask = hook_module.mask_secret

    def mask(secret: str) -> None:
        registered.append(secret)
        real_mask(secret)

    # The connection's secrets are registered by the hook, refreshed tokens by its token state.
    monkeypatch.setattr(hook_module, "mask_secret", mask)
    monkeypatch.setattr(tokens_module, "mask_secret", mask)
    emulator.rotate_refresh_tokens = True
    set_connection(emulator, access_token=ACCESS, refresh_token=REFRESH, max_concurrency=1)
    events = [f"evt_{i:02d}" for i in range(12)]
    with controlled_hooks() as control, expire_before_calls(emulator, {4, 8}):
        assert integrated(events, use_batch=False).execute({}) == {"cancelled": events}
    (hook,) = control.hooks
    issued = issued_secrets(emulator, [hook]) - {API_KEY, ACCESS, REFRESH}
    assert len(issued) == 4  # two fresh access tokens, two rotated refresh tokens
    assert hook.tokens().access_token in issued and hook.tokens().refresh_token in issued
    assert {API_KEY, ACCESS, REFRESH} | issued <= set(registered)
    for token in issued:
        assert token not in str(_airflow_redact(f"Bearer {token}"))
