"""What every benchmark section shares: the plan (how big each section is), the goals and their
verdicts, tables and headings, medians, the Airflow environment, the machine description and the
untimed set-up jobs. The emulator's process lives in ``emulator_process.py``.

A section is a module ``bench_<name>.py`` with ``NAME`` (its name on the command line), ``run(ctx)``
(measure, print, check goals; return its figures for the JSON) and, optionally, ``setup_job(home)``
(a command to run untimed before any measurement, beside the others).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
ENDPOINT = "/v1/meeting_agents"


@dataclass
class Plan:
    """How big each section is: the full run, or ``--quick``."""

    runs: int
    generic_runs: int
    throughput_keys: int
    tls_keys: int
    warmup_keys: int
    mapping_keys: int
    mapping_runs: int
    pacing_keys: int
    pacing_runs: int
    import_runs: int
    memory_keys: tuple[int, ...]
    latencies: tuple[float, ...]
    """Seconds the emulator adds to every answer, one latency run each."""
    latency_keys: int
    latency_events: int
    latency_runs: int
    baseline_latencies: tuple[float, ...]
    """Latencies at which the one-request-in-flight baseline also runs (slow: 45 s and more)."""
    fault_keys: int
    fault_runs: int
    deferrable_keys: int
    """Keys of the deferrable section (0: skipped, as in ``--quick``: it needs two minute windows)."""


def make_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    runs = args.runs or (1 if quick else 5)
    # The floor and the provider are cheap to repeat and their ratio has the tightest goal: they
    # get the most runs; the slower generic routes and the pacing and latency runs (5 s each) fewer.
    few = runs if quick else min(runs, 3)
    plan = Plan(
        runs=runs,
        generic_runs=few,
        throughput_keys=500 if quick else 2_000,
        tls_keys=250 if quick else 1_000,
        warmup_keys=20 if quick else 100,
        mapping_keys=20 if quick else 200,
        mapping_runs=1,
        pacing_keys=300 if quick else 600,
        pacing_runs=few,
        import_runs=max(runs, 2 if quick else 5),
        memory_keys=(1_000, 10_000) if quick else (10_000, 100_000),
        latencies=(0.15,) if quick else (0.0, 0.05, 0.15, 0.3),
        latency_keys=300,
        latency_events=600,
        latency_runs=few,
        baseline_latencies=() if quick else (0.15, 0.3),
        fault_keys=300,
        fault_runs=few,
        deferrable_keys=0 if quick else 1_200,
    )
    if args.mapping_keys:
        plan.mapping_keys = args.mapping_keys
    if args.mapping_runs:
        plan.mapping_runs = args.mapping_runs
    if args.baseline_latencies is not None:
        plan.baseline_latencies = args.baseline_latencies
    return plan


# ---------------------------------------------------------------------------- goals and output


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def verdict(met: bool, expectation: bool = False) -> str:
    if expectation:
        return "confirmed" if met else "NOT confirmed"
    return "met" if met else "NOT met"


class Goals:
    """Every goal checked, for the summary and the JSON."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def check(
        self, section: str, what: str, value: str, goal: str, met: bool, *, expectation: bool = False
    ) -> str:
        """Record a goal (or, with ``expectation``, a claim about a baseline); return the verdict."""
        item = {"section": section, "what": what, "value": value, "goal": goal, "met": met}
        self.items.append({**item, "kind": "expectation" if expectation else "goal"})
        return verdict(met, expectation)

    def summary(self) -> str:
        """The table of every goal and its verdict."""
        return table(
            ["section", "measure", "value", "goal", "verdict"],
            [
                [
                    g["section"],
                    g["what"],
                    g["value"],
                    g["goal"],
                    verdict(g["met"], g["kind"] == "expectation"),
                ]
                for g in self.items
            ],
        )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Context:
    """What a section's ``run`` is given."""

    plan: Plan
    goals: Goals
    home: Path
    """A throw-away directory: AIRFLOW_HOME, DAGs folder, logs and children's output."""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The figures of the sections run so far, by name."""
    setup_seconds: dict[str, float] = field(default_factory=dict)
    """How long each untimed set-up job took, by its name."""


# ---------------------------------------------------------------------------- environment


def prepare_environment(home: Path) -> None:
    """Airflow reads its configuration when first imported: set it before any import."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    # One "Done: ..." line per run is all the operator logs at INFO; keep the tables readable.
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ.pop("AIRFLOW_CONN_CRONOFY_DEFAULT", None)
    (home / "dags").mkdir(parents=True, exist_ok=True)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import airflow
    import requests

    try:
        from importlib.metadata import version

        http_provider = version("apache-airflow-providers-http")
    except Exception:
        http_provider = "not installed"
    from airflow_provider_cronofy import __version__

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "airflow": airflow.__version__,
        "requests": requests.__version__,
        "apache_airflow_providers_http": http_provider,
        "airflow_provider_cronofy": __version__,
        "load_average_at_start": list(os.getloadavg()),
    }


def print_machine(info: dict[str, Any]) -> None:
    heading("Machine")
    print(f"CPU: {info['cpu']}; cores: {info['cores']} (usable {info['usable_cores']})")
    print(f"Python {info['python']} on {info['platform']}")
    print(
        f"Airflow {info['airflow']}; requests {info['requests']}; apache-airflow-providers-http "
        f"{info['apache_airflow_providers_http']}; airflow-provider-cronofy {info['airflow_provider_cronofy']}"
    )
    load = ", ".join(f"{x:.2f}" for x in info["load_average_at_start"])
    print(f"Load average at start: {load} (other work on the machine adds noise to every figure)")


@dataclass
class SetUpJob:
    """An untimed command a section needs done before any measurement."""

    name: str
    command: list[str]
    env: dict[str, str]


class SetUp:
    """Untimed set-up, its jobs side by side (and beside the machine probe)."""

    def __init__(self, jobs: Sequence[SetUpJob], home: Path) -> None:
        self.home = home
        self.jobs: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
        self.log = (home / "setup.log").open("w")
        for job in jobs:
            proc = subprocess.Popen(job.command, env=job.env, cwd=home, stdout=self.log, stderr=self.log)
            self.jobs[job.name] = (proc, time.perf_counter())

    def wait(self) -> dict[str, float]:
        """Wait for every job; return each one's seconds."""
        seconds = {}
        try:
            for name, (proc, started) in self.jobs.items():
                if proc.wait(timeout=600) != 0:
                    raise RuntimeError(f"set-up step '{name}' failed; see {self.home / 'setup.log'}")
                seconds[name] = time.perf_counter() - started
        finally:
            self.log.close()
        return seconds
