"""Deferrable mode: worker-held seconds against wall time for a run crossing two minute windows.

Section 8 of ``make bench`` (``--section deferrable``; left out of ``--quick``), or on its own:
``python benchmarks/bench_deferrable.py [--keys 1200] [--per-second 50] [--per-minute 500]``
(about 5 minutes with the defaults, Cronofy's own limits). The emulator runs in a process of its
own, enforcing the limits; the hook paces to the same. The same list is cancelled twice with
``dag.test()`` (which runs triggers inline, as the triggerer would): once with
``deferrable=False`` (the baseline: the task holds its worker slot all along) and once with
``deferrable=True``, each against a fresh emulator (an empty minute window).

- **wall**: from the start of ``dag.test()`` to its end.
- **worker-held**: the seconds spent inside the operator's ``execute`` and ``execute_complete``
  (what a worker slot is held for; a real deployment adds a task process start per resume, which
  ``dag.test()`` does not have: see the note printed at the end).
- **released**: ``1 - held / wall``; the goal is at least 80 % for the deferrable run.
- every key sent once (requests received = keys), and no 429 from the emulator's rate limiter.

Prints the figures and a ratio against the baseline; ``--json PATH`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from emulator_process import EmulatorProcess  # noqa: E402 - a sibling module, not a package
from harness import heading  # noqa: E402

DAG_FILE = """
from datetime import datetime
import os
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

KEYS = [f"bench-defer-{i:06d}" for i in range(int(os.environ["CRONOFY_BENCH_DEFER_KEYS"]))]
for deferrable in (False, True):
    with DAG(f"cronofy_bench_deferrable_{deferrable}".lower(), schedule=None,
             start_date=datetime(2026, 1, 1), catchup=False):
        CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=KEYS, deferrable=deferrable)
"""


def prepare(home: Path, keys: int) -> None:
    """A throw-away AIRFLOW_HOME with the two DAGs and a migrated SQLite database."""
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "bench_deferrable_dags.py").write_text(DAG_FILE)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["CRONOFY_BENCH_DEFER_KEYS"] = str(keys)
    airflow_cli = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow_cli), "db", "migrate"], check=True, capture_output=True, env=dict(os.environ))


def measure(deferrable: bool, keys: int, per_second: int, per_minute: int, home: Path) -> dict[str, Any]:
    """One ``dag.test()`` run against a fresh emulator; the figures of the module docstring."""
    from airflow_provider_cronofy._compat import AIRFLOW_V_3
    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

    if AIRFLOW_V_3:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(home / "dags"))
    else:
        from airflow.models import DagBag

        bag = DagBag(dag_folder=str(home / "dags"), include_examples=False)
    held: list[float] = []
    deferrals: list[int] = []
    execute, resume, defer = (
        CancelScheduledMeetingAgentOperator.execute,
        CancelScheduledMeetingAgentOperator.execute_complete,
        CancelScheduledMeetingAgentOperator.defer,
    )

    depth = [0]

    def timed(method: Any) -> Any:
        # execute_complete calls execute: time only the outermost call of a task run.
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    held.append(time.perf_counter() - started)

        return wrapper

    def counted_defer(self: Any, **kwargs: Any) -> Any:
        deferrals.append(kwargs["kwargs"]["resume"]["position"])
        return defer(self, **kwargs)

    CancelScheduledMeetingAgentOperator.execute = timed(execute)  # type: ignore[method-assign]
    CancelScheduledMeetingAgentOperator.execute_complete = timed(resume)  # type: ignore[method-assign]
    CancelScheduledMeetingAgentOperator.defer = counted_defer  # type: ignore[method-assign]
    names = [f"bench-defer-{i:06d}" for i in range(keys)]
    try:
        with EmulatorProcess(rate_limit_per_second=per_second, rate_limit_per_minute=per_minute) as emulator:
            emulator.schedule(names)
            os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(
                emulator.airflow_connection(
                    rate_limit_per_second=per_second, rate_limit_per_minute=per_minute
                )
            )
            dag = bag.dags[f"cronofy_bench_deferrable_{deferrable}".lower()]
            started = time.perf_counter()
            run = dag.test()
            wall = time.perf_counter() - started
            stats = emulator.stats(statuses=True)
    finally:
        CancelScheduledMeetingAgentOperator.execute = execute  # type: ignore[method-assign]
        CancelScheduledMeetingAgentOperator.execute_complete = resume  # type: ignore[method-assign]
        CancelScheduledMeetingAgentOperator.defer = defer  # type: ignore[method-assign]
    statuses = {int(k): v for k, v in stats["statuses"].items()}
    return {
        "deferrable": deferrable,
        "state": str(run.state),
        "wall_seconds": wall,
        "worker_held_seconds": sum(held),
        "task_runs": len(held),
        "deferrals": len(deferrals),
        "requests_received": stats["requests"],
        "accepted_202": statuses.get(202, 0),
        "rate_limited_429": statuses.get(429, 0),
    }


NAME = "deferrable"


def run(ctx: Any) -> dict[str, Any]:
    """The section for ``run.py``: this script in a child process (its own AIRFLOW_HOME)."""
    heading("8. Deferrable mode: worker-held seconds against wall time, across two minute windows")
    keys = ctx.plan.deferrable_keys
    if not keys:
        print(
            "Not run with --quick: it waits out two minute windows (about 5 minutes). "
            "Run it with `make bench BENCH_ARGS=deferrable`."
        )
        return {"skipped": "quick"}
    out = ctx.home / "deferrable.json"
    code = subprocess.call([sys.executable, __file__, "--keys", str(keys), "--json", str(out)])
    if not out.exists():
        ctx.goals.check(NAME, "deferrable run", f"exit {code}, no figures", "runs", False)
        return {"exit_code": code}
    figures = json.loads(out.read_text())
    deferred = next(row for row in figures["rows"] if row["deferrable"])
    for goal, met in figures["goals"].items():
        value = (
            f"{deferred['released_fraction']:.1%} released"
            if "released" in goal
            else ("yes" if met else "no")
        )
        ctx.goals.check(NAME, goal, value, goal, met)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=1200, help="keys to cancel (default 1200)")
    parser.add_argument("--per-second", type=int, default=50, help="enforced and paced limit (default 50)")
    parser.add_argument("--per-minute", type=int, default=500, help="enforced and paced limit (default 500)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    windows = -(-args.keys // args.per_minute) - 1
    print(
        f"Deferrable mode: {args.keys:,} keys, emulator enforcing {args.per_second}/s and "
        f"{args.per_minute}/min (the hook paces to the same): {windows} full minute window(s) to wait out.",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cronofy-bench-defer-") as tmp:
        home = Path(tmp)
        prepare(home, args.keys)
        import logging

        logging.disable(logging.INFO)  # dag.test() logs every step; the figures are what matters
        rows = [measure(d, args.keys, args.per_second, args.per_minute, home) for d in (False, True)]
    base, deferred = rows
    print()
    print(
        f"{'run':<22}{'wall s':>9}{'worker-held s':>15}{'released':>10}{'deferrals':>11}{'requests':>10}{'429s':>6}"
    )
    for row in rows:
        released = 1 - row["worker_held_seconds"] / row["wall_seconds"]
        row["released_fraction"] = released
        name = "deferrable=True" if row["deferrable"] else "deferrable=False (base)"
        print(
            f"{name:<22}{row['wall_seconds']:>9.1f}{row['worker_held_seconds']:>15.1f}{released:>10.1%}"
            f"{row['deferrals']:>11}{row['requests_received']:>10}{row['rate_limited_429']:>6}"
        )
    ratio = deferred["worker_held_seconds"] / base["worker_held_seconds"]
    print(
        f"\nworker-held seconds, deferrable / base: {ratio:.2f} "
        f"(wall time ratio {deferred['wall_seconds'] / base['wall_seconds']:.2f})"
    )
    goals = {
        "released >= 80% (deferrable)": deferred["released_fraction"] >= 0.80,
        "every key sent once": all(r["requests_received"] == args.keys == r["accepted_202"] for r in rows),
        "0 x 429": all(r["rate_limited_429"] == 0 for r in rows),
        "both runs succeeded": all("success" in r["state"].lower() for r in rows),
    }
    for goal, met in goals.items():
        print(f"  {goal}: {'met' if met else 'NOT met'}")
    print(
        "Note: dag.test() resumes in the same process; a deployment starts a task process per resume "
        f"({deferred['deferrals']} here), a few seconds each, which the worker-held figure does not include."
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "goals": goals}, indent=2))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
