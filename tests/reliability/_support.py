"""Shared by the reliability tests and the report: sleep control, a transport log, the bulk scenario.

Nothing here needs pytest, so ``python -m tests.reliability.report`` can run the same scenarios.
Every run talks to a :class:`CronofyEmulator` on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import requests
import urllib3
from requests.adapters import HTTPAdapter

from airflow_provider_cronofy.exceptions import CronofyBulkError, CronofyError, ItemFailure
from airflow_provider_cronofy.hooks import events as events_module
from airflow_provider_cronofy.hooks.cronofy import CronofyHook
from airflow_provider_cronofy.hooks.transport import RetryLater, RetryPolicy
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class FakeTI:
    """Stands in for the task instance: records what the operator pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@dataclass
class HookControl:
    """What the hooks made inside :func:`controlled_hooks` did: their sleeps, back-offs, counters.

    ``backoffs`` holds every wait chosen before a retry (one per retry): a single call sleeps it,
    a bulk run re-queues the item for that long. ``sleeps`` holds the waits actually asked of
    ``sleep`` (a single call's back-offs; a bulk run's waits when nothing else is in flight).
    """

    sleeps: list[float] = field(default_factory=list)
    backoffs: list[float] = field(default_factory=list)
    hooks: list[CronofyHook] = field(default_factory=list)

    @property
    def retries_spent(self) -> int:
        return sum(h.retries_spent for h in self.hooks)

    @property
    def requests_sent(self) -> int:
        return sum(h.requests_sent for h in self.hooks)


@contextlib.contextmanager
def controlled_hooks(
    *, backoff: float = 0.001, backoff_max: float = 0.01, real_sleep_cap: float = 0.0
) -> Iterator[HookControl]:
    """Every CronofyHook made inside records its sleeps instead of sleeping (or sleeps at most
    ``real_sleep_cap`` seconds), with a tiny back-off; the hooks' clock moves on by what was not
    slept, so a bulk run waiting for a ``Retry-After`` finds it passed instead of spinning until
    it has. The operators make their own hooks, hence the patched ``__init__`` (as the
    ``no_sleep`` fixture of tests/conftest.py does)."""
    control = HookControl()
    original_init = CronofyHook.__init__
    skipped = [0.0]

    def sleep(seconds: float) -> None:
        control.sleeps.append(seconds)
        slept = min(seconds, real_sleep_cap)
        if slept > 0:
            time.sleep(slept)
        skipped[0] += max(0.0, seconds - slept)

    def init(self: CronofyHook, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.sleep = sleep
        self.clock = lambda: time.monotonic() + skipped[0]
        control.hooks.append(self)

    original_backoff = RetryPolicy.delay

    def record_backoff(self: RetryPolicy, attempt_number: int, retry: RetryLater) -> float:
        delay = original_backoff(self, attempt_number, retry)
        control.backoffs.append(delay)
        return delay

    with (
        mock.patch.object(CronofyHook, "__init__", init),
        mock.patch.object(RetryPolicy, "delay", record_backoff),
        mock.patch.object(CronofyHook, "retry_backoff", backoff),
        mock.patch.object(CronofyHook, "retry_backoff_max", backoff_max),
    ):
        yield control


@dataclass
class TransportLog:
    """What the client saw for each attempt, below the hook: a status, or the exception's name."""

    outcomes: dict[str | None, list[str]] = field(default_factory=lambda: defaultdict(list))
    hosts: list[str] = field(default_factory=list)

    def timed_out(self, key: str) -> bool:
        return any(o in ("ReadTimeout", "ConnectTimeout", "Timeout") for o in self.outcomes[key])


def _item_of(body: object) -> str | None:
    if isinstance(body, bytes):
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if isinstance(data, dict):
            value = data.get("scheduling_key", data.get("event_id"))
            return value if isinstance(value, str) else None
    return None


@contextlib.contextmanager
def transport_log() -> Iterator[TransportLog]:
    """Record every attempt at the requests adapter (the last layer before the socket)."""
    log = TransportLog()
    original_send = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        key = _item_of(request.body)
        log.hosts.append(urllib3.util.parse_url(request.url).host or "")
        try:
            response = original_send(self, request, **kwargs)
        except Exception as error:
            log.outcomes[key].append(type(error).__name__)
            raise
        log.outcomes[key].append(str(response.status_code))
        return response

    with mock.patch.object(HTTPAdapter, "send", send):
        yield log


def set_connection(emulator: CronofyEmulator, **extra: Any) -> None:
    """Point ``cronofy_default`` at the emulator (pacing off unless given)."""
    extra.setdefault("rate_limit_per_second", 0)
    extra.setdefault("rate_limit_per_minute", 0)
    os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = emulator.airflow_connection_json(**extra)


def wait_for_abandoned_requests(emulator: CronofyEmulator, timeout: float = 10.0) -> None:
    """Wait until every request the emulator holds (a delayed one the client gave up on) is answered.

    Dropped requests never get a status; everything else does once the emulator has acted on it.
    Polls at most ``timeout`` seconds (a bound, not an assertion on time).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sum(1 for r in emulator.requests if r.status is None)
        if pending <= emulator.fault_counts["drop"]:
            return
        time.sleep(0.02)
    raise AssertionError("the emulator still holds unanswered requests")


@dataclass
class BulkRun:
    """The figures and raw material of one bulk cancellation run against the emulator."""

    keys: list[str]
    max_retries: int
    results: dict[str, list[str]]
    failures: list[ItemFailure]
    error: CronofyBulkError | None
    emulator_status: dict[str, str]
    deletes_per_key: Counter[str]
    total_requests: int
    paths: Counter[str]
    fault_counts: dict[str, int]
    control: HookControl
    transport: TransportLog
    ti: FakeTI

    @property
    def failed(self) -> set[str]:
        return {f.item for f in self.failures}

    @property
    def cancelled_on_emulator(self) -> set[str]:
        return {k for k in self.keys if self.emulator_status.get(k) == "cancelled"}

    @property
    def lost(self) -> set[str]:
        """Keys neither cancelled at Cronofy nor reported failed: must be none."""
        return set(self.keys) - self.cancelled_on_emulator - self.failed

    @property
    def failed_but_cancelled(self) -> set[str]:
        """Reported failed, yet cancelled by an attempt the client gave up on (a timeout)."""
        return self.failed & self.cancelled_on_emulator

    @property
    def injected(self) -> int:
        return sum(v for k, v in self.fault_counts.items() if k != "rate_limited")


def run_scheduled_bulk(
    emulator: CronofyEmulator,
    keys: list[str],
    *,
    max_retries: int,
    timeout: float | None = None,
    rate_limit_per_second: int = 0,
    rate_limit_per_minute: int = 0,
    max_concurrency: int | None = None,
) -> BulkRun:
    """Run CancelScheduledMeetingAgentOperator over ``keys`` and collect what happened."""
    extra: dict[str, Any] = {
        "max_retries": max_retries,
        "rate_limit_per_second": rate_limit_per_second,
        "rate_limit_per_minute": rate_limit_per_minute,
    }
    if max_concurrency is not None:
        extra["max_concurrency"] = max_concurrency
    if timeout is not None:
        extra["timeout"] = timeout
    set_connection(emulator, **extra)
    emulator.reset_requests()
    ti = FakeTI()
    error: CronofyBulkError | None = None
    with controlled_hooks() as control, transport_log() as transport:
        operator = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys)
        try:
            results = operator.execute({"ti": ti})
        except CronofyBulkError as raised:
            error = raised
            results = raised.results
    wait_for_abandoned_requests(emulator)
    recorded = emulator.requests
    deletes: Counter[str] = Counter()
    for request in recorded:
        if request.method == "DELETE" and isinstance(request.json, dict):
            deletes[str(request.json.get("scheduling_key"))] += 1
    agents = emulator.scheduled_agents
    return BulkRun(
        keys=keys,
        max_retries=max_retries,
        results=results,
        failures=list(error.failures) if error else [],
        error=error,
        emulator_status={k: agents[k]["status"] for k in keys if k in agents},
        deletes_per_key=deletes,
        total_requests=len(recorded),
        paths=Counter(r.path for r in recorded),
        fault_counts=emulator.fault_counts,
        control=control,
        transport=transport,
        ti=ti,
    )


RANDOM_FAULTS: dict[str, Any] = {
    "p_503": 0.20,
    "p_429": 0.05,
    "p_429_retry_after": 0.5,
    "retry_after_seconds": 1,
    "p_drop": 0.02,
    "p_delay": 0.01,
    "delay_seconds": 0.5,
}
CLIENT_TIMEOUT = 0.25


def faulty_bulk_run(
    *, n: int = 1000, seed: int = 20240611, max_retries: int = 2, unknown_status: int = 202
) -> BulkRun:
    """The headline scenario: ``n`` pre-scheduled keys, random faults, a short client timeout."""
    with CronofyEmulator(
        rate_limit_per_second=None,
        rate_limit_per_minute=None,
        unknown_scheduling_key_status=unknown_status,
    ) as emulator:
        keys = [f"sk-{seed}-{i:05d}" for i in range(n)]
        for key in keys:
            emulator.schedule_agent(key)
        emulator.set_random_faults(seed=seed, **RANDOM_FAULTS)
        return run_scheduled_bulk(emulator, keys, max_retries=max_retries, timeout=CLIENT_TIMEOUT)


def paced_bulk_run(
    *,
    n: int = 600,
    per_second: int = 100,
    per_minute: int = 1000,
    max_concurrency: int | None = None,
    latency: float = 0.0,
) -> BulkRun:
    """``n`` keys with the emulator enforcing limits and the hook pacing itself at the same ones."""
    with CronofyEmulator(
        rate_limit_per_second=per_second, rate_limit_per_minute=per_minute, latency=latency
    ) as emulator:
        keys = [f"paced-{i:05d}" for i in range(n)]
        for key in keys:
            emulator.schedule_agent(key)
        return run_scheduled_bulk(
            emulator,
            keys,
            max_retries=5,
            rate_limit_per_second=per_second,
            rate_limit_per_minute=per_minute,
            max_concurrency=max_concurrency,
        )


# ---------------------------------------------------------------------- access tokens


def _last_calendar_token(emu: CronofyEmulator) -> str:
    calendar = [r for r in emu.requests if r.path.startswith("/v1/calendars/")]
    return calendar[-1].headers["authorization"].removeprefix("Bearer ")


def expire_before_calls(emu: CronofyEmulator, calls: set[int]) -> Any:
    """Expire the access token in use just before the given events (1-based) are first sent.

    Hooks the per-event request builder (``events.event_request``), which the bulk job invokes
    right before it sends an event (again for a retry: only the first time per event counts). Run
    with one request in flight (``max_concurrency=1``) and ``use_batch=False`` for an exact transcript.
    """
    original = events_module.event_request
    seen: set[str] = set()

    def event_request(key: tuple[str, str], delete_event: bool) -> Any:
        _, event_id = key
        if event_id not in seen:
            seen.add(event_id)
            if len(seen) in calls:
                emu.expire_access_token(_last_calendar_token(emu))
        return original(key, delete_event)

    return mock.patch.object(events_module, "event_request", event_request)


# ---------------------------------------------------------------------- exception hygiene

FOREIGN_MODULE_MARKERS = (
    f"{os.sep}requests{os.sep}",
    f"{os.sep}urllib3{os.sep}",
    f"{os.sep}json{os.sep}",
    f"{os.sep}http{os.sep}client.py",
)
FOREIGN_TYPES: tuple[type[BaseException], ...] = (
    json.JSONDecodeError,
    UnicodeDecodeError,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def displayed_chain(error: BaseException) -> list[BaseException]:
    """The exceptions a traceback shows for ``error`` (causes, and contexts not suppressed)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


def assert_clean_error(error: BaseException) -> str:
    """Assert ``error`` is ours and its traceback shows nothing from requests, urllib3 or json."""
    assert isinstance(error, CronofyError), f"not a Cronofy error: {type(error).__name__}: {error}"
    chain = displayed_chain(error)
    foreign = [e for e in chain if isinstance(e, FOREIGN_TYPES)]
    assert not foreign, f"the traceback shows {[type(e).__name__ for e in foreign]}"
    text = "".join(traceback.format_exception(error))
    frames = [m for m in FOREIGN_MODULE_MARKERS if m in text]
    assert not frames, f"the traceback has frames from {frames}"
    return text
