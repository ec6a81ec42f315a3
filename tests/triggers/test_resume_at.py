"""ResumeAtTrigger: waits quietly until its moment, fires once with the carried state, serializes
as Airflow's DateTimeTrigger does. Its clock and sleep are replaced: no test waits for real."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_cronofy.triggers import resume_at
from airflow_provider_cronofy.triggers.resume_at import (
    LATE_AFTER_SECONDS,
    LONGEST_SLEEP_SECONDS,
    ResumeAtTrigger,
)

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
CARRY = {"format": 1, "position": 3, "fingerprint": "7:abc", "sent_at": [1_772_441_940_000, 500]}


class FakeTime:
    """The trigger's clock and sleep: a sleep moves the clock by what it slept (times ``pace``)."""

    def __init__(self, now: datetime, pace: float = 1.0) -> None:
        self.now = now
        self.pace = pace
        self.slept: list[float] = []

    def utc_now(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds * self.pace)


@pytest.fixture
def fake_time(monkeypatch):
    clock = FakeTime(T0)
    monkeypatch.setattr(resume_at, "utc_now", clock.utc_now)
    monkeypatch.setattr(resume_at, "sleep", clock.sleep)
    return clock


def first_event(trigger):
    async def run():
        events = []
        async for event in trigger.run():
            events.append(event)
        return events

    events = asyncio.run(run())
    assert len(events) == 1  # fires once, then its generator ends
    return events[0]


def logged(caplog, capsys) -> str:
    """What reached the logs: stdlib records (2.11) and Airflow 3's structlog lines on stdout."""
    return "".join(f"{r.levelname} {r.getMessage()}\n" for r in caplog.records) + capsys.readouterr().out


def test_the_capture_sees_the_triggers_log(caplog, capsys):
    # The quiet tests below would pass on nothing if the trigger's log went elsewhere.
    with caplog.at_level(logging.DEBUG):
        ResumeAtTrigger(T0, CARRY).log.info("probe line")
    assert "probe line" in logged(caplog, capsys)


def test_waits_quietly_and_fires_at_the_moment_with_the_carried_state(fake_time, caplog, capsys):
    trigger = ResumeAtTrigger(T0 + timedelta(seconds=150), CARRY)
    with caplog.at_level(logging.INFO):
        event = first_event(trigger)
    assert event.payload == {"resume": CARRY}
    assert fake_time.now == T0 + timedelta(seconds=150)  # at the moment, not before nor after
    assert fake_time.slept == [LONGEST_SLEEP_SECONDS, LONGEST_SLEEP_SECONDS, 30.0]  # in chunks
    assert logged(caplog, capsys) == ""  # not a line while waiting, nor when firing on time


def test_a_sleep_that_returns_early_does_not_fire_early(monkeypatch, caplog, capsys):
    clock = FakeTime(T0, pace=0.5)  # each sleep moves the clock by half of what was asked
    monkeypatch.setattr(resume_at, "utc_now", clock.utc_now)
    monkeypatch.setattr(resume_at, "sleep", clock.sleep)
    with caplog.at_level(logging.INFO):
        event = first_event(ResumeAtTrigger(T0 + timedelta(seconds=40), CARRY))
    assert event.payload == {"resume": CARRY}
    assert clock.now >= T0 + timedelta(seconds=40)
    assert clock.now < T0 + timedelta(seconds=40.01)  # and not much after it
    assert len(clock.slept) > 5  # it kept re-reading the clock
    assert logged(caplog, capsys) == ""


def test_a_wall_clock_set_back_moves_the_firing_with_it(monkeypatch):
    clock = FakeTime(T0)
    moved = []

    async def sleep(seconds):
        await clock.sleep(seconds)
        if not moved:  # NTP sets the clock back 30 s during the first chunk
            moved.append(True)
            clock.now -= timedelta(seconds=30)

    monkeypatch.setattr(resume_at, "utc_now", clock.utc_now)
    monkeypatch.setattr(resume_at, "sleep", sleep)
    first_event(ResumeAtTrigger(T0 + timedelta(seconds=90), CARRY))
    assert clock.now == T0 + timedelta(seconds=90)
    assert sum(clock.slept) == 120


def test_a_moment_already_past_fires_at_once_without_a_word(fake_time, caplog, capsys):
    with caplog.at_level(logging.INFO):
        event = first_event(ResumeAtTrigger(T0 - timedelta(seconds=2), CARRY))
    assert event.payload == {"resume": CARRY}
    assert fake_time.slept == []
    assert logged(caplog, capsys) == ""


def test_firing_long_after_the_moment_is_worth_one_warning(fake_time, caplog, capsys):
    # A triggerer that was down picks the trigger up late (or runs it again after a restart).
    late = LATE_AFTER_SECONDS + 60
    with caplog.at_level(logging.INFO):
        event = first_event(ResumeAtTrigger(T0 - timedelta(seconds=late), CARRY))
    assert event.payload == {"resume": CARRY}
    # One line, wherever this Airflow line sends it (2.11: the log records, and a copy on stdout).
    records = [f"{r.levelname} {r.getMessage()}" for r in caplog.records]
    printed = capsys.readouterr().out.splitlines()
    assert max(len(records), len(printed)) == 1, (records, printed)
    (line,) = records or printed
    assert f"Firing {late:.0f} s after the moment it was due" in line
    assert "triggerer was busy, stopped or restarted" in line
    assert "WARNING" in line.upper()


def test_serializes_as_the_parent_plus_the_carried_state():
    trigger = ResumeAtTrigger(T0 + timedelta(seconds=60), CARRY)
    parent = resume_at.DateTimeTrigger(T0 + timedelta(seconds=60))
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cronofy.triggers.resume_at.ResumeAtTrigger"
    assert kwargs == {**parent.serialize()[1], "carry": CARRY}
    rebuilt = ResumeAtTrigger(**kwargs)
    assert rebuilt.moment == T0 + timedelta(seconds=60)
    assert rebuilt.carry == CARRY
    assert rebuilt.serialize() == (classpath, kwargs)


def test_survives_the_serializers_airflow_stores_trigger_kwargs_with(fake_time):
    _, kwargs = ResumeAtTrigger(T0 + timedelta(seconds=5), CARRY).serialize()
    from airflow.serialization.serialized_objects import BaseSerialization

    rebuilt = [BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))]
    try:  # 3.2+: dag.test() hands the trigger its kwargs through the task SDK's serde
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # 2.11, 3.0, 3.1
        pass
    else:
        rebuilt.append(deserialize(serialize(kwargs)))
    for again in rebuilt:
        trigger = ResumeAtTrigger(**again)
        assert trigger.moment == T0 + timedelta(seconds=5)
        assert first_event(trigger).payload == {"resume": CARRY}


def test_ending_the_task_in_the_triggerer_is_refused():
    # The carried state is for the task to go on with; ending it in the triggerer would lose it.
    with pytest.raises(ValueError, match="end_from_trigger must be False"):
        ResumeAtTrigger(datetime(2030, 1, 1, tzinfo=timezone.utc), {"position": 3}, end_from_trigger=True)
