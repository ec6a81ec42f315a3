"""Section 6, latency: bulk cancellation at Cronofy's default limits (50/s and 500/min, enforced by
the emulator) with 0, 50, 150 and 300 ms added to every answer, and with a latency drawn per
request from 100-200 ms (jitter), for scheduled keys and for integrated events, each against the
rate-limit ideal (``rate_limited_runs.ideal_seconds``; the mean latency for the drawn one).

The provider runs with its defaults (concurrent engine; events in batches of 50). The baseline is
the same provider with one request in flight and one request per event (``max_concurrency=1,
use_batch=False``), what the engine did before; it is slow, so it runs only at the latencies of
``--baseline-latencies`` (150 ms by default, none with ``--quick``).
"""

from __future__ import annotations

from typing import Any

from harness import Context, heading, median, table
from rate_limited_runs import (
    SEQUENTIAL,
    SEQUENTIAL_SCHEDULED,
    Latency,
    integrated_run,
    latency_label,
    scheduled_run,
)

NAME = "latency"
JITTER: tuple[float, float] = (0.1, 0.2)
"""The drawn latency's range: each answer waits a uniform draw from it."""
SCHEDULED_GOALS: dict[Latency, float] = {0.15: 0.95, 0.3: 0.95, JITTER: 0.90}
"""Least ideal/time for the scheduled keys at each latency (jitter the client cannot see one-way
costs a little: about 0.94 is the limit for the drawn latency)."""
INTEGRATED_GOAL_LATENCY = 0.15
INTEGRATED_GOAL_SECONDS = 10.0


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of a variant's runs (worst run for 429s, failures and doubled changes)."""
    seconds = median([s["seconds"] for s in samples])
    summary = {
        "runs": samples,
        "median_seconds": seconds,
        "ideal_seconds": samples[0]["ideal_seconds"],
        "efficiency": samples[0]["ideal_seconds"] / seconds,
        "max_429": max(s["answered_429"] for s in samples),
        "median_connections": median([s["connections_opened"] for s in samples]),
        "median_max_in_flight": median([s["max_in_flight"] for s in samples]),
        "max_failed": max(s["failed"] for s in samples),
    }
    if "sustained_rate_over_limit" in samples[0]:
        summary["sustained_rate_over_limit"] = median([s["sustained_rate_over_limit"] for s in samples])
    if "changed_exactly_once" in samples[0]:
        summary["min_changed_exactly_once"] = min(s["changed_exactly_once"] for s in samples)
    return summary


def run(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    keys, events = plan.latency_keys, plan.latency_events
    latencies: list[Latency] = [*plan.latencies, JITTER]
    baselines: list[Latency] = [*plan.baseline_latencies, *([JITTER] if plan.baseline_latencies else [])]
    latencies_ms = ", ".join(latency_label(lat) for lat in latencies)
    baseline = ", ".join(latency_label(lat) for lat in baselines)
    heading(
        f"6. Latency: {keys} scheduling keys and {events} integrated events at {latencies_ms} per answer, "
        f"default limits 50/s and 500/min (emulator enforcing them), {plan.latency_runs} run(s) each; "
        + (f"one request in flight (the baseline) at {baseline}, 1 run" if baseline else "no baseline runs")
    )
    workloads = {
        "scheduled": (keys, scheduled_run, SEQUENTIAL_SCHEDULED),
        "integrated": (events, integrated_run, SEQUENTIAL),
    }
    results: dict[str, Any] = {"keys": keys, "events": events, "by_latency": {}}
    rows = []
    for latency in latencies:
        by_workload: dict[str, Any] = {}
        for workload, (n, run_one, sequential) in workloads.items():
            variants = {"provider": {}}
            # The integrated baseline (one request per event, 600 events) only at 150 ms: 90 s.
            if latency in baselines and (workload == "scheduled" or latency == INTEGRATED_GOAL_LATENCY):
                variants["one_in_flight"] = sequential
            figures: dict[str, Any] = {}
            for variant, kwargs in variants.items():
                runs = plan.latency_runs if variant == "provider" else 1
                tag = f"{workload}-{latency_label(latency).replace(' ', '')}-{variant}"
                samples = [run_one(latency, n, kwargs, tag=f"{tag}-{rep}") for rep in range(runs)]
                figures[variant] = summary = summarise(samples)
                exactly_once = summary.get("min_changed_exactly_once")
                rows.append(
                    [
                        latency_label(latency),
                        f"{workload} ({n})",
                        "provider" if variant == "provider" else "one in flight, no batch",
                        f"{summary['median_seconds']:.2f}",
                        f"{summary['ideal_seconds']:.2f}",
                        # 0 ideal: the limits do not bind (12 batches at 0 ms); no ratio to show.
                        f"{summary['efficiency']:.3f}" if summary["ideal_seconds"] else "n/a",
                        f"{summary['sustained_rate_over_limit']:.3f}"
                        if "sustained_rate_over_limit" in summary
                        else "-",
                        summary["max_429"],
                        f"{summary['median_connections']:.0f}",
                        f"{summary['median_max_in_flight']:.0f}",
                        summary["max_failed"],
                        "-" if exactly_once is None else f"{exactly_once}/{n}",
                    ]
                )
            if "one_in_flight" in figures:
                figures["speed_up"] = (
                    figures["one_in_flight"]["median_seconds"] / figures["provider"]["median_seconds"]
                )
            by_workload[workload] = figures
        results["by_latency"][latency_label(latency).replace(" ", "")] = by_workload
    headers = [
        "latency",
        "workload",
        "variant",
        "time s",
        "ideal s",
        "ideal/time",
        "rate/limit",
        "429s",
        "conns",
    ]
    print(table([*headers, "max in flight", "failed", "changed once"], rows))
    print(
        "ideal: the least time the default limits allow for the requests the run needs, plus one "
        "latency (the last answer); a batch of 50 events counts as one request. rate/limit: requests "
        "per second at the emulator after the first 50 (which a sliding window lets through at once), "
        "over 50/s. 429s: every 429 the emulator sent (worst run). conns: TCP connections opened (median)."
    )
    check_goals(ctx, results)
    return results


def check_goals(ctx: Context, results: dict[str, Any]) -> None:
    goals = ctx.goals
    for latency, least in SCHEDULED_GOALS.items():
        figures = results["by_latency"].get(latency_label(latency).replace(" ", ""))
        if figures is None:
            continue
        provider = figures["scheduled"]["provider"]
        what = f"scheduled {results['keys']} keys at {latency_label(latency)}"
        efficiency, rate = provider["efficiency"], provider["sustained_rate_over_limit"]
        print(
            f"{what}: {efficiency:.3f} of the ideal time (goal >= {least:.2f}): "
            + goals.check(
                NAME, f"{what}: ideal / time", f"{efficiency:.3f}", f">= {least:.2f}", efficiency >= least
            )
            + f"; after the first second, {rate:.3f} of 50/s (goal >= {least:.2f}): "
            + goals.check(
                NAME, f"{what}: sustained rate / limit", f"{rate:.3f}", f">= {least:.2f}", rate >= least
            )
            + f"; 429s {provider['max_429']} (goal 0): "
            + goals.check(
                NAME, f"{what}: 429 answers", str(provider["max_429"]), "0", provider["max_429"] == 0
            )
            + "."
        )
    figures = results["by_latency"].get(latency_label(INTEGRATED_GOAL_LATENCY).replace(" ", ""))
    if figures is not None:
        provider = figures["integrated"]["provider"]
        n = results["events"]
        what = f"integrated {n} events at {latency_label(INTEGRATED_GOAL_LATENCY)}"
        seconds = provider["median_seconds"]
        once = provider["min_changed_exactly_once"]
        print(
            f"{what}: {seconds:.2f} s (goal <= {INTEGRATED_GOAL_SECONDS:g} s): "
            + goals.check(
                NAME,
                f"{what}: seconds",
                f"{seconds:.2f}",
                f"<= {INTEGRATED_GOAL_SECONDS:g}",
                seconds <= INTEGRATED_GOAL_SECONDS,
            )
            + f"; 429s {provider['max_429']} (goal 0): "
            + goals.check(
                NAME, f"{what}: 429 answers", str(provider["max_429"]), "0", provider["max_429"] == 0
            )
            + f"; events changed exactly once {once}/{n} (goal all): "
            + goals.check(NAME, f"{what}: events changed exactly once", f"{once}/{n}", f"{n}/{n}", once == n)
            + "."
        )
    speed_ups = [
        f"{key} {workload} {by_variant['speed_up']:.1f}x ({by_variant['one_in_flight']['median_seconds']:.1f} s)"
        for key, figures in results["by_latency"].items()
        for workload, by_variant in figures.items()
        if "speed_up" in by_variant
    ]
    if speed_ups:
        print("One request in flight takes, against the provider: " + "; ".join(speed_ups) + ".")
