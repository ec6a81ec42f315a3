"""Section 1, throughput: bulk cancellation by the operator against a bare ``requests.Session`` loop
(the floor), ``HttpHook`` (apache-airflow-providers-http) and ``requests.delete`` per key, each over
one emulator on 127.0.0.1 with rate limits and pacing off. ``measure_throughput`` also serves the
TLS section.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator_process import EmulatorProcess
from harness import ENDPOINT, JSON_CONTENT_TYPE, Context, Goals, Plan, heading, median, table

NAME = "throughput"


@dataclass
class Tls:
    """A throw-away self-signed certificate for 127.0.0.1 and its key (PEM files)."""

    cert: str
    key: str
    description: str


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.plan.throughput_keys
    heading(f"1. Bulk cancellation throughput: {n:,} scheduling keys per run (each after a warm-up run)")
    return measure_throughput(ctx.plan, ctx.goals, NAME, n)


def measure_throughput(
    plan: Plan, goals: Goals, section: str, n: int, tls: Tls | None = None
) -> dict[str, Any]:
    """Section 1 (plain HTTP) or 1b (``tls``): time the four variants, print the table, check the goals."""
    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_provider_cronofy import __version__
    from airflow_provider_cronofy.hooks.settings import DEFAULT_MAX_CONCURRENCY
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
        # One connection per request in flight, each kept alive for the whole run: never one per key.
        + f"; TCP connections per run {conns:.0f} (goal <= max_concurrency, {DEFAULT_MAX_CONCURRENCY}): "
        + goals.check(
            section,
            "provider TCP connections per run",
            f"{conns:.0f}",
            f"<= {DEFAULT_MAX_CONCURRENCY} (max_concurrency)",
            conns <= DEFAULT_MAX_CONCURRENCY,
        )
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
