"""Section 5, memory: peak RSS of one task cancelling 10,000 and 100,000 keys (``child.py memory``),
each in a fresh process, above a baseline process with the same imports and the same key list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_import import airflow_module
from emulator_process import EmulatorProcess
from harness import Context, heading, table

NAME = "memory"
HERE = Path(__file__).resolve().parent


def run(ctx: Context) -> dict[str, Any]:
    goals, home = ctx.goals, ctx.home
    sizes = ctx.plan.memory_keys
    heading(
        f"5. Memory: peak RSS of one task cancelling {' and '.join(f'{k:,}' for k in sizes)} keys, "
        "fresh process each, above a baseline process (same imports, same key list)"
    )
    emulator = EmulatorProcess(rate_limit_per_second=None, rate_limit_per_minute=None)
    try:
        env = {
            **os.environ,
            "CRONOFY_BENCH_AIRFLOW_MODULE": airflow_module(),
            "AIRFLOW_CONN_CRONOFY_DEFAULT": json.dumps(
                emulator.airflow_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
            ),
        }

        def child(mode: str, keys: int) -> dict[str, Any]:
            out = home / f"memory-{mode}-{keys}.json"
            command = [sys.executable, str(HERE / "child.py"), "memory", "--mode", mode, "--keys", str(keys)]
            # Through sh, not forked straight from this process: ru_maxrss also counts the peak RSS
            # of the process image before exec, which for a child forked from here is ours.
            subprocess.run(
                ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command, "--out", str(out)],
                env=env,
                check=True,
                capture_output=True,
                timeout=1200,
            )
            emulator.reset_requests()  # unknown keys: the emulator's default 202, no set-up needed
            return json.loads(out.read_text())

        samples = {k: (child("baseline", k), child("task", k)) for k in sizes}
    finally:
        emulator.close()
    rows = []
    results: dict[str, Any] = {}
    mib = 1 / 1024  # KiB to MiB
    for k, (base, task) in samples.items():
        dedup = base.get("dedup_transient_kib")
        results[str(k)] = {
            "baseline_peak_mib": base["maxrss_kib"] * mib,
            "task_peak_mib": task["maxrss_kib"] * mib,
            "peak_above_baseline_mib": (task["maxrss_kib"] - base["maxrss_kib"]) * mib,
            "dedup_transient_mib": dedup * mib if dedup is not None else None,
            "held_after_run_above_baseline_mib": (task["rss_after_kib"] - base["rss_after_kib"]) * mib,
            "result_lists_mib": task["result_lists_bytes"] / 2**20,
            "task_vm_hwm_mib": task["vm_hwm_kib"] * mib,
            "seconds": task["seconds"],
            "cancelled": task["cancelled"],
        }
        r = results[str(k)]
        rows.append(
            [
                f"{k:,}",
                f"{r['baseline_peak_mib']:.1f}",
                f"{r['task_peak_mib']:.1f}",
                f"{r['peak_above_baseline_mib']:.1f}",
                f"{r['dedup_transient_mib']:.1f}" if dedup is not None else "n/a",
                f"{r['held_after_run_above_baseline_mib']:.1f}",
                f"{r['result_lists_mib']:.1f}",
                f"{task['seconds']:.1f}",
                f"{k / task['seconds']:,.0f}",
            ]
        )
        for sample in (base, task):
            if abs(sample["maxrss_kib"] - (sample["vm_hwm_kib"] or sample["maxrss_kib"])) > 1024:
                print(f"WARNING: ru_maxrss and VmHWM disagree for {sample['mode']} {k:,}: {sample}")
    headers = ["keys", "baseline peak", "task peak", "peak above", "de-dup transient"]
    print(table([*headers, "held after run", "result lists", "run s", "req/s"], rows))
    small, large = (results[str(k)] for k in (sizes[0], sizes[-1]))
    extra = sizes[-1] - sizes[0]
    peak_growth = large["peak_above_baseline_mib"] - small["peak_above_baseline_mib"]
    held_growth = large["held_after_run_above_baseline_mib"] - small["held_after_run_above_baseline_mib"]
    lists_growth = large["result_lists_mib"] - small["result_lists_mib"]
    per_request = (held_growth - lists_growth) * 2**20 / extra
    print(
        "MiB. peak: ru_maxrss of a fresh process (run through sh, so no parent's peak is inherited); "
        "de-dup transient: the peak of de-duplicating the keys alone, measured in the baseline "
        "process; held after run: RSS once the run is over, above the baseline's; result lists: the "
        "de-duplicated key list and the result lists."
    )
    if small["dedup_transient_mib"] is not None and large["dedup_transient_mib"] is not None:
        dedup_growth = large["dedup_transient_mib"] - small["dedup_transient_mib"]
        print(
            f"Peak growth from {sizes[0]:,} to {sizes[-1]:,} keys: {peak_growth:.1f} MiB; the transient of "
            f"de-duplicating the keys alone grows by {dedup_growth:.1f} MiB."
        )
    # Flat: what the run holds grows by the result lists and under 16 bytes per extra request
    # (a leak of one small object per request is 50+ bytes), with 2 MiB of allocator slack.
    limit = 16 + 2 * 2**20 / extra
    print(
        f"Held after the run grows by {held_growth:.1f} MiB for {extra:,} more keys; the result lists by "
        f"{lists_growth:.1f} MiB; beyond them {per_request:+.1f} bytes per extra request. Flat: "
        + goals.check(
            "memory",
            "held RSS growth beyond result lists, bytes/request",
            f"{per_request:+.1f}",
            f"<= {limit:.0f} (16 B + 2 MiB of slack)",
            per_request <= limit,
        )
    )
    results["peak_growth_mib"] = peak_growth
    results["held_growth_mib"] = held_growth
    results["result_lists_growth_mib"] = lists_growth
    results["held_bytes_per_extra_request_beyond_lists"] = per_request
    return results
