"""The bulk operators' shared run (operators/bulk.py): progress lines say what was answered, while
the run sends.

The runner logs progress from its own loop, which wakes on real time (it speaks up when no result
comes in), so this test waits: a second of pacing, at a line every quarter second.
"""

from __future__ import annotations

import re
import threading

import pytest

from airflow_provider_cronofy.hooks import runner
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator


class RecordingLog:
    """A task log that notes, with each line, how many requests the emulator had answered then."""

    def __init__(self, emulator: CronofyEmulator) -> None:
        self.emulator = emulator
        self.lines: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def info(self, message: str, *args: object) -> None:
        answered = len(self.emulator.requests)
        with self._lock:
            self.lines.append((message % args if args else message, answered))

    warning = info


@pytest.mark.parametrize("max_concurrency", [None, 1, 8])
def test_progress_lines_while_the_pacer_waits_in_real_time_report_what_was_answered(
    monkeypatch, max_concurrency
):
    monkeypatch.setattr(runner, "PROGRESS_EVERY_SECONDS", 0.25)
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        keys = [f"key-{i}" for i in range(4)]
        for key in keys:
            emulator.schedule_agent(key)
        monkeypatch.setenv(
            "AIRFLOW_CONN_CRONOFY_DEFAULT",
            emulator.airflow_connection_json(rate_limit_per_second=2, rate_limit_per_minute=0),
        )
        log = RecordingLog(emulator)
        # The operator's task log is where the run's lines go (BaseOperator.log is a property).
        monkeypatch.setattr(CancelScheduledMeetingAgentOperator, "log", property(lambda self: log))
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, max_concurrency=max_concurrency
        )
        result = operator.execute({})
    assert result["cancelled"] == keys
    progress = [(line, answered) for line, answered in log.lines if line.startswith("Progress:")]
    # 4 keys at 2/s take 1 s: a line each quarter second while it sends, not only when a result
    # comes in (the 2 answers of the first window come at once, the other 2 a second later).
    assert len(progress) >= 2, log.lines
    for line, answered in progress:
        done = int(re.match(r"Progress: (\d+)/4 scheduling keys done", line).group(1))  # type: ignore[union-attr]
        # What the emulator answered by then, less at most the two answers of one window on the way back.
        assert answered - 2 <= done <= answered, (line, answered)
    assert log.lines[-1][0].startswith("Done: 4 scheduling keys in ")
