"""Section 7, faults: 300 scheduling keys at 150 ms per answer and the default limits, with about
18 % of requests faulted (503, 429, dropped connections, answers later than the client's timeout),
timed against the same run without faults. Counts lost keys (neither cancelled at the emulator nor
reported failed, or reported done and not done) and the most sends of one key.

With 150 ms in ``--baseline-latencies`` (the default; not with ``--quick``) the same pair also
runs with one request in flight (``max_concurrency=1``), the engine before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness import Context, heading, median, table
from rate_limited_runs import SEQUENTIAL_SCHEDULED, scheduled_run

NAME = "faults"
LATENCY = 0.15
CLIENT_TIMEOUT = 1.0
"""Seconds (connect and read) the hook waits; a delayed answer comes after it: a timeout."""
MAX_RETRIES = 5
"""The hook's default retry budget, given explicitly so that the cap below is the real one."""
FAULTS: dict[str, Any] = {
    # Each run draws from seed + run number; the first three seeds from this one each put timeouts
    # in the mix (at 1 % a seed can give none in 300-odd requests).
    "seed": 20240612,
    "p_503": 0.10,
    "p_429": 0.05,  # half with Retry-After: 1
    "p_429_retry_after": 0.5,
    "retry_after_seconds": 1,
    "p_drop": 0.02,
    "p_delay": 0.01,
    "delay_seconds": 2 * CLIENT_TIMEOUT,
}
GOAL_SECONDS = 20.0


@contextmanager
def quiet_retries() -> Iterator[None]:
    """Keep the hook's retry warnings (one per fault, expected here) out of the tables."""
    logger = logging.getLogger("airflow_provider_cronofy")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run(ctx: Context) -> dict[str, Any]:
    plan, goals = ctx.plan, ctx.goals
    n = plan.fault_keys
    share = FAULTS["p_503"] + FAULTS["p_429"] + FAULTS["p_drop"] + FAULTS["p_delay"]
    heading(
        f"7. Faults: {n} scheduling keys at {LATENCY * 1000:g} ms, default limits, {share:.0%} of requests "
        f"faulted (503 {FAULTS['p_503']:.0%}, 429 {FAULTS['p_429']:.0%}, drop {FAULTS['p_drop']:.0%}, "
        f"answer after the {CLIENT_TIMEOUT:g} s timeout {FAULTS['p_delay']:.0%}), against no faults; "
        f"max_retries={MAX_RETRIES}, {plan.fault_runs} run(s) each"
    )
    extra = {"timeout": CLIENT_TIMEOUT, "max_retries": MAX_RETRIES}
    variants = {"provider": ({}, plan.fault_runs)}
    if LATENCY in plan.baseline_latencies:
        variants["one_in_flight"] = (SEQUENTIAL_SCHEDULED, 1)
    results: dict[str, Any] = {"keys": n, "latency_seconds": LATENCY, "faults": FAULTS, "variants": {}}
    rows = []
    for variant, (kwargs, runs) in variants.items():
        figures: dict[str, Any] = {}
        for condition, faults in (("clean", None), ("faults", FAULTS)):
            samples = []
            with quiet_retries():
                for rep in range(runs):
                    seed = {"seed": FAULTS["seed"] + rep} if faults else {}
                    samples.append(
                        scheduled_run(
                            LATENCY,
                            n,
                            kwargs,
                            tag=f"faults-{variant}-{condition}-{rep}",
                            faults={**faults, **seed} if faults else None,
                            connection_extra=extra,
                        )
                    )
            figures[condition] = {
                "runs": samples,
                "median_seconds": median([s["seconds"] for s in samples]),
                "max_lost": max(s["lost"] for s in samples),
                "max_failed": max(s["failed"] for s in samples),
                "most_sends_of_one_key": max(s["most_sends_of_one_key"] for s in samples),
                "max_429": max(s["answered_429"] for s in samples),
                "max_rate_limited_429": max(s["rate_limited_429"] for s in samples),
            }
            f = figures[condition]
            injected = samples[0]["faults_injected"]
            rows.append(
                [
                    "provider" if variant == "provider" else "one in flight",
                    condition,
                    f"{f['median_seconds']:.2f}",
                    ", ".join(f"{k} {v}" for k, v in sorted(injected.items())) or "-",
                    f["max_rate_limited_429"],
                    f["max_failed"],
                    f["max_lost"],
                    f"{f['most_sends_of_one_key']} (cap {MAX_RETRIES + 1})",
                ]
            )
        figures["faults_over_clean"] = (
            figures["faults"]["median_seconds"] / figures["clean"]["median_seconds"]
        )
        results["variants"][variant] = figures
    headers = ["variant", "run", "time s", "faults injected (first run)", "rate-limiter 429s", "failed"]
    print(table([*headers, "lost", "most sends of a key"], rows))
    provider = results["variants"]["provider"]
    faulted = provider["faults"]
    print(
        f"Faults cost {provider['faults_over_clean']:.2f}x the clean run's time"
        + (
            f" (one in flight: {results['variants']['one_in_flight']['faults_over_clean']:.2f}x, "
            f"{results['variants']['one_in_flight']['faults']['median_seconds']:.1f} s)"
            if "one_in_flight" in results["variants"]
            else ""
        )
        + f". With faults: {faulted['median_seconds']:.2f} s (goal <= {GOAL_SECONDS:g} s): "
        + goals.check(
            NAME,
            f"{n} keys, 150 ms, ~18 % faults: seconds",
            f"{faulted['median_seconds']:.2f}",
            f"<= {GOAL_SECONDS:g}",
            faulted["median_seconds"] <= GOAL_SECONDS,
        )
        + f"; lost keys {faulted['max_lost']} (goal 0): "
        + goals.check(NAME, "lost keys under faults", str(faulted["max_lost"]), "0", faulted["max_lost"] == 0)
        + f"; most sends of one key {faulted['most_sends_of_one_key']} (goal <= {MAX_RETRIES + 1}): "
        + goals.check(
            NAME,
            "most sends of one key under faults",
            str(faulted["most_sends_of_one_key"]),
            f"<= {MAX_RETRIES + 1}",
            faulted["most_sends_of_one_key"] <= MAX_RETRIES + 1,
        )
        + "."
    )
    return results
