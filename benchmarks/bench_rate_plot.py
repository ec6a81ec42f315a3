"""The performance page's plot: requests per second over time, against the rate limit, at 150 ms.

Two runs of one ``CancelScheduledMeetingAgentOperator`` over the same number of scheduling keys,
against an emulator that answers every request after ``--latency`` seconds and enforces Cronofy's
default limits (50/s and 500/min), the hook pacing to the same: the provider with its defaults
(up to 50 requests in flight: the per-second limit) and the same provider with one request in flight
(``max_concurrency=1``, the engine before concurrency). The emulator records each request's
arrival; the plot bins them per second. Prints each run's figures (time, requests, 429s, the
sustained rate) and writes the PNG the docs include (``docs/images/rate-at-150ms.png``).

Run with ``make bench-plot`` (installs matplotlib from ``requirements/bench.txt`` on top of
``.venv``), or ``.venv/bin/python benchmarks/bench_rate_plot.py --keys 300 --latency 0.15``.
The emulator runs in this process: at 50 requests per second neither side is CPU-bound (quote
``uptime`` with the figures anyway). Each run gets a fresh emulator, so a fresh base URL and a
fresh process-wide pacer. Uses only the operators' public arguments, so it runs on any engine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator

PER_SECOND = 50
PER_MINUTE = 500
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "images" / "rate-at-150ms.png"
RUNS: dict[str, dict[str, Any]] = {
    "this provider (defaults: up to 50 in flight)": {},
    "one request in flight (max_concurrency=1)": {"max_concurrency": 1},
}


def one_run(label: str, operator_kwargs: dict[str, Any], keys: int, latency: float) -> dict[str, Any]:
    """Cancel ``keys`` scheduled agents in one operator run; return the arrivals and the figures."""
    names = [f"plot-{i:06d}" for i in range(keys)]
    with CronofyEmulator(
        latency=latency, rate_limit_per_second=PER_SECOND, rate_limit_per_minute=PER_MINUTE
    ) as emulator:
        for name in names:
            emulator.schedule_agent(name)
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = emulator.airflow_connection_json(
            rate_limit_per_second=PER_SECOND, rate_limit_per_minute=PER_MINUTE
        )
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=names, **operator_kwargs
        )
        started = time.perf_counter()
        result = operator.execute({})
        seconds = time.perf_counter() - started
        arrivals = sorted(request.time for request in emulator.requests)
        status_counts = dict(emulator.status_counts)
        cancelled_on_server = sum(emulator.scheduled_agents[name]["status"] == "cancelled" for name in names)
    os.environ.pop("AIRFLOW_CONN_CRONOFY_DEFAULT", None)
    first = arrivals[0] if arrivals else 0.0
    offsets = [at - first for at in arrivals]
    sustained = float("nan")
    if len(offsets) > PER_SECOND:  # after the first 50, which any sliding window lets through
        sustained = (len(offsets) - PER_SECOND) / (offsets[-1] - offsets[PER_SECOND - 1])
    return {
        "label": label,
        "seconds": seconds,
        "requests": len(arrivals),
        "answered_429": status_counts.get(429, 0),
        "cancelled": len(result["cancelled"]),
        "cancelled_on_server": cancelled_on_server,
        "sustained_per_second": sustained,
        "offsets": offsets,
    }


def per_second(offsets: list[float]) -> tuple[list[float], list[int]]:
    """Requests per one-second bin, from 0 to the last arrival; x at each bin's start."""
    bins = [0] * (math.floor(offsets[-1]) + 1 if offsets else 0)
    for at in offsets:
        bins[math.floor(at)] += 1
    return [float(i) for i in range(len(bins))], bins


def plot(runs: list[dict[str, Any]], latency: float, keys: int, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=110)
    for run, colour in zip(runs, ("tab:blue", "tab:orange"), strict=False):
        xs, ys = per_second(run["offsets"])
        axes.step(
            [*xs, xs[-1] + 1] if xs else [],
            [*ys, ys[-1]] if ys else [],
            where="post",
            color=colour,
            linewidth=2.5,
            zorder=3,
            label=f"{run['label']}: {run['seconds']:.1f} s, {run['answered_429']} x 429",
        )
        axes.axvline(run["offsets"][-1], color=colour, linestyle=":", linewidth=1, zorder=2)
    axes.axhline(
        PER_SECOND,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        zorder=4,
        label=f"rate limit ({PER_SECOND}/s)",
    )
    axes.set_xlabel("seconds since the first request")
    axes.set_ylabel("requests per second (1 s bins)")
    axes.set_title(f"{keys} scheduling keys at {latency * 1000:.0f} ms latency, Cronofy's default limits")
    axes.set_ylim(0, PER_SECOND * 1.25)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, metadata={"Software": None})  # no version string: a re-run diffs less
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=300, help="scheduling keys per run (default 300)")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per answer (default 0.15)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"PNG (default {DEFAULT_OUTPUT})")
    parser.add_argument("--json", type=Path, help="also write the figures (and arrivals) here")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    runs = [one_run(label, kwargs, args.keys, args.latency) for label, kwargs in RUNS.items()]
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    for run in runs:
        print(
            f"{run['label']}: {run['seconds']:.2f} s, {run['requests']} requests, "
            f"{run['answered_429']} x 429, {run['cancelled']} cancelled "
            f"({run['cancelled_on_server']} at the emulator), sustained "
            f"{run['sustained_per_second']:.1f}/s = {run['sustained_per_second'] / PER_SECOND:.2f} of the limit"
        )
    plot(runs, args.latency, args.keys, args.output)
    print(f"plot: {args.output}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    failed = [run["label"] for run in runs if run["cancelled_on_server"] != args.keys]
    if failed:
        print(f"not every key was cancelled in: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
