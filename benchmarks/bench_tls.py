"""Section 1b, tls: the throughput section's four variants over HTTPS (a throw-away self-signed
certificate for 127.0.0.1), where a new connection costs a TLS handshake.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench_throughput import Tls, measure_throughput
from harness import Context, heading

NAME = "tls"


def make_tls_files(directory: Path) -> Tls:
    """Write a self-signed RSA-2048 certificate for 127.0.0.1 and its key to ``directory``.

    RSA 2048, a common key of public HTTPS servers, so the emulator's side of a handshake costs
    what a usual one does.
    """
    from airflow_provider_cronofy.testing.certificates import make_self_signed_certificate

    files = make_self_signed_certificate(directory, key_type="rsa")
    return Tls(files.cert, files.key, "RSA-2048 self-signed certificate")


def run(ctx: Context) -> dict[str, Any]:
    plan, goals, plain = ctx.plan, ctx.goals, ctx.results.get("throughput")
    n = plan.tls_keys
    tls = make_tls_files(ctx.home)
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
