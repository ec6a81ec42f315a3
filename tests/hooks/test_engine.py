"""The bulk engine over real HTTP against the emulator: a stop while paced sends nothing that was
waiting for a slot, and ends the run at once."""

from __future__ import annotations

import json
import threading

import pytest

from airflow_provider_cronofy.exceptions import CronofyFatalBulkError
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from airflow_provider_cronofy.testing import CronofyEmulator

HANG_GUARD_SECONDS = 60.0


def run_in_thread(target):
    """Run ``target()`` in a thread; return what it returned or raised (fails if it hangs)."""
    outcome: dict[str, object] = {}

    def body():
        try:
            outcome["value"] = target()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_SECONDS)
    assert not thread.is_alive(), f"the run did not end within {HANG_GUARD_SECONDS:g} s"
    return outcome


@pytest.mark.parametrize("max_concurrency", [None, 20])
def test_a_401_while_paced_sends_no_request_that_was_waiting_for_a_slot(monkeypatch, max_concurrency):
    """Wrong API key, 30 keys, paced at 2/s: the first window (2 requests) goes out at once and
    both meet the 401; every other request was waiting for a slot and must never be sent."""
    with CronofyEmulator(rate_limit_per_second=None, rate_limit_per_minute=None) as emulator:
        keys = [f"key-{i:02d}" for i in range(30)]
        for key in keys:
            emulator.schedule_agent(key)
        conn = emulator.airflow_connection(rate_limit_per_second=2, rate_limit_per_minute=0)
        conn["password"] = "not-the-api-key"
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", json.dumps(conn))
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key=keys, max_concurrency=max_concurrency
        )
        outcome = run_in_thread(lambda: operator.execute({}))
        error = outcome.get("error")
        assert isinstance(error, CronofyFatalBulkError), outcome
        # At most the per-second budget was ever in flight at once: the first window.
        assert len(emulator.requests) <= 2
        assert {request.status for request in emulator.requests} == {401}
        assert len(error.failures) == len(emulator.requests)
        assert len(error.not_attempted) == 30 - len(emulator.requests)
        assert all(agent["status"] != "cancelled" for agent in emulator.scheduled_agents.values())
