"""The hook and both operators over real HTTP against the local Cronofy emulator on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cronofy.exceptions import CronofyBulkError
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.operators.meeting_agents import (
    CancelIntegratedMeetingAgentOperator,
    CancelScheduledMeetingAgentOperator,
)
from airflow_provider_cronofy.testing import CronofyEmulator
from tests.conftest import FakeTI, connect_to_emulator

TOKEN = "emulator-access-token-1"
REFRESH = "emulator-refresh-token-1"


@pytest.fixture
def emulator():
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emu:
        emu.add_access_token(TOKEN, account_id="acc_1")
        emu.add_calendar("cal_1", access_token=TOKEN)
        yield emu


@pytest.fixture
def connect(emulator, monkeypatch):
    def _connect(**kwargs):
        kwargs.setdefault("rate_limit_per_second", 0)
        kwargs.setdefault("rate_limit_per_minute", 0)
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", emulator.airflow_connection_json(**kwargs))

    return _connect


def scheduled(keys, **kwargs):
    return CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys, **kwargs)


def test_scheduled_cancel_wire_format(emulator, connect):
    connect()
    emulator.schedule_agent("k1")
    assert scheduled("k1").execute({}) == {"cancelled": ["k1"], "not_found": []}
    (req,) = emulator.requests
    assert (req.method, req.path, req.status) == ("DELETE", "/v1/meeting_agents", 202)
    assert req.headers["authorization"] == f"Bearer {emulator.api_key}"
    assert req.headers["content-type"] == "application/json; charset=utf-8"
    assert req.headers["user-agent"].startswith("airflow-provider-cronofy/")
    assert req.json == {"scheduling_key": "k1"}
    assert emulator.scheduled_agents["k1"]["status"] == "cancelled"


def test_bulk_run_uses_one_tcp_connection(emulator, connect):
    connect(max_concurrency=1)
    keys = [f"key-{i}" for i in range(60)]
    for key in keys:
        emulator.schedule_agent(key)
    result = scheduled(keys).execute({})
    assert result["cancelled"] == keys
    assert emulator.connections_opened == 1
    assert {r.connection_id for r in emulator.requests} == {emulator.requests[0].connection_id}
    assert all(agent["status"] == "cancelled" for agent in emulator.scheduled_agents.values())


def test_unknown_keys_are_not_found_when_cronofy_says_404():
    with CronofyEmulator(unknown_scheduling_key_status=404) as emu:
        emu.schedule_agent("real")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", emu.airflow_connection_json())
            assert scheduled(["real", "ghost"]).execute({}) == {
                "cancelled": ["real"],
                "not_found": ["ghost"],
            }


def test_retry_after_is_honoured_over_http(emulator, connect):
    connect()
    emulator.schedule_agent("k1")
    emulator.fail_next(1, 429, retry_after=1)
    emulator.fail_next(1, 503, retry_after=0)
    slept = []
    with CronofyHook() as hook:
        hook.sleep = slept.append  # what the hook chose to wait; the emulator needs no real wait
        assert hook.cancel_scheduled_meeting_agent("k1") is True
    assert slept == [1.0, 0.0]
    assert [r.status for r in emulator.requests] == [429, 503, 202]
    assert emulator.connections_opened == 1


def test_timeout_on_slow_response_is_retried(emulator, connect):
    connect(timeout=0.3)
    emulator.schedule_agent("k1")
    emulator.delay_next(1, 1.5)
    with CronofyHook() as hook:
        hook.sleep = lambda seconds: None
        assert hook.cancel_scheduled_meeting_agent("k1") is True
        assert hook.retries_spent == 1
    assert len(emulator.requests) == 2


def test_dropped_connection_is_retried(emulator, connect):
    connect()
    emulator.schedule_agent("k1")
    emulator.drop_next(2)
    with CronofyHook() as hook:
        hook.sleep = lambda seconds: None
        assert hook.cancel_scheduled_meeting_agent("k1") is True
    assert [r.status for r in emulator.requests] == [None, None, 202]


def test_slow_answers_beyond_budget_fail_cleanly(emulator, connect):
    connect(timeout=0.2, max_retries=1)
    emulator.schedule_agent("k1")
    emulator.delay_next(2, 0.6)
    with CronofyHook() as hook, pytest.raises(Exception) as info:
        hook.sleep = lambda seconds: None
        hook.cancel_scheduled_meeting_agent("k1")
    assert "failed after 2 attempt(s): no answer in time" in str(info.value)


def test_remove_agent_and_delete_event(emulator, connect):
    connect(access_token=TOKEN)
    emulator.add_event("cal_1", "evt_1")
    emulator.add_event("cal_1", "evt_2")
    assert CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_1", event_id="evt_1", use_batch=False
    ).execute({}) == {"cancelled": ["evt_1"]}
    assert CancelIntegratedMeetingAgentOperator(
        task_id="delete", calendar_id="cal_1", event_id=["evt_2"], delete_event=True, use_batch=False
    ).execute({}) == {"cancelled": ["evt_2"]}
    events = emulator.events
    assert events[("cal_1", "evt_1")]["meeting_agent"] is None
    assert events[("cal_1", "evt_1")]["deleted"] is False
    assert events[("cal_1", "evt_2")]["deleted"] is True
    upsert, delete = emulator.requests
    assert upsert.json == {"event_id": "evt_1", "meeting_agent": {"profile_id": "none"}}
    assert (delete.method, delete.path, delete.json) == (
        "DELETE",
        "/v1/calendars/cal_1/events",
        {"event_id": "evt_2"},
    )


def test_calendar_id_with_slash_stays_one_segment(emulator, connect):
    connect(access_token=TOKEN)
    emulator.add_calendar("cal/../x", access_token=TOKEN)
    emulator.add_event("cal/../x", "evt_1")
    with CronofyHook() as hook:
        hook.remove_meeting_agent_from_event("cal/../x", "evt_1")
    assert emulator.events[("cal/../x", "evt_1")]["meeting_agent"] is None
    assert emulator.requests[0].path == "/v1/calendars/cal%2F..%2Fx/events"


def test_expired_token_refreshed_once_and_run_goes_on(emulator, connect):
    emulator.add_refresh_token(REFRESH, account_id="acc_1")
    connect(access_token=TOKEN, refresh_token=REFRESH, max_concurrency=1)
    for i in range(5):
        emulator.add_event("cal_1", f"evt_{i}")
    emulator.expire_access_token(TOKEN)
    op = CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_1", event_id=[f"evt_{i}" for i in range(5)], use_batch=False
    )
    assert op.execute({}) == {"cancelled": [f"evt_{i}" for i in range(5)]}
    paths = [r.path for r in emulator.requests]
    assert paths.count("/oauth/token") == 1
    assert [r.status for r in emulator.requests][:3] == [401, 200, 202]
    assert all(emulator.events[("cal_1", f"evt_{i}")]["meeting_agent"] is None for i in range(5))


def test_revoked_refresh_token_stops_without_storm(emulator, connect):
    emulator.add_refresh_token(REFRESH, account_id="acc_1")
    emulator.revoke_refresh_token(REFRESH)
    connect(access_token=TOKEN, refresh_token=REFRESH, max_concurrency=1)
    emulator.expire_access_token(TOKEN)
    op = CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_1", event_id=[f"evt_{i}" for i in range(10)], use_batch=False
    )
    with pytest.raises(CronofyBulkError) as info:
        op.execute({})
    assert "invalid_grant" in str(info.value)
    assert "refresh_token extra" in str(info.value)
    assert "9 items were not attempted" in str(info.value)
    assert [r.path for r in emulator.requests] == ["/v1/calendars/cal_1/events", "/oauth/token"]


def test_test_connection_against_emulator(emulator, connect):
    connect(access_token=TOKEN)
    ok, message = CronofyHook().test_connection()
    assert ok, message
    assert emulator.requests[-1].path == "/v1/userinfo"


def test_concurrent_hook_pacing_avoids_429_in_real_time(emulator, monkeypatch):
    # Real time: 20 requests in flight while others wait for a slot (a stepped clock skipping the
    # waits would delay requests on their way). 30 keys at 20/s: the burst, then a second window.
    with CronofyEmulator(rate_limit_per_second=20, rate_limit_per_minute=1000) as emu:
        keys = [f"k{i}" for i in range(30)]
        for key in keys:
            emu.schedule_agent(key)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emu.airflow_connection_json(rate_limit_per_second=20, rate_limit_per_minute=1000),
        )
        assert scheduled(keys).execute({})["cancelled"] == keys
        assert [r.status for r in emu.requests].count(429) == 0
        assert emu.fault_counts["rate_limited"] == 0


def test_without_pacing_the_emulator_rate_limits_and_hook_recovers(emulator, monkeypatch, stepped_clock):
    # The back-offs skip the clock the emulator's rate limit counts on: its window passes at once.
    with CronofyEmulator(rate_limit_per_second=10, rate_limit_per_minute=1000, clock=stepped_clock) as emu:
        keys = [f"k{i}" for i in range(25)]
        for key in keys:
            emu.schedule_agent(key)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emu.airflow_connection_json(rate_limit_per_second=0, rate_limit_per_minute=0, max_retries=8),
        )
        assert scheduled(keys).execute({})["cancelled"] == keys
        assert emu.fault_counts["rate_limited"] > 0  # the limit was real; retries absorbed it


def test_emulator_conn_json_is_valid_airflow_connection(emulator):
    conn = json.loads(emulator.airflow_connection_json(access_token=TOKEN))
    assert conn["conn_type"] == "cronofy"
    assert conn["host"] == emulator.url


def test_request_reaches_any_endpoint_over_http(emulator, connect):
    connect(access_token=TOKEN)
    with CronofyHook() as hook:
        info = hook.request("GET", "/v1/userinfo", auth="access_token")
    assert isinstance(info, dict) and info
    (req,) = emulator.requests
    assert (req.method, req.path, req.status) == ("GET", "/v1/userinfo", 200)
    assert req.headers["authorization"] == f"Bearer {TOKEN}"


def test_request_refreshes_an_expired_token_over_http(emulator, connect):
    emulator.add_refresh_token(REFRESH, account_id="acc_1")
    connect(access_token=TOKEN, refresh_token=REFRESH)
    emulator.expire_access_token(TOKEN)
    with CronofyHook() as hook:
        assert hook.request("GET", "/v1/userinfo", auth="access_token")
    assert [(r.path, r.status) for r in emulator.requests] == [
        ("/v1/userinfo", 401),
        ("/oauth/token", 200),
        ("/v1/userinfo", 200),
    ]


# ---------------------------------------------------------------- the concurrent engine over HTTP


@pytest.fixture
def slow_emulator():
    """An emulator answering every request 30 ms late, serving them concurrently."""
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None, latency=0.03) as emu:
        emu.add_access_token(TOKEN, account_id="acc_1")
        emu.add_calendar("cal_1", access_token=TOKEN)
        yield emu


def use(emu, monkeypatch, **extra):
    connect_to_emulator(monkeypatch, emu, **extra)


def test_concurrent_run_with_latency_keeps_order_and_bounds(slow_emulator, monkeypatch):
    keys = [f"key-{i:03d}" for i in range(120)]
    for key in keys[::3]:  # a third are unknown: 202 by default, so cancel those we know
        slow_emulator.schedule_agent(key)
    use(slow_emulator, monkeypatch, max_concurrency=8)
    result = scheduled(keys).execute({})
    assert result == {"cancelled": keys, "not_found": []}
    assert 2 <= slow_emulator.max_in_flight <= 8  # requests overlapped, never more than allowed
    assert slow_emulator.connections_opened <= 8  # the pool holds one connection per worker
    assert slow_emulator.requests_received == len(keys)
    assert all(slow_emulator.scheduled_agents[k]["cancel_requests"] == 1 for k in keys[::3])


def test_concurrent_run_under_faults_loses_nothing(slow_emulator, monkeypatch, tiny_backoff):
    keys = [f"key-{i:03d}" for i in range(150)]
    for key in keys:
        slow_emulator.schedule_agent(key)
    slow_emulator.set_random_faults(seed=7, p_503=0.15, p_429=0.05, p_429_retry_after=0.0, p_drop=0.02)
    use(slow_emulator, monkeypatch, max_concurrency=10, max_retries=5)
    try:
        result = scheduled(keys).execute({})
        failures = []
    except CronofyBulkError as error:
        result, failures = error.results, error.failures
    counts = slow_emulator.fault_counts
    assert counts["503"] + counts["429"] + counts["drop"] > 0  # the faults did happen
    done = result["cancelled"] + result["not_found"]
    assert sorted(done + [f.item for f in failures]) == keys  # one outcome each, none lost
    assert result["cancelled"] == [k for k in keys if k in set(result["cancelled"])]  # input order
    sends = {}
    for request in slow_emulator.requests:
        sends[request.json["scheduling_key"]] = sends.get(request.json["scheduling_key"], 0) + 1
    assert max(sends.values()) <= 6  # max_retries + 1
    assert all(slow_emulator.scheduled_agents[k]["status"] == "cancelled" for k in result["cancelled"])


def test_fatal_stop_over_http_is_bounded_by_the_in_flight_set(slow_emulator, monkeypatch):
    keys = [f"key-{i:03d}" for i in range(100)]
    use(slow_emulator, monkeypatch, max_concurrency=5)
    slow_emulator.fail_next(1, 403, path="/v1/meeting_agents")
    with pytest.raises(CronofyBulkError) as info:
        scheduled(keys).execute({})
    error = info.value
    sent = [r.json["scheduling_key"] for r in slow_emulator.requests]
    assert len(sent) == len(set(sent))
    assert set(sent) | set(error.not_attempted) == set(keys)
    assert not set(sent) & set(error.not_attempted)
    assert error.not_attempted == [k for k in keys if k not in set(sent)]
    # At most the five in flight when the 403 came, plus one refill per answer read before it.
    assert len(sent) <= 2 * 5
    assert [f.status_code for f in error.failures] == [403]
    assert sorted(error.results["cancelled"]) == sorted(set(sent) - {error.failures[0].item})


def test_one_refresh_per_expiry_over_http(slow_emulator, monkeypatch):
    slow_emulator.add_refresh_token(REFRESH, account_id="acc_1")
    events = [f"evt_{i:02d}" for i in range(40)]
    for event in events:
        slow_emulator.add_event("cal_1", event)
    slow_emulator.expire_access_token(TOKEN)
    use(slow_emulator, monkeypatch, access_token=TOKEN, refresh_token=REFRESH, max_concurrency=8)
    op = CancelIntegratedMeetingAgentOperator(
        task_id="remove", calendar_id="cal_1", event_id=events, use_batch=False
    )
    assert op.execute({}) == {"cancelled": events}
    paths = [r.path for r in slow_emulator.requests]
    assert paths.count("/oauth/token") == 1
    assert slow_emulator.status_counts.get(401, 0) <= 8  # only the requests in flight with the old token
    assert all(slow_emulator.events[("cal_1", e)]["meeting_agent"] is None for e in events)
    assert all(slow_emulator.event_writes[("cal_1", e)] == 1 for e in events)


class Interrupted(BaseException):
    """Stands for AirflowTaskTimeout: raised in the main thread by a signal handler."""


def test_no_send_after_an_interruption_over_http(monkeypatch):
    import signal
    import threading

    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None, latency=0.2) as emu:
        keys = [f"key-{i:03d}" for i in range(200)]
        use(emu, monkeypatch, max_concurrency=6)
        hooks = []
        original_init = CronofyHook.__init__

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            hooks.append(self)

        monkeypatch.setattr(CronofyHook, "__init__", init)
        main = threading.main_thread().ident
        stop_watching = threading.Event()

        def watch():  # execution_timeout fires once some answers are in and six are in flight
            while not stop_watching.is_set():
                if emu.requests_received >= 12 and emu.in_flight == 6:
                    signal.pthread_kill(main, signal.SIGUSR1)
                    return
                stop_watching.wait(0.001)

        def handler(signum, frame):
            raise Interrupted()

        previous = signal.signal(signal.SIGUSR1, handler)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ti = FakeTI()
        try:
            with pytest.raises(Interrupted):
                scheduled(keys).execute({"ti": ti})
        finally:
            stop_watching.set()
            signal.signal(signal.SIGUSR1, previous)
        (hook,) = hooks
        admitted = hook.requests_sent  # every request let through before the interruption
        # Wait for the requests in flight to be answered: their workers are then free to send more.
        for _ in range(2000):
            if emu.in_flight == 0 and emu.requests_received == admitted:
                break
            threading.Event().wait(0.005)
        for _ in range(40):  # and give a wrongly running worker the chance to send
            threading.Event().wait(0.005)
        assert emu.requests_received == admitted == hook.requests_sent
        assert admitted < len(keys)
        partial = ti.pushed["partial_result"]
        assert partial["cancelled"] == [k for k in keys if k in set(partial["cancelled"])]
        assert len(partial["cancelled"]) >= 6  # the answers read before the interruption are kept
