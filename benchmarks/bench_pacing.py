"""Section 3, pacing: the hook's pacing against an emulator enforcing 100/s and 1,000/min, on
loopback (no latency): the pacer alone. Its ideal: 100 at once, then 100 each second, so ``n`` keys
need ``ceil(n / 100) - 1`` seconds plus the last answer; ``ideal/time`` is that over the wall time."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from emulator_process import EmulatorProcess
from harness import Context, heading, median, table
from rate_limited_runs import sustained_rate

NAME = "pacing"


def run(ctx: Context) -> dict[str, Any]:
    plan, goals = ctx.plan, ctx.goals
    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

    n, per_second, per_minute = plan.pacing_keys, 100, 1000
    heading(
        f"3. Pacing: {n} keys, emulator enforcing {per_second}/s and {per_minute:,}/min, hook pacing to "
        f"the same limits, {plan.pacing_runs} run(s)"
    )
    samples = []
    for rep in range(plan.pacing_runs):
        # A fresh emulator (and so a fresh base URL and process-wide pacer) per run: the minute
        # window of a previous run would otherwise still be full.
        with EmulatorProcess(rate_limit_per_second=per_second, rate_limit_per_minute=per_minute) as emulator:
            conn_id = f"cronofy_paced_{rep}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                emulator.airflow_connection(
                    rate_limit_per_second=per_second, rate_limit_per_minute=per_minute
                )
            )
            keys = [f"paced-{rep}-{i:06d}" for i in range(n)]
            emulator.schedule(keys)
            operator = CancelScheduledMeetingAgentOperator(
                task_id="cancel", scheduling_key=keys, cronofy_conn_id=conn_id
            )
            started = time.perf_counter()
            result = operator.execute({})
            seconds = time.perf_counter() - started
            stats = emulator.stats(statuses=True)
            times = sorted(t for t, status in emulator.times() if status == 202)
            os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        sustained = sustained_rate(times, per_second)
        ideal = (-(-n // per_second) - 1) * 1.0  # the least span a perfect client needs
        samples.append(
            {
                "seconds": seconds,
                "server_span_seconds": times[-1] - times[0],
                "sustained_rate": sustained,
                "ideal_span_seconds": ideal,
                "rate_limited_429": stats["fault_counts"]["rate_limited"],
                "requests_received": stats["requests"],
                "cancelled": len(result["cancelled"]),
            }
        )
    rate = median([s["sustained_rate"] for s in samples])
    span = median([s["server_span_seconds"] for s in samples])
    wall = median([s["seconds"] for s in samples])
    wall_ratio = samples[0]["ideal_span_seconds"] / wall
    too_many = max(s["rate_limited_429"] for s in samples)
    extra = max(s["requests_received"] - n for s in samples)
    ideal = samples[0]["ideal_span_seconds"]
    rows = [
        [
            "sustained rate after the first second's burst",
            f"{rate:.1f}/s",
            f"{rate / per_second:.3f} of the limit",
        ],
        ["server-side span, first to last request", f"{span:.2f} s", f"least possible {ideal:.1f} s"],
        ["client wall time", f"{wall:.2f} s", f"{n / wall:.1f} req/s overall"],
        ["ideal / wall time (the pacer alone)", f"{wall_ratio:.3f}", f"ideal {ideal:.1f} s"],
        ["429 answers (emulator's rate limiter)", str(too_many), "worst run"],
        ["requests beyond one per key (retries)", str(extra), "worst run"],
    ]
    print(table(["measure (median of runs)", "value", "note"], rows))
    print(
        f"Achieved rate / limit {rate / per_second:.3f} (goal >= 0.95): "
        + goals.check(
            "pacing",
            "sustained rate / limit",
            f"{rate / per_second:.3f}",
            ">= 0.95",
            rate / per_second >= 0.95,
        )
        + f"; ideal / wall time {wall_ratio:.3f} (goal >= 0.95): "
        + goals.check("pacing", "ideal / wall time", f"{wall_ratio:.3f}", ">= 0.95", wall_ratio >= 0.95)
        + f"; 429s {too_many} (goal 0): "
        + goals.check("pacing", "429 answers", str(too_many), "0", too_many == 0)
        + "."
    )
    return {
        "keys": n,
        "limit_per_second": per_second,
        "limit_per_minute": per_minute,
        "runs": samples,
        "median_sustained_rate": rate,
        "rate_over_limit": rate / per_second,
        "median_server_span_seconds": span,
        "median_wall_seconds": wall,
        "ideal_over_wall": wall_ratio,
        "max_429": too_many,
    }
