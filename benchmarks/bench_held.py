"""Section 6b, held: 300 scheduling keys at 150 ms under Cronofy's default limits (50/s and 500/min,
counted by the emulator on arrival), with 5 requests of the first half held 1.2 s on their way:
after the pacer let them through and before they reach the wire, as a dropped SYN retransmitted
after a second or a slow TLS connect would hold them. Against the same run with nothing held (the
baseline), both measured against the rate-limit ideal of 300 requests at 150 ms.

A pacer that frees a request's slot before its answer comes lets a full window go out while the
held request is still on its way; it then arrives into that window and meets a 429.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness import Context, heading, median, table
from rate_limited_runs import PER_MINUTE, PER_SECOND, scheduled_run

NAME = "held"
LATENCY = 0.15
KEYS = 300
HELD = 5
HELD_SECONDS = 1.2


def held_positions(n: int, held: int) -> list[int]:
    """Which of ``n`` keys are held: ``held`` of them spread over the first half of the run, the
    first included, so that each is answered before a client without held requests would finish
    (the ideal stays the least time the limits allow, not the time a late hold takes)."""
    return [i * (n // 2) // held for i in range(held)]


def unseen_hold_ideal_seconds(sends: int, latency: float, held: list[int], hold: float) -> float:
    """The least time for ``sends`` requests under the default limits for a client that learns of
    a hold only from the late answer, the last answer included: request *i* leaves at the first
    moment at which fewer than 50 requests hold a slot of the second (500 of the minute), and a
    held request holds its slot ``hold`` seconds longer (until a window after it arrived). With
    nothing held it is ``rate_limited_runs.ideal_seconds``."""
    ends: list[tuple[float, float]] = []  # (end of its second's slot, end of its minute's slot)
    at = done = 0.0
    for i in range(sends):
        while True:
            second = sorted(end for end, _ in ends if end > at)
            minute = sorted(end for _, end in ends if end > at)
            waits = [second[-PER_SECOND]] if len(second) >= PER_SECOND else []
            waits += [minute[-PER_MINUTE]] if len(minute) >= PER_MINUTE else []
            if not waits:
                break
            at = min(waits)
        extra = hold if i in held else 0.0
        ends.append((at + extra + 1.0, at + extra + 60.0))
        done = max(done, at + extra + latency)
    return done


@contextmanager
def held_on_the_way(keys: set[str], seconds: float) -> Iterator[list[str]]:
    """Hold the first attempt of the requests for ``keys`` ``seconds`` before they are sent.

    Patches ``HTTPAdapter.send``, what every ``requests`` session sends through: the pacer has
    already let the request through, and it reaches the server ``seconds`` later. Yields the keys
    held so far.
    """
    from requests.adapters import HTTPAdapter

    send = HTTPAdapter.send
    waiting = set(keys)
    held: list[str] = []
    lock = threading.Lock()

    def held_send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        key = json.loads(request.body).get("scheduling_key") if request.body else None
        with lock:
            hold = key in waiting
            if hold:
                waiting.discard(key)
                held.append(key)
        if hold:
            time.sleep(seconds)
        return send(adapter, request, *args, **kwargs)

    HTTPAdapter.send = held_send  # type: ignore[method-assign]
    try:
        yield held
    finally:
        HTTPAdapter.send = send  # type: ignore[method-assign]


def run(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    runs = plan.latency_runs
    heading(
        f"6b. Held on the way: {KEYS} scheduling keys at {LATENCY * 1000:g} ms, default limits 50/s and "
        f"500/min (emulator enforcing them on arrival), {HELD} requests held {HELD_SECONDS:g} s between "
        f"the pacer and the wire, against nothing held (the baseline), {runs} run(s) each"
    )
    results: dict[str, Any] = {"keys": KEYS, "held": HELD, "held_seconds": HELD_SECONDS}
    rows = []
    for variant, held in (("nothing held (baseline)", 0), (f"{HELD} held {HELD_SECONDS:g} s", HELD)):
        samples = []
        for rep in range(runs):
            tag = f"held{held}-{rep}"
            keys = {f"{tag}-{i:06d}" for i in held_positions(KEYS, held)} if held else set()
            with held_on_the_way(keys, HELD_SECONDS) as were_held:
                sample = scheduled_run(LATENCY, KEYS, {}, tag=tag)
            sample["held"] = len(were_held)
            samples.append(sample)
        seconds = median([s["seconds"] for s in samples])
        unseen = unseen_hold_ideal_seconds(
            KEYS, LATENCY, held_positions(KEYS, held) if held else [], HELD_SECONDS
        )
        summary = {
            "runs": samples,
            "median_seconds": seconds,
            "ideal_seconds": samples[0]["ideal_seconds"],
            "efficiency": samples[0]["ideal_seconds"] / seconds,
            "unseen_hold_ideal_seconds": unseen,
            "unseen_hold_efficiency": unseen / seconds,
            "sustained_rate_over_limit": median([s["sustained_rate_over_limit"] for s in samples]),
            "max_429": max(s["answered_429"] for s in samples),
            "max_failed": max(s["failed"] for s in samples),
            "max_lost": max(s["lost"] for s in samples),
            "min_held": min(s["held"] for s in samples),
        }
        results["held" if held else "baseline"] = summary
        rows.append(
            [
                variant,
                f"{summary['median_seconds']:.2f}",
                f"{summary['ideal_seconds']:.2f}",
                f"{summary['efficiency']:.3f}",
                f"{unseen:.2f}",
                f"{summary['unseen_hold_efficiency']:.3f}",
                f"{summary['sustained_rate_over_limit']:.3f}",
                summary["max_429"],
                summary["max_failed"],
                summary["max_lost"],
            ]
        )
    headers = ["variant", "time s", "ideal s", "ideal/time", "unseen s", "unseen/time", "rate/limit", "429s"]
    headers += ["failed", "lost"]
    print(table(headers, rows))
    print(
        f"ideal: the least time the default limits allow for {KEYS} requests, plus one latency. unseen: the "
        "same for a client that learns of a hold from the late answer (a held request keeps its slot until "
        "a window after it arrived; 5 held cost 5 sends, one more window at the end). rate/limit: "
        f"requests per second at the emulator after the first {PER_SECOND}, over {PER_SECOND}/s. 429s: "
        "every 429 the emulator sent (worst run)."
    )
    held = results["held"]
    if held["min_held"] != HELD:
        raise RuntimeError(
            f"{held['min_held']} requests were held, not {HELD}: the keys were not sent as planned"
        )
    print(
        f"{HELD} requests held {HELD_SECONDS:g} s: {held['efficiency']:.3f} of the ideal time, "
        f"{held['unseen_hold_efficiency']:.3f} of the unseen-hold ideal "
        f"(nothing held: {results['baseline']['efficiency']:.3f}); 429s {held['max_429']} (goal 0): "
        + ctx.goals.check(NAME, "held requests: 429 answers", str(held["max_429"]), "0", held["max_429"] == 0)
        + "."
    )
    return results
