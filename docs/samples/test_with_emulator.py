"""How-to samples (docs/emulator.md): test your own code against the emulator with pytest.

``tests/test_docs_samples.py`` runs this file with pytest in a subprocess (it is not in the
suite's ``testpaths``), as a user's own test module would run.
"""

from __future__ import annotations

# [START howto_testing_pytest_plugin]
from airflow_provider_cronofy.operators.meeting_agents import CancelScheduledMeetingAgentOperator

pytest_plugins = ["airflow_provider_cronofy.testing.pytest_plugin"]


def test_cancels_called_off_meetings(cronofy_emulator, monkeypatch):
    cronofy_emulator.schedule_agent("crm-deal-1042-kickoff")
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", cronofy_emulator.airflow_connection_json())

    result = CancelScheduledMeetingAgentOperator(
        task_id="cancel", scheduling_key=["crm-deal-1042-kickoff", "crm-deal-9999-unknown"]
    ).execute({})

    assert cronofy_emulator.scheduled_agents["crm-deal-1042-kickoff"]["status"] == "cancelled"
    assert result["cancelled"] == ["crm-deal-1042-kickoff", "crm-deal-9999-unknown"]  # unknown: 202


def test_retries_a_503(cronofy_emulator_factory, monkeypatch):
    cronofy = cronofy_emulator_factory(unknown_scheduling_key_status=404)
    cronofy.fail_next(1, 503)  # the first request meets an outage; the hook retries it
    monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", cronofy.airflow_connection_json())

    result = CancelScheduledMeetingAgentOperator(task_id="cancel", scheduling_key="crm-deal-7").execute({})

    assert result == {"cancelled": [], "not_found": ["crm-deal-7"]}
    assert [request.status for request in cronofy.requests] == [503, 404]
    # [END howto_testing_pytest_plugin]


# [START howto_testing_emulator]
def test_without_the_plugin(monkeypatch):
    from airflow_provider_cronofy.testing import CronofyEmulator

    with CronofyEmulator(latency=0.05) as cronofy:  # a real HTTP server on 127.0.0.1
        cronofy.schedule_agent("crm-deal-1044-review")
        monkeypatch.setenv("AIRFLOW_CONN_CRONOFY_DEFAULT", cronofy.airflow_connection_json())
        operator = CancelScheduledMeetingAgentOperator(
            task_id="cancel", scheduling_key="crm-deal-1044-review"
        )
        operator.execute({})
        assert cronofy.status_counts == {202: 1}
    # [END howto_testing_emulator]
