"""Benchmarks of airflow-provider-cronofy against its baselines, side by side, on the local emulator.

``make bench`` runs ``.venv/bin/python benchmarks/run.py``. Sections:

1. throughput   bulk cancellation: the operator vs a bare ``requests.Session`` loop (the floor),
                ``HttpHook`` (apache-airflow-providers-http) and ``requests.delete`` per key
1b. tls         the same over HTTPS (a throw-away self-signed certificate for 127.0.0.1), where
                a new connection costs a TLS handshake
2. mapping      one task cancelling N keys vs N mapped task instances, each run with ``dag.test()``
3. pacing       the hook's pacing against an emulator enforcing 100/s and 1,000/min
4. import       what importing the operators module adds to parsing a DAG file (``-X importtime``)
5. memory       peak RSS of one task cancelling 10,000 and 100,000 keys, above a baseline process

Every server is the emulator (``airflow_provider_cronofy.testing``) on 127.0.0.1, in a process of
its own so that its CPU use is not charged to the client. Tables show medians over ``--runs``
repetitions; ``--quick`` is a smoke run (< 60 s); ``--json PATH`` writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from emulator_process import EmulatorProcess  # noqa: E402 - a sibling module, not a package

SECTIONS = ("throughput", "tls", "mapping", "pacing", "import", "memory")
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


def make_plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        runs = args.runs or 1
        plan = Plan(runs, runs, 500, 250, 20, 20, 1, 300, runs, max(runs, 2), (1_000, 10_000))
    else:
        # The floor and the provider are cheap to repeat and their ratio has the tightest goal:
        # they get the most runs; the slower generic routes and the pacing runs (5 s each) fewer.
        runs = args.runs or 5
        few = min(runs, 3)
        plan = Plan(runs, few, 2_000, 1_000, 100, 200, 1, 600, few, max(runs, 5), (10_000, 100_000))
    if args.mapping_keys:
        plan.mapping_keys = args.mapping_keys
    if args.mapping_runs:
        plan.mapping_runs = args.mapping_runs
    return plan


# ---------------------------------------------------------------------------- output helpers


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


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


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


# ---------------------------------------------------------------------------- 1. throughput


@dataclass
class Tls:
    """A throw-away self-signed certificate for 127.0.0.1 and its key (PEM files)."""

    cert: str
    key: str
    description: str


def make_tls_files(directory: Path) -> Tls:
    """Write a self-signed RSA-2048 certificate for 127.0.0.1 and its key to ``directory``.

    RSA 2048, a common key of public HTTPS servers, so the emulator's side of a handshake costs
    what a usual one does.
    """
    from airflow_provider_cronofy.testing.certificates import make_self_signed_certificate

    files = make_self_signed_certificate(directory, key_type="rsa")
    return Tls(files.cert, files.key, "RSA-2048 self-signed certificate")


def bench_throughput(plan: Plan, goals: Goals) -> dict[str, Any]:
    n = plan.throughput_keys
    heading(f"1. Bulk cancellation throughput: {n:,} scheduling keys per run (each after a warm-up run)")
    return measure_throughput(plan, goals, "throughput", n)


def bench_tls(plan: Plan, goals: Goals, home: Path, plain: dict[str, Any] | None) -> dict[str, Any]:
    n = plan.tls_keys
    tls = make_tls_files(home)
    heading(
        f"1b. The same over TLS on loopback: {n:,} scheduling keys per run (each after a warm-up run), "
        f"HTTPS with a throw-away {tls.description} for 127.0.0.1"
    )
    # requests lets REQUESTS_CA_BUNDLE override a session's verify, and the provider's hook reads
    # it (once, when it builds its session): every variant trusts the throw-away certificate
    # through it, and the others are also given it explicitly.
    saved = {name: os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    os.environ["REQUESTS_CA_BUNDLE"] = tls.cert
    os.environ.pop("CURL_CA_BUNDLE", None)
    try:
        results = measure_throughput(plan, goals, "tls", n, tls=tls)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    v = results["variants"]
    # What a request costs above the floor's (a keep-alive request), in ms: for requests.delete,
    # mostly what a new connection costs.
    extra = {name: (v[name]["median_seconds"] - v["floor"]["median_seconds"]) / n * 1000 for name in v}
    results["ms_per_request_above_floor"] = extra
    line = (
        f"Per request above the floor over TLS: provider {extra['provider']:+.2f} ms, "
        f"HttpHook {extra['http_hook']:+.2f} ms, requests.delete {extra['requests_delete']:+.2f} ms"
    )
    if plain is not None:
        pv, pn = plain["variants"], plain["keys"]
        plain_extra = {
            name: (pv[name]["median_seconds"] - pv["floor"]["median_seconds"]) / pn * 1000 for name in pv
        }
        results["plain_ms_per_request_above_floor"] = plain_extra
        line += (
            f" (plain HTTP, section 1: provider {plain_extra['provider']:+.2f} ms, HttpHook "
            f"{plain_extra['http_hook']:+.2f} ms, requests.delete {plain_extra['requests_delete']:+.2f} ms)"
        )
    print(
        line + ". On loopback a new connection costs only CPU: the TLS handshake's (client and "
        "emulator) and the TCP set-up; over a real network each also waits 2 or more round trips."
    )
    # HttpHook keeps one connection per hook (its keep-alive adapter): the route that pays a
    # handshake per key is requests.delete.
    new_conn_x = v["requests_delete"]["ratio_to_floor"] / v["provider"]["ratio_to_floor"]
    print(
        f"A new connection per key (requests.delete) vs the provider's one: {new_conn_x:.2f}x the time "
        "(expected: several times slower) - "
        + goals.check(
            "tls",
            "requests.delete (new TLS connection per key) time / provider's",
            f"{new_conn_x:.2f}",
            ">= 2 (several times)",
            new_conn_x >= 2,
            expectation=True,
        )
        + "."
    )
    return {"certificate": tls.description, **results}


def measure_throughput(
    plan: Plan, goals: Goals, section: str, n: int, tls: Tls | None = None
) -> dict[str, Any]:
    """Section 1 (plain HTTP) or 1b (``tls``): time the four variants, print the table, check the goals."""
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_cronofy import __version__
    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

    emulator = EmulatorProcess(
        rate_limit_per_second=None,
        rate_limit_per_minute=None,
        certfile=tls.cert if tls else None,
        keyfile=tls.key if tls else None,
    )
    # True (the default: REQUESTS_CA_BUNDLE or certifi) over plain HTTP, where it is not used.
    verify: bool | str = tls.cert if tls else True
    try:
        port = int(emulator.url.rsplit(":", 1)[1])
        os.environ["AIRFLOW_CONN_CRONOFY_DEFAULT"] = json.dumps(
            emulator.airflow_connection(rate_limit_per_second=0, rate_limit_per_minute=0)
        )
        http_conn: dict[str, Any] = {"conn_type": "http", "host": "http://127.0.0.1", "port": port}
        if tls:
            http_conn.update(host="https://127.0.0.1", extra={"verify": tls.cert})
        os.environ["AIRFLOW_CONN_HTTP_CRONOFY"] = json.dumps(http_conn)
        url = emulator.url + ENDPOINT
        auth = f"Bearer {emulator.api_key}"
        # The provider's own User-Agent and Accept, so the floor sends the very same request.
        user_agent = f"airflow-provider-cronofy/{__version__} {requests.utils.default_user_agent()}"
        timeout = (10.0, 30.0)

        def body(key: str) -> bytes:
            return json.dumps({"scheduling_key": key}).encode("utf-8")

        def floor(keys: list[str]) -> int:
            ok = 0
            with requests.Session() as session:
                session.verify = verify
                session.headers["User-Agent"] = user_agent
                session.headers["Accept"] = "application/json"
                headers = {"Content-Type": JSON_CONTENT_TYPE, "Authorization": auth}
                for key in keys:
                    response = session.delete(url, data=body(key), headers=headers, timeout=timeout)
                    ok += response.status_code == 202
            return ok

        def provider(keys: list[str]) -> int:
            operator = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys)
            return len(operator.execute({})["cancelled"])

        def http_hook(keys: list[str]) -> int:
            hook = HttpHook(method="DELETE", http_conn_id="http_cronofy")
            ok = 0
            for key in keys:
                response = hook.run(ENDPOINT, json={"scheduling_key": key}, headers={"Authorization": auth})
                ok += response.status_code == 202
            return ok

        def per_call(keys: list[str]) -> int:
            ok = 0
            headers = {
                "Content-Type": JSON_CONTENT_TYPE,
                "Authorization": auth,
                "User-Agent": user_agent,
                "Accept": "application/json",
            }
            for key in keys:
                response = requests.delete(
                    url, data=body(key), headers=headers, timeout=timeout, verify=verify
                )
                ok += response.status_code == 202
            return ok

        variants: list[tuple[str, str, Callable[[list[str]], int]]] = [
            ("floor", "bare requests.Session loop (keep-alive)", floor),
            ("provider", "CancelScheduledMeetingAgentOperator.execute", provider),
            ("http_hook", "HttpHook(method='DELETE').run per key", http_hook),
            ("requests_delete", "requests.delete per key (no session)", per_call),
        ]

        def measure(name: str, fn: Callable[[list[str]], int], keys: list[str]) -> dict[str, Any]:
            emulator.schedule(keys)
            gc.collect()
            before = emulator.stats()
            started, cpu_started = time.perf_counter(), time.process_time()
            ok = fn(keys)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            after = emulator.stats()
            emulator.reset_requests()  # the emulator keeps every request; keep it small and steady
            return {
                "seconds": seconds,
                "client_cpu_seconds": cpu,
                "ok": ok,
                "connections_opened": after["connections_opened"] - before["connections_opened"],
                "tls_handshake_failures": after["tls_handshake_failures"] - before["tls_handshake_failures"],
            }

        for name, _, fn in variants:  # warm-up: imports, connection look-ups, first sockets
            measure(name, fn, [f"warmup-{section}-{name}-{i:06d}" for i in range(plan.warmup_keys)])
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in variants}
        for rep in range(plan.runs):
            active = variants if rep < plan.generic_runs else variants[:2]
            # Rotate the order so that no variant always runs first (or right after another).
            order = active[rep % len(active) :] + active[: rep % len(active)]
            for name, _, fn in order:
                keys = [f"{section}-{name}-{rep}-{i:06d}" for i in range(n)]
                samples[name].append(measure(name, fn, keys))
    finally:
        emulator.close()
        os.environ.pop("AIRFLOW_CONN_HTTP_CRONOFY", None)
        os.environ.pop("AIRFLOW_CONN_CRONOFY_DEFAULT", None)

    floor_times = [s["seconds"] for s in samples["floor"]]
    floor_cpu = [s["client_cpu_seconds"] for s in samples["floor"]]
    results: dict[str, Any] = {"keys": n, "variants": {}}
    rows = []
    for name, label, _ in variants:
        times = [s["seconds"] for s in samples[name]]
        cpu = [s["client_cpu_seconds"] for s in samples[name]]
        # Paired ratios: each run against the floor of the same repetition, then the median.
        ratios = [t / f for t, f in zip(times, floor_times[: len(times)], strict=True)]
        ratio = median(ratios)
        cpu_ratio = median([c / f for c, f in zip(cpu, floor_cpu[: len(cpu)], strict=True)])
        conns = median([s["connections_opened"] for s in samples[name]])
        failed = sum(n - s["ok"] for s in samples[name])
        handshake_failures = sum(s["tls_handshake_failures"] for s in samples[name])
        results["variants"][name] = {
            "label": label,
            "runs": len(times),
            "seconds": times,
            "ratios_to_floor": ratios,
            "median_seconds": median(times),
            "median_requests_per_second": n / median(times),
            "ratio_to_floor": ratio,
            "client_cpu_seconds": cpu,
            "median_client_cpu_us_per_request": median(cpu) / n * 1e6,
            "client_cpu_ratio_to_floor": cpu_ratio,
            "connections_opened_per_run": conns,
            "failed_requests": failed,
        }
        if tls:
            results["variants"][name]["tls_handshake_failures"] = handshake_failures
        rows.append(
            [
                label,
                len(times),
                f"{median(times):.2f}",
                f"{n / median(times):,.0f}",
                f"{ratio:.2f}x",
                f"{median(cpu) / n * 1e6:,.0f}",
                f"{cpu_ratio:.2f}x",
                f"{conns:,.0f}",
                failed,
            ]
        )
    headers = [
        "variant",
        "runs",
        "median s",
        "req/s",
        "time/floor",
        "client CPU us/req",
        "CPU/floor",
        "TCP conns/run",
    ]
    print(table([*headers, "failed"], rows))
    v = results["variants"]
    ratio = v["provider"]["ratio_to_floor"]
    conns = v["provider"]["connections_opened_per_run"]
    print(
        "x/floor: median over runs of (x / the floor's x in the same run). Client CPU: this process "
        "only (the emulator runs in another).\n"
        f"Provider time / floor {ratio:.2f} (runs: {', '.join(f'{r:.2f}' for r in v['provider']['ratios_to_floor'])}; "
        "goal <= 1.10): "
        + goals.check(section, "provider time / floor", f"{ratio:.2f}", "<= 1.10", ratio <= 1.10)
        + f"; TCP connections per run {conns:.0f} (goal 1): "
        + goals.check(section, "provider TCP connections per run", f"{conns:.0f}", "1", conns == 1)
        + "."
    )
    hook_x = v["http_hook"]["ratio_to_floor"] / ratio
    delete_x = v["requests_delete"]["ratio_to_floor"] / ratio
    print(
        f"Generic routes' time vs the provider's: HttpHook {hook_x:.2f}x, requests.delete {delete_x:.2f}x "
        "(expected: several times slower) - "
        + goals.check(
            section,
            "generic routes' time / provider's",
            f"{min(hook_x, delete_x):.2f}",
            ">= 2 (several times)",
            min(hook_x, delete_x) >= 2,
            expectation=True,
        )
        + ". Client CPU per request vs the provider's: "
        f"HttpHook {v['http_hook']['client_cpu_ratio_to_floor'] / v['provider']['client_cpu_ratio_to_floor']:.2f}x, "
        f"requests.delete {v['requests_delete']['client_cpu_ratio_to_floor'] / v['provider']['client_cpu_ratio_to_floor']:.2f}x."
    )
    if any(x["failed_requests"] for x in v.values()):
        print("WARNING: some requests were not answered 202; see 'failed'.")
    if any(x.get("tls_handshake_failures") for x in v.values()):
        print("WARNING: some TLS handshakes failed; see tls_handshake_failures in the JSON.")
    return results


# ---------------------------------------------------------------------------- 2. mapping


def bench_mapping(plan: Plan, goals: Goals, home: Path, migrate_seconds: float) -> dict[str, Any]:
    n = plan.mapping_keys
    heading(
        f"2. One task vs dynamic task mapping: {n} keys, dag.test() each, "
        f"{plan.mapping_runs} timed run(s) of each (after a warm-up run of each)"
    )
    log_path = home / "mapping.log"
    shutil.copy(HERE / "bench_dag.py", home / "dags" / "cronofy_bench_dag.py")
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


# ---------------------------------------------------------------------------- 3. pacing


def bench_pacing(plan: Plan, goals: Goals) -> dict[str, Any]:
    from airflow_provider_cronofy.hooks import pacing
    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

    n, per_second, per_minute = plan.pacing_keys, 100, 1000
    heading(
        f"3. Pacing: {n} keys, emulator enforcing {per_second}/s and {per_minute:,}/min, hook pacing to "
        f"the same limits, {plan.pacing_runs} run(s)"
    )
    samples = []
    for rep in range(plan.pacing_runs):
        # A fresh emulator (and so a fresh base URL and process-wide pacer) per run: the minute
        # window of a previous run would otherwise still be full.
        with EmulatorProcess(rate_limit_per_second=per_second, rate_limit_per_minute=per_minute) as emulator:
            conn_id = f"cronofy_paced_{rep}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                emulator.airflow_connection(
                    rate_limit_per_second=per_second, rate_limit_per_minute=per_minute
                )
            )
            keys = [f"paced-{rep}-{i:06d}" for i in range(n)]
            emulator.schedule(keys)
            operator = CancelScheduledMeetingAgentOperator(
                task_id="cancel", scheduling_key=keys, cronofy_conn_id=conn_id
            )
            started = time.perf_counter()
            result = operator.execute({})
            seconds = time.perf_counter() - started
            stats = emulator.stats(statuses=True)
            times = sorted(t for t, status in emulator.times() if status == 202)
            os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        # Any sliding-window limit lets the first `per_second` requests through at once; the rate
        # the pacing sustains is that of the requests after them, at the server's clock.
        sustained = (len(times) - per_second) / (times[-1] - times[per_second - 1])
        ideal = (-(-n // per_second) - 1) * 1.0  # the least span a perfect client needs
        samples.append(
            {
                "seconds": seconds,
                "server_span_seconds": times[-1] - times[0],
                "sustained_rate": sustained,
                "ideal_span_seconds": ideal,
                "rate_limited_429": stats["fault_counts"]["rate_limited"],
                "requests_received": stats["requests"],
                "cancelled": len(result["cancelled"]),
            }
        )
    rate = median([s["sustained_rate"] for s in samples])
    span = median([s["server_span_seconds"] for s in samples])
    wall = median([s["seconds"] for s in samples])
    too_many = max(s["rate_limited_429"] for s in samples)
    extra = max(s["requests_received"] - n for s in samples)
    ideal = samples[0]["ideal_span_seconds"]
    rows = [
        [
            "sustained rate after the first second's burst",
            f"{rate:.1f}/s",
            f"{rate / per_second:.3f} of the limit",
        ],
        ["server-side span, first to last request", f"{span:.2f} s", f"least possible {ideal:.1f} s"],
        ["client wall time", f"{wall:.2f} s", f"{n / wall:.1f} req/s overall"],
        ["429 answers (emulator's rate limiter)", str(too_many), "worst run"],
        ["requests beyond one per key (retries)", str(extra), "worst run"],
    ]
    print(table(["measure (median of runs)", "value", "note"], rows))
    print(
        f"Achieved rate / limit {rate / per_second:.3f} (goal >= 0.95): "
        + goals.check(
            "pacing",
            "sustained rate / limit",
            f"{rate / per_second:.3f}",
            ">= 0.95",
            rate / per_second >= 0.95,
        )
        + f"; 429s {too_many} (goal 0): "
        + goals.check("pacing", "429 answers", str(too_many), "0", too_many == 0)
        + "."
    )
    margin = getattr(pacing, "WINDOW_MARGIN", None)
    if margin:
        print(f"The hook pads each window by {margin:g}x, so {1 / margin:.3f} of the limit is its ceiling.")
    return {
        "keys": n,
        "limit_per_second": per_second,
        "limit_per_minute": per_minute,
        "runs": samples,
        "median_sustained_rate": rate,
        "rate_over_limit": rate / per_second,
        "median_server_span_seconds": span,
        "median_wall_seconds": wall,
        "max_429": too_many,
    }


# ---------------------------------------------------------------------------- 4. import cost

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


class SetUp:
    """Untimed set-up, its two jobs side by side (and beside the machine probe): migrate the
    metadata DB for dag.test(), and fill the bytecode cache of the import measurements."""

    def __init__(self, sections: Sequence[str], home: Path) -> None:
        self.home = home
        self.jobs: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
        self.log = (home / "setup.log").open("w")
        if "mapping" in sections:
            airflow_cli = Path(sys.executable).with_name("airflow")
            self._start("airflow db migrate", [str(airflow_cli), "db", "migrate"], dict(os.environ))
        if "import" in sections:
            self._start("bytecode cache", [sys.executable, "-c", provider_code()], importtime_env(home))

    def _start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(command, env=env, cwd=self.home, stdout=self.log, stderr=self.log)
        self.jobs[name] = (proc, time.perf_counter())

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


def bench_import(plan: Plan, goals: Goals, home: Path) -> dict[str, Any]:
    runs = plan.import_runs
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


# ---------------------------------------------------------------------------- 5. memory


def bench_memory(plan: Plan, goals: Goals, home: Path) -> dict[str, Any]:
    sizes = plan.memory_keys
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


# ---------------------------------------------------------------------------- main


class OutOfTime(BaseException):
    """Raised by the --time-limit alarm; a BaseException, like Airflow's AirflowTaskTimeout, so
    that the operator's per-item error handling (``except Exception``) does not swallow it."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (< 60 s), smaller sizes")
    parser.add_argument(
        "--runs",
        type=int,
        help="repetitions of the floor and provider runs (default 5; 1 with --quick); the generic "
        "routes and pacing get at most 3, the import measure at least 5 (2 with --quick)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument("--mapping-keys", type=int, help="keys of the mapping section (default 200)")
    parser.add_argument("--mapping-runs", type=int, help="timed dag.test() runs of each DAG (default 1)")
    parser.add_argument(
        "--time-limit", type=int, default=1200, metavar="S", help="stop the whole run after S seconds"
    )
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    sections = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    plan = make_plan(args)

    def out_of_time(signum: int, frame: object) -> None:
        raise OutOfTime(f"the benchmarks ran past --time-limit ({args.time_limit} s)")

    # Every loop is bounded in count; this bounds the whole run in time too (say, a server hang).
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)
    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="cronofy-bench-"))
    prepare_environment(home)
    goals = Goals()
    report: dict[str, Any] = {"mode": "quick" if args.quick else "full", "plan": plan.__dict__}
    try:
        pending = SetUp(sections, home)
        info = machine_info()
        report["machine"] = info
        print_machine(info)
        setup = pending.wait()
        report["setup_seconds"] = setup
        if setup:
            print(
                "Set-up (untimed, before any measurement): "
                + ", ".join(f"{k} {v:.1f} s" for k, v in setup.items())
            )
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "throughput": lambda: bench_throughput(plan, goals),
            "tls": lambda: bench_tls(plan, goals, home, report["sections"].get("throughput")),
            "mapping": lambda: bench_mapping(plan, goals, home, setup.get("airflow db migrate", 0.0)),
            "pacing": lambda: bench_pacing(plan, goals),
            "import": lambda: bench_import(plan, goals, home),
            "memory": lambda: bench_memory(plan, goals, home),
        }
        report["sections"] = {}
        for name in SECTIONS:
            if name in sections:
                section_started = time.perf_counter()
                report["sections"][name] = runners[name]()
                report["sections"][name]["section_seconds"] = time.perf_counter() - section_started
    finally:
        shutil.rmtree(home, ignore_errors=True)
    signal.alarm(0)
    total = time.perf_counter() - started
    report["goals"] = goals.items
    report["total_seconds"] = total
    heading("Goals")
    print(
        table(
            ["section", "measure", "value", "goal", "verdict"],
            [
                [
                    g["section"],
                    g["what"],
                    g["value"],
                    g["goal"],
                    verdict(g["met"], g["kind"] == "expectation"),
                ]
                for g in goals.items
            ],
        )
    )
    print(f"\nTotal time: {total:.0f} s ({report['mode']} run).")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"Results written to {args.json}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
