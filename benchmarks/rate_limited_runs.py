"""One timed operator run against a fresh emulator with latency, at Cronofy's default rate limits
(50/s and 500/min, the emulator enforcing them and the hook pacing to them): what the latency and
fault sections share, with the rate-limit ideal they are measured against.

Every run gets a fresh emulator process, so a fresh base URL and so a fresh process-wide pacer:
the minute window of a previous run would otherwise still be full, on both sides.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from emulator_process import EmulatorProcess

PER_SECOND = 50
PER_MINUTE = 500
"""Cronofy's default limits per application."""
BATCH_ENTRIES = 50
"""Entries per ``POST /v1/batch`` (Cronofy's maximum, and what the hook sends)."""
SEQUENTIAL: dict[str, Any] = {"max_concurrency": 1, "use_batch": False}
"""Operator arguments of the engine before concurrency and batches: one request in flight."""
SEQUENTIAL_SCHEDULED: dict[str, Any] = {"max_concurrency": 1}
"""The same for scheduled agents, which have no batch endpoint."""
CALENDAR_ID = "cal_bench"
ACCESS_TOKEN = "bench-access-token"


Latency = float | tuple[float, float]
"""Seconds added to every answer: fixed, or ``(low, high)`` drawn per request (uniformly)."""


def mean_latency(latency: Latency) -> float:
    """The latency's mean: itself, or the middle of its range."""
    return latency if isinstance(latency, float | int) else (latency[0] + latency[1]) / 2


def latency_label(latency: Latency) -> str:
    """``150 ms`` or ``100-200 ms``."""
    if isinstance(latency, float | int):
        return f"{latency * 1000:g} ms"
    return f"{latency[0] * 1000:g}-{latency[1] * 1000:g} ms"


def ideal_seconds(sends: int, latency: Latency) -> float:
    """The least time any client needs for ``sends`` requests under the default limits, the last
    answer included: request *i* leaves at the first moment at which no one-second window holds
    more than 50 and no one-minute window more than 500 (the emulator's sliding windows), and its
    answer comes back ``latency`` later (its mean, when drawn per request). How many requests are
    in flight at once is not limited."""
    leaves: list[float] = []
    for i in range(sends):
        at = 0.0
        if i >= PER_SECOND:
            at = max(at, leaves[i - PER_SECOND] + 1.0)
        if i >= PER_MINUTE:
            at = max(at, leaves[i - PER_MINUTE] + 60.0)
        leaves.append(at)
    return (leaves[-1] if leaves else 0.0) + mean_latency(latency)


def sustained_rate(arrivals: list[float], per_second: int) -> float:
    """Requests per second at the server after the first ``per_second`` of them (any sliding-window
    limit lets those through at once, and a pacer may or may not use that burst): how close a
    run's pace comes to the limit. ``arrivals`` are the server's arrival times, sorted."""
    if len(arrivals) <= per_second:
        return float("nan")
    return (len(arrivals) - per_second) / (arrivals[-1] - arrivals[per_second - 1])


def integrated_sends(events: int, operator_kwargs: dict[str, Any]) -> int:
    """Requests that ``events`` event changes need: one per event, or one per batch of 50 (the
    emulator counts a batch as one request, Cronofy's default as the hook assumes it)."""
    if operator_kwargs.get("use_batch", True):
        return math.ceil(events / BATCH_ENTRIES)
    return events


@contextmanager
def default_connection(emulator: EmulatorProcess, **extra: Any) -> Iterator[None]:
    """Point ``cronofy_default`` at ``emulator``, the hook pacing to the default limits."""
    name = "AIRFLOW_CONN_CRONOFY_DEFAULT"
    limits = {"rate_limit_per_second": PER_SECOND, "rate_limit_per_minute": PER_MINUTE}
    os.environ[name] = json.dumps(emulator.airflow_connection(**limits, **extra))
    try:
        yield
    finally:
        os.environ.pop(name, None)


def emulator_at(latency: Latency) -> EmulatorProcess:
    """A fresh emulator answering after ``latency`` seconds, enforcing the default limits."""
    return EmulatorProcess(
        latency=latency if isinstance(latency, float | int) else list(latency),
        rate_limit_per_second=PER_SECOND,
        rate_limit_per_minute=PER_MINUTE,
    )


def counts(emulator: EmulatorProcess) -> dict[str, Any]:
    """What the emulator saw: 429s sent (rate limiter and injected ones), connections, requests,
    the most requests in flight at once, and faults injected."""
    stats = emulator.stats()
    return {
        "answered_429": stats["status_counts"].get("429", 0),
        "rate_limited_429": stats["fault_counts"]["rate_limited"],
        "connections_opened": stats["connections_opened"],
        "requests_received": stats["requests_received"],
        "max_in_flight": stats["max_in_flight"],
        "faults_injected": {k: v for k, v in stats["fault_counts"].items() if k != "rate_limited" and v},
    }


def timed(execute: Callable[[], dict[str, list[str]]]) -> tuple[float, dict[str, list[str]], list[Any]]:
    """Run ``execute()``; return its seconds, its results and its failures (a bulk error's)."""
    from airflow_provider_cronofy.exceptions import CronofyBulkError

    started = time.perf_counter()
    try:
        results, failures = execute(), []
    except CronofyBulkError as error:
        results, failures = error.results, error.failures
    return time.perf_counter() - started, results, failures


def figures(
    latency: Latency, items: int, sends: int, timing: tuple[float, dict[str, list[str]], list[Any]]
) -> dict[str, Any]:
    """What every run reports: its time against the ideal for ``sends`` requests, and its outcomes."""
    seconds, results, failures = timing
    ideal = ideal_seconds(sends, latency)
    return {
        "items": items,
        "latency_seconds": mean_latency(latency),
        "seconds": seconds,
        "ideal_seconds": ideal,
        "efficiency": ideal / seconds,
        "cancelled": len(results.get("cancelled", [])),
        "failed": len(failures),
    }


def scheduled_run(
    latency: Latency,
    n: int,
    operator_kwargs: dict[str, Any],
    *,
    tag: str,
    faults: dict[str, Any] | None = None,
    connection_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cancel ``n`` scheduled agents in one ``CancelScheduledMeetingAgentOperator`` run."""
    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

    keys = [f"{tag}-{i:06d}" for i in range(n)]
    with emulator_at(latency) as emulator, default_connection(emulator, **(connection_extra or {})):
        emulator.schedule(keys)
        if faults:
            emulator.set_random_faults(**faults)
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, **operator_kwargs
        )
        timing = timed(lambda: operator.execute({}))
        seen = counts(emulator)
        statuses = emulator.agent_statuses()
        sends = emulator.sends_per_key()
        arrivals = sorted(at for at, status in emulator.times() if status == 202)
    _, results, failures = timing
    cancelled_on_server = {key for key in keys if statuses.get(key) == "cancelled"}
    failed = {f.item for f in failures}
    claimed = set(results.get("cancelled", [])) | set(results.get("not_found", []))
    # Lost: neither cancelled at Cronofy nor reported failed, or reported done but not done.
    lost = (set(keys) - cancelled_on_server - failed) | (claimed - cancelled_on_server)
    return {
        **figures(latency, n, n, timing),
        "sustained_rate_over_limit": sustained_rate(arrivals, PER_SECOND) / PER_SECOND,
        "lost": len(lost),
        "most_sends_of_one_key": max(sends.values(), default=0),
        **seen,
    }


def integrated_run(latency: Latency, n: int, operator_kwargs: dict[str, Any], *, tag: str) -> dict[str, Any]:
    """Remove the Meeting Agent of ``n`` events in one ``CancelIntegratedMeetingAgentOperator`` run."""
    from airflow_provider_cronofy.operators.meeting_agents import CancelIntegratedMeetingAgentOperator

    event_ids = [f"{tag}-{i:06d}" for i in range(n)]
    with emulator_at(latency) as emulator, default_connection(emulator, access_token=ACCESS_TOKEN):
        emulator.add_calendar(CALENDAR_ID, ACCESS_TOKEN, event_ids)
        operator = CancelIntegratedMeetingAgentOperator(
            task_id="cancel", calendar_id=CALENDAR_ID, event_id=event_ids, **operator_kwargs
        )
        timing = timed(lambda: operator.execute({}))
        seen = counts(emulator)
        writes = emulator.event_writes()
    return {
        **figures(latency, n, integrated_sends(n, operator_kwargs), timing),
        "changed_exactly_once": sum(writes.get(event_id) == 1 for event_id in event_ids),
        "most_changes_of_one_event": max(writes.values(), default=0),
        **seen,
    }
