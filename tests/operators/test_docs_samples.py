"""The docs samples of issue 17 (docs/samples/) run, against the emulator."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from airflow_provider_cronofy.exceptions import CronofyInputError
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator
from tests.conftest import connect_to_emulator

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "comma_joined_ids.py"


def test_the_comma_joined_ids_sample_does_what_the_docs_say(cronofy_emulator, monkeypatch):
    for key in ("deal-1", "deal-2", "deal-3", "invoice-7,2026"):
        cronofy_emulator.schedule_agent(key)
    connect_to_emulator(monkeypatch, cronofy_emulator)
    spec = importlib.util.spec_from_file_location("comma_joined_ids", SAMPLE)
    sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sample)
    assert sample.cancel_deals.execute({}) == {"cancelled": ["deal-1", "deal-2", "deal-3"], "not_found": []}
    assert sample.cancel_odd_key.execute({}) == {"cancelled": ["invoice-7,2026"], "not_found": []}
    assert all(agent["status"] == "cancelled" for agent in cronofy_emulator.scheduled_agents.values())
    # The commented-out line of the sample is refused, as it says.
    cronofy_emulator.reset_requests()
    with pytest.raises(CronofyInputError):
        CancelScheduledMeetingAgentOperator(task_id="x", scheduling_key="deal-1,deal-2,deal-3").execute({})
    assert cronofy_emulator.requests == []
