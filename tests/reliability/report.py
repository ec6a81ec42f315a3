"""Print the reliability figures as a Markdown table, for the README's "Reliability" section.

    .venv/bin/python -m tests.reliability.report [--keys 1000] [--seed 20240611]

Runs the same scenarios as tests/reliability/test_faults.py against the local emulator
(127.0.0.1 only; back-off sleeps are recorded, not slept) and prints what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
from typing import TYPE_CHECKING

# Airflow reads its configuration when first imported: set it up as tests/conftest.py does.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cronofy-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

if TYPE_CHECKING:
    from tests.reliability._support import BulkRun

COLUMNS = (
    "scenario",
    "keys",
    "faults injected (503/429/drop/delay)",
    "429 from rate limit",
    "requests sent",
    "retries spent",
    "most sends of one key",
    "cancelled",
    "not found",
    "failed (reported)",
    "failed but cancelled*",
    "lost",
)


def row(name: str, run: BulkRun) -> list[str]:
    f = run.fault_counts
    return [
        name,
        str(len(run.keys)),
        f"{run.injected} ({f['503']}/{f['429']}/{f['drop']}/{f['delay']})",
        str(f["rate_limited"]),
        str(run.control.requests_sent),
        str(run.control.retries_spent),
        f"{max(run.deletes_per_key.values())} (cap {run.max_retries + 1})",
        str(len(run.results["cancelled"])),
        str(len(run.results["not_found"])),
        str(len(run.failures)),
        str(len(run.failed_but_cancelled)),
        str(len(run.lost)),
    ]


def run_all(keys: int, seed: int) -> list[tuple[str, BulkRun]]:
    from tests.reliability._support import faulty_bulk_run, paced_bulk_run

    return [
        (
            f"faults, max_retries=2, unknown key -> 202 (seed {seed})",
            faulty_bulk_run(n=keys, seed=seed, max_retries=2, unknown_status=202),
        ),
        (
            f"faults, max_retries=2, unknown key -> 404 (seed {seed})",
            faulty_bulk_run(n=keys, seed=seed, max_retries=2, unknown_status=404),
        ),
        (
            f"faults, max_retries=5 (default) (seed {seed})",
            faulty_bulk_run(n=keys, seed=seed, max_retries=5, unknown_status=202),
        ),
        ("paced at the server's limits (100/s, 1000/min), no faults", paced_bulk_run(n=600)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args(argv)
    for name in ("airflow_provider_cronofy", "airflow.task", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    # The task logger prints (structlog on Airflow 3) and the emulator reports answers written to
    # connections the client had given up on: keep both out of the table.
    noise = io.StringIO()
    with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
        runs = run_all(args.keys, args.seed)
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(row(name, run)) + " |" for name, run in runs),
    ]
    from tests.reliability._support import CLIENT_TIMEOUT, RANDOM_FAULTS

    faults = RANDOM_FAULTS
    lines += [
        "",
        f"Faults per request: 503 {faults['p_503']:.0%}, 429 {faults['p_429']:.0%} (half with "
        f"Retry-After: {faults['retry_after_seconds']}), dropped connection {faults['p_drop']:.0%}, "
        f"answer delayed {faults['delay_seconds']} s past a {CLIENT_TIMEOUT} s client timeout "
        f"{faults['p_delay']:.0%}. Every key was pre-scheduled on the emulator.",
        "Lost = neither cancelled at Cronofy nor reported failed. *Reported failed although an "
        "attempt the client gave up on (timeout) did cancel it at Cronofy: re-running is harmless.",
    ]
    print("\n".join(lines))
    lost = sum(len(run.lost) for _, run in runs)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
