"""RequestPacer with a fake clock: no window ever holds more requests than its limit.

A request counts in every window until it is answered (``release``); the helpers below answer each
request at once, as a fast server would, unless a test says otherwise.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from airflow_provider_cronofy.hooks.pacing import (
    PENDING_RECHECK_SECONDS,
    SEND_GUARD_SECONDS,
    PacingEstimate,
    RequestPacer,
    Slot,
    estimate_pacing,
    shared_pacer,
    sit_out,
)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def send_times(pacer: RequestPacer, clock: FakeClock, count: int, gap: float = 0.0) -> list[float]:
    """Send ``count`` requests, each answered at once, ``gap`` seconds apart; return their send times."""
    times = []
    for _ in range(count):
        slot = pacer.acquire()
        assert slot is not None
        pacer.release(slot)  # answered at once
        times.append(clock.now)
        clock.now += gap
    return times


def max_in_window(times: list[float], seconds: float) -> int:
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


def test_both_windows_hold():
    clock = FakeClock()
    pacer = RequestPacer([(50, 1.0), (500, 60.0)], clock=clock, sleep=clock.sleep)
    times = send_times(pacer, clock, 1200, gap=0.001)
    assert max_in_window(times, 1.0) <= 50
    assert max_in_window(times, 60.0) <= 500
    # Close to the limit, not far under it: 1,200 requests need a bit over two minutes.
    assert times[-1] - times[0] < 2 * 60 + 5


def test_per_second_limit_sets_the_pace():
    clock = FakeClock()
    pacer = RequestPacer([(100, 1.0), (1000, 60.0)], clock=clock, sleep=clock.sleep)
    times = send_times(pacer, clock, 600)
    assert max_in_window(times, 1.0) <= 100
    assert 5.0 <= times[-1] - times[0] <= 5.0 + 0.01


def test_zero_or_none_turns_a_window_off():
    clock = FakeClock()
    pacer = RequestPacer([(0, 1.0), (None, 60.0)], clock=clock, sleep=clock.sleep)
    assert not pacer.enabled
    send_times(pacer, clock, 1000)
    assert clock.sleeps == []


def test_long_waits_are_logged(caplog):
    clock = FakeClock()
    pacer = RequestPacer([(5, 60.0)], clock=clock, sleep=clock.sleep)
    with caplog.at_level(logging.INFO, logger="airflow_provider_cronofy.hooks.pacing"):
        send_times(pacer, clock, 6)
    assert "waiting 60.0 s" in caplog.text
    assert pacer.waited >= 60


def test_shared_pacer_per_base_url_and_limits():
    a = shared_pacer("https://api.cronofy.com", 50, 500)
    assert shared_pacer("https://api.cronofy.com", 50, 500) is a
    assert shared_pacer("https://api-uk.cronofy.com", 50, 500) is not a
    assert shared_pacer("https://api.cronofy.com", 100, 500) is not a


def test_a_request_answered_late_counts_as_sent_later():
    """A send held back (a slow answer, compared with the fastest) must not let the next one in early."""
    clock = FakeClock()
    pacer = RequestPacer([(1, 1.0)], clock=clock, sleep=clock.sleep)
    start = clock.now
    first = pacer.acquire()
    clock.now += 0.010  # the fastest answer: 10 ms
    pacer.release(first)
    second = pacer.acquire()  # waits for the first slot to leave the window
    guard = min(0.010, SEND_GUARD_SECONDS)  # a share of the fastest answer: the way out
    assert abs(clock.now - (start + 1.0 + guard)) < 1e-9
    clock.now += 0.060  # answered 50 ms slower than the fastest: it may have arrived 50 ms late
    pacer.release(second)
    pacer.acquire()
    assert abs(clock.now - (start + 2.0 + 2 * guard + 0.050)) < 1e-9


def test_a_stopped_wait_returns_none_and_counts_nothing():
    import threading

    clock = FakeClock()
    stop = threading.Event()
    pacer = RequestPacer([(1, 1.0)], clock=clock, sleep=lambda seconds: stop.set())
    first = pacer.acquire(stop=stop)
    assert first is not None
    pacer.release(first)
    assert pacer.acquire(stop=stop) is None  # the wait was cut short by the stop
    stop.clear()
    clock.now += 1.0
    assert pacer.acquire(stop=stop) is not None  # the refused one took no slot


def test_a_cost_counts_that_many_requests():
    clock = FakeClock()
    pacer = RequestPacer([(50, 1.0)], clock=clock, sleep=clock.sleep)
    start = clock.now
    for cost in (30, 20):  # 50 in the window: full
        slot = pacer.acquire(cost)
        assert slot is not None
        pacer.release(slot)
    pacer.acquire(10)  # waits for the first 30 to leave the window
    assert clock.now == start + 1.0


def test_shared_pacer_lets_the_first_window_through_at_once_then_one_per_freed_slot():
    clock = FakeClock()
    pacer = shared_pacer("https://burst.example.com", 50, 500)
    pacer._clock, pacer._sleep = clock, clock.sleep
    start = clock.now
    times = send_times(pacer, clock, 60)
    assert times[:50] == [start] * 50  # no spacing: a sliding window allows the whole burst
    assert times[50:] == [start + 1.0] * 10  # then each slot as it leaves the window
    assert max_in_window(times, 1.0) <= 50


# ---------------------------------------------------------------------------- for deferrable runs


def test_next_slot_in_says_when_the_window_frees_and_counts_nothing():
    clock = FakeClock()
    pacer = RequestPacer([(3, 60.0)], clock=clock, sleep=clock.sleep)
    assert pacer.next_slot_in() == 0.0
    send_times(pacer, clock, 3, gap=1.0)  # at 1000, 1001, 1002
    assert pacer.next_slot_in() == 1000.0 + 60.0 - clock.now
    assert pacer.next_slot_in() == pacer.next_slot_in()  # asking twice takes no slot
    clock.now = 1000.0 + 60.0
    assert pacer.next_slot_in() == 0.0


def test_sends_before_wait_counts_what_fits_without_a_long_wait():
    clock = FakeClock()
    pacer = RequestPacer([(5, 1.0), (12, 60.0)], clock=clock, sleep=clock.sleep)
    # 5 now, 5 a second later, 2 more a second after that: then the minute window is full.
    assert pacer.sends_before_wait(10.0, at_most=100) == 12
    assert pacer.sends_before_wait(10.0, at_most=7) == 7
    # A 1 s wait for the second window is too long for a 0.5 s threshold.
    assert pacer.sends_before_wait(0.5, at_most=100) == 5
    send_times(pacer, clock, 12)
    assert pacer.sends_before_wait(10.0, at_most=100) == 0
    assert clock.sleeps and pacer.next_slot_in() > 10.0


def test_sends_before_wait_matches_what_acquire_then_does():
    clock = FakeClock()
    pacer = RequestPacer([(50, 1.0), (120, 60.0), (1, 0.02)], clock=clock, sleep=clock.sleep)
    budget = pacer.sends_before_wait(10.0, at_most=10_000)
    assert budget == 120
    start = clock.now
    times = send_times(pacer, clock, budget)
    gaps = [b - a for a, b in zip([start, *times], times, strict=False)]
    assert max(gaps) <= 10.0
    assert pacer.next_slot_in() > 10.0


def test_short_windows_never_stop_a_run():
    clock = FakeClock()
    pacer = RequestPacer([(2, 1.0)], clock=clock, sleep=clock.sleep)
    send_times(pacer, clock, 2)
    assert pacer.sends_before_wait(5.0, at_most=1_000_000) == 1_000_000
    off = RequestPacer([(0, 60.0)], clock=clock, sleep=clock.sleep)
    assert off.sends_before_wait(5.0, at_most=7) == 7
    assert off.recent_send_times() == []


def test_send_times_cross_to_another_pacer_as_wall_clock(monkeypatch):
    # Two processes: different monotonic clocks, the same wall clock.
    wall = [1_700_000_000.0]
    monkeypatch.setattr("airflow_provider_cronofy.hooks.pacing.time.time", lambda: wall[0])
    first_clock = FakeClock()
    first = RequestPacer([(4, 60.0)], clock=first_clock, sleep=first_clock.sleep)
    send_times(first, first_clock, 4, gap=2.0)
    wall[0] += first_clock.now - 1000.0  # the wall clock moved as much as the monotonic one
    exported = first.recent_send_times()
    assert exported == [1_700_000_000.0, 1_700_000_002.0, 1_700_000_004.0, 1_700_000_006.0]

    second_clock = FakeClock()
    second_clock.now = 5.0  # another process's monotonic clock
    second = RequestPacer([(4, 60.0)], clock=second_clock, sleep=second_clock.sleep)
    wall[0] += 30.0
    second_clock.now += 30.0
    assert second.count_sends_from(exported, first.identity)
    # The window opens when the first send (38 s ago) leaves it, not at once.
    assert abs(second.next_slot_in() - (60.0 - 38.0)) < 1e-6
    # The pacer's own times are already counted: importing them again changes nothing.
    before = first.next_slot_in()
    assert not first.count_sends_from(exported, first.identity)
    assert first.next_slot_in() == before
    assert len(first.recent_send_times()) == 4
    # Times that left the window are dropped.
    late_clock = FakeClock()
    late = RequestPacer([(4, 60.0)], clock=late_clock, sleep=late_clock.sleep)
    wall[0] += 120.0
    late.count_sends_from(exported, first.identity)
    assert late.next_slot_in() == 0.0


# ---------------------------------------------------------------------------- waits and stops


def test_a_pacing_wait_never_holds_the_lock_release_and_next_slot_in_need():
    import threading

    clock = FakeClock()
    waiting, go_on = threading.Event(), threading.Event()

    def sleep(seconds):  # a waiter sitting out its wait until the test lets it go
        waiting.set()
        go_on.wait(30)
        clock.now += seconds

    pacer = RequestPacer([(1, 1.0)], clock=clock, sleep=sleep)
    first = pacer.acquire()
    waiter = threading.Thread(target=pacer.acquire, daemon=True)
    waiter.start()
    assert waiting.wait(30)
    # Both would block behind the waiter if it slept under the lock.
    done = threading.Event()

    def others():
        pacer.release(first)
        pacer.next_slot_in()
        pacer.recent_send_times()
        done.set()

    threading.Thread(target=others, daemon=True).start()
    assert done.wait(30), "release()/next_slot_in() waited behind a pacing wait"
    go_on.set()
    waiter.join(30)
    assert not waiter.is_alive()


def test_a_stop_wakes_every_waiter_at_once_and_none_takes_a_slot():
    import threading

    pacer = RequestPacer([(1, 3600.0)])  # the next slot is an hour away: only the stop ends a wait
    stop = threading.Event()
    assert pacer.acquire(stop=stop) is not None
    results: list[object] = []
    waiters = [threading.Thread(target=lambda: results.append(pacer.acquire(stop=stop))) for _ in range(20)]
    for waiter in waiters:
        waiter.start()
    stop.set()
    for waiter in waiters:
        waiter.join(30)
    assert not any(waiter.is_alive() for waiter in waiters), "a waiter slept through the stop"
    assert results == [None] * 20
    assert len(pacer.recent_send_times()) == 1  # none of them counted a send


# ---------------------------------------------------------------------------- unanswered requests


class Answers:
    """A fake sleep that advances the fake clock and answers (releases) slots at set times on the
    way, as other threads would while a waiter sits out its wait: an answer does not wake it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.due: list[tuple[float, object]] = []
        self.pacer: RequestPacer | None = None

    def answer(self, slot, at: float) -> None:
        self.due.append((at, slot))

    def sleep(self, seconds: float) -> None:
        assert self.pacer is not None
        self.clock.sleeps.append(seconds)
        end = self.clock.now + seconds
        for at, slot in sorted((d for d in self.due if d[0] <= end), key=lambda d: d[0]):
            self.due.remove((at, slot))
            self.clock.now = at
            self.pacer.release(slot)  # outside the pacer's lock, or this would deadlock
        self.clock.now = end


def paced(windows, clock: FakeClock) -> tuple[RequestPacer, Answers]:
    answers = Answers(clock)
    answers.pacer = pacer = RequestPacer(windows, clock=clock, sleep=answers.sleep)
    return pacer, answers


def answered_at_once(pacer: RequestPacer, clock: FakeClock, took: float) -> None:
    """One request answered ``took`` seconds after it was let through: the fastest answer so far,
    measured (after an earlier answer as fast, long out of every window: two answers bound it)."""
    pacer.release(Slot(clock.now - took))
    slot = pacer.acquire()
    assert slot is not None
    clock.now += took
    pacer.release(slot)


def test_an_unanswered_request_never_leaves_a_window_until_its_answer():
    """Held on its way, it may reach Cronofy any time before its answer: its slot stays taken."""
    clock = FakeClock()
    pacer, answers = paced([(2, 1.0)], clock)
    answered_at_once(pacer, clock, took=0.010)  # the fastest answer: 10 ms
    clock.now = 1002.0
    held = [pacer.acquire(), pacer.acquire()]  # both on their way, unanswered
    clock.now = 1003.5  # 1.5 s later: a whole window has passed since they were let through
    assert pacer.next_slot_in() > 0  # not free: either may still arrive now
    for slot in held:
        answers.answer(slot, at=1003.7)  # answered 1.7 s after they left
    third = pacer.acquire()
    assert third is not None
    assert clock.sleeps, "a slot of an unanswered request was given away"
    # Then the usual rule: answered 1.69 s slower than the fastest, each counts as arriving at
    # 1002 + 1.69 + 0.01 = 1003.7, and leaves the window a second later, not sooner and not later.
    assert abs(clock.now - 1004.7) < 1e-9
    assert sum(clock.sleeps) == clock.now - 1003.5


def test_a_cost_counts_an_unanswered_request_among_those_it_needs_gone():
    clock = FakeClock()
    pacer, answers = paced([(3, 1.0)], clock)
    answered_at_once(pacer, clock, took=0.010)  # counts at 1000.01
    pending = pacer.acquire()  # at 1000.01, unanswered
    answered_at_once(pacer, clock, took=0.0)  # at 1000.01
    clock.now = 1001.5  # both answered ones have left; the unanswered one has not
    assert pacer.next_slot_in(2) == 0.0
    assert pacer.next_slot_in(3) > 0.0
    answers.answer(pending, at=1001.6)
    assert pacer.acquire(3) is not None
    # Answered 1.59 s after it left, that much slower than the fastest (0 s): it counts from 1001.6.
    assert abs(clock.now - 1002.6) < 1e-9


def test_a_waiter_goes_on_soon_after_the_answer_not_a_window_later():
    """Minute window: the waiter sleeps until the earliest the slot can leave, then looks again."""
    clock = FakeClock()
    pacer, answers = paced([(1, 60.0)], clock)
    answered_at_once(pacer, clock, took=0.1)  # fastest 0.1 s; it leaves the window at 1060.01
    clock.now = 1061.0
    held = pacer.acquire()
    clock.now = 1200.0  # 139 s on its way: the old window would have let a request through at 1121
    answers.answer(held, at=1200.5)  # answered half a second after the next acquire starts
    assert pacer.acquire() is not None
    # It counts as arriving at 1061 + (139.5 - 0.1) + 0.01 = 1200.41 and leaves at 1260.41.
    assert abs(clock.now - 1260.41) < 1e-9
    assert len(clock.sleeps) == 2  # one long sleep to the earliest possible moment, one short
    assert clock.sleeps[0] < 60.0


def test_answers_slower_than_the_window_are_rechecked_at_a_short_interval():
    # A window shorter than the fastest answer: an unanswered request's slot may free any moment
    # once it is answered, so a waiter looks again every PENDING_RECHECK_SECONDS meanwhile.
    clock = FakeClock()
    pacer, answers = paced([(1, 0.1)], clock)
    answered_at_once(pacer, clock, took=0.3)  # the fastest answer: 0.3 s, longer than the window
    clock.now = 1002.0
    held = pacer.acquire()
    answers.answer(held, at=1004.3)  # 2.3 s on its way: it counts as arriving at 1004.01
    assert pacer.acquire() is not None
    # The first sleep runs to the earliest it could leave (answered at once: 1002 + 0.1); then
    # short steps until the answer.
    assert clock.sleeps[0] == pytest.approx(0.1)
    assert len(clock.sleeps) > 10 and all(s <= PENDING_RECHECK_SECONDS + 1e-9 for s in clock.sleeps[1:])
    assert 1004.3 <= clock.now <= 1004.3 + PENDING_RECHECK_SECONDS + 1e-9


def test_before_any_answer_a_waiter_goes_a_window_after_the_answer():
    # No answer measured yet: the first answer counts as arriving when it came (see release), so
    # a waiter goes a window after the answer, not a window after the send.
    clock = FakeClock()
    pacer, answers = paced([(1, 1.0)], clock)
    held = pacer.acquire()
    clock.now = 1002.0
    answers.answer(held, at=1002.3)
    assert pacer.acquire() is not None
    assert abs(clock.now - 1003.3) < 1e-9  # a window after the answer, not at it


def test_an_unanswered_request_is_carried_and_planned_as_sent_now(monkeypatch):
    monkeypatch.setattr("airflow_provider_cronofy.hooks.pacing.time.time", lambda: 1_700_000_000.0)
    clock = FakeClock()
    pacer, _ = paced([(2, 1.0), (10, 60.0)], clock)
    answered_at_once(pacer, clock, took=0.0)  # arrived at 1000
    pending = pacer.acquire()  # let through at 1000, unanswered
    clock.now = 1001.5
    # Exported for another process as arriving now (the wall clock's now), not 1.5 s ago.
    assert pacer.recent_send_times() == [1_700_000_000.0 - 1.5, 1_700_000_000.0]
    # A deferral's plan counts it as arriving now: it still holds one of the second's 2 slots,
    # so one more fits, and the next would wait a second.
    assert pacer.sends_before_wait(0.5, at_most=100) == 1
    clock.now += 0.25
    pacer.release(pending)  # answered 1.75 s after it left: it counts as arriving at 1001.75
    assert pacer.recent_send_times() == [1_700_000_000.0 - 1.75, 1_700_000_000.0]
    assert pacer.sends_before_wait(0.5, at_most=100) == 1


def test_a_stop_wakes_a_waiter_held_back_by_an_unanswered_request_at_once():
    import threading

    class Stop(threading.Event):
        """The run's stop event, telling when a waiter sits out a wait on it."""

        def __init__(self) -> None:
            super().__init__()
            self.timeouts: list[float | None] = []
            self.waiting = threading.Event()

        def wait(self, timeout: float | None = None) -> bool:
            self.timeouts.append(timeout)
            self.waiting.set()
            return super().wait(timeout)

    clock = FakeClock()
    pacer = RequestPacer([(1, 60.0)], clock=clock)  # no fake sleep: waits are on the stop event
    answered_at_once(pacer, clock, took=0.1)
    clock.now = 1061.0
    held = pacer.acquire()
    assert held is not None
    clock.now = 1200.0  # the old window would have let a request through at 1121
    stop = Stop()
    results: list[object] = []
    waiters = [threading.Thread(target=lambda: results.append(pacer.acquire(stop=stop))) for _ in range(5)]
    for waiter in waiters:
        waiter.start()
    assert stop.waiting.wait(30)
    assert max(t for t in stop.timeouts if t is not None) > 50  # a long wait: only the stop ends it
    stop.set()
    for waiter in waiters:
        waiter.join(10)
    assert not any(waiter.is_alive() for waiter in waiters), "a waiter slept through the stop"
    assert results == [None] * 5
    assert len(pacer.recent_send_times()) == 1  # the held request only; none of them took a slot


# ---------------------------------------------------------------------------- over HTTP

HELD_SECONDS = 1.5
"""How long the held request spends on its way: more than the one-second window."""


def test_over_http_a_request_held_on_its_way_meets_no_429(monkeypatch):
    """The emulator counts requests on arrival at 5/s. One request of the first window is held
    1.5 s on the client's side after the pacer let it through (a retransmitted SYN, a slow TLS
    connect): a pacer that freed its slot after a second would send a full window meanwhile, and
    the held request would arrive into it and meet a 429."""
    import json
    import time

    from requests.adapters import HTTPAdapter

    from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
    from airflow_provider_cronofy.testing import CronofyEmulator

    held = {"k00"}
    held_from: list[float] = []
    send = HTTPAdapter.send

    def held_on_the_way(adapter, request, *args, **kwargs):
        body = json.loads(request.body) if request.body else {}
        if body.get("scheduling_key") in held:
            held.discard(body["scheduling_key"])  # its first attempt only
            held_from.append(time.monotonic())  # the emulator's arrival times are monotonic too
            time.sleep(HELD_SECONDS)
        return send(adapter, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", held_on_the_way)
    keys = [f"k{i:02d}" for i in range(12)]
    with CronofyEmulator(rate_limit_per_second=5, rate_limit_per_minute=None) as emu:
        for key in keys:
            emu.schedule_agent(key)
        # More workers than the limit, so that a freed slot is taken at once while one is held.
        extra = {"rate_limit_per_second": 5, "rate_limit_per_minute": 0, "max_concurrency": 10}
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", emu.airflow_connection_json(**extra))
        result = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key=keys).execute({})
        requests = emu.requests
        rate_limited = emu.fault_counts["rate_limited"]
    assert not held, "the request to hold was never sent"
    assert result == {"cancelled": keys, "not_found": []}
    arrivals = {r.json["scheduling_key"]: r.time for r in requests}
    assert arrivals["k00"] - held_from[0] >= HELD_SECONDS  # it did arrive late
    assert sum(1 for t in arrivals.values() if t < arrivals["k00"] - 1.0) >= 4  # after a window
    assert [r.status for r in requests].count(429) == 0
    assert rate_limited == 0
    assert len(requests) == len(keys)  # nothing was retried
    times = sorted(arrivals.values())
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 5


# ---------------------------------------------------------------------------- the dry run's estimate


def test_estimate_of_1200_requests_at_the_default_limits():
    # 500 in the first 10 s (50 a second), the minute's next slot 51 s later, twice; 200 at the end.
    assert estimate_pacing(1200, 50, 500, defer_after=10.0) == PacingEstimate(123.0, 2, 102.0)


def test_estimate_of_30_requests_at_10_a_minute():
    # The run of issue 24: three bursts a minute apart, two deferrals.
    assert estimate_pacing(30, 50, 10, defer_after=10.0) == PacingEstimate(120.0, 2, 120.0)
    # With defer_after at the minute or more, a deferrable run never defers.
    assert estimate_pacing(30, 50, 10, defer_after=60.0).deferrals == 0


@pytest.mark.parametrize("limits", [(0, 0), (None, None)])
def test_estimate_without_pacing_is_no_time(limits):
    assert estimate_pacing(5000, *limits, defer_after=10.0) == PacingEstimate(0.0, 0, 0.0)
    assert estimate_pacing(0, 50, 500, defer_after=10.0) == PacingEstimate(0.0, 0, 0.0)


@pytest.mark.parametrize(
    ("requests", "per_second", "per_minute", "defer_after"),
    [(1200, 50, 500, 10.0), (30, 0, 10, 10.0), (7, 2, 0, 10.0), (260, 20, 100, 5.0), (9, 3, 4, 0.5)],
)
def test_estimate_matches_the_pacer_and_a_deferrable_runs_segments(
    requests, per_second, per_minute, defer_after
):
    estimate = estimate_pacing(requests, per_second, per_minute, defer_after)
    # The pacer itself, each request sent as soon as it is let through (answers take no time).
    clock = FakeClock()
    pacer = RequestPacer([(per_second, 1.0), (per_minute, 60.0)], clock=clock, sleep=clock.sleep)
    times = send_times(pacer, clock, requests)
    assert estimate.seconds == pytest.approx(times[-1] - times[0])
    # A deferrable run's loop (operators/deferral.py): send what fits, defer to the next slot.
    clock = FakeClock()
    pacer = RequestPacer([(per_second, 1.0), (per_minute, 60.0)], clock=clock, sleep=clock.sleep)
    left, deferrals, deferred = requests, 0, 0.0
    while left:
        fits = pacer.sends_before_wait(defer_after, left)
        if fits == 0:
            wait = pacer.next_slot_in()
            deferrals, deferred = deferrals + 1, deferred + wait
            clock.now += wait
            continue
        send_times(pacer, clock, fits)
        left -= fits
    assert (estimate.deferrals, estimate.deferred_seconds) == (deferrals, pytest.approx(deferred))


def test_the_first_answer_counts_from_when_it_came_not_from_when_it_was_sent():
    # No answer measured yet: nothing bounds how long the first request was on its way, so a
    # first request held 1.35 s must not free its slot as if it had arrived at once.
    clock = FakeClock()
    pacer = RequestPacer([(1, 1.0)], clock=clock, sleep=clock.sleep)
    held = pacer.acquire()
    clock.now += 1.35
    pacer.release(held)
    assert pacer.next_slot_in() == pytest.approx(1.0)


def test_a_failure_without_an_answer_measures_nothing():
    # A request refused before it left (or a connection failing at once) says nothing of the way
    # there and back: later answers are not counted from their answer time because of it.
    clock = FakeClock()
    pacer = RequestPacer([(100, 1.0)], clock=clock, sleep=clock.sleep)
    pacer.release(pacer.acquire(), replied=False)  # took 0 s, no reply
    first = pacer.acquire()
    clock.now += 0.15
    pacer.release(first)  # the fastest answer: 150 ms
    second = pacer.acquire()
    clock.now += 0.15
    pacer.release(second)
    # Answered as fast as the fastest: counts from its send, plus the guard (not from its answer).
    assert second.at == pytest.approx(second.acquired + SEND_GUARD_SECONDS)


def test_once_a_second_answer_is_measured_the_first_is_estimated_like_the_rest():
    # Two answers bound the way out; the first, counted from its answer until then, is estimated
    # again: a pacer loses no throughput to its first answer.
    clock = FakeClock()
    pacer = RequestPacer([(2, 1.0)], clock=clock, sleep=clock.sleep)
    first, second = pacer.acquire(), pacer.acquire()
    clock.now += 0.3
    pacer.release(first)
    assert first.at == pytest.approx(1000.3)  # one answer: counted from when it came
    pacer.release(second)
    assert first.at == pytest.approx(1000.0 + SEND_GUARD_SECONDS)
    assert second.at == pytest.approx(1000.0 + SEND_GUARD_SECONDS)
    assert pacer.next_slot_in() == pytest.approx(0.71)


def test_sit_out_uses_the_given_sleep_else_the_stop_else_real_time():
    slept: list[float] = []
    sit_out(3.0, slept.append, None)
    assert slept == [3.0]
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    sit_out(30.0, None, stop)  # a set stop ends the wait at once
    sit_out(0.0, None, None)
    assert time.monotonic() - started < 1.0
