"""Faults survived, over real HTTP against the local Cronofy emulator (127.0.0.1 only).

Time is bounded by counting (requests sent, back-offs chosen), never by measuring it: the hooks'
sleeps are recorded instead of slept (their clock moves on by them), back-offs are tiny. The two
pacing tests at the server's limits run in real time, and say so: see the note above them.
"""

from __future__ import annotations

import json
from unittest import mock

import pytest

from airflow_provider_cronofy.exceptions import CronofyAPIError, CronofyBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.tokens import Sender
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.reliability._support import (
    CLIENT_TIMEOUT,
    RANDOM_FAULTS,
    FakeTI,
    assert_clean_error,
    controlled_hooks,
    expire_before_calls,
    faulty_bulk_run,
    paced_bulk_run,
    run_scheduled_bulk,
    set_connection,
    transport_log,
    wait_for_abandoned_requests,
)

TOKEN = "rel-faults-access-token-0001"
REFRESH = "rel-faults-refresh-token-0001"
HTML = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>nginx</body></html>"
FIVE_MB = 5 * 1024 * 1024


@pytest.fixture
def emulator():
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emu:
        emu.add_access_token(TOKEN, account_id="acc_rel")
        emu.add_refresh_token(REFRESH, account_id="acc_rel")
        emu.add_calendar("cal_rel", access_token=TOKEN)
        yield emu


# ---------------------------------------------------------------------- 1,000 keys, random faults


@pytest.mark.parametrize("unknown_status", [202, 404])
def test_bulk_under_random_faults_loses_no_key(unknown_status):
    run = faulty_bulk_run(n=1000, max_retries=2, unknown_status=unknown_status)
    keys = set(run.keys)
    cancelled, not_found, failed = set(run.results["cancelled"]), set(run.results["not_found"]), run.failed

    # The faults did happen, and some keys ran out of retries: otherwise this proves nothing.
    for kind in ("503", "429", "drop", "delay"):
        assert run.fault_counts[kind] > 0, kind
    assert run.fault_counts["rate_limited"] == 0
    assert run.failures and run.error is not None
    assert run.control.retries_spent > 0

    # None lost: every key is cancelled at Cronofy or reported failed.
    assert run.lost == set()
    # The client's account: each key exactly once, in one of three lists.
    assert len(run.results["cancelled"]) + len(run.results["not_found"]) + len(run.failures) == len(keys)
    assert cancelled | not_found | failed == keys
    assert cancelled <= run.cancelled_on_emulator
    assert run.ti.pushed["partial_result"] == run.results
    assert f"{len(failed)} of {len(keys)} scheduling keys failed" in str(run.error)

    # A key reported failed that Cronofy did cancel: only by an attempt the client gave up on.
    for key in run.failed_but_cancelled:
        assert run.transport.timed_out(key), key
        assert "202" not in run.transport.outcomes[key]
    if unknown_status == 202:
        assert not_found == set()
    else:
        # 404 mode: a key "not found" was cancelled by an earlier attempt whose answer was lost.
        for key in not_found:
            assert key in run.cancelled_on_emulator
            assert run.transport.timed_out(key), key

    # Every failure names what its last attempt met, and how many attempts were made (attempts
    # often met different faults: the message must not claim one answer for all of them).
    for failure in run.failures:
        last = run.transport.outcomes[failure.item][-1]
        assert f"{run.max_retries + 1} attempt(s)" in failure.reason, failure
        assert "every one" not in failure.reason, failure
        if failure.status_code is not None:
            assert failure.status_code in (429, 503)
            assert last == str(failure.status_code)
            assert f"Cronofy answered {failure.status_code} " in failure.reason
        elif last == "ReadTimeout":
            assert "no answer in time (ReadTimeout)" in failure.reason
        else:
            assert last == "ConnectionError", failure
            assert "connection failed (ConnectionError)" in failure.reason

    # Bounded: no key sent more than max_retries + 1 times, no hidden re-sends below the hook.
    assert set(run.deletes_per_key) == keys
    assert max(run.deletes_per_key.values()) <= run.max_retries + 1
    for key in keys:
        assert len(run.transport.outcomes[key]) == run.deletes_per_key[key], key
    assert run.total_requests == run.control.requests_sent == sum(run.deletes_per_key.values())
    assert run.total_requests <= len(keys) * (run.max_retries + 1)
    assert dict(run.paths) == {"/v1/meeting_agents": run.total_requests}  # no token refresh here

    # Back-offs: one per retry, each either Cronofy's Retry-After or within the back-off cap.
    assert len(run.control.backoffs) == run.control.retries_spent == run.total_requests - len(keys)
    retry_after = float(RANDOM_FAULTS["retry_after_seconds"])
    backoff_max = 0.01  # controlled_hooks' cap
    assert all(0 <= s <= backoff_max or s == retry_after for s in run.control.backoffs)
    assert sum(1 for s in run.control.backoffs if s == retry_after) <= run.fault_counts["429"]
    # The scheduler waited only for what it had re-queued, never longer than the longest back-off.
    assert all(0 <= s <= retry_after for s in run.control.sleeps)


@pytest.mark.parametrize(("unknown_status", "expected"), [(202, True), (404, False)])
def test_abandoned_attempt_that_cancelled_is_not_found_on_retry(unknown_status, expected, monkeypatch):
    """The client times out, Cronofy cancels anyway; the retry meets an already-cancelled key."""
    with CronofyEmulator(
        rate_limit_per_second=None, rate_limit_per_minute=None, unknown_scheduling_key_status=unknown_status
    ) as emu:
        emu.schedule_agent("k1")
        set_connection(emu, timeout=CLIENT_TIMEOUT, max_retries=2)
        emu.delay_next(1, 2 * CLIENT_TIMEOUT)
        waits = []
        with CronofyHook() as hook:
            # Retry only once Cronofy has acted on the abandoned attempt: deterministic ordering.
            hook.sleep = lambda seconds: (waits.append(seconds), wait_for_abandoned_requests(emu))
            assert hook.cancel_scheduled_meeting_agent("k1") is expected
        assert len(waits) == 1
        assert [r.status for r in emu.requests] == [202, unknown_status]
        assert emu.scheduled_agents["k1"]["status"] == "cancelled"
        assert emu.scheduled_agents["k1"]["cancel_requests"] == 2


# ---------------------------------------------------------------------- rate limits


# Real time: up to 100 requests in flight while others wait for a slot. A stepped clock skipping
# those waits would make requests on their way arrive later than they were sent; the loopback
# never does that. 200 keys at 100/s: the burst, then a second of sends one freed slot at a time.


def test_pacing_at_the_servers_limits_never_meets_429_in_real_time():
    run = paced_bulk_run(n=200, per_second=100, per_minute=1000)
    assert run.fault_counts["rate_limited"] == 0
    assert run.error is None
    assert run.results == {"cancelled": run.keys, "not_found": []}
    assert run.cancelled_on_emulator == set(run.keys)
    assert run.total_requests == 200
    assert run.control.retries_spent == 0 and run.control.sleeps == run.control.backoffs == []
    (hook,) = run.control.hooks
    assert hook.pacer.waited > 0  # the limit was binding: the pacer held requests back


def test_concurrent_pacing_at_the_servers_limits_never_meets_429_in_real_time():
    run = paced_bulk_run(n=200, per_second=100, per_minute=1000, max_concurrency=20, latency=0.03)
    assert run.fault_counts["rate_limited"] == 0
    assert run.error is None
    assert run.results == {"cancelled": run.keys, "not_found": []}
    assert run.cancelled_on_emulator == set(run.keys)
    assert run.total_requests == 200
    (hook,) = run.control.hooks
    assert hook.pacer.waited > 0  # the limit was binding


# ---------------------------------------------------------------------- a task re-run by Airflow


@pytest.mark.parametrize("unknown_status", [202, 404])
def test_rerun_after_half_way_failure_finishes_the_job(unknown_status):
    with CronofyEmulator(
        rate_limit_per_second=None, rate_limit_per_minute=None, unknown_scheduling_key_status=unknown_status
    ) as emu:
        keys = [f"rerun-{i:04d}" for i in range(300)]
        for key in keys:
            emu.schedule_agent(key)
        emu.set_random_faults(seed=7, p_503=0.3)
        first = run_scheduled_bulk(emu, keys, max_retries=0)
        assert first.error is not None and not first.error.fatal
        first_failed = [k for k in keys if k in first.failed]
        first_done = [k for k in keys if k not in first.failed]
        assert 30 < len(first_failed) < 150  # about 30 % of 300
        assert first.results == {"cancelled": first_done, "not_found": []}
        assert first.ti.pushed["partial_result"] == first.results
        assert {k for k in keys if emu.scheduled_agents[k]["status"] == "scheduled"} == set(first_failed)

        emu.clear_faults()
        second = run_scheduled_bulk(emu, keys, max_retries=0)  # Airflow's retry: the same task again
        assert second.error is None
        if unknown_status == 202:
            assert second.results == {"cancelled": keys, "not_found": []}
        else:
            assert second.results == {"cancelled": first_failed, "not_found": first_done}
        agents = emu.scheduled_agents
        assert all(agents[k]["status"] == "cancelled" for k in keys)
        # Requests that reached the cancel logic: twice for keys done in the first run, once for
        # the others (their first-run 503 was answered before it).
        assert {k: agents[k]["cancel_requests"] for k in keys} == {
            k: 1 if k in first.failed else 2 for k in keys
        }
        assert second.total_requests == len(keys)


# ---------------------------------------------------------------------- access tokens


def test_token_expiring_mid_run_is_refreshed_once_per_expiry(emulator):
    emulator.rotate_refresh_tokens = True
    events = [f"evt_{i:02d}" for i in range(30)]
    for event in events:
        emulator.add_event("cal_rel", event)
    set_connection(emulator, access_token=TOKEN, refresh_token=REFRESH, max_concurrency=1)
    op = CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_rel", event_id=events, use_batch=False
    )
    with controlled_hooks() as control, expire_before_calls(emulator, {10, 20}):
        assert op.execute({}) == {"cancelled": events}

    requests = emulator.requests
    token_calls = [r for r in requests if r.path == "/oauth/token"]
    assert [r.status for r in token_calls] == [200, 200]
    # Rotation: the second refresh used the refresh token the first one returned, not the stored one.
    assert token_calls[0].json["refresh_token"] == REFRESH
    assert token_calls[1].json["refresh_token"] not in (REFRESH, None)
    calendar = [r for r in requests if r.path == "/v1/calendars/cal_rel/events"]
    assert [r.status for r in calendar].count(401) == 2
    assert len(requests) == 30 + 2 + 2
    assert len({r.headers["authorization"] for r in calendar}) == 3  # the stored token, then two fresh
    assert all(emulator.events[("cal_rel", e)]["meeting_agent"] is None for e in events)
    assert control.retries_spent == 0


def test_revoked_refresh_token_stops_with_the_fix_and_one_token_request(emulator):
    events = [f"evt_{i:02d}" for i in range(20)]
    for event in events:
        emulator.add_event("cal_rel", event)
    emulator.revoke_refresh_token(REFRESH)
    set_connection(emulator, access_token=TOKEN, refresh_token=REFRESH, max_concurrency=1)
    op = CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_rel", event_id=events, use_batch=False
    )
    ti = FakeTI()
    with controlled_hooks(), expire_before_calls(emulator, {5}), pytest.raises(CronofyBulkError) as info:
        op.execute({"ti": ti})
    error = info.value
    assert_clean_error(error)
    assert error.fatal
    assert error.results == {"cancelled": events[:4]}
    assert [f.item for f in error.failures] == [events[4]]
    assert error.not_attempted == events[5:]
    message = str(error)
    assert "400 invalid_grant" in message
    assert "Re-authorise the user" in message and "refresh_token extra" in message
    assert [r.path for r in emulator.requests].count("/oauth/token") == 1
    assert len(emulator.requests) == 4 + 1 + 1  # four done, one 401, one refresh: no storm
    assert ti.pushed["partial_result"] == {"cancelled": events[:4]}


def test_refreshed_token_rejected_too_refreshes_once_and_stops(emulator):
    events = [f"evt_{i}" for i in range(10)]
    set_connection(emulator, access_token=TOKEN, refresh_token=REFRESH, max_concurrency=1)
    emulator.fail_next(100, 401, path="/v1/calendars/*")
    op = CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_rel", event_id=events, use_batch=False
    )
    with controlled_hooks(), pytest.raises(CronofyBulkError) as info:
        op.execute({})
    assert_clean_error(info.value)
    assert "even after refreshing it" in str(info.value)
    assert [r.path for r in emulator.requests] == [
        "/v1/calendars/cal_rel/events",
        "/oauth/token",
        "/v1/calendars/cal_rel/events",
    ]
    assert info.value.not_attempted == events[1:]


# ---------------------------------------------------------------------- garbage from Cronofy

GARBAGE = {
    # id: (script, expected status of the error or the call's return value, substrings, requests)
    "html-500-until-exhausted": (
        lambda e: e.fail_next(3, 500, body=HTML, content_type="text/html"),
        500,
        ["500 Internal Server Error", "3 attempt(s)"],
        3,
    ),
    "html-502-then-ok": (lambda e: e.fail_next(2, 502, body=HTML, content_type="text/html"), True, [], 3),
    "html-418": (
        lambda e: e.fail_next(1, 418, body=HTML, content_type="text/html"),
        418,
        ["418", "text/html"],
        1,
    ),
    "truncated-json-422": (
        lambda e: e.fail_next(1, 422, body='{"errors": {"scheduling_key": [{"key": "errors.inv'),
        422,
        ["422 Unprocessable Entity", "no detail given"],
        1,
    ),
    "json-array-422": (lambda e: e.fail_next(1, 422, body="[1, 2, 3]"), 422, ["no detail given"], 1),
    "odd-error-shapes-422": (
        lambda e: e.fail_next(1, 422, body='{"errors": {"scheduling_key": "bad", "x": [null, 5]}}'),
        422,
        ["scheduling_key: bad", "x: None, 5"],
        1,
    ),
    "invalid-utf8-422": (
        lambda e: e.fail_next(1, 422, body=b"\xff\xfe\x00{\x80", content_type="application/json"),
        422,
        ["no detail given"],
        1,
    ),
    "200-html-where-202-expected": (
        lambda e: e.fail_next(1, 200, body=HTML, content_type="text/html"),
        True,
        [],
        1,
    ),
    "204-no-body": (lambda e: e.fail_next(1, 204, body=b""), True, [], 1),
    "5mb-text-on-422": (
        lambda e: e.fail_next(1, 422, body=b"x" * FIVE_MB, content_type="text/plain"),
        422,
        ["no detail given"],
        1,
    ),
    "5mb-json-on-422": (
        lambda e: e.fail_next(
            1,
            422,
            body=b'{"errors": {"scheduling_key": ['
            + b'{"key": "errors.invalid", "description": "x"},' * (FIVE_MB // 48)
            + b'{"key": "k"}]}}',
        ),
        422,
        ["no detail given"],
        1,
    ),
    "5mb-on-500-until-exhausted": (
        lambda e: e.fail_next(3, 500, body=b"<p>" * (FIVE_MB // 3), content_type="text/html"),
        500,
        ["3 attempt(s)"],
        3,
    ),
    "5mb-on-202": (lambda e: e.fail_next(1, 202, body=b"{" * FIVE_MB), True, [], 1),
    "html-401-from-a-proxy": (
        lambda e: e.fail_next(1, 401, body=HTML, content_type="text/html"),
        401,
        ["rejected the API key (401 Unauthorized)"],
        1,
    ),
    "retry-after-garbage": (lambda e: e.fail_next(1, 503, retry_after="soon"), True, [], 2),
    "retry-after-date-in-the-past": (
        lambda e: e.fail_next(1, 429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
        True,
        [],
        2,
    ),
    "retry-after-nan": (lambda e: e.fail_next(1, 429, retry_after="nan"), True, [], 2),
    "retry-after-a-day": (
        lambda e: e.fail_next(1, 429, retry_after=86400),
        429,
        ["asked to wait 86400 s", "Re-run the task later"],
        1,
    ),
    "retry-after-infinite": (lambda e: e.fail_next(1, 503, retry_after="1e999"), 503, ["asked to wait"], 1),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_answers_give_a_clear_error_or_tolerant_success(emulator, case):
    script, expected, substrings, request_count = GARBAGE[case]
    emulator.schedule_agent("k1")
    set_connection(emulator, max_retries=2)
    script(emulator)
    with controlled_hooks() as control, CronofyHook() as hook:
        if isinstance(expected, bool):
            assert hook.cancel_scheduled_meeting_agent("k1") is expected
        else:
            with pytest.raises(CronofyAPIError) as info:
                hook.cancel_scheduled_meeting_agent("k1")
            text = assert_clean_error(info.value)
            assert info.value.status_code == expected
            for part in substrings:
                assert part in str(info.value), part
            assert len(str(info.value)) < 1000  # a 5 MB body is not copied into the message
            assert len(text) < 5000
    assert len(emulator.requests) == request_count
    assert all(s <= 0.01 for s in control.sleeps)  # no sleep beyond the (tiny) back-off cap


TOKEN_GARBAGE = {
    "200-html": (
        lambda e: e.fail_next(1, 200, body=HTML, content_type="text/html", path="/oauth/token"),
        ["answered 200 without an access token"],
        1,
    ),
    "200-json-without-token": (
        lambda e: e.fail_next(1, 200, body='{"token_type": "bearer"}', path="/oauth/token"),
        ["answered 200 without an access token"],
        1,
    ),
    "400-html": (
        lambda e: e.fail_next(1, 400, body=HTML, content_type="text/html", path="/oauth/token"),
        ["Refreshing the access token failed: Cronofy answered 400 Bad Request."],
        1,
    ),
    "500-html-until-exhausted": (
        lambda e: e.fail_next(3, 500, body=HTML, content_type="text/html", path="/oauth/token"),
        ["Refreshing the access token failed: Cronofy answered 500"],
        3,
    ),
    "truncated-json-400": (
        lambda e: e.fail_next(1, 400, body='{"error": "invalid_gr', path="/oauth/token"),
        ["Refreshing the access token failed: Cronofy answered 400 Bad Request."],
        1,
    ),
}


@pytest.mark.parametrize("case", list(TOKEN_GARBAGE))
def test_garbage_from_the_token_endpoint(emulator, case):
    script, substrings, request_count = TOKEN_GARBAGE[case]
    set_connection(emulator, refresh_token=REFRESH, max_retries=2)
    script(emulator)
    with controlled_hooks(), CronofyHook() as hook, pytest.raises(CronofyAPIError) as info:
        hook.remove_meeting_agent_from_event("cal_rel", "evt_1")
    assert_clean_error(info.value)
    assert info.value.fatal
    for part in substrings:
        assert part in str(info.value)
    assert [r.path for r in emulator.requests] == ["/oauth/token"] * request_count


def test_garbage_in_a_bulk_run_fails_only_its_items(emulator):
    keys = [f"k{i}" for i in range(6)]
    for key in keys:
        emulator.schedule_agent(key)
    set_connection(emulator, max_retries=1, max_concurrency=1)
    # k1: an HTML teapot; k3: truncated JSON on 422; k5: the connection dropped on every attempt.
    with controlled_hooks(), transport_log():
        op = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys)
        original = Sender.send
        scripted: set[str] = set()

        def send(self, request, cost=1, stop=None):
            # Called right before each send of a key (again for its retry): script once per key.
            key = request.item
            if key not in scripted:
                scripted.add(key)
                if key == "k1":
                    emulator.fail_next(1, 418, body=HTML, content_type="text/html")
                elif key == "k3":
                    emulator.fail_next(1, 422, body='{"errors": {"sched')
                elif key == "k5":
                    emulator.drop_next(2)
            return original(self, request, cost, stop)

        with (
            mock.patch.object(Sender, "send", send),
            pytest.raises(CronofyBulkError) as info,
        ):
            op.execute({})
    text = assert_clean_error(info.value)
    assert [(f.item, f.status_code) for f in info.value.failures] == [("k1", 418), ("k3", 422), ("k5", None)]
    assert "failed after 2 attempt(s): connection failed" in text
    assert info.value.results == {"cancelled": ["k0", "k2", "k4"], "not_found": []}
    assert not info.value.fatal


def test_transport_failure_error_is_clean(emulator):
    emulator.schedule_agent("k1")
    set_connection(emulator, timeout=CLIENT_TIMEOUT, max_retries=1)
    emulator.delay_next(1, 2 * CLIENT_TIMEOUT)
    emulator.drop_next(1)
    with controlled_hooks(), CronofyHook() as hook, pytest.raises(CronofyAPIError) as info:
        hook.cancel_scheduled_meeting_agent("k1")
    assert_clean_error(info.value)
    assert "failed after 2 attempt(s): connection failed" in str(info.value)
    assert info.value.status_code is None


def test_test_connection_counts_its_single_attempt(emulator):
    set_connection(emulator, access_token=TOKEN, max_retries=5)
    emulator.fail_next(1, 503)
    with controlled_hooks() as control:
        ok, message = CronofyHook().test_connection()
    assert not ok
    assert "503" in message
    assert "1 attempt(s)" in message, message  # one attempt was made, not max_retries + 1
    # One attempt per credential (issue 17 added the API key's check, which met the 503).
    assert [(r.path, r.status) for r in emulator.requests] == [
        ("/v1/meeting_agents", 503),
        ("/v1/userinfo", 200),
    ]
    assert control.sleeps == []


def test_every_recorded_body_is_json_the_emulator_parsed(emulator):
    """Sanity of the instrumentation used above: the emulator parses what the hook sends."""
    emulator.schedule_agent("k1")
    set_connection(emulator)
    with controlled_hooks(), CronofyHook() as hook:
        assert hook.cancel_scheduled_meeting_agent("k1") is True
    (request,) = emulator.requests
    assert request.json == json.loads(request.body) == {"scheduling_key": "k1"}
