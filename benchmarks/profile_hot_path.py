"""Profile the provider's hot path: ``CronofyHook.cancel_scheduled_meeting_agent`` in a loop.

    .venv/bin/python benchmarks/profile_hot_path.py [--keys 3000] [--top 30] [--floor]

Runs against the emulator in a process of its own (pacing and rate limits off), under cProfile,
and prints the functions with the most own time and the most cumulative time. With ``--floor``
also profiles the bare ``requests.Session`` loop, for comparison. Also prints the client's CPU
time per request without the profiler, hook against floor.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from emulator_process import EmulatorProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=3000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--floor", action="store_true", help="profile the bare requests loop too")
    args = parser.parse_args()
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="cronofy-profile-")
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"

    import requests

    from airflow_provider_cronofy.hooks.cronofy import CronofyHook

    with EmulatorProcess(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(
            emulator.airflow_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
        )
        url = emulator.url + "/v1/meeting_agents"
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Bearer {emulator.api_key}",
        }

        def hook_loop(keys: list[str]) -> None:
            with CronofyHook() as hook:
                for key in keys:
                    hook.cancel_scheduled_meeting_agent(key)

        def floor_loop(keys: list[str]) -> None:
            with requests.Session() as session:
                session.headers["Accept"] = "application/json"
                for key in keys:
                    data = json.dumps({"scheduling_key": key}).encode()
                    session.delete(url, data=data, headers=headers, timeout=(10.0, 30.0))

        loops = [("hook", hook_loop)] + ([("floor", floor_loop)] if args.floor else [])
        for name, loop in loops:
            loop([f"warm-{name}-{i}" for i in range(200)])
        # Client CPU time without the profiler, interleaved, three rounds.
        cpu: dict[str, list[float]] = {name: [] for name, _ in loops}
        for rep in range(3):
            for name, loop in loops:
                keys = [f"cpu-{name}-{rep}-{i}" for i in range(args.keys)]
                started = time.process_time()
                loop(keys)
                cpu[name].append((time.process_time() - started) / args.keys * 1e6)
                emulator.reset_requests()
        for name, values in cpu.items():
            print(f"{name}: client CPU {sorted(values)[1]:.0f} us/request (median of 3, no profiler)")
        for name, loop in loops:
            keys = [f"prof-{name}-{i}" for i in range(args.keys)]
            profiler = cProfile.Profile()
            profiler.enable()
            loop(keys)
            profiler.disable()
            emulator.reset_requests()
            for sort in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(args.top)
                print(f"\n===== {name}: {args.keys} requests, by {sort} =====")
                print(out.getvalue().split("\n", 6)[-1])  # without pstats' header lines


if __name__ == "__main__":
    main()
