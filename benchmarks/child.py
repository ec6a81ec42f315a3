"""Measurements that need a fresh process of their own; bench_mapping.py and bench_memory.py start them.

``child.py dag --reps R --out FILE``
    Runs the DAGs of mapping_dags.py with ``dag.test()`` (warm-up DAGs first), against an emulator in
    a process of its own, and writes wall times and the emulator's counts as JSON to FILE.
``child.py memory --mode task|baseline --keys N --out FILE``
    Imports the same modules and builds the same list of N keys in both modes; ``task`` then
    cancels them in one ``CancelScheduledMeetingAgentOperator.execute`` run against the emulator
    of ``AIRFLOW_CONN_CRONOFY_DEFAULT``. Writes the peak RSS (``ru_maxrss``) as JSON to FILE.

The environment (``AIRFLOW_HOME`` and the rest) comes from the parent.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _write(path: str, payload: dict) -> None:
    Path(path).write_text(json.dumps(payload))


def run_dags(args: argparse.Namespace) -> None:
    from emulator_process import EmulatorProcess

    with EmulatorProcess(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        conn = emulator.airflow_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(conn)
        try:  # Airflow 3
            from airflow.dag_processing.dagbag import DagBag

            bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        except ImportError:  # Airflow 2.11
            from airflow.models import DagBag

            bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")

        def timed(dag_id: str) -> dict:
            dag = bag.dags[dag_id]
            (task,) = dag.tasks
            expand_input = getattr(task, "expand_input", None)  # set on mapped tasks only
            keys = list(expand_input.value["scheduling_key"] if expand_input else task.scheduling_key)
            emulator.schedule(keys)  # every run cancels agents that are really scheduled
            emulator.reset_requests()
            before = emulator.stats()
            started = time.perf_counter()
            run = dag.test()
            seconds = time.perf_counter() - started
            after = emulator.stats(statuses=True)
            return {
                "dag_id": dag_id,
                "keys": len(keys),
                "seconds": seconds,
                "state": str(getattr(run, "state", run)),
                "connections_opened": after["connections_opened"] - before["connections_opened"],
                "requests": after["requests"],
                "statuses": after["statuses"],
            }

        warmups = [timed("cronofy_bench_warmup_one_task"), timed("cronofy_bench_warmup_mapped")]
        runs = []
        for rep in range(args.reps):
            # Alternate which goes first, so neither always runs on a warmer process.
            order = ["cronofy_bench_one_task", "cronofy_bench_mapped"]
            for dag_id in order if rep % 2 == 0 else order[::-1]:
                runs.append(timed(dag_id))
        _write(args.out, {"warmups": warmups, "runs": runs})


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux 4.0+); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_memory(args: argparse.Namespace) -> None:
    import importlib

    import requests  # noqa: F401 - the same imports in both modes

    importlib.import_module(os.environ.get("CRONOFY_BENCH_AIRFLOW_MODULE", "airflow.sdk"))

    from airflow_provider_cronofy.hooks.cronofy import CronofyHook  # noqa: F401
    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
    from airflow_provider_cronofy.validation import normalise_items

    keys = [f"mem-key-{i:07d}" for i in range(args.keys)]
    operator = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys)
    payload: dict = {"mode": args.mode, "keys": args.keys, "rss_before_run_kib": _status_kib("VmRSS")}
    result: dict[str, list[str]] = {}
    if args.mode == "task":
        started = time.perf_counter()
        result = operator.execute({})
        payload["seconds"] = time.perf_counter() - started
        payload["cancelled"] = len(result["cancelled"])
        payload["not_found"] = len(result["not_found"])
    payload["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The kernel's high-water mark of this process's own memory. ru_maxrss also counts the peak of
    # the process image before exec, i.e. of the parent when it was forked from a big one: the
    # two agree only if the parent started this process through a small one (bench_memory uses sh).
    payload["vm_hwm_kib"] = _status_kib("VmHWM")
    # What is still held once the run is over (the result is still referenced).
    payload["rss_after_kib"] = _status_kib("VmRSS")
    if args.mode == "task":
        # The lists the run must hold whatever its per-request cost: the de-duplicated copy of
        # the keys and the result lists. Measured after the peak was read.
        dedup = normalise_items("scheduling_key", keys)
        payload["result_lists_bytes"] = sys.getsizeof(dedup) + sum(sys.getsizeof(v) for v in result.values())
    elif _reset_peak():
        # The baseline's peak is read; now measure, on its own, the transient of de-duplicating
        # the keys (a dict grown key by key, resized on the way, then a list made from it).
        before = _status_kib("VmRSS") or 0
        normalise_items("scheduling_key", keys)
        payload["dedup_transient_kib"] = (_status_kib("VmHWM") or 0) - before
    _write(args.out, payload)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    dag = sub.add_parser("dag")
    dag.add_argument("--reps", type=int, default=1)
    dag.add_argument("--out", required=True)
    memory = sub.add_parser("memory")
    memory.add_argument("--mode", choices=("task", "baseline"), required=True)
    memory.add_argument("--keys", type=int, required=True)
    memory.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.what == "dag":
        run_dags(args)
    else:
        run_memory(args)


if __name__ == "__main__":
    main()
