"""Section 2, mapping: one task cancelling N keys against N mapped task instances
(``.partial().expand()``), each DAG run with ``dag.test()`` in a child process (``child.py dag``)
on the DAGs of ``mapping_dags.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import Context, SetUpJob, heading, median, table

NAME = "mapping"
HERE = Path(__file__).resolve().parent
MIGRATE = "airflow db migrate"


def setup_job(home: Path) -> SetUpJob:
    """Migrate the metadata DB that dag.test() needs."""
    airflow_cli = Path(sys.executable).with_name("airflow")
    return SetUpJob(MIGRATE, [str(airflow_cli), "db", "migrate"], dict(os.environ))


def run(ctx: Context) -> dict[str, Any]:
    plan, goals, home = ctx.plan, ctx.goals, ctx.home
    migrate_seconds = ctx.setup_seconds.get(MIGRATE, 0.0)
    n = plan.mapping_keys
    heading(
        f"2. One task vs dynamic task mapping: {n} keys, dag.test() each, "
        f"{plan.mapping_runs} timed run(s) of each (after a warm-up run of each)"
    )
    log_path = home / "mapping.log"
    shutil.copy(HERE / "mapping_dags.py", home / "dags" / "cronofy_bench_dag.py")
    out = home / "mapping.json"
    env = {**os.environ, "CRONOFY_BENCH_DAG_KEYS": str(n)}
    with log_path.open("a") as log:
        done = subprocess.run(
            [
                sys.executable,
                str(HERE / "child.py"),
                "dag",
                "--reps",
                str(plan.mapping_runs),
                "--out",
                str(out),
            ],
            env=env,
            stdout=log,
            stderr=log,
            timeout=900,
        )
    if done.returncode != 0:
        tail = log_path.read_text().splitlines()[-30:]
        raise RuntimeError("the dag.test() child failed:\n" + "\n".join(tail))
    data = json.loads(out.read_text())
    by_kind: dict[str, list[dict[str, Any]]] = {"one_task": [], "mapped": []}
    for run in data["runs"]:
        by_kind["one_task" if run["dag_id"].endswith("one_task") else "mapped"].append(run)
    rows = []
    summary: dict[str, Any] = {}
    for kind, label in (("one_task", f"1 task, {n} keys"), ("mapped", f"{n} mapped task instances")):
        runs = by_kind[kind]
        seconds = median([r["seconds"] for r in runs])
        ok = all("success" in r["state"].lower() and r["statuses"] == {"202": n} for r in runs)
        summary[kind] = {
            "seconds": [r["seconds"] for r in runs],
            "median_seconds": seconds,
            "connections_opened": [r["connections_opened"] for r in runs],
            "requests": [r["requests"] for r in runs],
            "states": [r["state"] for r in runs],
            "all_cancelled": ok,
        }
        rows.append(
            [
                label,
                f"{seconds:.2f}",
                f"{seconds / n * 1000:.1f}",
                f"{median([r['connections_opened'] for r in runs]):.0f}",
                "yes" if ok else "NO",
            ]
        )
    ratio = summary["mapped"]["median_seconds"] / summary["one_task"]["median_seconds"]
    print(table(["shape", "wall s", "ms/key", "TCP conns", "all 202 + success"], rows))
    warmups = ", ".join(f"{w['seconds']:.1f} s" for w in data["warmups"])
    print(
        f"Mapped / one task wall time: {ratio:.1f}x. (airflow db migrate took {migrate_seconds:.1f} s, "
        f"the warm-up runs {warmups}; not counted.)"
    )
    goals.check(
        "mapping", "mapped / one task wall time", f"{ratio:.1f}", "> 1 (one task is cheaper)", ratio > 1
    )
    return {
        "keys": n,
        "timed_runs_each": plan.mapping_runs,
        "migrate_seconds": migrate_seconds,
        "warmups": data["warmups"],
        **summary,
        "ratio_mapped_to_one_task": ratio,
    }
