"""Benchmarks of airflow-provider-cronofy against its baselines, side by side, on the local emulator.

``make bench`` runs ``.venv/bin/python benchmarks/run.py``. Sections, one module each:

1. throughput   (bench_throughput.py) bulk cancellation: the operator vs a bare ``requests.Session``
                loop (the floor), ``HttpHook`` (apache-airflow-providers-http) and
                ``requests.delete`` per key
1b. tls         (bench_tls.py) the same over HTTPS (a throw-away self-signed certificate for
                127.0.0.1), where a new connection costs a TLS handshake
2. mapping      (bench_mapping.py) one task cancelling N keys vs N mapped task instances, each run
                with ``dag.test()``
3. pacing       (bench_pacing.py) the hook's pacing against an emulator enforcing 100/s and 1,000/min
4. import       (bench_import.py) what importing the operators module adds to parsing a DAG file
                (``-X importtime``)
5. memory       (bench_memory.py) peak RSS of one task cancelling 10,000 and 100,000 keys, above a
                baseline process
6. latency      (bench_latency.py) scheduled keys and integrated events with 0, 50, 150 and 300 ms
                per answer, and 100-200 ms drawn per request, at Cronofy's default limits, against
                the rate-limit ideal and the one-request-in-flight baseline
6b. held        (bench_held.py) 300 keys at 150 ms with 5 requests held 1.2 s on their way (between
                the pacer and the wire), against nothing held: 429s and the ideal time
7. faults       (bench_faults.py) 300 keys at 150 ms with ~18 % faults, against no faults
8. deferrable   (bench_deferrable.py) worker-held seconds against wall time across two minute
                windows, deferrable and not (not with ``--quick``: about 5 minutes)

Every server is the emulator (``airflow_provider_cronofy.testing``) on 127.0.0.1, in a process of
its own so that its CPU use is not charged to the client. Tables show medians over ``--runs``
repetitions; ``--quick`` is a smoke run (< 60 s); ``--json PATH`` writes every figure as JSON.
Name sections to run only those: ``run.py --quick pacing``, ``--section pacing`` or ``--only
pacing,memory``. What the sections share (plan, goals, tables, environment) is in harness.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Sibling modules, not a package. noqa: E402 - after the sys.path line above.
import bench_deferrable  # noqa: E402
import bench_faults  # noqa: E402
import bench_held  # noqa: E402
import bench_import  # noqa: E402
import bench_latency  # noqa: E402
import bench_mapping  # noqa: E402
import bench_memory  # noqa: E402
import bench_pacing  # noqa: E402
import bench_throughput  # noqa: E402
import bench_tls  # noqa: E402
from harness import (  # noqa: E402
    Context,
    Goals,
    SetUp,
    heading,
    machine_info,
    make_plan,
    prepare_environment,
    print_machine,
)

MODULES: tuple[ModuleType, ...] = (
    bench_throughput,
    bench_tls,
    bench_mapping,
    bench_pacing,
    bench_import,
    bench_memory,
    bench_latency,
    bench_held,
    bench_faults,
    bench_deferrable,
)
"""Every section, in the order they run."""
SECTIONS = tuple(module.NAME for module in MODULES)


class OutOfTime(BaseException):
    """Raised by the --time-limit alarm; a BaseException, like Airflow's AirflowTaskTimeout, so
    that the operator's per-item error handling (``except Exception``) does not swallow it."""


def milliseconds(text: str) -> tuple[float, ...]:
    """``"0,150"`` as seconds ``(0.0, 0.15)``; ``"none"`` as ``()``."""
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(float(part) / 1000 for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected milliseconds like 0,150 or 'none', got {text!r}"
        ) from None


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """The options, and the sections to run (in their usual order)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "sections",
        nargs="*",
        metavar="SECTION",
        help=f"sections to run (default all: {' '.join(SECTIONS)})",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (< 60 s), smaller sizes")
    parser.add_argument(
        "--runs",
        type=int,
        help="repetitions of the floor and provider runs (default 5; 1 with --quick); the generic "
        "routes and pacing get at most 3, the import measure at least 5 (2 with --quick)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    parser.add_argument(
        "--section", action="append", default=[], metavar="SECTION", help="run this section (repeatable)"
    )
    parser.add_argument("--only", metavar="SECTIONS", help="comma-separated sections to run")
    parser.add_argument(
        "--baseline-latencies",
        type=milliseconds,
        metavar="MS,...",
        help="latencies (ms) at which the latency and fault sections also run the one-request-in-flight "
        "baseline (default 150,300, and the drawn 100-200 ms with any; none with --quick); 'none' for none",
    )
    parser.add_argument("--mapping-keys", type=int, help="keys of the mapping section (default 200)")
    parser.add_argument("--mapping-runs", type=int, help="timed dag.test() runs of each DAG (default 1)")
    parser.add_argument(
        "--time-limit", type=int, default=1800, metavar="S", help="stop the whole run after S seconds"
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    named = [*args.sections, *args.section, *(s.strip() for s in (args.only or "").split(",") if s.strip())]
    unknown = set(named) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args, tuple(s for s in SECTIONS if s in named) if named else SECTIONS


def main(argv: Sequence[str] | None = None) -> int:
    args, sections = parse_args(argv)
    modules = [module for module in MODULES if module.NAME in sections]
    plan = make_plan(args)

    def out_of_time(signum: int, frame: object) -> None:
        raise OutOfTime(f"the benchmarks ran past --time-limit ({args.time_limit} s)")

    # Every loop is bounded in count; this bounds the whole run in time too (say, a server hang).
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="cronofy-bench-"))
    prepare_environment(home)
    ctx = Context(plan, Goals(), home)
    report: dict[str, Any] = {"mode": "quick" if args.quick else "full", "plan": plan.__dict__}
    try:
        jobs = [module.setup_job(home) for module in modules if hasattr(module, "setup_job")]
        pending = SetUp(jobs, home)
        info = machine_info()
        report["machine"] = info
        print_machine(info)
        ctx.setup_seconds = report["setup_seconds"] = pending.wait()
        if ctx.setup_seconds:
            print(
                "Set-up (untimed, before any measurement): "
                + ", ".join(f"{k} {v:.1f} s" for k, v in ctx.setup_seconds.items())
            )
        report["sections"] = ctx.results
        for module in modules:
            section_started = time.perf_counter()
            ctx.results[module.NAME] = module.run(ctx)
            ctx.results[module.NAME]["section_seconds"] = time.perf_counter() - section_started
    finally:
        shutil.rmtree(home, ignore_errors=True)
    signal.alarm(0)
    total = time.perf_counter() - started
    report["goals"] = ctx.goals.items
    report["total_seconds"] = total
    heading("Goals")
    print(ctx.goals.summary())
    print(f"\nTotal time: {total:.0f} s ({report['mode']} run).")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"Results written to {args.json}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
