"""RequestPacer with a fake clock: no window ever holds more requests than its limit."""

from __future__ import annotations

import itertools
import logging

from airflow_provider_cronofy.hooks.pacing import WINDOW_MARGIN, RequestPacer, shared_pacer


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
    times = []
    for _ in range(count):
        pacer.acquire()
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
    assert times[-1] - times[0] < 2 * 60 * WINDOW_MARGIN + 5


def test_per_second_limit_sets_the_pace():
    clock = FakeClock()
    pacer = RequestPacer([(100, 1.0), (1000, 60.0)], clock=clock, sleep=clock.sleep)
    times = send_times(pacer, clock, 600)
    assert max_in_window(times, 1.0) <= 100
    assert 5.0 <= times[-1] - times[0] <= 5.0 * WINDOW_MARGIN + 0.01


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
    assert "waiting 61.2 s" in caplog.text
    assert pacer.waited > 60


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
    assert clock.now == start + WINDOW_MARGIN
    clock.now += 0.060  # answered 50 ms slower than the fastest: it may have arrived 50 ms late
    pacer.release(second)
    pacer.acquire()
    assert abs(clock.now - (start + 2 * WINDOW_MARGIN + 0.050)) < 1e-9


def test_a_stopped_wait_returns_none_and_counts_nothing():
    import threading

    clock = FakeClock()
    stop = threading.Event()
    pacer = RequestPacer([(1, 1.0)], clock=clock, sleep=lambda seconds: stop.set())
    assert pacer.acquire(stop=stop) is not None
    assert pacer.acquire(stop=stop) is None  # the wait was cut short by the stop
    stop.clear()
    clock.now += WINDOW_MARGIN
    assert pacer.acquire(stop=stop) is not None  # the refused one took no slot


def test_a_cost_counts_that_many_requests():
    clock = FakeClock()
    pacer = RequestPacer([(50, 1.0)], clock=clock, sleep=clock.sleep)
    start = clock.now
    pacer.acquire(30)
    pacer.acquire(20)  # 50 in the window: full
    pacer.acquire(10)  # waits for the first 30 to leave the window
    assert clock.now == start + WINDOW_MARGIN


def test_shared_pacer_spaces_sends_half_a_slot_apart():
    clock = FakeClock()
    pacer = shared_pacer("https://spaced.example.com", 50, 500)
    pacer._clock, pacer._sleep = clock, clock.sleep
    times = send_times(pacer, clock, 5)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [round(0.5 / 50 * WINDOW_MARGIN, 6)] * 4
