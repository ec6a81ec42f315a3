"""Section 4, import: what importing the operators module adds to parsing a DAG file, measured
with ``python -X importtime`` in fresh processes, from compiled bytecode.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import Context, SetUpJob, heading, median, table

NAME = "import"

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")
PROVIDER_MODULE = "airflow_provider_cronofy.operators.meeting_agents"


def airflow_module() -> str:
    """What a DAG file imports from Airflow: the Task SDK on Airflow 3, ``airflow`` on 2.11.

    Call only once the environment is prepared: looking for ``airflow.sdk`` imports ``airflow``.
    """
    import importlib.util

    return "airflow.sdk" if importlib.util.find_spec("airflow.sdk") else "airflow"


def baseline_code() -> str:
    """What any DAG file pays before the provider: the Task SDK on Airflow 3; on 2.11, the DAG and
    BaseOperator classes (what ``import airflow.sdk`` brings on 3)."""
    if airflow_module() == "airflow.sdk":
        return "import airflow.sdk"
    return "from airflow import DAG; from airflow.models import BaseOperator"


def provider_code() -> str:
    return f"{baseline_code()}; import {PROVIDER_MODULE}"


def parse_importtime(stderr: str) -> tuple[dict[str, int], dict[str, int]]:
    """Return ``{module: self us}`` and ``{module: cumulative us}`` of the top-level imports."""
    self_us: dict[str, int] = {}
    top_cumulative: dict[str, int] = {}
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        own, cumulative, indent, name = int(match[1]), int(match[2]), match[3], match[4]
        self_us[name] = self_us.get(name, 0) + own
        if len(indent) == 1:
            top_cumulative[name] = cumulative
    return self_us, top_cumulative


def importtime_env(home: Path) -> dict[str, str]:
    """Time imports from compiled bytecode, as an installed package runs: a private bytecode cache,
    filled by the set-up (this machine may set PYTHONDONTWRITEBYTECODE, with which an editable
    install compiles the provider's sources on every import)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(home / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def setup_job(home: Path) -> SetUpJob:
    """Fill the bytecode cache that the timed imports read from."""
    return SetUpJob("bytecode cache", [sys.executable, "-c", provider_code()], importtime_env(home))


def run(ctx: Context) -> dict[str, Any]:
    goals, home = ctx.goals, ctx.home
    runs = ctx.plan.import_runs
    heading(f"4. DAG-parse cost: python -X importtime, {runs} fresh process(es) each, bytecode cached")
    env = importtime_env(home)

    def importtime(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        return done.stderr

    added_self: list[int] = []
    top: list[int] = []
    per_module: dict[str, list[int]] = {}
    baseline_totals: list[int] = []
    for _ in range(runs):
        base_self, base_top = parse_importtime(importtime(baseline_code()))
        prov_self, prov_top = parse_importtime(importtime(provider_code()))
        new = {name: us for name, us in prov_self.items() if name not in base_self}
        added_self.append(sum(new.values()))
        top.append(prov_top.get(PROVIDER_MODULE, 0))
        baseline_totals.append(sum(us for name, us in base_top.items() if name.split(".")[0] == "airflow"))
        for name, us in new.items():
            per_module.setdefault(name, []).append(us)
    added_ms = median(added_self) / 1000
    top_ms = median(top) / 1000
    by_package: dict[str, float] = {}
    for name, values in per_module.items():
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + median(values) / 1000
    rows = [
        [f"{baseline_code()} (the baseline, cumulative)", f"{median(baseline_totals) / 1000:.1f}"],
        ["added: self time of modules the baseline does not import", f"{added_ms:.1f}"],
        [f"added: cumulative time of 'import {PROVIDER_MODULE}'", f"{top_ms:.1f}"],
    ]
    print(table(["median of runs", "ms"], rows))
    print(
        f"Added by the provider: {added_ms:.1f} ms (goal < 30 ms): "
        + goals.check("import", "added import time (ms)", f"{added_ms:.1f}", "< 30", added_ms < 30)
    )
    packages = sorted(by_package.items(), key=lambda kv: -kv[1])
    print("\nAdded self time by top-level package:")
    print(
        table(
            ["package", "ms", "share"], [[p, f"{ms:.1f}", f"{ms / added_ms:.0%}"] for p, ms in packages[:8]]
        )
    )
    modules = sorted(((median(v) / 1000, name) for name, v in per_module.items()), reverse=True)
    print("\nTop modules by self time (of those the baseline does not import):")
    print(table(["module", "ms"], [[name, f"{ms:.2f}"] for ms, name in modules[:12]]))
    own = sorted(
        (
            (median(v) / 1000, name)
            for name, v in per_module.items()
            if name.startswith("airflow_provider_cronofy")
        ),
        reverse=True,
    )
    print(f"\nThe provider's own modules: {sum(ms for ms, _ in own):.1f} ms in all")
    print(table(["module", "ms"], [[name, f"{ms:.2f}"] for ms, name in own]))
    return {
        "runs": runs,
        "baseline_ms": median(baseline_totals) / 1000,
        "added_self_ms": added_ms,
        "added_self_ms_each_run": [us / 1000 for us in added_self],
        "provider_module_cumulative_ms": top_ms,
        "by_package_ms": dict(packages),
        "top_modules_ms": {name: ms for ms, name in modules[:25]},
        "provider_modules_ms": {name: ms for ms, name in own},
    }
